#pragma once
// Pure head handling, separate from the I/O so it can be fuzzed
// (tests/fuzz/fuzz_http_head.cpp): the smuggling defences a parsed request
// head must pass, and the heads as they go upstream and back to the client.
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <edge/proxy/config.hpp>
#include <string>
#include <string_view>

namespace edge::proxy {

class ConnectionControl;

struct HttpClientInfo {
  std::string address;        // for X-Forwarded-For / X-Real-IP (the PROXY-protocol address when one came)
  std::string server_name;    // SNI, for X-Forwarded-Host when Host is missing
  std::string connection_id;  // edge.connection.id of the handshake record
  ConnectionControl* control = nullptr;  // graceful stop: idle between requests, draining
};

// Request smuggling defences beyond what Beast's parser already refuses
// (conflicting Content-Length, bad chunk framing, obs-fold in field values):
// Content-Length together with Transfer-Encoding, repeated framing headers,
// any Transfer-Encoding but a plain "chunked", invalid field names.
bool ambiguous_framing(boost::beast::http::request_header<> const& req);

// The request target the upstream sees: the matched prefix replaced by the
// upstream URL's path.
std::string upstream_target(HttpRoute const& route, std::string_view target);

// The request head as it goes upstream, in one buffer ready to write:
// - the hop-by-hop headers (RFC 9110 section 7.6.1) and those the Connection
//   header names are left out, unless `upgrade` (a WebSocket handshake, whose
//   Upgrade/Connection must pass); the framing headers always stay, so a body
//   streams as it came;
// - with an allow-list, every header not on it is left out, except what the
//   proxy needs (framing, Host, Expect, the Upgrade handshake on websocket
//   routes);
// - the target is mapped to the upstream's path;
// - X-Forwarded-For (appended to), X-Real-IP, X-Forwarded-Proto,
//   X-Forwarded-Host and Via replace what the client sent, and Host too
//   unless preserve_host;
// - HTTP/1.1 with a persistent connection, except for `upgrade` (version as
//   the client sent it).
// Rendered in one pass over the parsed fields: a rewritten copy in Beast's
// container cost a heap element and a tree insert per header, a third of the
// proxy's own work per request.
std::string render_upstream_request(boost::beast::http::request_header<> const& req, HttpRoute const& route,
                                    HttpClientInfo const& client, bool upgrade);

// How the proxy answers the client with an upstream's response head.
struct ClientResponseHead {
  unsigned version = 11;        // the client's
  bool keep_alive = true;       // the client connection carries another request
  bool server_header = true;    // "Server: edge" instead of the upstream's (removed either way)
  bool add_chunked = false;     // a body the upstream delimits by closing, re-framed as chunked
};

// The response head as the client gets it, in one buffer ready to write:
// the upstream's fields in their order minus the hop-by-hop ones and Server,
// then Connection as `head.keep_alive` needs it for the version, Server, a
// Date unless the upstream sent one, and Transfer-Encoding when re-framed.
std::string render_client_response(boost::beast::http::response_header<> const& res,
                                   ClientResponseHead const& head);

// The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
// formatted at most once a second per thread.
std::string_view http_date();

}  // namespace edge::proxy
