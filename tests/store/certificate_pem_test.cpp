#include <edge/store/certificate_pem.hpp>

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using namespace edge::store;

namespace {

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

constexpr std::int64_t not_before = 1'700'000'000;
constexpr std::int64_t not_after = not_before + 90 * 86400;
constexpr char const* serial = "0123456789ABCDEF01";  // wider than 64 bits on purpose

PkeyPtr p256_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  EXPECT_TRUE(key);
  return key;
}

X509Ptr self_signed(EVP_PKEY* key, char const* common_name, char const* san) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, serial);
  BignumPtr owned(bn);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<unsigned char const*>("Edge Tests, Inc."), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<unsigned char const*>(common_name), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san));
  EXPECT_TRUE(ext);
  X509_add_ext(cert.get(), ext.get(), -1);
  EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_text(bio.get());
}

std::string pem(EVP_PKEY* key, EVP_CIPHER const* cipher = nullptr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  char passphrase[] = "secret";
  PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, nullptr,
                           cipher ? passphrase : nullptr);
  return bio_text(bio.get());
}

// Computed through i2d + EVP_Digest, independently of the X509_digest the store uses.
std::string sha256_hex(X509* cert) {
  unsigned char* der = nullptr;
  int const len = i2d_X509(cert, &der);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  EVP_Digest(der, static_cast<std::size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < md_len; ++i) {
    std::snprintf(buf, sizeof buf, "%02X", md[i]);
    out += buf;
  }
  return out;
}

constexpr char const* sans = "DNS:edge.test,DNS:*.edge.test,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1,IP:2001:db8::1";

class DescribeCertificateTest : public ::testing::Test {
 protected:
  PkeyPtr key_ = p256_key();
  X509Ptr cert_ = self_signed(key_.get(), "edge.test", sans);
};

TEST_F(DescribeCertificateTest, FillsEveryField) {
  auto const chain = pem(cert_.get());
  auto const key = pem(key_.get());
  auto r = describe_certificate("main", chain, key, CertificateSource::manual);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->name, "main");
  EXPECT_EQ(r->identifiers,
            (std::vector<std::string>{"edge.test", "*.edge.test", "127.0.0.1", "::1", "2001:db8::1"}));
  EXPECT_EQ(r->chain_pem, chain);
  EXPECT_EQ(r->private_key_pem, key);
  EXPECT_EQ(r->serial, serial);
  EXPECT_EQ(r->fingerprint_sha256, sha256_hex(cert_.get()));
  EXPECT_EQ(r->fingerprint_sha256.size(), 64u);
  EXPECT_EQ(r->not_before, not_before);
  EXPECT_EQ(r->not_after, not_after);
  EXPECT_EQ(r->issuer, "CN=edge.test,O=Edge Tests\\, Inc.");
  EXPECT_EQ(r->source, CertificateSource::manual);
  EXPECT_EQ(r->id, 0);
  EXPECT_EQ(r->generation, 0);
  EXPECT_STREQ(to_string(r->source), "manual");
  EXPECT_STREQ(to_string(CertificateSource::acme), "acme");
}

TEST_F(DescribeCertificateTest, LeafIsTheFirstCertificateOfTheChain) {
  auto other_key = p256_key();
  auto intermediate = self_signed(other_key.get(), "intermediate", "DNS:ca.test");
  auto const chain = pem(cert_.get()) + pem(intermediate.get());
  auto r = describe_certificate("main", chain, pem(key_.get()), CertificateSource::acme);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->fingerprint_sha256, sha256_hex(cert_.get()));
  EXPECT_EQ(r->identifiers.front(), "edge.test");
  EXPECT_EQ(r->chain_pem, chain);

  // The intermediate's key does not match the leaf.
  auto wrong = describe_certificate("main", chain, pem(other_key.get()), CertificateSource::acme);
  ASSERT_FALSE(wrong);
}

TEST_F(DescribeCertificateTest, RejectsAMismatchedKey) {
  auto other_key = p256_key();
  auto r = describe_certificate("main", pem(cert_.get()), pem(other_key.get()),
                                CertificateSource::acme);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "private key does not match the leaf certificate");
}

TEST_F(DescribeCertificateTest, RejectsGarbage) {
  auto const key = pem(key_.get());
  auto no_cert = describe_certificate("main", "hello\n", key, CertificateSource::acme);
  ASSERT_FALSE(no_cert);
  EXPECT_EQ(no_cert.error().message, "certificate chain: no PEM certificate found");

  auto broken = describe_certificate(
      "main", "-----BEGIN CERTIFICATE-----\nAAAA$$$$\n-----END CERTIFICATE-----\n", key,
      CertificateSource::acme);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("certificate chain: certificate 1 does not parse"),
            std::string::npos)
      << broken.error().message;

  auto trailing = describe_certificate(
      "main", pem(cert_.get()) + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      key, CertificateSource::acme);
  ASSERT_FALSE(trailing);
  EXPECT_NE(trailing.error().message.find("certificate 2 does not parse"), std::string::npos)
      << trailing.error().message;

  auto no_key = describe_certificate("main", pem(cert_.get()), "", CertificateSource::acme);
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error().message, "private key: no PEM private key found");
}

TEST_F(DescribeCertificateTest, RejectsAnEncryptedKeyWithoutPrompting) {
  auto r = describe_certificate("main", pem(cert_.get()), pem(key_.get(), EVP_aes_256_cbc()),
                                CertificateSource::acme);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("private key does not parse"), std::string::npos)
      << r.error().message;
}

// A certificate whose DER parses but whose key or signature algorithm the TLS
// stack cannot weigh (OpenSSL's security level check) would be stored and
// then refused by the proxy, losing the certificate it replaced. Found by
// tests/fuzz/fuzz_pem_import (regression inputs in its corpus).
std::string pem_der(std::vector<unsigned char> const& der) {
  unsigned char const* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  EXPECT_TRUE(cert) << "the changed DER must still parse as a certificate";
  return cert ? pem(cert.get()) : std::string();
}

std::vector<unsigned char> der_of(X509* cert) {
  unsigned char* der = nullptr;
  int const len = i2d_X509(cert, &der);
  std::vector<unsigned char> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

// Replaces the last occurrence of `from` in `der` by `to` (same length).
void replace_last(std::vector<unsigned char>& der, std::vector<unsigned char> const& from,
                  std::vector<unsigned char> const& to) {
  auto it = std::find_end(der.begin(), der.end(), from.begin(), from.end());
  ASSERT_NE(it, der.end());
  std::copy(to.begin(), to.end(), it);
}

TEST_F(DescribeCertificateTest, RejectsAChainCertificateWhoseKeyDoesNotDecode) {
  auto other_key = p256_key();
  auto intermediate = self_signed(other_key.get(), "intermediate", "DNS:ca.test");
  auto der = der_of(intermediate.get());
  // The EC point's "uncompressed" marker (BIT STRING 03 42 00 04): 05 is no point encoding.
  replace_last(der, {0x03, 0x42, 0x00, 0x04}, {0x03, 0x42, 0x00, 0x05});
  auto r = describe_certificate("main", pem(cert_.get()) + pem_der(der), pem(key_.get()),
                                CertificateSource::acme);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("certificate chain: certificate 2: its public key does not parse"),
            std::string::npos)
      << r.error().message;
}

TEST_F(DescribeCertificateTest, RejectsALeafWithAnUnknownSignatureAlgorithm) {
  // Issued by another name (not self-signed: OpenSSL weighs the signature).
  auto issuer_key = p256_key();
  X509_NAME* issuer = X509_NAME_new();
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC, reinterpret_cast<unsigned char const*>("Some CA"), -1,
                             -1, 0);
  X509_set_issuer_name(cert_.get(), issuer);
  X509_NAME_free(issuer);
  ASSERT_GT(X509_sign(cert_.get(), issuer_key.get(), EVP_sha256()), 0);
  ASSERT_TRUE(describe_certificate("main", pem(cert_.get()), pem(key_.get()), CertificateSource::acme));

  auto der = der_of(cert_.get());
  // The outer signatureAlgorithm, ecdsa-with-SHA256 (1.2.840.10045.4.3.2), made 1.2.840.10045.4.3.127.
  replace_last(der, {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02}, {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x7F});
  auto r = describe_certificate("main", pem_der(der), pem(key_.get()), CertificateSource::acme);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "certificate chain: certificate 1: its signature algorithm is unknown");
}

}  // namespace
