#pragma once
// Per-route request limits, shared by all workers: a token bucket per client
// address and in-flight counters per route and per client. The client table
// is split into shards, each with its own mutex, so workers rarely meet on
// one lock; only routes with a rate_limit pay for any of it.
#include <array>
#include <atomic>
#include <chrono>
#include <edge/proxy/config.hpp>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace edge::proxy {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict { admitted, rate_limited, too_many_connections };

  explicit RateLimiter(RateLimit limits) : limits_(limits) {}

  RateLimit const& limits() const noexcept { return limits_; }

  // Admits one request from `client` at `now`, or says which limit refused
  // it. An admitted request holds its place until release(client).
  // Thread: any.
  Verdict admit(std::string_view client, Clock::time_point now);
  void release(std::string_view client) noexcept;

  static constexpr std::size_t shard_count = 16;
  static constexpr std::size_t prune_above = 4096;  // clients per shard before idle ones are forgotten

 private:
  struct Client {
    double tokens = 0;
    Clock::time_point refilled{};
    unsigned in_flight = 0;
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Client> clients;
  };
  Shard& shard(std::string_view client) noexcept;
  void prune(Shard& shard, Clock::time_point now);

  RateLimit limits_;
  std::atomic<unsigned> in_flight_{0};
  std::array<Shard, shard_count> shards_;
};

// Holds an admitted request's place; releases it when the request ends.
class RateTicket {
 public:
  RateTicket() = default;
  RateTicket(RateLimiter* limiter, std::string_view client) : limiter_(limiter), client_(client) {}
  RateTicket(RateTicket const&) = delete;
  RateTicket& operator=(RateTicket const&) = delete;
  RateTicket& operator=(RateTicket&& other) noexcept {
    if (this != &other) {
      if (limiter_) limiter_->release(client_);
      limiter_ = std::exchange(other.limiter_, nullptr);
      client_ = other.client_;
    }
    return *this;
  }
  ~RateTicket() {
    if (limiter_) limiter_->release(client_);
  }

 private:
  RateLimiter* limiter_ = nullptr;
  std::string_view client_;  // the connection's client address, which outlives the request
};

}  // namespace edge::proxy
