#include "http_proxy.hpp"
#include "connection_control.hpp"

#include <edge/proxy/proxy_metrics.hpp>

#include "tcp_relay.hpp"
#include "upstream_pool.hpp"

#include <edge/proxy/proxy_metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <cctype>

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool HttpRoute::matches(std::string_view host_header, std::string_view path_only) const {
  if (!host.empty()) {
    auto const colon = host_header.rfind(':');
    auto const name = (colon != std::string_view::npos && host_header.find(']') == std::string_view::npos &&
                       host_header.find(':') == colon)
                          ? host_header.substr(0, colon)
                          : host_header;
    if (!beast::iequals(name, host)) return false;
  }
  if (!path.empty()) return path_only == path;
  if (compiled_regex) return std::regex_search(path_only.begin(), path_only.end(), *compiled_regex);
  return path_only.starts_with(path_prefix);
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 16 * 1024;  // beyond it: 431
constexpr std::size_t kChunk = 16 * 1024;          // bodies stream through a buffer of this size

// Hop-by-hop headers (RFC 9110 section 7.6.1) never cross the proxy; the
// message framing (Content-Length / chunked) is kept so bodies stream as-is.
template <class Fields>
void strip_hop_by_hop(Fields& fields) {
  std::vector<std::string> named;
  for (auto const& f : fields) {
    if (f.name() != http::field::connection) continue;
    std::string_view value = f.value();
    while (!value.empty()) {
      auto comma = value.find(',');
      auto token = value.substr(0, comma);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
      if (!token.empty() && !beast::iequals(token, "close") && !beast::iequals(token, "keep-alive")) {
        named.emplace_back(token);
      }
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    }
  }
  for (auto const& name : named) {
    if (!beast::iequals(name, "transfer-encoding") && !beast::iequals(name, "content-length")) fields.erase(name);
  }
  for (auto field : {http::field::connection, http::field::keep_alive, http::field::proxy_connection, http::field::te,
                     http::field::trailer, http::field::upgrade, http::field::proxy_authorization,
                     http::field::proxy_authenticate}) {
    fields.erase(field);
  }
}

http::response<http::string_body> error_response(http::status status, std::string_view text, bool server_header) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "text/plain");
  if (server_header) res.set(http::field::server, "edge");
  res.body() = std::string(text) + "\n";
  res.keep_alive(false);
  res.prepare_payload();
  return res;
}

HttpRoute const* find_route(ProxyConfig const& config, std::string_view host, std::string_view target) {
  auto const path = target.substr(0, target.find('?'));
  for (auto const& route : config.routes) {
    if (route.matches(host, path)) return &route;
  }
  return nullptr;
}

std::string upstream_target(HttpRoute const& route, std::string_view target) {
  auto const& base = route.upstream.base_path;
  if (base.empty() || base == "/" || route.compiled_regex) return std::string(target);
  auto const query = target.find('?');
  if (!route.path.empty()) return base + std::string(query == std::string_view::npos ? "" : target.substr(query));
  if (route.path_prefix == base) return std::string(target);
  std::string rest(target.substr(route.path_prefix.size()));
  std::string out = base;
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') out.pop_back();
  if (!out.empty() && out.back() != '/' && !rest.empty() && rest.front() != '/' && rest.front() != '?') out += '/';
  return out + rest;
}

std::string pool_key(HttpRoute const& route) { return route.upstream.host + ":" + std::to_string(route.upstream.port); }

std::string upstream_authority(HttpRoute const& route) {
  auto const& host = route.upstream.host;
  bool const ipv6 = host.find(':') != std::string::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  if (route.upstream.port != 80) {
    out += ':';
    out += std::to_string(route.upstream.port);
  }
  return out;
}

void add_forwarding_headers(http::request_header<>& req, HttpRoute const& route, HttpClientInfo const& client) {
  std::string forwarded_for(req["X-Forwarded-For"]);
  forwarded_for = forwarded_for.empty() ? client.address : forwarded_for + ", " + client.address;
  req.set("X-Forwarded-For", forwarded_for);
  req.set("X-Real-IP", client.address);
  req.set("X-Forwarded-Proto", "https");
  std::string host(req[http::field::host]);
  if (host.empty()) host = client.server_name;
  if (!host.empty()) req.set("X-Forwarded-Host", host);
  if (!route.preserve_host || req[http::field::host].empty()) req.set(http::field::host, upstream_authority(route));
  req.set(http::field::via, "1.1 edge");
}

// Request smuggling defences beyond what Beast's parser already refuses
// (conflicting Content-Length, bad chunk framing, obs-fold in field values).
bool ambiguous_framing(http::request_header<> const& req) {
  bool const has_te = req.find(http::field::transfer_encoding) != req.end();
  bool const has_cl = req.find(http::field::content_length) != req.end();
  if (has_te && has_cl) return true;
  if (req.count(http::field::content_length) > 1 || req.count(http::field::transfer_encoding) > 1) return true;
  if (has_te) {
    // Only a plain "chunked" is accepted: obfuscations ("xchunked", "chunked, identity") are desync tools.
    auto const te = req[http::field::transfer_encoding];
    if (!beast::iequals(te, "chunked")) return true;
  }
  for (auto const& f : req) {
    auto const name = f.name_string();
    if (name.empty()) return true;
    for (char c : name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos)) {
        return true;
      }
    }
  }
  return false;
}

// Whether the request line ends in a syntactically valid "HTTP/d.d".
bool names_an_http_version(beast::flat_buffer const& buffer) {
  std::string_view const data(static_cast<char const*>(buffer.data().data()), buffer.size());
  auto line = data.substr(0, data.find("\r\n"));
  if (line.size() < 8) return false;
  auto const version = line.substr(line.size() - 8);
  return version.starts_with("HTTP/") && std::isdigit(static_cast<unsigned char>(version[5])) && version[6] == '.' &&
         std::isdigit(static_cast<unsigned char>(version[7]));
}

template <class Stream, class Message>
asio::awaitable<bool> write_message(Stream& stream, Message& message) {
  auto [error, n] = co_await http::async_write(stream, message, use_tuple);
  co_return !error;
}

// Streams the body of the message `parser` is reading from `in` to `out`
// through `serializer`, a chunk at a time: no body is ever held whole.
template <class InStream, class OutStream, bool isRequest>
asio::awaitable<boost::system::error_code> stream_body(InStream& in, beast::flat_buffer& in_buffer,
                                                       http::parser<isRequest, http::buffer_body>& parser,
                                                       OutStream& out, http::serializer<isRequest, http::buffer_body>& serializer,
                                                       std::chrono::seconds in_timeout, std::chrono::seconds out_timeout) {
  std::array<char, kChunk> chunk;
  auto& body = parser.get().body();
  boost::system::error_code error;
  do {
    if (!parser.is_done()) {
      body.data = chunk.data();
      body.size = chunk.size();
      beast::get_lowest_layer(in).expires_after(in_timeout);
      auto [read_error, n] = co_await http::async_read(in, in_buffer, parser, use_tuple);
      if (read_error && read_error != http::error::need_buffer) co_return read_error;
      body.size = chunk.size() - body.size;
      body.data = chunk.data();
      body.more = !parser.is_done();
    } else {
      body.data = nullptr;
      body.size = 0;
    }
    beast::get_lowest_layer(out).expires_after(out_timeout);
    auto [write_error, n] = co_await http::async_write(out, serializer, use_tuple);
    if (write_error && write_error != http::error::need_buffer) co_return write_error;
  } while (!parser.is_done() || !serializer.is_done());
  co_return error;
}

// A WebSocket (or any) Upgrade: the request and the 101 cross as HTTP, then
// bytes flow both ways until either side closes.
asio::awaitable<void> upgrade(TlsStream& stream, beast::flat_buffer& buffer, http::request_header<>& req,
                              HttpRoute const& route, ProxyConfig const& config) {
  std::string why;
  TcpUpstream target{route.upstream.host, route.upstream.port};
  auto upstream = co_await connect_tcp(target, config.upstream_timeout, why);
  if (!upstream) {
    auto res = error_response(http::status::bad_gateway, "upstream unreachable", config.server_header);
    count::error(ProxyError::upstream_unreachable);
    count::request(res.result_int());
    co_await write_message(stream, res);
    co_return;
  }
  http::request<http::empty_body> head{std::move(req)};
  upstream->expires_after(config.upstream_timeout);
  if (!co_await write_message(*upstream, head)) co_return;
  beast::flat_buffer upstream_buffer;
  http::response_parser<http::empty_body> res_parser;
  res_parser.skip(true);  // a 101 has no body; anything else is answered and the connection closed
  auto [read_error, n] = co_await http::async_read_header(*upstream, upstream_buffer, res_parser, use_tuple);
  if (read_error) {
    auto res = error_response(http::status::bad_gateway, "upstream failed", config.server_header);
    count::error(ProxyError::upstream_failed);
    count::request(res.result_int());
    co_await write_message(stream, res);
    co_return;
  }
  auto response = res_parser.release();
  bool const switched = response.result() == http::status::switching_protocols;
  if (!switched) response.keep_alive(false);
  count::request(response.result_int());
  if (!co_await write_message(stream, response) || !switched) co_return;
  // Bytes that arrived behind the headers on either side go first.
  if (buffer.size() > 0) {
    auto [e, w] = co_await asio::async_write(*upstream, buffer.data(), use_tuple);
    if (e) co_return;
    buffer.clear();
  }
  if (upstream_buffer.size() > 0) {
    auto [e, w] = co_await asio::async_write(stream, upstream_buffer.data(), use_tuple);
    if (e) co_return;
  }
  co_await relay(stream, *upstream, false);
}

struct Exchange {
  bool keep_client = false;  // the client connection can carry another request
};

asio::awaitable<Exchange> forward(TlsStream& stream, beast::flat_buffer& buffer,
                                  http::request_parser<http::buffer_body>& parser, HttpRoute const& route,
                                  UpstreamPool& pool, ProxyConfig const& config, HttpClientInfo const& client) {
  auto& req = parser.get();
  unsigned const client_version = req.version();
  bool const client_keep_alive = req.keep_alive();
  bool const head = req.method() == http::verb::head;
  bool const expect_continue = beast::iequals(req[http::field::expect], "100-continue");
  bool const has_body = !parser.is_done();
  auto answer = [&](http::status status, std::string_view text) -> asio::awaitable<Exchange> {
    count::error(status == http::status::gateway_timeout ? ProxyError::upstream_timeout
                 : text == "upstream unreachable"        ? ProxyError::upstream_unreachable
                                                          : ProxyError::upstream_failed);
    count::request(static_cast<unsigned>(status));
    auto res = error_response(status, text, config.server_header);
    res.version(client_version);
    // The request body was not read: the connection cannot carry another request.
    co_await write_message(stream, res);
    co_return Exchange{false};
  };

  strip_hop_by_hop(req);
  req.target(upstream_target(route, req.target()));
  req.version(11);
  req.keep_alive(true);
  add_forwarding_headers(req.base(), route, client);

  auto const key = pool_key(route);
  std::unique_ptr<UpstreamConnection> connection;
  std::optional<http::response_parser<http::buffer_body>> res_parser;
  // A pooled connection may have been closed by the upstream while idle. A
  // request without a body can be retried on a fresh one; one whose body has
  // started streaming cannot.
  for (int attempt = 0; attempt < 2 && !res_parser; ++attempt) {
    connection = pool.take(key);
    bool const reused = connection != nullptr;
    if (!reused) {
      std::string why;
      TcpUpstream target{route.upstream.host, route.upstream.port};
      auto fresh = co_await connect_tcp(target, config.upstream_timeout, why);
      if (!fresh) co_return co_await answer(http::status::bad_gateway, "upstream unreachable");
      connection = std::make_unique<UpstreamConnection>(std::move(*fresh));
    }
    http::request_serializer<http::buffer_body> serializer{req};
    connection->stream.expires_after(config.upstream_timeout);
    auto [header_error, n] = co_await http::async_write_header(connection->stream, serializer, use_tuple);
    if (header_error) {
      if (reused) continue;
      co_return co_await answer(http::status::bad_gateway, "upstream failed");
    }
    res_parser.emplace();
    res_parser->body_limit(boost::none);
    res_parser->skip(head);
    if (expect_continue) {
      // Ask the upstream first; tell the client to send its body only if it agrees.
      connection->stream.expires_after(config.upstream_timeout);
      auto [interim_error, m] =
          co_await http::async_read_header(connection->stream, connection->buffer, *res_parser, use_tuple);
      if (interim_error) {
        res_parser.reset();
        if (reused && interim_error != beast::error::timeout) continue;
        co_return co_await answer(interim_error == beast::error::timeout ? http::status::gateway_timeout
                                                                         : http::status::bad_gateway,
                                  "upstream failed");
      }
      if (res_parser->get().result() == http::status::continue_) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [e, w] = co_await asio::async_write(stream, asio::buffer(kContinue), use_tuple);
        if (e) co_return Exchange{false};
        res_parser.emplace();
        res_parser->body_limit(boost::none);
        res_parser->skip(head);
      } else {
        break;  // a final answer without the body: forwarded below, connection closed after
      }
    }
    if (has_body && !(expect_continue && res_parser->is_header_done())) {
      auto const error =
          co_await stream_body(stream, buffer, parser, connection->stream, serializer, config.client_timeout,
                               config.upstream_timeout);
      if (error) co_return co_await answer(error == beast::error::timeout ? http::status::gateway_timeout
                                                                          : http::status::bad_gateway,
                                           "request body failed");
    }
    if (!res_parser->is_header_done()) {
      connection->stream.expires_after(config.upstream_timeout);
      for (;;) {
        auto [read_error, m] =
            co_await http::async_read_header(connection->stream, connection->buffer, *res_parser, use_tuple);
        if (read_error) {
          res_parser.reset();
          if (reused && !has_body && read_error != beast::error::timeout) break;  // retry on a fresh connection
          co_return co_await answer(read_error == beast::error::timeout ? http::status::gateway_timeout
                                                                        : http::status::bad_gateway,
                                    "upstream failed");
        }
        // Other interim responses (102, 103) are not relayed; wait for the final one.
        if (http::to_status_class(res_parser->get().result()) != http::status_class::informational) break;
        res_parser.emplace();
        res_parser->body_limit(boost::none);
        res_parser->skip(head);
      }
    }
  }
  if (!res_parser) co_return co_await answer(http::status::bad_gateway, "upstream failed");

  auto& res = res_parser->get();
  bool const upstream_keep_alive = res.keep_alive();
  bool const body_unread = has_body && !parser.is_done();
  strip_hop_by_hop(res);
  res.version(client_version);
  // A stopping server finishes this response and closes (graceful stop).
  bool const keep_client = client_keep_alive && !body_unread && !(client.control && client.control->draining());
  res.keep_alive(keep_client);
  if (config.server_header) res.set(http::field::server, "edge");
  else res.erase(http::field::server);
  // A body delimited by the upstream closing cannot be relayed on a kept-alive
  // HTTP/1.1 connection as is: re-frame it as chunked.
  if (!head && !res_parser->is_done() && !res_parser->content_length() && !res_parser->chunked() &&
      client_version == 11) {
    res.chunked(true);
  }
  http::response_serializer<http::buffer_body> res_serializer{res};
  beast::get_lowest_layer(stream).expires_after(config.upstream_timeout);
  auto [header_error, n] = co_await http::async_write_header(stream, res_serializer, use_tuple);
  if (header_error) co_return Exchange{false};
  count::request(res.result_int());
  auto const error =
      co_await stream_body(connection->stream, connection->buffer, *res_parser, stream, res_serializer,
                           config.upstream_timeout, config.client_timeout);
  if (error) co_return Exchange{false};
  // Reused only in a clean state: the whole response read, the whole request sent.
  if (upstream_keep_alive && res_parser->is_done() && !body_unread) pool.give_back(key, std::move(connection));
  co_return Exchange{keep_client && res.keep_alive()};
}

}  // namespace

asio::awaitable<void> serve_http(TlsStream& stream, ProxyConfig const& config, UpstreamPool& pool,
                                 HttpClientInfo const& client) {
  beast::flat_buffer buffer;
  for (bool served = false;; served = true) {
    // Graceful stop: a connection that had its answer gets no further request.
    if (served && client.control && client.control->draining()) break;
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(boost::none);  // bodies stream; nothing is buffered whole
    beast::get_lowest_layer(stream).expires_after(config.client_timeout);
    if (client.control) client.control->set_idle(served && buffer.size() == 0);  // a stop closes it at once
    auto [read_error, read] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
    if (client.control) client.control->set_idle(false);
    if (read_error == http::error::end_of_stream) break;
    if (read_error) {
      // A closed, reset or idle connection has no one to answer; a bad request does.
      bool const parse_error = read_error.category() == http::make_error_code(http::error::bad_target).category();
      if (parse_error) {
        auto status = read_error == http::error::header_limit ? http::status::request_header_fields_too_large
                                                              : http::status::bad_request;
        if (read_error == http::error::bad_version && names_an_http_version(buffer)) {
          status = http::status::http_version_not_supported;  // "HTTP/3.0", "HTTP/2.0": well-formed, not ours
        }
        auto res = error_response(status, std::string(http::obsolete_reason(status)), config.server_header);
        count::error(ProxyError::bad_request);
        count::request(res.result_int());
        co_await write_message(stream, res);
      }
      co_return;
    }
    auto& req = parser.get();
    if (req.version() != 10 && req.version() != 11) {
      auto res = error_response(http::status::http_version_not_supported, "HTTP/1.0 and HTTP/1.1 only",
                                config.server_header);
      count::error(ProxyError::bad_request);
      count::request(res.result_int());
      co_await write_message(stream, res);
      co_return;
    }
    if (ambiguous_framing(req.base())) {
      auto res = error_response(http::status::bad_request, "ambiguous message framing", config.server_header);
      count::error(ProxyError::bad_request);
      count::request(res.result_int());
      co_await write_message(stream, res);
      co_return;
    }
    HttpRoute const* route = find_route(config, req[http::field::host], req.target());
    if (!route) {
      auto res = error_response(http::status::not_found, "no route", config.server_header);
      res.version(req.version());
      bool const can_continue = parser.is_done() && req.keep_alive();
      res.keep_alive(can_continue);
      count::error(ProxyError::no_route);
      count::request(res.result_int());
      co_await write_message(stream, res);
      if (can_continue) continue;
      break;
    }
    if (route->websocket && beast::iequals(req[http::field::upgrade], "websocket")) {
      http::request_header<> head = req.base();
      add_forwarding_headers(head, *route, client);
      head.target(upstream_target(*route, head.target()));
      co_await upgrade(stream, buffer, head, *route, config);
      co_return;
    }
    auto const exchange = co_await forward(stream, buffer, parser, *route, pool, config, client);
    if (!exchange.keep_client) break;
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(use_tuple);
}

}  // namespace edge::proxy
