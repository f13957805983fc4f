// The request rules of RFC 8555 section 6 (nonces, badNonce retry, exact URL,
// POST-as-GET, problem documents) against recorded Pebble-like answers. A
// fake transport is right here: these are the client's transport rules, not
// the CA's behaviour (that is what acme_pebble_tests is for).
#include "acme_session.hpp"
#include "base64url.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <deque>

namespace edge::acme {
namespace {

namespace json = boost::json;

constexpr char const* directory_url = "https://127.0.0.1:14000/dir";
constexpr char const* directory_body = R"({
   "keyChange": "https://127.0.0.1:14000/rollover-account-key",
   "meta": {
      "externalAccountRequired": false,
      "termsOfService": "data:text/plain,Do%20what%20thou%20wilt"
   },
   "newAccount": "https://127.0.0.1:14000/sign-me-up",
   "newNonce": "https://127.0.0.1:14000/nonce-plz",
   "newOrder": "https://127.0.0.1:14000/order-plz",
   "revokeCert": "https://127.0.0.1:14000/revoke-cert"
})";

HttpResponse response(int status, std::string body, std::string nonce,
                      std::string content_type = "application/json; charset=utf-8") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "public, max-age=0, no-cache");
  if (!content_type.empty()) r.headers.emplace_back("Content-Type", std::move(content_type));
  r.headers.emplace_back("Link", "<https://127.0.0.1:14000/dir>;rel=\"index\"");
  if (!nonce.empty()) r.headers.emplace_back("Replay-Nonce", std::move(nonce));
  return r;
}

HttpResponse bad_nonce(std::string next_nonce) {
  return response(400,
                  R"({"type":"urn:ietf:params:acme:error:badNonce",)"
                  R"("detail":"JWS has an invalid anti-replay nonce","status":400})",
                  std::move(next_nonce), "application/problem+json; charset=utf-8");
}

class ScriptedTransport final : public HttpTransport {
 public:
  std::deque<HttpResponse> script;
  std::vector<HttpRequest> requests;

  AcmeResult<HttpResponse> perform(HttpRequest const& request) override {
    requests.push_back(request);
    if (script.empty()) return AcmeError{problem::transport, "script exhausted"};
    auto r = std::move(script.front());
    script.pop_front();
    return r;
  }
};

struct SentJws {
  json::object header;
  std::string payload;
};

SentJws sent(HttpRequest const& request) {
  auto const body = json::parse(request.body).as_object();
  auto const header = base64url_decode(body.at("protected").as_string());
  auto const payload = base64url_decode(body.at("payload").as_string());
  EXPECT_TRUE(header && payload);
  return {json::parse(std::string(header->begin(), header->end())).as_object(),
          std::string(payload->begin(), payload->end())};
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = generate_account_key();
    ASSERT_TRUE(key);
    session.set_account(std::move(*key), "https://127.0.0.1:14000/my-account/1");
    transport.script.push_back(response(200, directory_body, ""));
  }
  ScriptedTransport transport;
  AcmeSession session{transport, directory_url};
};

TEST(Directory, ParsesPebbleDirectory) {
  auto const d = parse_directory(directory_body);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->new_nonce, "https://127.0.0.1:14000/nonce-plz");
  EXPECT_EQ(d->new_account, "https://127.0.0.1:14000/sign-me-up");
  EXPECT_EQ(d->new_order, "https://127.0.0.1:14000/order-plz");
  EXPECT_EQ(d->key_change, "https://127.0.0.1:14000/rollover-account-key");
  EXPECT_EQ(d->renewal_info, "");
  EXPECT_FALSE(d->external_account_required);
  EXPECT_FALSE(parse_directory(R"({"newNonce":"x"})"));
  EXPECT_FALSE(parse_directory("<html>"));
}

TEST_F(SessionTest, FetchesNonceFirstThenReusesReplayNonce) {
  std::string const order_url = "https://127.0.0.1:14000/my-order/QbdG";
  transport.script.push_back(response(200, "", "nonce-A", ""));  // HEAD newNonce
  transport.script.push_back(response(200, R"({"status":"pending"})", "nonce-B"));
  transport.script.push_back(response(200, R"({"status":"ready"})", "nonce-C"));

  ASSERT_TRUE(session.post_as_get(order_url));
  ASSERT_TRUE(session.post(order_url, "{}"));

  ASSERT_EQ(transport.requests.size(), 4u);
  EXPECT_EQ(transport.requests[0].method, HttpMethod::get);
  EXPECT_EQ(transport.requests[0].url, directory_url);
  EXPECT_EQ(transport.requests[1].method, HttpMethod::head);
  EXPECT_EQ(transport.requests[1].url, "https://127.0.0.1:14000/nonce-plz");
  for (int i : {2, 3}) {
    EXPECT_EQ(transport.requests[i].method, HttpMethod::post);
    EXPECT_EQ(transport.requests[i].url, order_url);
    EXPECT_EQ(transport.requests[i].content_type, "application/jose+json");
  }
  auto const first = sent(transport.requests[2]);
  EXPECT_EQ(first.header.at("nonce").as_string(), "nonce-A");
  EXPECT_EQ(first.header.at("url").as_string(), order_url);  // exactly the request URL
  EXPECT_EQ(first.header.at("kid").as_string(), "https://127.0.0.1:14000/my-account/1");
  EXPECT_EQ(first.payload, "");  // POST-as-GET
  auto const second = sent(transport.requests[3]);
  EXPECT_EQ(second.header.at("nonce").as_string(), "nonce-B");  // no second HEAD
  EXPECT_EQ(second.payload, "{}");
}

TEST_F(SessionTest, RetriesBadNonceWithTheNonceFromTheRejection) {
  std::string const url = "https://127.0.0.1:14000/chalZ/abc";
  transport.script.push_back(response(200, "", "nonce-1", ""));
  transport.script.push_back(bad_nonce("nonce-2"));
  transport.script.push_back(bad_nonce("nonce-3"));
  transport.script.push_back(response(200, R"({"status":"processing"})", "nonce-4"));

  auto const r = session.post(url, "{}");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body, R"({"status":"processing"})");
  EXPECT_EQ(session.bad_nonce_retries(), 2);

  ASSERT_EQ(transport.requests.size(), 5u);
  EXPECT_EQ(sent(transport.requests[2]).header.at("nonce").as_string(), "nonce-1");
  EXPECT_EQ(sent(transport.requests[3]).header.at("nonce").as_string(), "nonce-2");
  EXPECT_EQ(sent(transport.requests[4]).header.at("nonce").as_string(), "nonce-3");
  for (int i : {2, 3, 4}) EXPECT_EQ(sent(transport.requests[i]).payload, "{}");

  // The nonce of the success is used next, without asking newNonce.
  transport.script.push_back(response(200, "{}", "nonce-5"));
  ASSERT_TRUE(session.post(url, "{}"));
  EXPECT_EQ(sent(transport.requests.back()).header.at("nonce").as_string(), "nonce-4");
}

TEST_F(SessionTest, BadNonceWithoutNewNonceAsksNewNonce) {
  transport.script.push_back(response(200, "", "nonce-1", ""));
  transport.script.push_back(bad_nonce(""));
  transport.script.push_back(response(200, "", "nonce-2", ""));  // HEAD again
  transport.script.push_back(response(200, "{}", "nonce-3"));
  ASSERT_TRUE(session.post("https://127.0.0.1:14000/x", "{}"));
  ASSERT_EQ(transport.requests.size(), 5u);
  EXPECT_EQ(transport.requests[3].method, HttpMethod::head);
  EXPECT_EQ(sent(transport.requests[4]).header.at("nonce").as_string(), "nonce-2");
}

TEST_F(SessionTest, GivesUpAfterMaxBadNonceRetries) {
  constexpr int attempts = AcmeSession::max_bad_nonce_retries + 1;
  transport.script.push_back(response(200, "", "n0", ""));
  for (int i = 1; i <= attempts; ++i)
    transport.script.push_back(bad_nonce("n" + std::to_string(i)));
  auto const r = session.post("https://127.0.0.1:14000/x", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::bad_nonce);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(session.bad_nonce_retries(), AcmeSession::max_bad_nonce_retries);
  EXPECT_EQ(transport.requests.size(), 2u + attempts);  // directory, HEAD, the POSTs
  EXPECT_TRUE(transport.script.empty());
}

TEST_F(SessionTest, OtherProblemsAreNotRetriedAndKeepTheirNonce) {
  transport.script.push_back(response(200, "", "n1", ""));
  auto problem = response(403,
                          R"({"type":"urn:ietf:params:acme:error:unauthorized",)"
                          R"("detail":"account is not the owner","status":403})",
                          "n2", "application/problem+json");
  problem.headers.emplace_back("Retry-After", "7");
  transport.script.push_back(problem);
  auto const r = session.post("https://127.0.0.1:14000/x", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, "urn:ietf:params:acme:error:unauthorized");
  EXPECT_EQ(r.error().detail, "account is not the owner");
  EXPECT_EQ(r.error().status, 403);
  EXPECT_EQ(r.error().retry_after, std::chrono::seconds(7));
  EXPECT_EQ(transport.requests.size(), 3u);

  transport.script.push_back(response(200, "{}", "n3"));
  ASSERT_TRUE(session.post("https://127.0.0.1:14000/x", ""));
  EXPECT_EQ(sent(transport.requests.back()).header.at("nonce").as_string(), "n2");
}

TEST_F(SessionTest, IgnoresMalformedReplayNonce) {
  transport.script.push_back(response(200, "", "n1", ""));
  transport.script.push_back(response(200, "{}", "not a nonce!"));
  transport.script.push_back(response(200, "", "n2", ""));
  transport.script.push_back(response(200, "{}", "n3"));
  ASSERT_TRUE(session.post("https://127.0.0.1:14000/x", ""));
  ASSERT_TRUE(session.post("https://127.0.0.1:14000/x", ""));
  EXPECT_EQ(transport.requests[3].method, HttpMethod::head);
}

TEST_F(SessionTest, NewAccountIsSignedWithJwk) {
  auto key = generate_account_key();
  ASSERT_TRUE(key);
  session.set_account(std::move(*key), "");
  transport.script.push_back(response(200, "", "n1", ""));
  auto created = response(201, R"({"status":"valid"})", "n2");
  created.headers.emplace_back("Location", "https://127.0.0.1:14000/my-account/2");
  transport.script.push_back(created);
  auto const r = session.post("https://127.0.0.1:14000/sign-me-up", R"({"termsOfServiceAgreed":true})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("location"), "https://127.0.0.1:14000/my-account/2");
  auto const jws = sent(transport.requests.back());
  EXPECT_TRUE(jws.header.contains("jwk"));
  EXPECT_FALSE(jws.header.contains("kid"));
}

TEST_F(SessionTest, TransportFailureIsReported) {
  // Script ends after the directory: the HEAD fails.
  auto const r = session.post("https://127.0.0.1:14000/x", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().type, problem::transport);
}

TEST(HttpResponse, HeaderLookupIsCaseInsensitiveAndLinkMayRepeat) {
  HttpResponse r;
  r.headers = {{"Link", "<https://a/1>;rel=\"up\""},
               {"replay-nonce", "abc"},
               {"LINK", "<https://a/dir>;rel=\"index\""}};
  EXPECT_EQ(r.header("Replay-Nonce"), "abc");
  EXPECT_EQ(r.headers_named("link").size(), 2u);
  EXPECT_FALSE(r.header("Location"));
}

}  // namespace
}  // namespace edge::acme
