#pragma once
// When to renew and how long to wait after a failure: the scheduler's rules,
// kept free of threads, clocks and I/O so they can be tested directly. Times
// are Unix seconds; randomness comes in as numbers in [0, 1).
#include <edge/acme/config.hpp>
#include <edge/store/records.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme {

// Why `spec` needs a new certificate whatever the renewal plan says, or
// nullopt: none yet, or its identifiers changed (compared as sets).
std::optional<std::string> reason_to_replace(std::optional<store::CertificateRecord> const& current,
                                             CertificateSpec const& spec);

// A point in time to renew one certificate, and why then.
struct RenewalPlan {
  std::int64_t at = 0;
  std::string reason;
};

// Certificates shorter than this renew at half their lifetime, longer ones
// when a third is left (Let's Encrypt's advice for 90-day certificates).
inline constexpr std::int64_t short_lived_seconds = 10 * 86400;

// The lifetime rule: a third (half when short-lived) of the lifetime left,
// moved earlier by up to a tenth of that remainder times `jitter` so that a
// fleet does not renew in the same second.
RenewalPlan lifetime_plan(std::int64_t not_before, std::int64_t not_after, double jitter);

// ARI (RFC 9773 section 4.2): a uniformly random time inside the suggested
// window; `now` when the window has passed.
RenewalPlan ari_plan(std::int64_t window_start, std::int64_t window_end, double random,
                     std::int64_t now);

// The wait after the `failures`-th consecutive failure (1 = first): the
// schedule's entry (the last one repeats) times 0.9..1.1 by `jitter`, or the
// server's Retry-After when that is longer (never earlier than it asked).
std::chrono::seconds retry_delay(std::int64_t failures,
                                 std::vector<std::chrono::seconds> const& schedule,
                                 std::optional<std::chrono::seconds> retry_after, double jitter);

// ISO 8601 UTC, e.g. 2026-11-22T23:59:02Z, for logs and reasons.
std::string utc_time(std::int64_t unix_seconds);
// RFC 3339 date-time (Z or numeric offset, optional fraction) to Unix
// seconds (fraction dropped); nullopt when malformed.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);
// "2 d 3 h", "45 min", "12 s": durations in reasons and logs.
std::string human_duration(std::int64_t seconds);

}  // namespace edge::acme
