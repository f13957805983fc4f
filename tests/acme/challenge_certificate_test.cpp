#include "challenge_certificate.hpp"
#include "crypto.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <ctime>

namespace edge::acme {
namespace {

using namespace edge::acme::test;

struct Checked {
  std::vector<std::string> sans;
  std::vector<std::uint8_t> acme_identifier;
  bool critical = false;
};

Checked check_certificate(ChallengeCertificate const& cc) {
  Checked out;
  auto const cert = parse_certificate(cc.certificate_pem);
  EXPECT_TRUE(cert);
  if (!cert) return out;
  auto const key = parse_private_key(cc.private_key_pem);
  EXPECT_TRUE(key);
  EXPECT_NE(cc.private_key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  // Self-signed.
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  // Valid now, for about a day.
  std::time_t now = std::time(nullptr);
  EXPECT_LT(X509_cmp_time(X509_get0_notBefore(cert.get()), &now), 0);
  EXPECT_GT(X509_cmp_time(X509_get0_notAfter(cert.get()), &now), 0);
  std::time_t in_two_days = now + 2 * 24 * 3600;
  EXPECT_LT(X509_cmp_time(X509_get0_notAfter(cert.get()), &in_two_days), 0);

  GeneralNames const names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  out.sans = san_entries(names.get());

  std::unique_ptr<ASN1_OBJECT, Deleter<&ASN1_OBJECT_free>> const oid(
      OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
  int const index = X509_get_ext_by_OBJ(cert.get(), oid.get(), -1);
  EXPECT_GE(index, 0);
  if (index < 0) return out;
  EXPECT_EQ(X509_get_ext_by_OBJ(cert.get(), oid.get(), index), -1);  // only once
  X509_EXTENSION* extension = X509_get_ext(cert.get(), index);
  out.critical = X509_EXTENSION_get_critical(extension) == 1;
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(extension);
  out.acme_identifier.assign(ASN1_STRING_get0_data(data),
                             ASN1_STRING_get0_data(data) + ASN1_STRING_length(data));
  return out;
}

std::vector<std::uint8_t> expected_extension_value(std::string const& key_auth) {
  std::vector<std::uint8_t> v{0x04, 0x20};
  auto const digest = sha256_bytes(key_auth);
  v.insert(v.end(), digest.begin(), digest.end());
  return v;
}

TEST(ChallengeCertificate, KeyAuthorization) {
  EXPECT_EQ(key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
                              "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"),
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA."
            "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
}

TEST(ChallengeCertificate, DnsIdentifier) {
  std::string const key_auth = "token-dns.thumbprint";
  auto const cc = make_challenge_certificate(classify_identifier("edge.test"), key_auth);
  ASSERT_TRUE(cc) << cc.error().message();
  auto const checked = check_certificate(*cc);
  EXPECT_EQ(checked.sans, std::vector<std::string>{"DNS:edge.test"});
  EXPECT_TRUE(checked.critical);
  EXPECT_EQ(checked.acme_identifier, expected_extension_value(key_auth));
}

TEST(ChallengeCertificate, Ipv4Identifier) {
  std::string const key_auth = "token-v4.thumbprint";
  auto const cc = make_challenge_certificate(classify_identifier("127.0.0.1"), key_auth);
  ASSERT_TRUE(cc) << cc.error().message();
  auto const checked = check_certificate(*cc);
  EXPECT_EQ(checked.sans, std::vector<std::string>{"IP:7f000001"});
  EXPECT_TRUE(checked.critical);
  EXPECT_EQ(checked.acme_identifier, expected_extension_value(key_auth));
}

TEST(ChallengeCertificate, Ipv6Identifier) {
  std::string const key_auth = "token-v6.thumbprint";
  auto const cc = make_challenge_certificate(classify_identifier("::1"), key_auth);
  ASSERT_TRUE(cc) << cc.error().message();
  auto const checked = check_certificate(*cc);
  EXPECT_EQ(checked.sans, std::vector<std::string>{"IP:00000000000000000000000000000001"});
  EXPECT_TRUE(checked.critical);
  EXPECT_EQ(checked.acme_identifier, expected_extension_value(key_auth));
}

TEST(ChallengeCertificate, FreshKeyEachTime) {
  auto const a = make_challenge_certificate(classify_identifier("edge.test"), "a.b");
  auto const b = make_challenge_certificate(classify_identifier("edge.test"), "a.b");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->private_key_pem, b->private_key_pem);
}

}  // namespace
}  // namespace edge::acme
