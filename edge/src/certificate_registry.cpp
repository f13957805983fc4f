#include "tls_contexts.hpp"
#include "tls_policy.hpp"

#include <edge/proxy/certificate_registry.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace edge::proxy {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

std::string openssl_error_text() {
  char buf[256] = {};
  unsigned long const code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

// Offers only what we serve: a client that offers ALPN without any of ours
// gets no_application_protocol rather than a connection it cannot use.
int select_alpn(SSL*, unsigned char const** out, unsigned char* out_len, unsigned char const* in,
                unsigned in_len, void* arg) {
  auto const wanted = std::string_view(static_cast<char const*>(arg));
  for (unsigned i = 0; i < in_len;) {
    unsigned const len = in[i];
    if (i + 1 + len > in_len) break;
    if (std::string_view(reinterpret_cast<char const*>(in + i + 1), len) == wanted) {
      *out = in + i + 1;
      *out_len = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

char kHttp11[] = "http/1.1";
char kAcmeTls1[] = "acme-tls/1";

}  // namespace

bool is_ip_literal(std::string const& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

std::string to_lower_ascii(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

SslCtxPtr make_certificate_context(TlsPolicy const& policy, std::string_view chain_pem,
                                   std::string_view key_pem, AlpnPolicy alpn, std::string& why) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    why = "SSL_CTX_new: " + openssl_error_text();
    return nullptr;
  }
  apply_tls_policy(ctx.get(), policy);

  std::unique_ptr<BIO, BioDeleter> chain(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  std::unique_ptr<X509, X509Deleter> leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    why = "certificate: " + openssl_error_text();
    return nullptr;
  }
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx.get(), extra) != 1) {  // takes ownership on success
      X509_free(extra);
      why = "chain: " + openssl_error_text();
      return nullptr;
    }
  }
  ERR_clear_error();  // the loop ends on an expected "no start line"

  std::unique_ptr<BIO, BioDeleter> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    why = "private key: " + openssl_error_text();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, alpn == AlpnPolicy::http ? kHttp11 : kAcmeTls1);
  return ctx;
}

CertificateSet::CertificateSet(std::vector<std::shared_ptr<ServedCertificate const>> certificates)
    : certificates_(std::move(certificates)) {
  std::sort(certificates_.begin(), certificates_.end(),
            [](auto const& a, auto const& b) { return a->name < b->name; });
  for (auto const& cert : certificates_) {
    for (auto const& id : cert->identifiers) {
      auto const lower = to_lower_ascii(id);
      if (is_ip_literal(lower)) {
        by_ip_.emplace(lower, cert.get());
      } else if (lower.starts_with("*.")) {
        wildcard_.emplace(lower.substr(2), cert.get());
      } else {
        exact_.emplace(lower, cert.get());
      }
    }
  }
}

ServedCertificate const* CertificateSet::find_by_name(std::string_view server_name) const {
  auto const name = to_lower_ascii(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  if (auto it = by_ip_.find(name); it != by_ip_.end()) return it->second;
  return nullptr;
}

ServedCertificate const* CertificateSet::find_by_ip(std::string const& address) const {
  auto it = by_ip_.find(address);
  return it == by_ip_.end() ? nullptr : it->second;
}

ServedCertificate const* CertificateSet::fallback() const {
  return certificates_.empty() ? nullptr : certificates_.front().get();
}

namespace {

std::shared_ptr<ServedCertificate const> load(TlsPolicy const& policy, store::CertificateRecord const& record,
                                              std::vector<std::string>& errors) {
  std::string why;
  auto ctx = make_certificate_context(policy, record.chain_pem, record.private_key_pem, AlpnPolicy::http, why);
  if (!ctx) {
    errors.push_back(record.name + ": " + why);
    return nullptr;
  }
  auto served = std::make_shared<ServedCertificate>();
  served->name = record.name;
  served->serial = record.serial;
  served->sha256 = record.fingerprint_sha256;
  served->not_after = record.not_after;
  served->generation = record.generation;
  served->identifiers = record.identifiers;
  served->ctx = std::move(ctx);
  return served;
}

}  // namespace

CertificateRegistry::CertificateRegistry(TlsPolicy policy)
    : policy_(policy), current_(std::make_shared<CertificateSet const>(
                           std::vector<std::shared_ptr<ServedCertificate const>>{})) {}

CertificateRegistry::~CertificateRegistry() = default;

std::vector<std::string> CertificateRegistry::replace_all(std::vector<store::CertificateRecord> const& records) {
  return replace_all(records, policy());
}

TlsPolicy CertificateRegistry::policy() const {
  std::lock_guard lock(writer_);
  return policy_;
}

std::vector<std::string> CertificateRegistry::replace_all(std::vector<store::CertificateRecord> const& records,
                                                          TlsPolicy policy) {
  std::lock_guard lock(writer_);
  policy_ = std::move(policy);
  std::vector<std::string> errors;
  std::vector<std::shared_ptr<ServedCertificate const>> served;
  for (auto const& record : records) {
    if (auto cert = load(policy_, record, errors)) served.push_back(std::move(cert));
  }
  current_.store(std::make_shared<CertificateSet const>(std::move(served)));
  return errors;
}

std::vector<std::string> CertificateRegistry::put(store::CertificateRecord const& record) {
  std::vector<std::string> errors;
  auto cert = load(policy(), record, errors);
  if (!cert) return errors;
  // Writers are rare (renewals, imports); a compare-exchange loop keeps two
  // concurrent writers from losing each other's certificate.
  auto old_set = current_.load();
  for (;;) {
    std::vector<std::shared_ptr<ServedCertificate const>> served;
    for (auto const& existing : old_set->all()) {
      if (existing->name != record.name) served.push_back(existing);
    }
    served.push_back(cert);
    auto next = std::make_shared<CertificateSet const>(std::move(served));
    if (current_.compare_exchange_weak(old_set, next)) break;
  }
  return errors;
}

std::shared_ptr<CertificateSet const> CertificateRegistry::snapshot() const noexcept {
  return current_.load();
}

}  // namespace edge::proxy
