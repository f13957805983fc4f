#pragma once
// The HTTP/1.1 reverse proxy behind a terminated TLS connection: requests are
// routed by path prefix to an upstream, with keep-alive on both sides.
#include <edge/proxy/config.hpp>

#include "http_head.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/buffered_read_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <string>

namespace edge::proxy {

// The client's TCP stream with a read buffer in front: bytes read ahead of
// TLS (PROXY header, ClientHello) stay in the buffer for OpenSSL to read.
class PrereadStream : public boost::beast::buffered_read_stream<boost::beast::tcp_stream, boost::beast::flat_buffer> {
 public:
  using buffered_read_stream::buffered_read_stream;
  // What asio::ssl::stream asks of its next layer (for its executor).
  using lowest_layer_type = boost::beast::tcp_stream::socket_type;
  lowest_layer_type& lowest_layer() noexcept { return next_layer().socket(); }
  lowest_layer_type const& lowest_layer() const noexcept { return next_layer().socket(); }
};
using TlsStream = boost::beast::ssl_stream<PrereadStream>;

class AccessLog;
class UpstreamPool;

// Serves requests until the client closes, asks to close, or idles out.
// `pool` belongs to the worker running this coroutine; `access_log` (may be
// null) gets one record per request.
boost::asio::awaitable<void> serve_http(TlsStream& stream, ProxyConfig const& config, UpstreamPool& pool,
                                        HttpClientInfo const& client, AccessLog* access_log);

}  // namespace edge::proxy
