// The operator surface's sections: admin: (JSON-RPC API, status page) and
// metrics: (OpenMetrics). A section that is present is enabled unless it
// says `enabled: false`; without it nothing listens.
#include "yaml_reader.hpp"

#include <boost/asio/ip/address.hpp>

#include <fstream>
#include <sstream>

namespace edge::cli {
namespace {

proxy::ListenAddress address(Reader const& r, YAML::Node const& node, std::string const& key) {
  proxy::ListenAddress out;
  std::string why;
  if (!proxy::parse_listen_address(r.string(node, key), out, why)) r.fail(node, key, why);
  return out;
}

bool loopback(proxy::ListenAddress const& a) {
  boost::system::error_code ec;
  auto const ip = boost::asio::ip::make_address(a.host, ec);
  return !ec && ip.is_loopback();
}

// The token is a secret: messages name the file, never its content.
std::string read_token(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const path = r.path(node, key);
  std::ifstream in(path, std::ios::binary);
  if (!in) r.fail(node, key, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  auto token = text.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(token.begin());
  if (token.empty()) r.fail(node, key, path.string() + " is empty");
  if (token.size() < 16) r.fail(node, key, path.string() + ": the token must have at least 16 characters");
  if (std::any_of(token.begin(), token.end(), [](unsigned char c) { return c < 0x21 || c == 0x7f; }))
    r.fail(node, key, path.string() + ": the token must be one line of printable characters without blanks");
  return token;
}

void read_admin(Reader const& r, YAML::Node const& node, EdgeConfig& config) {
  std::string const key = "admin";
  auto& admin = config.admin;
  admin.enabled = true;
  if (node.IsNull()) return;
  r.only_keys(node, key, {"enabled", "listen", "socket", "token_file"});
  if (auto v = node["enabled"]) admin.enabled = r.boolean(v, key + ".enabled");
  if (auto v = node["listen"]) {
    auto const text = v.IsScalar() ? v.Scalar() : std::string();
    if (text == "off" || text == "false" || text == "none") {
      admin.listen_tcp = false;
    } else {
      admin.listen = address(r, v, key + ".listen");
    }
  }
  if (auto v = node["socket"]) admin.socket = r.path(v, key + ".socket");
  if (auto v = node["token_file"]) admin.token = read_token(r, v, key + ".token_file");
  if (admin.enabled && admin.listen_tcp && !loopback(admin.listen) && admin.token.empty()) {
    r.fail(node["listen"] ? node["listen"] : node, key + ".token_file",
           "required when admin.listen is not a loopback address (" + admin.listen.text() + ")");
  }
  if (admin.enabled && !admin.listen_tcp && admin.socket.empty())
    r.fail(node, key, "with listen: off, set socket (or enabled: false)");
}

void read_metrics(Reader const& r, YAML::Node const& node, EdgeConfig& config) {
  std::string const key = "metrics";
  auto& metrics = config.metrics;
  metrics.enabled = true;
  if (node.IsNull()) return;
  r.only_keys(node, key, {"enabled", "listen"});
  if (auto v = node["enabled"]) metrics.enabled = r.boolean(v, key + ".enabled");
  if (auto v = node["listen"]) metrics.listen = address(r, v, key + ".listen");
  if (config.admin.enabled && config.admin.listen_tcp && metrics.enabled &&
      config.admin.listen.port == metrics.listen.port && config.admin.listen.host == metrics.listen.host) {
    r.fail(node["listen"] ? node["listen"] : node, key + ".listen", "is the same address as admin.listen");
  }
}

}  // namespace

void read_operator_sections(Reader const& r, YAML::Node const& root, EdgeConfig& config) {
  if (auto admin = root["admin"]) read_admin(r, admin, config);
  if (auto metrics = root["metrics"]) read_metrics(r, metrics, config);
}

}  // namespace edge::cli
