#pragma once
// Handshake statistics for the metrics endpoint and the admin API, derived on
// the handshake log's writer thread (a HandshakeObserver): the I/O threads pay
// nothing for them. Counts every handshake, before sampling and damping.
#include <edge/proxy/handshake_log.hpp>
#include <edge/proxy/proxy_metrics.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace edge::proxy {

class TlsStatistics final : public HandshakeObserver {
 public:
  // Upper bounds of the handshake duration histogram, in seconds.
  static constexpr std::array<double, 14> duration_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                          0.1,    0.25,  0.5,    1.0,   2.5,  5.0,  10.0};
  static constexpr int timeline_minutes = 60;

  struct Key {
    std::string outcome, error_type, cert;
    auto operator<=>(Key const&) const = default;
  };
  struct Minute {
    std::int64_t minute = 0;  // Unix time / 60
    std::map<Key, std::uint64_t> counts;
  };
  struct Snapshot {
    std::map<Key, std::uint64_t> handshakes;
    std::map<std::string, std::uint64_t> connections;  // by route type (proxy_metrics.hpp's RouteType names)
    std::map<std::string, std::uint64_t> versions;  // established handshakes by TLS version
    std::map<std::string, std::uint64_t> ciphers;   // established handshakes by cipher suite
    std::array<std::uint64_t, duration_bounds.size() + 1> duration_buckets{};  // last = +Inf; not cumulative
    double duration_sum_seconds = 0;
    std::uint64_t total = 0;
    std::vector<Minute> timeline;  // the last timeline_minutes minutes that saw handshakes, oldest first
  };

  // Thread: the handshake log's writer.
  void observe(HandshakeEvent const& event) noexcept override;
  // Thread: any.
  Snapshot snapshot() const;

  // The route type a connection took, from its record.
  static RouteType route_type(HandshakeEvent const& event) noexcept;

 private:
  void prune(std::int64_t now_minute) const;

  mutable std::mutex mutex_;  // the writer holds it per record for microseconds; readers copy
  std::map<Key, std::uint64_t> handshakes_;
  std::map<std::string, std::uint64_t> connections_;
  std::map<std::string, std::uint64_t> versions_;
  std::map<std::string, std::uint64_t> ciphers_;
  std::array<std::uint64_t, duration_bounds.size() + 1> buckets_{};
  double duration_sum_ = 0;
  std::uint64_t total_ = 0;
  mutable std::deque<Minute> timeline_;
};

}  // namespace edge::proxy
