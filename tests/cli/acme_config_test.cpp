// The ACME keys of the configuration (proxy.tls.acme, certificates[]): the
// production-grade client's additions, and that the spine's keys still load.
#include "config_loader.hpp"

#include <gtest/gtest.h>

namespace edge::cli {
namespace {

std::string const head = R"(
proxy:
  tls:
    mode: acme
)";

boost::system::result<EdgeConfig, ConfigError> parse(std::string const& body) {
  return parse_config(head + body, "edge.yaml", "/etc/edge");
}

std::string error_of(std::string const& body) {
  auto r = parse(body);
  return r ? std::string("(loaded)") : r.error().message;
}

TEST(AcmeConfig, EveryKeyOfTheSingleIssuerForm) {
  auto const config = parse(R"(
    acme:
      directory: https://ca.test/dir
      ca_bundle: ca.pem
      contact: ["mailto:ops@edge.test"]
      key_type: ecdsa-p384
      account_key_type: rsa-3072
      eab: {key_id: kid-1, mac_key: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W}
      max_parallel_orders: 2
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1, "::1"]
        key_type: rsa-2048
        reuse_key: true
        preferred_chain: "ISRG Root X1"
        profile: shortlived
      - name: plain
        identifiers: [plain.edge.test]
)");
  ASSERT_TRUE(config) << config.error().message;
  auto const& a = config->acme;
  EXPECT_EQ(a.directory_url, "https://ca.test/dir");
  EXPECT_EQ(a.ca_bundle, "/etc/edge/ca.pem");
  EXPECT_EQ(a.key_type, acme::KeyType::ecdsa_p384);
  EXPECT_EQ(a.account_key_type, acme::KeyType::rsa_3072);
  ASSERT_TRUE(a.eab);
  EXPECT_EQ(a.eab->key_id, "kid-1");
  EXPECT_EQ(a.max_parallel_orders, 2u);
  ASSERT_EQ(a.certificates.size(), 2u);
  EXPECT_EQ(a.certificates[0].key_type, acme::KeyType::rsa_2048);
  EXPECT_TRUE(a.certificates[0].reuse_key);
  EXPECT_EQ(a.certificates[0].preferred_chain, "ISRG Root X1");
  EXPECT_EQ(a.certificates[0].profile, "shortlived");
  EXPECT_FALSE(a.certificates[1].key_type);
  EXPECT_FALSE(a.certificates[1].reuse_key);
  EXPECT_EQ(a.certificates[1].profile, "");
  auto const issuers = a.effective_issuers();
  ASSERT_EQ(issuers.size(), 1u);
  EXPECT_EQ(issuers[0].directory_url, "https://ca.test/dir");
  EXPECT_EQ(issuers[0].ca_bundle, "/etc/edge/ca.pem");
  EXPECT_EQ(issuers[0].account_key_type, acme::KeyType::rsa_3072);
  ASSERT_TRUE(issuers[0].eab);
}

TEST(AcmeConfig, IssuersInheritTheSectionsDefaults) {
  auto const config = parse(R"(
    acme:
      ca_bundle: ca.pem
      contact: ["mailto:ops@edge.test"]
      issuers:
        - directory: https://first.test/dir
        - directory: https://second.test/dir
          ca_bundle: /other/ca.pem
          contact: ["mailto:noc@edge.test"]
          account_key_type: rsa-2048
          eab: {key_id: k, mac_key: abc_DEF-123}
    certificates:
      - name: main
        identifiers: [edge.test]
)");
  ASSERT_TRUE(config) << config.error().message;
  auto const issuers = config->acme.effective_issuers();
  ASSERT_EQ(issuers.size(), 2u);
  EXPECT_EQ(config->acme.directory_url, "https://first.test/dir");  // the primary
  EXPECT_EQ(issuers[0].ca_bundle, "/etc/edge/ca.pem");
  EXPECT_EQ(issuers[0].contact, std::vector<std::string>{"mailto:ops@edge.test"});
  EXPECT_FALSE(issuers[0].eab);
  EXPECT_EQ(issuers[1].ca_bundle, "/other/ca.pem");
  EXPECT_EQ(issuers[1].contact, std::vector<std::string>{"mailto:noc@edge.test"});
  EXPECT_EQ(issuers[1].account_key_type, acme::KeyType::rsa_2048);
  ASSERT_TRUE(issuers[1].eab);
  EXPECT_EQ(issuers[1].eab->hmac_key, "abc_DEF-123");
}

TEST(AcmeConfig, ErrorsNameTheKey) {
  EXPECT_EQ(error_of(R"(
    acme:
      directory: https://a.test/dir
      issuers: [{directory: https://b.test/dir}]
)"),
            "edge.yaml:7:18: proxy.tls.acme.directory: use either directory or issuers, not both");
  EXPECT_EQ(error_of(R"(
    acme:
      issuers: []
)"),
            "edge.yaml:7:16: proxy.tls.acme.issuers: expected a non-empty list of issuers");
  EXPECT_EQ(error_of(R"(
    acme:
      issuers: [{directory: https://b.test/dir}, {directory: https://b.test/dir}]
)"),
            "edge.yaml:7:62: proxy.tls.acme.issuers[1].directory: duplicate directory \"https://b.test/dir\"");
  EXPECT_EQ(error_of(R"(
    acme:
      directory: https://a.test/dir
      account_key_type: ecdsa-p384
)"),
            "edge.yaml:8:25: proxy.tls.acme.account_key_type: account keys are ecdsa-p256 (ES256) or rsa-2048/3072/4096 (RS256)");
  auto const eab = error_of(R"(
    acme:
      directory: https://a.test/dir
      eab: {key_id: kid-1, mac_key: "not base64url!"}
)");
  EXPECT_NE(eab.find("proxy.tls.acme.eab.mac_key: expected a base64url MAC key"), std::string::npos) << eab;
  EXPECT_EQ(eab.find("not base64url!"), std::string::npos) << "a secret in an error message";
  EXPECT_NE(error_of(R"(
    acme:
      directory: https://a.test/dir
      eab: {key_id: kid-1}
)").find("proxy.tls.acme.eab: missing key \"mac_key\""),
            std::string::npos);
  EXPECT_EQ(error_of(R"(
    acme:
      directory: https://a.test/dir
    certificates:
      - {name: main, identifiers: [edge.test], key_type: dsa-1024}
)"),
            "edge.yaml:9:58: proxy.tls.certificates[0].key_type: expected one of ecdsa-p256, ecdsa-p384, rsa-2048, "
            "rsa-3072, rsa-4096, got \"dsa-1024\"");
  EXPECT_EQ(error_of(R"(
    acme:
      directory: https://a.test/dir
    certificates:
      - {name: main, identifiers: [edge.test], reuse_key: maybe}
)"),
            "edge.yaml:9:59: proxy.tls.certificates[0].reuse_key: expected true or false, got \"maybe\"");
  EXPECT_NE(error_of(R"(
    acme:
      directory: https://a.test/dir
      max_parallel_orders: 0
)").find("proxy.tls.acme.max_parallel_orders: expected an integer in 1..64"),
            std::string::npos);
}

TEST(AcmeConfig, AcmeOnlyCertificateKeysAreRefusedInManualMode) {
  auto const r = parse_config(R"(
proxy:
  tls:
    mode: manual
    certificates:
      - {name: main, certificate: c.pem, private_key: k.pem, profile: shortlived}
)",
                              "edge.yaml", "/etc/edge");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "edge.yaml:6:71: proxy.tls.certificates[0].profile: belongs to mode: acme");
}

}  // namespace
}  // namespace edge::cli
