#pragma once
// Parsers for the ClientHello extensions the edge decides on. Their input is
// untrusted bytes straight from the network: every length is checked.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace edge::proxy {

// server_name extension body (RFC 6066 section 3): the host_name entry.
// nullopt when malformed; an empty string when the list holds no host_name.
std::optional<std::string> parse_server_name_extension(std::span<std::uint8_t const> body);

// application_layer_protocol_negotiation extension body (RFC 7301 section 3.1).
// nullopt when malformed (including empty protocol names or an empty list).
std::optional<std::vector<std::string>> parse_alpn_extension(std::span<std::uint8_t const> body);

}  // namespace edge::proxy

namespace edge::proxy {

// supported_versions extension body of a ClientHello (RFC 8446 section 4.2.1).
std::optional<std::vector<std::uint16_t>> parse_supported_versions_extension(std::span<std::uint8_t const> body);

// "1.3", "1.2", "1.1", "1.0", "ssl3", or "0x7f1c" for anything else (GREASE included).
std::string tls_version_name(std::uint16_t wire_version);

}  // namespace edge::proxy
