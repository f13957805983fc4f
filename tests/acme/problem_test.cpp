#include "problem.hpp"

#include <gtest/gtest.h>

namespace edge::acme {
namespace {

using std::chrono::seconds;

HttpResponse problem_response(int status, std::string body,
                              std::vector<std::pair<std::string, std::string>> extra = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = {{"Cache-Control", "public, max-age=0, no-cache"},
               {"Content-Type", "application/problem+json; charset=utf-8"},
               {"Link", "<https://127.0.0.1:14000/dir>;rel=\"index\""},
               {"Replay-Nonce", "zDo8-DhUbZ6NAmlW4NHdRA"}};
  for (auto& h : extra) r.headers.push_back(std::move(h));
  return r;
}

TEST(RetryAfter, DeltaSeconds) {
  EXPECT_EQ(parse_retry_after("120"), seconds(120));
  EXPECT_EQ(parse_retry_after(" 0 "), seconds(0));
  EXPECT_FALSE(parse_retry_after("-5"));
  EXPECT_FALSE(parse_retry_after("soon"));
  EXPECT_FALSE(parse_retry_after(""));
}

TEST(RetryAfter, HttpDate) {
  auto const now = std::chrono::system_clock::from_time_t(784111717);  // Sun, 06 Nov 1994 08:48:37 GMT
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(60));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), seconds(0));
}

// Found by fuzz_acme_responses under UBSan: a year-1 date overflowed the
// clock's nanoseconds; a far future or a huge delta is capped.
TEST(RetryAfter, DatesOutsideTheClockRangeAndHugeDeltas) {
  auto const now = std::chrono::system_clock::from_time_t(784111717);
  EXPECT_EQ(parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT", now), seconds(0));
  auto const far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
  ASSERT_TRUE(far);
  EXPECT_LE(*far, seconds(10LL * 366 * 24 * 3600));
  EXPECT_EQ(parse_retry_after("9223372036854775807", now), seconds(10LL * 366 * 24 * 3600));
}

TEST(Problem, PebbleBadNonce) {
  auto const e = error_from_response(
      problem_response(400, R"({
  "type": "urn:ietf:params:acme:error:badNonce",
  "detail": "JWS has an invalid anti-replay nonce: \"pkXAN1bVCy8FTL2_6jwqvg\"",
  "status": 400
})"),
      "");
  EXPECT_EQ(e.type, problem::bad_nonce);
  EXPECT_EQ(e.detail, "JWS has an invalid anti-replay nonce: \"pkXAN1bVCy8FTL2_6jwqvg\"");
  EXPECT_EQ(e.status, 400);
  EXPECT_FALSE(e.retry_after);
}

TEST(Problem, RateLimitedWithRetryAfter) {
  auto const e = error_from_response(
      problem_response(429,
                       R"({"type":"urn:ietf:params:acme:error:rateLimited",)"
                       R"("detail":"too many certificates","status":429})",
                       {{"Retry-After", "3600"}}),
      "newOrder");
  EXPECT_EQ(e.type, problem::rate_limited);
  EXPECT_EQ(e.detail, "newOrder: too many certificates");
  EXPECT_EQ(e.status, 429);
  EXPECT_EQ(e.retry_after, seconds(3600));
  EXPECT_NE(e.message().find("retry after 3600 s"), std::string::npos);
  EXPECT_NE(e.message().find("rateLimited"), std::string::npos);
}

TEST(Problem, Subproblems) {
  auto const e = error_from_response(problem_response(400, R"({
    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
    "detail": "Some identifiers were rejected",
    "status": 400,
    "subproblems": [
      {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
       "detail": "not allowed", "identifier": {"type": "dns", "value": "bad.example"}}
    ]})"),
                                     "");
  EXPECT_EQ(e.type, "urn:ietf:params:acme:error:rejectedIdentifier");
  EXPECT_EQ(e.detail, "Some identifiers were rejected; bad.example: not allowed");
}

TEST(Problem, NonProblemErrorKeepsStatusAndBodyStart) {
  HttpResponse r;
  r.status = 502;
  r.body = "<html>Bad Gateway</html>";
  r.headers = {{"Content-Type", "text/html"}, {"Retry-After", "30"}};
  auto const e = error_from_response(r, "directory");
  EXPECT_EQ(e.type, problem::http);
  EXPECT_EQ(e.status, 502);
  EXPECT_EQ(e.retry_after, seconds(30));
  EXPECT_NE(e.detail.find("directory: HTTP 502"), std::string::npos);
}

TEST(Problem, EmbeddedChallengeError) {
  auto const e = parse_problem_json(
      R"({"type":"urn:ietf:params:acme:error:tls","detail":"remote error: tls: no application protocol","status":400})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, "urn:ietf:params:acme:error:tls");
  EXPECT_EQ(e->status, 400);
  EXPECT_FALSE(parse_problem_json("[]"));
  EXPECT_FALSE(parse_problem_json("nope"));
}

TEST(Problem, ThrowsReadableExceptionFromResult) {
  AcmeResult<int> r = AcmeError{problem::timeout, "gave up", 0, std::nullopt};
  try {
    (void)r.value();
    FAIL() << "value() should throw";
  } catch (std::runtime_error const& e) {
    EXPECT_STREQ(e.what(), "gave up (urn:edge:error:timeout)");
  }
}

}  // namespace
}  // namespace edge::acme
