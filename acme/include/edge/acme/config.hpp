#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace edge::acme {

enum class KeyType { ecdsa_p256, ecdsa_p384, rsa_2048, rsa_3072, rsa_4096 };

struct CertificateSpec {
  std::string name;                      // store key, e.g. "main"
  std::vector<std::string> identifiers;  // DNS names, IPv4 and IPv6 addresses
};

struct AcmeConfig {
  std::string directory_url;             // e.g. https://127.0.0.1:14000/dir
  std::string ca_bundle;                 // PEM file trusted for the ACME server; empty = system store
  std::vector<std::string> contact;      // e.g. mailto:ops@edge.test
  KeyType key_type = KeyType::ecdsa_p256;  // certificate key type
  std::vector<CertificateSpec> certificates;
  // How often the scheduler looks at certificates and renewal requests.
  std::chrono::milliseconds poll_interval{1000};
  // Upper bound of the retry backoff after a failed issuance.
  std::chrono::seconds max_backoff{3600};
};

}  // namespace edge::acme
