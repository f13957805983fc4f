#include <edge/acme/config.hpp>

namespace edge::acme {

char const* to_string(KeyType type) noexcept {
  switch (type) {
    case KeyType::ecdsa_p256: return "ecdsa-p256";
    case KeyType::ecdsa_p384: return "ecdsa-p384";
    case KeyType::rsa_2048: return "rsa-2048";
    case KeyType::rsa_3072: return "rsa-3072";
    case KeyType::rsa_4096: return "rsa-4096";
  }
  return "?";
}

std::optional<KeyType> key_type_from_string(std::string_view text) noexcept {
  for (auto type : {KeyType::ecdsa_p256, KeyType::ecdsa_p384, KeyType::rsa_2048,
                    KeyType::rsa_3072, KeyType::rsa_4096})
    if (text == to_string(type)) return type;
  return std::nullopt;
}

std::vector<IssuerConfig> AcmeConfig::effective_issuers() const {
  if (!issuers.empty()) return issuers;
  return {IssuerConfig{directory_url, ca_bundle, contact, eab, account_key_type}};
}

}  // namespace edge::acme
