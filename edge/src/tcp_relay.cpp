#include "tcp_relay.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

asio::awaitable<std::unique_ptr<beast::tcp_stream>> connect_tcp(TcpUpstream const& upstream,
                                                                std::chrono::seconds timeout, std::string& why) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_error, endpoints] =
      co_await resolver.async_resolve(upstream.host, std::to_string(upstream.port), use_tuple);
  if (resolve_error) {
    why = "resolve " + upstream.host + ": " + resolve_error.message();
    co_return nullptr;
  }
  auto stream = std::make_unique<beast::tcp_stream>(executor);
  stream->expires_after(timeout);
  auto [connect_error, endpoint] = co_await stream->async_connect(endpoints, use_tuple);
  if (connect_error) {
    why = "connect " + upstream.text() + ": " + connect_error.message();
    co_return nullptr;
  }
  boost::system::error_code ignored;
  stream->socket().set_option(tcp::no_delay(true), ignored);
  co_return stream;
}

}  // namespace edge::proxy
