#include "http_proxy.hpp"

#include "client_connection.hpp"
#include "tls_session.hpp"
#include "connection_control.hpp"

#include "http_head.hpp"
#include "rate_limiter.hpp"
#include "tcp_relay.hpp"
#include "upstream_pool.hpp"
#include "tls_stream.hpp"

#include <edge/proxy/access_log.hpp>
#include <edge/proxy/proxy_metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>

#include <array>
#include <optional>
#include <tuple>
#include <cctype>

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool HttpRoute::matches(std::string_view host_header, std::string_view path_only) const {
  if (!host.empty()) {
    auto const colon = host_header.rfind(':');
    auto const host_name = (colon != std::string_view::npos && host_header.find(']') == std::string_view::npos &&
                            host_header.find(':') == colon)
                               ? host_header.substr(0, colon)
                               : host_header;
    if (!beast::iequals(host_name, host)) return false;
  }
  if (!path.empty()) return path_only == path;
  if (compiled_regex) return std::regex_search(path_only.begin(), path_only.end(), *compiled_regex);
  return path_only.starts_with(path_prefix);
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 16 * 1024;  // beyond it: 431
constexpr std::size_t kChunk = 16 * 1024;          // bodies stream through a buffer of this size
constexpr unsigned kClientClosed = 499;            // nginx's status for "the client went away first"

using Clock = std::chrono::steady_clock;

std::int64_t micros(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

http::response<http::string_body> error_response(http::status status, std::string_view text, bool server_header) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "text/plain");
  if (server_header) res.set(http::field::server, "edge");
  res.set(http::field::date, http_date());
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

// Writes all of `buffers`: at once when the socket takes them, what is left
// asynchronously (see TlsStream::write_some).
template <class Stream, class Buffers>
asio::awaitable<boost::system::error_code> write_all(Stream& stream, Buffers const& buffers) {
  boost::system::error_code error;
  std::size_t const size = asio::buffer_size(buffers);
  std::size_t written = 0;
  while (written < size) {
    beast::buffers_suffix<Buffers> rest(buffers);
    rest.consume(written);
    auto const n = stream.write_some(rest, error);
    if (error || n == 0) break;
    written += n;
  }
  if (written == size) co_return boost::system::error_code{};
  if (error && error != asio::error::would_block) co_return error;
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(written);
  auto [write_error, n] = co_await asio::async_write(stream, rest, use_tuple);
  co_return write_error;
}

struct Streamed {
  boost::system::error_code error;
  bool reading = false;  // the error came from the side being read
};

// A body buffer lent by the worker's thread for one message and given back:
// every proxied response passes through one, and a fresh 16 KiB block per
// response cost a malloc/free pair that fragments the heap.
class ChunkLease {
 public:
  ChunkLease() {
    auto& spare = spares();
    if (spare.empty()) {
      block_ = std::make_unique<std::array<char, kChunk>>();
    } else {
      block_ = std::move(spare.back());
      spare.pop_back();
    }
  }
  ~ChunkLease() {
    auto& spare = spares();
    if (spare.size() < kKept) spare.push_back(std::move(block_));
  }
  ChunkLease(ChunkLease const&) = delete;
  ChunkLease& operator=(ChunkLease const&) = delete;
  char* data() noexcept { return block_->data(); }
  static constexpr std::size_t size() noexcept { return kChunk; }

 private:
  static constexpr std::size_t kKept = 64;  // per worker thread: 1 MiB at most
  static std::vector<std::unique_ptr<std::array<char, kChunk>>>& spares() {
    thread_local std::vector<std::unique_ptr<std::array<char, kChunk>>> list;
    return list;
  }
  std::unique_ptr<std::array<char, kChunk>> block_;
};

// "1a2b\r\n": a chunk's size line.
struct ChunkSizeLine {
  explicit ChunkSizeLine(std::size_t size) {
    char digits[16];
    std::size_t n = 0;
    do {
      digits[n++] = "0123456789abcdef"[size & 0xf];
      size >>= 4;
    } while (size != 0);
    while (n > 0) text[length++] = digits[--n];
    text[length++] = '\r';
    text[length++] = '\n';
  }
  asio::const_buffer buffer() const noexcept { return {text.data(), length}; }
  std::array<char, 18> text{};
  std::size_t length = 0;
};

// Moves the body `parser` reads from `in` to `out`, a piece at a time as it
// arrives: no body is ever held whole, and a stream of events is not held
// back to fill a buffer. `chunked`: each piece goes out as a chunk, and the
// last chunk ends the body (the upstream's chunk framing is checked by the
// parser, never passed through); otherwise the pieces go as they are (a body
// delimited by Content-Length or by the closing). `head` (rendered, or empty
// when already sent) goes with the first piece in one write, one TLS record;
// at once when nothing of the body has arrived yet.
template <class InStream, class OutStream, bool isRequest>
asio::awaitable<Streamed> relay_body(InStream& in, beast::flat_buffer& in_buffer,
                                     http::parser<isRequest, http::buffer_body>& parser, OutStream& out,
                                     std::string_view head, bool chunked, std::chrono::seconds in_timeout,
                                     std::chrono::seconds out_timeout, std::uint64_t& moved) {
  static constexpr std::string_view kCrlf = "\r\n";
  static constexpr std::string_view kLastChunk = "0\r\n\r\n";
  auto& body = parser.get().body();
  std::optional<ChunkLease> chunk;
  bool head_pending = !head.empty();
  if (head_pending && in_buffer.size() == 0 && !parser.is_done()) {
    beast::get_lowest_layer(out).expires_after(out_timeout);
    if (auto write_error = co_await write_all(out, asio::buffer(head))) co_return Streamed{write_error, false};
    head_pending = false;
  }
  for (;;) {
    std::size_t piece = 0;
    if (!parser.is_done()) {
      if (!chunk) chunk.emplace();
      body.data = chunk->data();
      body.size = chunk->size();
      // What is read already (a small body often came with its head) is
      // parsed without a round through the event loop.
      boost::system::error_code read_error = asio::error::would_block;
      if (in_buffer.size() > 0) http::read_some(in, in_buffer, parser, read_error);
      if (read_error == asio::error::would_block && body.size == chunk->size()) {
        beast::get_lowest_layer(in).expires_after(in_timeout);
        std::tie(read_error, std::ignore) = co_await http::async_read_some(in, in_buffer, parser, use_tuple);
      }
      if (read_error && read_error != http::error::need_buffer && read_error != asio::error::would_block)
        co_return Streamed{read_error, true};
      piece = chunk->size() - body.size;
      moved += piece;
    }
    bool const last = parser.is_done();
    // A read that parsed only framing (a chunk header) has nothing to pass
    // on; an empty chunk would end the body.
    ChunkSizeLine const size_line(piece);
    std::array<asio::const_buffer, 5> pieces{};
    std::size_t used = 0;
    if (head_pending) pieces[used++] = asio::buffer(head);
    if (piece > 0) {
      if (chunked) pieces[used++] = size_line.buffer();
      pieces[used++] = asio::const_buffer(chunk->data(), piece);
      if (chunked) pieces[used++] = asio::buffer(kCrlf);
    }
    if (last && chunked) pieces[used++] = asio::buffer(kLastChunk);
    if (used > 0) {
      beast::get_lowest_layer(out).expires_after(out_timeout);
      if (auto write_error = co_await write_all(out, pieces)) co_return Streamed{write_error, false};
      head_pending = false;
    }
    if (last) co_return Streamed{};
  }
}

// Watches the client while the upstream is answering: when the client closes
// or resets, the upstream stream is cancelled so the pending read ends at once.
// It waits for the socket to become readable and then peeks (the bytes of a
// pipelined request stay there for the next read). A plain completion
// handler, not a second coroutine raced against the read: this runs for
// every request.
class ClientWatch {
 public:
  ClientWatch(TlsStream& client, UpstreamStream& upstream)
      : state_(std::make_shared<State>(client, upstream)) {
    arm(state_);
  }
  ~ClientWatch() { stop(); }
  ClientWatch(ClientWatch const&) = delete;
  ClientWatch& operator=(ClientWatch const&) = delete;

  // Ends the watch; its handlers then run (aborted) without touching either stream.
  void stop() noexcept {
    if (!state_->active) return;
    state_->active = false;
    boost::system::error_code ignored;
    state_->client.socket().cancel(ignored);
    if (state_->timer) state_->timer->cancel();
  }
  bool client_gone() const noexcept { return state_->gone; }

 private:
  struct State {
    State(TlsStream& c, UpstreamStream& u) : client(c), upstream(u) {}
    TlsStream& client;
    UpstreamStream& upstream;
    std::optional<asio::steady_timer> timer;  // only when bytes came without a close
    bool active = true;
    bool gone = false;
  };

  static void left(State& state) {
    state.gone = true;
    state.active = false;
    state.upstream.cancel();
  }

  static void arm(std::shared_ptr<State> const& state) {
    bool const watching = state->client.watch([state](boost::system::error_code error, std::size_t n) {
      if (!state->active || error == asio::error::operation_aborted) return;
      if (error || n == 0) return left(*state);  // FIN or RST
      probe_later(state);  // bytes: a pipelined request, or a close_notify with its FIN behind it
    });
    if (!watching) probe_later(state);
  }

  // POLLRDHUP sees the FIN even behind unread bytes (a TLS close_notify, which
  // in TLS 1.3 looks like application data from outside); readiness would
  // fire at once again, so look now and then every 100 ms.
  static void probe_later(std::shared_ptr<State> const& state) {
    pollfd probe{state->client.socket().native_handle(), POLLRDHUP, 0};
    if (::poll(&probe, 1, 0) > 0 && (probe.revents & (POLLRDHUP | POLLHUP | POLLERR))) return left(*state);
    if (!state->timer) state->timer.emplace(state->client.get_executor());
    state->timer->expires_after(std::chrono::milliseconds(100));
    state->timer->async_wait([state](boost::system::error_code timer_error) {
      if (!timer_error && state->active) arm(state);
    });
  }

  std::shared_ptr<State> state_;
};

// A WebSocket (or any) Upgrade: the request and the 101 cross as HTTP, then
// bytes flow both ways until either side closes.
asio::awaitable<void> upgrade(TlsStream& stream, beast::flat_buffer& buffer, std::string request_head,
                              HttpRoute const& route, ProxyConfig const& config, AccessRecord& log) {
  std::string why;
  TcpUpstream target{route.upstream.host, route.upstream.port};
  auto const started = Clock::now();
  auto upstream = co_await connect_tcp(target, config.upstream_timeout, why);
  if (!upstream) {
    auto res = error_response(http::status::bad_gateway, "upstream unreachable", config.server_header);
    count::error(ProxyError::upstream_unreachable);
    count::request(res.result_int());
    log.status = res.result_int();
    co_await write_message(stream, res);
    co_return;
  }
  boost::system::error_code ignored;
  auto const remote = upstream->socket().remote_endpoint(ignored);
  if (!ignored) log.upstream_address = remote.address().to_string() + ":" + std::to_string(remote.port());
  upstream->expires_after(config.upstream_timeout);
  if (auto [e, w] = co_await asio::async_write(*upstream, asio::buffer(request_head), use_tuple); e) co_return;
  beast::flat_buffer upstream_buffer;
  http::response_parser<http::empty_body> res_parser;
  res_parser.skip(true);  // a 101 has no body; anything else is answered and the connection closed
  auto [read_error, n] = co_await http::async_read_header(*upstream, upstream_buffer, res_parser, use_tuple);
  log.upstream_duration_us = micros(Clock::now() - started);
  if (read_error) {
    auto res = error_response(http::status::bad_gateway, "upstream failed", config.server_header);
    count::error(ProxyError::upstream_failed);
    count::request(res.result_int());
    log.status = res.result_int();
    co_await write_message(stream, res);
    co_return;
  }
  auto response = res_parser.release();
  bool const switched = response.result() == http::status::switching_protocols;
  if (!switched) response.keep_alive(false);
  count::request(response.result_int());
  log.status = response.result_int();
  if (!co_await write_message(stream, response) || !switched) co_return;
  // Bytes that arrived behind the headers on either side go first.
  if (buffer.size() > 0) {
    auto [e, w] = co_await asio::async_write(*upstream, buffer.data(), use_tuple);
    if (e) co_return;
    log.bytes_in += w;
    buffer.clear();
  }
  if (upstream_buffer.size() > 0) {
    auto [e, w] = co_await asio::async_write(stream, upstream_buffer.data(), use_tuple);
    if (e) co_return;
    log.bytes_out += w;
  }
  auto const counts = co_await relay(stream, *upstream, false);
  log.bytes_in += static_cast<std::uint64_t>(counts.from_client);
  log.bytes_out += static_cast<std::uint64_t>(counts.to_client);
}

struct Exchange {
  bool keep_client = false;  // the client connection can carry another request
};

asio::awaitable<Exchange> forward(TlsStream& stream, beast::flat_buffer& buffer,
                                  http::request_parser<http::buffer_body>& parser, HttpRoute const& route,
                                  UpstreamPool& pool, ProxyConfig const& config, HttpClientInfo const& client,
                                  AccessRecord& log) {
  auto& req = parser.get();
  unsigned const client_version = req.version();
  bool const client_keep_alive = parser.keep_alive();  // the parser's flags: no second look at Connection
  bool const head = req.method() == http::verb::head;
  bool const expect_continue = beast::iequals(req[http::field::expect], "100-continue");
  bool const has_body = !parser.is_done();
  auto const upstream_started = Clock::now();
  auto answer = [&](http::status status, std::string_view text, ProxyError error) -> asio::awaitable<Exchange> {
    count::error(error);
    count::request(static_cast<unsigned>(status));
    log.status = static_cast<unsigned>(status);
    log.upstream_duration_us = micros(Clock::now() - upstream_started);
    auto res = error_response(status, text, config.server_header);
    res.version(client_version);
    // The request body was not read: the connection cannot carry another request.
    co_await write_message(stream, res);
    co_return Exchange{false};
  };
  auto client_left = [&] {
    log.upstream_duration_us = micros(Clock::now() - upstream_started);
    count::request(kClientClosed);
    log.status = kClientClosed;
    return Exchange{false};
  };
  auto upstream_error = [](boost::system::error_code const& e) {
    return e == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway;
  };
  auto upstream_kind = [](boost::system::error_code const& e) {
    return e == beast::error::timeout ? ProxyError::upstream_timeout : ProxyError::upstream_failed;
  };

  auto const request_head = render_upstream_request(req.base(), route, client, false);

  std::unique_ptr<UpstreamConnection> connection;
  std::optional<http::response_parser<http::buffer_body>> res_parser;
  auto new_response_parser = [&] {
    res_parser.emplace();
    res_parser->body_limit(boost::none);
    res_parser->skip(head);
  };
  // A pooled connection may have been closed by the upstream while idle. A
  // request without a body can be retried on a fresh one; one whose body has
  // started streaming cannot.
  for (int attempt = 0; attempt < 2 && !res_parser; ++attempt) {
    auto acquired = co_await pool.acquire(route, config, attempt > 0);
    switch (acquired.error) {
      case AcquireError::none:
        break;
      case AcquireError::pool_full:
        co_return co_await answer(http::status::service_unavailable, "upstream busy", ProxyError::upstream_failed);
      case AcquireError::timeout:
        co_return co_await answer(http::status::gateway_timeout, "upstream timeout", ProxyError::upstream_timeout);
      case AcquireError::unreachable:
      case AcquireError::tls_failed:
        co_return co_await answer(http::status::bad_gateway, "upstream unreachable", ProxyError::upstream_unreachable);
    }
    connection = std::move(acquired.connection);
    bool const reused = acquired.reused;
    log.upstream_address = connection->address;
    log.upstream_reused = reused;
    if (auto* tls = connection->stream.tls()) log.upstream_tls_resumed = SSL_session_reused(tls->native_handle()) == 1;
    connection->stream.expires_after(config.upstream_timeout);
    if (auto header_error = co_await write_all(connection->stream, asio::buffer(request_head))) {
      if (reused) continue;
      co_return co_await answer(http::status::bad_gateway, "upstream failed", ProxyError::upstream_failed);
    }
    new_response_parser();
    if (expect_continue) {
      // Ask the upstream first; tell the client to send its body only if it agrees.
      connection->stream.expires_after(config.upstream_timeout);
      auto [interim_error, m] =
          co_await http::async_read_header(connection->stream, connection->buffer, *res_parser, use_tuple);
      if (interim_error) {
        res_parser.reset();
        if (reused && interim_error != beast::error::timeout) continue;
        co_return co_await answer(upstream_error(interim_error), "upstream failed", upstream_kind(interim_error));
      }
      if (res_parser->get().result() == http::status::continue_) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [e, w] = co_await asio::async_write(stream, asio::buffer(kContinue), use_tuple);
        if (e) co_return client_left();
        new_response_parser();
      } else {
        break;  // a final answer without the body: forwarded below, connection closed after
      }
    }
    if (has_body && !(expect_continue && res_parser->is_header_done())) {
      auto const streamed = co_await relay_body(stream, buffer, parser, connection->stream, {}, parser.chunked(),
                                                config.client_timeout, config.upstream_timeout, log.bytes_in);
      if (streamed.error && streamed.reading) co_return client_left();  // the upstream connection is dropped
      if (streamed.error) {
        co_return co_await answer(upstream_error(streamed.error), "request body failed",
                                  upstream_kind(streamed.error));
      }
    }
    if (!res_parser->is_header_done()) {
      connection->stream.expires_after(config.upstream_timeout);
      for (;;) {
        // Waiting for the upstream is when a client most often gives up:
        // notice it, log 499 and drop the upstream connection.
        ClientWatch watch(stream, connection->stream);
        auto [read_error, m] =
            co_await http::async_read_header(connection->stream, connection->buffer, *res_parser, use_tuple);
        watch.stop();
        if (watch.client_gone()) co_return client_left();
        if (read_error) {
          res_parser.reset();
          if (reused && !has_body && read_error != beast::error::timeout) break;  // retry on a fresh connection
          co_return co_await answer(upstream_error(read_error), "upstream failed", upstream_kind(read_error));
        }
        // Other interim responses (102, 103) are not relayed; wait for the final one.
        if (http::to_status_class(res_parser->get().result()) != http::status_class::informational) break;
        new_response_parser();
      }
    }
  }
  if (!res_parser) co_return co_await answer(http::status::bad_gateway, "upstream failed", ProxyError::upstream_failed);

  auto const& res = res_parser->get();
  bool const upstream_keep_alive = res_parser->keep_alive();
  bool const body_unread = has_body && !parser.is_done();
  ClientResponseHead head_out;
  head_out.version = client_version;
  // A stopping server finishes this response and closes (graceful stop).
  head_out.keep_alive = client_keep_alive && !body_unread && !(client.control && client.control->draining());
  head_out.server_header = config.server_header;
  bool const has_response_body = !res_parser->is_done();
  // A body delimited by the upstream closing cannot be relayed on a kept-alive
  // HTTP/1.1 connection as is: re-frame it as chunked.
  head_out.add_chunked =
      has_response_body && !res_parser->content_length() && !res_parser->chunked() && client_version == 11;
  bool const chunked_out = has_response_body && (res_parser->chunked() || head_out.add_chunked);
  // Without a length or chunks only the closing can end the body.
  if (has_response_body && !chunked_out && !res_parser->content_length()) head_out.keep_alive = false;
  log.status = res.result_int();
  count::request(res.result_int());
  auto const response_head = render_client_response(res.base(), head_out);
  auto const streamed =
      co_await relay_body(connection->stream, connection->buffer, *res_parser, stream, response_head, chunked_out,
                          config.upstream_timeout, config.client_timeout, log.bytes_out);
  log.upstream_duration_us = micros(Clock::now() - upstream_started);
  if (streamed.error && !streamed.reading) {
    // The client left mid-response: the upstream connection is half-read and is dropped, never pooled.
    log.status = kClientClosed;
    co_return Exchange{false};
  }
  if (streamed.error) co_return Exchange{false};
  // Reused only in a clean state: the whole response read, the whole request sent.
  bool const clean = upstream_keep_alive && res_parser->is_done() && !body_unread;
  pool.give_back(route, config.pool, std::move(connection), clean);
  co_return Exchange{head_out.keep_alive};
}

}  // namespace

namespace {

enum class Next { keep, close, abort };  // the connection after a request: next request, close_notify, just close

// One request, from its parsed header to the end of its response. Its own
// coroutine so that an idle connection between requests keeps none of this
// frame (responses, the access record).
asio::awaitable<Next> serve_request(TlsStream& stream, beast::flat_buffer& buffer,
                                    http::request_parser<http::buffer_body>& parser,
                                    boost::system::error_code read_error, ProxyConfig const& config,
                                    UpstreamPool& pool, HttpClientInfo const& client, AccessLog* access_log) {
  auto const started = Clock::now();
  AccessRecord log;
  // One record per request, submitted however the request ends.
  struct Submit {
    AccessLog* sink;
    AccessRecord& record;
    Clock::time_point started;
    bool armed = false;
    ~Submit() {
      if (!sink || !armed) return;
      record.duration_us = micros(Clock::now() - started);
      sink->submit(std::move(record));
    }
  } submit{access_log, log, started};
  auto answer_error = [&](http::status status, std::string_view text, ProxyError error, bool keep) {
    auto res = error_response(status, text, config.server_header);
    res.keep_alive(keep);
    count::error(error);
    count::request(res.result_int());
    log.status = res.result_int();
    return res;
  };
  if (read_error) {
    // A closed, reset or idle connection has no one to answer; a bad request does.
    bool const parse_error = read_error.category() == http::make_error_code(http::error::bad_target).category();
    if (!parse_error) co_return Next::abort;
    auto status = read_error == http::error::header_limit ? http::status::request_header_fields_too_large
                                                          : http::status::bad_request;
    if (read_error == http::error::bad_version && names_an_http_version(buffer)) {
      status = http::status::http_version_not_supported;  // "HTTP/3.0", "HTTP/2.0": well-formed, not ours
    }
    submit.armed = access_log != nullptr;
    if (submit.armed) {
      log.timestamp_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
      log.connection_id = client.connection_id;
      log.client_address = client.address;
    }
    auto res = answer_error(status, http::obsolete_reason(status), ProxyError::bad_request, false);
    co_await write_message(stream, res);
    co_return Next::abort;
  }
  auto& req = parser.get();
  submit.armed = access_log != nullptr;
  if (submit.armed) {
    log.timestamp_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    log.connection_id = client.connection_id;
    log.client_address = client.address;
    log.method = req.method_string();
    log.path = req.target().substr(0, req.target().find('?'));  // the query may carry secrets
  }
  if (req.version() != 10 && req.version() != 11) {
    auto res = answer_error(http::status::http_version_not_supported, "HTTP/1.0 and HTTP/1.1 only",
                            ProxyError::bad_request, false);
    co_await write_message(stream, res);
    co_return Next::abort;
  }
  if (ambiguous_framing(req.base())) {
    auto res = answer_error(http::status::bad_request, "ambiguous message framing", ProxyError::bad_request, false);
    co_await write_message(stream, res);
    co_return Next::abort;
  }
  HttpRoute const* route = find_route(config, req[http::field::host], req.target());
  if (!route) {
    bool const can_continue = parser.is_done() && req.keep_alive();
    auto res = answer_error(http::status::not_found, "no route", ProxyError::no_route, can_continue);
    res.version(req.version());
    co_await write_message(stream, res);
    co_return can_continue ? Next::keep : Next::close;
  }
  log.route = route->name;
  RateTicket ticket;
  if (route->limiter) {
    auto const verdict = route->limiter->admit(client.address, Clock::now());
    if (verdict != RateLimiter::Verdict::admitted) {
      bool const rate = verdict == RateLimiter::Verdict::rate_limited;
      if (rate) count::rate_limited_request();
      else count::rate_limited_connection();
      auto const& limits = route->limiter->limits();
      auto const status = static_cast<http::status>(rate ? limits.status : limits.concurrency_status);
      // The body (if any) was not read, so only a request without one leaves the connection usable.
      bool const can_continue = parser.is_done() && req.keep_alive();
      auto res = error_response(status, rate ? "rate limited" : "too many connections", config.server_header);
      res.keep_alive(can_continue);
      res.version(req.version());
      if (rate && limits.rate > 0) res.set(http::field::retry_after, std::to_string(static_cast<int>(1.0 / limits.rate) + 1));
      count::request(res.result_int());
      log.status = res.result_int();
      co_await write_message(stream, res);
      co_return can_continue ? Next::keep : Next::close;
    }
    ticket = RateTicket(route->limiter.get(), client.address);
  }
  if (route->websocket && beast::iequals(req[http::field::upgrade], "websocket")) {
    co_await upgrade(stream, buffer, render_upstream_request(req.base(), *route, client, true), *route, config, log);
    co_return Next::abort;
  }
  auto const exchange = co_await forward(stream, buffer, parser, *route, pool, config, client, log);
  co_return exchange.keep_client ? Next::keep : Next::close;
}

}  // namespace

namespace {

void wait_for_request(std::unique_ptr<ClientConnection> connection, bool served);

// Requests for as long as they come without a wait: the first one's bytes are
// there (or on their way); pipelined ones follow from the buffer. Then the
// connection goes back to waiting (wait_for_request), or is closed.
asio::awaitable<void> serve_requests(std::unique_ptr<ClientConnection> connection) {
  ClientConnection& c = *connection;
  beast::flat_buffer buffer;
  Next next = Next::keep;
  for (;;) {
    http::request_parser<http::buffer_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(boost::none);  // bodies stream; nothing is buffered whole
    c.stream.expires_after(c.config->client_timeout);
    // Usually the request is there already (the wait ended because it came).
    boost::system::error_code read_error;
    http::read_header(c.stream, buffer, parser, read_error);
    if (read_error == asio::error::would_block)
      std::tie(read_error, std::ignore) = co_await http::async_read_header(c.stream, buffer, parser, use_tuple);
    if (read_error == http::error::end_of_stream) {
      next = Next::close;
      break;
    }
    next = co_await serve_request(c.stream, buffer, parser, read_error, *c.config, *c.pool, c.client, c.access_log);
    if (next != Next::keep) break;
    // Graceful stop: a connection that had its answer gets no further request.
    if (c.control.draining()) {
      next = Next::close;
      break;
    }
    if (buffer.size() == 0 && !c.stream.has_buffered()) break;  // idle: wait without this frame
  }
  if (next == Next::abort) co_return;
  if (next == Next::keep) {
    wait_for_request(std::move(connection), true);
    co_return;
  }
  c.stream.expires_after(std::chrono::seconds(2));
  co_await c.stream.async_shutdown(use_tuple);
}

void start_requests(std::unique_ptr<ClientConnection> connection) {
  auto executor = connection->stream.get_executor();
  asio::co_spawn(executor, serve_requests(std::move(connection)), report_connection_error);
}

void wait_for_request(std::unique_ptr<ClientConnection> connection, bool served) {
  TlsStream& stream = connection->stream;
  stream.expires_after(connection->config->client_timeout);  // the keep-alive timeout
  if (stream.has_buffered()) return start_requests(std::move(connection));
  connection->control.set_idle(served);  // a stop closes it at once
  stream.async_wait_readable([connection = std::move(connection)](boost::system::error_code error) mutable {
    connection->control.set_idle(false);
    if (error) return;  // timed out or closed: no one to answer; closed with the connection
    start_requests(std::move(connection));
  });
}

}  // namespace

void serve_http(std::unique_ptr<ClientConnection> connection) { wait_for_request(std::move(connection), false); }

}  // namespace edge::proxy
