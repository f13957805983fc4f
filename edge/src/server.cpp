#include "connection_control.hpp"
#include "tls_session.hpp"
#include "upstream_pool.hpp"

#include <edge/proxy/access_log.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/challenge_registry.hpp>
#include <edge/proxy/handshake_log.hpp>
#include <edge/proxy/proxy_metrics.hpp>
#include <edge/proxy/server.hpp>

#include "tls_contexts.hpp"
#include "tls_policy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <ctime>
#include <stdexcept>
#include <thread>

namespace edge::proxy {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::size_t default_max_connections(std::uint64_t descriptor_limit) noexcept {
  if (descriptor_limit == RLIM_INFINITY || descriptor_limit > (1u << 30)) descriptor_limit = 1u << 20;
  if (descriptor_limit <= 96) return 16;
  return static_cast<std::size_t>((descriptor_limit - 64) / 2);
}

namespace {

// One event loop, its acceptors and its thread. Connections never leave it.
// Member order matters: the event loop is destroyed after the thread and the
// acceptors, and before nothing its connections' coroutine frames refer to
// (`open`).
struct Worker {
  unsigned index = 0;
  ConnectionSet open;  // touched only by this worker's thread
  asio::io_context io{1};
  // Control side only (Impl::mutex): closing one is posted to the worker.
  std::multimap<std::string, std::shared_ptr<tcp::acceptor>> acceptors;
  std::uint64_t connections = 0;  // touched only by this worker's thread
  UpstreamPool upstreams;         // likewise
  std::thread thread;
};

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

tcp::endpoint endpoint_of(ListenAddress const& address) {
  return tcp::endpoint(asio::ip::make_address(address.host), address.port);
}

std::shared_ptr<tcp::acceptor> bind_acceptor(asio::io_context& io, ListenAddress const& address) {
  auto const endpoint = endpoint_of(address);
  auto acceptor = std::make_shared<tcp::acceptor>(io);
  boost::system::error_code ec;
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->set_option(reuse_port(true), ec);
  if (!ec && endpoint.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("proxy.listen: cannot listen on " + address.text() + ": " + ec.message());
  return acceptor;
}

// The local address of an inherited descriptor; nullopt when it is not a
// listening TCP socket.
std::optional<tcp::endpoint> listening_endpoint(int fd) {
  int listening = 0;
  socklen_t size = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) return std::nullopt;
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return std::nullopt;
  tcp::endpoint endpoint;
  if (storage.ss_family != AF_INET && storage.ss_family != AF_INET6) return std::nullopt;
  std::memcpy(endpoint.data(), &storage, length);
  endpoint.resize(length);
  return endpoint;
}

std::uint64_t descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  return limit.rlim_cur;
}

// Unique per process run and readable: "<start time hex>-<worker>-<n>".
std::string connection_id(std::string const& run, Worker& worker) {
  return run + "-" + std::to_string(worker.index) + "-" + std::to_string(++worker.connections);
}

// One configuration with what is derived from it, immutable once published.
struct Generation {
  ProxyConfig config;
  asio::ssl::context ssl_context{asio::ssl::context::tls_server};
  SniPolicies sni_policies;
  std::shared_ptr<TicketKeyRing> tickets;
  SessionEnvironment env;
  std::size_t max_connections;

  Generation(ProxyConfig c, std::shared_ptr<TicketKeyRing> ring, CertificateRegistry& certificates,
             ChallengeRegistry& challenges, HandshakeLog& log, AccessLog* access_log)
      : config(std::move(c)),
        sni_policies(config.tls.sni, config.tls.default_route),
        tickets(std::move(ring)),
        env{config, needs_preread(config.tls), ssl_context, certificates, challenges, sni_policies, tickets.get(), log,
            access_log},
        max_connections(config.max_connections ? config.max_connections : default_max_connections(descriptor_limit())) {
    apply_tls_policy(ssl_context.native_handle(), config.tls);
    install_certificate_selection(ssl_context.native_handle(), tickets != nullptr);
  }

  ListenerContext listener(std::string const& text) const {
    ListenerContext out{text, config.tls.unknown_sni, config.proxy_protocol.enabled, nullptr};
    for (auto const& address : config.listen) {
      if (address.text() != text) continue;
      out.unknown_sni = address.unknown_sni.value_or(config.tls.unknown_sni);
      out.proxy_protocol = address.proxy_protocol.value_or(config.proxy_protocol.enabled);
    }
    return out;
  }
};

}  // namespace

struct Server::Impl {
  CertificateRegistry& certificates;
  ChallengeRegistry& challenges;
  HandshakeLog& log;
  // One for the process, opened at start: a reload does not move it.
  std::unique_ptr<AccessLog> access_log;
  std::string run_id;
  std::unique_ptr<ProxyMetrics> metrics;  // outlives the workers' connections
  // Read once per accepted connection by the workers; written under `mutex`.
  std::atomic<std::shared_ptr<Generation const>> current;
  std::atomic<std::int64_t> open_connections{0};
  mutable std::mutex mutex;  // the control side: reconfigure, shutdown, acceptor lists
  bool started = false;
  bool stopping = false;
  std::vector<std::unique_ptr<Worker>> workers;

  Impl(ProxyConfig config, CertificateRegistry& c, ChallengeRegistry& ch, HandshakeLog& l, std::vector<int> inherited)
      : certificates(c),
        challenges(ch),
        log(l),
        access_log(config.access_log_file.empty() ? nullptr : std::make_unique<AccessLog>(config.access_log_file)) {
    auto generation = make_generation(std::move(config), nullptr);
    char run[17];
    std::snprintf(run, sizeof run, "%llx", static_cast<unsigned long long>(std::time(nullptr)));
    run_id = run;
    auto const& cfg = generation->config;
    unsigned count = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
    metrics = std::make_unique<ProxyMetrics>(count);
    for (unsigned i = 0; i < count; ++i) {
      auto worker = std::make_unique<Worker>();
      worker->index = i;
      workers.push_back(std::move(worker));
    }
    // Inherited sockets by address; each one is adopted by some worker.
    std::map<std::string, std::vector<int>> adopted;
    for (int fd : inherited) {
      auto const endpoint = listening_endpoint(fd);
      bool used = false;
      for (auto const& address : cfg.listen) {
        if (endpoint && *endpoint == endpoint_of(address)) {
          adopted[address.text()].push_back(fd);
          used = true;
          break;
        }
      }
      if (!used) ::close(fd);  // a listener the new configuration no longer has
    }
    try {
      for (auto const& address : cfg.listen) {
        auto const text = address.text();
        auto& fds = adopted[text];
        for (unsigned i = 0; i < count; ++i) {
          if (i >= fds.size()) workers[i]->acceptors.emplace(text, bind_acceptor(workers[i]->io, address));
        }
        for (std::size_t j = 0; j < fds.size(); ++j) {
          auto& worker = *workers[j % count];
          auto acceptor = std::make_shared<tcp::acceptor>(worker.io);
          acceptor->assign(endpoint_of(address).protocol(), fds[j]);
          fds[j] = -1;
          worker.acceptors.emplace(text, std::move(acceptor));
        }
      }
    } catch (...) {
      for (auto& [text, fds] : adopted)
        for (int fd : fds)
          if (fd >= 0) ::close(fd);
      throw;
    }
    current.store(std::move(generation));
  }

  std::shared_ptr<Generation const> make_generation(ProxyConfig config, Generation const* previous) {
    std::shared_ptr<TicketKeyRing> tickets;
    if (config.tls.session_tickets) {
      // The same keys across a reload, so that tickets issued before it still resume.
      if (previous && previous->tickets && previous->config.tls.ticket_key_rotation == config.tls.ticket_key_rotation)
        tickets = previous->tickets;
      else
        tickets = std::make_shared<TicketKeyRing>(config.tls.ticket_key_rotation);
    }
    return std::make_shared<Generation const>(std::move(config), std::move(tickets), certificates, challenges, log,
                                              access_log.get());
  }

  void spawn_accept_loop(Worker& worker, std::string text, std::shared_ptr<tcp::acceptor> acceptor) {
    asio::co_spawn(worker.io, accept_loop(std::move(acceptor), std::move(text), worker), asio::detached);
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor, std::string text, Worker& worker) {
    constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    bool reported = false;
    // The address a connection came to: the listener's own unless it is a
    // wildcard (then each connection asks). The peer comes with accept().
    std::optional<tcp::endpoint> local;
    if (boost::system::error_code error; true) {
      auto const bound = acceptor->local_endpoint(error);
      if (!error && !bound.address().is_unspecified()) local = bound;
    }
    for (;;) {
      tcp::endpoint peer;
      auto [ec, socket] = co_await acceptor->async_accept(peer, use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      if (ec) {
        // Out of descriptors (EMFILE/ENFILE) or buffers: back off briefly
        // instead of spinning; the connection stays queued in the kernel.
        if (!reported) std::fprintf(stderr, "edged: accept on %s: %s (backing off)\n", text.c_str(), ec.message().c_str());
        reported = true;
        count::accept_error();
        asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      reported = false;
      auto generation = current.load(std::memory_order_acquire);
      if (open_connections.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(generation->max_connections)) {
        // Over the cap: closed at once (RST-free close), counted, no record.
        count::connection_over_capacity();
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      OpenConnection open(&open_connections);  // until the connection object goes, wherever that is
      auto listener = generation->listener(text);
      listener.upstreams = &worker.upstreams;
      listener.connections = &worker.open;
      listener.local = local;
      std::shared_ptr<SessionEnvironment const> env(generation, &generation->env);
      asio::co_spawn(acceptor->get_executor(),
                     serve_connection(std::move(socket), peer, std::move(env), std::move(listener),
                                      connection_id(run_id, worker), std::move(open)),
                     report_connection_error);
    }
  }

  // Closes every acceptor of every worker (on the worker's thread).
  void close_acceptors() {
    for (auto& worker : workers) {
      std::vector<std::shared_ptr<tcp::acceptor>> list;
      for (auto& [text, acceptor] : worker->acceptors) list.push_back(acceptor);
      worker->acceptors.clear();
      asio::post(worker->io, [list = std::move(list)] {
        for (auto& acceptor : list) {
          boost::system::error_code ignored;
          acceptor->close(ignored);
        }
      });
    }
  }

  bool wait_for_connections(std::chrono::steady_clock::time_point deadline) const {
    while (open_connections.load() > 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
};

Server::Server(ProxyConfig config, CertificateRegistry& certificates, ChallengeRegistry& challenges,
               HandshakeLog& log, std::vector<int> inherited)
    : impl_(std::make_unique<Impl>(std::move(config), certificates, challenges, log, std::move(inherited))) {}

Server::~Server() { stop(); }

ProxyMetrics const& Server::metrics() const noexcept { return *impl_->metrics; }

std::size_t Server::max_connections() const noexcept { return impl_->current.load()->max_connections; }

void Server::reopen_access_log() noexcept {
  if (impl_->access_log) impl_->access_log->reopen();
}

void Server::start() {
  std::lock_guard lock(impl_->mutex);
  impl_->started = true;
  for (auto& worker : impl_->workers) {
    for (auto& [text, acceptor] : worker->acceptors) impl_->spawn_accept_loop(*worker, text, acceptor);
    worker->thread = std::thread([w = worker.get(), m = impl_->metrics.get()] {
      auto const counting = m->bind_thread(w->index);
      w->io.run();
    });
  }
}

std::string Server::reconfigure(ProxyConfig config) {
  auto& impl = *impl_;
  std::lock_guard lock(impl.mutex);
  if (impl.stopping) return "edged is stopping";
  auto const previous = impl.current.load();
  std::shared_ptr<Generation const> next;
  try {
    next = impl.make_generation(std::move(config), previous.get());
  } catch (std::exception const& e) {
    return std::string("proxy: ") + e.what();
  }
  std::set<std::string> before, after;
  for (auto const& address : previous->config.listen) before.insert(address.text());
  for (auto const& address : next->config.listen) after.insert(address.text());
  // Bind every new address first: when one fails, nothing changes.
  std::vector<std::pair<Worker*, std::pair<std::string, std::shared_ptr<tcp::acceptor>>>> added;
  try {
    for (auto const& address : next->config.listen) {
      if (before.contains(address.text())) continue;
      for (auto& worker : impl.workers) added.push_back({worker.get(), {address.text(), bind_acceptor(worker->io, address)}});
    }
  } catch (std::exception const& e) {
    return e.what();  // the acceptors bound so far close with `added`
  }
  impl.current.store(next, std::memory_order_release);
  for (auto& [worker, entry] : added) {
    worker->acceptors.insert(entry);
    if (impl.started) impl.spawn_accept_loop(*worker, entry.first, entry.second);
  }
  for (auto& worker : impl.workers) {
    std::vector<std::shared_ptr<tcp::acceptor>> removed;
    for (auto it = worker->acceptors.begin(); it != worker->acceptors.end();) {
      if (after.contains(it->first)) {
        ++it;
        continue;
      }
      removed.push_back(it->second);
      it = worker->acceptors.erase(it);
    }
    if (removed.empty()) continue;
    asio::post(worker->io, [removed = std::move(removed)] {
      for (auto& acceptor : removed) {
        boost::system::error_code ignored;
        acceptor->close(ignored);
      }
    });
  }
  return {};
}

std::vector<std::pair<std::string, int>> Server::listening_sockets() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::pair<std::string, int>> out;
  for (auto const& worker : impl_->workers)
    for (auto const& [text, acceptor] : worker->acceptors) out.emplace_back(text, acceptor->native_handle());
  return out;
}

void Server::shutdown() {
  auto& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    if (impl.stopping) return;
    impl.stopping = true;
    impl.close_acceptors();
  }
  auto const grace = impl.current.load()->config.shutdown_grace;
  for (auto& worker : impl.workers) asio::post(worker->io, [w = worker.get()] { w->open.drain(); });
  auto const deadline = std::chrono::steady_clock::now() + grace;
  if (!impl.wait_for_connections(deadline)) {
    std::fprintf(stderr, "edged: %lld connection(s) still open after %lld s, closing them\n",
                 static_cast<long long>(impl.open_connections.load()), static_cast<long long>(grace.count()));
    for (auto& worker : impl.workers) asio::post(worker->io, [w = worker.get()] { w->open.close_all(); });
    // A closed connection still writes its record: wait for those (bounded);
    // one that already wrote it may be waiting on its upstream, and ends
    // with the event loop.
    auto const until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (;;) {
      std::size_t unrecorded = 0;
      for (auto const& worker : impl.workers) unrecorded += worker->open.unrecorded();
      if (unrecorded == 0 || impl.open_connections.load() == 0 || std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  stop();
}

void Server::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    impl_->close_acceptors();
  }
  for (auto& worker : impl_->workers) asio::post(worker->io, [w = worker.get()] { w->io.stop(); });
  for (auto& worker : impl_->workers) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

}  // namespace edge::proxy
