#pragma once
// config.reload: re-reads the configuration file of a running edged and
// applies what can change without a restart (manual certificate files: a
// changed or new file is imported and served at the next handshake). Every
// other change is reported as needing a restart, by section.
#include "config_loader.hpp"

#include <edge/admin/admin_server.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/store/store.hpp>

#include <string>

namespace edge::cli {

// `running_text` is the file's content when edged started.
admin::ReloadOutcome reload_config(EdgeConfig const& running, std::string const& running_text, store::Store& db,
                                   proxy::CertificateRegistry& registry);

}  // namespace edge::cli
