#pragma once
// base64url without padding (RFC 7515 section 2, RFC 4648 section 5).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme {

std::string base64url_encode(std::span<std::uint8_t const> data);
std::string base64url_encode(std::string_view data);

// Rejects padding, whitespace and characters outside the URL-safe alphabet.
std::optional<std::vector<std::uint8_t>> base64url_decode(std::string_view text);

}  // namespace edge::acme
