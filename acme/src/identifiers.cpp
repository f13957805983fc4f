#include "identifiers.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace edge::acme {

char const* to_string(IdentifierType type) noexcept {
  return type == IdentifierType::ip ? "ip" : "dns";
}

std::optional<std::vector<std::uint8_t>> parse_ip(std::string_view text) {
  std::string const s(text);  // inet_pton wants a terminated string
  std::vector<std::uint8_t> v4(4);
  if (inet_pton(AF_INET, s.c_str(), v4.data()) == 1) return v4;
  std::vector<std::uint8_t> v6(16);
  if (inet_pton(AF_INET6, s.c_str(), v6.data()) == 1) return v6;
  return std::nullopt;
}

Identifier classify_identifier(std::string_view text) {
  if (auto const bytes = parse_ip(text)) {
    char buffer[INET6_ADDRSTRLEN] = {};
    int const family = bytes->size() == 4 ? AF_INET : AF_INET6;
    inet_ntop(family, bytes->data(), buffer, sizeof buffer);
    return {IdentifierType::ip, buffer};
  }
  std::string name(text);
  // DNS names compare case-insensitively; the absolute-name dot is not part
  // of an ACME identifier.
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!name.empty() && name.back() == '.') name.pop_back();
  return {IdentifierType::dns, std::move(name)};
}

std::string identifier_label(Identifier const& id) {
  return std::string(to_string(id.type)) + ":" + id.value;
}

std::string reverse_dns_name(std::span<std::uint8_t const> address) {
  std::string out;
  if (address.size() == 4) {
    for (auto it = address.rbegin(); it != address.rend(); ++it) {
      out += std::to_string(*it);
      out += '.';
    }
    return out + "in-addr.arpa";
  }
  static constexpr char hex[] = "0123456789abcdef";
  for (auto it = address.rbegin(); it != address.rend(); ++it) {
    out += hex[*it & 0x0f];
    out += '.';
    out += hex[*it >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

std::string validation_server_name(Identifier const& id) {
  if (id.type == IdentifierType::dns) return id.value;
  auto const bytes = parse_ip(id.value);
  return bytes ? reverse_dns_name(*bytes) : id.value;
}

bool same_identifier_set(std::vector<std::string> const& a, std::vector<std::string> const& b) {
  auto canonical = [](std::vector<std::string> const& list) {
    std::set<std::string> out;
    for (auto const& s : list) out.insert(identifier_label(classify_identifier(s)));
    return out;
  };
  return canonical(a) == canonical(b);
}

}  // namespace edge::acme
