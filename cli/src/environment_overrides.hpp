#pragma once
// EDGE_* environment variables: what differs per deployment (addresses, paths,
// the ACME directory) without editing the configuration file, as containers
// and units set it. Each variable stands for one key of the file and wins over
// it; the value then goes through the same checks as the file's (docs/config.md,
// "Environment overrides"). An error about such a value names the variable.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace edge::cli {

enum class EnvironmentShape {
  scalar,  // the text as it is
  list,    // comma-separated: "127.0.0.1:8443, [::1]:8443"
  path,    // a relative path is taken from the working directory, not the file's
  log,     // a path, or "-" for standard output
};

struct EnvironmentVariable {
  char const* name;  // "EDGE_LISTEN"
  char const* key;   // "proxy.listen"
  EnvironmentShape shape;
};

// Every variable edged reads, in the order they are applied.
std::vector<EnvironmentVariable> const& environment_variables();

// Looks one variable up: the process environment in edged, a map in tests.
using Environment = std::function<std::optional<std::string>(std::string const& name)>;
Environment process_environment();
Environment fixed_environment(std::map<std::string, std::string> values);

// Sets the keys of the variables present in `env` in `root` (made a mapping when
// the document is empty), creating sections as needed. Returns key -> variable
// for what it set, so that the config reader can name the variable in errors.
// A section of the file in the way that is not a mapping is an error naming
// the variable (thrown as ConfigFailure).
std::map<std::string, std::string> apply_environment(YAML::Node& root, Environment const& env);

}  // namespace edge::cli
