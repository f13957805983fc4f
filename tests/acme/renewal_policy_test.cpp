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
constexpr std::int64_t day = 86400;
std::vector<std::chrono::seconds> const schedule{60s, 600s, 6000s, 86400s};

TEST(ReasonToReplace, NoCertificateOrOtherIdentifiers) {
  EXPECT_EQ(reason_to_replace(std::nullopt, spec), "no certificate");
  EXPECT_EQ(reason_to_replace(certificate(0, 90, {"edge.test", "127.0.0.1"}), spec),
            "identifiers changed");
  // Order, case and IP spelling do not matter.
  EXPECT_FALSE(reason_to_replace(certificate(0, 90, {"::1", "127.0.0.1", "EDGE.test"}), spec));
  EXPECT_FALSE(reason_to_replace(certificate(0, 90, {"0:0::1", "127.0.0.1", "edge.test"}), spec));
}

TEST(LifetimePlan, ThirdOfA90DayLifetimeLeft) {
  auto const p = lifetime_plan(0, 90 * day, 0.0);
  EXPECT_EQ(p.at, 60 * day);
  EXPECT_NE(p.reason.find("a third of the 90 d lifetime"), std::string::npos) << p.reason;
  // Jitter moves it earlier by at most a tenth of the remaining third (3 days).
  EXPECT_EQ(lifetime_plan(0, 90 * day, 1.0).at, 57 * day);
  auto const mid = lifetime_plan(0, 90 * day, 0.5).at;
  EXPECT_GT(mid, 57 * day);
  EXPECT_LT(mid, 60 * day);
}

TEST(LifetimePlan, HalfOfAShortLifetimeLeft) {
  // 120-second certificates (the acceptance test): renewed 60 s in, up to 6 s earlier.
  auto const p = lifetime_plan(1000, 1120, 0.0);
  EXPECT_EQ(p.at, 1060);
  EXPECT_NE(p.reason.find("half of the 120 s lifetime"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("short-lived"), std::string::npos);
  EXPECT_EQ(lifetime_plan(1000, 1120, 1.0).at, 1054);
  // Six-day certificates (Let's Encrypt's shortlived profile) are short-lived too...
  EXPECT_EQ(lifetime_plan(0, 6 * day, 0.0).at, 3 * day);
  // ...ten days and more are not.
  EXPECT_EQ(lifetime_plan(0, 12 * day, 0.0).at, 8 * day);
}

TEST(LifetimePlan, DegenerateCertificateIsDueAtExpiry) {
  EXPECT_EQ(lifetime_plan(500, 500, 0.3).at, 500);
}

TEST(AriPlan, RandomPointInsideTheWindow) {
  auto const p = ari_plan(1000, 2000, 0.0, 0);
  EXPECT_EQ(p.at, 1000);
  EXPECT_EQ(ari_plan(1000, 2000, 0.5, 0).at, 1500);
  EXPECT_EQ(ari_plan(1000, 2000, 0.999, 0).at, 1999);
  EXPECT_EQ(p.reason, "ARI window 1970-01-01T00:16:40Z .. 1970-01-01T00:33:20Z");
  // A window in the past means now.
  EXPECT_EQ(ari_plan(1000, 2000, 0.5, 5000).at, 5000);
}

TEST(RetryDelay, AboutOneMinuteTenMinutesHundredMinutesThenDaily) {
  EXPECT_EQ(retry_delay(1, schedule, std::nullopt, 0.5), 60s);
  EXPECT_EQ(retry_delay(2, schedule, std::nullopt, 0.5), 600s);
  EXPECT_EQ(retry_delay(3, schedule, std::nullopt, 0.5), 6000s);
  EXPECT_EQ(retry_delay(4, schedule, std::nullopt, 0.5), 86400s);
  EXPECT_EQ(retry_delay(5, schedule, std::nullopt, 0.5), 86400s);
  EXPECT_EQ(retry_delay(400, schedule, std::nullopt, 0.5), 86400s);
}

TEST(RetryDelay, JitterIsTenPercentEitherWay) {
  EXPECT_EQ(retry_delay(1, schedule, std::nullopt, 0.0), 54s);
  EXPECT_EQ(retry_delay(1, schedule, std::nullopt, 1.0), 66s);
  EXPECT_EQ(retry_delay(4, schedule, std::nullopt, 0.0), 77760s);
  EXPECT_EQ(retry_delay(4, schedule, std::nullopt, 1.0), 95040s);
  EXPECT_EQ(retry_delay(1, schedule, std::nullopt, 7.0), 66s);  // clamped
}

TEST(RetryDelay, RetryAfterIsNeverCutShort) {
  EXPECT_EQ(retry_delay(1, schedule, 3600s, 0.5), 3600s);  // the server asked for longer
  EXPECT_EQ(retry_delay(1, schedule, 3600s, 1.0), 3600s);
  EXPECT_EQ(retry_delay(2, schedule, 30s, 0.5), 600s);  // our backoff is longer
}

TEST(Time, Iso8601AndRfc3339) {
  EXPECT_EQ(utc_time(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_time(784111777), "1994-11-06T08:49:37Z");
  EXPECT_EQ(parse_rfc3339("1994-11-06T08:49:37Z"), 784111777);
  EXPECT_EQ(parse_rfc3339("1994-11-06T08:49:37.123456Z"), 784111777);
  EXPECT_EQ(parse_rfc3339("1994-11-06T10:49:37+02:00"), 784111777);
  EXPECT_EQ(parse_rfc3339("1994-11-06T03:49:37-05:00"), 784111777);
  EXPECT_FALSE(parse_rfc3339("1994-11-06 08:49:37"));
  EXPECT_FALSE(parse_rfc3339("1994-13-06T08:49:37Z"));
  EXPECT_FALSE(parse_rfc3339("yesterday"));
  EXPECT_FALSE(parse_rfc3339(""));
}

TEST(Time, HumanDuration) {
  EXPECT_EQ(human_duration(59), "59 s");
  EXPECT_EQ(human_duration(600), "10 min");
  EXPECT_EQ(human_duration(6000), "100 min");
  EXPECT_EQ(human_duration(86400), "24 h");
  EXPECT_EQ(human_duration(90 * day), "90 d");
}

}  // namespace
}  // namespace edge::acme
