#include "renewal_policy.hpp"

#include "identifiers.hpp"

#include <algorithm>
#include <ctime>

namespace edge::acme {

std::string utc_time(std::int64_t unix_seconds) {
  std::time_t const t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::optional<std::string> reason_to_issue(std::optional<store::CertificateRecord> const& current,
                                           CertificateSpec const& spec, bool forced,
                                           std::int64_t now) {
  if (forced) return "renewal requested";
  if (!current) return "no certificate";
  if (!same_identifier_set(current->identifiers, spec.identifiers)) return "identifiers changed";
  // A third of the lifetime left, as Let's Encrypt suggests for 90-day
  // certificates; scales down to the short validities tests use.
  auto const lifetime = current->not_after - current->not_before;
  if (now >= current->not_after - lifetime / 3)
    return "renewal due (expires " + utc_time(current->not_after) + ")";
  return std::nullopt;
}

std::chrono::seconds next_backoff(std::chrono::seconds previous, std::chrono::seconds max_backoff) {
  auto const next = previous.count() <= 0 ? first_backoff : previous * 2;
  return std::min(next, max_backoff);
}

std::chrono::milliseconds retry_delay(std::chrono::seconds backoff,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter) {
  std::chrono::milliseconds delay = backoff;
  if (retry_after && *retry_after > delay) delay = *retry_after;
  jitter = std::clamp(jitter, 0.0, 1.0);
  return delay + std::chrono::milliseconds(
                     static_cast<std::int64_t>(static_cast<double>(delay.count()) * 0.1 * jitter));
}

}  // namespace edge::acme
