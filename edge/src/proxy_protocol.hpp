#pragma once
// PROXY protocol (HAProxy's spec, versions 1 and 2): parsing the header a
// trusted load balancer puts in front of a connection, and writing one for
// upstreams that want it. The parser sees untrusted bytes: lengths are checked
// and the v1 line is capped at 107 bytes as the spec says.
#include <cstddef>
#include <cstdint>
#include <edge/proxy/config.hpp>
#include <span>
#include <string>
#include <vector>

namespace edge::proxy {

struct ProxyHeader {
  bool has_addresses = false;  // false for LOCAL (v2) and UNKNOWN (v1): keep the TCP peer
  std::string source_address;
  std::uint16_t source_port = 0;
  std::string destination_address;
  std::uint16_t destination_port = 0;
};

enum class ProxyParseStatus { need_more, complete, invalid };

struct ProxyParseResult {
  ProxyParseStatus status = ProxyParseStatus::need_more;
  ProxyHeader header;
  std::size_t consumed = 0;  // header length when complete
  std::string why;           // when invalid
};

ProxyParseResult parse_proxy_header(std::span<std::uint8_t const> bytes);

using ProxyVersion = ProxyProtocolVersion;

// A header announcing `source` -> `destination` (textual IPv4 or IPv6 addresses
// of the same family; otherwise v1 UNKNOWN / v2 LOCAL).
std::string make_proxy_header(ProxyVersion version, std::string const& source_address, std::uint16_t source_port,
                              std::string const& destination_address, std::uint16_t destination_port);

}  // namespace edge::proxy
