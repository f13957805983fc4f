// CertificateRegistry: selection (exact, wildcard, IP, case, too long), the
// lazy contexts of Check::on_first_use, check_contexts() taking a broken
// certificate out, and put() refusing a broken one at once. Real OpenSSL
// keys and certificates made here.
#include "tls_contexts.hpp"

#include <edge/proxy/certificate_registry.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

namespace edge::proxy {
namespace {

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long const len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

store::CertificateRecord make_record(std::string name, std::vector<std::string> identifiers) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<unsigned char const*>("test"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  EXPECT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  BIO* c = BIO_new(BIO_s_mem());
  BIO* k = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(c, cert);
  PEM_write_bio_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  store::CertificateRecord record;
  record.name = std::move(name);
  record.identifiers = std::move(identifiers);
  record.chain_pem = bio_text(c);
  record.private_key_pem = bio_text(k);
  record.serial = "07";
  BIO_free(c);
  BIO_free(k);
  X509_free(cert);
  EVP_PKEY_free(key);
  return record;
}

class CertificateRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    records_.push_back(make_record("a", {"a.example", "127.0.0.1"}));
    records_.push_back(make_record("w", {"*.w.example"}));
    auto broken = make_record("b", {"b.example"});
    broken.private_key_pem = "not a key";
    records_.push_back(broken);
  }
  std::vector<store::CertificateRecord> records_;
  CertificateRegistry registry_{TlsPolicy{}};
};

TEST_F(CertificateRegistryTest, CheckNowLeavesOutWhatDoesNotLoadAndReportsIt) {
  auto const errors = registry_.replace_all(records_, CertificateRegistry::Check::now);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.front().rfind("b: private key", 0), 0u) << errors.front();
  auto const set = registry_.snapshot();
  EXPECT_EQ(set->all().size(), 2u);
  EXPECT_EQ(set->find_by_name("b.example"), nullptr);
  ASSERT_NE(set->find_by_name("a.example"), nullptr);
  EXPECT_TRUE(set->find_by_name("a.example")->context_built());
}

TEST_F(CertificateRegistryTest, SelectsExactWildcardIpAnyCase) {
  registry_.replace_all(records_, CertificateRegistry::Check::on_first_use);
  auto const set = registry_.snapshot();
  ASSERT_NE(set->find_by_name("A.Example"), nullptr);
  EXPECT_EQ(set->find_by_name("A.Example")->name, "a");
  ASSERT_NE(set->find_by_name("www.W.example"), nullptr);
  EXPECT_EQ(set->find_by_name("www.W.example")->name, "w");
  EXPECT_EQ(set->find_by_name("w.example"), nullptr);  // a wildcard covers one label, not the parent
  EXPECT_EQ(set->find_by_name("x.www.w.example"), nullptr);
  ASSERT_NE(set->find_by_name("127.0.0.1"), nullptr);
  EXPECT_EQ(set->find_by_ip("127.0.0.1")->name, "a");
  EXPECT_EQ(set->find_by_name(std::string(300, 'a')), nullptr);  // longer than any DNS name
  EXPECT_EQ(set->find_by_name(""), nullptr);
}

TEST_F(CertificateRegistryTest, OnFirstUseBuildsContextsWhenSelectedOnly) {
  EXPECT_TRUE(registry_.replace_all(records_, CertificateRegistry::Check::on_first_use).empty());
  auto const set = registry_.snapshot();
  EXPECT_EQ(set->all().size(), 3u);
  auto const* a = set->find_by_name("a.example");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->context_built());
  SSL_CTX* first = a->context();
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(a->context_built());
  EXPECT_EQ(a->context(), first);  // built once
  auto const* b = set->find_by_name("b.example");
  ASSERT_NE(b, nullptr);
  std::string why;
  EXPECT_EQ(b->context(&why), nullptr);
  EXPECT_NE(why.find("private key"), std::string::npos) << why;
  EXPECT_EQ(b->context(), nullptr);  // a failed build is not retried per handshake
}

TEST_F(CertificateRegistryTest, CheckContextsTakesBrokenCertificatesOut) {
  registry_.replace_all(records_, CertificateRegistry::Check::on_first_use);
  auto const errors = registry_.check_contexts();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.front().rfind("b: ", 0), 0u) << errors.front();
  auto const set = registry_.snapshot();
  EXPECT_EQ(set->find_by_name("b.example"), nullptr);
  ASSERT_NE(set->find_by_name("a.example"), nullptr);
  EXPECT_FALSE(set->find_by_name("a.example")->context_built());  // checked, not kept: memory on first use only
  EXPECT_TRUE(registry_.check_contexts().empty());
}

TEST_F(CertificateRegistryTest, PutBuildsAtOnceAndRefusesWhatDoesNotLoad) {
  registry_.replace_all({records_[0]}, CertificateRegistry::Check::on_first_use);
  auto const errors = registry_.put(records_[2]);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(registry_.snapshot()->find_by_name("b.example"), nullptr);
  auto replacement = make_record("a", {"a.example", "a2.example"});
  EXPECT_TRUE(registry_.put(replacement).empty());
  auto const set = registry_.snapshot();
  EXPECT_EQ(set->all().size(), 1u);
  ASSERT_NE(set->find_by_name("a2.example"), nullptr);
  EXPECT_TRUE(set->find_by_name("a2.example")->context_built());
}

}  // namespace
}  // namespace edge::proxy
