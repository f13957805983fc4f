#pragma once
// config.reload (SIGHUP, `edgectl reload`, the admin RPC): re-reads the
// configuration file of a running edged and applies what can change without a
// restart. A file that does not load is refused with its file:line:col: key
// error and nothing changes. Applied live, to new connections only: the proxy
// section (listen addresses, TLS policy, SNI routing, HTTP routes, PROXY
// protocol, limits) and the certificates (manual files imported; every
// certificate context rebuilt under the new TLS policy). Everything else
// (store, workers, proxy.tls.mode, proxy.tls.acme, the ACME certificate list,
// admin, metrics, handshake_log) is reported as restart_required, by section.
#include "config_loader.hpp"

#include <edge/admin/admin_server.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/server.hpp>
#include <edge/store/store.hpp>

#include <mutex>
#include <string>

namespace edge::cli {

class ConfigReloader {
 public:
  // `running_text` is the file's content the running configuration came from.
  ConfigReloader(EdgeConfig running, std::string running_text, proxy::CertificateRegistry& registry,
                 proxy::Server& server);

  // Thread: any (the admin pool, the signal thread); calls are serialized.
  // `db` is the caller's own store connection.
  admin::ReloadOutcome reload(store::Store& db);

 private:
  std::mutex mutex_;
  EdgeConfig running_;
  std::string running_text_;
  proxy::CertificateRegistry& registry_;
  proxy::Server& server_;
};

}  // namespace edge::cli
