#include "config_loader.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "yaml_reader.hpp"

namespace edge::cli {
namespace {

proxy::TlsVersion tls_version(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = node.IsScalar() ? node.Scalar() : Reader::describe(node);
  if (text == "1.2") return proxy::TlsVersion::tls1_2;
  if (text == "1.3") return proxy::TlsVersion::tls1_3;
  r.fail(node, key, "expected \"1.2\" or \"1.3\", got \"" + text + "\"");
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

void read_tls(Reader const& r, YAML::Node const& tls, EdgeConfig& config) {
  std::string const key = "proxy.tls";
  r.only_keys(tls, key,
              {"mode", "acme", "certificates", "certificate", "private_key", "handshake_timeout_secs",
               "min_protocol_version", "max_protocol_version", "session_cache", "session_tickets"});
  if (auto mode = tls["mode"]) {
    auto const text = r.string(mode, key + ".mode");
    if (text == "acme")
      config.mode = TlsMode::acme;
    else if (text == "manual")
      config.mode = TlsMode::manual;
    else
      r.fail(mode, key + ".mode", "expected \"acme\" or \"manual\", got \"" + text + "\"");
  }
  if (auto acme = tls["acme"]) read_acme(r, acme, key + ".acme", config);
  if (config.mode == TlsMode::acme && config.acme.directory_url.empty()) {
    r.fail(tls, key + ".acme.directory", "required when mode is acme");
  }
  if (auto certs = tls["certificates"]) read_certificates(r, certs, key + ".certificates", config);
  // The original design's single manual certificate: proxy.tls.certificate + private_key.
  if (tls["certificate"] || tls["private_key"]) {
    auto const& present = tls["certificate"] ? tls["certificate"] : tls["private_key"];
    if (config.mode != TlsMode::manual) r.fail(present, key + ".certificate", "belongs to mode: manual");
    if (!tls["certificate"]) r.fail(tls, key, "missing key \"certificate\" (private_key is set)");
    if (!tls["private_key"]) r.fail(tls, key, "missing key \"private_key\" (certificate is set)");
    for (auto const& existing : config.manual_certificates) {
      if (existing.name == "default") r.fail(present, key + ".certificate", "a certificate named \"default\" is also listed");
    }
    config.manual_certificates.push_back(
        {"default", r.path(tls["certificate"], key + ".certificate"), r.path(tls["private_key"], key + ".private_key")});
  }
  if (auto t = tls["handshake_timeout_secs"]) {
    config.proxy.tls.handshake_timeout = std::chrono::seconds(r.integer(t, key + ".handshake_timeout_secs", 1, 3600));
  }
  if (auto v = tls["min_protocol_version"])
    config.proxy.tls.min_version = tls_version(r, v, key + ".min_protocol_version");
  if (auto v = tls["max_protocol_version"])
    config.proxy.tls.max_version = tls_version(r, v, key + ".max_protocol_version");
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
      if (!proxy::parse_listen_address(texts[i], address, why))
        r.fail(listen[i], Reader::index("proxy.listen", i), why);
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
