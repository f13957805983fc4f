#pragma once
// Layer-4 plumbing: connecting to a TCP upstream and copying bytes both ways.
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <edge/proxy/config.hpp>
#include <memory>
#include <string>
#include <type_traits>

namespace edge::proxy {

// Resolves and connects within `timeout`. Null with `why` set on failure.
boost::asio::awaitable<std::unique_ptr<boost::beast::tcp_stream>> connect_tcp(TcpUpstream const& upstream,
                                                                              std::chrono::seconds timeout,
                                                                              std::string& why);

struct RelayCounts {
  std::int64_t from_client = 0;  // bytes the client sent (after anything pre-read)
  std::int64_t to_client = 0;
};

namespace detail {

template <class From, class To, class Finish>
boost::asio::awaitable<void> pump(From& from, To& to, std::int64_t& total, Finish finish) {
  namespace asio = boost::asio;
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  std::array<char, 16384> buffer;
  for (;;) {
    auto [read_error, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
    if (n > 0) {
      auto [write_error, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_tuple);
      total += static_cast<std::int64_t>(written);
      if (write_error) break;
    }
    if (read_error) break;
  }
  finish();
}

}  // namespace detail

inline boost::asio::ip::tcp::socket& raw_socket(boost::asio::ip::tcp::socket& s) noexcept { return s; }
template <class Stream>
auto& raw_socket(Stream& s) noexcept { return s.socket(); }

// Copies bytes between `client` and `upstream` until both directions ended.
// A direction that ends half-closes its destination (TCP FIN), so protocols
// that rely on half-close keep working; when the client side is TLS, the end
// of either direction closes both.
template <class ClientStream>
boost::asio::awaitable<RelayCounts> relay(ClientStream& client, boost::beast::tcp_stream& upstream,
                                          bool client_is_raw_tcp) {
  using namespace boost::asio::experimental::awaitable_operators;
  RelayCounts counts;
  if constexpr (!std::is_same_v<ClientStream, boost::asio::ip::tcp::socket>) client.expires_never();
  upstream.expires_never();
  boost::system::error_code ignored;
  auto half_close_upstream = [&] { upstream.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored); };
  auto half_close_client = [&] {
    raw_socket(client).shutdown(boost::asio::socket_base::shutdown_send, ignored);
  };
  if (client_is_raw_tcp) {
    co_await (detail::pump(client, upstream, counts.from_client, half_close_upstream) &&
              detail::pump(upstream, client, counts.to_client, half_close_client));
  } else {
    co_await (detail::pump(client, upstream, counts.from_client, half_close_upstream) ||
              detail::pump(upstream, client, counts.to_client, half_close_client));
  }
  co_return counts;
}

}  // namespace edge::proxy
