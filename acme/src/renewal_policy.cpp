#include "renewal_policy.hpp"

#include "identifiers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
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

namespace {

bool digits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  auto const* first = text.data() + pos;
  auto const [end, ec] = std::from_chars(first, first + count, out);
  return ec == std::errc{} && end == first + count;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 20 || !digits(text, 0, 4, year) || text[4] != '-' ||
      !digits(text, 5, 2, month) || text[7] != '-' || !digits(text, 8, 2, day) ||
      (text[10] != 'T' && text[10] != 't') || !digits(text, 11, 2, hour) || text[13] != ':' ||
      !digits(text, 14, 2, minute) || text[16] != ':' || !digits(text, 17, 2, second))
    return std::nullopt;
  std::size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    std::size_t const start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  int offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh = 0, om = 0;
    if (!digits(text, pos + 1, 2, oh) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !digits(text, pos + 4, 2, om))
      return std::nullopt;
    offset = (oh * 60 + om) * 60 * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm)) - offset;
}

std::string human_duration(std::int64_t seconds) {
  if (seconds < 0) {
    // Not "-" + ...: GCC 12 -O2 warns (-Wrestrict) on that, falsely.
    std::string negative = human_duration(-seconds);
    negative.insert(negative.begin(), '-');
    return negative;
  }
  if (seconds < 600) return std::to_string(seconds) + " s";
  if (seconds < 7200) return std::to_string(seconds / 60) + " min";
  if (seconds < 2 * 86400) return std::to_string(seconds / 3600) + " h";
  return std::to_string(seconds / 86400) + " d";
}

std::optional<std::string> reason_to_replace(std::optional<store::CertificateRecord> const& current,
                                             CertificateSpec const& spec) {
  if (!current) return "no certificate";
  if (!same_identifier_set(current->identifiers, spec.identifiers)) return "identifiers changed";
  return std::nullopt;
}

RenewalPlan lifetime_plan(std::int64_t not_before, std::int64_t not_after, double jitter) {
  auto const lifetime = std::max<std::int64_t>(not_after - not_before, 0);
  bool const short_lived = lifetime < short_lived_seconds;
  auto const remaining = short_lived ? lifetime / 2 : lifetime / 3;
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto const early = static_cast<std::int64_t>(std::floor(static_cast<double>(remaining) / 10.0 * jitter));
  RenewalPlan plan;
  plan.at = not_after - remaining - early;
  plan.reason = std::string("lifetime rule: ") + (short_lived ? "half" : "a third") + " of the " +
                human_duration(lifetime) + " lifetime left" +
                (short_lived ? " (short-lived certificate)" : "") + ", expires " +
                utc_time(not_after);
  return plan;
}

RenewalPlan ari_plan(std::int64_t window_start, std::int64_t window_end, double random,
                     std::int64_t now) {
  random = std::clamp(random, 0.0, 1.0);
  RenewalPlan plan;
  auto const width = std::max<std::int64_t>(window_end - window_start, 0);
  plan.at = window_start + static_cast<std::int64_t>(std::floor(static_cast<double>(width) * random));
  if (window_end <= now) plan.at = now;
  plan.reason = "ARI window " + utc_time(window_start) + " .. " + utc_time(window_end);
  return plan;
}

std::chrono::seconds retry_delay(std::int64_t failures,
                                 std::vector<std::chrono::seconds> const& schedule,
                                 std::optional<std::chrono::seconds> retry_after, double jitter) {
  std::chrono::seconds base{60};
  if (!schedule.empty()) {
    auto const index = static_cast<std::size_t>(std::clamp<std::int64_t>(
        failures - 1, 0, static_cast<std::int64_t>(schedule.size()) - 1));
    base = schedule[index];
  }
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto const factor = 0.9 + 0.2 * jitter;
  std::chrono::seconds delay(
      static_cast<std::int64_t>(std::llround(static_cast<double>(base.count()) * factor)));
  if (retry_after && *retry_after > delay) delay = *retry_after;
  return delay;
}

}  // namespace edge::acme
