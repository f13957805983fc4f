// The ACME client against FakeAcme (recorded-style answers behind the
// HttpTransport seam) for what Pebble 2.4 lacks or cannot be made to do:
// profiles, ARI, "replaces", Retry-After, subproblems; and for exact checks
// of what goes on the wire (EAB, RS256, keyChange, revocation, resume).
#include <edge/acme/acme_client.hpp>

#include "crypto.hpp"
#include "fake_acme.hpp"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <filesystem>

namespace edge::acme {
namespace {

using namespace edge::acme::test;
using namespace std::chrono_literals;

class NullResponder final : public ChallengeResponder {
 public:
  void publish(std::string const& name, std::string const&, std::string const&) override {
    published.push_back(name);
  }
  void withdraw(std::string const&) override {}
  std::vector<std::string> published;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "edge-acme-client-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    store_ = store::open_sqlite_store(dir_ / "edge.db").value();
    issuer_.directory_url = ca_->directory_url();
    issuer_.contact = {"mailto:ops@edge.test"};
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<AcmeClient> client() {
    AcmeClientOptions options;
    options.transport = ca_;
    options.log = [this](std::string const& line) { log_.push_back(line); };
    return std::make_unique<AcmeClient>(issuer_, *store_, responder_, std::move(options));
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<FakeAcme> ca_ = std::make_shared<FakeAcme>();
  IssuerConfig issuer_;
  NullResponder responder_;
  std::vector<std::string> log_;
  CertificateSpec const spec_{"main", {"edge.test", "127.0.0.1", "::1"}};
};

std::vector<X509Cert> chain_of(std::string const& pem) {
  std::vector<X509Cert> out;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  return out;
}

std::string issuer_cn(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_issuer_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

std::string subproblems_document() {
  // Let's Encrypt's shape for an order naming identifiers it refuses
  // (RFC 8555 section 6.7.1): verbatim, newlines included.
  return "{\n  \"type\": \"urn:ietf:params:acme:error:rejectedIdentifier\",\n"
         "  \"detail\": \"Error creating new order :: Cannot issue for 2 identifiers\",\n"
         "  \"status\": 400,\n  \"subproblems\": [\n"
         "    {\"type\": \"urn:ietf:params:acme:error:rejectedIdentifier\", \"detail\": \"Domain name is on the blocklist\", "
         "\"identifier\": {\"type\": \"dns\", \"value\": \"edge.test\"}},\n"
         "    {\"type\": \"urn:ietf:params:acme:error:malformed\", \"detail\": \"IP address is in a reserved range\", "
         "\"identifier\": {\"type\": \"ip\", \"value\": \"127.0.0.1\"}}\n  ]\n}";
}

TEST_F(ClientTest, IssuesWithTheFakeCaAndRecordsTheOrder) {
  auto record = client()->issue(spec_);
  ASSERT_TRUE(record) << record.error().message();
  EXPECT_EQ(record->generation, 1);
  auto const orders = store_->certificate_orders("main", 10).value();
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].status, "valid");
  EXPECT_EQ(orders[0].certificate_generation, 1);
  EXPECT_EQ(orders[0].private_key_pem, "");  // the key lives in the certificate row only
  EXPECT_EQ(responder_.published.size(), 3u);
}

TEST_F(ClientTest, SendsTheConfiguredProfileWhenOfferedAndKeepsItOnRenewal) {
  ca_->profiles = {{"classic", "https://letsencrypt.org/docs/profiles#classic"},
                   {"shortlived", "https://letsencrypt.org/docs/profiles#shortlived"}};
  auto spec = spec_;
  spec.profile = "shortlived";
  auto c = client();
  ASSERT_TRUE(c->issue(spec));
  ASSERT_TRUE(c->issue(spec));  // a renewal
  auto const payloads = ca_->payloads("newOrder");
  ASSERT_EQ(payloads.size(), 2u);
  for (auto const& p : payloads) EXPECT_EQ(p.at("profile").as_string(), "shortlived");
  EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).profile, "shortlived");
}

TEST_F(ClientTest, RefusesAProfileTheDirectoryDoesNotOffer) {
  ca_->profiles = {{"classic", "c"}, {"tlsserver", "t"}};
  auto spec = spec_;
  spec.profile = "shortlived";
  auto const r = client()->issue(spec);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::unsupported);
  EXPECT_NE(r.error().detail.find("offered: classic, tlsserver"), std::string::npos) << r.error().detail;
  EXPECT_EQ(ca_->count("newOrder"), 0u);
}

TEST_F(ClientTest, OrdersWithoutProfileWhenTheDirectoryHasNone) {
  auto spec = spec_;
  spec.profile = "shortlived";
  ASSERT_TRUE(client()->issue(spec));
  EXPECT_FALSE(ca_->payloads("newOrder").at(0).contains("profile"));
}

TEST_F(ClientTest, RenewalInfoGivesTheSuggestedWindowAndRetryAfter) {
  ca_->ari = true;
  auto c = client();
  auto const record = c->issue(spec_);
  ASSERT_TRUE(record);
  auto const window = c->renewal_info(record->chain_pem);
  ASSERT_TRUE(window) << window.error().message();
  ASSERT_TRUE(*window);
  // The fake answers start = notBefore + 60 d, end = notBefore + 62 d (it
  // only knows the CertID it computed itself, so the request used the right one).
  EXPECT_EQ((*window)->start, record->not_before + 60 * 86400);
  EXPECT_EQ((*window)->end, record->not_before + 62 * 86400);
  EXPECT_EQ((*window)->retry_after, 21600s);
  EXPECT_EQ((*window)->explanation_url, "https://ca.test/incident/1");
  auto const seen = ca_->seen();
  EXPECT_EQ(seen.back().method, HttpMethod::get);  // unauthenticated GET
  EXPECT_EQ(seen.back().url, "https://ca.test/renewal-info/" + AcmeClient::cert_id(record->chain_pem).value());
}

TEST_F(ClientTest, RenewalInfoRetryAfterIsClamped) {
  ca_->ari = true;
  ca_->ari_retry_after = "5";  // silly: at least a minute
  auto c = client();
  auto const record = c->issue(spec_).value();
  EXPECT_EQ(c->renewal_info(record.chain_pem).value()->retry_after, 60s);
  ca_->ari_retry_after.reset();  // absent: six hours
  EXPECT_EQ(c->renewal_info(record.chain_pem).value()->retry_after, 21600s);
}

TEST_F(ClientTest, NoRenewalInfoWithoutAriInTheDirectory) {
  auto c = client();
  auto const record = c->issue(spec_).value();
  auto const window = c->renewal_info(record.chain_pem);
  ASSERT_TRUE(window);
  EXPECT_FALSE(*window);
  EXPECT_EQ(ca_->count("renewal-info"), 0u);
}

TEST_F(ClientTest, SendsReplacesOnlyWhenTheDirectoryHasRenewalInfo) {
  ca_->ari = true;
  auto c = client();
  auto const first = c->issue(spec_).value();
  auto const id = AcmeClient::cert_id(first.chain_pem).value();
  ASSERT_TRUE(c->issue(spec_, {id, ""}));
  EXPECT_EQ(ca_->payloads("newOrder").back().at("replaces").as_string(), id);
  EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).replaces, id);

  ca_->ari = false;
  auto plain = client();  // fresh directory
  ASSERT_TRUE(plain->issue(spec_, {id, ""}));
  EXPECT_FALSE(ca_->payloads("newOrder").back().contains("replaces"));
}

TEST_F(ClientTest, OrdersAgainWithoutReplacesWhenAlreadyReplaced) {
  ca_->ari = true;
  auto c = client();
  auto const first = c->issue(spec_).value();
  ca_->inject["newOrder"].push_back(problem_response(
      409, R"({"type":"urn:ietf:params:acme:error:alreadyReplaced","detail":"certificate already replaced","status":409})"));
  ASSERT_TRUE(c->issue(spec_, {AcmeClient::cert_id(first.chain_pem).value(), ""}));
  auto const payloads = ca_->payloads("newOrder");
  ASSERT_EQ(payloads.size(), 3u);
  EXPECT_TRUE(payloads[1].contains("replaces"));
  EXPECT_FALSE(payloads[2].contains("replaces"));
}

TEST_F(ClientTest, PicksThePreferredAlternateChain) {
  ca_->alternates = true;
  auto spec = spec_;
  spec.preferred_chain = "Fake Alt Root X2";
  auto const alt = client()->issue(spec).value();
  auto chain = chain_of(alt.chain_pem);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(issuer_cn(chain[1].get()), "Fake Alt Root X2");
  EXPECT_EQ(ca_->count("cert"), 2u);  // default, then the alternate

  spec.preferred_chain = "Fake Root X1";  // the default chain already matches
  auto const def = client()->issue(spec).value();
  EXPECT_EQ(issuer_cn(chain_of(def.chain_pem)[1].get()), "Fake Root X1");
  EXPECT_EQ(ca_->count("cert"), 3u);

  spec.preferred_chain = "Nobody's Root";  // no match: the default chain
  auto const none = client()->issue(spec).value();
  EXPECT_EQ(issuer_cn(chain_of(none.chain_pem)[1].get()), "Fake Root X1");
}

TEST_F(ClientTest, ReusesTheGivenKey) {
  auto c = client();
  auto const first = c->issue(spec_).value();
  auto const second = c->issue(spec_, {"", first.private_key_pem}).value();
  EXPECT_EQ(second.private_key_pem, first.private_key_pem);
  EXPECT_NE(second.serial, first.serial);
  auto const third = c->issue(spec_).value();
  EXPECT_NE(third.private_key_pem, first.private_key_pem);
}

TEST_F(ClientTest, KeyTypePerCertificate) {
  auto spec = spec_;
  spec.key_type = KeyType::rsa_3072;
  auto const record = client()->issue(spec).value();
  auto const key = parse_private_key(record.private_key_pem);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 3072);
}

TEST_F(ClientTest, ProblemDocumentWithSubproblemsIsKeptVerbatim) {
  auto const document = subproblems_document();
  ca_->inject["newOrder"].push_back(problem_response(400, document));
  auto const r = client()->issue(spec_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, "urn:ietf:params:acme:error:rejectedIdentifier");
  EXPECT_EQ(r.error().document, document);  // byte for byte
  EXPECT_NE(r.error().detail.find("edge.test: Domain name is on the blocklist"), std::string::npos);
  EXPECT_NE(r.error().detail.find("127.0.0.1: IP address is in a reserved range"), std::string::npos);
  EXPECT_EQ(r.error().status, 400);
}

TEST_F(ClientTest, RateLimitedCarriesRetryAfter) {
  ca_->inject["newOrder"].push_back(problem_response(
      429, R"({"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders recently","status":429})",
      "3600"));
  auto const r = client()->issue(spec_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::rate_limited);
  EXPECT_EQ(r.error().status, 429);
  EXPECT_EQ(r.error().retry_after, 3600s);
}

TEST_F(ClientTest, ServiceUnavailableCarriesRetryAfter) {
  auto busy = json_response(503, "<html>Service Unavailable</html>", "text/html");
  busy.headers.emplace_back("Retry-After", "120");
  ca_->inject["directory"].push_back(busy);
  auto const r = client()->issue(spec_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::http);
  EXPECT_EQ(r.error().status, 503);
  EXPECT_EQ(r.error().retry_after, 120s);
  EXPECT_EQ(ca_->requests(), 1u);  // nothing after the 503
}

TEST_F(ClientTest, ExternalAccountBindingIsHs256OverTheAccountKey) {
  ca_->external_account_required = true;
  issuer_.eab = ExternalAccountBinding{"kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"};
  ASSERT_TRUE(client()->ensure_account());
  auto const request = ca_->seen().back();
  ASSERT_EQ(request.endpoint, "newAccount");
  auto const binding = json::parse(request.payload).at("externalAccountBinding").as_object();
  auto const protected_b64 = std::string(binding.at("protected").as_string());
  auto const payload_b64 = std::string(binding.at("payload").as_string());
  auto const header = base64url_decode(protected_b64).value();
  auto const h = json::parse(std::string(header.begin(), header.end())).as_object();
  EXPECT_EQ(h.at("alg").as_string(), "HS256");
  EXPECT_EQ(h.at("kid").as_string(), "kid-1");
  EXPECT_EQ(h.at("url").as_string(), "https://ca.test/new-acct");
  EXPECT_FALSE(h.contains("nonce"));
  // Its payload is the outer JWS's jwk, and the MAC verifies with the key.
  auto const inner_payload = base64url_decode(payload_b64).value();
  EXPECT_EQ(json::parse(std::string(inner_payload.begin(), inner_payload.end())), request.header.at("jwk"));
  auto const mac_key = base64url_decode("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W").value();
  unsigned char mac[32];
  unsigned int length = 0;
  std::string const signing_input = protected_b64 + "." + payload_b64;
  HMAC(EVP_sha256(), mac_key.data(), static_cast<int>(mac_key.size()),
       reinterpret_cast<unsigned char const*>(signing_input.data()), signing_input.size(), mac, &length);
  EXPECT_EQ(binding.at("signature").as_string(), openssl_base64url({mac, mac + length}));
}

TEST_F(ClientTest, ExternalAccountRequiredWithoutBindingFailsClearly) {
  ca_->external_account_required = true;
  auto const r = client()->ensure_account();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::external_account_required);
  EXPECT_EQ(ca_->count("newAccount"), 0u);
}

TEST_F(ClientTest, Rs256AccountKey) {
  issuer_.account_key_type = KeyType::rsa_2048;
  ASSERT_TRUE(client()->issue(spec_));
  auto const seen = ca_->seen();
  for (auto const& s : seen) {
    if (s.method != HttpMethod::post) continue;
    EXPECT_EQ(s.header.at("alg").as_string(), "RS256") << s.endpoint;
  }
  auto const account = std::find_if(seen.begin(), seen.end(), [](auto const& s) { return s.endpoint == "newAccount"; });
  ASSERT_NE(account, seen.end());
  auto const jwk = account->header.at("jwk").as_object();
  EXPECT_EQ(jwk.at("kty").as_string(), "RSA");
  EXPECT_EQ(jwk.at("e").as_string(), "AQAB");
}

TEST_F(ClientTest, ResumesAnOrderInterruptedBeforeFinalizeWithTheSavedKey) {
  // The first run dies at finalize (here: the CA answers 503 and the
  // process "stops"); the order row keeps the key.
  ca_->inject["finalize"].push_back(json_response(503, "busy", "text/plain"));
  ASSERT_FALSE(client()->issue(spec_));
  auto const open = store_->certificate_orders("main", 1).value().at(0);
  EXPECT_EQ(open.status, "ready");
  ASSERT_FALSE(open.private_key_pem.empty());

  auto const record = client()->issue(spec_);  // "after the restart"
  ASSERT_TRUE(record) << record.error().message();
  EXPECT_EQ(ca_->count("newOrder"), 1u);  // resumed, not reordered
  EXPECT_EQ(record->private_key_pem, open.private_key_pem);
  EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).status, "valid");
}

TEST_F(ClientTest, ResumesAValidOrderWhoseCertificateWasNotDownloaded) {
  ca_->inject["cert"].push_back(json_response(503, "busy", "text/plain"));
  ASSERT_FALSE(client()->issue(spec_));
  EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).status, "valid");
  EXPECT_FALSE(store_->current_certificate("main").value());

  ASSERT_TRUE(client()->issue(spec_));
  EXPECT_EQ(ca_->count("newOrder"), 1u);
  EXPECT_EQ(ca_->count("finalize"), 1u);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 1);
}

TEST_F(ClientTest, AnOrderTheServerNoLongerHasIsReplacedInTheSameCall) {
  ca_->inject["finalize"].push_back(json_response(503, "busy", "text/plain"));
  ASSERT_FALSE(client()->issue(spec_));
  ca_->inject["order"].push_back(problem_response(
      404, R"({"type":"urn:ietf:params:acme:error:malformed","detail":"No order for ID","status":404})"));
  ASSERT_TRUE(client()->issue(spec_));
  EXPECT_EQ(ca_->count("newOrder"), 2u);
  auto const orders = store_->certificate_orders("main", 10).value();
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].status, "valid");
  EXPECT_EQ(orders[1].status, "abandoned");
}

TEST_F(ClientTest, KeyChangeIsAnInnerJwsSignedByTheNewKey) {
  auto c = client();
  auto const before = c->ensure_account().value();
  auto const after = c->roll_account_key();
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(after->account_url, before.account_url);
  EXPECT_NE(after->key_pem, before.key_pem);
  EXPECT_EQ(store_->account(ca_->directory_url()).value()->key_pem, after->key_pem);

  auto const request = ca_->seen().back();
  ASSERT_EQ(request.endpoint, "keyChange");
  EXPECT_EQ(request.header.at("kid").as_string(), before.account_url);  // outer: old key, kid
  auto const inner = json::parse(request.payload).as_object();
  auto const inner_header_bytes = base64url_decode(inner.at("protected").as_string()).value();
  auto const inner_header = json::parse(std::string(inner_header_bytes.begin(), inner_header_bytes.end())).as_object();
  EXPECT_EQ(inner_header.at("url").as_string(), "https://ca.test/key-change");
  EXPECT_TRUE(inner_header.contains("jwk"));
  EXPECT_FALSE(inner_header.contains("nonce"));
  EXPECT_FALSE(inner_header.contains("kid"));
  auto const inner_payload_bytes = base64url_decode(inner.at("payload").as_string()).value();
  auto const inner_payload = json::parse(std::string(inner_payload_bytes.begin(), inner_payload_bytes.end())).as_object();
  EXPECT_EQ(inner_payload.at("account").as_string(), before.account_url);
  auto const old_key = parse_private_key(before.key_pem);
  EXPECT_EQ(json::serialize(inner_payload.at("oldKey")), jwk_json(old_key.get()).value());
  auto const new_key = parse_private_key(after->key_pem);
  EXPECT_EQ(json::serialize(inner_header.at("jwk")), jwk_json(new_key.get()).value());

  // Later requests are signed by the new key.
  ASSERT_TRUE(c->issue(spec_));
}

TEST_F(ClientTest, DeactivationThenANewAccount) {
  auto c = client();
  auto const first = c->ensure_account().value();
  ASSERT_TRUE(c->deactivate_account());
  auto const request = ca_->seen().back();
  EXPECT_EQ(request.url, first.account_url);
  EXPECT_EQ(json::parse(request.payload), json::parse(R"({"status":"deactivated"})"));
  EXPECT_EQ(store_->account(ca_->directory_url()).value()->status, "deactivated");
  auto const second = client()->ensure_account().value();
  EXPECT_NE(second.account_url, first.account_url);
  EXPECT_EQ(store_->account(ca_->directory_url()).value()->status, "valid");
}

TEST_F(ClientTest, RevocationSendsTheLeafAndTheReason) {
  auto c = client();
  auto const record = c->issue(spec_).value();
  ASSERT_TRUE(c->revoke(record.chain_pem, revocation_reason_code("keyCompromise").value()));
  EXPECT_EQ(json::parse(ca_->seen().back().payload).at("reason").as_int64(), 1);
  EXPECT_EQ(ca_->revoked_serials(), std::set<std::string>{record.serial});
}

TEST_F(ClientTest, ContactUpdateWhenTheConfigurationChangesIt) {
  ASSERT_TRUE(client()->ensure_account());
  issuer_.contact = {"mailto:noc@edge.test"};
  ASSERT_TRUE(client()->ensure_account());
  auto const request = ca_->seen().back();
  EXPECT_EQ(request.endpoint, "acct");
  EXPECT_EQ(json::parse(request.payload), json::parse(R"({"contact":["mailto:noc@edge.test"]})"));
  EXPECT_EQ(store_->account(ca_->directory_url()).value()->contact_json, R"(["mailto:noc@edge.test"])");
}

TEST(RevocationReason, Rfc5280Names) {
  EXPECT_EQ(revocation_reason_code("unspecified"), 0);
  EXPECT_EQ(revocation_reason_code("keyCompromise"), 1);
  EXPECT_EQ(revocation_reason_code("affiliationChanged"), 3);
  EXPECT_EQ(revocation_reason_code("superseded"), 4);
  EXPECT_EQ(revocation_reason_code("cessationOfOperation"), 5);
  EXPECT_FALSE(revocation_reason_code("certificateHold"));  // not for ACME
}

}  // namespace
}  // namespace edge::acme
