#include "environment_overrides.hpp"

#include <cstdlib>
#include <filesystem>
#include <span>

#include "yaml_reader.hpp"

namespace edge::cli {
namespace {

std::vector<std::string> split(std::string const& text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto const end = text.find(separator, start);
    auto item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto const first = item.find_first_not_of(" \t");
    auto const last = item.find_last_not_of(" \t");
    out.push_back(first == std::string::npos ? std::string() : item.substr(first, last - first + 1));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

YAML::Node value_node(EnvironmentVariable const& variable, std::string const& text) {
  switch (variable.shape) {
    case EnvironmentShape::list: {
      YAML::Node list(YAML::NodeType::Sequence);
      // "a,,b" or a trailing comma leaves an empty entry: the reader says so.
      if (!text.empty())
        for (auto const& item : split(text, ',')) list.push_back(item);
      return list;
    }
    case EnvironmentShape::log:
      if (text == "-") return YAML::Node(text);
      [[fallthrough]];
    case EnvironmentShape::path:
      // The working directory is where a relative path on a command line or in
      // a unit's Environment= means something; the file's directory is not.
      if (!text.empty() && std::filesystem::path(text).is_relative())
        return YAML::Node(std::filesystem::absolute(text).lexically_normal().string());
      return YAML::Node(text);
    case EnvironmentShape::scalar:
      break;
  }
  return YAML::Node(text);
}

// Sets root.a.b.c = value. Each step indexes the parent afresh: assigning to a
// YAML::Node handle would overwrite the node it refers to.
void set_key(YAML::Node node, std::span<std::string const> path, YAML::Node const& value, std::string const& done,
             EnvironmentVariable const& variable) {
  if (path.size() == 1) {
    node[path[0]] = value;
    return;
  }
  auto const here = Reader::join(done, path[0]);
  YAML::Node const existing = node[path[0]];
  if (!existing.IsDefined() || existing.IsNull()) {
    node[path[0]] = YAML::Node(YAML::NodeType::Map);
  } else if (!existing.IsMap()) {
    throw ConfigFailure{std::string(variable.name) + ": " + variable.key + ": cannot be set, " + here +
                        " in the configuration is not a mapping"};
  }
  set_key(node[path[0]], path.subspan(1), value, here, variable);
}

}  // namespace

std::vector<EnvironmentVariable> const& environment_variables() {
  static std::vector<EnvironmentVariable> const variables = {
      {"EDGE_STORE", "store.path", EnvironmentShape::path},
      {"EDGE_LISTEN", "proxy.listen", EnvironmentShape::list},
      {"EDGE_WORKERS", "proxy.workers", EnvironmentShape::scalar},
      {"EDGE_TLS_MODE", "proxy.tls.mode", EnvironmentShape::scalar},
      {"EDGE_ACME_DIRECTORY", "proxy.tls.acme.directory", EnvironmentShape::scalar},
      {"EDGE_ACME_CA_BUNDLE", "proxy.tls.acme.ca_bundle", EnvironmentShape::path},
      {"EDGE_ACME_CONTACT", "proxy.tls.acme.contact", EnvironmentShape::list},
      {"EDGE_HANDSHAKE_LOG", "handshake_log.file", EnvironmentShape::log},
      {"EDGE_ADMIN_LISTEN", "admin.listen", EnvironmentShape::scalar},
      {"EDGE_ADMIN_SOCKET", "admin.socket", EnvironmentShape::path},
      {"EDGE_ADMIN_TOKEN_FILE", "admin.token_file", EnvironmentShape::path},
      {"EDGE_METRICS_LISTEN", "metrics.listen", EnvironmentShape::scalar},
  };
  return variables;
}

Environment process_environment() {
  return [](std::string const& name) -> std::optional<std::string> {
    if (char const* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
  };
}

Environment fixed_environment(std::map<std::string, std::string> values) {
  return [values = std::move(values)](std::string const& name) -> std::optional<std::string> {
    if (auto it = values.find(name); it != values.end()) return it->second;
    return std::nullopt;
  };
}

std::map<std::string, std::string> apply_environment(YAML::Node& root, Environment const& env) {
  std::map<std::string, std::string> applied;
  for (auto const& variable : environment_variables()) {
    auto const text = env(variable.name);
    if (!text) continue;
    // An empty document becomes a mapping; any other non-mapping is the
    // reader's to reject, with the file's position.
    if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
    if (!root.IsMap()) return applied;
    auto const path = split(variable.key, '.');
    set_key(root, path, value_node(variable, *text), "", variable);
    applied[variable.key] = variable.name;
  }
  return applied;
}

}  // namespace edge::cli
