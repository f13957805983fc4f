#include "jws.hpp"

#include "base64url.hpp"

#include <boost/json.hpp>

namespace edge::acme {

AcmeResult<std::string> make_jws(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                 std::string_view url, std::string_view payload) {
  namespace json = boost::json;
  json::object header;
  header["alg"] = "ES256";
  header["nonce"] = nonce;
  header["url"] = url;
  if (kid.empty()) {
    auto jwk = jwk_json(key);
    if (!jwk) return jwk.error();
    header["jwk"] = json::parse(*jwk);
  } else {
    header["kid"] = kid;
  }
  std::string const protected_b64 = base64url_encode(json::serialize(header));
  std::string const payload_b64 = base64url_encode(payload);
  auto signature = es256_sign(key, protected_b64 + "." + payload_b64);
  if (!signature) return signature.error();

  json::object body;
  body["protected"] = protected_b64;
  body["payload"] = payload_b64;
  body["signature"] = base64url_encode(*signature);
  return json::serialize(body);
}

}  // namespace edge::acme
