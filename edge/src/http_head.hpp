#pragma once
// Pure request-head handling, separate from the I/O so it can be fuzzed
// (tests/fuzz/fuzz_http_head.cpp): the smuggling defences a parsed head must
// pass, and the rewriting it gets before it goes upstream.
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

// Removes the hop-by-hop headers (RFC 9110 section 7.6.1) and those the
// Connection header names; the message framing stays so bodies stream as-is.
void strip_hop_by_hop(boost::beast::http::fields& fields);

// With an allow-list, drops every request header not on it. What the proxy
// needs (framing, Host, Expect, and the Upgrade handshake on websocket routes)
// always stays.
void apply_forward_headers(boost::beast::http::request_header<>& req, HttpRoute const& route);

// X-Forwarded-For (appended), X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host,
// Via, and Host unless preserve_host.
void add_forwarding_headers(boost::beast::http::request_header<>& req, HttpRoute const& route,
                            HttpClientInfo const& client);

// The request target the upstream sees: the matched prefix replaced by the
// upstream URL's path.
std::string upstream_target(HttpRoute const& route, std::string_view target);

// Everything a request head goes through between the parser and the
// upstream, in order: strip, allow-list, target, forwarding headers.
// `upgrade`: a WebSocket handshake, whose Upgrade/Connection must pass.
void rewrite_request_head(boost::beast::http::request_header<>& req, HttpRoute const& route,
                          HttpClientInfo const& client, bool upgrade);

// A head as Beast's serializer writes it, in one buffer: start line, the
// fields in order, the empty line. For a request or response whose body (if
// any) passes through as is, this one write replaces the serializer.
std::string render_head(boost::beast::http::request_header<> const& req);
std::string render_head(boost::beast::http::response_header<> const& res);

// The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
// formatted at most once a second per thread.
std::string_view http_date();

}  // namespace edge::proxy
