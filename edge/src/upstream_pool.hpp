#pragma once
// Keep-alive connections to upstreams, one pool per worker thread: a request
// borrows a connection and gives it back when the response ended cleanly.
// Only the owning worker's thread touches it, so there is no lock; every limit
// below is therefore per worker (documented in docs/config.md).
#include <openssl/ssl.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/asio/compose.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <deque>
#include <edge/proxy/config.hpp>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "deadline.hpp"

namespace edge::proxy {

// A connection to an http:// or https:// upstream, as one Beast stream: the
// HTTP code is the same for both. Plain connections read and write the
// socket with a Deadline (one lazily re-armed timer); TLS ones go through
// beast::ssl_stream, whose tcp_stream keeps its per-operation timers.
class UpstreamStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using TlsLayer = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  explicit UpstreamStream(boost::beast::tcp_stream plain)
      : plain_(std::move(plain)), deadline_(plain_->get_executor()) {
    plain_->expires_never();
    boost::system::error_code ignored;
    plain_->socket().non_blocking(true, ignored);  // read_some/write_some below must never wait
  }
  explicit UpstreamStream(std::unique_ptr<TlsLayer> tls) : tls_(std::move(tls)), deadline_(tls_->get_executor()) {}

  executor_type get_executor() noexcept { return tcp().get_executor(); }
  // Deliberately not next_layer(): beast::get_lowest_layer() stops here, so
  // timeouts set through it reach expires_after() below.
  boost::beast::tcp_stream& tcp() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  TlsLayer* tls() noexcept { return tls_.get(); }

  void expires_after(std::chrono::steady_clock::duration timeout) {
    if (tls_) tls_->next_layer().expires_after(timeout);
    else deadline_.expires_after(timeout);
  }
  void expires_never() {
    if (tls_) tls_->next_layer().expires_never();
    else deadline_.expires_never();
  }
  void cancel() { tcp().socket().cancel(); }

  // One attempt without waiting (as TlsStream::read_some/write_some):
  // asio::error::would_block when the socket is not ready, and always on a
  // TLS upstream (beast::ssl_stream has no such attempt).
  template <class MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers, boost::system::error_code& error) {
    if (!ready_now(error)) return 0;
    return plain_->socket().read_some(buffers, error);
  }
  template <class MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers) {
    boost::system::error_code error;
    auto const n = read_some(buffers, error);
    if (error) throw boost::system::system_error(error);
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_some(ConstBuffers const& buffers, boost::system::error_code& error) {
    if (!ready_now(error)) return 0;
    return plain_->socket().write_some(buffers, error);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(MutableBuffers const& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, MutableBuffers const& b) {
          if (tls_) return tls_->async_read_some(b, std::move(handler));
          boost::asio::async_compose<decltype(handler), void(boost::system::error_code, std::size_t)>(
              PlainOp<MutableBuffers, true>{this, b}, handler, plain_->socket());
        },
        token, buffers);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(ConstBuffers const& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, ConstBuffers const& b) {
          if (tls_) return tls_->async_write_some(b, std::move(handler));
          boost::asio::async_compose<decltype(handler), void(boost::system::error_code, std::size_t)>(
              PlainOp<ConstBuffers, false>{this, b}, handler, plain_->socket());
        },
        token, buffers);
  }

 private:
  bool ready_now(boost::system::error_code& error) {
    error = {};
    if (tls_) error = boost::asio::error::would_block;
    else if (deadline_.fired()) error = boost::beast::error::timeout;
    return !error;
  }

  template <class Buffers, bool isRead>
  struct PlainOp {
    UpstreamStream* s;
    Buffers buffers;
    bool started = false;
    template <class Self>
    void operator()(Self& self, boost::system::error_code error = {}, std::size_t n = 0) {
      auto& socket = s->plain_->socket();
      if (!started) {
        started = true;
        // After its deadline the socket is closed: the operation fails at once (reported as the timeout).
        if (!s->deadline_.begin(socket)) return socket.async_wait(socket.wait_read, std::move(self));
        if constexpr (isRead) return socket.async_read_some(buffers, std::move(self));
        else return socket.async_write_some(buffers, std::move(self));
      }
      s->deadline_.end();
      if (s->deadline_.fired()) error = boost::beast::error::timeout;
      self.complete(error, n);
    }
  };

  std::optional<boost::beast::tcp_stream> plain_;
  std::unique_ptr<TlsLayer> tls_;
  Deadline deadline_;  // plain connections only
};

// Open connections to one upstream and the requests waiting for one.
struct UpstreamSlots {
  std::size_t open = 0;
  std::deque<boost::asio::steady_timer*> waiters;  // woken (cancelled) in order when a slot frees
  void release() noexcept;
  void wake_one() noexcept;
};

struct UpstreamConnection {
  UpstreamStream stream;
  boost::beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since{};
  std::shared_ptr<UpstreamSlots> slots;  // gives the slot back when the connection closes
  std::string address;                   // "ip:port" connected to, for the access log
  explicit UpstreamConnection(UpstreamStream s) : stream(std::move(s)) {}
  ~UpstreamConnection();
  UpstreamConnection(UpstreamConnection const&) = delete;
  UpstreamConnection& operator=(UpstreamConnection const&) = delete;
};

enum class AcquireError {
  none,
  unreachable,  // resolve/connect failed: 502
  tls_failed,   // TLS handshake or verification failed: 502
  timeout,      // connect or handshake timed out: 504
  pool_full,    // no connection free within the pool's wait timeout: 503
};

struct Acquired {
  std::unique_ptr<UpstreamConnection> connection;
  bool reused = false;
  AcquireError error = AcquireError::none;
};

class UpstreamPool {
 public:
  UpstreamPool();
  ~UpstreamPool();
  UpstreamPool(UpstreamPool const&) = delete;
  UpstreamPool& operator=(UpstreamPool const&) = delete;

  // An idle connection to the route's upstream, or a new one (TLS handshake
  // done, resuming the upstream's last session) when the pool's limit allows;
  // otherwise waits up to limits.wait_timeout for one. `fresh`: skip idle ones.
  // Thread: the owning worker's.
  boost::asio::awaitable<Acquired> acquire(HttpRoute const& route, ProxyConfig const& config, bool fresh = false);

  // Remembers the connection's TLS session for the next handshake, then
  // keeps the connection for reuse when `reusable` (a clean exchange) and the
  // pool for it is not full; otherwise closes it.
  void give_back(HttpRoute const& route, UpstreamPoolLimits const& limits,
                 std::unique_ptr<UpstreamConnection> connection, bool reusable);

 private:
  struct Entry;
  Entry& entry(HttpRoute const& route);
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  // The entry last used by each route, checked against the route's upstream
  // before use (a reload may reuse a route's address): no key string is built
  // per request. Entries are never erased, so the pointers stay valid.
  std::unordered_map<HttpRoute const*, Entry*> by_route_;
};

// "https://host:port|server_name|verify": connections are shared only by
// routes that would make the same connection.
std::string pool_key(Upstream const& upstream);

}  // namespace edge::proxy
