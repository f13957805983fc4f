#include "upstream_pool.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>

#include "tcp_relay.hpp"

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;

void UpstreamSlots::wake_one() noexcept {
  if (waiters.empty()) return;
  auto* timer = waiters.front();
  waiters.pop_front();  // the next release wakes the next waiter
  timer->cancel();
}

void UpstreamSlots::release() noexcept {
  if (open > 0) --open;
  wake_one();
}

UpstreamConnection::~UpstreamConnection() {
  if (slots) slots->release();
}

std::string pool_key(Upstream const& upstream) {
  std::string key = upstream.tls ? "https://" : "http://";
  key += upstream.host;
  key += ':';
  key += std::to_string(upstream.port);
  if (upstream.tls) {
    key += '|';
    key += upstream.tls_options.server_name;
    key += upstream.tls_options.verify ? "|v" : "|n";
    key += upstream.tls_options.sni ? "s|" : "n|";
    key += upstream.tls_options.ca_file;
  }
  return key;
}

struct SessionFree {
  void operator()(SSL_SESSION* s) const noexcept { SSL_SESSION_free(s); }
};

struct UpstreamPool::Entry {
  std::string key;
  Upstream upstream;  // what the key was made from
  std::deque<std::unique_ptr<UpstreamConnection>> idle;
  std::shared_ptr<UpstreamSlots> slots = std::make_shared<UpstreamSlots>();
  // https: one client context per upstream and worker, and the last
  // resumable session it got, offered on the next handshake.
  std::unique_ptr<asio::ssl::context> tls;
  std::unique_ptr<SSL_SESSION, SessionFree> session;
  std::string tls_error;  // why the context could not be made (a CA file gone since start)
};

UpstreamPool::UpstreamPool() = default;
UpstreamPool::~UpstreamPool() = default;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string openssl_reason() {
  unsigned long const code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

void make_tls_context(Upstream const& upstream, std::unique_ptr<asio::ssl::context>& out, std::string& error) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // Sessions are kept by the pool (one per upstream), not in OpenSSL's cache.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(native, kAlpn, sizeof kAlpn);
  auto const& options = upstream.tls_options;
  if (options.verify) {
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    int const loaded = options.ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(native)
                           : SSL_CTX_load_verify_locations(native, options.ca_file.c_str(), nullptr);
    if (loaded != 1) {
      error = "cannot load trusted roots" + (options.ca_file.empty() ? std::string() : " from " + options.ca_file) +
              ": " + openssl_reason();
      return;
    }
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  out = std::move(context);
}

void remember_session(std::unique_ptr<SSL_SESSION, SessionFree>& slot, SSL* ssl) {
  SSL_SESSION* session = SSL_get0_session(ssl);
  // In TLS 1.3 the resumable session arrives after the handshake, with the
  // first read; a session without a ticket yet is not worth keeping. A copy
  // is kept: OpenSSL marks a session object not resumable when its
  // connection is freed without close_notify, which is how pooled
  // connections usually end.
  if (session && SSL_SESSION_is_resumable(session)) {
    if (SSL_SESSION* copy = SSL_SESSION_dup(session)) slot.reset(copy);
  }
}

}  // namespace

namespace {

bool same_upstream(Upstream const& a, Upstream const& b) {
  return a.tls == b.tls && a.port == b.port && a.host == b.host &&
         (!a.tls || (a.tls_options.verify == b.tls_options.verify && a.tls_options.sni == b.tls_options.sni &&
                     a.tls_options.server_name == b.tls_options.server_name &&
                     a.tls_options.ca_file == b.tls_options.ca_file));
}

}  // namespace

UpstreamPool::Entry& UpstreamPool::entry(HttpRoute const& route) {
  if (auto cached = by_route_.find(&route);
      cached != by_route_.end() && same_upstream(cached->second->upstream, route.upstream)) {
    return *cached->second;
  }
  auto key = pool_key(route.upstream);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    auto fresh = std::make_unique<Entry>();
    fresh->key = key;
    fresh->upstream = route.upstream;
    it = entries_.emplace(std::move(key), std::move(fresh)).first;
  }
  by_route_[&route] = it->second.get();
  return *it->second;
}

asio::awaitable<Acquired> UpstreamPool::acquire(HttpRoute const& route, ProxyConfig const& config, bool fresh) {
  Entry& e = entry(route);
  auto const& limits = config.pool;
  auto const executor = co_await asio::this_coro::executor;
  auto const deadline = std::chrono::steady_clock::now() + limits.wait_timeout;
  for (;;) {
    auto const now = std::chrono::steady_clock::now();
    while (!fresh && !e.idle.empty()) {
      // Most recently used first: it is the least likely to have been closed by the upstream.
      auto connection = std::move(e.idle.back());
      e.idle.pop_back();
      if (now - connection->idle_since < limits.idle_timeout && connection->stream.tcp().socket().is_open()) {
        co_return Acquired{std::move(connection), true};
      }
    }
    if (limits.max_connections == 0 || e.slots->open < limits.max_connections) break;
    if (fresh && !e.idle.empty()) {
      // A fresh connection is wanted and the limit is reached: make room by closing an idle one.
      e.idle.pop_front();
      continue;
    }
    if (now >= deadline) co_return Acquired{nullptr, false, AcquireError::pool_full};
    asio::steady_timer timer(executor, deadline);
    e.slots->waiters.push_back(&timer);
    co_await timer.async_wait(use_tuple);
    // Timed out (still queued) or woken (already removed): either way not queued any more.
    auto& waiters = e.slots->waiters;
    waiters.erase(std::remove(waiters.begin(), waiters.end(), &timer), waiters.end());
  }

  // A new connection takes a slot now, so that concurrent requests count it while it connects.
  ++e.slots->open;
  auto slots = e.slots;
  auto release = [&slots] { slots->release(); };
  std::string why;
  TcpUpstream target{route.upstream.host, route.upstream.port};
  auto tcp = co_await connect_tcp(target, config.upstream_timeout, why);
  if (!tcp) {
    release();
    co_return Acquired{nullptr, false,
                       why.find("timed out") != std::string::npos || why.find("timeout") != std::string::npos
                           ? AcquireError::timeout
                           : AcquireError::unreachable};
  }
  boost::system::error_code ignored;
  auto const remote = tcp->socket().remote_endpoint(ignored);
  std::string address =
      ignored ? std::string()
              : (remote.address().is_v6() ? "[" + remote.address().to_string() + "]" : remote.address().to_string()) +
                    ":" + std::to_string(remote.port());
  if (!route.upstream.tls) {
    auto connection = std::make_unique<UpstreamConnection>(UpstreamStream(std::move(*tcp)));
    connection->slots = std::move(slots);
    connection->address = std::move(address);
    co_return Acquired{std::move(connection), false};
  }

  if (!e.tls && e.tls_error.empty()) make_tls_context(route.upstream, e.tls, e.tls_error);
  if (!e.tls) {
    std::fprintf(stderr, "edged: upstream %s: %s\n", route.upstream_text.c_str(), e.tls_error.c_str());
    release();
    co_return Acquired{nullptr, false, AcquireError::tls_failed};
  }
  auto tls = std::make_unique<UpstreamStream::TlsLayer>(std::move(*tcp), *e.tls);
  SSL* ssl = tls->native_handle();
  auto const& options = route.upstream.tls_options;
  std::string const& name = options.server_name.empty() ? route.upstream.host : options.server_name;
  boost::system::error_code not_ip;
  asio::ip::make_address(name, not_ip);
  bool const is_ip = !not_ip;
  // SNI carries a host name only (RFC 6066 section 3), never an address literal.
  if (options.sni && !is_ip) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (options.verify) {
    if (is_ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    else
      SSL_set1_host(ssl, name.c_str());
  }
  if (e.session) {
    // Offered as a copy, so that this connection ending badly does not spoil the kept one.
    if (SSL_SESSION* offer = SSL_SESSION_dup(e.session.get())) {
      SSL_set_session(ssl, offer);
      SSL_SESSION_free(offer);
    }
  }
  tls->next_layer().expires_after(config.upstream_timeout);
  auto [handshake_error] = co_await tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (handshake_error) {
    long const verify = SSL_get_verify_result(ssl);
    std::string reason = verify != X509_V_OK
                             ? std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify)
                             : handshake_error.message();
    std::fprintf(stderr, "edged: upstream %s (%s): TLS handshake failed: %s\n", route.upstream_text.c_str(),
                 address.c_str(), reason.c_str());
    ERR_clear_error();
    release();
    co_return Acquired{nullptr, false,
                       handshake_error == beast::error::timeout ? AcquireError::timeout : AcquireError::tls_failed};
  }
  remember_session(e.session, ssl);
  auto connection = std::make_unique<UpstreamConnection>(UpstreamStream(std::move(tls)));
  connection->slots = std::move(slots);
  connection->address = std::move(address);
  co_return Acquired{std::move(connection), false};
}

void UpstreamPool::give_back(HttpRoute const& route, UpstreamPoolLimits const& limits,
                             std::unique_ptr<UpstreamConnection> connection, bool reusable) {
  Entry& e = entry(route);
  if (auto* tls = connection->stream.tls()) remember_session(e.session, tls->native_handle());
  if (!reusable || e.idle.size() >= limits.max_idle) return;  // closed by its destructor, which frees its slot
  connection->idle_since = std::chrono::steady_clock::now();
  e.idle.push_back(std::move(connection));
  e.slots->wake_one();  // a waiter can take it
}

}  // namespace edge::proxy
