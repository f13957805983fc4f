// admin: and metrics: sections (cli/src/admin_config_loader.cpp).
#include "config_loader.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace edge::cli {
namespace {

class AdminConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("edge-admin-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "token") << "s3cret-token-0123456789\n";
    std::ofstream(dir_ / "short") << "abc\n";
    std::ofstream(dir_ / "empty") << "\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  boost::system::result<EdgeConfig, ConfigError> parse(std::string const& yaml) {
    return parse_config(yaml, "edge.yaml", dir_);
  }
  std::string error_of(std::string const& yaml) {
    auto r = parse(yaml);
    return r ? std::string("(no error)") : r.error().message;
  }
  std::filesystem::path dir_;
};

TEST_F(AdminConfig, AbsentSectionsListenNowhere) {
  auto config = parse("store: {path: x.db}\n");
  ASSERT_TRUE(config);
  EXPECT_FALSE(config->admin.enabled);
  EXPECT_FALSE(config->metrics.enabled);
}

TEST_F(AdminConfig, PresentSectionsAreEnabledWithDefaults) {
  auto config = parse("admin:\n  token_file: token\nmetrics: {}\n");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->admin.enabled);
  EXPECT_EQ(config->admin.listen.text(), "127.0.0.1:9091");
  EXPECT_EQ(config->admin.token, "s3cret-token-0123456789");  // trailing newline dropped
  EXPECT_TRUE(config->metrics.enabled);
  EXPECT_EQ(config->metrics.listen.text(), "127.0.0.1:9090");
}

TEST_F(AdminConfig, SocketPathIsRelativeToTheFile) {
  auto config = parse("admin:\n  listen: off\n  socket: run/admin.sock\n");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_FALSE(config->admin.listen_tcp);
  EXPECT_EQ(config->admin.socket, dir_ / "run/admin.sock");
}

TEST_F(AdminConfig, ErrorsNameFileLineColumnAndKey) {
  EXPECT_EQ(error_of("admin:\n  listen: localhost:9091\n"),
            "edge.yaml:2:11: admin.listen: \"localhost\" is not an IP address");
  EXPECT_EQ(error_of("admin:\n  listne: 127.0.0.1:1\n"),
            "edge.yaml:2:3: admin.listne: unknown key (expected one of: enabled, listen, socket, token_file)");
  EXPECT_EQ(error_of("admin:\n  listen: 0.0.0.0:9091\n"),
            "edge.yaml:2:11: admin.token_file: required when admin.listen is not a loopback address (0.0.0.0:9091)");
  EXPECT_EQ(error_of("admin:\n  listen: off\n"), "edge.yaml:2:3: admin: with listen: off, set socket (or enabled: false)");
  EXPECT_EQ(error_of("metrics:\n  enabled: maybe\n"), "edge.yaml:2:12: metrics.enabled: expected true or false, got \"maybe\"");
  EXPECT_EQ(error_of("admin: {}\nmetrics:\n  listen: 127.0.0.1:9091\n"),
            "edge.yaml:3:11: metrics.listen: is the same address as admin.listen");
}

TEST_F(AdminConfig, TokenFileProblemsNeverShowTheToken) {
  auto const missing = error_of("admin:\n  token_file: nope\n");
  EXPECT_NE(missing.find("admin.token_file: cannot read"), std::string::npos) << missing;
  EXPECT_NE(error_of("admin:\n  token_file: empty\n").find("is empty"), std::string::npos);
  auto const short_token = error_of("admin:\n  token_file: short\n");
  EXPECT_NE(short_token.find("at least 16 characters"), std::string::npos);
  EXPECT_EQ(short_token.find("abc"), std::string::npos);
}

TEST_F(AdminConfig, NonLoopbackWithTokenIsAccepted) {
  auto config = parse("admin:\n  listen: 0.0.0.0:9091\n  token_file: token\n");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->admin.listen.host, "0.0.0.0");
}

}  // namespace
}  // namespace edge::cli
