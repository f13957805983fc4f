#pragma once
// ACME identifiers: DNS names and IP addresses (RFC 8738).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme {

enum class IdentifierType { dns, ip };

struct Identifier {
  IdentifierType type = IdentifierType::dns;
  std::string value;  // DNS name lower-cased; IP in canonical text (RFC 5952)
  friend bool operator==(Identifier const&, Identifier const&) = default;
};

// The ACME "type" member: "dns" or "ip".
char const* to_string(IdentifierType type) noexcept;

// 4 bytes for IPv4, 16 for IPv6; nullopt when `text` is not an IP literal.
std::optional<std::vector<std::uint8_t>> parse_ip(std::string_view text);

// IP literals become type ip in canonical text; anything else is a DNS name.
Identifier classify_identifier(std::string_view text);

// "dns:edge.test" / "ip:127.0.0.1", as kept in the store's challenge rows.
std::string identifier_label(Identifier const& id);

// The reverse-DNS name of an address (RFC 8738 section 6) without trailing
// dot: 127.0.0.1 -> 1.0.0.127.in-addr.arpa, IPv6 -> 32 nibbles + ".ip6.arpa".
std::string reverse_dns_name(std::span<std::uint8_t const> address);

// The SNI a tls-alpn-01 validator sends for `id`.
std::string validation_server_name(Identifier const& id);

// True when both lists name the same identifiers (order, case and IP
// spelling do not matter).
bool same_identifier_set(std::vector<std::string> const& a, std::vector<std::string> const& b);

}  // namespace edge::acme
