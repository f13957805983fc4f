#include "config_loader.hpp"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace edge::cli {
namespace {

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
    fail(node, key, "expected an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got \"" +
                        describe(node) + "\"");
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
  static std::string index(std::string const& parent, std::size_t i) {
    return parent + "[" + std::to_string(i) + "]";
  }
  static std::string describe(YAML::Node const& node) {
    return node.IsScalar() ? node.Scalar() : node.IsSequence() ? "a list" : node.IsMap() ? "a mapping" : "null";
  }

  std::filesystem::path const& base() const { return base_; }

 private:
  std::string file_;
  std::filesystem::path base_;
};

bool is_ip_literal(std::string const& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool is_dns_name(std::string_view name) {
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

proxy::TlsVersion tls_version(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = node.IsScalar() ? node.Scalar() : Reader::describe(node);
  if (text == "1.2") return proxy::TlsVersion::tls1_2;
  if (text == "1.3") return proxy::TlsVersion::tls1_3;
  r.fail(node, key, "expected \"1.2\" or \"1.3\", got \"" + text + "\"");
}

acme::KeyType key_type(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = r.string(node, key);
  if (text == "ecdsa-p256") return acme::KeyType::ecdsa_p256;
  if (text == "ecdsa-p384") return acme::KeyType::ecdsa_p384;
  if (text == "rsa-2048") return acme::KeyType::rsa_2048;
  if (text == "rsa-3072") return acme::KeyType::rsa_3072;
  if (text == "rsa-4096") return acme::KeyType::rsa_4096;
  r.fail(node, key, "expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, got \"" + text + "\"");
}

proxy::HttpRoute route(Reader const& r, YAML::Node const& node, std::string const& key) {
  r.only_keys(node, key, {"path_prefix", "upstream"});
  proxy::HttpRoute out;
  if (node["path_prefix"]) {
    out.path_prefix = r.string(node["path_prefix"], key + ".path_prefix");
    if (!out.path_prefix.starts_with("/")) r.fail(node["path_prefix"], key + ".path_prefix", "must start with \"/\"");
  }
  if (!node["upstream"]) r.fail(node, key, "missing key \"upstream\"");
  auto const& up = node["upstream"];
  out.upstream_text = r.string(up, key + ".upstream");
  // http://host[:port][/path]; https upstreams come with the full proxy.
  std::string_view rest = out.upstream_text;
  if (!rest.starts_with("http://")) {
    r.fail(up, key + ".upstream", "expected an http:// URL, got \"" + out.upstream_text + "\"");
  }
  rest.remove_prefix(7);
  auto const slash = rest.find('/');
  std::string authority(rest.substr(0, slash));
  out.upstream.base_path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  std::string port_text;
  if (authority.starts_with("[")) {
    auto const close = authority.find(']');
    if (close == std::string::npos) r.fail(up, key + ".upstream", "unterminated IPv6 address");
    out.upstream.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') r.fail(up, key + ".upstream", "expected ':' after ']'");
      port_text = authority.substr(close + 2);
    }
  } else if (auto colon = authority.find(':'); colon != std::string::npos) {
    out.upstream.host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
  } else {
    out.upstream.host = authority;
  }
  if (out.upstream.host.empty()) r.fail(up, key + ".upstream", "missing host");
  if (!port_text.empty()) {
    try {
      std::size_t used = 0;
      long const port = std::stol(port_text, &used);
      if (used != port_text.size() || port < 1 || port > 65535) throw std::out_of_range(port_text);
      out.upstream.port = static_cast<std::uint16_t>(port);
    } catch (std::exception const&) {
      r.fail(up, key + ".upstream", "bad port \"" + port_text + "\"");
    }
  }
  return out;
}

void read_certificates(Reader const& r, YAML::Node const& list, std::string const& key, EdgeConfig& config) {
  if (!list.IsSequence()) r.fail(list, key, "expected a list of certificates");
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto const& node = list[i];
    auto const item = Reader::index(key, i);
    r.only_keys(node, item, {"name", "identifiers", "certificate", "private_key"});
    if (!node["name"]) r.fail(node, item, "missing key \"name\"");
    auto const name = r.string(node["name"], item + ".name");
    if (name.empty()) r.fail(node["name"], item + ".name", "must not be empty");
    if (!names.insert(name).second) r.fail(node["name"], item + ".name", "duplicate certificate name \"" + name + "\"");
    if (config.mode == TlsMode::acme) {
      if (node["certificate"] || node["private_key"]) {
        r.fail(node, item, "\"certificate\"/\"private_key\" belong to mode: manual; mode is acme");
      }
      if (!node["identifiers"]) r.fail(node, item, "missing key \"identifiers\"");
      auto const ids_key = item + ".identifiers";
      auto ids = r.strings(node["identifiers"], ids_key);
      if (ids.empty()) r.fail(node["identifiers"], ids_key, "needs at least one DNS name or IP address");
      for (std::size_t j = 0; j < ids.size(); ++j) {
        if (!is_ip_literal(ids[j]) && !is_dns_name(ids[j])) {
          r.fail(node["identifiers"][j], Reader::index(ids_key, j),
                 "\"" + ids[j] + "\" is neither a DNS name nor an IP address");
        }
      }
      config.acme.certificates.push_back({name, std::move(ids)});
    } else {
      if (node["identifiers"]) r.fail(node["identifiers"], item + ".identifiers",
                                      "identifiers come from the certificate in mode: manual");
      if (!node["certificate"]) r.fail(node, item, "missing key \"certificate\"");
      if (!node["private_key"]) r.fail(node, item, "missing key \"private_key\"");
      config.manual_certificates.push_back({name, r.path(node["certificate"], item + ".certificate"),
                                            r.path(node["private_key"], item + ".private_key")});
    }
  }
}

void read_tls(Reader const& r, YAML::Node const& tls, EdgeConfig& config) {
  std::string const key = "proxy.tls";
  r.only_keys(tls, key, {"mode", "acme", "certificates", "handshake_timeout_secs", "min_protocol_version",
                         "max_protocol_version", "session_cache", "session_tickets"});
  if (auto mode = tls["mode"]) {
    auto const text = r.string(mode, key + ".mode");
    if (text == "acme") config.mode = TlsMode::acme;
    else if (text == "manual") config.mode = TlsMode::manual;
    else r.fail(mode, key + ".mode", "expected \"acme\" or \"manual\", got \"" + text + "\"");
  }
  if (auto acme = tls["acme"]) {
    std::string const akey = key + ".acme";
    r.only_keys(acme, akey, {"directory", "ca_bundle", "contact", "key_type"});
    if (acme["directory"]) {
      config.acme.directory_url = r.string(acme["directory"], akey + ".directory");
      if (!config.acme.directory_url.starts_with("https://")) {
        r.fail(acme["directory"], akey + ".directory", "expected an https:// URL");
      }
    }
    if (acme["ca_bundle"]) config.acme.ca_bundle = r.path(acme["ca_bundle"], akey + ".ca_bundle").string();
    if (acme["contact"]) config.acme.contact = r.strings(acme["contact"], akey + ".contact");
    if (acme["key_type"]) config.acme.key_type = key_type(r, acme["key_type"], akey + ".key_type");
  }
  if (config.mode == TlsMode::acme && config.acme.directory_url.empty()) {
    r.fail(tls, key + ".acme.directory", "required when mode is acme");
  }
  if (auto certs = tls["certificates"]) read_certificates(r, certs, key + ".certificates", config);
  if (auto t = tls["handshake_timeout_secs"]) {
    config.proxy.tls.handshake_timeout = std::chrono::seconds(r.integer(t, key + ".handshake_timeout_secs", 1, 3600));
  }
  if (auto v = tls["min_protocol_version"]) config.proxy.tls.min_version = tls_version(r, v, key + ".min_protocol_version");
  if (auto v = tls["max_protocol_version"]) config.proxy.tls.max_version = tls_version(r, v, key + ".max_protocol_version");
  if (config.proxy.tls.min_version > config.proxy.tls.max_version) {
    r.fail(tls["max_protocol_version"], key + ".max_protocol_version", "is lower than min_protocol_version");
  }
  if (auto v = tls["session_cache"]) config.proxy.tls.session_cache = r.boolean(v, key + ".session_cache");
  if (auto v = tls["session_tickets"]) config.proxy.tls.session_tickets = r.boolean(v, key + ".session_tickets");
}

void read_proxy(Reader const& r, YAML::Node const& proxy, EdgeConfig& config) {
  r.only_keys(proxy, "proxy", {"listen", "workers", "tls", "http"});
  if (auto listen = proxy["listen"]) {
    auto const texts = r.strings(listen, "proxy.listen");
    if (texts.empty()) r.fail(listen, "proxy.listen", "needs at least one address");
    config.proxy.listen.clear();
    for (std::size_t i = 0; i < texts.size(); ++i) {
      proxy::ListenAddress address;
      std::string why;
      if (!proxy::parse_listen_address(texts[i], address, why)) r.fail(listen[i], Reader::index("proxy.listen", i), why);
      config.proxy.listen.push_back(address);
    }
  }
  if (auto w = proxy["workers"]) config.proxy.workers = static_cast<unsigned>(r.integer(w, "proxy.workers", 0, 256));
  if (auto tls = proxy["tls"]) read_tls(r, tls, config);
  if (auto http = proxy["http"]) {
    r.only_keys(http, "proxy.http", {"upstream_timeout_secs", "routes"});
    if (auto t = http["upstream_timeout_secs"]) {
      config.proxy.upstream_timeout = std::chrono::seconds(r.integer(t, "proxy.http.upstream_timeout_secs", 1, 86400));
    }
    if (auto routes = http["routes"]) {
      if (!routes.IsSequence()) r.fail(routes, "proxy.http.routes", "expected a list of routes");
      for (std::size_t i = 0; i < routes.size(); ++i) {
        config.proxy.routes.push_back(route(r, routes[i], Reader::index("proxy.http.routes", i)));
      }
    }
  }
}

}  // namespace

EdgeConfig default_config() {
  EdgeConfig config;
  proxy::ListenAddress v4{"127.0.0.1", 8443}, v6{"::1", 8443};
  config.proxy.listen = {v4, v6};
  config.handshake_log_file = "-";
  return config;
}

boost::system::result<EdgeConfig, ConfigError> parse_config(std::string const& text, std::string const& name,
                                                           std::filesystem::path const& base_directory) {
  Reader const r(name, base_directory);
  try {
    YAML::Node const root = YAML::Load(text);
    EdgeConfig config = default_config();
    config.source = name;
    config.handshake_log_file.clear();
    if (!root || root.IsNull()) return config;
    r.only_keys(root, "", {"store", "proxy", "handshake_log"});
    if (auto store = root["store"]) {
      r.only_keys(store, "store", {"path"});
      if (store["path"]) config.store_path = r.path(store["path"], "store.path");
    } else {
      config.store_path = base_directory / "edge.db";
    }
    if (auto proxy = root["proxy"]) read_proxy(r, proxy, config);
    if (auto log = root["handshake_log"]) {
      r.only_keys(log, "handshake_log", {"file"});
      if (log["file"]) {
        auto const file = r.string(log["file"], "handshake_log.file");
        config.handshake_log_file = file == "-" ? file : r.path(log["file"], "handshake_log.file").string();
      }
    }
    return config;
  } catch (ConfigFailure const& failure) {
    return ConfigError{failure.message};
  } catch (YAML::Exception const& e) {
    std::ostringstream out;
    out << name;
    if (e.mark.line >= 0) out << ':' << e.mark.line + 1 << ':' << e.mark.column + 1;
    out << ": YAML syntax error: " << e.msg;
    return ConfigError{out.str()};
  }
}

boost::system::result<EdgeConfig, ConfigError> load_config(std::filesystem::path const& path) {
  std::ifstream in(path);
  if (!in) return ConfigError{path.string() + ": cannot read the configuration file"};
  std::stringstream text;
  text << in.rdbuf();
  auto base = path.parent_path();
  if (base.empty()) base = ".";
  return parse_config(text.str(), path.string(), std::filesystem::absolute(base));
}

}  // namespace edge::cli
