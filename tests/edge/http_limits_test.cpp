// The per-route rate limiter (token bucket + concurrency) with an explicit
// clock, and the pure request-head rewriting used by the proxy.
#include <gtest/gtest.h>

#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <sstream>
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

TEST(HttpHead, RewriteStripsHopByHopAndAddsForwardingHeaders) {
  auto route = route_to("10.0.0.5", 8080, "/v2/");
  auto req = request({{"Host", "edge.test"},
                      {"Connection", "keep-alive, X-Hop"},
                      {"X-Hop", "1"},
                      {"TE", "trailers"},
                      {"X-Forwarded-For", "198.51.100.1"},
                      {"Accept", "*/*"}});
  rewrite_request_head(req, route, HttpClientInfo{"192.0.2.9", "edge.test", "id"}, false);
  EXPECT_EQ(req.find("X-Hop"), req.end());
  EXPECT_EQ(req.find(http::field::te), req.end());
  EXPECT_EQ(req.find(http::field::connection), req.end());
  EXPECT_EQ(req["X-Forwarded-For"], "198.51.100.1, 192.0.2.9");
  EXPECT_EQ(req["X-Real-IP"], "192.0.2.9");
  EXPECT_EQ(req["X-Forwarded-Proto"], "https");
  EXPECT_EQ(req["X-Forwarded-Host"], "edge.test");
  EXPECT_EQ(req[http::field::host], "10.0.0.5:8080");
  EXPECT_EQ(req[http::field::via], "1.1 edge");
  EXPECT_EQ(req.target(), "/v2/items?x=1");
  EXPECT_EQ(req[http::field::accept], "*/*");
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
  rewrite_request_head(req, route, HttpClientInfo{"192.0.2.9", "", "id"}, false);
  EXPECT_EQ(req["X-Keep"], "1");
  EXPECT_EQ(req[http::field::accept], "*/*");
  EXPECT_EQ(req.find(http::field::cookie), req.end());
  EXPECT_EQ(req[http::field::content_length], "3");
  EXPECT_EQ(req["X-Forwarded-For"], "192.0.2.9") << "the client's XFF is not on the list; ours is added";
  EXPECT_EQ(req[http::field::host], "backend") << "default https port left out of Host";
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

// render_head replaces Beast's serializer for heads whose body passes as is:
// byte for byte what the serializer writes.
template <class Header>
std::string beast_head(Header const& header) {
  std::ostringstream out;
  out << header;
  return out.str();
}

TEST(RenderHead, RequestHeadIsWhatBeastWrites) {
  http::request_header<> req;
  req.method(http::verb::get);
  req.target("/a/b?c=d");
  req.version(11);
  req.set(http::field::host, "edge.test");
  req.insert("X-Forwarded-For", "192.0.2.1");
  req.insert("X-Forwarded-For", "198.51.100.7");
  req.insert("x-custom-lower", "v");
  req.set(http::field::connection, "keep-alive");
  EXPECT_EQ(render_head(req), beast_head(req));
  req.method_string("PURGE");  // not a known verb
  req.version(10);
  EXPECT_EQ(render_head(req), beast_head(req));
}

TEST(RenderHead, ResponseHeadIsWhatBeastWrites) {
  http::response_header<> res;
  res.result(http::status::ok);
  res.version(11);
  res.set(http::field::content_length, "100");
  res.set(http::field::date, "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(render_head(res), beast_head(res));
  res.result(http::status::not_found);
  res.reason("Nowhere To Be Found");  // the upstream's own reason phrase passes
  res.version(10);
  EXPECT_EQ(render_head(res), beast_head(res));
  res.result(599);  // unknown code
  res.reason("");
  EXPECT_EQ(render_head(res), beast_head(res));
}

}  // namespace
}  // namespace edge::proxy
