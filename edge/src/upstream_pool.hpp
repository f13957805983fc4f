#pragma once
// Idle keep-alive connections to upstreams, one pool per worker thread: a
// request borrows a connection and gives it back when the response ended
// cleanly. Only the owning worker's thread touches it, so there is no lock.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

namespace edge::proxy {

struct UpstreamConnection {
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since{};
  explicit UpstreamConnection(boost::beast::tcp_stream s) : stream(std::move(s)) {}
};

class UpstreamPool {
 public:
  // An idle connection to `key` ("host:port"), or null. Connections idle for
  // longer than the idle timeout are closed instead of handed out.
  std::unique_ptr<UpstreamConnection> take(std::string const& key);
  // Keeps `connection` for reuse, unless the pool for `key` is full.
  void give_back(std::string const& key, std::unique_ptr<UpstreamConnection> connection);

  static constexpr std::size_t max_idle_per_upstream = 256;
  static constexpr std::chrono::seconds idle_timeout{30};

 private:
  std::unordered_map<std::string, std::deque<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace edge::proxy
