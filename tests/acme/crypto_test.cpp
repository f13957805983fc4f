#include "base64url.hpp"
#include "crypto.hpp"
#include "jws.hpp"
#include "test_support.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <openssl/ec.h>

namespace edge::acme {
namespace {

namespace json = boost::json;
using namespace edge::acme::test;

// The thumbprint input recomputed from the raw public point with OpenSSL
// alone: 04 || X || Y.
std::string independent_jwk(EVP_PKEY* key) {
  std::vector<std::uint8_t> point(65);
  std::size_t length = 0;
  EXPECT_EQ(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                            point.size(), &length),
            1);
  EXPECT_EQ(length, 65u);
  EXPECT_EQ(point[0], 0x04);
  std::vector<std::uint8_t> const x(point.begin() + 1, point.begin() + 33);
  std::vector<std::uint8_t> const y(point.begin() + 33, point.end());
  return R"({"crv":"P-256","kty":"EC","x":")" + openssl_base64url(x) + R"(","y":")" +
         openssl_base64url(y) + R"("})";
}

TEST(Jwk, Rfc7517ExampleKey) {
  auto const key = rfc7517_example_key();
  auto const jwk = jwk_json(key.get());
  ASSERT_TRUE(jwk) << jwk.error().message();
  EXPECT_EQ(*jwk,
            R"({"crv":"P-256","kty":"EC","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",)"
            R"("y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"})");
  auto const thumbprint = jwk_thumbprint(key.get());
  ASSERT_TRUE(thumbprint);
  // SHA-256 of the string above, computed outside this code base.
  EXPECT_EQ(*thumbprint, "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
}

TEST(Jwk, ThumbprintMatchesIndependentComputation) {
  for (int i = 0; i < 20; ++i) {  // some keys have coordinates with leading zero bytes
    auto key = generate_account_key();
    ASSERT_TRUE(key);
    auto const expected_jwk = independent_jwk(key->get());
    EXPECT_EQ(jwk_json(key->get()).value(), expected_jwk);
    EXPECT_EQ(jwk_thumbprint(key->get()).value(), openssl_base64url(sha256_bytes(expected_jwk)));
  }
}

TEST(Jwk, RejectsNonP256Keys) {
  auto key = generate_key(KeyType::ecdsa_p384);
  ASSERT_TRUE(key);
  EXPECT_FALSE(jwk_json(key->get()));
  EXPECT_FALSE(es256_sign(key->get(), "x"));
}

TEST(Keys, PemRoundTrip) {
  auto key = generate_account_key();
  ASSERT_TRUE(key);
  auto const pem = private_key_pem(key->get());
  ASSERT_TRUE(pem);
  EXPECT_NE(pem->find("-----BEGIN PRIVATE KEY-----"), std::string::npos);  // PKCS#8
  auto const loaded = load_private_key(*pem);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(jwk_thumbprint(loaded->get()).value(), jwk_thumbprint(key->get()).value());
  EXPECT_FALSE(load_private_key("not a key"));
}

bool verify_es256(EVP_PKEY* key, std::string_view signing_input,
                  std::vector<std::uint8_t> const& raw) {
  if (raw.size() != 64) return false;
  Bignum r(BN_bin2bn(raw.data(), 32, nullptr));
  Bignum s(BN_bin2bn(raw.data() + 32, 32, nullptr));
  std::unique_ptr<ECDSA_SIG, Deleter<&ECDSA_SIG_free>> sig(ECDSA_SIG_new());
  ECDSA_SIG_set0(sig.get(), r.release(), s.release());
  unsigned char* der = nullptr;
  int const der_length = i2d_ECDSA_SIG(sig.get(), &der);
  std::unique_ptr<unsigned char, Deleter<[](unsigned char* p) { OPENSSL_free(p); }>> owned(der);
  std::unique_ptr<EVP_MD_CTX, Deleter<&EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_length),
                          reinterpret_cast<unsigned char const*>(signing_input.data()),
                          signing_input.size()) == 1;
}

std::string decode(std::string_view text) {
  auto bytes = base64url_decode(text);
  EXPECT_TRUE(bytes) << text;
  return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
}

TEST(Jws, Es256SignatureVerifies) {
  auto key = generate_account_key();
  ASSERT_TRUE(key);
  auto const raw = es256_sign(key->get(), "signing input");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->size(), 64u);
  EXPECT_TRUE(verify_es256(key->get(), "signing input", *raw));
  EXPECT_FALSE(verify_es256(key->get(), "other input", *raw));
}

TEST(Jws, NewAccountRequestCarriesJwk) {
  auto const key = rfc7517_example_key();
  std::string const url = "https://127.0.0.1:14000/sign-me-up";
  auto const body = make_jws(key.get(), "", "nonce-1", url, R"({"termsOfServiceAgreed":true})");
  ASSERT_TRUE(body);
  auto const jws = json::parse(*body).as_object();
  EXPECT_EQ(jws.size(), 3u);  // flattened: protected, payload, signature

  auto const header = json::parse(decode(jws.at("protected").as_string())).as_object();
  EXPECT_EQ(header.at("alg").as_string(), "ES256");
  EXPECT_EQ(header.at("nonce").as_string(), "nonce-1");
  EXPECT_EQ(header.at("url").as_string(), url);
  EXPECT_FALSE(header.contains("kid"));
  auto const& jwk = header.at("jwk").as_object();
  EXPECT_EQ(jwk.at("kty").as_string(), "EC");
  EXPECT_EQ(jwk.at("crv").as_string(), "P-256");
  EXPECT_EQ(jwk.at("x").as_string(), "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4");
  EXPECT_EQ(jwk.at("y").as_string(), "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM");
  EXPECT_EQ(decode(jws.at("payload").as_string()), R"({"termsOfServiceAgreed":true})");

  std::string const signing_input =
      std::string(jws.at("protected").as_string()) + "." + std::string(jws.at("payload").as_string());
  auto const signature = base64url_decode(jws.at("signature").as_string());
  ASSERT_TRUE(signature);
  EXPECT_TRUE(verify_es256(key.get(), signing_input, *signature));
}

TEST(Jws, LaterRequestsCarryKidAndPostAsGetHasEmptyPayload) {
  auto key = generate_account_key();
  ASSERT_TRUE(key);
  std::string const kid = "https://127.0.0.1:14000/my-account/1";
  std::string const url = "https://127.0.0.1:14000/authZ/abc";
  auto const body = make_jws(key->get(), kid, "nonce-2", url, "");
  ASSERT_TRUE(body);
  auto const jws = json::parse(*body).as_object();
  auto const header = json::parse(decode(jws.at("protected").as_string())).as_object();
  EXPECT_EQ(header.at("kid").as_string(), kid);
  EXPECT_FALSE(header.contains("jwk"));
  EXPECT_EQ(header.at("url").as_string(), url);
  EXPECT_EQ(jws.at("payload").as_string(), "");
  auto const signature = base64url_decode(jws.at("signature").as_string());
  ASSERT_TRUE(signature);
  EXPECT_TRUE(verify_es256(key->get(), std::string(jws.at("protected").as_string()) + ".",
                           *signature));
}

struct KeyCase {
  KeyType type;
  int base_id;
  int bits;
  char const* group;  // EC only
};

class CsrTest : public ::testing::TestWithParam<KeyCase> {};

TEST_P(CsrTest, HoldsAllIdentifiersAndTheRightKey) {
  auto const& c = GetParam();
  auto key = generate_key(c.type);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(EVP_PKEY_get_base_id(key->get()), c.base_id);
  EXPECT_EQ(EVP_PKEY_get_bits(key->get()), c.bits);

  auto const der = make_csr(key->get(), {"edge.test", "www.edge.test", "127.0.0.1", "::1",
                                         "2001:db8::1"});
  ASSERT_TRUE(der) << der.error().message();
  unsigned char const* p = der->data();
  X509Request const req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_REQ_verify(req.get(), X509_REQ_get0_pubkey(req.get())), 1);

  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), c.base_id);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), c.bits);
  if (c.group != nullptr) {
    char group[64] = {};
    std::size_t length = 0;
    ASSERT_EQ(EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                             &length),
              1);
    EXPECT_STREQ(group, c.group);
  }
  EXPECT_EQ(EVP_PKEY_eq(pub, key->get()), 1);

  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "edge.test");

  std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<[](STACK_OF(X509_EXTENSION) * s) {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
  }>> const extensions(X509_REQ_get_extensions(req.get()));
  ASSERT_TRUE(extensions);
  GeneralNames const names(static_cast<GENERAL_NAMES*>(
      X509V3_get_d2i(extensions.get(), NID_subject_alt_name, nullptr, nullptr)));
  ASSERT_TRUE(names);
  EXPECT_EQ(san_entries(names.get()),
            (std::vector<std::string>{"DNS:edge.test", "DNS:www.edge.test", "IP:7f000001",
                                      "IP:00000000000000000000000000000001",
                                      "IP:20010db8000000000000000000000001"}));
}

INSTANTIATE_TEST_SUITE_P(
    KeyTypes, CsrTest,
    ::testing::Values(KeyCase{KeyType::ecdsa_p256, EVP_PKEY_EC, 256, "prime256v1"},
                      KeyCase{KeyType::ecdsa_p384, EVP_PKEY_EC, 384, "secp384r1"},
                      KeyCase{KeyType::rsa_2048, EVP_PKEY_RSA, 2048, nullptr},
                      KeyCase{KeyType::rsa_3072, EVP_PKEY_RSA, 3072, nullptr},
                      KeyCase{KeyType::rsa_4096, EVP_PKEY_RSA, 4096, nullptr}));

TEST(Csr, IpOnlyRequestHasEmptySubject) {
  auto key = generate_key(KeyType::ecdsa_p256);
  ASSERT_TRUE(key);
  auto const der = make_csr(key->get(), {"192.0.2.7"});
  ASSERT_TRUE(der);
  unsigned char const* p = der->data();
  X509Request const req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size())));
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 0);
}

}  // namespace
}  // namespace edge::acme
