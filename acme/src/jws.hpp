#pragma once
// JWS in flattened JSON serialization (RFC 7515 section 7.2.2) as ACME uses
// it (RFC 8555 section 6.2): ES256 or RS256, protected header
// {alg, nonce, url, jwk|kid}; and the HS256 JWS of External Account Binding.
#include "crypto.hpp"

#include <edge/acme/config.hpp>
#include <edge/acme/error.hpp>

#include <string>
#include <string_view>

namespace edge::acme {

// `kid` empty: the header carries the public key as "jwk" (newAccount, the
// inner JWS of keyChange); otherwise "kid". `nonce` empty: no nonce member
// (the inner JWS of keyChange has none). `payload` "" is POST-as-GET.
AcmeResult<std::string> make_jws(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                 std::string_view url, std::string_view payload);

// The externalAccountBinding member of newAccount (RFC 8555 section 7.3.4):
// HS256 with the CA's MAC key over the account's public JWK, for `url`
// (the newAccount URL). Fails when the MAC key is not base64url.
AcmeResult<std::string> make_eab_jws(ExternalAccountBinding const& eab, EVP_PKEY* account_key,
                                     std::string_view url);

}  // namespace edge::acme
