#pragma once
// What the proxy needs to know, already validated (cli/ reads YAML into this).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace edge::proxy {

struct ListenAddress {
  std::string host;  // literal IP address: "127.0.0.1", "::1", "0.0.0.0", "::"
  std::uint16_t port = 0;
  std::string text() const;  // "127.0.0.1:8443" or "[::1]:8443"
};

// Parses "127.0.0.1:8443" / "[::1]:8443". Returns an explanation on failure.
bool parse_listen_address(std::string const& text, ListenAddress& out, std::string& why);

enum class TlsVersion { tls1_2, tls1_3 };

struct TlsPolicy {
  TlsVersion min_version = TlsVersion::tls1_2;
  TlsVersion max_version = TlsVersion::tls1_3;
  std::chrono::seconds handshake_timeout{10};
  bool session_cache = false;
  bool session_tickets = false;
};

struct Upstream {
  std::string host;
  std::uint16_t port = 80;
  std::string base_path = "/";  // path of the upstream URL; prefix replaced by it
};

struct HttpRoute {
  std::string path_prefix = "/";
  Upstream upstream;
  std::string upstream_text;  // as configured, for logs
};

struct ProxyConfig {
  std::vector<ListenAddress> listen;
  TlsPolicy tls;
  std::chrono::seconds upstream_timeout{60};
  std::vector<HttpRoute> routes;
  unsigned workers = 0;  // 0 = one per core
};

}  // namespace edge::proxy
