#include "challenge_certificate.hpp"

#include "crypto.hpp"

#include <openssl/objects.h>
#include <openssl/rand.h>

namespace edge::acme {
namespace {

constexpr char const* acme_identifier_oid = "1.3.6.1.5.5.7.1.31";

AcmeResult<void> set_random_serial(X509* certificate) {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    return crypto_error("random serial");
  bytes[0] &= 0x7f;  // keep the INTEGER positive
  bytes[0] |= 0x01;  // and of full length
  BignumPtr const bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(certificate)) == nullptr)
    return crypto_error("setting serial");
  return {};
}

AcmeResult<void> add_acme_identifier(X509* certificate, std::string_view key_authorization) {
  auto const digest = sha256(key_authorization);
  // extnValue holds the DER of Authorization ::= OCTET STRING (SIZE (32)).
  std::array<unsigned char, 34> der{0x04, 0x20};
  std::copy(digest.begin(), digest.end(), der.begin() + 2);

  Asn1ObjectPtr const oid(OBJ_txt2obj(acme_identifier_oid, 1));
  Asn1OctetStringPtr const value(ASN1_OCTET_STRING_new());
  if (!oid || !value ||
      ASN1_OCTET_STRING_set(value.get(), der.data(), static_cast<int>(der.size())) != 1)
    return crypto_error("encoding acmeIdentifier");
  X509ExtensionPtr const extension(
      X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), /*critical=*/1, value.get()));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1)
    return crypto_error("adding acmeIdentifier");
  return {};
}

}  // namespace

std::string key_authorization(std::string_view token, std::string_view account_thumbprint) {
  std::string out(token);
  out += '.';
  out += account_thumbprint;
  return out;
}

AcmeResult<ChallengeCertificate> make_challenge_certificate(Identifier const& id,
                                                            std::string_view key_authorization) {
  auto key = generate_key(KeyType::ecdsa_p256);
  if (!key) return key.error();

  X509Ptr const certificate(X509_new());
  if (!certificate || X509_set_version(certificate.get(), 2) != 1)
    return crypto_error("creating challenge certificate");
  if (auto r = set_random_serial(certificate.get()); !r) return r.error();

  // An hour back tolerates a validator whose clock runs behind ours.
  if (X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 24 * 3600) == nullptr)
    return crypto_error("setting challenge certificate validity");

  X509_NAME* name = X509_get_subject_name(certificate.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<unsigned char const*>("edge tls-alpn-01"), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(certificate.get(), name) != 1)
    return crypto_error("setting challenge certificate name");

  auto names = make_general_names({id.value});
  if (!names) return names.error();
  X509ExtensionPtr const san(X509V3_EXT_i2d(NID_subject_alt_name, 0, names->get()));
  if (!san || X509_add_ext(certificate.get(), san.get(), -1) != 1)
    return crypto_error("adding challenge SAN");
  if (auto r = add_acme_identifier(certificate.get(), key_authorization); !r) return r.error();

  if (X509_set_pubkey(certificate.get(), key->get()) != 1 ||
      X509_sign(certificate.get(), key->get(), EVP_sha256()) <= 0)
    return crypto_error("signing challenge certificate");

  auto certificate_text = certificate_pem(certificate.get());
  if (!certificate_text) return certificate_text.error();
  auto key_text = private_key_pem(key->get());
  if (!key_text) return key_text.error();
  return ChallengeCertificate{std::move(*certificate_text), std::move(*key_text)};
}

}  // namespace edge::acme
