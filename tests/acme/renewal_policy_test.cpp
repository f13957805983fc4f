#include "renewal_policy.hpp"

#include <gtest/gtest.h>

namespace edge::acme {
namespace {

using namespace std::chrono_literals;

store::CertificateRecord certificate(std::int64_t not_before, std::int64_t not_after,
                                     std::vector<std::string> identifiers) {
  store::CertificateRecord r;
  r.name = "main";
  r.identifiers = std::move(identifiers);
  r.not_before = not_before;
  r.not_after = not_after;
  return r;
}

CertificateSpec const spec{"main", {"edge.test", "127.0.0.1", "::1"}};

TEST(ReasonToIssue, NoCertificate) {
  EXPECT_EQ(reason_to_issue(std::nullopt, spec, false, 1000), "no certificate");
}

TEST(ReasonToIssue, FreshCertificateIsKept) {
  auto const c = certificate(0, 90, {"::1", "127.0.0.1", "EDGE.test"});
  EXPECT_FALSE(reason_to_issue(c, spec, false, 0));
  EXPECT_FALSE(reason_to_issue(c, spec, false, 59));
}

TEST(ReasonToIssue, RenewsWithAThirdOfTheLifetimeLeft) {
  auto const c = certificate(0, 90, spec.identifiers);
  auto const reason = reason_to_issue(c, spec, false, 60);
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->rfind("renewal due", 0), 0u) << *reason;
  EXPECT_TRUE(reason_to_issue(c, spec, false, 1000));  // expired
  // 90-day certificate: renewed 30 days before it expires.
  std::int64_t const day = 86400;
  auto const le = certificate(0, 90 * day, spec.identifiers);
  EXPECT_FALSE(reason_to_issue(le, spec, false, 60 * day - 1));
  EXPECT_TRUE(reason_to_issue(le, spec, false, 60 * day));
}

TEST(ReasonToIssue, IdentifierSetChanged) {
  auto const c = certificate(0, 90, {"edge.test", "127.0.0.1"});
  EXPECT_EQ(reason_to_issue(c, spec, false, 0), "identifiers changed");
}

TEST(ReasonToIssue, ForcedAlwaysIssues) {
  auto const c = certificate(0, 90, spec.identifiers);
  EXPECT_EQ(reason_to_issue(c, spec, true, 0), "renewal requested");
}

TEST(Backoff, StartsAtFiveSecondsDoublesAndCaps) {
  EXPECT_EQ(next_backoff(0s, 3600s), 5s);
  EXPECT_EQ(next_backoff(5s, 3600s), 10s);
  EXPECT_EQ(next_backoff(10s, 3600s), 20s);
  EXPECT_EQ(next_backoff(2560s, 3600s), 3600s);
  EXPECT_EQ(next_backoff(3600s, 3600s), 3600s);
  EXPECT_EQ(next_backoff(0s, 2s), 2s);
}

TEST(Backoff, RetryAfterAndJitter) {
  EXPECT_EQ(retry_delay(10s, std::nullopt, 0.0), 10s);
  EXPECT_EQ(retry_delay(10s, std::nullopt, 1.0), 11s);
  EXPECT_EQ(retry_delay(10s, 120s, 0.0), 120s);  // the server asked for longer
  EXPECT_EQ(retry_delay(10s, 3s, 0.0), 10s);     // never shorter than our backoff
  EXPECT_EQ(retry_delay(10s, std::nullopt, 5.0), 11s);
}

TEST(UtcTime, Iso8601) {
  EXPECT_EQ(utc_time(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_time(784111777), "1994-11-06T08:49:37Z");
}

}  // namespace
}  // namespace edge::acme
