#pragma once
// A YAML walker that knows where it is: every complaint says
// file:line:column: key.path: what is wrong. Shared by the config readers.
#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config_loader.hpp"

namespace edge::cli {

struct ConfigFailure {
  std::string message;
};

// Walks the YAML tree with the key path at hand, so that every complaint can
// say where it is: file:line:column: key.path: what is wrong.
class Reader {
 public:
  Reader(std::string file, std::filesystem::path base) : file_(std::move(file)), base_(std::move(base)) {}

  [[noreturn]] void fail(YAML::Node const& node, std::string const& key, std::string const& what) const {
    auto const mark = node.Mark();
    std::ostringstream out;
    out << file_;
    if (mark.line >= 0) out << ':' << mark.line + 1 << ':' << mark.column + 1;
    out << ": " << key << ": " << what;
    throw ConfigFailure{out.str()};
  }

  // Unknown keys are errors: a typo must not silently fall back to a default.
  void only_keys(YAML::Node const& map, std::string const& key, std::set<std::string> const& allowed) const {
    if (!map.IsMap()) fail(map, key, "expected a mapping");
    for (auto const& entry : map) {
      auto const name = entry.first.as<std::string>();
      if (!allowed.contains(name)) {
        std::string list;
        for (auto const& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(entry.first, join(key, name), "unknown key (expected one of: " + list + ")");
      }
    }
  }

  std::string string(YAML::Node const& node, std::string const& key) const {
    if (!node.IsScalar()) fail(node, key, "expected a string");
    return node.Scalar();
  }

  bool boolean(YAML::Node const& node, std::string const& key) const {
    if (node.IsScalar()) {
      auto const& s = node.Scalar();
      if (s == "true" || s == "on" || s == "yes") return true;
      if (s == "false" || s == "off" || s == "no") return false;
    }
    fail(node, key, "expected true or false, got \"" + describe(node) + "\"");
  }

  long integer(YAML::Node const& node, std::string const& key, long min, long max) const {
    if (node.IsScalar()) {
      try {
        std::size_t used = 0;
        long const value = std::stol(node.Scalar(), &used);
        if (used == node.Scalar().size() && value >= min && value <= max) return value;
      } catch (std::exception const&) {
      }
    }
    fail(node, key,
         "expected an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got \"" + describe(node) +
             "\"");
  }

  std::vector<std::string> strings(YAML::Node const& node, std::string const& key) const {
    if (!node.IsSequence()) fail(node, key, "expected a list of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < node.size(); ++i) out.push_back(string(node[i], index(key, i)));
    return out;
  }

  std::filesystem::path path(YAML::Node const& node, std::string const& key) const {
    auto const text = string(node, key);
    if (text.empty()) fail(node, key, "expected a path, got an empty string");
    std::filesystem::path p(text);
    return p.is_absolute() ? p : (base_ / p).lexically_normal();
  }

  static std::string join(std::string const& parent, std::string const& name) {
    return parent.empty() ? name : parent + "." + name;
  }
  static std::string index(std::string const& parent, std::size_t i) { return parent + "[" + std::to_string(i) + "]"; }
  static std::string describe(YAML::Node const& node) {
    return node.IsScalar() ? node.Scalar() : node.IsSequence() ? "a list" : node.IsMap() ? "a mapping" : "null";
  }

  std::filesystem::path const& base() const { return base_; }

 private:
  std::string file_;
  std::filesystem::path base_;
};

inline bool is_ip_literal(std::string const& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

inline bool is_dns_name(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-') return false;
      label = 0;
      continue;
    }
    char const c = name[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
    ++label;
  }
  return true;
}

// Sections read in their own files.
void read_acme(Reader const& r, YAML::Node const& acme, std::string const& key, EdgeConfig& config);
void read_certificates(Reader const& r, YAML::Node const& list, std::string const& key, EdgeConfig& config);
// A manual private key's path; fails when the file exists and other users may
// read or write it (unless proxy.tls.allow_world_readable_keys).
std::filesystem::path private_key_path(Reader const& r, YAML::Node const& node, std::string const& key,
                                       EdgeConfig const& config);
// The root's admin: and metrics: sections (admin_config_loader.cpp).
void read_operator_sections(Reader const& r, YAML::Node const& root, EdgeConfig& config);

}  // namespace edge::cli
