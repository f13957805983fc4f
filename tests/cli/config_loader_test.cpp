#include "config_loader.hpp"

#include <gtest/gtest.h>

namespace edge::cli {
namespace {

std::filesystem::path const kData = EDGE_TEST_DATA;

TEST(ConfigLoader, SpineExampleLoadsUnchanged) {
  auto config = load_config(kData / "spine.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->mode, TlsMode::acme);
  EXPECT_EQ(config->store_path, kData / "edge.db");
  ASSERT_EQ(config->proxy.listen.size(), 2u);
  EXPECT_EQ(config->proxy.listen[0].host, "127.0.0.1");
  EXPECT_EQ(config->proxy.listen[0].port, 8443);
  EXPECT_EQ(config->proxy.listen[1].host, "::1");
  EXPECT_EQ(config->proxy.listen[1].text(), "[::1]:8443");
  EXPECT_EQ(config->acme.directory_url, "https://127.0.0.1:14000/dir");
  EXPECT_EQ(config->acme.ca_bundle, (kData / "pebble-ca.pem").string());
  EXPECT_EQ(config->acme.contact, std::vector<std::string>{"mailto:ops@edge.test"});
  EXPECT_EQ(config->acme.key_type, acme::KeyType::ecdsa_p256);
  ASSERT_EQ(config->acme.certificates.size(), 1u);
  EXPECT_EQ(config->acme.certificates[0].name, "main");
  EXPECT_EQ(config->acme.certificates[0].identifiers, (std::vector<std::string>{"edge.test", "127.0.0.1", "::1"}));
  EXPECT_EQ(config->proxy.tls.handshake_timeout, std::chrono::seconds(10));
  EXPECT_EQ(config->proxy.tls.min_version, proxy::TlsVersion::tls1_2);
  EXPECT_EQ(config->proxy.tls.max_version, proxy::TlsVersion::tls1_3);
  EXPECT_FALSE(config->proxy.tls.session_cache);
  EXPECT_FALSE(config->proxy.tls.session_tickets);
  EXPECT_EQ(config->proxy.upstream_timeout, std::chrono::seconds(60));
  ASSERT_EQ(config->proxy.routes.size(), 1u);
  EXPECT_EQ(config->proxy.routes[0].path_prefix, "/");
  EXPECT_EQ(config->proxy.routes[0].upstream.host, "127.0.0.1");
  EXPECT_EQ(config->proxy.routes[0].upstream.port, 8080);
  EXPECT_EQ(config->handshake_log.file, (kData / "handshakes.jsonl").string());
}

std::string error_of(std::string const& yaml) {
  auto config = parse_config(yaml, "edge.yaml", "/etc/edge");
  return config ? std::string("(no error)") : config.error().message;
}

TEST(ConfigLoader, BadVersionNamesFileLineColumnAndKey) {
  EXPECT_EQ(error_of("proxy:\n  tls:\n    min_protocol_version: \"1.1\"\n"),
            "edge.yaml:3:27: proxy.tls.min_protocol_version: expected \"1.2\" or \"1.3\", got \"1.1\"");
}

TEST(ConfigLoader, UnknownKeyIsAnError) {
  auto const message = error_of("proxy:\n  tls:\n    session_cahce: true\n");
  EXPECT_EQ(message.rfind("edge.yaml:3:5: proxy.tls.session_cahce: unknown key", 0), 0u) << message;
  EXPECT_EQ(error_of("stor:\n  path: x\n").rfind("edge.yaml:1:1: stor: unknown key", 0), 0u);
}

TEST(ConfigLoader, ValueErrorsPointAtTheValue) {
  EXPECT_EQ(error_of("proxy:\n  listen: [\"127.0.0.1:99999\"]\n"),
            "edge.yaml:2:12: proxy.listen[0]: port 99999 is out of range 1..65535");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    handshake_timeout_secs: soon\n"),
            "edge.yaml:3:29: proxy.tls.handshake_timeout_secs: expected an integer in 1..3600, got \"soon\"");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    session_tickets: maybe\n"),
            "edge.yaml:3:22: proxy.tls.session_tickets: expected true or false, got \"maybe\"");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    mode: acme\n    acme:\n      directory: https://ca/dir\n"
                     "    certificates:\n      - name: a\n        identifiers: [\"bad name!\"]\n"),
            "edge.yaml:8:23: proxy.tls.certificates[0].identifiers[0]: \"bad name!\" is neither a DNS name nor an IP address");
  EXPECT_EQ(error_of("proxy:\n  http:\n    routes:\n      - path_prefix: /\n        upstream: ftp://x/\n"),
            "edge.yaml:5:19: proxy.http.routes[0].upstream: expected an http:// or https:// URL, got \"ftp://x/\"");
}

TEST(ConfigLoader, LifecycleKeys) {
  auto defaults = parse_config("proxy:\n  workers: 1\n", "edge.yaml", "/etc/edge");
  ASSERT_TRUE(defaults) << defaults.error().message;
  EXPECT_EQ(defaults->proxy.shutdown_grace, std::chrono::seconds(10));
  EXPECT_EQ(defaults->proxy.max_connections, 0u);  // derived from RLIMIT_NOFILE by the server
  auto set = parse_config("proxy:\n  shutdown_grace_secs: 3\n  max_connections: 500\n", "edge.yaml", "/etc/edge");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->proxy.shutdown_grace, std::chrono::seconds(3));
  EXPECT_EQ(set->proxy.max_connections, 500u);
  EXPECT_EQ(error_of("proxy:\n  shutdown_grace_secs: -1\n"),
            "edge.yaml:2:24: proxy.shutdown_grace_secs: expected an integer in 0..3600, got \"-1\"");
}

TEST(ConfigLoader, AcmeModeNeedsDirectory) {
  EXPECT_EQ(error_of("proxy:\n  tls:\n    mode: acme\n"), "edge.yaml:3:5: proxy.tls.acme.directory: required when mode is acme");
}

TEST(ConfigLoader, DuplicateCertificateNames) {
  auto const message = error_of(
      "proxy:\n  tls:\n    mode: manual\n    certificates:\n"
      "      - {name: a, certificate: a.pem, private_key: a.key}\n"
      "      - {name: a, certificate: b.pem, private_key: b.key}\n");
  EXPECT_NE(message.find("proxy.tls.certificates[1].name: duplicate certificate name \"a\""), std::string::npos) << message;
}

TEST(ConfigLoader, ManualModeResolvesPathsAgainstTheConfigDirectory) {
  auto config = parse_config("proxy:\n  tls:\n    mode: manual\n    certificates:\n"
                             "      - {name: a, certificate: certs/a.pem, private_key: /abs/a.key}\n",
                             "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->manual_certificates.size(), 1u);
  EXPECT_EQ(config->manual_certificates[0].certificate, "/etc/edge/certs/a.pem");
  EXPECT_EQ(config->manual_certificates[0].private_key, "/abs/a.key");
}

TEST(ConfigLoader, SingleManualCertificateAsInTheOriginalDesign) {
  auto config = parse_config("proxy:\n  tls:\n    mode: manual\n    certificate: /p/fullchain.pem\n"
                             "    private_key: /p/privkey.pem\n",
                             "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->manual_certificates.size(), 1u);
  EXPECT_EQ(config->manual_certificates[0].name, "default");
  EXPECT_EQ(config->manual_certificates[0].certificate, "/p/fullchain.pem");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    mode: manual\n    certificate: /p/fullchain.pem\n"),
            "edge.yaml:3:5: proxy.tls: missing key \"private_key\" (certificate is set)");
}

TEST(ConfigLoader, ListenEntriesMayCarryAnUnknownSniPolicy) {
  auto config = parse_config(
      "proxy:\n  listen:\n    - \"127.0.0.1:8443\"\n    - {address: \"127.0.0.1:9443\", unknown_sni: drop}\n"
      "  tls:\n    unknown_sni: reject\n",
      "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->proxy.listen.size(), 2u);
  EXPECT_FALSE(config->proxy.listen[0].unknown_sni.has_value());
  EXPECT_EQ(config->proxy.listen[1].unknown_sni, proxy::UnknownSniPolicy::drop);
  EXPECT_EQ(config->proxy.tls.unknown_sni, proxy::UnknownSniPolicy::reject);
  EXPECT_EQ(error_of("proxy:\n  listen:\n    - {address: \"127.0.0.1:9443\", unknown_sni: ignore}\n"),
            "edge.yaml:3:48: proxy.listen[0].unknown_sni: expected default, reject or drop, got \"ignore\"");
}

TEST(ConfigLoader, TlsPolicyListsAreCheckedEntryByEntry) {
  auto config = parse_config("proxy:\n  tls:\n    groups: [X25519, P-256]\n    cipher_suites: TLS_AES_128_GCM_SHA256\n",
                             "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->proxy.tls.groups, "X25519:P-256");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    groups: [X25519, P-257]\n"),
            "edge.yaml:3:13: proxy.tls.groups: unknown group \"P-257\"");
  EXPECT_EQ(error_of("proxy:\n  tls:\n    ciphers: \"ECDHE-ECDSA-AES128-GCM-SHA256:NOPE\"\n"),
            "edge.yaml:3:14: proxy.tls.ciphers: unknown TLS 1.2 cipher \"NOPE\"");
}

TEST(ConfigLoader, MtlsEntryNeedsAReadableClientCa) {
  EXPECT_EQ(error_of("proxy:\n  tls:\n    routing:\n      sni:\n        - {server_name: a.test, client_auth: required}\n"),
            "edge.yaml:5:11: proxy.tls.routing.sni[0].client_ca: required when client_auth is required");
  auto const message = error_of(
      "proxy:\n  tls:\n    routing:\n      sni:\n"
      "        - {server_name: a.test, client_auth: required, client_ca: /nonexistent/ca.pem}\n");
  EXPECT_EQ(message.rfind("edge.yaml:5:67: proxy.tls.routing.sni[0].client_ca: /nonexistent/ca.pem: cannot read", 0), 0u)
      << message;
}

TEST(ConfigLoader, RoutingModesAndProxyProtocol) {
  auto config = parse_config(
      "proxy:\n  proxy_protocol: {enabled: true, trusted_proxies: [10.0.0.0/8]}\n  tls:\n    routing:\n"
      "      default: {mode: transparent, upstream: \"[::1]:9443\", proxy_protocol: v2}\n"
      "      sni:\n        - {server_name: a.test, mode: reject}\n",
      "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->proxy.tls.default_route.mode, proxy::RouteMode::transparent);
  EXPECT_EQ(config->proxy.tls.default_route.upstream.host, "::1");
  EXPECT_EQ(config->proxy.tls.default_route.upstream.port, 9443);
  EXPECT_EQ(config->proxy.tls.default_route.proxy_protocol, proxy::ProxyProtocolVersion::v2);
  EXPECT_EQ(config->proxy.tls.sni[0].route.mode, proxy::RouteMode::reject);
  EXPECT_TRUE(config->proxy.proxy_protocol.trusted_proxies[0].contains("10.1.2.3"));
  EXPECT_FALSE(config->proxy.proxy_protocol.trusted_proxies[0].contains("11.1.2.3"));
  EXPECT_EQ(error_of("proxy:\n  tls:\n    routing:\n      default: {mode: transparent}\n"),
            "edge.yaml:4:16: proxy.tls.routing.default.upstream: required with mode: transparent");
  EXPECT_EQ(error_of("proxy:\n  proxy_protocol: {enabled: true}\n"),
            "edge.yaml:2:19: proxy.proxy_protocol.trusted_proxies: required when enabled: a PROXY header is "
            "believed only from these");
  EXPECT_EQ(error_of("proxy:\n  proxy_protocol: {trusted_proxies: [10.0.0.0/33]}\n"),
            "edge.yaml:2:38: proxy.proxy_protocol.trusted_proxies[0]: bad prefix length in \"10.0.0.0/33\"");
}

TEST(ConfigLoader, HttpsUpstreamsHeadersPoolLimitsAndAccessLog) {
  auto config = parse_config(
      "proxy:\n  http:\n    pool: {max_idle: 4, max_connections: 8, wait_timeout_ms: 250, idle_timeout_secs: 9}\n"
      "    access_log: {file: access.jsonl}\n    routes:\n"
      "      - {name: api, path_prefix: /, upstream: \"https://[::1]/x/\", forward_headers: [Accept, X-ID],\n"
      "         upstream_tls: {verify: false, sni: false, server_name: api.internal},\n"
      "         rate_limit: {rate: 5, max_connections_per_client: 2, status: 420}}\n",
      "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config) << config.error().message;
  auto const& route = config->proxy.routes.at(0);
  EXPECT_EQ(route.name, "api");
  EXPECT_TRUE(route.upstream.tls);
  EXPECT_EQ(route.upstream.host, "::1");
  EXPECT_EQ(route.upstream.port, 443);
  EXPECT_EQ(route.upstream.base_path, "/x/");
  EXPECT_FALSE(route.upstream.tls_options.verify);
  EXPECT_FALSE(route.upstream.tls_options.sni);
  EXPECT_EQ(route.upstream.tls_options.server_name, "api.internal");
  EXPECT_EQ(route.forward_headers, (std::vector<std::string>{"accept", "x-id"}));
  EXPECT_EQ(route.limits.rate, 5);
  EXPECT_EQ(route.limits.burst, 5) << "burst defaults to rate";
  EXPECT_EQ(route.limits.status, 420u);
  EXPECT_EQ(route.limits.concurrency_status, 503u);
  EXPECT_EQ(route.limits.max_connections_per_client, 2u);
  EXPECT_NE(route.limiter, nullptr);
  EXPECT_EQ(config->proxy.pool.max_idle, 4u);
  EXPECT_EQ(config->proxy.pool.max_connections, 8u);
  EXPECT_EQ(config->proxy.pool.wait_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(config->proxy.pool.idle_timeout, std::chrono::seconds(9));
  EXPECT_EQ(config->proxy.access_log_file, "/etc/edge/access.jsonl");
  EXPECT_EQ(error_of("proxy:\n  http:\n    routes:\n      - {upstream: \"http://a/\", upstream_tls: {verify: false}}\n"),
            "edge.yaml:4:47: proxy.http.routes[0].upstream_tls: only for an https:// upstream");
  EXPECT_EQ(error_of("proxy:\n  http:\n    routes:\n      - {upstream: \"https://a/\", upstream_tls: {ca_file: /nonexistent.pem}}\n"),
            "edge.yaml:4:58: proxy.http.routes[0].upstream_tls.ca_file: cannot read /nonexistent.pem");
  EXPECT_EQ(error_of("proxy:\n  http:\n    routes:\n      - {upstream: \"https://a/\", type: websocket}\n"),
            "edge.yaml:4:20: proxy.http.routes[0].upstream: a websocket route needs an http:// upstream");
  EXPECT_EQ(error_of("proxy:\n  http:\n    routes:\n      - {upstream: \"http://a/\", rate_limit: {burst: 3}}\n"),
            "edge.yaml:4:53: proxy.http.routes[0].rate_limit.burst: needs rate");
}

TEST(ConfigLoader, SyntaxErrorHasPosition) {
  auto const message = error_of("proxy:\n  listen: [\"a\"\n");
  EXPECT_EQ(message.rfind("edge.yaml:", 0), 0u);
  EXPECT_NE(message.find("YAML syntax error"), std::string::npos) << message;
}

TEST(ConfigLoader, EmptyFileGivesDefaults) {
  auto config = parse_config("", "edge.yaml", "/etc/edge");
  ASSERT_TRUE(config);
  EXPECT_EQ(config->mode, TlsMode::manual);
  EXPECT_EQ(config->proxy.listen.size(), 2u);
}

}  // namespace
}  // namespace edge::cli
