#pragma once
// OpenSSL plumbing for the ACME client: owned handles, keys, JWK (RFC 7517,
// RFC 7638), ES256 signatures (RFC 7518 section 3.4) and the CSR.
#include <edge/acme/config.hpp>
#include <edge/acme/error.hpp>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <optional>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme {

template <auto Free>
struct OpensslDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<&EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslDeleter<&EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpensslDeleter<&EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<&BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslDeleter<&BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpensslDeleter<&ECDSA_SIG_free>>;
using X509Ptr = std::unique_ptr<X509, OpensslDeleter<&X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpensslDeleter<&X509_REQ_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpensslDeleter<&X509_EXTENSION_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, OpensslDeleter<&GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpensslDeleter<&GENERAL_NAMES_free>>;
using Asn1ObjectPtr = std::unique_ptr<ASN1_OBJECT, OpensslDeleter<&ASN1_OBJECT_free>>;
using Asn1OctetStringPtr =
    std::unique_ptr<ASN1_OCTET_STRING, OpensslDeleter<&ASN1_OCTET_STRING_free>>;

using Sha256Digest = std::array<std::uint8_t, 32>;

// Drains OpenSSL's error queue into one line ("" when empty).
std::string openssl_errors();
// An AcmeError of type problem::crypto: "<what>: <openssl errors>".
AcmeError crypto_error(std::string_view what);

Sha256Digest sha256(std::string_view data);
std::string hex_lower(std::span<std::uint8_t const> data);

AcmeResult<PkeyPtr> generate_key(KeyType type);
// An account key: P-256 (ES256) by default; RSA key types give RS256 keys.
// ecdsa-p384 is not an account key type (ES384 is not required of CAs).
AcmeResult<PkeyPtr> generate_account_key(KeyType type = KeyType::ecdsa_p256);
// What a key is, as configured: nullopt for other key kinds.
std::optional<KeyType> key_type_of(EVP_PKEY* key);
// Unencrypted PKCS#8 PEM.
AcmeResult<std::string> private_key_pem(EVP_PKEY* key);
AcmeResult<PkeyPtr> load_private_key(std::string_view pem);
AcmeResult<std::string> certificate_pem(X509* certificate);

// The public JWK of an account key with exactly the required members in
// lexicographic order and no whitespace: {"crv":"P-256","kty":"EC","x":..,"y":..}
// or {"e":..,"kty":"RSA","n":..}. That is also the RFC 7638 thumbprint input.
AcmeResult<std::string> jwk_json(EVP_PKEY* key);
// "ES256" for P-256 keys, "RS256" for RSA keys.
AcmeResult<std::string> jws_algorithm(EVP_PKEY* key);
// The JWS signature for jws_algorithm(key): raw r||s or PKCS#1 v1.5.
AcmeResult<std::vector<std::uint8_t>> jws_sign(EVP_PKEY* key, std::string_view data);
// HMAC-SHA-256, for External Account Binding (HS256).
AcmeResult<std::vector<std::uint8_t>> hmac_sha256(std::span<std::uint8_t const> key,
                                                  std::string_view data);
// base64url(SHA-256(jwk_json)).
AcmeResult<std::string> jwk_thumbprint(EVP_PKEY* key);

// ECDSA P-256 with SHA-256; JWS wants the raw r||s (32 bytes each), not DER.
AcmeResult<std::vector<std::uint8_t>> es256_sign(EVP_PKEY* key, std::string_view data);

// A PKCS#10 request (DER) with every identifier as a SAN (dNSName or
// iPAddress); CN is the first DNS name, if any.
AcmeResult<std::vector<std::uint8_t>> make_csr(EVP_PKEY* key,
                                               std::vector<std::string> const& identifiers);

// ARI's CertID (RFC 9773 section 4.1): base64url(authorityKeyIdentifier's
// keyIdentifier) "." base64url(serial number DER content bytes), of the first
// certificate in `chain_pem`.
AcmeResult<std::string> ari_cert_id(std::string_view chain_pem);

// The certificates of a PEM chain, in order.
AcmeResult<std::vector<X509Ptr>> parse_pem_chain(std::string_view chain_pem);
// The issuer CN of every certificate of a chain, leaf first ("" when none).
std::vector<std::string> chain_issuer_names(std::vector<X509Ptr> const& chain);
// DER of one certificate.
AcmeResult<std::vector<std::uint8_t>> certificate_der(X509* certificate);

// SubjectAltName entries for identifiers (DNS name or IP literal).
AcmeResult<GeneralNamesPtr> make_general_names(std::vector<std::string> const& identifiers);

}  // namespace edge::acme
