#include "crypto.hpp"

#include "base64url.hpp"
#include "identifiers.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

namespace edge::acme {
namespace {

struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * p) const noexcept {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;

AcmeResult<std::string> bio_contents(BIO* bio) {
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio, &data);
  if (size < 0 || data == nullptr) return crypto_error("reading memory BIO");
  return std::string(data, static_cast<std::size_t>(size));
}

// Big-endian, left-padded to `size` bytes as JWK and JWS require.
AcmeResult<std::string> key_coordinate(EVP_PKEY* key, char const* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) return crypto_error("reading EC public key");
  BignumPtr const bn(raw);
  std::array<std::uint8_t, 32> bytes{};
  if (BN_bn2binpad(bn.get(), bytes.data(), static_cast<int>(bytes.size())) < 0)
    return crypto_error("encoding EC coordinate");
  return base64url_encode(bytes);
}

bool is_p256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {};
  std::size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     &length) != 1)
    return false;
  return std::string_view(group, length) == "prime256v1" ||
         std::string_view(group, length) == "P-256";
}

}  // namespace

std::string openssl_errors() {
  std::string out;
  while (unsigned long const code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out;
}

AcmeError crypto_error(std::string_view what) {
  std::string detail(what);
  if (auto const errors = openssl_errors(); !errors.empty()) detail += ": " + errors;
  return AcmeError{problem::crypto, std::move(detail), 0, std::nullopt};
}

Sha256Digest sha256(std::string_view data) {
  Sha256Digest digest{};
  unsigned int length = 0;
  // EVP_Digest with SHA-256 cannot fail short of memory exhaustion.
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

std::string hex_lower(std::span<std::uint8_t const> data) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (auto b : data) {
    out += hex[b >> 4];
    out += hex[b & 0x0f];
  }
  return out;
}

AcmeResult<PkeyPtr> generate_key(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::ecdsa_p256: key = EVP_EC_gen("P-256"); break;
    case KeyType::ecdsa_p384: key = EVP_EC_gen("P-384"); break;
    case KeyType::rsa_2048: key = EVP_RSA_gen(2048); break;
    case KeyType::rsa_3072: key = EVP_RSA_gen(3072); break;
    case KeyType::rsa_4096: key = EVP_RSA_gen(4096); break;
  }
  if (key == nullptr) return crypto_error("generating key");
  return PkeyPtr(key);
}

AcmeResult<PkeyPtr> generate_account_key(KeyType type) {
  if (type == KeyType::ecdsa_p384)
    return AcmeError{problem::unsupported, "account keys are ecdsa-p256 (ES256) or rsa-* (RS256)"};
  return generate_key(type);
}

std::optional<KeyType> key_type_of(EVP_PKEY* key) {
  int const bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
      if (bits == 256) return KeyType::ecdsa_p256;
      if (bits == 384) return KeyType::ecdsa_p384;
      return std::nullopt;
    case EVP_PKEY_RSA:
      if (bits == 2048) return KeyType::rsa_2048;
      if (bits == 3072) return KeyType::rsa_3072;
      if (bits == 4096) return KeyType::rsa_4096;
      return std::nullopt;
    default: return std::nullopt;
  }
}

AcmeResult<std::string> private_key_pem(EVP_PKEY* key) {
  BioPtr const bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return crypto_error("writing private key PEM");
  return bio_contents(bio.get());
}

AcmeResult<PkeyPtr> load_private_key(std::string_view pem) {
  BioPtr const bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return crypto_error("reading private key PEM");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return crypto_error("reading private key PEM");
  return key;
}

AcmeResult<std::string> certificate_pem(X509* certificate) {
  BioPtr const bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), certificate) != 1)
    return crypto_error("writing certificate PEM");
  return bio_contents(bio.get());
}

namespace {

AcmeResult<std::string> rsa_jwk_json(EVP_PKEY* key) {
  auto component = [key](char const* param) -> AcmeResult<std::string> {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) return crypto_error("reading RSA public key");
    BignumPtr const bn(raw);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(BN_num_bytes(bn.get())));
    BN_bn2bin(bn.get(), bytes.data());
    return base64url_encode(bytes);  // unsigned big-endian, no leading zero (RFC 7518 6.3.1)
  };
  auto e = component(OSSL_PKEY_PARAM_RSA_E);
  if (!e) return e.error();
  auto n = component(OSSL_PKEY_PARAM_RSA_N);
  if (!n) return n.error();
  return R"({"e":")" + *e + R"(","kty":"RSA","n":")" + *n + R"("})";
}

}  // namespace

AcmeResult<std::string> jws_algorithm(EVP_PKEY* key) {
  if (is_p256(key)) return std::string("ES256");
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) return std::string("RS256");
  return AcmeError{problem::crypto, "account key is neither EC P-256 nor RSA", 0, std::nullopt};
}

AcmeResult<std::vector<std::uint8_t>> jws_sign(EVP_PKEY* key, std::string_view data) {
  if (is_p256(key)) return es256_sign(key, data);
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
    return AcmeError{problem::crypto, "account key is neither EC P-256 nor RSA", 0, std::nullopt};
  MdCtxPtr const ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  auto const* bytes = reinterpret_cast<unsigned char const*>(data.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, bytes, data.size()) != 1)
    return crypto_error("RS256 signing");
  std::vector<std::uint8_t> signature(length);
  if (EVP_DigestSign(ctx.get(), signature.data(), &length, bytes, data.size()) != 1)
    return crypto_error("RS256 signing");
  signature.resize(length);
  return signature;
}

AcmeResult<std::vector<std::uint8_t>> hmac_sha256(std::span<std::uint8_t const> key,
                                                  std::string_view data) {
  std::vector<std::uint8_t> mac(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<unsigned char const*>(data.data()), data.size(), mac.data(),
           &length) == nullptr)
    return crypto_error("HMAC-SHA256");
  mac.resize(length);
  return mac;
}

AcmeResult<std::vector<X509Ptr>> parse_pem_chain(std::string_view chain_pem) {
  BioPtr const bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  if (!bio) return crypto_error("reading certificate chain");
  std::vector<X509Ptr> chain;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    chain.emplace_back(cert);
  ERR_clear_error();  // the loop ends on "no start line"
  if (chain.empty())
    return AcmeError{problem::crypto, "no certificate in PEM chain", 0, std::nullopt};
  return chain;
}

std::vector<std::string> chain_issuer_names(std::vector<X509Ptr> const& chain) {
  std::vector<std::string> out;
  for (auto const& cert : chain) {
    std::string cn;
    X509_NAME* issuer = X509_get_issuer_name(cert.get());
    int const index = X509_NAME_get_index_by_NID(issuer, NID_commonName, -1);
    if (index >= 0) {
      ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(issuer, index));
      unsigned char* utf8 = nullptr;
      int const length = ASN1_STRING_to_UTF8(&utf8, data);
      if (length >= 0 && utf8 != nullptr) cn.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
      OPENSSL_free(utf8);
    }
    out.push_back(std::move(cn));
  }
  return out;
}

AcmeResult<std::vector<std::uint8_t>> certificate_der(X509* certificate) {
  int const length = i2d_X509(certificate, nullptr);
  if (length <= 0) return crypto_error("encoding certificate");
  std::vector<std::uint8_t> der(static_cast<std::size_t>(length));
  unsigned char* p = der.data();
  if (i2d_X509(certificate, &p) != length) return crypto_error("encoding certificate");
  return der;
}

AcmeResult<std::string> ari_cert_id(std::string_view chain_pem) {
  auto chain = parse_pem_chain(chain_pem);
  if (!chain) return chain.error();
  X509* leaf = chain->front().get();
  ASN1_OCTET_STRING const* key_id = X509_get0_authority_key_id(leaf);
  if (key_id == nullptr)
    return AcmeError{problem::crypto, "certificate has no authority key identifier", 0,
                     std::nullopt};
  ASN1_INTEGER const* serial = X509_get0_serialNumber(leaf);
  // The DER content octets of the INTEGER: two's complement, so a leading
  // zero byte stays when the high bit is set.
  int const der_length = i2d_ASN1_INTEGER(serial, nullptr);
  if (der_length <= 2 || der_length > 129) return crypto_error("encoding serial number");
  std::vector<std::uint8_t> der(static_cast<std::size_t>(der_length));
  unsigned char* p = der.data();
  i2d_ASN1_INTEGER(serial, &p);
  // Skip tag and length (serials are at most 20 octets: short-form length).
  std::span<std::uint8_t const> const content(der.data() + 2, der.size() - 2);
  std::span<std::uint8_t const> const aki(ASN1_STRING_get0_data(key_id),
                                          static_cast<std::size_t>(ASN1_STRING_length(key_id)));
  return base64url_encode(aki) + "." + base64url_encode(content);
}

AcmeResult<std::string> jwk_json(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) return rsa_jwk_json(key);
  if (!is_p256(key))
    return AcmeError{problem::crypto, "account key is not an EC P-256 key", 0, std::nullopt};
  auto x = key_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X);
  if (!x) return x.error();
  auto y = key_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!y) return y.error();
  // Built by hand: RFC 7638 fixes member order and forbids whitespace, and
  // base64url text never needs JSON escaping.
  return R"({"crv":"P-256","kty":"EC","x":")" + *x + R"(","y":")" + *y + R"("})";
}

AcmeResult<std::string> jwk_thumbprint(EVP_PKEY* key) {
  auto jwk = jwk_json(key);
  if (!jwk) return jwk.error();
  return base64url_encode(sha256(*jwk));
}

AcmeResult<std::vector<std::uint8_t>> es256_sign(EVP_PKEY* key, std::string_view data) {
  if (!is_p256(key))
    return AcmeError{problem::crypto, "ES256 needs an EC P-256 key", 0, std::nullopt};
  MdCtxPtr const ctx(EVP_MD_CTX_new());
  std::size_t der_length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_length,
                     reinterpret_cast<unsigned char const*>(data.data()), data.size()) != 1)
    return crypto_error("ES256 signing");
  std::vector<unsigned char> der(der_length);
  if (EVP_DigestSign(ctx.get(), der.data(), &der_length,
                     reinterpret_cast<unsigned char const*>(data.data()), data.size()) != 1)
    return crypto_error("ES256 signing");
  unsigned char const* p = der.data();
  EcdsaSigPtr const sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_length)));
  if (!sig) return crypto_error("decoding ECDSA signature");
  BIGNUM const* r = nullptr;
  BIGNUM const* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::vector<std::uint8_t> raw(64);
  if (BN_bn2binpad(r, raw.data(), 32) != 32 || BN_bn2binpad(s, raw.data() + 32, 32) != 32)
    return crypto_error("encoding ECDSA signature");
  return raw;
}

AcmeResult<GeneralNamesPtr> make_general_names(std::vector<std::string> const& identifiers) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return crypto_error("allocating SAN list");
  for (auto const& text : identifiers) {
    auto const id = classify_identifier(text);
    GeneralNamePtr name(GENERAL_NAME_new());
    if (!name) return crypto_error("allocating SAN");
    if (id.type == IdentifierType::ip) {
      auto const bytes = parse_ip(id.value);
      Asn1OctetStringPtr value(ASN1_OCTET_STRING_new());
      if (!bytes || !value ||
          ASN1_OCTET_STRING_set(value.get(), bytes->data(), static_cast<int>(bytes->size())) != 1)
        return crypto_error("encoding iPAddress SAN");
      GENERAL_NAME_set0_value(name.get(), GEN_IPADD, value.release());
    } else {
      std::unique_ptr<ASN1_IA5STRING, OpensslDeleter<&ASN1_IA5STRING_free>> value(
          ASN1_IA5STRING_new());
      if (!value ||
          ASN1_STRING_set(value.get(), id.value.data(), static_cast<int>(id.value.size())) != 1)
        return crypto_error("encoding dNSName SAN");
      GENERAL_NAME_set0_value(name.get(), GEN_DNS, value.release());
    }
    if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) return crypto_error("adding SAN");
    name.release();  // owned by the stack now
  }
  return names;
}

AcmeResult<std::vector<std::uint8_t>> make_csr(EVP_PKEY* key,
                                               std::vector<std::string> const& identifiers) {
  X509ReqPtr const req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) return crypto_error("creating CSR");

  for (auto const& text : identifiers) {
    auto const id = classify_identifier(text);
    if (id.type != IdentifierType::dns) continue;
    // CN is limited to 64 characters (RFC 5280 ub-common-name); the SAN carries
    // the name either way, so a longer first name simply leaves CN out.
    if (id.value.size() <= 64 &&
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<unsigned char const*>(id.value.c_str()), -1,
                                   -1, 0) != 1)
      return crypto_error("setting CSR subject");
    break;
  }

  auto names = make_general_names(identifiers);
  if (!names) return names.error();
  X509ExtensionPtr san(X509V3_EXT_i2d(NID_subject_alt_name, 0, names->get()));
  ExtensionStackPtr extensions(sk_X509_EXTENSION_new_null());
  if (!san || !extensions || sk_X509_EXTENSION_push(extensions.get(), san.get()) <= 0)
    return crypto_error("building CSR extensions");
  san.release();  // owned by the stack now
  if (X509_REQ_add_extensions(req.get(), extensions.get()) != 1)
    return crypto_error("adding CSR extensions");

  // P-384 pairs with SHA-384 (RFC 5480 section 4); everything else uses SHA-256.
  EVP_MD const* md = EVP_sha256();
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) > 256) md = EVP_sha384();
  if (X509_REQ_set_pubkey(req.get(), key) != 1 || X509_REQ_sign(req.get(), key, md) <= 0)
    return crypto_error("signing CSR");

  int const length = i2d_X509_REQ(req.get(), nullptr);
  if (length <= 0) return crypto_error("encoding CSR");
  std::vector<std::uint8_t> der(static_cast<std::size_t>(length));
  unsigned char* p = der.data();
  if (i2d_X509_REQ(req.get(), &p) != length) return crypto_error("encoding CSR");
  return der;
}

}  // namespace edge::acme
