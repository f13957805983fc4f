#pragma once
// The HTTP/1.1 reverse proxy behind a terminated TLS connection: requests are
// routed by path prefix to an upstream, with keep-alive on both sides.
#include <edge/proxy/config.hpp>

#include "http_head.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>

namespace edge::proxy {

class TlsStream;
class AccessLog;
class UpstreamPool;

// Serves requests until the client closes, asks to close, or idles out.
// `pool` belongs to the worker running this coroutine; `access_log` (may be
// null) gets one record per request.
boost::asio::awaitable<void> serve_http(TlsStream& stream, ProxyConfig const& config, UpstreamPool& pool,
                                        HttpClientInfo const& client, AccessLog* access_log);

}  // namespace edge::proxy
