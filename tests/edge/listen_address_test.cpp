#include <edge/proxy/config.hpp>
#include <edge/proxy/server.hpp>

#include <sys/resource.h>

#include <gtest/gtest.h>

namespace edge::proxy {
namespace {

TEST(ListenAddress, ParsesIpv4AndBracketedIpv6) {
  ListenAddress a;
  std::string why;
  ASSERT_TRUE(parse_listen_address("127.0.0.1:8443", a, why)) << why;
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8443);
  ASSERT_TRUE(parse_listen_address("[::1]:443", a, why)) << why;
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.text(), "[::1]:443");
}

TEST(ListenAddress, ExplainsWhatIsWrong) {
  ListenAddress a;
  std::string why;
  EXPECT_FALSE(parse_listen_address("::1:443", a, why));
  EXPECT_NE(why.find("[ipv6]:port"), std::string::npos);
  EXPECT_FALSE(parse_listen_address("localhost:443", a, why));
  EXPECT_EQ(why, "\"localhost\" is not an IP address");
  EXPECT_FALSE(parse_listen_address("127.0.0.1:0", a, why));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:http", a, why));
  EXPECT_EQ(why, "\"http\" is not a port number");
}

// The connection cap leaves room for two descriptors per proxied connection
// and 64 for the store, logs and admin API.
TEST(ConnectionCap, DerivedFromTheDescriptorLimit) {
  EXPECT_EQ(default_max_connections(256), 96u);
  EXPECT_EQ(default_max_connections(1024), 480u);
  EXPECT_EQ(default_max_connections(1048576), 524256u);
  EXPECT_EQ(default_max_connections(50), 16u);  // a floor, so that a tiny limit still serves
  EXPECT_EQ(default_max_connections(RLIM_INFINITY), default_max_connections(1u << 20));
}

}  // namespace
}  // namespace edge::proxy
