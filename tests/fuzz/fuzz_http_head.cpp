// libFuzzer target: HTTP request head handling. The bytes go through Beast's
// request parser as the proxy configures it; a head that parses then meets the
// smuggling checks and, when it passes, the rewriting it would get on its way
// upstream (hop-by-hop stripping, allow-list, target mapping, forwarding
// headers), under two route shapes.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>

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
    http::request_header<> head = parsed.base();
    edge::proxy::rewrite_request_head(head, route, client, false);
    // What goes upstream never carries hop-by-hop headers and is framed as it came.
    for (auto field : {http::field::connection, http::field::keep_alive, http::field::te, http::field::upgrade,
                       http::field::proxy_connection}) {
      if (head.find(field) != head.end()) std::abort();
    }
    if (head.count(http::field::content_length) != parsed.count(http::field::content_length)) std::abort();
    if (head.count(http::field::transfer_encoding) != parsed.count(http::field::transfer_encoding)) std::abort();
    if (head["X-Real-IP"] != "192.0.2.7") std::abort();
    // The rewritten head serializes and parses back.
    http::request<http::empty_body> out{head};
    std::ostringstream text;
    text << out.base();
    http::request_parser<http::empty_body> again;
    again.eager(false);
    auto const bytes = text.str();
    again.put(boost::asio::buffer(bytes), ec);
    if (ec && ec != http::error::need_more) std::abort();
  }
  return 0;
}
