#pragma once
// When to issue and how long to wait after a failure: the scheduler's rules,
// kept free of threads and I/O so they can be tested directly.
#include <edge/acme/config.hpp>
#include <edge/store/records.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace edge::acme {

// Why `spec` needs a new certificate at `now` (Unix seconds), or nullopt when
// `current` is fine: none yet, identifiers changed (compared as sets), less
// than a third of its lifetime left, or the operator asked (`forced`).
std::optional<std::string> reason_to_issue(std::optional<store::CertificateRecord> const& current,
                                           CertificateSpec const& spec, bool forced,
                                           std::int64_t now);

inline constexpr std::chrono::seconds first_backoff{5};

// ISO 8601 UTC, e.g. 2026-11-22T23:59:02Z, for log lines.
std::string utc_time(std::int64_t unix_seconds);

// 5 s after the first failure, then doubling, never above `max_backoff`.
std::chrono::seconds next_backoff(std::chrono::seconds previous, std::chrono::seconds max_backoff);

// The wait before the next attempt: the backoff, or the server's Retry-After
// when longer, plus `jitter` (0..1) times 10 % so that many edges behind one
// CA do not retry in step.
std::chrono::milliseconds retry_delay(std::chrono::seconds backoff,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter);

}  // namespace edge::acme
