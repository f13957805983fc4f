// The admin and metrics listeners: Beast HTTP/1.1 sessions as Asio C++20
// coroutines on one event-loop thread (modelled on Beast's
// example/http/server/awaitable). Anything that may block (SQLite, parsing
// certificates, reading /proc) runs on the admin pool and the session awaits
// its result, so a slow query never stalls another admin connection, and the
// TLS workers are never involved.
#include <edge/admin/admin_server.hpp>

#include "json_rpc.hpp"
#include "openmetrics.hpp"
#include "rpc_methods.hpp"
#include "status_page.hpp"

#include <edge/store/store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

namespace edge::admin {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

bool is_loopback(proxy::ListenAddress const& address) {
  boost::system::error_code ec;
  auto const ip = asio::ip::make_address(address.host, ec);
  return !ec && ip.is_loopback();
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t body_limit = 4 << 20;  // a certificate chain and key fit many times over
constexpr auto idle_timeout = std::chrono::seconds(30);

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

enum class Listener { admin_tcp, admin_socket, metrics };

Response plain(http::status status, Request const& req, std::string_view content_type, std::string body) {
  Response res{status, req.version()};
  res.set(http::field::server, "edged");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// Constant time: how long a comparison takes must not tell how much of a
// guessed token was right.
bool token_matches(std::string_view presented, std::string const& token) {
  return !token.empty() && presented.size() == token.size() &&
         CRYPTO_memcmp(presented.data(), token.data(), token.size()) == 0;
}

std::string_view bearer(Request const& req) {
  auto const header = req[http::field::authorization];
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size() || !header.starts_with(scheme)) return {};
  return header.substr(scheme.size());
}

}  // namespace

struct AdminServer::Impl {
  AdminOptions admin;
  MetricsOptions metrics;
  AdminServices services;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  bool token_for_everything = false;  // the TCP listener is not on loopback

  asio::io_context io{1};
  asio::thread_pool pool;
  std::unique_ptr<tcp::acceptor> admin_acceptor;
  std::unique_ptr<tcp::acceptor> metrics_acceptor;
  std::unique_ptr<unix_socket::acceptor> socket_acceptor;
  std::thread thread;
  std::atomic<std::uint64_t> unauthorized{0};
  std::atomic<bool> stopped{false};

  // One store connection per concurrent job (a Store belongs to one thread
  // at a time); connections are kept for the next job.
  std::mutex stores_mutex;
  std::vector<std::unique_ptr<store::Store>> stores;

  Impl(AdminOptions a, MetricsOptions m, AdminServices s)
      : admin(std::move(a)), metrics(std::move(m)), services(std::move(s)), pool(std::max(1u, admin.store_threads)) {
    token_for_everything = admin.enabled && admin.listen_tcp && !is_loopback(admin.listen);
    if (token_for_everything && admin.token.empty())
      throw std::runtime_error("admin.listen: " + admin.listen.text() +
                               " is not a loopback address, so admin.token_file is required");
    if (admin.enabled && admin.listen_tcp) admin_acceptor = bind_tcp(admin.listen, "admin.listen");
    if (admin.enabled && !admin.socket.empty()) socket_acceptor = bind_socket(admin.socket);
    if (metrics.enabled) metrics_acceptor = bind_tcp(metrics.listen, "metrics.listen");
  }

  std::unique_ptr<tcp::acceptor> bind_tcp(proxy::ListenAddress const& address, char const* key) {
    tcp::endpoint const endpoint(asio::ip::make_address(address.host), address.port);
    auto acceptor = std::make_unique<tcp::acceptor>(io);
    boost::system::error_code ec;
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(std::string(key) + ": cannot listen on " + address.text() + ": " + ec.message());
    return acceptor;
  }

  std::unique_ptr<unix_socket::acceptor> bind_socket(std::filesystem::path const& path) {
    // A socket file left by a previous run would make bind fail; anything
    // else at that path is not ours to remove.
    std::error_code fs_error;
    if (std::filesystem::is_socket(path, fs_error)) std::filesystem::remove(path, fs_error);
    auto acceptor = std::make_unique<unix_socket::acceptor>(io);
    boost::system::error_code ec;
    acceptor->open(unix_socket(), ec);
    if (!ec) acceptor->bind(unix_socket::endpoint(path.string()), ec);
    // Only edged's user may connect: the socket is as good as a token for reads.
    if (!ec && ::chmod(path.c_str(), 0600) != 0) ec.assign(errno, boost::system::system_category());
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("admin.socket: cannot listen on " + path.string() + ": " + ec.message());
    return acceptor;
  }

  struct StoreLease {
    Impl& impl;
    std::unique_ptr<store::Store> store;
    ~StoreLease() {
      if (!store) return;
      std::lock_guard lock(impl.stores_mutex);
      impl.stores.push_back(std::move(store));
    }
  };

  StoreLease lease_store() {
    {
      std::lock_guard lock(stores_mutex);
      if (!stores.empty()) {
        auto s = std::move(stores.back());
        stores.pop_back();
        return {*this, std::move(s)};
      }
    }
    auto opened = store::open_sqlite_store(services.store_path, store::OpenMode::read_write);
    if (!opened) throw std::runtime_error(opened.error().message);
    return {*this, std::move(*opened)};
  }

  // Runs f(context) on the pool and resumes the calling coroutine with its result.
  template <class F>
  asio::awaitable<std::invoke_result_t<F, MethodContext&>> on_pool(F f) {
    using R = std::invoke_result_t<F, MethodContext&>;
    co_return co_await asio::co_spawn(
        pool,
        [this, f = std::move(f)]() -> asio::awaitable<R> {
          auto lease = lease_store();
          MethodContext context{services, *lease.store, unauthorized.load(), started};
          co_return f(context);
        },
        asio::use_awaitable);
  }

  Response unauthorized_response(Request const& req, json::value const& id) {
    unauthorized.fetch_add(1, std::memory_order_relaxed);
    auto res = plain(http::status::unauthorized, req, "application/json",
                     json::serialize(make_error(
                         id, {rpc_code::unauthorized, "Unauthorized",
                              json::value("send the token from admin.token_file as \"Authorization: Bearer ...\"")})));
    res.set(http::field::www_authenticate, "Bearer realm=\"edged admin\"");
    return res;
  }

  asio::awaitable<Response> rpc(Request const& req, Listener listener) {
    if (req.method() != http::verb::post) {
      auto res = plain(http::status::method_not_allowed, req, "text/plain", "POST a JSON-RPC 2.0 request here\n");
      res.set(http::field::allow, "POST");
      co_return res;
    }
    bool const authorized = token_matches(bearer(req), admin.token);
    auto envelope = parse_envelope(req.body());
    json::value single_id = nullptr;
    if (!envelope.batch && !envelope.items.empty())
      if (auto const* call = std::get_if<RpcCall>(&envelope.items.front())) single_id = call->id;
    if (!authorized && listener == Listener::admin_tcp && token_for_everything)
      co_return unauthorized_response(req, single_id);
    if (!authorized) {
      for (auto const& item : envelope.items) {
        auto const* call = std::get_if<RpcCall>(&item);
        if (call && method_changes_state(call->method)) co_return unauthorized_response(req, single_id);
      }
    }
    std::string body;
    if (envelope.rejected) {
      body = serialize_responses(envelope, {});
    } else {
      body = co_await on_pool([&envelope](MethodContext& context) {
        std::vector<json::object> responses;
        for (auto const& item : envelope.items) {
          if (auto const* ready = std::get_if<json::object>(&item)) {
            responses.push_back(*ready);
            continue;
          }
          auto const& call = std::get<RpcCall>(item);
          auto result = call_method(call.method, call.params, context);
          if (call.notification) continue;
          responses.push_back(result ? make_result(call.id, std::move(*result)) : make_error(call.id, result.error()));
        }
        return serialize_responses(envelope, responses);
      });
    }
    if (body.empty()) {
      Response res{http::status::no_content, req.version()};
      res.set(http::field::server, "edged");
      res.keep_alive(req.keep_alive());
      co_return res;
    }
    co_return plain(http::status::ok, req, "application/json", std::move(body));
  }

  asio::awaitable<Response> handle(Request const& req, Listener listener) {
    auto const target = req.target().substr(0, req.target().find('?'));
    if (listener == Listener::metrics) {
      if (target != "/metrics") co_return plain(http::status::not_found, req, "text/plain", "try /metrics\n");
      auto const format = negotiate_format(req[http::field::accept]);
      auto text = co_await on_pool([format](MethodContext& context) { return render_metrics(context, format); });
      co_return plain(http::status::ok, req,
                      format == MetricsFormat::openmetrics ? openmetrics_content_type : prometheus_text_content_type,
                      std::move(text));
    }
    if (target == "/rpc") co_return co_await rpc(req, listener);
    // The page's files hold no data (the page reads /rpc), so they are served
    // without a token even where /rpc needs one: the page asks for it.
    if (req.method() == http::verb::get || req.method() == http::verb::head) {
      for (auto const& asset : status_page_assets()) {
        if (asset.path == target || (asset.path == "/" && target == "/index.html")) {
          co_return plain(http::status::ok, req, asset.content_type, std::string(asset.body));
        }
      }
    }
    co_return plain(http::status::not_found, req, "text/plain", "not found; the admin API is POST /rpc\n");
  }

  template <class Protocol>
  asio::awaitable<void> session(typename Protocol::socket socket, Listener listener) {
    beast::basic_stream<Protocol> stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(body_limit);
      stream.expires_after(idle_timeout);
      auto [read_error, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (read_error) {
        if (read_error == http::error::body_limit) {
          Request oversized;  // the request whose body passed the limit: only its version is known
          oversized.version(11);
          auto res = plain(http::status::payload_too_large, oversized, "text/plain", "request body too large\n");
          res.keep_alive(false);
          co_await http::async_write(stream, res, use_tuple);
        }
        break;  // end of stream, timeout, reset: nothing more to say
      }
      Request req = parser.release();
      Response res;
      try {
        res = co_await handle(req, listener);
      } catch (std::exception const& e) {
        // The store could not be opened, or a bug: the client learns, edged goes on.
        res = plain(http::status::internal_server_error, req, "text/plain", std::string("internal error: ") + e.what() + "\n");
      }
      if (req.method() == http::verb::head) res.body().clear();
      bool const keep = res.keep_alive();
      stream.expires_after(idle_timeout);
      auto [write_error, written] = co_await http::async_write(stream, res, use_tuple);
      if (write_error || !keep) break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(asio::socket_base::shutdown_send, ignored);
  }

  template <class Acceptor>
  asio::awaitable<void> accept_loop(Acceptor& acceptor, Listener listener) {
    using Protocol = typename Acceptor::protocol_type;
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      asio::co_spawn(io, session<Protocol>(std::move(socket), listener), [](std::exception_ptr error) {
        if (!error) return;
        try {
          std::rethrow_exception(error);
        } catch (std::exception const& e) {
          std::fprintf(stderr, "edged: admin connection: %s\n", e.what());
        }
      });
    }
  }
};

AdminServer::AdminServer(AdminOptions admin, MetricsOptions metrics, AdminServices services)
    : impl_(std::make_unique<Impl>(std::move(admin), std::move(metrics), std::move(services))) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  auto& impl = *impl_;
  if (impl.admin_acceptor)
    asio::co_spawn(impl.io, impl.accept_loop(*impl.admin_acceptor, Listener::admin_tcp), asio::detached);
  if (impl.socket_acceptor)
    asio::co_spawn(impl.io, impl.accept_loop(*impl.socket_acceptor, Listener::admin_socket), asio::detached);
  if (impl.metrics_acceptor)
    asio::co_spawn(impl.io, impl.accept_loop(*impl.metrics_acceptor, Listener::metrics), asio::detached);
  impl.thread = std::thread([&impl] { impl.io.run(); });
}

void AdminServer::stop() {
  auto& impl = *impl_;
  if (impl.stopped.exchange(true)) return;
  asio::post(impl.io, [&impl] {
    boost::system::error_code ignored;
    if (impl.admin_acceptor) impl.admin_acceptor->close(ignored);
    if (impl.metrics_acceptor) impl.metrics_acceptor->close(ignored);
    if (impl.socket_acceptor) impl.socket_acceptor->close(ignored);
    impl.io.stop();
  });
  if (impl.thread.joinable()) impl.thread.join();
  impl.pool.join();
  if (!impl.admin.socket.empty()) {
    std::error_code ignored;
    if (std::filesystem::is_socket(impl.admin.socket, ignored)) std::filesystem::remove(impl.admin.socket, ignored);
  }
}

std::uint64_t AdminServer::unauthorized() const noexcept { return impl_->unauthorized.load(); }

}  // namespace edge::admin
