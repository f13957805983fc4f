// The per-route rate limiter (token bucket + concurrency) with an explicit
// clock, and the pure head rendering used by the proxy (each rendered head
// parsed back with Beast).
#include <gtest/gtest.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json.hpp>
#include <string>
#include <vector>
#include <edge/proxy/access_log.hpp>

#include "http_head.hpp"
#include "rate_limiter.hpp"

namespace edge::proxy {
namespace {

namespace http = boost::beast::http;
using Verdict = RateLimiter::Verdict;
using std::chrono::milliseconds;

TEST(RateLimiter, BurstThenRefillAtTheRate) {
  RateLimit limits;
  limits.rate = 2;
  limits.burst = 3;
  RateLimiter limiter(limits);
  auto const t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(limiter.admit("192.0.2.1", t0), Verdict::admitted);
    limiter.release("192.0.2.1");
  }
  EXPECT_EQ(limiter.admit("192.0.2.1", t0), Verdict::rate_limited);
  EXPECT_EQ(limiter.admit("192.0.2.2", t0), Verdict::admitted) << "buckets are per client address";
  limiter.release("192.0.2.2");
  EXPECT_EQ(limiter.admit("192.0.2.1", t0 + milliseconds(400)), Verdict::rate_limited) << "0.8 tokens";
  EXPECT_EQ(limiter.admit("192.0.2.1", t0 + milliseconds(500)), Verdict::admitted) << "one token after 0.5 s";
  limiter.release("192.0.2.1");
  EXPECT_EQ(limiter.admit("192.0.2.1", t0 + milliseconds(500)), Verdict::rate_limited);
  // A long pause refills to the burst, no more.
  auto const later = t0 + std::chrono::seconds(100);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(limiter.admit("192.0.2.1", later), Verdict::admitted);
    limiter.release("192.0.2.1");
  }
  EXPECT_EQ(limiter.admit("192.0.2.1", later), Verdict::rate_limited);
}

TEST(RateLimiter, ConcurrencyPerClientAndPerRoute) {
  RateLimit limits;
  limits.max_connections = 3;
  limits.max_connections_per_client = 2;
  RateLimiter limiter(limits);
  auto const now = RateLimiter::Clock::now();
  EXPECT_EQ(limiter.admit("a", now), Verdict::admitted);
  EXPECT_EQ(limiter.admit("a", now), Verdict::admitted);
  EXPECT_EQ(limiter.admit("a", now), Verdict::too_many_connections) << "per client";
  EXPECT_EQ(limiter.admit("b", now), Verdict::admitted);
  EXPECT_EQ(limiter.admit("c", now), Verdict::too_many_connections) << "per route";
  limiter.release("a");
  EXPECT_EQ(limiter.admit("c", now), Verdict::admitted) << "a released place is free again";
  EXPECT_EQ(limiter.admit("e", now), Verdict::too_many_connections);
  {
    RateTicket ticket;
    ticket = RateTicket(&limiter, "b");  // the request of "b" ends with its ticket
  }
  EXPECT_EQ(limiter.admit("e", now), Verdict::admitted);
}

TEST(RateLimiter, RefusedRequestsTakeNoToken) {
  RateLimit limits;
  limits.rate = 1;
  limits.burst = 1;
  limits.max_connections_per_client = 1;
  RateLimiter limiter(limits);
  auto const now = RateLimiter::Clock::now();
  ASSERT_EQ(limiter.admit("a", now), Verdict::admitted);
  EXPECT_EQ(limiter.admit("a", now + std::chrono::seconds(5)), Verdict::too_many_connections);
  limiter.release("a");
  EXPECT_EQ(limiter.admit("a", now + std::chrono::seconds(5)), Verdict::admitted)
      << "the concurrency refusal did not spend the refilled token";
}

HttpRoute route_to(std::string host, std::uint16_t port, std::string base = "/") {
  HttpRoute route;
  route.path_prefix = "/api/";
  route.upstream.host = std::move(host);
  route.upstream.port = port;
  route.upstream.base_path = std::move(base);
  return route;
}

http::request_header<> request(std::initializer_list<std::pair<char const*, char const*>> fields) {
  http::request_header<> req;
  req.method(http::verb::get);
  req.target("/api/items?x=1");
  req.version(11);
  for (auto const& [name, value] : fields) req.insert(name, value);
  return req;
}

// The bytes that go upstream, parsed back.
http::request_header<> sent_upstream(http::request_header<> const& req, HttpRoute const& route,
                                     HttpClientInfo const& client, bool upgrade = false) {
  auto const bytes = render_upstream_request(req, route, client, upgrade);
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(bytes), ec);
  EXPECT_FALSE(ec) << ec.message() << "\n" << bytes;
  EXPECT_TRUE(parser.is_header_done()) << bytes;
  EXPECT_TRUE(bytes.ends_with("\r\n\r\n"));
  return parser.release().base();
}

TEST(HttpHead, UpstreamRequestStripsHopByHopAndAddsForwardingHeaders) {
  auto route = route_to("10.0.0.5", 8080, "/v2/");
  auto req = request({{"Host", "edge.test"},
                      {"Connection", "keep-alive, X-Hop"},
                      {"X-Hop", "1"},
                      {"TE", "trailers"},
                      {"X-Forwarded-For", "198.51.100.1"},
                      {"X-Real-IP", "203.0.113.66"},
                      {"Via", "1.0 spoofed"},
                      {"Accept", "*/*"}});
  req.version(10);
  auto const sent = sent_upstream(req, route, HttpClientInfo{"192.0.2.9", "edge.test", "id"});
  EXPECT_EQ(sent.find("X-Hop"), sent.end());
  EXPECT_EQ(sent.find(http::field::te), sent.end());
  EXPECT_EQ(sent.find(http::field::connection), sent.end());
  EXPECT_EQ(sent.version(), 11) << "the upstream connection is kept: HTTP/1.1";
  EXPECT_EQ(sent["X-Forwarded-For"], "198.51.100.1, 192.0.2.9");
  EXPECT_EQ(sent.count("X-Real-IP"), 1u);
  EXPECT_EQ(sent["X-Real-IP"], "192.0.2.9");
  EXPECT_EQ(sent["X-Forwarded-Proto"], "https");
  EXPECT_EQ(sent["X-Forwarded-Host"], "edge.test");
  EXPECT_EQ(sent.count(http::field::host), 1u);
  EXPECT_EQ(sent[http::field::host], "10.0.0.5:8080");
  EXPECT_EQ(sent.count(http::field::via), 1u);
  EXPECT_EQ(sent[http::field::via], "1.1 edge");
  EXPECT_EQ(sent.target(), "/v2/items?x=1");
  EXPECT_EQ(sent[http::field::accept], "*/*");
}

TEST(HttpHead, UpstreamRequestKeepsTheHostWhenAskedAndTheUpgradeOfAWebSocket) {
  auto route = route_to("10.0.0.5", 80);
  route.preserve_host = true;
  route.websocket = true;
  auto req = request({{"Host", "edge.test"},
                      {"Connection", "Upgrade"},
                      {"Upgrade", "websocket"},
                      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                      {"Sec-WebSocket-Version", "13"}});
  auto const sent = sent_upstream(req, route, HttpClientInfo{"192.0.2.9", "", "id"}, true);
  EXPECT_EQ(sent[http::field::host], "edge.test");
  EXPECT_EQ(sent[http::field::upgrade], "websocket");
  EXPECT_EQ(sent[http::field::connection], "Upgrade");
  EXPECT_EQ(sent[http::field::sec_websocket_key], "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(sent.count("X-Forwarded-For"), 1u);
  // Not an upgrade: the same head loses its hop-by-hop headers.
  auto const plain = sent_upstream(req, route, HttpClientInfo{"192.0.2.9", "", "id"});
  EXPECT_EQ(plain.find(http::field::upgrade), plain.end());
  EXPECT_EQ(plain.find(http::field::connection), plain.end());
  EXPECT_EQ(plain[http::field::sec_websocket_key], "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(HttpHead, AllowListKeepsListedAndFramingHeaders) {
  auto route = route_to("backend", 443);
  route.upstream.tls = true;
  route.forward_headers = std::vector<std::string>{"accept", "x-keep"};
  auto req = request({{"Host", "edge.test"},
                      {"Accept", "*/*"},
                      {"X-KEEP", "1"},
                      {"Cookie", "c"},
                      {"Content-Length", "3"},
                      {"X-Forwarded-For", "198.51.100.1"}});
  auto const sent = sent_upstream(req, route, HttpClientInfo{"192.0.2.9", "", "id"});
  EXPECT_EQ(sent["X-Keep"], "1");
  EXPECT_EQ(sent[http::field::accept], "*/*");
  EXPECT_EQ(sent.find(http::field::cookie), sent.end());
  EXPECT_EQ(sent[http::field::content_length], "3");
  EXPECT_EQ(sent["X-Forwarded-For"], "192.0.2.9") << "the client's XFF is not on the list; ours is added";
  EXPECT_EQ(sent[http::field::host], "backend") << "default https port left out of Host";
}

TEST(HttpHead, AmbiguousFraming) {
  EXPECT_TRUE(ambiguous_framing(request({{"Content-Length", "1"}, {"Transfer-Encoding", "chunked"}})));
  EXPECT_TRUE(ambiguous_framing(request({{"Transfer-Encoding", "chunked, identity"}})));
  EXPECT_TRUE(ambiguous_framing(request({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})));
  EXPECT_FALSE(ambiguous_framing(request({{"Transfer-Encoding", "chunked"}})));
  EXPECT_FALSE(ambiguous_framing(request({{"Content-Length", "10"}})));
}

TEST(AccessLog, RecordAsJson) {
  AccessRecord r;
  r.timestamp_us = 1'700'000'000'123'456;
  r.connection_id = "abc-0-7";
  r.client_address = "192.0.2.9";
  r.method = "GET";
  r.path = "/x\"y";
  r.status = 499;
  r.bytes_in = 3;
  r.bytes_out = 4;
  r.duration_us = 10;
  r.upstream_duration_us = 8;
  r.upstream_address = "127.0.0.1:9";
  r.route = "routes[0]";
  auto const v = boost::json::parse(to_json(r)).as_object();
  EXPECT_EQ(v.at("@timestamp").as_string(), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(v.at("edge.connection.id").as_string(), "abc-0-7");
  EXPECT_EQ(v.at("url.path").as_string(), "/x\"y");
  EXPECT_EQ(v.at("http.response.status_code").to_number<int>(), 499);
  EXPECT_EQ(v.at("edge.upstream.address").as_string(), "127.0.0.1:9");
  EXPECT_EQ(v.at("edge.upstream.duration_us").as_int64(), 8);
}

// What the client gets instead of the upstream's head, parsed back.
http::response_header<> sent_to_client(http::response_header<> const& res, ClientResponseHead const& head) {
  auto const bytes = render_client_response(res, head);
  http::response_parser<http::empty_body> parser;
  parser.eager(false);
  parser.skip(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(bytes), ec);
  EXPECT_FALSE(ec) << ec.message() << "\n" << bytes;
  EXPECT_TRUE(parser.is_header_done()) << bytes;
  return parser.release().base();
}

http::response_header<> upstream_response() {
  http::response_header<> res;
  res.result(http::status::not_found);
  res.reason("Nowhere To Be Found");
  res.version(11);
  res.insert(http::field::server, "nginx");
  res.insert(http::field::content_type, "text/plain");
  res.insert(http::field::connection, "keep-alive, X-Private");
  res.insert("X-Private", "secret");
  res.insert(http::field::keep_alive, "timeout=5");
  res.insert(http::field::content_length, "100");
  res.insert("X-Repeated", "1");
  res.insert("X-Repeated", "2");
  return res;
}

TEST(ClientResponse, HopByHopAndServerReplacedFieldsKeptInOrder) {
  auto const bytes = render_client_response(upstream_response(), ClientResponseHead{});
  EXPECT_TRUE(bytes.starts_with("HTTP/1.1 404 Nowhere To Be Found\r\n")) << bytes;
  auto const sent = sent_to_client(upstream_response(), ClientResponseHead{});
  EXPECT_EQ(sent.find(http::field::connection), sent.end()) << "HTTP/1.1 is persistent without it";
  EXPECT_EQ(sent.find(http::field::keep_alive), sent.end());
  EXPECT_EQ(sent.find("X-Private"), sent.end());
  EXPECT_EQ(sent[http::field::server], "edge");
  EXPECT_EQ(sent.count(http::field::server), 1u);
  EXPECT_EQ(sent[http::field::content_length], "100");
  EXPECT_FALSE(sent[http::field::date].empty()) << "a Date when the upstream sent none";
  std::vector<std::string> repeated;
  for (auto const& f : sent)
    if (f.name_string() == "X-Repeated") repeated.emplace_back(f.value());
  EXPECT_EQ(repeated, (std::vector<std::string>{"1", "2"}));
  EXPECT_LT(bytes.find("Content-Type"), bytes.find("Content-Length")) << "the upstream's order stays";
}

TEST(ClientResponse, ConnectionHeaderFollowsTheClientsVersion) {
  auto res = upstream_response();
  res.insert(http::field::date, "Sun, 06 Nov 1994 08:49:37 GMT");
  auto const close11 = sent_to_client(res, ClientResponseHead{11, false, false, false});
  EXPECT_EQ(close11[http::field::connection], "close");
  EXPECT_EQ(close11.find(http::field::server), close11.end()) << "server_header off: none at all";
  EXPECT_EQ(close11[http::field::date], "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(close11.count(http::field::date), 1u);
  auto const keep10 = sent_to_client(res, ClientResponseHead{10, true, true, false});
  EXPECT_EQ(keep10.version(), 10);
  EXPECT_EQ(keep10[http::field::connection], "keep-alive");
  auto const close10 = sent_to_client(res, ClientResponseHead{10, false, true, false});
  EXPECT_EQ(close10.find(http::field::connection), close10.end()) << "HTTP/1.0 closes without it";
}

TEST(ClientResponse, ReframedBodyIsAnnouncedAsChunked) {
  http::response_header<> res;
  res.result(599);  // no reason phrase from the upstream: the standard one
  res.version(10);
  auto const bytes = render_client_response(res, ClientResponseHead{11, true, true, true});
  EXPECT_TRUE(bytes.starts_with("HTTP/1.1 599 ")) << bytes;
  auto const sent = sent_to_client(res, ClientResponseHead{11, true, true, true});
  EXPECT_EQ(sent[http::field::transfer_encoding], "chunked");
}

}  // namespace
}  // namespace edge::proxy
