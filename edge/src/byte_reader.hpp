#pragma once
// A cursor over untrusted bytes that refuses to read past the end instead of
// trusting lengths. Shared by the ClientHello and extension parsers.
#include <cstddef>
#include <cstdint>
#include <span>

namespace edge::proxy {

class ByteReader {
 public:
  explicit ByteReader(std::span<std::uint8_t const> bytes) : bytes_(bytes) {}
  bool u8(std::size_t& out) { return integer(1, out); }
  bool u16(std::size_t& out) { return integer(2, out); }
  bool skip(std::size_t n) {
    if (bytes_.size() < n) return false;
    bytes_ = bytes_.subspan(n);
    return true;
  }
  bool take(std::size_t n, std::span<std::uint8_t const>& out) {
    if (bytes_.size() < n) return false;
    out = bytes_.first(n);
    bytes_ = bytes_.subspan(n);
    return true;
  }
  bool empty() const { return bytes_.empty(); }

 private:
  bool integer(std::size_t n, std::size_t& out) {
    if (bytes_.size() < n) return false;
    out = 0;
    for (std::size_t i = 0; i < n; ++i) out = (out << 8) | bytes_[i];
    bytes_ = bytes_.subspan(n);
    return true;
  }
  std::span<std::uint8_t const> bytes_;
};

}  // namespace edge::proxy
