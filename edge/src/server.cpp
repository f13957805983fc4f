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

#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <thread>

namespace edge::proxy {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::string ListenAddress::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool parse_listen_address(std::string const& text, ListenAddress& out, std::string& why) {
  std::string host, port;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string::npos) {
      why = "expected \"[ipv6]:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      why = "expected \"ip:port\" or \"[ipv6]:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    why = "\"" + host + "\" is not an IP address";
    return false;
  }
  unsigned long number = 0;
  try {
    std::size_t used = 0;
    number = std::stoul(port, &used);
    if (used != port.size()) throw std::invalid_argument(port);
  } catch (std::exception const&) {
    why = "\"" + port + "\" is not a port number";
    return false;
  }
  if (number == 0 || number > 65535) {
    why = "port " + port + " is out of range 1..65535";
    return false;
  }
  out.host = address.to_string();
  out.port = static_cast<std::uint16_t>(number);
  return true;
}

namespace {

// One event loop, its acceptors and its thread. Connections never leave it.
struct Worker {
  unsigned index = 0;
  asio::io_context io{1};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<ListenerContext> listeners;  // parallel to acceptors
  std::uint64_t connections = 0;           // touched only by this worker's thread
  UpstreamPool upstreams;                  // likewise
  std::thread thread;
};

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

std::unique_ptr<tcp::acceptor> bind_acceptor(asio::io_context& io, ListenAddress const& address) {
  tcp::endpoint const endpoint(asio::ip::make_address(address.host), address.port);
  auto acceptor = std::make_unique<tcp::acceptor>(io);
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

// Unique per process run and readable: "<start time hex>-<worker>-<n>".
std::string connection_id(std::string const& run, Worker& worker) {
  return run + "-" + std::to_string(worker.index) + "-" + std::to_string(++worker.connections);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, ListenerContext const& listener, Worker& worker,
                                  SessionEnvironment const& env, std::string const& run) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors or buffers: back off briefly instead of spinning.
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    asio::co_spawn(acceptor.get_executor(),
                   serve_connection(std::move(socket), env, listener, connection_id(run, worker)),
                   [](std::exception_ptr error) {
                     if (!error) return;
                     try {
                       std::rethrow_exception(error);
                     } catch (std::exception const& e) {
                       std::fprintf(stderr, "edged: connection: %s\n", e.what());
                     }
                   });
  }
}

}  // namespace

struct Server::Impl {
  ProxyConfig config;
  asio::ssl::context ssl_context{asio::ssl::context::tls_server};
  SniPolicies sni_policies;
  std::unique_ptr<TicketKeyRing> tickets;
  std::unique_ptr<AccessLog> access_log;  // before env, which points to it
  SessionEnvironment env;
  std::string run_id;
  std::unique_ptr<ProxyMetrics> metrics;  // outlives the workers' connections
  std::vector<std::unique_ptr<Worker>> workers;

  Impl(ProxyConfig c, CertificateRegistry& certificates, ChallengeRegistry& challenges, HandshakeLog& log)
      : config(std::move(c)),
        sni_policies(config.tls.sni, config.tls.default_route),
        tickets(config.tls.session_tickets ? std::make_unique<TicketKeyRing>(config.tls.ticket_key_rotation)
                                           : nullptr),
        access_log(config.access_log_file.empty() ? nullptr : std::make_unique<AccessLog>(config.access_log_file)),
        env{config,       needs_preread(config.tls), ssl_context, certificates, challenges, sni_policies, tickets.get(),
            log,          access_log.get()} {
    apply_tls_policy(ssl_context.native_handle(), config.tls);
    install_certificate_selection(ssl_context.native_handle(), tickets != nullptr);
    char run[17];
    std::snprintf(run, sizeof run, "%llx", static_cast<unsigned long long>(std::time(nullptr)));
    run_id = run;
    unsigned count = config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
    metrics = std::make_unique<ProxyMetrics>(count);
    for (unsigned i = 0; i < count; ++i) {
      auto worker = std::make_unique<Worker>();
      worker->index = i;
      for (auto const& address : config.listen) {
        worker->acceptors.push_back(bind_acceptor(worker->io, address));
        worker->listeners.push_back({address.text(), address.unknown_sni.value_or(config.tls.unknown_sni),
                                     address.proxy_protocol.value_or(config.proxy_protocol.enabled),
                                     &worker->upstreams});
      }
      workers.push_back(std::move(worker));
    }
  }
};

Server::Server(ProxyConfig config, CertificateRegistry& certificates, ChallengeRegistry& challenges,
               HandshakeLog& log)
    : impl_(std::make_unique<Impl>(std::move(config), certificates, challenges, log)) {}

Server::~Server() { stop(); }

ProxyMetrics const& Server::metrics() const noexcept { return *impl_->metrics; }

void Server::reopen_access_log() noexcept {
  if (impl_->access_log) impl_->access_log->reopen();
}

void Server::start() {
  for (auto& worker : impl_->workers) {
    for (std::size_t i = 0; i < worker->acceptors.size(); ++i) {
      asio::co_spawn(worker->io,
                     accept_loop(*worker->acceptors[i], worker->listeners[i], *worker, impl_->env, impl_->run_id),
                     asio::detached);
    }
    worker->thread = std::thread([w = worker.get(), m = impl_->metrics.get()] {
      auto const counting = m->bind_thread(w->index);
      w->io.run();
    });
  }
}

void Server::stop() {
  for (auto& worker : impl_->workers) {
    asio::post(worker->io, [w = worker.get()] {
      for (auto& acceptor : w->acceptors) {
        boost::system::error_code ignored;
        acceptor->close(ignored);
      }
      w->io.stop();
    });
  }
  for (auto& worker : impl_->workers) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

}  // namespace edge::proxy
