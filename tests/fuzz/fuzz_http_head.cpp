// libFuzzer target: HTTP head handling. The bytes go through Beast's request
// parser as the proxy configures it; a head that parses then meets the
// smuggling checks and, when it passes, is rendered as it would go upstream
// (hop-by-hop stripping, allow-list, target mapping, forwarding headers) under
// two route shapes, and must parse back. The same bytes as an upstream's
// response are rendered as the client would get them, and must parse back.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "http_head.hpp"

namespace http = boost::beast::http;

namespace {

edge::proxy::HttpRoute make_route(bool allow_list) {
  edge::proxy::HttpRoute route;
  route.path_prefix = "/api/";
  route.upstream.host = allow_list ? "::1" : "backend.internal";
  route.upstream.port = allow_list ? 8443 : 80;
  route.upstream.tls = allow_list;
  route.upstream.base_path = allow_list ? "/" : "/v2/";
  route.preserve_host = allow_list;
  if (allow_list) route.forward_headers = std::vector<std::string>{"accept", "x-request-id", "cookie"};
  return route;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  static edge::proxy::HttpRoute const routes[] = {make_route(false), make_route(true)};
  http::request_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);  // as the proxy sets it
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  auto const& parsed = parser.get();
  if (edge::proxy::ambiguous_framing(parsed.base())) return 0;
  edge::proxy::HttpClientInfo const client{"192.0.2.7", "edge.test", "fuzz-0-1"};
  for (auto const& route : routes) {
    for (bool const upgrade : {false, true}) {
      auto const bytes = edge::proxy::render_upstream_request(parsed.base(), route, client, upgrade);
      // What goes upstream parses back as one complete head...
      http::request_parser<http::empty_body> again;
      again.eager(false);
      again.header_limit(64 * 1024);
      auto const used = again.put(boost::asio::buffer(bytes), ec);
      if (ec || !again.is_header_done() || used != bytes.size()) std::abort();
      auto const& head = again.get();
      // ...never carries hop-by-hop headers (but the Upgrade handshake) and is framed as it came.
      if (!upgrade) {
        for (auto field : {http::field::connection, http::field::keep_alive, http::field::te, http::field::upgrade,
                           http::field::proxy_connection}) {
          if (head.find(field) != head.end()) std::abort();
        }
      }
      if (head.count(http::field::content_length) != parsed.count(http::field::content_length)) std::abort();
      if (head.count(http::field::transfer_encoding) != parsed.count(http::field::transfer_encoding)) std::abort();
      if (head.count("X-Real-IP") != 1 || head["X-Real-IP"] != "192.0.2.7") std::abort();
      if (head.count(http::field::host) < 1 || head.count(http::field::via) != 1) std::abort();
    }
  }
  // The same bytes as an upstream's response: what the client gets parses
  // back as one head, without the hop-by-hop fields.
  http::response_parser<http::empty_body> response;
  response.eager(false);
  response.skip(true);
  response.put(boost::asio::buffer(data, size), ec);
  if (ec || !response.is_header_done()) return 0;
  for (unsigned const version : {10u, 11u}) {
    for (bool const keep : {false, true}) {
      edge::proxy::ClientResponseHead const shape{version, keep, keep, !keep};
      auto const bytes = edge::proxy::render_client_response(response.get().base(), shape);
      http::response_parser<http::empty_body> again;
      again.eager(false);
      again.skip(true);
      again.header_limit(64 * 1024);
      auto const used = again.put(boost::asio::buffer(bytes), ec);
      if (ec || !again.is_header_done() || used != bytes.size()) std::abort();
      auto const& head = again.get();
      if (head.find(http::field::keep_alive) != head.end() || head.find(http::field::upgrade) != head.end()) std::abort();
      if (head.keep_alive() != keep) std::abort();
      if (head.count(http::field::server) != (keep ? 1u : 0u)) std::abort();
    }
  }
  return 0;
}
