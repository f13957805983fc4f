#pragma once
// The edged configuration: YAML in, validated settings for every module out.
// Every error names the file, line, column and key.
#include <edge/acme/config.hpp>
#include <edge/admin/admin_server.hpp>
#include <edge/proxy/config.hpp>
#include <edge/proxy/handshake_log.hpp>

#include <boost/system/result.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace edge::cli {

enum class TlsMode { acme, manual };

struct ManualCertificate {
  std::string name;
  std::filesystem::path certificate;  // PEM chain, leaf first
  std::filesystem::path private_key;  // PEM key
};

struct EdgeConfig {
  std::string source = "(built-in defaults)";
  std::filesystem::path store_path = "edge.db";
  proxy::ProxyConfig proxy;
  TlsMode mode = TlsMode::manual;
  acme::AcmeConfig acme;
  std::vector<ManualCertificate> manual_certificates;
  // proxy.tls.allow_world_readable_keys: manual private keys that others may
  // read or write are refused unless this is set.
  bool allow_world_readable_keys = false;
  // file: "-" = stdout, empty = none; store_path is filled in from store.path.
  proxy::HandshakeLogOptions handshake_log;
  bool handshake_log_store = true;  // handshake_log.store: rows in the SQLite store
  admin::AdminOptions admin;        // admin: (off unless the section is present)
  admin::MetricsOptions metrics;    // metrics: (likewise)
};

struct ConfigError {
  std::string message;  // "edge.yaml:12:7: proxy.tls.min_protocol_version: expected ..."
};

[[noreturn]] inline void throw_exception_from_error(ConfigError const& e, boost::source_location const&) {
  throw std::runtime_error(e.message);
}

// The settings edged runs with when started without --config (see README).
EdgeConfig default_config();

// Reads and validates `path`. Relative paths inside the file are resolved
// against the directory of the file.
boost::system::result<EdgeConfig, ConfigError> load_config(std::filesystem::path const& path);

// Same, from text (for tests); `name` is used in error messages and
// `base_directory` resolves relative paths.
boost::system::result<EdgeConfig, ConfigError> parse_config(std::string const& text, std::string const& name,
                                                           std::filesystem::path const& base_directory);

}  // namespace edge::cli
