#pragma once
// JWS in flattened JSON serialization (RFC 7515 section 7.2.2) as ACME uses
// it (RFC 8555 section 6.2): ES256, protected header {alg, nonce, url, jwk|kid}.
#include "crypto.hpp"

#include <edge/acme/error.hpp>

#include <string>
#include <string_view>

namespace edge::acme {

// `kid` empty: the header carries the public key as "jwk" (newAccount);
// otherwise "kid" (every other request). `payload` "" is POST-as-GET.
AcmeResult<std::string> make_jws(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                 std::string_view url, std::string_view payload);

}  // namespace edge::acme
