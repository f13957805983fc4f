#pragma once
// What the proxy needs to know, already validated (cli/ reads YAML into this).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string_view>
#include <string>
#include <vector>

namespace edge::proxy {

// What a listener does with a ClientHello whose SNI matches no certificate.
enum class UnknownSniPolicy {
  default_certificate,  // serve the default certificate (first by name)
  reject,               // fail with the unrecognized_name alert
  drop,                 // close silently: no alert, nothing for a scanner to learn
};

struct ListenAddress {
  std::string host;  // literal IP address: "127.0.0.1", "::1", "0.0.0.0", "::"
  std::uint16_t port = 0;
  std::optional<UnknownSniPolicy> unknown_sni;  // overrides proxy.tls.unknown_sni
  std::optional<bool> proxy_protocol;           // overrides proxy.proxy_protocol.enabled
  std::string text() const;  // "127.0.0.1:8443" or "[::1]:8443"
};

// Parses "127.0.0.1:8443" / "[::1]:8443". Returns an explanation on failure.
bool parse_listen_address(std::string const& text, ListenAddress& out, std::string& why);

enum class TlsVersion { tls1_2, tls1_3 };

enum class ClientAuth { none, optional, required };

// Client certificates for one SNI entry. `optional`: a certificate that is
// presented must verify; none at all is accepted.
struct ClientAuthPolicy {
  ClientAuth mode = ClientAuth::none;
  std::string client_ca_file;          // PEM bundle of trusted client CAs
  std::vector<std::string> crl_files;  // PEM CRLs; when given, revocation is checked
};

enum class ProxyProtocolVersion { v1, v2 };

// What a connection is for, decided from its ClientHello (layer 4).
enum class RouteMode {
  tls_terminate,  // TLS ends here; then the HTTP proxy, or raw TCP to `upstream`
  transparent,    // no termination: bytes pass to `upstream` both ways
  reject,         // close silently, no alert
};

struct TcpUpstream {
  std::string host;
  std::uint16_t port = 0;
  std::string text() const;  // "host:port"
};

struct TlsRoute {
  RouteMode mode = RouteMode::tls_terminate;
  bool http = true;      // tls_terminate: `handler: http` (true) or raw TCP to `upstream` (false)
  TcpUpstream upstream;  // transparent, and tls_terminate without handler
  std::optional<ProxyProtocolVersion> proxy_protocol;  // header sent to the upstream
};

// proxy.tls.routing.sni[]: settings that apply when the SNI matches.
struct SniEntry {
  std::string server_name;  // exact, or "*.example.com" (one label)
  ClientAuthPolicy client_auth;
  TlsRoute route;
};

// An IPv4 or IPv6 network, e.g. 10.0.0.0/8 or 2001:db8::/32.
struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  std::uint8_t bytes[16] = {};
  int prefix = 0;
  static bool parse(std::string const& text, Cidr& out, std::string& why);
  bool contains(std::string const& address) const;
};

// Inbound PROXY protocol: the client address comes from a header sent by a
// load balancer in front, believed only from `trusted_proxies`.
struct InboundProxyProtocol {
  bool enabled = false;
  std::optional<ProxyProtocolVersion> version;  // accept only this version; both when unset
  std::vector<Cidr> trusted_proxies;
};

struct TlsPolicy {
  TlsVersion min_version = TlsVersion::tls1_2;
  TlsVersion max_version = TlsVersion::tls1_3;
  std::chrono::seconds handshake_timeout{10};
  bool session_cache = false;
  std::size_t session_cache_size = 20480;  // sessions kept when session_cache is on
  bool session_tickets = false;
  std::chrono::seconds ticket_key_rotation{3600};  // ticket keys live two periods
  std::string cipher_suites;  // TLS 1.3, OpenSSL list syntax; empty = OpenSSL's default
  std::string ciphers;        // TLS 1.2, OpenSSL cipher list; empty = OpenSSL's default
  std::string groups;         // key-exchange groups, e.g. "X25519:P-256"; empty = default
  UnknownSniPolicy unknown_sni = UnknownSniPolicy::default_certificate;
  std::vector<SniEntry> sni;
  TlsRoute default_route;  // proxy.tls.routing.default
};

// Checks a TLS policy value the way OpenSSL will read it; false with `why`.
bool check_cipher_suites(std::string const& list, std::string& why);
bool check_ciphers(std::string const& list, std::string& why);
bool check_groups(std::string const& list, std::string& why);
bool check_client_auth_files(ClientAuthPolicy const& policy, std::string& why);

// TLS towards an https:// upstream.
struct UpstreamTls {
  bool verify = true;        // the upstream's certificate must chain to a trusted root and name the host
  std::string ca_file;       // PEM bundle of trusted roots; empty = the system's roots
  bool sni = true;           // send server_name (or the host, when it is a name) as SNI
  std::string server_name;   // overrides the URL's host for SNI and for name verification
};

struct Upstream {
  bool tls = false;  // https://
  std::string host;
  std::uint16_t port = 80;
  std::string base_path = "/";  // path of the upstream URL; prefix replaced by it
  UpstreamTls tls_options;      // with tls only
};

// Token bucket per client address: `rate` requests per second on average,
// up to `burst` at once. rate == 0: no limit.
struct RateLimit {
  double rate = 0;
  double burst = 0;
  unsigned status = 429;              // answer to a request beyond the bucket
  unsigned max_connections = 0;       // concurrent requests in flight on the route (0 = no limit)
  unsigned max_connections_per_client = 0;  // likewise per client address
  unsigned concurrency_status = 503;  // answer beyond either concurrency limit
  bool any() const { return rate > 0 || max_connections > 0 || max_connections_per_client > 0; }
};

class RateLimiter;  // edge/src/rate_limiter.hpp

// The shared state of a route's limits (one per route for all workers);
// null when the route has none.
std::shared_ptr<RateLimiter> make_rate_limiter(RateLimit const& limits);

// One entry of proxy.http.routes, tried in order. Exactly one of path,
// path_prefix, path_regex matches the path (no query); host, when set, must
// equal the request's host (without port), case-insensitively.
struct HttpRoute {
  std::string path;         // exact
  std::string path_prefix;  // "/" matches everything
  std::string path_regex;   // ECMAScript, searched; compiled once at load
  std::shared_ptr<std::regex const> compiled_regex;
  std::string host;
  bool websocket = false;      // type: websocket (HTTP/1.1 Upgrade, then bytes both ways)
  bool preserve_host = false;  // send the client's Host upstream (default: the upstream's)
  Upstream upstream;
  std::string upstream_text;  // as configured, for logs
  std::string name;           // for the access log; default "routes[i]"
  // When set, only these request headers (lower case) pass, plus what the
  // proxy adds (Host, forwarding headers, Via, framing).
  std::optional<std::vector<std::string>> forward_headers;
  RateLimit limits;
  std::shared_ptr<RateLimiter> limiter;  // make_rate_limiter(limits), set by the loader
  std::size_t index = 0;  // position in proxy.http.routes
  bool matches(std::string_view host_header, std::string_view path) const;
};

// Keep-alive connections to each upstream, per worker thread.
struct UpstreamPoolLimits {
  std::size_t max_idle = 256;          // idle connections kept per upstream
  std::size_t max_connections = 0;     // open connections per upstream (0 = no limit)
  std::chrono::milliseconds wait_timeout{5000};  // a request waits this long for a free one, then 503
  std::chrono::seconds idle_timeout{30};          // an idle connection older than this is closed, not reused
};

struct ProxyConfig {
  std::vector<ListenAddress> listen;
  TlsPolicy tls;
  bool server_header = true;  // proxy.http.server_header: "Server: edge" on responses
  std::chrono::seconds upstream_timeout{60};
  // proxy.http.client_timeout_secs: a request head (from the end of the last
  // response, idle time included) and each body read must arrive within it;
  // what slow-header (slowloris) clients run into.
  std::chrono::seconds client_timeout{60};
  std::vector<HttpRoute> routes;
  UpstreamPoolLimits pool;
  std::string access_log_file;  // proxy.http.access_log.file; "-" = stdout; empty = off
  unsigned workers = 0;  // 0 = one per core
  InboundProxyProtocol proxy_protocol;
  std::chrono::seconds shutdown_grace{10};  // SIGTERM: in-flight connections may finish for this long
  std::size_t max_connections = 0;          // open connections beyond which new ones are closed; 0 = from RLIMIT_NOFILE
};

// True when some connection must be routed before TLS terminates (a
// transparent or reject route, or TCP upstreams by SNI): the ClientHello is
// then read ahead of OpenSSL.
bool needs_preread(TlsPolicy const& policy);

}  // namespace edge::proxy
