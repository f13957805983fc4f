#include <edge/proxy/config.hpp>

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

}  // namespace
}  // namespace edge::proxy
