#include <edge/proxy/proxy_metrics.hpp>

namespace edge::proxy {

char const* to_string(RouteType type) noexcept {
  switch (type) {
    case RouteType::http: return "http";
    case RouteType::tcp: return "tcp";
    case RouteType::passthrough: return "passthrough";
    case RouteType::acme_challenge: return "acme_challenge";
    case RouteType::rejected: return "rejected";
    case RouteType::none: return "none";
  }
  return "none";
}

char const* to_string(ProxyError error) noexcept {
  switch (error) {
    case ProxyError::no_route: return "no_route";
    case ProxyError::bad_request: return "bad_request";
    case ProxyError::upstream_unreachable: return "upstream_unreachable";
    case ProxyError::upstream_failed: return "upstream_failed";
    case ProxyError::upstream_timeout: return "upstream_timeout";
  }
  return "upstream_failed";
}

// One worker's counters on cache lines of their own: only that worker writes.
struct alignas(64) ProxyMetrics::Counters {
  std::atomic<std::int64_t> active{0};
  std::array<std::atomic<std::uint64_t>, max_status> requests{};
  std::array<std::atomic<std::uint64_t>, proxy_error_count> errors{};
  std::atomic<std::uint64_t> rate_limited_requests{0};
  std::atomic<std::uint64_t> rate_limited_connections{0};
  std::atomic<std::uint64_t> over_capacity{0};
  std::atomic<std::uint64_t> accept_errors{0};
};

namespace {
thread_local ProxyMetrics::Counters* bound = nullptr;

void add(std::atomic<std::uint64_t>& counter) noexcept { counter.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

ProxyMetrics::ProxyMetrics(std::size_t workers) {
  workers_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Counters>());
}

ProxyMetrics::~ProxyMetrics() = default;

ProxyMetrics::ThreadBinding::~ThreadBinding() { bound = nullptr; }

ProxyMetrics::ThreadBinding ProxyMetrics::bind_thread(std::size_t index) {
  bound = workers_.at(index).get();
  return ThreadBinding{};
}

ProxyMetrics::Snapshot ProxyMetrics::snapshot() const {
  Snapshot out;
  constexpr auto relaxed = std::memory_order_relaxed;
  for (auto const& w : workers_) {
    auto const active = w->active.load(relaxed);
    out.connections_active += active;
    out.active_per_worker.push_back(active);
    for (std::size_t i = 0; i < max_status; ++i) out.requests_by_status[i] += w->requests[i].load(relaxed);
    for (std::size_t i = 0; i < proxy_error_count; ++i) out.errors[i] += w->errors[i].load(relaxed);
    out.rate_limit_requests_rejected += w->rate_limited_requests.load(relaxed);
    out.rate_limit_connections_rejected += w->rate_limited_connections.load(relaxed);
    out.connections_over_capacity += w->over_capacity.load(relaxed);
    out.accept_errors += w->accept_errors.load(relaxed);
  }
  out.upstream_timeouts = out.errors[static_cast<std::size_t>(ProxyError::upstream_timeout)];
  return out;
}

namespace count {

ActiveConnection::ActiveConnection() noexcept : counters_(bound) {
  if (counters_) counters_->active.fetch_add(1, std::memory_order_relaxed);
}

ActiveConnection::~ActiveConnection() {
  if (counters_) counters_->active.fetch_sub(1, std::memory_order_relaxed);
}

void request(unsigned status) noexcept {
  if (bound && status < ProxyMetrics::max_status) add(bound->requests[status]);
}

void error(ProxyError e) noexcept {
  if (bound) add(bound->errors[static_cast<std::size_t>(e)]);
}

void rate_limited_request() noexcept {
  if (bound) add(bound->rate_limited_requests);
}

void rate_limited_connection() noexcept {
  if (bound) add(bound->rate_limited_connections);
}

void connection_over_capacity() noexcept {
  if (bound) add(bound->over_capacity);
}

void accept_error() noexcept {
  if (bound) add(bound->accept_errors);
}

}  // namespace count
}  // namespace edge::proxy
