#include "tls_policy.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace edge::proxy {
namespace {

std::string openssl_reason() {
  unsigned long const code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "rejected by OpenSSL";
  char const* reason = ERR_reason_error_string(code);
  return reason ? reason : "rejected by OpenSSL";
}

struct CtxDeleter {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};

// OpenSSL accepts a cipher list when at least one entry is known; an operator
// who lists a typo wants to hear about it, so check entry by entry.
template <class Setter>
bool check_each(std::string const& list, std::string& why, char const* what, Setter set) {
  std::unique_ptr<SSL_CTX, CtxDeleter> ctx(SSL_CTX_new(TLS_server_method()));
  std::size_t start = 0;
  while (start <= list.size()) {
    auto const end = std::min(list.find(':', start), list.size());
    auto const item = list.substr(start, end - start);
    if (item.empty() || set(ctx.get(), item.c_str()) != 1) {
      ERR_clear_error();
      why = std::string("unknown ") + what + " \"" + item + "\"";
      return false;
    }
    start = end + 1;
  }
  return true;
}

std::string to_lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

bool check_cipher_suites(std::string const& list, std::string& why) {
  return check_each(list, why, "TLS 1.3 cipher suite", SSL_CTX_set_ciphersuites);
}

bool check_ciphers(std::string const& list, std::string& why) {
  return check_each(list, why, "TLS 1.2 cipher", SSL_CTX_set_cipher_list);
}

bool check_groups(std::string const& list, std::string& why) {
  return check_each(list, why, "group", [](SSL_CTX* ctx, char const* g) { return SSL_CTX_set1_groups_list(ctx, g); });
}

bool check_client_auth_files(ClientAuthPolicy const& policy, std::string& why) {
  try {
    ClientAuthContext const context(policy);
    return true;
  } catch (std::exception const& e) {
    why = e.what();
    return false;
  }
}

void apply_tls_policy(SSL_CTX* ctx, TlsPolicy const& policy) {
  auto version = [](TlsVersion v) { return v == TlsVersion::tls1_2 ? TLS1_2_VERSION : TLS1_3_VERSION; };
  SSL_CTX_set_min_proto_version(ctx, version(policy.min_version));
  SSL_CTX_set_max_proto_version(ctx, version(policy.max_version));
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  if (!policy.cipher_suites.empty() && SSL_CTX_set_ciphersuites(ctx, policy.cipher_suites.c_str()) != 1) {
    throw std::runtime_error("proxy.tls.cipher_suites: " + openssl_reason());
  }
  if (!policy.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, policy.ciphers.c_str()) != 1) {
    throw std::runtime_error("proxy.tls.ciphers: " + openssl_reason());
  }
  if (!policy.groups.empty() && SSL_CTX_set1_groups_list(ctx, policy.groups.c_str()) != 1) {
    throw std::runtime_error("proxy.tls.groups: " + openssl_reason());
  }
  if (policy.session_cache) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(policy.session_cache_size));
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (policy.session_tickets) {
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 1);  // one is enough to resume; each costs server CPU
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    // Without this TLS 1.3 still sends (stateful) tickets when the cache is on.
    if (!policy.session_cache) SSL_CTX_set_num_tickets(ctx, 0);
  }
  static unsigned char const kSessionContext[] = "edge";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
}

ClientAuthContext::ClientAuthContext(ClientAuthPolicy const& policy)
    : mode_(policy.mode), store_(X509_STORE_new()), ca_names_(sk_X509_NAME_new_null()) {
  if (mode_ == ClientAuth::none) return;
  if (policy.client_ca_file.empty()) throw std::runtime_error("client_ca is required when client_auth is not none");
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(policy.client_ca_file.c_str(), "r"), BIO_free);
  if (!bio) throw std::runtime_error(policy.client_ca_file + ": cannot read (" + std::strerror(errno) + ")");
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store_.get(), ca);
    sk_X509_NAME_push(ca_names_.get(), X509_NAME_dup(X509_get_subject_name(ca)));
    X509_free(ca);
    ++count;
  }
  ERR_clear_error();
  if (count == 0) throw std::runtime_error(policy.client_ca_file + ": no PEM certificate found");
  for (auto const& crl_file : policy.crl_files) {
    std::unique_ptr<BIO, decltype(&BIO_free)> crl_bio(BIO_new_file(crl_file.c_str(), "r"), BIO_free);
    if (!crl_bio) throw std::runtime_error(crl_file + ": cannot read (" + std::strerror(errno) + ")");
    int crls = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(crl_bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_crl(store_.get(), crl);
      X509_CRL_free(crl);
      ++crls;
    }
    ERR_clear_error();
    if (crls == 0) throw std::runtime_error(crl_file + ": no PEM CRL found");
  }
  if (!policy.crl_files.empty()) X509_STORE_set_flags(store_.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
}

void ClientAuthContext::apply(SSL* ssl, SSL_verify_cb callback) const {
  if (mode_ == ClientAuth::none) return;
  int const mode = SSL_VERIFY_PEER | (mode_ == ClientAuth::required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_set_verify(ssl, mode, callback);
  SSL_set1_verify_cert_store(ssl, store_.get());
  SSL_set_client_CA_list(ssl, SSL_dup_CA_list(ca_names_.get()));  // takes ownership of the copy
}

SniPolicies::SniPolicies(std::vector<SniEntry> const& entries, TlsRoute default_route)
    : default_route_(std::move(default_route)) {
  for (auto const& entry : entries) {
    entries_.push_back(
        std::make_unique<Entry>(Entry{std::make_unique<ClientAuthContext>(entry.client_auth), entry.route}));
    auto const name = to_lower(entry.server_name);
    if (name.starts_with("*.")) {
      wildcard_.emplace(name.substr(2), entries_.back().get());
    } else {
      exact_.emplace(name, entries_.back().get());
    }
  }
}

SniPolicies::Entry const* SniPolicies::find(std::string const& server_name) const {
  if (entries_.empty() || server_name.empty()) return nullptr;
  auto const name = to_lower(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  if (auto dot = name.find('.'); dot != std::string::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  return nullptr;
}

ClientAuthContext const* SniPolicies::client_auth(std::string const& server_name) const {
  auto const* entry = find(server_name);
  return entry && entry->client_auth->mode() != ClientAuth::none ? entry->client_auth.get() : nullptr;
}

TlsRoute const& SniPolicies::route(std::string const& server_name) const {
  auto const* entry = find(server_name);
  return entry ? entry->route : default_route_;
}

TicketKeyRing::TicketKeyRing(std::chrono::seconds rotation) : rotation_(rotation) {
  auto make = [] {
    Key key;
    RAND_bytes(key.name.data(), static_cast<int>(key.name.size()));
    RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size()));
    RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size()));
    return key;
  };
  keys_.store(std::make_shared<Keys const>(Keys{make(), make(), std::chrono::steady_clock::now()}));
}

std::shared_ptr<TicketKeyRing::Keys const> TicketKeyRing::keys_now() {
  auto keys = keys_.load();
  auto const now = std::chrono::steady_clock::now();
  while (now - keys->rotated_at >= rotation_) {
    Key fresh;
    RAND_bytes(fresh.name.data(), static_cast<int>(fresh.name.size()));
    RAND_bytes(fresh.aes.data(), static_cast<int>(fresh.aes.size()));
    RAND_bytes(fresh.hmac.data(), static_cast<int>(fresh.hmac.size()));
    auto next = std::make_shared<Keys const>(Keys{fresh, keys->current, now});
    // Whichever worker wins rotates; the others use its keys.
    if (keys_.compare_exchange_strong(keys, next)) return next;
  }
  return keys;
}

int TicketKeyRing::handle(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                          int encrypt) {
  auto const keys = keys_now();
  auto init = [&](Key const& key, int enc) {
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                               OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.hmac.data()), key.hmac.size()),
                           OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
                           OSSL_PARAM_construct_end()};
    return EVP_CipherInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv, enc) == 1 &&
           EVP_MAC_CTX_set_params(mac, params) == 1;
  };
  if (encrypt) {
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
    std::memcpy(key_name, keys->current.name.data(), 16);
    return init(keys->current, 1) ? 1 : -1;
  }
  // 2 = accepted, and OpenSSL issues a fresh ticket. In TLS 1.3 that matters
  // for every resumption, not only for the previous key: OpenSSL sends no
  // NewSessionTicket after a resumed handshake unless asked to, and clients
  // (browsers, wrk) treat tickets as single-use (RFC 8446 C.4), so without a
  // fresh one every other reconnection was a full handshake.
  if (std::memcmp(key_name, keys->current.name.data(), 16) == 0) return init(keys->current, 0) ? 2 : -1;
  if (std::memcmp(key_name, keys->previous.name.data(), 16) == 0) return init(keys->previous, 0) ? 2 : -1;
  return 0;  // unknown key: full handshake
}

std::string x509_error_name(int code) {
  switch (code) {
#define EDGE_X509_ERROR(name) \
  case name:                  \
    return #name;
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_GET_CRL)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY)
    EDGE_X509_ERROR(X509_V_ERR_CERT_SIGNATURE_FAILURE)
    EDGE_X509_ERROR(X509_V_ERR_CRL_SIGNATURE_FAILURE)
    EDGE_X509_ERROR(X509_V_ERR_CERT_NOT_YET_VALID)
    EDGE_X509_ERROR(X509_V_ERR_CERT_HAS_EXPIRED)
    EDGE_X509_ERROR(X509_V_ERR_CRL_NOT_YET_VALID)
    EDGE_X509_ERROR(X509_V_ERR_CRL_HAS_EXPIRED)
    EDGE_X509_ERROR(X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD)
    EDGE_X509_ERROR(X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD)
    EDGE_X509_ERROR(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
    EDGE_X509_ERROR(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
    EDGE_X509_ERROR(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
    EDGE_X509_ERROR(X509_V_ERR_CERT_CHAIN_TOO_LONG)
    EDGE_X509_ERROR(X509_V_ERR_CERT_REVOKED)
    EDGE_X509_ERROR(X509_V_ERR_INVALID_CA)
    EDGE_X509_ERROR(X509_V_ERR_PATH_LENGTH_EXCEEDED)
    EDGE_X509_ERROR(X509_V_ERR_INVALID_PURPOSE)
    EDGE_X509_ERROR(X509_V_ERR_CERT_UNTRUSTED)
    EDGE_X509_ERROR(X509_V_ERR_CERT_REJECTED)
    EDGE_X509_ERROR(X509_V_ERR_KEYUSAGE_NO_CERTSIGN)
    EDGE_X509_ERROR(X509_V_ERR_KEYUSAGE_NO_CRL_SIGN)
    EDGE_X509_ERROR(X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE)
    EDGE_X509_ERROR(X509_V_ERR_INVALID_EXTENSION)
    EDGE_X509_ERROR(X509_V_ERR_EE_KEY_TOO_SMALL)
    EDGE_X509_ERROR(X509_V_ERR_CA_MD_TOO_WEAK)
#undef EDGE_X509_ERROR
    default:
      return "X509_V_ERR_" + std::to_string(code);
  }
}

}  // namespace edge::proxy
