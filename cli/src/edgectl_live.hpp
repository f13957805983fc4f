#pragma once
// edgectl's operator commands (issue 8): status, import, check, version,
// handshakes --follow/--summary and filters, and the live mode (--admin
// URL or socket, --token-file) of certs, cert show and renew. Registered on
// edgectl's CLI11 app next to the store commands of edgectl_main.cpp.
#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace edge::cli {

class OperatorCommands {
 public:
  // Adds --admin/--token-file, the new subcommands and the new handshakes
  // options to `app` (whose store subcommands already exist).
  explicit OperatorCommands(CLI::App& app);

  // After parsing: the exit code when one of these commands ran; nullopt
  // when edgectl_main's store commands should run (offline, no new option).
  std::optional<int> run(std::string const& store_path);

 private:
  CLI::App& app_;
  std::string admin_url_;
  std::string token_file_;
  CLI::App* status_ = nullptr;
  CLI::App* import_ = nullptr;
  CLI::App* check_ = nullptr;
  CLI::App* version_ = nullptr;
  CLI::App* reload_ = nullptr;
  bool json_ = false;
  std::string import_name_, import_cert_, import_key_;
  double warn_days_ = 21, crit_days_ = 7;
  std::string outcome_, error_type_, client_, since_;
  bool follow_ = false, summary_ = false;
};

}  // namespace edge::cli
