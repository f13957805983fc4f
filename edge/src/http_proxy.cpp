#include "http_proxy.hpp"

#include "upstream_pool.hpp"

#include <edge/proxy/proxy_metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kBodyLimit = 64ull << 20;  // buffered bodies until the streaming proxy lands
constexpr auto kClientIdleTimeout = std::chrono::seconds(60);

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Hop-by-hop headers (RFC 9110 section 7.6.1) never cross the proxy.
void strip_hop_by_hop(http::fields& fields) {
  // Headers named in Connection are hop-by-hop too.
  std::vector<std::string> named;
  for (auto const& f : fields) {
    if (f.name() != http::field::connection) continue;
    std::string_view value = f.value();
    while (!value.empty()) {
      auto comma = value.find(',');
      auto token = value.substr(0, comma);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
      if (!token.empty()) named.emplace_back(token);
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    }
  }
  for (auto const& name : named) fields.erase(name);
  for (auto field : {http::field::connection, http::field::keep_alive, http::field::proxy_connection, http::field::te,
                     http::field::trailer, http::field::transfer_encoding, http::field::upgrade,
                     http::field::proxy_authorization, http::field::proxy_authenticate}) {
    fields.erase(field);
  }
}

Response error_response(http::status status, unsigned version, std::string_view text) {
  Response res{status, version};
  res.set(http::field::content_type, "text/plain");
  res.set(http::field::server, "edge");
  res.body() = std::string(text) + "\n";
  res.prepare_payload();
  return res;
}

HttpRoute const* find_route(ProxyConfig const& config, std::string_view target) {
  auto const path = target.substr(0, target.find('?'));
  for (auto const& route : config.routes) {
    if (path.starts_with(route.path_prefix)) return &route;
  }
  return nullptr;
}

std::string upstream_target(HttpRoute const& route, std::string_view target) {
  auto const& base = route.upstream.base_path;
  if (base.empty() || base == "/" || route.path_prefix == base) return std::string(target);
  std::string rest(target.substr(route.path_prefix.size()));
  std::string out = base;
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') out.pop_back();
  if (!out.empty() && out.back() != '/' && !rest.empty() && rest.front() != '/' && rest.front() != '?') out += '/';
  return out + rest;
}

enum class ForwardFailure { none, connect, timeout, io };

std::string pool_key(HttpRoute const& route) {
  return route.upstream.host + ":" + std::to_string(route.upstream.port);
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> connect(HttpRoute const& route, std::chrono::seconds timeout,
                                                             ForwardFailure& failure) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_error, endpoints] =
      co_await resolver.async_resolve(route.upstream.host, std::to_string(route.upstream.port), use_tuple);
  if (resolve_error) {
    failure = ForwardFailure::connect;
    co_return nullptr;
  }
  auto connection = std::make_unique<UpstreamConnection>(beast::tcp_stream(executor));
  connection->stream.expires_after(timeout);
  auto [connect_error, endpoint] = co_await connection->stream.async_connect(endpoints, use_tuple);
  if (connect_error) {
    failure = connect_error == beast::error::timeout ? ForwardFailure::timeout : ForwardFailure::connect;
    co_return nullptr;
  }
  boost::system::error_code ignored;
  connection->stream.socket().set_option(tcp::no_delay(true), ignored);
  co_return connection;
}

asio::awaitable<ForwardFailure> exchange(UpstreamConnection& conn, Request& request, Response& response,
                                         std::chrono::seconds timeout, bool& response_started) {
  conn.stream.expires_after(timeout);
  auto [write_error, written] = co_await http::async_write(conn.stream, request, use_tuple);
  if (write_error) co_return write_error == beast::error::timeout ? ForwardFailure::timeout : ForwardFailure::io;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kBodyLimit);
  if (request.method() == http::verb::head) parser.skip(true);
  conn.stream.expires_after(timeout);
  auto [read_error, read] = co_await http::async_read(conn.stream, conn.buffer, parser, use_tuple);
  response_started = read > 0 || parser.got_some();
  if (read_error) co_return read_error == beast::error::timeout ? ForwardFailure::timeout : ForwardFailure::io;
  response = parser.release();
  co_return ForwardFailure::none;
}

Response failure_response(ForwardFailure failure, unsigned version, bool connecting) {
  count::error(failure == ForwardFailure::timeout ? ProxyError::upstream_timeout
               : connecting                       ? ProxyError::upstream_unreachable
                                                  : ProxyError::upstream_failed);
  if (failure == ForwardFailure::timeout) {
    return error_response(http::status::gateway_timeout, version,
                          connecting ? "upstream connect timeout" : "upstream timeout");
  }
  return error_response(http::status::bad_gateway, version, connecting ? "upstream unreachable" : "upstream failed");
}

asio::awaitable<Response> forward(Request request, UpstreamPool& pool, ProxyConfig const& config,
                                  HttpClientInfo const& client) {
  HttpRoute const* route = find_route(config, request.target());
  if (!route) {
    count::error(ProxyError::no_route);
    co_return error_response(http::status::not_found, request.version(), "no route");
  }

  unsigned const client_version = request.version();
  bool const head = request.method() == http::verb::head;
  strip_hop_by_hop(request);
  request.target(upstream_target(*route, request.target()));
  request.version(11);
  request.keep_alive(true);
  std::string forwarded_for(request["X-Forwarded-For"]);
  forwarded_for = forwarded_for.empty() ? client.address : forwarded_for + ", " + client.address;
  request.set("X-Forwarded-For", forwarded_for);
  request.set("X-Real-IP", client.address);
  request.set("X-Forwarded-Proto", "https");
  if (request[http::field::host].empty() && !client.server_name.empty()) {
    request.set(http::field::host, client.server_name);
  }
  if (!request[http::field::host].empty()) request.set("X-Forwarded-Host", request[http::field::host]);
  request.set(http::field::via, "1.1 edge");
  request.prepare_payload();

  auto const key = pool_key(*route);
  Response response;
  // A pooled connection may have been closed by the upstream while idle:
  // retry once on a fresh one if nothing of a response arrived.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto connection = pool.take(key);
    bool const reused = connection != nullptr;
    if (!reused) {
      ForwardFailure failure = ForwardFailure::none;
      connection = co_await connect(*route, config.upstream_timeout, failure);
      if (!connection) co_return failure_response(failure, client_version, true);
    }
    bool response_started = false;
    auto failure = co_await exchange(*connection, request, response, config.upstream_timeout, response_started);
    if (failure == ForwardFailure::none) {
      if (response.keep_alive()) pool.give_back(key, std::move(connection));
      break;
    }
    if (reused && !response_started && failure == ForwardFailure::io) continue;
    co_return failure_response(failure, client_version, false);
  }
  strip_hop_by_hop(response);
  response.version(client_version);
  if (!head) response.prepare_payload();
  co_return response;
}

}  // namespace

asio::awaitable<void> serve_http(TlsStream& stream, ProxyConfig const& config, UpstreamPool& pool,
                                  HttpClientInfo const& client) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    beast::get_lowest_layer(stream).expires_after(kClientIdleTimeout);
    auto [read_error, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_error == http::error::end_of_stream) break;
    if (read_error) {
      bool const bad_request = read_error.category() == http::make_error_code(http::error::bad_target).category();
      if (bad_request) {
        auto res = error_response(http::status::bad_request, 11, "bad request");
        res.keep_alive(false);
        count::error(ProxyError::bad_request);
        count::request(res.result_int());
        co_await http::async_write(stream, res, use_tuple);
      }
      co_return;  // timeout, reset, truncation: nothing to say to a gone client
    }
    Request request = parser.release();
    bool const client_keep_alive = request.keep_alive();
    Response response = co_await forward(std::move(request), pool, config, client);
    response.keep_alive(client_keep_alive && response.keep_alive());
    response.set(http::field::server, "edge");
    bool const keep = response.keep_alive();
    beast::get_lowest_layer(stream).expires_after(config.upstream_timeout);
    auto [write_error, written] = co_await http::async_write(stream, response, use_tuple);
    count::request(response.result_int());
    if (write_error || !keep) break;
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(use_tuple);
}

}  // namespace edge::proxy
