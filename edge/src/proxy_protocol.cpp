#include "proxy_protocol.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string_view>

namespace edge::proxy {
namespace {

constexpr std::uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV1MaxLine = 107;

ProxyParseResult invalid(std::string why) {
  ProxyParseResult r;
  r.status = ProxyParseStatus::invalid;
  r.why = std::move(why);
  return r;
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

bool parse_address(std::string_view text, int family, std::string& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  std::string const copy(text);
  unsigned char buf[16];
  if (inet_pton(family, copy.c_str(), buf) != 1) return false;
  char canonical[INET6_ADDRSTRLEN];
  inet_ntop(family, buf, canonical, sizeof canonical);
  out = canonical;
  return true;
}

ProxyParseResult parse_v1(std::span<std::uint8_t const> bytes) {
  std::string_view const text(reinterpret_cast<char const*>(bytes.data()), std::min(bytes.size(), kV1MaxLine));
  auto const end = text.find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kV1MaxLine) return invalid("PROXY v1 line longer than 107 bytes");
    // Reject early when what arrived is already not a PROXY line.
    for (char c : text) {
      if (c != '\r' && (c < 0x20 || c > 0x7e)) return invalid("PROXY v1 line with a non-printable byte");
    }
    return {};
  }
  std::string_view line = text.substr(0, end);
  std::vector<std::string_view> parts;
  while (!line.empty()) {
    auto const space = line.find(' ');
    parts.push_back(line.substr(0, space));
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  ProxyParseResult result;
  result.status = ProxyParseStatus::complete;
  result.consumed = end + 2;
  if (parts.size() >= 2 && parts[0] == "PROXY" && parts[1] == "UNKNOWN") return result;
  if (parts.size() != 6 || parts[0] != "PROXY") return invalid("malformed PROXY v1 line");
  int const family = parts[1] == "TCP4" ? AF_INET : parts[1] == "TCP6" ? AF_INET6 : -1;
  if (family < 0) return invalid("PROXY v1: unknown protocol");
  auto& h = result.header;
  if (!parse_address(parts[2], family, h.source_address) || !parse_address(parts[3], family, h.destination_address) ||
      !parse_port(parts[4], h.source_port) || !parse_port(parts[5], h.destination_port)) {
    return invalid("PROXY v1: bad address or port");
  }
  h.has_addresses = true;
  return result;
}

ProxyParseResult parse_v2(std::span<std::uint8_t const> bytes) {
  if (bytes.size() < 16) return {};
  std::uint8_t const version_command = bytes[12];
  if ((version_command >> 4) != 2) return invalid("PROXY v2: bad version");
  std::uint8_t const command = version_command & 0x0f;
  if (command > 1) return invalid("PROXY v2: bad command");
  std::size_t const length = (std::size_t{bytes[14]} << 8) | bytes[15];
  if (bytes.size() < 16 + length) return {};
  ProxyParseResult result;
  result.status = ProxyParseStatus::complete;
  result.consumed = 16 + length;
  if (command == 0) return result;  // LOCAL: health checks from the balancer itself
  std::uint8_t const family = bytes[13];
  auto const body = bytes.subspan(16, length);
  auto& h = result.header;
  char text[INET6_ADDRSTRLEN];
  if (family == 0x11) {  // TCP over IPv4
    if (length < 12) return invalid("PROXY v2: short IPv4 block");
    inet_ntop(AF_INET, body.data(), text, sizeof text);
    h.source_address = text;
    inet_ntop(AF_INET, body.data() + 4, text, sizeof text);
    h.destination_address = text;
    h.source_port = static_cast<std::uint16_t>((body[8] << 8) | body[9]);
    h.destination_port = static_cast<std::uint16_t>((body[10] << 8) | body[11]);
    h.has_addresses = true;
  } else if (family == 0x21) {  // TCP over IPv6
    if (length < 36) return invalid("PROXY v2: short IPv6 block");
    inet_ntop(AF_INET6, body.data(), text, sizeof text);
    h.source_address = text;
    inet_ntop(AF_INET6, body.data() + 16, text, sizeof text);
    h.destination_address = text;
    h.source_port = static_cast<std::uint16_t>((body[32] << 8) | body[33]);
    h.destination_port = static_cast<std::uint16_t>((body[34] << 8) | body[35]);
    h.has_addresses = true;
  } else if (family != 0x00) {
    return invalid("PROXY v2: unsupported address family");
  }
  return result;  // TLVs after the addresses are skipped
}

}  // namespace

ProxyParseResult parse_proxy_header(std::span<std::uint8_t const> bytes) {
  if (bytes.empty()) return {};
  if (bytes[0] == kV2Signature[0]) {
    std::size_t const n = std::min(bytes.size(), sizeof kV2Signature);
    if (std::memcmp(bytes.data(), kV2Signature, n) != 0) return invalid("not a PROXY protocol header");
    if (bytes.size() < sizeof kV2Signature) return {};
    return parse_v2(bytes);
  }
  static constexpr std::string_view kV1Prefix = "PROXY ";
  std::size_t const n = std::min(bytes.size(), kV1Prefix.size());
  if (std::memcmp(bytes.data(), kV1Prefix.data(), n) != 0) return invalid("not a PROXY protocol header");
  if (bytes.size() < kV1Prefix.size()) return {};
  return parse_v1(bytes);
}

std::string make_proxy_header(ProxyVersion version, std::string const& source_address, std::uint16_t source_port,
                              std::string const& destination_address, std::uint16_t destination_port) {
  unsigned char src[16], dst[16];
  bool const v4 =
      inet_pton(AF_INET, source_address.c_str(), src) == 1 && inet_pton(AF_INET, destination_address.c_str(), dst) == 1;
  bool const v6 = !v4 && inet_pton(AF_INET6, source_address.c_str(), src) == 1 &&
                  inet_pton(AF_INET6, destination_address.c_str(), dst) == 1;
  if (version == ProxyVersion::v1) {
    if (!v4 && !v6) return "PROXY UNKNOWN\r\n";
    return std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + source_address + " " + destination_address + " " +
           std::to_string(source_port) + " " + std::to_string(destination_port) + "\r\n";
  }
  std::string out(reinterpret_cast<char const*>(kV2Signature), sizeof kV2Signature);
  if (!v4 && !v6) {
    out += std::string("\x20\x00\x00\x00", 4);  // LOCAL, UNSPEC, no addresses
    return out;
  }
  std::size_t const addr_len = v4 ? 4 : 16;
  out += '\x21';  // version 2, PROXY
  out += static_cast<char>(v4 ? 0x11 : 0x21);
  std::size_t const length = 2 * addr_len + 4;
  out += static_cast<char>(length >> 8);
  out += static_cast<char>(length & 0xff);
  out.append(reinterpret_cast<char const*>(src), addr_len);
  out.append(reinterpret_cast<char const*>(dst), addr_len);
  for (std::uint16_t port : {source_port, destination_port}) {
    out += static_cast<char>(port >> 8);
    out += static_cast<char>(port & 0xff);
  }
  return out;
}

}  // namespace edge::proxy

namespace edge::proxy {

bool Cidr::parse(std::string const& text, Cidr& out, std::string& why) {
  auto const slash = text.find('/');
  std::string const address = text.substr(0, slash);
  Cidr cidr;
  if (inet_pton(AF_INET, address.c_str(), cidr.bytes) == 1) {
    cidr.family = AF_INET;
  } else if (inet_pton(AF_INET6, address.c_str(), cidr.bytes) == 1) {
    cidr.family = AF_INET6;
  } else {
    why = "\"" + address + "\" is not an IP address";
    return false;
  }
  int const bits = cidr.family == AF_INET ? 32 : 128;
  cidr.prefix = bits;
  if (slash != std::string::npos) {
    std::string_view const prefix(text.data() + slash + 1, text.size() - slash - 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), value);
    if (prefix.empty() || ec != std::errc() || end != prefix.data() + prefix.size() || value > unsigned(bits)) {
      why = "bad prefix length in \"" + text + "\"";
      return false;
    }
    cidr.prefix = static_cast<int>(value);
  }
  out = cidr;
  return true;
}

bool Cidr::contains(std::string const& address) const {
  std::uint8_t bytes_of[16] = {};
  if (inet_pton(family, address.c_str(), bytes_of) != 1) {
    // An IPv4 client on an IPv6 socket shows as ::ffff:a.b.c.d.
    if (family != AF_INET || !address.starts_with("::ffff:")) return false;
    if (inet_pton(AF_INET, address.c_str() + 7, bytes_of) != 1) return false;
  }
  int const full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(bytes_of, bytes, static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  std::uint8_t const mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (bytes_of[full] & mask) == (bytes[full] & mask);
}

std::string TcpUpstream::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool needs_preread(TlsPolicy const& policy) {
  auto special = [](TlsRoute const& r) { return r.mode != RouteMode::tls_terminate || !r.http; };
  if (special(policy.default_route)) return true;
  for (auto const& entry : policy.sni) {
    if (special(entry.route)) return true;
  }
  return false;
}

}  // namespace edge::proxy
