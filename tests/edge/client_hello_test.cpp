#include "client_hello.hpp"
#include "handshake_classifier.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <gtest/gtest.h>

namespace edge::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A 16-bit length, then `bytes`. (Built with push_back: GCC 12 warns
// falsely on insert() into a two-element vector.)
Bytes with_length16(std::string const& bytes) {
  Bytes out;
  out.push_back(static_cast<std::uint8_t>(bytes.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(bytes.size()));
  for (char c : bytes) out.push_back(static_cast<std::uint8_t>(c));
  return out;
}

Bytes server_name_body(std::string const& host) {
  std::string entry(1, '\0');
  entry += static_cast<char>(host.size() >> 8);
  entry += static_cast<char>(host.size());
  return with_length16(entry + host);
}

Bytes alpn_body(std::vector<std::string> const& protocols) {
  std::string list;
  for (auto const& p : protocols) list += static_cast<char>(p.size()) + p;
  return with_length16(list);
}

TEST(ServerNameExtension, ReadsHostName) {
  EXPECT_EQ(parse_server_name_extension(server_name_body("edge.test")), "edge.test");
  EXPECT_EQ(parse_server_name_extension(server_name_body("1.0.0.127.in-addr.arpa")), "1.0.0.127.in-addr.arpa");
}

TEST(ServerNameExtension, RejectsMalformedInput) {
  EXPECT_FALSE(parse_server_name_extension(Bytes{}));
  EXPECT_FALSE(parse_server_name_extension(Bytes{0x00}));
  auto body = server_name_body("edge.test");
  body.pop_back();  // truncated name
  EXPECT_FALSE(parse_server_name_extension(body));
  body = server_name_body("edge.test");
  body.push_back(0);  // trailing garbage after the list
  EXPECT_FALSE(parse_server_name_extension(body));
  EXPECT_FALSE(parse_server_name_extension(server_name_body("bad\nname")));
  EXPECT_FALSE(parse_server_name_extension(server_name_body("")));
  // The list length claims more than there is.
  EXPECT_FALSE(parse_server_name_extension(Bytes{0x00, 0x10, 0x00, 0x00, 0x01, 'a'}));
}

TEST(AlpnExtension, ReadsProtocolsInOrder) {
  auto protocols = parse_alpn_extension(alpn_body({"h2", "http/1.1"}));
  ASSERT_TRUE(protocols);
  EXPECT_EQ(*protocols, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(*parse_alpn_extension(alpn_body({"acme-tls/1"})), std::vector<std::string>{"acme-tls/1"});
}

TEST(AlpnExtension, RejectsMalformedInput) {
  EXPECT_FALSE(parse_alpn_extension(Bytes{}));
  EXPECT_FALSE(parse_alpn_extension(Bytes{0x00, 0x00}));             // empty list
  EXPECT_FALSE(parse_alpn_extension(Bytes{0x00, 0x01, 0x00}));       // empty name
  EXPECT_FALSE(parse_alpn_extension(Bytes{0x00, 0x03, 0x05, 'h', '2'}));  // name overruns
}

TEST(AlertNames, FollowRfc8446) {
  EXPECT_EQ(alert_name(70), "protocol_version");
  EXPECT_EQ(alert_name(48), "unknown_ca");
  EXPECT_EQ(alert_name(112), "unrecognized_name");
  EXPECT_EQ(alert_name(120), "no_application_protocol");
  EXPECT_EQ(alert_name(250), "alert_250");
}

TEST(Classifier, CallbackDecisionAndPeerAlertWin) {
  HandshakeFailureFacts facts;
  facts.rejection = "unknown_sni";
  EXPECT_EQ(classify_handshake_failure(facts), "unknown_sni");
  facts.rejection.clear();
  facts.alert_received = 48;
  EXPECT_EQ(classify_handshake_failure(facts), "peer_alert:unknown_ca");
}

TEST(Classifier, SocketOutcomes) {
  HandshakeFailureFacts facts;
  facts.error = boost::asio::error::eof;
  EXPECT_EQ(classify_handshake_failure(facts), "client_closed");
  facts.error = boost::beast::error::timeout;
  EXPECT_EQ(classify_handshake_failure(facts), "handshake_timeout");
}

}  // namespace
}  // namespace edge::proxy
