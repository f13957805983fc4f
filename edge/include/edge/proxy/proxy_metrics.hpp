#pragma once
// Connection and request counters of the proxy, kept per worker so that the
// I/O threads only touch their own cache lines with relaxed atomics; readers
// (the metrics endpoint, the admin API) sum over workers on demand.
//
// The I/O code counts through the free functions in `proxy::count`, which
// find the calling worker's counters through a thread-local binding set once
// when the worker thread starts: no signature on the data path changes, and a
// thread that is not bound (a unit test, a helper thread) counts nothing.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace edge::proxy {

// What an accepted connection became once its route was known. Counted by
// TlsStatistics from the connection's handshake record (one per connection).
enum class RouteType : std::uint8_t {
  http,            // TLS terminated, HTTP proxy
  tcp,             // TLS terminated, raw TCP to an upstream
  passthrough,     // not terminated (SNI routing)
  acme_challenge,  // a TLS-ALPN-01 validation handshake
  rejected,        // refused by policy before or during the handshake
  none,            // the handshake failed: no route
};
inline constexpr std::size_t route_type_count = 6;
char const* to_string(RouteType type) noexcept;

// Why the proxy answered with an error of its own.
enum class ProxyError : std::uint8_t {
  no_route,              // 404
  bad_request,           // 400, malformed request
  upstream_unreachable,  // 502 before a connection
  upstream_failed,       // 502 on an established connection
  upstream_timeout,      // 504
};
inline constexpr std::size_t proxy_error_count = 5;
char const* to_string(ProxyError error) noexcept;

class ProxyMetrics {
 public:
  static constexpr unsigned max_status = 600;  // HTTP status codes 100..599

  struct Snapshot {
    std::int64_t connections_active = 0;
    std::array<std::uint64_t, max_status> requests_by_status{};
    std::array<std::uint64_t, proxy_error_count> errors{};
    std::uint64_t upstream_timeouts = 0;
    std::uint64_t rate_limit_requests_rejected = 0;
    std::uint64_t rate_limit_connections_rejected = 0;
    std::uint64_t connections_over_capacity = 0;  // closed at accept: proxy.max_connections reached
    std::uint64_t accept_errors = 0;              // failed accepts (EMFILE, ENFILE, ENOBUFS...)
    std::vector<std::int64_t> active_per_worker;
  };

  explicit ProxyMetrics(std::size_t workers);
  ~ProxyMetrics();
  ProxyMetrics(ProxyMetrics const&) = delete;
  ProxyMetrics& operator=(ProxyMetrics const&) = delete;

  // Binds the calling thread to worker `index` until the binding is destroyed.
  // Thread: the worker thread itself, before it runs its event loop.
  class ThreadBinding {
   public:
    ThreadBinding(ThreadBinding const&) = delete;
    ThreadBinding& operator=(ThreadBinding const&) = delete;
    ~ThreadBinding();

   private:
    friend class ProxyMetrics;
    ThreadBinding() = default;
  };
  [[nodiscard]] ThreadBinding bind_thread(std::size_t index);

  // Thread: any. Sums relaxed loads: each counter is exact, the set is not a
  // single instant (good enough for monitoring).
  Snapshot snapshot() const;

  struct Counters;

 private:
  std::vector<std::unique_ptr<Counters>> workers_;
};

// Hooks for the I/O threads. Each is a few relaxed atomic increments on the
// calling worker's own counters, or nothing on an unbound thread.
namespace count {

// One accepted connection: active while the guard lives. Decrements the
// counters it incremented even when destroyed on another thread.
class ActiveConnection {
 public:
  ActiveConnection() noexcept;
  ~ActiveConnection();
  ActiveConnection(ActiveConnection const&) = delete;
  ActiveConnection& operator=(ActiveConnection const&) = delete;

 private:
  ProxyMetrics::Counters* counters_;
};

void request(unsigned status) noexcept;        // once per response sent to a client
void error(ProxyError error) noexcept;         // the proxy's own error answers
void rate_limited_request() noexcept;          // a request refused by a rate limit
void rate_limited_connection() noexcept;       // a connection refused by a connection limit
void connection_over_capacity() noexcept;      // closed at accept: proxy.max_connections reached
void accept_error() noexcept;                  // accept failed (out of descriptors or buffers)

}  // namespace count
}  // namespace edge::proxy
