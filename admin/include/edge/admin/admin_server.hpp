#pragma once
// The operator surface of a running edged: the admin listener (JSON-RPC 2.0 on
// POST /rpc, the status page on GET /) on TCP and/or a Unix socket, and the
// metrics listener (OpenMetrics on GET /metrics). One event-loop thread serves
// both; store queries, certificate parsing and metric collection run on a
// small pool of their own threads, never on the TLS workers.
#include <edge/proxy/config.hpp>
#include <edge/store/records.hpp>
#include <edge/store/store.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace edge::proxy {
class CertificateRegistry;
class HandshakeLog;
class ProxyMetrics;
class TlsStatistics;
}  // namespace edge::proxy

namespace edge::admin {

inline proxy::ListenAddress loopback_address(std::uint16_t port) {
  proxy::ListenAddress address;
  address.host = "127.0.0.1";
  address.port = port;
  return address;
}

struct AdminOptions {
  bool enabled = false;
  // TCP listener; disabled when `listen_tcp` is false (socket only).
  bool listen_tcp = true;
  proxy::ListenAddress listen = loopback_address(9091);
  std::filesystem::path socket;  // Unix socket (created 0600); empty = none
  // The bearer token (the content of admin.token_file). Empty: state-changing
  // methods are refused. Never logged.
  std::string token;
  unsigned store_threads = 2;
};

struct MetricsOptions {
  bool enabled = false;
  proxy::ListenAddress listen = loopback_address(9090);
};

// What config.reload did.
struct ReloadOutcome {
  bool ok = false;
  std::string error;                          // when !ok: "edge.yaml:3:7: key: what"
  std::vector<std::string> applied;           // e.g. "certificate main reloaded from main.pem"
  std::vector<std::string> restart_required;  // changed sections a reload cannot apply
};

// What the admin side reads and acts on. Everything referenced is owned by
// the caller and outlives the AdminServer.
struct AdminServices {
  std::filesystem::path store_path;
  proxy::CertificateRegistry* certificates = nullptr;
  proxy::ProxyMetrics const* proxy_metrics = nullptr;
  proxy::TlsStatistics const* tls_statistics = nullptr;
  proxy::HandshakeLog const* handshake_log = nullptr;
  bool acme_mode = false;
  std::vector<std::string> acme_certificates;  // names certs.renew accepts
  // config.reload, called on an admin pool thread with its store connection;
  // null: config.reload answers "not supported".
  std::function<ReloadOutcome(store::Store&)> reload;
  // Called (on an admin pool thread) after certs.import stored and served a certificate.
  std::function<void(store::CertificateRecord const&)> on_imported;
};

class AdminServer {
 public:
  // Binds the listeners; throws std::runtime_error naming the address or
  // socket when one cannot be bound (a start-up error).
  AdminServer(AdminOptions admin, MetricsOptions metrics, AdminServices services);
  ~AdminServer();  // stops
  AdminServer(AdminServer const&) = delete;
  AdminServer& operator=(AdminServer const&) = delete;

  void start();
  void stop();  // closes the listeners, ends connections, joins the threads

  // Requests refused with 401 so far. Thread: any.
  std::uint64_t unauthorized() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for 127.0.0.0/8 and ::1: the only addresses where read-only admin
// calls need no token.
bool is_loopback(proxy::ListenAddress const& address);

}  // namespace edge::admin
