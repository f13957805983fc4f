#include <edge/proxy/tls_statistics.hpp>

#include <algorithm>

namespace edge::proxy {

void TlsStatistics::observe(HandshakeEvent const& event) noexcept {
  try {
    Key key{to_string(event.outcome), event.error_type, event.cert_name};
    double const seconds = static_cast<double>(event.duration_us) / 1e6;
    auto const bucket = static_cast<std::size_t>(
        std::lower_bound(duration_bounds.begin(), duration_bounds.end(), seconds) - duration_bounds.begin());
    std::int64_t const minute = event.timestamp_us / 60'000'000;
    std::lock_guard lock(mutex_);
    ++handshakes_[key];
    ++connections_[to_string(route_type(event))];
    if (event.established) {
      ++versions_[event.protocol_version];
      ++ciphers_[event.cipher];
    }
    ++buckets_[bucket];
    duration_sum_ += seconds;
    ++total_;
    // Records reach the writer in accept order per worker, so a minute is
    // almost always the last one or a new one; search back a little otherwise.
    auto it = std::find_if(timeline_.rbegin(), timeline_.rend(), [&](Minute const& m) { return m.minute <= minute; });
    if (it != timeline_.rend() && it->minute == minute) {
      ++it->counts[key];
    } else {
      Minute fresh{minute, {{key, 1}}};
      timeline_.insert(it.base(), std::move(fresh));
    }
    prune(timeline_.back().minute);
  } catch (...) {
    // Out of memory while counting: statistics are not worth a crash.
  }
}

RouteType TlsStatistics::route_type(HandshakeEvent const& event) noexcept {
  switch (event.outcome) {
    case HandshakeOutcome::ok: return event.upstream.empty() ? RouteType::http : RouteType::tcp;
    case HandshakeOutcome::acme_challenge: return RouteType::acme_challenge;
    case HandshakeOutcome::passthrough: return RouteType::passthrough;
    case HandshakeOutcome::rejected: return RouteType::rejected;
    case HandshakeOutcome::failed:
    case HandshakeOutcome::timeout: return RouteType::none;
  }
  return RouteType::none;
}

void TlsStatistics::prune(std::int64_t now_minute) const {
  while (!timeline_.empty() && timeline_.front().minute <= now_minute - timeline_minutes) timeline_.pop_front();
}

TlsStatistics::Snapshot TlsStatistics::snapshot() const {
  Snapshot out;
  std::lock_guard lock(mutex_);
  out.handshakes = handshakes_;
  out.connections = connections_;
  out.versions = versions_;
  out.ciphers = ciphers_;
  out.duration_buckets = buckets_;
  out.duration_sum_seconds = duration_sum_;
  out.total = total_;
  out.timeline.assign(timeline_.begin(), timeline_.end());
  return out;
}

}  // namespace edge::proxy
