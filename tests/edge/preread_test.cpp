#include "client_hello_preread.hpp"
#include "proxy_protocol.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>

namespace edge::proxy {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A real ClientHello from OpenSSL's client, taken from a memory BIO.
Bytes openssl_client_hello(char const* sni, std::vector<std::string> const& alpn) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);
  if (sni) SSL_set_tlsext_host_name(ssl.get(), sni);
  std::string wire;
  for (auto const& p : alpn) wire += static_cast<char>(p.size()) + p;
  if (!wire.empty()) SSL_set_alpn_protos(ssl.get(), reinterpret_cast<unsigned char const*>(wire.data()), wire.size());
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());
  char* data = nullptr;
  long const len = BIO_get_mem_data(out, &data);
  return Bytes(data, data + len);
}

// The same handshake message carried in two TLS records.
Bytes split_into_two_records(Bytes const& hello, std::size_t first) {
  Bytes const body(hello.begin() + 5, hello.end());
  Bytes out{0x16, 0x03, 0x01, static_cast<std::uint8_t>(first >> 8), static_cast<std::uint8_t>(first)};
  out.insert(out.end(), body.begin(), body.begin() + static_cast<long>(first));
  std::size_t const rest = body.size() - first;
  Bytes second{0x16, 0x03, 0x01, static_cast<std::uint8_t>(rest >> 8), static_cast<std::uint8_t>(rest)};
  out.insert(out.end(), second.begin(), second.end());
  out.insert(out.end(), body.begin() + static_cast<long>(first), body.end());
  return out;
}

TEST(ClientHelloPreread, ReadsSniAlpnAndVersions) {
  auto const hello = openssl_client_hello("edge.test", {"h2", "http/1.1"});
  auto const result = parse_client_hello(hello);
  ASSERT_EQ(result.status, PrereadStatus::complete) << result.why;
  EXPECT_EQ(result.info.server_name, "edge.test");
  EXPECT_EQ(result.info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  ASSERT_FALSE(result.info.supported_versions.empty());
  EXPECT_EQ(result.info.supported_versions.front(), 0x0304);
}

TEST(ClientHelloPreread, EveryPrefixNeedsMore) {
  auto const hello = openssl_client_hello("edge.test", {});
  for (std::size_t n = 1; n < hello.size(); ++n) {
    ASSERT_EQ(parse_client_hello({hello.data(), n}).status, PrereadStatus::need_more) << "prefix " << n;
  }
}

TEST(ClientHelloPreread, HelloSplitOverTwoRecords) {
  auto const hello = split_into_two_records(openssl_client_hello("split.test", {"http/1.1"}), 40);
  auto const result = parse_client_hello(hello);
  ASSERT_EQ(result.status, PrereadStatus::complete) << result.why;
  EXPECT_EQ(result.info.server_name, "split.test");
  EXPECT_EQ(parse_client_hello({hello.data(), 50}).status, PrereadStatus::need_more);
}

TEST(ClientHelloPreread, NoSni) {
  auto const result = parse_client_hello(openssl_client_hello(nullptr, {}));
  ASSERT_EQ(result.status, PrereadStatus::complete);
  EXPECT_EQ(result.info.server_name, "");
}

TEST(ClientHelloPreread, NotTlsAndMalformedAndTooLarge) {
  std::string const http = "GET / HTTP/1.1\r\n";
  EXPECT_EQ(parse_client_hello({reinterpret_cast<std::uint8_t const*>(http.data()), http.size()}).status,
            PrereadStatus::not_tls);
  auto hello = openssl_client_hello("edge.test", {});
  hello[5] = 0x02;  // handshake type: ServerHello
  EXPECT_EQ(parse_client_hello(hello).status, PrereadStatus::malformed);
  hello = openssl_client_hello("edge.test", {});
  hello[5 + 4 + 2 + 32] = 200;  // session id length over 32
  EXPECT_EQ(parse_client_hello(hello).status, PrereadStatus::malformed);
  Bytes huge{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff};  // claims a 16 MiB ClientHello
  huge.resize(5 + 0x4000, 0);
  EXPECT_EQ(parse_client_hello(huge, 4096).status, PrereadStatus::too_large);
}

std::span<std::uint8_t const> bytes_of(std::string const& s) {
  return {reinterpret_cast<std::uint8_t const*>(s.data()), s.size()};
}

TEST(ProxyProtocol, V1Tcp4AndTcp6AndUnknown) {
  std::string const line = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nrest";
  auto r = parse_proxy_header(bytes_of(line));
  ASSERT_EQ(r.status, ProxyParseStatus::complete) << r.why;
  EXPECT_EQ(r.consumed, line.size() - 4);
  EXPECT_EQ(r.header.source_address, "203.0.113.7");
  EXPECT_EQ(r.header.source_port, 40000);
  EXPECT_EQ(r.header.destination_port, 443);
  r = parse_proxy_header(bytes_of("PROXY TCP6 2001:db8:0::7 2001:db8::1 1 2\r\n"));
  ASSERT_EQ(r.status, ProxyParseStatus::complete);
  EXPECT_EQ(r.header.source_address, "2001:db8::7");
  r = parse_proxy_header(bytes_of("PROXY UNKNOWN\r\n"));
  ASSERT_EQ(r.status, ProxyParseStatus::complete);
  EXPECT_FALSE(r.header.has_addresses);
}

TEST(ProxyProtocol, V1Rejects) {
  for (char const* bad : {"PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n", "PROXY TCP4 ::1 ::1 1 2\r\n",
                          "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                          "GET / HTTP/1.1\r\n", "\x16\x03\x01"}) {
    EXPECT_EQ(parse_proxy_header(bytes_of(bad)).status, ProxyParseStatus::invalid) << bad;
  }
  EXPECT_EQ(parse_proxy_header(bytes_of("PROXY " + std::string(120, '1'))).status, ProxyParseStatus::invalid);
  EXPECT_EQ(parse_proxy_header(bytes_of("PROXY TCP4 1.2.3.4")).status, ProxyParseStatus::need_more);
}

TEST(ProxyProtocol, V2RoundTripAndPrefixes) {
  for (auto version : {ProxyVersion::v1, ProxyVersion::v2}) {
    for (auto [src, dst] : {std::pair{"203.0.113.7", "192.0.2.1"}, std::pair{"2001:db8::7", "2001:db8::1"}}) {
      auto const header = make_proxy_header(version, src, 40000, dst, 443);
      auto const r = parse_proxy_header(bytes_of(header));
      ASSERT_EQ(r.status, ProxyParseStatus::complete) << r.why;
      EXPECT_EQ(r.consumed, header.size());
      EXPECT_EQ(r.header.source_address, src);
      EXPECT_EQ(r.header.destination_address, dst);
      EXPECT_EQ(r.header.source_port, 40000);
      for (std::size_t n = 1; n < header.size(); ++n) {
        ASSERT_EQ(parse_proxy_header(bytes_of(header.substr(0, n))).status, ProxyParseStatus::need_more) << n;
      }
    }
  }
  auto const local = make_proxy_header(ProxyVersion::v2, "", 0, "", 0);
  auto const r = parse_proxy_header(bytes_of(local));
  ASSERT_EQ(r.status, ProxyParseStatus::complete);
  EXPECT_FALSE(r.header.has_addresses);
}

}  // namespace
}  // namespace edge::proxy
