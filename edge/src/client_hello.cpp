#include "client_hello.hpp"

#include "byte_reader.hpp"

#include <cstdio>

namespace edge::proxy {
namespace {

std::string text(std::span<std::uint8_t const> bytes) {
  return std::string(reinterpret_cast<char const*>(bytes.data()), bytes.size());
}

}  // namespace

std::optional<std::string> parse_server_name_extension(std::span<std::uint8_t const> body) {
  ByteReader outer(body);
  std::size_t list_len = 0;
  std::span<std::uint8_t const> list;
  if (!outer.u16(list_len) || !outer.take(list_len, list) || !outer.empty()) return std::nullopt;
  ByteReader entries(list);
  std::string host;
  while (!entries.empty()) {
    std::size_t type = 0, len = 0;
    std::span<std::uint8_t const> name;
    if (!entries.u8(type) || !entries.u16(len) || !entries.take(len, name)) return std::nullopt;
    if (type == 0) {  // host_name; RFC 6066 forbids more than one
      if (!host.empty() || name.empty()) return std::nullopt;
      for (auto c : name) {
        if (c <= 0x20 || c >= 0x7f) return std::nullopt;  // hostnames are printable ASCII
      }
      host = text(name);
    }
  }
  return host;
}

std::optional<std::vector<std::string>> parse_alpn_extension(std::span<std::uint8_t const> body) {
  ByteReader outer(body);
  std::size_t list_len = 0;
  std::span<std::uint8_t const> list;
  if (!outer.u16(list_len) || !outer.take(list_len, list) || !outer.empty() || list.empty()) return std::nullopt;
  ByteReader entries(list);
  std::vector<std::string> protocols;
  while (!entries.empty()) {
    std::size_t len = 0;
    std::span<std::uint8_t const> name;
    if (!entries.u8(len) || len == 0 || !entries.take(len, name)) return std::nullopt;
    protocols.push_back(text(name));
  }
  return protocols;
}

}  // namespace edge::proxy

namespace edge::proxy {

std::optional<std::vector<std::uint16_t>> parse_supported_versions_extension(std::span<std::uint8_t const> body) {
  if (body.empty()) return std::nullopt;
  std::size_t const len = body[0];
  if (len + 1 != body.size() || len % 2 != 0 || len == 0) return std::nullopt;
  std::vector<std::uint16_t> versions;
  for (std::size_t i = 1; i + 1 < body.size(); i += 2) {
    versions.push_back(static_cast<std::uint16_t>((body[i] << 8) | body[i + 1]));
  }
  return versions;
}

std::string tls_version_name(std::uint16_t wire_version) {
  switch (wire_version) {
    case 0x0304: return "1.3";
    case 0x0303: return "1.2";
    case 0x0302: return "1.1";
    case 0x0301: return "1.0";
    case 0x0300: return "ssl3";
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%04x", wire_version);
      return buf;
    }
  }
}

}  // namespace edge::proxy
