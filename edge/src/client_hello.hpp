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
