#pragma once
// OpenSSL contexts behind CertificateRegistry and ChallengeRegistry.
#include <edge/proxy/config.hpp>

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edge::proxy {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

enum class AlpnPolicy { http, acme_tls };


// A server context holding one certificate chain and key. Returns nullptr and
// sets `why` when the PEM does not load or the key does not match.
SslCtxPtr make_certificate_context(TlsPolicy const& policy, std::string_view chain_pem,
                                   std::string_view key_pem, AlpnPolicy alpn, std::string& why);

// One certificate as served, with everything a handshake record names.
struct ServedCertificate {
  std::string name;
  std::string serial;
  std::string sha256;
  std::int64_t not_after = 0;
  std::int64_t generation = 0;
  std::vector<std::string> identifiers;
  SslCtxPtr ctx;
};

class CertificateSet {
 public:
  explicit CertificateSet(std::vector<std::shared_ptr<ServedCertificate const>> certificates);

  // Exact DNS name (case-insensitive), then a "*." wildcard one label up, then
  // an IP identifier equal to the name (some clients send IP literals as SNI).
  ServedCertificate const* find_by_name(std::string_view server_name) const;
  // The certificate for a local address when the client sent no SNI.
  ServedCertificate const* find_by_ip(std::string const& address) const;
  // What a client gets when nothing matches: the first certificate by name.
  ServedCertificate const* fallback() const;

  std::vector<std::shared_ptr<ServedCertificate const>> const& all() const { return certificates_; }

 private:
  std::vector<std::shared_ptr<ServedCertificate const>> certificates_;
  std::unordered_map<std::string, ServedCertificate const*> exact_;
  std::unordered_map<std::string, ServedCertificate const*> wildcard_;  // key: parent domain
  std::unordered_map<std::string, ServedCertificate const*> by_ip_;
};

class ChallengeContext {
 public:
  explicit ChallengeContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}
  SSL_CTX* native() const noexcept { return ctx_.get(); }

 private:
  SslCtxPtr ctx_;
};

std::string to_lower_ascii(std::string_view text);
bool is_ip_literal(std::string const& text);

}  // namespace edge::proxy
