#pragma once
// The tls-alpn-01 challenge certificate (RFC 8737 section 3).
#include "identifiers.hpp"

#include <edge/acme/error.hpp>

#include <string>
#include <string_view>

namespace edge::acme {

struct ChallengeCertificate {
  std::string certificate_pem;
  std::string private_key_pem;  // PKCS#8
};

// token "." base64url(JWK thumbprint of the account key) (RFC 8555 section 8.1).
std::string key_authorization(std::string_view token, std::string_view account_thumbprint);

// Self-signed with a fresh P-256 key, valid about a day, exactly one SAN for
// `id`, and the critical id-pe-acmeIdentifier extension holding
// OCTET STRING(SHA-256(key_authorization)).
AcmeResult<ChallengeCertificate> make_challenge_certificate(Identifier const& id,
                                                            std::string_view key_authorization);

}  // namespace edge::acme
