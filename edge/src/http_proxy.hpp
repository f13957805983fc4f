#pragma once
// The HTTP/1.1 reverse proxy behind a terminated TLS connection: requests are
// routed by path prefix to an upstream, with keep-alive on both sides.
#include <edge/proxy/config.hpp>

#include "http_head.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

namespace edge::proxy {

struct ClientConnection;

// Serves the connection's requests until the client closes, asks to close,
// or idles out (its config, pool and access_log set; the pool is the
// running worker's). Requests that come back to back are served by one
// coroutine; between them the connection waits with no coroutine frame, as
// a plain readiness wait that owns it. Returns at once; runs on the
// connection's executor.
void serve_http(std::unique_ptr<ClientConnection> connection);

}  // namespace edge::proxy
