#include <edge/proxy/proxy_metrics.hpp>
#include <edge/proxy/tls_statistics.hpp>

#include <gtest/gtest.h>

#include <thread>

namespace edge::proxy {
namespace {

TEST(ProxyMetrics, CountsOnlyOnBoundThreadsAndSumsWorkers) {
  ProxyMetrics metrics(2);
  count::request(200);  // this thread is not a worker: nothing counted
  std::thread first([&] {
    auto const bound = metrics.bind_thread(0);
    count::request(200);
    count::request(502);
    count::error(ProxyError::upstream_timeout);
    count::rate_limited_request();
  });
  std::thread second([&] {
    auto const bound = metrics.bind_thread(1);
    count::request(200);
    count::rate_limited_connection();
  });
  first.join();
  second.join();
  auto const s = metrics.snapshot();
  EXPECT_EQ(s.requests_by_status[200], 2u);
  EXPECT_EQ(s.requests_by_status[502], 1u);
  EXPECT_EQ(s.upstream_timeouts, 1u);
  EXPECT_EQ(s.errors[static_cast<std::size_t>(ProxyError::upstream_timeout)], 1u);
  EXPECT_EQ(s.rate_limit_requests_rejected, 1u);
  EXPECT_EQ(s.rate_limit_connections_rejected, 1u);
}

TEST(ProxyMetrics, ActiveConnectionFollowsItsGuardEvenAcrossThreads) {
  ProxyMetrics metrics(1);
  std::unique_ptr<count::ActiveConnection> guard;
  std::thread worker([&] {
    auto const bound = metrics.bind_thread(0);
    guard = std::make_unique<count::ActiveConnection>();
  });
  worker.join();
  EXPECT_EQ(metrics.snapshot().connections_active, 1);
  guard.reset();  // destroyed on another thread: still decrements the worker's gauge
  EXPECT_EQ(metrics.snapshot().connections_active, 0);
}

TEST(TlsStatistics, RouteTypesFromRecords) {
  HandshakeEvent e;
  e.outcome = HandshakeOutcome::ok;
  EXPECT_EQ(TlsStatistics::route_type(e), RouteType::http);
  e.upstream = "127.0.0.1:9000";
  EXPECT_EQ(TlsStatistics::route_type(e), RouteType::tcp);
  e.outcome = HandshakeOutcome::timeout;
  EXPECT_EQ(TlsStatistics::route_type(e), RouteType::none);
  e.outcome = HandshakeOutcome::acme_challenge;
  EXPECT_EQ(TlsStatistics::route_type(e), RouteType::acme_challenge);
}

TEST(TlsStatistics, HistogramAndTimeline) {
  TlsStatistics stats;
  HandshakeEvent e;
  e.outcome = HandshakeOutcome::failed;
  e.error_type = "unknown_sni";
  e.timestamp_us = 1'700'000'000'000'000;
  e.duration_us = 500;  // exactly on the first bound: counted in it (le)
  stats.observe(e);
  e.timestamp_us += 61'000'000;  // next minute
  e.duration_us = 20'000'000;    // beyond every bound: +Inf
  stats.observe(e);
  auto const s = stats.snapshot();
  EXPECT_EQ(s.total, 2u);
  EXPECT_EQ(s.duration_buckets.front(), 1u);
  EXPECT_EQ(s.duration_buckets.back(), 1u);
  ASSERT_EQ(s.timeline.size(), 2u);
  EXPECT_LT(s.timeline[0].minute, s.timeline[1].minute);
  EXPECT_EQ((s.handshakes.at({"failed", "unknown_sni", ""})), 2u);
  EXPECT_EQ(s.connections.at("none"), 2u);
}

}  // namespace
}  // namespace edge::proxy
