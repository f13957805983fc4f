#pragma once
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme {

enum class KeyType { ecdsa_p256, ecdsa_p384, rsa_2048, rsa_3072, rsa_4096 };

// The configuration spelling: "ecdsa-p256", "rsa-2048", ...
char const* to_string(KeyType type) noexcept;
std::optional<KeyType> key_type_from_string(std::string_view text) noexcept;

// External Account Binding (RFC 8555 section 7.3.4): the CA hands out a key
// identifier and a MAC key. The MAC key is a secret: it is never logged.
struct ExternalAccountBinding {
  std::string key_id;
  std::string hmac_key;  // base64url, as CAs publish it
};

// One ACME directory with its own account.
struct IssuerConfig {
  std::string directory_url{};         // e.g. https://127.0.0.1:14000/dir
  std::string ca_bundle{};             // PEM file trusted for the ACME server; empty = system store
  std::vector<std::string> contact{};  // e.g. mailto:ops@edge.test
  std::optional<ExternalAccountBinding> eab{};
  // The account key: ecdsa-p256 signs ES256 (the default), rsa-* RS256.
  KeyType account_key_type = KeyType::ecdsa_p256;
};

struct CertificateSpec {
  std::string name;                      // store key, e.g. "main"
  std::vector<std::string> identifiers;  // DNS names, IPv4 and IPv6 addresses
  std::optional<KeyType> key_type{};     // unset: AcmeConfig::key_type
  bool reuse_key = false;                // renew with the current certificate's key
  std::string preferred_chain{};         // issuer CN to prefer among alternate chains
  std::string profile{};                 // ACME profile (when the directory offers profiles)
};

struct AcmeConfig {
  // The single-issuer form (proxy.tls.acme.directory, ...). When `issuers`
  // is set, directory_url is the first issuer's.
  std::string directory_url;
  std::string ca_bundle;
  std::vector<std::string> contact;
  std::optional<ExternalAccountBinding> eab;
  KeyType account_key_type = KeyType::ecdsa_p256;
  // Ordered list of directories: when one fails for a certificate, the next
  // is tried in the same attempt (proxy.tls.acme.issuers).
  std::vector<IssuerConfig> issuers;

  KeyType key_type = KeyType::ecdsa_p256;  // default certificate key type
  std::vector<CertificateSpec> certificates;
  // How often the scheduler looks at certificates, renewal requests and
  // operator operations.
  std::chrono::milliseconds poll_interval{100};
  // Certificates issued at the same time, each its own order.
  std::size_t max_parallel_orders = 4;
  // Waits after the 1st, 2nd, 3rd, ... consecutive failed attempt; the last
  // one repeats. About 1 min, 10 min, 100 min, then daily, as Let's
  // Encrypt's integration guide asks; each gets jitter.
  std::vector<std::chrono::seconds> retry_schedule{std::chrono::seconds(60),
                                                   std::chrono::seconds(600),
                                                   std::chrono::seconds(6000),
                                                   std::chrono::seconds(86400)};

  // `issuers`, or the single issuer made of the fields above.
  std::vector<IssuerConfig> effective_issuers() const;
};

}  // namespace edge::acme
