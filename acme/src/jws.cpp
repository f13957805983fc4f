#include "jws.hpp"

#include "base64url.hpp"

#include <boost/json.hpp>

namespace edge::acme {

namespace json = boost::json;

namespace {

std::string flattened(std::string const& protected_b64, std::string const& payload_b64,
                      std::span<std::uint8_t const> signature) {
  json::object body;
  body["protected"] = protected_b64;
  body["payload"] = payload_b64;
  body["signature"] = base64url_encode(signature);
  return json::serialize(body);
}

}  // namespace

AcmeResult<std::string> make_jws(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                 std::string_view url, std::string_view payload) {
  auto alg = jws_algorithm(key);
  if (!alg) return alg.error();
  json::object header;
  header["alg"] = *alg;
  if (!nonce.empty()) header["nonce"] = nonce;
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
  auto signature = jws_sign(key, protected_b64 + "." + payload_b64);
  if (!signature) return signature.error();
  return flattened(protected_b64, payload_b64, *signature);
}

AcmeResult<std::string> make_eab_jws(ExternalAccountBinding const& eab, EVP_PKEY* account_key,
                                     std::string_view url) {
  auto const mac_key = base64url_decode(eab.hmac_key);
  if (!mac_key || mac_key->empty())
    return AcmeError{problem::crypto,
                     "external account binding MAC key is not base64url (key id " + eab.key_id +
                         ")"};
  auto jwk = jwk_json(account_key);
  if (!jwk) return jwk.error();
  json::object header;
  header["alg"] = "HS256";
  header["kid"] = eab.key_id;
  header["url"] = url;
  std::string const protected_b64 = base64url_encode(json::serialize(header));
  std::string const payload_b64 = base64url_encode(*jwk);
  auto mac = hmac_sha256(*mac_key, protected_b64 + "." + payload_b64);
  if (!mac) return mac.error();
  return flattened(protected_b64, payload_b64, *mac);
}

}  // namespace edge::acme
