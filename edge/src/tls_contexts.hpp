#pragma once
// OpenSSL contexts behind CertificateRegistry and ChallengeRegistry.
#include <edge/proxy/config.hpp>
#include <edge/store/records.hpp>

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <functional>
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

// One certificate as served, with everything a handshake record names. The
// SSL_CTX is built on first use, not when the set is built: parsing a chain
// and a key costs OpenSSL 3 about 0.9 ms of CPU and a context about 20 KiB,
// so building all of them would make start-up with 10,000 certificates take
// seconds and hold memory for names that may never be asked for.
class ServedCertificate {
 public:
  ServedCertificate(store::CertificateRecord const& record, std::shared_ptr<TlsPolicy const> policy);
  ~ServedCertificate();
  ServedCertificate(ServedCertificate const&) = delete;
  ServedCertificate& operator=(ServedCertificate const&) = delete;

  // The context, built the first time it is asked for (on whichever thread
  // asks; two racing threads both build and one result is kept). nullptr when
  // the PEM does not load; `why` then says why (left alone otherwise).
  // Thread: any.
  SSL_CTX* context(std::string* why = nullptr) const;
  bool context_built() const noexcept { return ctx_.load(std::memory_order_acquire) != nullptr; }
  std::string_view chain_pem() const noexcept { return chain_pem_; }
  std::string_view key_pem() const noexcept { return key_pem_; }

  std::string name;
  std::string serial;
  std::string sha256;
  std::int64_t not_after = 0;
  std::int64_t generation = 0;
  std::vector<std::string> identifiers;

 private:
  std::string chain_pem_;
  std::string key_pem_;
  std::shared_ptr<TlsPolicy const> policy_;
  mutable std::atomic<SSL_CTX*> ctx_{nullptr};
  mutable std::atomic<bool> failed_{false};
};

class CertificateSet {
 public:
  explicit CertificateSet(std::vector<std::shared_ptr<ServedCertificate const>> certificates);

  // Exact DNS name (case-insensitive), then a "*." wildcard one label up, then
  // an IP identifier equal to the name (some clients send IP literals as SNI).
  // Hash lookups on a lower-cased copy kept on the stack: the cost does not
  // grow with the number of certificates and allocates nothing.
  ServedCertificate const* find_by_name(std::string_view server_name) const;
  // The certificate for a local address when the client sent no SNI.
  ServedCertificate const* find_by_ip(std::string_view address) const;
  // What a client gets when nothing matches: the first certificate by name.
  ServedCertificate const* fallback() const;

  std::vector<std::shared_ptr<ServedCertificate const>> const& all() const { return certificates_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using Index = std::unordered_map<std::string, ServedCertificate const*, Hash, std::equal_to<>>;

  std::vector<std::shared_ptr<ServedCertificate const>> certificates_;
  Index exact_;
  Index wildcard_;  // key: parent domain
  Index by_ip_;
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
