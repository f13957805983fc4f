#include "rate_limiter.hpp"

#include <algorithm>
#include <functional>

namespace edge::proxy {

std::shared_ptr<RateLimiter> make_rate_limiter(RateLimit const& limits) {
  if (!limits.any()) return nullptr;
  return std::make_shared<RateLimiter>(limits);
}

RateLimiter::Shard& RateLimiter::shard(std::string_view client) noexcept {
  return shards_[std::hash<std::string_view>{}(client) % shard_count];
}

void RateLimiter::prune(Shard& s, Clock::time_point now) {
  // Forget clients with nothing in flight whose bucket is full again: they
  // would start from a full bucket anyway.
  std::erase_if(s.clients, [&](auto const& entry) {
    auto const& c = entry.second;
    if (c.in_flight > 0) return false;
    if (limits_.rate <= 0) return true;
    double const elapsed = std::chrono::duration<double>(now - c.refilled).count();
    return c.tokens + elapsed * limits_.rate >= limits_.burst;
  });
}

RateLimiter::Verdict RateLimiter::admit(std::string_view client, Clock::time_point now) {
  if (limits_.max_connections > 0 && in_flight_.fetch_add(1, std::memory_order_relaxed) >= limits_.max_connections) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::too_many_connections;
  }
  auto undo_route = [&] {
    if (limits_.max_connections > 0) in_flight_.fetch_sub(1, std::memory_order_relaxed);
  };
  auto& s = shard(client);
  std::lock_guard lock(s.mutex);
  if (s.clients.size() > prune_above) prune(s, now);
  auto [it, fresh] = s.clients.try_emplace(std::string(client));
  auto& c = it->second;
  if (fresh) {
    c.tokens = limits_.burst;
    c.refilled = now;
  }
  if (limits_.max_connections_per_client > 0 && c.in_flight >= limits_.max_connections_per_client) {
    undo_route();
    return Verdict::too_many_connections;
  }
  if (limits_.rate > 0) {
    double const elapsed = std::chrono::duration<double>(now - c.refilled).count();
    c.tokens = std::min(limits_.burst, c.tokens + elapsed * limits_.rate);
    c.refilled = now;
    if (c.tokens < 1.0) {
      undo_route();
      return Verdict::rate_limited;
    }
    c.tokens -= 1.0;
  }
  ++c.in_flight;
  return Verdict::admitted;
}

void RateLimiter::release(std::string_view client) noexcept {
  if (limits_.max_connections > 0) in_flight_.fetch_sub(1, std::memory_order_relaxed);
  auto& s = shard(client);
  std::lock_guard lock(s.mutex);
  auto it = s.clients.find(std::string(client));
  if (it == s.clients.end()) return;
  if (it->second.in_flight > 0) --it->second.in_flight;
  // Without a bucket the entry only counts in-flight requests: nothing to keep.
  if (it->second.in_flight == 0 && limits_.rate <= 0) s.clients.erase(it);
}

}  // namespace edge::proxy
