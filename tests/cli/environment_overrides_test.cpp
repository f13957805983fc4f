// EDGE_* environment overrides (cli/src/environment_overrides.cpp): every
// variable lands on its key, wins over the file, goes through the file's checks,
// and a bad value is reported with the variable's name.
#include "environment_overrides.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "config_loader.hpp"

namespace edge::cli {
namespace {

std::string const acme_file = R"(
proxy:
  listen: ["127.0.0.1:8443"]
  tls:
    mode: acme
    acme:
      directory: https://file.test/dir
    certificates:
      - name: main
        identifiers: [edge.test]
)";

class EnvironmentOverrides : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("edge-env-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "token") << "s3cret-token-0123456789\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  boost::system::result<EdgeConfig, ConfigError> parse(std::string const& yaml,
                                                       std::map<std::string, std::string> env) {
    return parse_config(yaml, "edge.yaml", dir_, fixed_environment(std::move(env)));
  }
  std::string error_of(std::string const& yaml, std::map<std::string, std::string> env) {
    auto r = parse(yaml, std::move(env));
    return r ? std::string("(loaded)") : r.error().message;
  }
  std::filesystem::path dir_;
};

TEST_F(EnvironmentOverrides, EveryVariableSetsItsKeyOverTheFile) {
  auto const config = parse(acme_file + "handshake_log: {file: file.jsonl}\nadmin: {listen: \"127.0.0.1:7001\"}\n",
                            {{"EDGE_STORE", "/var/lib/edge/edge.db"},
                             {"EDGE_LISTEN", "0.0.0.0:443, [::]:443"},
                             {"EDGE_WORKERS", "3"},
                             {"EDGE_ACME_DIRECTORY", "https://127.0.0.1:14000/dir"},
                             {"EDGE_ACME_CA_BUNDLE", "/etc/edge/acme-ca.pem"},
                             {"EDGE_ACME_CONTACT", "mailto:ops@edge.test,mailto:oncall@edge.test"},
                             {"EDGE_HANDSHAKE_LOG", "-"},
                             {"EDGE_ADMIN_LISTEN", "0.0.0.0:9091"},
                             {"EDGE_ADMIN_SOCKET", "/run/edge/admin.sock"},
                             {"EDGE_ADMIN_TOKEN_FILE", (dir_ / "token").string()},
                             {"EDGE_METRICS_LISTEN", "127.0.0.1:9190"}});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->store_path, "/var/lib/edge/edge.db");
  ASSERT_EQ(config->proxy.listen.size(), 2u);
  EXPECT_EQ(config->proxy.listen[0].text(), "0.0.0.0:443");
  EXPECT_EQ(config->proxy.listen[1].text(), "[::]:443");
  EXPECT_EQ(config->proxy.workers, 3u);
  EXPECT_EQ(config->mode, TlsMode::acme);
  EXPECT_EQ(config->acme.directory_url, "https://127.0.0.1:14000/dir");
  EXPECT_EQ(config->acme.ca_bundle, "/etc/edge/acme-ca.pem");
  EXPECT_EQ(config->acme.contact, (std::vector<std::string>{"mailto:ops@edge.test", "mailto:oncall@edge.test"}));
  EXPECT_EQ(config->handshake_log.file, "-");
  EXPECT_TRUE(config->admin.enabled);
  EXPECT_EQ(config->admin.listen.text(), "0.0.0.0:9091");
  EXPECT_EQ(config->admin.socket, "/run/edge/admin.sock");
  EXPECT_EQ(config->admin.token, "s3cret-token-0123456789");
  EXPECT_TRUE(config->metrics.enabled);
  EXPECT_EQ(config->metrics.listen.text(), "127.0.0.1:9190");
  // What no variable names stays as the file says.
  ASSERT_EQ(config->acme.certificates.size(), 1u);
  EXPECT_EQ(config->acme.certificates[0].identifiers, std::vector<std::string>{"edge.test"});
}

TEST_F(EnvironmentOverrides, TheDocumentedTableIsComplete) {
  // docs/config.md lists exactly these; a new variable must be added there too.
  std::set<std::string> names;
  for (auto const& v : environment_variables()) EXPECT_TRUE(names.insert(v.name).second) << v.name;
  EXPECT_EQ(names, (std::set<std::string>{"EDGE_STORE", "EDGE_LISTEN", "EDGE_WORKERS", "EDGE_TLS_MODE",
                                          "EDGE_ACME_DIRECTORY", "EDGE_ACME_CA_BUNDLE", "EDGE_ACME_CONTACT",
                                          "EDGE_HANDSHAKE_LOG", "EDGE_ADMIN_LISTEN", "EDGE_ADMIN_SOCKET",
                                          "EDGE_ADMIN_TOKEN_FILE", "EDGE_METRICS_LISTEN"}));
}

TEST_F(EnvironmentOverrides, NoVariableLeavesTheFileAsItIs) {
  auto const with = parse(acme_file, {{"EDGE_PEBBLE", "/usr/bin/pebble"}, {"EDGE_ADMIN", "http://127.0.0.1:1"}});
  auto const without = parse_config(acme_file, "edge.yaml", dir_);
  ASSERT_TRUE(with) << with.error().message;
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_EQ(with->acme.directory_url, "https://file.test/dir");
  EXPECT_EQ(with->proxy.listen[0].text(), without->proxy.listen[0].text());
  EXPECT_EQ(with->store_path, dir_ / "edge.db");
  EXPECT_FALSE(with->admin.enabled);  // EDGE_ADMIN is edgectl's, not edged's
}

TEST_F(EnvironmentOverrides, RelativePathsAreTakenFromTheWorkingDirectory) {
  auto const config = parse(acme_file, {{"EDGE_STORE", "data/edge.db"}, {"EDGE_HANDSHAKE_LOG", "hs.jsonl"}});
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->store_path, std::filesystem::current_path() / "data/edge.db");
  EXPECT_EQ(config->handshake_log.file, (std::filesystem::current_path() / "hs.jsonl").string());
}

TEST_F(EnvironmentOverrides, ABadValueNamesTheVariable) {
  EXPECT_EQ(error_of(acme_file, {{"EDGE_LISTEN", "127.0.0.1:8443,127.0.0.1:99999"}})
                .rfind("EDGE_LISTEN: proxy.listen[1]: ", 0),
            0u)
      << error_of(acme_file, {{"EDGE_LISTEN", "127.0.0.1:8443,127.0.0.1:99999"}});
  EXPECT_EQ(
      error_of(acme_file, {{"EDGE_LISTEN", "127.0.0.1:8443,,[::1]:8443"}}).rfind("EDGE_LISTEN: proxy.listen[1]: ", 0),
      0u);
  EXPECT_EQ(error_of(acme_file, {{"EDGE_LISTEN", ""}}), "EDGE_LISTEN: proxy.listen: needs at least one address");
  EXPECT_EQ(error_of(acme_file, {{"EDGE_WORKERS", "many"}}),
            "EDGE_WORKERS: proxy.workers: expected an integer in 0..256, got \"many\"");
  EXPECT_EQ(error_of(acme_file, {{"EDGE_ACME_DIRECTORY", "http://ca.test/dir"}}),
            "EDGE_ACME_DIRECTORY: proxy.tls.acme.directory: expected an https:// URL");
  EXPECT_EQ(error_of(acme_file, {{"EDGE_TLS_MODE", "auto"}}),
            "EDGE_TLS_MODE: proxy.tls.mode: expected \"acme\" or \"manual\", got \"auto\"");
  EXPECT_EQ(error_of(acme_file, {{"EDGE_STORE", ""}}), "EDGE_STORE: store.path: expected a path, got an empty string");
  auto const token = error_of(acme_file, {{"EDGE_ADMIN_TOKEN_FILE", "/nonexistent/token"}});
  EXPECT_EQ(token, "EDGE_ADMIN_TOKEN_FILE: admin.token_file: cannot read /nonexistent/token");
  EXPECT_EQ(
      error_of(acme_file, {{"EDGE_METRICS_LISTEN", "localhost"}}).rfind("EDGE_METRICS_LISTEN: metrics.listen: ", 0),
      0u);
}

TEST_F(EnvironmentOverrides, FileErrorsKeepTheirPosition) {
  // The variable is fine; the file's own mistake is still reported at its line.
  EXPECT_EQ(error_of("proxy:\n  workers: lots\n", {{"EDGE_LISTEN", "127.0.0.1:8443"}}),
            "edge.yaml:2:12: proxy.workers: expected an integer in 0..256, got \"lots\"");
  EXPECT_EQ(error_of("proxy: 5\n", {{"EDGE_LISTEN", "127.0.0.1:8443"}}),
            "EDGE_LISTEN: proxy.listen: cannot be set, proxy in the configuration is not a mapping");
}

TEST_F(EnvironmentOverrides, AnAdminListenerOffLoopbackStillNeedsAToken) {
  // The variable enables the admin section; the file's rule about tokens holds.
  auto const message = error_of(acme_file, {{"EDGE_ADMIN_LISTEN", "0.0.0.0:9091"}});
  EXPECT_NE(message.find("admin.token_file: required when admin.listen is not a loopback address"), std::string::npos)
      << message;
}

TEST(EnvironmentDefaults, WithoutAFileTheVariablesApplyToTheBuiltInDefaults) {
  auto const plain = environment_config(fixed_environment({}));
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->source, default_config().source);
  EXPECT_EQ(plain->store_path, "edge.db");
  EXPECT_EQ(plain->proxy.listen.size(), 2u);
  EXPECT_EQ(plain->handshake_log.file, "-");

  auto const set =
      environment_config(fixed_environment({{"EDGE_LISTEN", "127.0.0.1:9443"}, {"EDGE_STORE", "/tmp/x.db"}}));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->source, default_config().source);  // no file: nothing to reload
  ASSERT_EQ(set->proxy.listen.size(), 1u);
  EXPECT_EQ(set->proxy.listen[0].text(), "127.0.0.1:9443");
  EXPECT_EQ(set->store_path, "/tmp/x.db");
  EXPECT_EQ(set->handshake_log.file, "-");
  EXPECT_EQ(set->mode, TlsMode::manual);

  auto const bad = environment_config(fixed_environment({{"EDGE_LISTEN", "nowhere"}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind("EDGE_LISTEN: proxy.listen[0]: ", 0), 0u) << bad.error().message;
}

}  // namespace
}  // namespace edge::cli
