#pragma once
// The HTTP/1.1 reverse proxy behind a terminated TLS connection: requests are
// routed by path prefix to an upstream, with keep-alive on both sides.
#include <edge/proxy/config.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <string>

namespace edge::proxy {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

struct HttpClientInfo {
  std::string address;      // for X-Forwarded-For / X-Real-IP
  std::string server_name;  // SNI, for X-Forwarded-Host when Host is missing
};

class UpstreamPool;

// Serves requests until the client closes, asks to close, or idles out.
// `pool` belongs to the worker running this coroutine.
boost::asio::awaitable<void> serve_http(TlsStream& stream, ProxyConfig const& config, UpstreamPool& pool,
                                        HttpClientInfo const& client);

}  // namespace edge::proxy
