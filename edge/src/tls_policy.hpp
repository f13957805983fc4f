#pragma once
// The TLS policy compiled for OpenSSL: context settings, per-SNI client
// certificate checks, and the session-ticket key ring shared by all workers.
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <atomic>
#include <chrono>
#include <edge/proxy/config.hpp>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace edge::proxy {

class TicketKeyRing;

// Versions, ciphers, groups, session cache and tickets of `policy` on `ctx`.
// Throws std::runtime_error when OpenSSL refuses a list (config was checked).
void apply_tls_policy(SSL_CTX* ctx, TlsPolicy const& policy);

struct X509StoreDeleter {
  void operator()(X509_STORE* s) const noexcept { X509_STORE_free(s); }
};
struct X509NameStackDeleter {
  void operator()(STACK_OF(X509_NAME) * s) const noexcept { sk_X509_NAME_pop_free(s, X509_NAME_free); }
};

// Client-certificate verification for one SNI entry, loaded once.
class ClientAuthContext {
 public:
  // Throws std::runtime_error naming the file when a CA or CRL file does not load.
  explicit ClientAuthContext(ClientAuthPolicy const& policy);
  ClientAuth mode() const noexcept { return mode_; }
  // Applies verification to one handshake (called from the ClientHello callback).
  void apply(SSL* ssl, SSL_verify_cb callback) const;

 private:
  ClientAuth mode_;
  std::unique_ptr<X509_STORE, X509StoreDeleter> store_;
  std::unique_ptr<STACK_OF(X509_NAME), X509NameStackDeleter> ca_names_;
};

// proxy.tls.routing compiled: exact names, then one-label wildcards, then the default route.
class SniPolicies {
 public:
  SniPolicies(std::vector<SniEntry> const& entries, TlsRoute default_route);
  ClientAuthContext const* client_auth(std::string const& server_name) const;
  TlsRoute const& route(std::string const& server_name) const;

 private:
  struct Entry {
    std::unique_ptr<ClientAuthContext> client_auth;
    TlsRoute route;
  };
  Entry const* find(std::string const& server_name) const;

  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, Entry const*> exact_;
  std::unordered_map<std::string, Entry const*> wildcard_;
  TlsRoute default_route_;
};

// Session-ticket keys: one ring for all workers (resumption works whichever
// worker a client lands on). A new key is made every `rotation`; tickets of
// the previous key are still accepted (and renewed) for one more period.
class TicketKeyRing {
 public:
  explicit TicketKeyRing(std::chrono::seconds rotation);
  // OpenSSL's ticket callback contract (SSL_CTX_set_tlsext_ticket_key_evp_cb).
  int handle(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt);

 private:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aes;
    std::array<unsigned char, 32> hmac;
  };
  struct Keys {
    Key current;
    Key previous;
    std::chrono::steady_clock::time_point rotated_at;
  };
  std::shared_ptr<Keys const> keys_now();

  std::chrono::seconds rotation_;
  std::atomic<std::shared_ptr<Keys const>> keys_;
};

// X509_V_ERR_* code as its name, e.g. "X509_V_ERR_UNABLE_TO_GET_CRL".
std::string x509_error_name(int code);

}  // namespace edge::proxy
