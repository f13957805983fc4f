#pragma once
// The TLS listener: N worker threads, each with its own event loop and its own
// SO_REUSEPORT acceptor per listen address; a connection stays on one worker.
#include <edge/proxy/config.hpp>

#include <memory>

namespace edge::proxy {

class CertificateRegistry;
class ChallengeRegistry;
class HandshakeLog;
class ProxyMetrics;

class Server {
 public:
  // Binds every listen address; throws std::runtime_error naming the address
  // when one cannot be bound (start-up error).
  Server(ProxyConfig config, CertificateRegistry& certificates, ChallengeRegistry& challenges,
         HandshakeLog& log);
  ~Server();
  Server(Server const&) = delete;
  Server& operator=(Server const&) = delete;

  void start();  // starts the worker threads
  void stop();   // thread-safe; closes acceptors, aborts connections, joins

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

}  // namespace edge::proxy
