#include "identifiers.hpp"

#include <gtest/gtest.h>

namespace edge::acme {
namespace {

std::string reverse_of(std::string_view ip) {
  auto const bytes = parse_ip(ip);
  EXPECT_TRUE(bytes) << ip;
  return bytes ? reverse_dns_name(*bytes) : std::string();
}

TEST(ReverseDns, Ipv4) {
  EXPECT_EQ(reverse_of("127.0.0.1"), "1.0.0.127.in-addr.arpa");
  EXPECT_EQ(reverse_of("192.0.2.10"), "10.2.0.192.in-addr.arpa");
}

TEST(ReverseDns, Ipv6Loopback) {
  EXPECT_EQ(reverse_of("::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

TEST(ReverseDns, Ipv6Documentation) {
  // RFC 8738 section 6 example style: nibbles of 2001:db8::1, lowest first.
  EXPECT_EQ(reverse_of("2001:db8::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(ValidationServerName, DnsAsIsIpReversed) {
  EXPECT_EQ(validation_server_name(classify_identifier("edge.test")), "edge.test");
  EXPECT_EQ(validation_server_name(classify_identifier("127.0.0.1")), "1.0.0.127.in-addr.arpa");
  EXPECT_EQ(validation_server_name(classify_identifier("::1")).size(), 32u * 2 + 8);
}

TEST(Identifiers, Classify) {
  EXPECT_EQ(classify_identifier("127.0.0.1"), (Identifier{IdentifierType::ip, "127.0.0.1"}));
  EXPECT_EQ(classify_identifier("2001:DB8:0:0::1"), (Identifier{IdentifierType::ip, "2001:db8::1"}));
  EXPECT_EQ(classify_identifier("Edge.Test."), (Identifier{IdentifierType::dns, "edge.test"}));
  EXPECT_EQ(classify_identifier("1.2.3"), (Identifier{IdentifierType::dns, "1.2.3"}));
  EXPECT_STREQ(to_string(IdentifierType::ip), "ip");
  EXPECT_STREQ(to_string(IdentifierType::dns), "dns");
  EXPECT_EQ(identifier_label(classify_identifier("::1")), "ip:::1");
}

TEST(Identifiers, SameSetIgnoresOrderCaseAndSpelling) {
  EXPECT_TRUE(same_identifier_set({"edge.test", "127.0.0.1", "::1"},
                                  {"0:0::1", "EDGE.test", "127.0.0.1"}));
  EXPECT_FALSE(same_identifier_set({"edge.test"}, {"edge.test", "127.0.0.1"}));
  EXPECT_FALSE(same_identifier_set({"edge.test"}, {"www.edge.test"}));
}

}  // namespace
}  // namespace edge::acme
