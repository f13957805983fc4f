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

ServedCertificate::ServedCertificate(store::CertificateRecord const& record, std::shared_ptr<TlsPolicy const> policy)
    : name(record.name),
      serial(record.serial),
      sha256(record.fingerprint_sha256),
      not_after(record.not_after),
      generation(record.generation),
      identifiers(record.identifiers),
      chain_pem_(record.chain_pem),
      key_pem_(record.private_key_pem),
      policy_(std::move(policy)) {}

ServedCertificate::~ServedCertificate() { SSL_CTX_free(ctx_.load(std::memory_order_acquire)); }

SSL_CTX* ServedCertificate::context(std::string* why) const {
  if (SSL_CTX* built = ctx_.load(std::memory_order_acquire)) return built;
  if (failed_.load(std::memory_order_relaxed) && !why) return nullptr;
  std::string reason;
  auto ctx = make_certificate_context(*policy_, chain_pem_, key_pem_, AlpnPolicy::http, reason);
  if (!ctx) {
    failed_.store(true, std::memory_order_relaxed);
    if (why) *why = std::move(reason);
    return nullptr;
  }
  SSL_CTX* expected = nullptr;
  if (ctx_.compare_exchange_strong(expected, ctx.get(), std::memory_order_acq_rel)) return ctx.release();
  return expected;  // another thread was first; ours is freed
}

namespace {

// Lower-cases into `out` (no allocation); false when the name is too long to
// be a DNS name, so it cannot be in any index.
bool lower_into(std::string_view text, char (&out)[256], std::string_view& lowered) {
  if (text.size() > sizeof out) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto const c = static_cast<unsigned char>(text[i]);
    out[i] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  lowered = std::string_view(out, text.size());
  return true;
}

}  // namespace

CertificateSet::CertificateSet(std::vector<std::shared_ptr<ServedCertificate const>> certificates)
    : certificates_(std::move(certificates)) {
  std::sort(certificates_.begin(), certificates_.end(),
            [](auto const& a, auto const& b) { return a->name < b->name; });
  exact_.reserve(certificates_.size());
  for (auto const& cert : certificates_) {
    for (auto const& id : cert->identifiers) {
      auto lower = to_lower_ascii(id);
      if (is_ip_literal(lower)) {
        by_ip_.emplace(std::move(lower), cert.get());
      } else if (lower.starts_with("*.")) {
        wildcard_.emplace(lower.substr(2), cert.get());
      } else {
        exact_.emplace(std::move(lower), cert.get());
      }
    }
  }
}

ServedCertificate const* CertificateSet::find_by_name(std::string_view server_name) const {
  char buffer[256];
  std::string_view name;
  if (!lower_into(server_name, buffer, name)) return nullptr;
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  if (auto dot = name.find('.'); dot != std::string_view::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  if (auto it = by_ip_.find(name); it != by_ip_.end()) return it->second;
  return nullptr;
}

ServedCertificate const* CertificateSet::find_by_ip(std::string_view address) const {
  auto it = by_ip_.find(address);
  return it == by_ip_.end() ? nullptr : it->second;
}

ServedCertificate const* CertificateSet::fallback() const {
  return certificates_.empty() ? nullptr : certificates_.front().get();
}

CertificateRegistry::CertificateRegistry(TlsPolicy policy)
    : policy_(policy),
      shared_policy_(std::make_shared<TlsPolicy const>(policy)),
      current_(std::make_shared<CertificateSet const>(std::vector<std::shared_ptr<ServedCertificate const>>{})) {}

CertificateRegistry::~CertificateRegistry() = default;

TlsPolicy CertificateRegistry::policy() const {
  std::lock_guard lock(writer_);
  return policy_;
}

std::shared_ptr<TlsPolicy const> CertificateRegistry::current_policy() const {
  std::lock_guard lock(writer_);
  return shared_policy_;
}

std::vector<std::string> CertificateRegistry::replace_all(std::vector<store::CertificateRecord> const& records,
                                                          TlsPolicy policy, Check check) {
  {
    std::lock_guard lock(writer_);
    policy_ = std::move(policy);
    shared_policy_ = std::make_shared<TlsPolicy const>(policy_);
  }
  return replace_all(records, check);
}

std::vector<std::string> CertificateRegistry::replace_all(std::vector<store::CertificateRecord> const& records,
                                                          Check check) {
  auto const shared_policy = current_policy();
  std::vector<std::string> errors;
  std::vector<std::shared_ptr<ServedCertificate const>> served;
  served.reserve(records.size());
  for (auto const& record : records) {
    auto cert = std::make_shared<ServedCertificate const>(record, shared_policy);
    if (check == Check::now) {
      std::string why;
      if (!cert->context(&why)) {
        errors.push_back(record.name + ": " + why);
        continue;
      }
    }
    served.push_back(std::move(cert));
  }
  current_.store(std::make_shared<CertificateSet const>(std::move(served)));
  return errors;
}

std::vector<std::string> CertificateRegistry::check_contexts(std::stop_token stop) {
  auto const shared_policy = current_policy();
  std::vector<std::string> errors;
  std::vector<std::string> broken;  // names
  for (auto const& cert : current_.load()->all()) {
    if (stop.stop_requested()) break;
    if (cert->context_built()) continue;
    std::string why;
    // A throw-away context: the served one is built when a handshake needs it.
    if (!make_certificate_context(*shared_policy, cert->chain_pem(), cert->key_pem(), AlpnPolicy::http, why)) {
      errors.push_back(cert->name + ": " + why);
      broken.push_back(cert->name);
    }
  }
  if (broken.empty()) return errors;
  auto old_set = current_.load();
  for (;;) {
    std::vector<std::shared_ptr<ServedCertificate const>> served;
    for (auto const& existing : old_set->all()) {
      if (std::find(broken.begin(), broken.end(), existing->name) == broken.end() || existing->context_built())
        served.push_back(existing);
    }
    auto next = std::make_shared<CertificateSet const>(std::move(served));
    if (current_.compare_exchange_weak(old_set, next)) break;
  }
  return errors;
}

std::vector<std::string> CertificateRegistry::put(store::CertificateRecord const& record) {
  std::vector<std::string> errors;
  auto cert = std::make_shared<ServedCertificate const>(record, current_policy());
  // Built now: an import or renewal wants its error at once, and a swapped-in
  // certificate is about to be used.
  std::string why;
  if (!cert->context(&why)) {
    errors.push_back(record.name + ": " + why);
    return errors;
  }
  // Writers are rare (renewals, imports); a compare-exchange loop keeps two
  // concurrent writers from losing each other's certificate.
  auto old_set = current_.load();
  for (;;) {
    std::vector<std::shared_ptr<ServedCertificate const>> served;
    served.reserve(old_set->all().size() + 1);
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
