#include "config_loader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "environment_overrides.hpp"
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
  r.only_keys(node, key,
              {"path", "path_prefix", "path_regex", "host", "type", "preserve_host", "upstream", "upstream_tls",
               "forward_headers", "name", "rate_limit"});
  proxy::HttpRoute out;
  out.name = node["name"] ? r.string(node["name"], key + ".name") : key.substr(key.find("routes"));
  int matchers = 0;
  for (char const* name : {"path", "path_prefix"}) {
    if (auto v = node[name]) {
      ++matchers;
      auto text = r.string(v, key + "." + name);
      if (!text.starts_with("/")) r.fail(v, key + "." + name, "must start with \"/\"");
      (std::string_view(name) == "path" ? out.path : out.path_prefix) = std::move(text);
    }
  }
  if (auto v = node["path_regex"]) {
    ++matchers;
    out.path_regex = r.string(v, key + ".path_regex");
    try {
      out.compiled_regex = std::make_shared<std::regex const>(out.path_regex, std::regex::ECMAScript | std::regex::optimize);
    } catch (std::regex_error const& e) {
      r.fail(v, key + ".path_regex", std::string("not a valid regular expression: ") + e.what());
    }
  }
  if (matchers > 1) r.fail(node, key, "give one of path, path_prefix, path_regex");
  if (matchers == 0) out.path_prefix = "/";
  if (node["host"]) out.host = r.string(node["host"], key + ".host");
  if (auto v = node["type"]) {
    auto const type = r.string(v, key + ".type");
    if (type == "websocket") out.websocket = true;
    else if (type != "http") r.fail(v, key + ".type", "expected http or websocket, got \"" + type + "\"");
  }
  if (node["preserve_host"]) out.preserve_host = r.boolean(node["preserve_host"], key + ".preserve_host");
  if (!node["upstream"]) r.fail(node, key, "missing key \"upstream\"");
  auto const& up = node["upstream"];
  out.upstream_text = r.string(up, key + ".upstream");
  // http[s]://host[:port][/path]
  std::string_view rest = out.upstream_text;
  if (rest.starts_with("https://")) {
    out.upstream.tls = true;
    out.upstream.port = 443;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    r.fail(up, key + ".upstream", "expected an http:// or https:// URL, got \"" + out.upstream_text + "\"");
  }
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
  if (auto t = node["upstream_tls"]) {
    std::string const tkey = key + ".upstream_tls";
    if (!out.upstream.tls) r.fail(t, tkey, "only for an https:// upstream");
    r.only_keys(t, tkey, {"verify", "ca_file", "sni", "server_name"});
    auto& o = out.upstream.tls_options;
    if (t["verify"]) o.verify = r.boolean(t["verify"], tkey + ".verify");
    if (t["sni"]) o.sni = r.boolean(t["sni"], tkey + ".sni");
    if (t["server_name"]) o.server_name = r.string(t["server_name"], tkey + ".server_name");
    if (t["ca_file"]) {
      auto const file = r.path(t["ca_file"], tkey + ".ca_file");
      std::ifstream probe(file);
      if (!probe) r.fail(t["ca_file"], tkey + ".ca_file", "cannot read " + file.string());
      o.ca_file = file.string();
    }
  }
  if (out.websocket && out.upstream.tls) r.fail(up, key + ".upstream", "a websocket route needs an http:// upstream");
  if (auto f = node["forward_headers"]) {
    auto names = r.strings(f, key + ".forward_headers");
    for (auto& name : names) {
      if (name.empty()) r.fail(f, key + ".forward_headers", "empty header name");
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    out.forward_headers = std::move(names);
  }
  if (auto l = node["rate_limit"]) {
    std::string const lkey = key + ".rate_limit";
    r.only_keys(l, lkey, {"rate", "burst", "status", "max_connections", "max_connections_per_client",
                          "concurrency_status"});
    auto& o = out.limits;
    if (l["rate"]) o.rate = static_cast<double>(r.integer(l["rate"], lkey + ".rate", 1, 1000000));
    if (l["burst"]) o.burst = static_cast<double>(r.integer(l["burst"], lkey + ".burst", 1, 1000000));
    if (l["burst"] && !l["rate"]) r.fail(l["burst"], lkey + ".burst", "needs rate");
    if (o.rate > 0 && o.burst == 0) o.burst = o.rate;
    if (l["status"]) o.status = static_cast<unsigned>(r.integer(l["status"], lkey + ".status", 400, 599));
    if (l["max_connections"])
      o.max_connections = static_cast<unsigned>(r.integer(l["max_connections"], lkey + ".max_connections", 1, 1000000));
    if (l["max_connections_per_client"]) {
      o.max_connections_per_client = static_cast<unsigned>(
          r.integer(l["max_connections_per_client"], lkey + ".max_connections_per_client", 1, 1000000));
    }
    if (l["concurrency_status"]) {
      o.concurrency_status =
          static_cast<unsigned>(r.integer(l["concurrency_status"], lkey + ".concurrency_status", 400, 599));
    }
    out.limiter = proxy::make_rate_limiter(o);
  }
  return out;
}

proxy::UnknownSniPolicy unknown_sni_policy(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = r.string(node, key);
  if (text == "default") return proxy::UnknownSniPolicy::default_certificate;
  if (text == "reject") return proxy::UnknownSniPolicy::reject;
  if (text == "drop") return proxy::UnknownSniPolicy::drop;
  r.fail(node, key, "expected default, reject or drop, got \"" + text + "\"");
}

// "127.0.0.1:8443", or {address: "127.0.0.1:8443", unknown_sni: drop}.
proxy::ListenAddress listen_address(Reader const& r, YAML::Node const& node, std::size_t i) {
  auto const key = Reader::index("proxy.listen", i);
  proxy::ListenAddress address;
  if (node.IsMap()) {
    r.only_keys(node, key, {"address", "unknown_sni", "proxy_protocol"});
    if (!node["address"]) r.fail(node, key, "missing key \"address\"");
  }
  // Initialised once: assigning to a YAML::Node would overwrite the node it refers to.
  YAML::Node const text_node = node.IsMap() ? node["address"] : node;
  std::string why;
  if (!proxy::parse_listen_address(r.string(text_node, key), address, why)) r.fail(text_node, key, why);
  if (node.IsMap() && node["proxy_protocol"])
    address.proxy_protocol = r.boolean(node["proxy_protocol"], key + ".proxy_protocol");
  if (node.IsMap() && node["unknown_sni"]) {
    address.unknown_sni = unknown_sni_policy(r, node["unknown_sni"], key + ".unknown_sni");
  }
  return address;
}

// A list of names ("[a, b]") or OpenSSL's colon syntax ("a:b"), checked by `check`.
template <class Check>
std::string openssl_list(Reader const& r, YAML::Node const& node, std::string const& key, Check check) {
  std::string joined;
  if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i) joined += (i ? ":" : "") + r.string(node[i], Reader::index(key, i));
  } else {
    joined = r.string(node, key);
  }
  std::string why;
  if (joined.empty() || !check(joined, why)) r.fail(node, key, joined.empty() ? "must not be empty" : why);
  return joined;
}

std::optional<proxy::ProxyProtocolVersion> proxy_protocol_version(Reader const& r, YAML::Node const& node,
                                                                  std::string const& key) {
  auto const text = r.string(node, key);
  if (text == "v1" || text == "1") return proxy::ProxyProtocolVersion::v1;
  if (text == "v2" || text == "2") return proxy::ProxyProtocolVersion::v2;
  if (text == "none" || text == "off") return std::nullopt;
  r.fail(node, key, "expected v1, v2 or none, got \"" + text + "\"");
}

// host:port of a TCP upstream ("[::1]:9000" for IPv6).
proxy::TcpUpstream tcp_upstream(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = r.string(node, key);
  proxy::TcpUpstream out;
  auto const colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    r.fail(node, key, "expected host:port, got \"" + text + "\"");
  }
  out.host = text.substr(0, colon);
  if (out.host.starts_with("[") && out.host.ends_with("]")) out.host = out.host.substr(1, out.host.size() - 2);
  try {
    std::size_t used = 0;
    long const port = std::stol(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || port < 1 || port > 65535) throw std::out_of_range(text);
    out.port = static_cast<std::uint16_t>(port);
  } catch (std::exception const&) {
    r.fail(node, key, "bad port in \"" + text + "\"");
  }
  return out;
}

// mode / upstream / handler / proxy_protocol of routing.default or a routing.sni[] entry.
proxy::TlsRoute tls_route(Reader const& r, YAML::Node const& node, std::string const& key) {
  proxy::TlsRoute route;
  if (auto mode = node["mode"]) {
    auto const text = r.string(mode, key + ".mode");
    if (text == "tls_terminate")
      route.mode = proxy::RouteMode::tls_terminate;
    else if (text == "transparent")
      route.mode = proxy::RouteMode::transparent;
    else if (text == "reject")
      route.mode = proxy::RouteMode::reject;
    else
      r.fail(mode, key + ".mode", "expected tls_terminate, transparent or reject, got \"" + text + "\"");
  }
  if (auto handler = node["handler"]) {
    if (r.string(handler, key + ".handler") != "http") r.fail(handler, key + ".handler", "expected \"http\"");
    if (route.mode != proxy::RouteMode::tls_terminate)
      r.fail(handler, key + ".handler", "only with mode: tls_terminate");
    if (node["upstream"]) r.fail(handler, key + ".handler", "give either handler: http or upstream, not both");
  }
  if (auto upstream = node["upstream"]) {
    if (route.mode == proxy::RouteMode::reject) r.fail(upstream, key + ".upstream", "a reject route has no upstream");
    route.upstream = tcp_upstream(r, upstream, key + ".upstream");
    route.http = false;
  } else if (route.mode == proxy::RouteMode::transparent) {
    r.fail(node, key + ".upstream", "required with mode: transparent");
  }
  if (auto pp = node["proxy_protocol"]) route.proxy_protocol = proxy_protocol_version(r, pp, key + ".proxy_protocol");
  return route;
}

proxy::SniEntry sni_entry(Reader const& r, YAML::Node const& node, std::string const& key) {
  r.only_keys(node, key,
              {"server_name", "client_auth", "client_ca", "crl", "mode", "upstream", "handler", "proxy_protocol"});
  proxy::SniEntry entry;
  entry.route = tls_route(r, node, key);
  if (!node["server_name"]) r.fail(node, key, "missing key \"server_name\"");
  entry.server_name = r.string(node["server_name"], key + ".server_name");
  if (!is_dns_name(entry.server_name)) {
    r.fail(node["server_name"], key + ".server_name", "\"" + entry.server_name + "\" is not a DNS name or *.wildcard");
  }
  if (auto mode = node["client_auth"]) {
    auto const text = r.string(mode, key + ".client_auth");
    if (text == "none")
      entry.client_auth.mode = proxy::ClientAuth::none;
    else if (text == "optional")
      entry.client_auth.mode = proxy::ClientAuth::optional;
    else if (text == "required")
      entry.client_auth.mode = proxy::ClientAuth::required;
    else
      r.fail(mode, key + ".client_auth", "expected none, optional or required, got \"" + text + "\"");
  }
  if (node["client_ca"]) entry.client_auth.client_ca_file = r.path(node["client_ca"], key + ".client_ca").string();
  if (auto crl = node["crl"]) {
    if (crl.IsSequence()) {
      for (std::size_t i = 0; i < crl.size(); ++i) {
        entry.client_auth.crl_files.push_back(r.path(crl[i], Reader::index(key + ".crl", i)).string());
      }
    } else {
      entry.client_auth.crl_files.push_back(r.path(crl, key + ".crl").string());
    }
  }
  if (entry.client_auth.mode != proxy::ClientAuth::none && entry.client_auth.client_ca_file.empty()) {
    r.fail(node, key + ".client_ca", "required when client_auth is " + r.string(node["client_auth"], key));
  }
  std::string why;
  if (entry.client_auth.mode != proxy::ClientAuth::none && !proxy::check_client_auth_files(entry.client_auth, why)) {
    r.fail(node["client_ca"], key + ".client_ca", why);
  }
  return entry;
}

}  // namespace

std::filesystem::path private_key_path(Reader const& r, YAML::Node const& node, std::string const& key,
                                       EdgeConfig const& config) {
  auto path = r.path(node, key);
  struct stat st{};
  // A missing file is reported when edged imports it; here only its mode.
  if (config.allow_world_readable_keys || ::stat(path.c_str(), &st) != 0) return path;
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    r.fail(node, key,
           path.string() + " is readable or writable by other users (mode " + mode +
               "); chmod 600 it, or set proxy.tls.allow_world_readable_keys: true");
  }
  return path;
}

namespace {

void read_routing(Reader const& r, YAML::Node const& routing, EdgeConfig& config) {
  std::string const key = "proxy.tls.routing";
  r.only_keys(routing, key, {"sni", "default"});
  if (auto def = routing["default"]) {
    r.only_keys(def, key + ".default", {"mode", "upstream", "handler", "proxy_protocol"});
    config.proxy.tls.default_route = tls_route(r, def, key + ".default");
  }
  if (auto sni = routing["sni"]) {
    if (!sni.IsSequence()) r.fail(sni, key + ".sni", "expected a list of SNI entries");
    std::set<std::string> seen;
    for (std::size_t i = 0; i < sni.size(); ++i) {
      auto entry = sni_entry(r, sni[i], Reader::index(key + ".sni", i));
      if (!seen.insert(entry.server_name).second) {
        r.fail(sni[i]["server_name"], Reader::index(key + ".sni", i) + ".server_name",
               "duplicate server_name \"" + entry.server_name + "\"");
      }
      config.proxy.tls.sni.push_back(std::move(entry));
    }
  }
}

void read_tls(Reader const& r, YAML::Node const& tls, EdgeConfig& config) {
  std::string const key = "proxy.tls";
  r.only_keys(tls, key,
              {"mode", "acme", "certificates", "certificate", "private_key", "handshake_timeout_secs",
               "min_protocol_version", "max_protocol_version", "session_cache", "session_cache_size", "session_tickets",
               "session_ticket_rotation_secs", "cipher_suites", "ciphers", "groups", "unknown_sni", "routing",
               "allow_world_readable_keys"});
  // Read first: the manual certificates below are checked against it.
  if (auto v = tls["allow_world_readable_keys"])
    config.allow_world_readable_keys = r.boolean(v, key + ".allow_world_readable_keys");
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
      if (existing.name == "default")
        r.fail(present, key + ".certificate", "a certificate named \"default\" is also listed");
    }
    config.manual_certificates.push_back({"default", r.path(tls["certificate"], key + ".certificate"),
                                          private_key_path(r, tls["private_key"], key + ".private_key", config)});
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
  if (auto v = tls["session_cache_size"]) {
    config.proxy.tls.session_cache_size =
        static_cast<std::size_t>(r.integer(v, key + ".session_cache_size", 1, 10'000'000));
  }
  if (auto v = tls["session_ticket_rotation_secs"]) {
    config.proxy.tls.ticket_key_rotation =
        std::chrono::seconds(r.integer(v, key + ".session_ticket_rotation_secs", 60, 7 * 86400));
  }
  if (auto v = tls["cipher_suites"])
    config.proxy.tls.cipher_suites = openssl_list(r, v, key + ".cipher_suites", proxy::check_cipher_suites);
  if (auto v = tls["ciphers"]) config.proxy.tls.ciphers = openssl_list(r, v, key + ".ciphers", proxy::check_ciphers);
  if (auto v = tls["groups"]) config.proxy.tls.groups = openssl_list(r, v, key + ".groups", proxy::check_groups);
  if (auto v = tls["unknown_sni"]) config.proxy.tls.unknown_sni = unknown_sni_policy(r, v, key + ".unknown_sni");
  if (auto v = tls["routing"]) read_routing(r, v, config);
}

void read_proxy(Reader const& r, YAML::Node const& proxy, EdgeConfig& config) {
  r.only_keys(proxy, "proxy",
              {"listen", "workers", "tls", "http", "proxy_protocol", "shutdown_grace_secs", "max_connections"});
  if (auto v = proxy["shutdown_grace_secs"])
    config.proxy.shutdown_grace = std::chrono::seconds(r.integer(v, "proxy.shutdown_grace_secs", 0, 3600));
  if (auto v = proxy["max_connections"])
    config.proxy.max_connections = static_cast<std::size_t>(r.integer(v, "proxy.max_connections", 0, 10000000));
  if (auto pp = proxy["proxy_protocol"]) {
    std::string const key = "proxy.proxy_protocol";
    r.only_keys(pp, key, {"enabled", "version", "trusted_proxies"});
    auto& inbound = config.proxy.proxy_protocol;
    if (pp["enabled"]) inbound.enabled = r.boolean(pp["enabled"], key + ".enabled");
    if (pp["version"]) inbound.version = proxy_protocol_version(r, pp["version"], key + ".version");
    if (auto trusted = pp["trusted_proxies"]) {
      auto const texts = r.strings(trusted, key + ".trusted_proxies");
      for (std::size_t i = 0; i < texts.size(); ++i) {
        proxy::Cidr cidr;
        std::string why;
        if (!proxy::Cidr::parse(texts[i], cidr, why))
          r.fail(trusted[i], Reader::index(key + ".trusted_proxies", i), why);
        inbound.trusted_proxies.push_back(cidr);
      }
    }
    if (inbound.enabled && inbound.trusted_proxies.empty()) {
      r.fail(pp, key + ".trusted_proxies", "required when enabled: a PROXY header is believed only from these");
    }
  }
  if (auto listen = proxy["listen"]) {
    if (!listen.IsSequence()) r.fail(listen, "proxy.listen", "expected a list of addresses");
    if (listen.size() == 0) r.fail(listen, "proxy.listen", "needs at least one address");
    config.proxy.listen.clear();
    for (std::size_t i = 0; i < listen.size(); ++i) config.proxy.listen.push_back(listen_address(r, listen[i], i));
  }
  for (std::size_t i = 0; i < config.proxy.listen.size(); ++i) {
    if (config.proxy.listen[i].proxy_protocol.value_or(false) && config.proxy.proxy_protocol.trusted_proxies.empty()) {
      r.fail(proxy["listen"][i], Reader::index("proxy.listen", i) + ".proxy_protocol",
             "needs proxy.proxy_protocol.trusted_proxies: a PROXY header is believed only from these");
    }
  }
  if (auto w = proxy["workers"]) config.proxy.workers = static_cast<unsigned>(r.integer(w, "proxy.workers", 0, 256));
  if (auto tls = proxy["tls"]) read_tls(r, tls, config);
  if (auto http = proxy["http"]) {
    r.only_keys(http, "proxy.http", {"upstream_timeout_secs", "client_timeout_secs", "routes", "server_header", "pool", "access_log"});
    if (auto t = http["client_timeout_secs"]) {
      config.proxy.client_timeout = std::chrono::seconds(r.integer(t, "proxy.http.client_timeout_secs", 1, 86400));
    }
    if (auto pool = http["pool"]) {
      r.only_keys(pool, "proxy.http.pool", {"max_idle", "max_connections", "wait_timeout_ms", "idle_timeout_secs"});
      auto& p = config.proxy.pool;
      if (pool["max_idle"]) p.max_idle = r.integer(pool["max_idle"], "proxy.http.pool.max_idle", 0, 100000);
      if (pool["max_connections"])
        p.max_connections = r.integer(pool["max_connections"], "proxy.http.pool.max_connections", 0, 1000000);
      if (pool["wait_timeout_ms"]) {
        p.wait_timeout =
            std::chrono::milliseconds(r.integer(pool["wait_timeout_ms"], "proxy.http.pool.wait_timeout_ms", 0, 3600000));
      }
      if (pool["idle_timeout_secs"]) {
        p.idle_timeout =
            std::chrono::seconds(r.integer(pool["idle_timeout_secs"], "proxy.http.pool.idle_timeout_secs", 1, 86400));
      }
    }
    if (auto log = http["access_log"]) {
      r.only_keys(log, "proxy.http.access_log", {"file"});
      if (log["file"]) {
        auto const file = r.string(log["file"], "proxy.http.access_log.file");
        config.proxy.access_log_file =
            file == "-" ? file : r.path(log["file"], "proxy.http.access_log.file").string();
      }
    }
    if (auto v = http["server_header"]) config.proxy.server_header = r.boolean(v, "proxy.http.server_header");
    if (auto t = http["upstream_timeout_secs"]) {
      config.proxy.upstream_timeout = std::chrono::seconds(r.integer(t, "proxy.http.upstream_timeout_secs", 1, 86400));
    }
    if (auto routes = http["routes"]) {
      if (!routes.IsSequence()) r.fail(routes, "proxy.http.routes", "expected a list of routes");
      for (std::size_t i = 0; i < routes.size(); ++i) {
        config.proxy.routes.push_back(route(r, routes[i], Reader::index("proxy.http.routes", i)));
        config.proxy.routes.back().index = i;
      }
    }
  }
}

void read_handshake_log(Reader const& r, YAML::Node const& log, EdgeConfig& config) {
  std::string const key = "handshake_log";
  auto& options = config.handshake_log;
  r.only_keys(log, key,
              {"file", "store", "sample_success", "damping_window_secs", "max_size_mb", "max_files", "retention_days",
               "retention_rows", "queue_capacity"});
  if (auto v = log["store"]) config.handshake_log_store = r.boolean(v, key + ".store");
  if (log["file"]) {
    auto const file = r.string(log["file"], key + ".file");
    options.file = file == "-" ? file : r.path(log["file"], key + ".file").string();
  }
  if (auto v = log["sample_success"]) {
    double share = -1;
    try {
      share = v.as<double>();
    } catch (YAML::Exception const&) {
    }
    if (share < 0.0 || share > 1.0)
      r.fail(v, key + ".sample_success", "expected a number in 0.0..1.0, got \"" + Reader::describe(v) + "\"");
    options.sample_success = share;
  }
  if (auto v = log["damping_window_secs"])
    options.damping_window = std::chrono::seconds(r.integer(v, key + ".damping_window_secs", 0, 3600));
  if (auto v = log["max_size_mb"]) {
    double size = -1;
    try {
      size = v.as<double>();
    } catch (YAML::Exception const&) {
    }
    if (size < 0 || size > 1 << 20)
      r.fail(v, key + ".max_size_mb", "expected a size in MiB (0 = no rotation), got \"" + Reader::describe(v) + "\"");
    options.max_file_bytes = static_cast<std::uint64_t>(size * 1024 * 1024);
  }
  if (auto v = log["max_files"]) options.max_files = static_cast<unsigned>(r.integer(v, key + ".max_files", 1, 1000));
  if (auto v = log["retention_days"])
    options.retention_age = std::chrono::hours(24 * r.integer(v, key + ".retention_days", 0, 36500));
  if (auto v = log["retention_rows"]) options.retention_rows = r.integer(v, key + ".retention_rows", 0, 1'000'000'000);
  if (auto v = log["queue_capacity"])
    options.queue_capacity = static_cast<std::size_t>(r.integer(v, key + ".queue_capacity", 16, 10'000'000));
}

}  // namespace

EdgeConfig default_config() {
  EdgeConfig config;
  proxy::ListenAddress v4, v6;
  v4.host = "127.0.0.1";
  v6.host = "::1";
  v4.port = v6.port = 8443;
  config.proxy.listen = {v4, v6};
  config.handshake_log.file = "-";
  return config;
}

namespace {

// The file's text (empty for the built-in defaults) with the environment's
// overrides applied, read into `config`.
boost::system::result<EdgeConfig, ConfigError> read_document(std::string const& text, std::string const& name,
                                                             std::filesystem::path const& base_directory,
                                                             Environment const* environment, EdgeConfig config) {
  bool const from_file = config.source != default_config().source;
  try {
    YAML::Node root = YAML::Load(text);
    std::map<std::string, std::string> from_environment;
    if (environment) from_environment = apply_environment(root, *environment);
    Reader const r(name, base_directory, std::move(from_environment));
    if (!root || root.IsNull()) return config;
    r.only_keys(root, "", {"store", "workers", "proxy", "handshake_log", "admin", "metrics"});
    // The original design has `workers` at the top; proxy.workers wins when both are set.
    if (auto w = root["workers"]) config.proxy.workers = static_cast<unsigned>(r.integer(w, "workers", 0, 256));
    if (auto store = root["store"]) {
      r.only_keys(store, "store", {"path"});
      if (store["path"]) config.store_path = r.path(store["path"], "store.path");
    } else if (from_file) {
      config.store_path = base_directory / "edge.db";
    }
    if (auto proxy = root["proxy"]) read_proxy(r, proxy, config);
    if (auto log = root["handshake_log"]) read_handshake_log(r, log, config);
    read_operator_sections(r, root, config);  // admin:, metrics:
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

EdgeConfig file_defaults(std::string const& name) {
  EdgeConfig config = default_config();
  config.source = name;
  config.handshake_log.file.clear();
  return config;
}

}  // namespace

boost::system::result<EdgeConfig, ConfigError> parse_config(std::string const& text, std::string const& name,
                                                            std::filesystem::path const& base_directory) {
  return read_document(text, name, base_directory, nullptr, file_defaults(name));
}

boost::system::result<EdgeConfig, ConfigError> parse_config(std::string const& text, std::string const& name,
                                                            std::filesystem::path const& base_directory,
                                                            Environment const& environment) {
  return read_document(text, name, base_directory, &environment, file_defaults(name));
}

boost::system::result<EdgeConfig, ConfigError> environment_config(Environment const& environment) {
  return read_document("", "(environment)", std::filesystem::current_path(), &environment, default_config());
}

boost::system::result<EdgeConfig, ConfigError> load_config(std::filesystem::path const& path) {
  return load_config(path, process_environment());
}

boost::system::result<EdgeConfig, ConfigError> load_config(std::filesystem::path const& path,
                                                           Environment const& environment) {
  std::ifstream in(path);
  if (!in) return ConfigError{path.string() + ": cannot read the configuration file"};
  std::stringstream text;
  text << in.rdbuf();
  auto base = path.parent_path();
  if (base.empty()) base = ".";
  return parse_config(text.str(), path.string(), std::filesystem::absolute(base), environment);
}

}  // namespace edge::cli
