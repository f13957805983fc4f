#pragma once
// The TLS listener: N worker threads, each with its own event loop and its own
// SO_REUSEPORT acceptor per listen address; a connection stays on one worker.
//
// Lifecycle: the configuration, with everything derived from it (the base
// SSL_CTX with the TLS policy, the compiled SNI routes, the HTTP routes), is
// an immutable generation published through an atomic shared_ptr. Each
// accepted connection copies the pointer once and keeps its generation for
// life, so reconfigure() changes what NEW connections get and never touches
// the ones already open; workers take no lock for it.
#include <edge/proxy/config.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace edge::proxy {

class CertificateRegistry;
class ChallengeRegistry;
class HandshakeLog;
class ProxyMetrics;

class Server {
 public:
  // Binds every listen address; throws std::runtime_error naming the address
  // when one cannot be bound (start-up error). `inherited` are listening
  // sockets handed over by a previous edged (binary upgrade) or by systemd:
  // each one whose local address is a listen address is adopted instead of a
  // new bind (the same socket, so nothing queued on it is lost); the others
  // are closed.
  Server(ProxyConfig config, CertificateRegistry& certificates, ChallengeRegistry& challenges, HandshakeLog& log,
         std::vector<int> inherited = {});
  ~Server();
  Server(Server const&) = delete;
  Server& operator=(Server const&) = delete;

  void start();  // starts the worker threads
  void stop();   // thread-safe; closes acceptors, aborts connections, joins

  // Applies `config` to new connections: TLS policy, routes, listen addresses
  // (new ones bound, removed ones closed). Existing connections keep the
  // generation they started with. proxy.workers cannot change (the caller
  // reports it). Returns an explanation when nothing was changed because the
  // new configuration cannot be applied (e.g. an address cannot be bound).
  // Thread: any but a worker; calls are serialized.
  std::string reconfigure(ProxyConfig config);

  // Graceful stop: closes the acceptors, closes idle keep-alive connections,
  // lets the others finish their current request/response (or handshake, or
  // relay) for up to proxy.shutdown_grace_secs, then closes what is left and
  // joins the workers. Every connection has written its handshake record when
  // this returns. Thread: any but a worker.
  void shutdown();

  // The listening sockets as (address, descriptor), to hand to a successor
  // process. The descriptors stay owned by the server. Thread: any but a worker.
  std::vector<std::pair<std::string, int>> listening_sockets() const;

  // Open connections beyond which new ones are closed at once (from
  // proxy.max_connections, or derived from RLIMIT_NOFILE).
  std::size_t max_connections() const noexcept;

  // Connection and request counters, per worker. Thread: any.
  ProxyMetrics const& metrics() const noexcept;

  // Reopens proxy.http.access_log.file (after logrotate moved it). Thread:
  // any; not async-signal-safe: call it where SIGUSR1 is handled, next to
  // HandshakeLog::reopen().
  void reopen_access_log() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The default connection cap for a descriptor limit: each proxied connection
// can hold two descriptors (client and upstream), and the store, logs and
// admin API need some of their own.
std::size_t default_max_connections(std::uint64_t descriptor_limit) noexcept;

}  // namespace edge::proxy
