#include "client_hello_preread.hpp"

#include <set>

#include "byte_reader.hpp"
#include "client_hello.hpp"

namespace edge::proxy {
namespace {

constexpr std::uint8_t kHandshakeRecord = 0x16;
constexpr std::uint8_t kClientHello = 0x01;
constexpr std::size_t kRecordHeader = 5;
constexpr std::size_t kMaxRecordPayload = 16384 + 256;  // RFC 8446 section 5.1, with slack for old clients

PrereadResult fail(PrereadStatus status, std::string why) {
  PrereadResult r;
  r.status = status;
  r.why = std::move(why);
  return r;
}

PrereadResult parse_body(std::span<std::uint8_t const> body) {
  PrereadResult result;
  auto& info = result.info;
  ByteReader c(body);
  std::size_t version = 0, session_len = 0, suites_len = 0, compression_len = 0;
  if (!c.u16(version)) return fail(PrereadStatus::malformed, "truncated version");
  info.legacy_version = static_cast<std::uint16_t>(version);
  if (!c.skip(32)) return fail(PrereadStatus::malformed, "truncated random");
  if (!c.u8(session_len) || session_len > 32 || !c.skip(session_len)) {
    return fail(PrereadStatus::malformed, "bad session id");
  }
  if (!c.u16(suites_len) || suites_len < 2 || suites_len % 2 || !c.skip(suites_len)) {
    return fail(PrereadStatus::malformed, "bad cipher suites");
  }
  if (!c.u8(compression_len) || compression_len < 1 || !c.skip(compression_len)) {
    return fail(PrereadStatus::malformed, "bad compression methods");
  }
  if (c.empty()) {  // no extensions at all (SSLv3-era hellos)
    result.status = PrereadStatus::complete;
    return result;
  }
  std::size_t extensions_len = 0;
  std::span<std::uint8_t const> extensions;
  if (!c.u16(extensions_len) || !c.take(extensions_len, extensions) || !c.empty()) {
    return fail(PrereadStatus::malformed, "bad extensions length");
  }
  ByteReader e(extensions);
  std::set<std::size_t> seen;
  while (!e.empty()) {
    std::size_t type = 0, len = 0;
    std::span<std::uint8_t const> data;
    if (!e.u16(type) || !e.u16(len) || !e.take(len, data)) return fail(PrereadStatus::malformed, "truncated extension");
    if (!seen.insert(type).second) return fail(PrereadStatus::malformed, "duplicate extension");
    if (type == 0) {
      auto name = parse_server_name_extension(data);
      if (!name) return fail(PrereadStatus::malformed, "bad server_name extension");
      info.server_name = std::move(*name);
    } else if (type == 16) {
      auto protocols = parse_alpn_extension(data);
      if (!protocols) return fail(PrereadStatus::malformed, "bad ALPN extension");
      info.alpn = std::move(*protocols);
    } else if (type == 43) {
      auto versions = parse_supported_versions_extension(data);
      if (!versions) return fail(PrereadStatus::malformed, "bad supported_versions extension");
      info.supported_versions = std::move(*versions);
    }
  }
  result.status = PrereadStatus::complete;
  return result;
}

}  // namespace

PrereadResult parse_client_hello(std::span<std::uint8_t const> bytes, std::size_t max_size) {
  if (bytes.empty()) return {};
  if (bytes[0] != kHandshakeRecord) return fail(PrereadStatus::not_tls, "not a TLS handshake record");
  // The handshake message, reassembled from as many records as it spans.
  std::vector<std::uint8_t> message;
  std::size_t offset = 0;
  for (;;) {
    if (bytes.size() - offset < kRecordHeader) break;
    auto const header = bytes.subspan(offset, kRecordHeader);
    if (header[0] != kHandshakeRecord)
      return fail(PrereadStatus::malformed, "non-handshake record inside the ClientHello");
    if (header[1] != 3)
      return fail(offset == 0 ? PrereadStatus::not_tls : PrereadStatus::malformed, "bad record version");
    std::size_t const length = (std::size_t{header[3]} << 8) | header[4];
    if (length == 0 || length > kMaxRecordPayload) return fail(PrereadStatus::malformed, "bad record length");
    if (offset + kRecordHeader + length > max_size)
      return fail(PrereadStatus::too_large, "ClientHello over the size cap");
    if (bytes.size() - offset - kRecordHeader < length) break;  // the rest of this record is still in flight
    auto const payload = bytes.subspan(offset + kRecordHeader, length);
    message.insert(message.end(), payload.begin(), payload.end());
    offset += kRecordHeader + length;
    if (message.size() >= 4) {
      if (message[0] != kClientHello)
        return fail(PrereadStatus::malformed, "first handshake message is not a ClientHello");
      std::size_t const body_len = (std::size_t{message[1]} << 16) | (std::size_t{message[2]} << 8) | message[3];
      if (body_len + 4 + kRecordHeader > max_size)
        return fail(PrereadStatus::too_large, "ClientHello over the size cap");
      if (message.size() >= body_len + 4) {
        return parse_body(std::span<std::uint8_t const>(message).subspan(4, body_len));
      }
    }
  }
  if (bytes.size() > max_size) return fail(PrereadStatus::too_large, "ClientHello over the size cap");
  return {};
}

}  // namespace edge::proxy
