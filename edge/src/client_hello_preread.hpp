#pragma once
// Reads a ClientHello from the first bytes of a connection without
// terminating TLS, so that the edge can route (pass through, terminate,
// reject) by SNI before OpenSSL sees anything. Handles a ClientHello split
// over several TCP segments and several TLS records. Input is untrusted:
// every length is checked, and the size is capped.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace edge::proxy {

struct ClientHelloInfo {
  std::uint16_t legacy_version = 0;
  std::string server_name;                        // empty when the client sent none
  std::vector<std::string> alpn;                  // offered protocols, in order
  std::vector<std::uint16_t> supported_versions;  // from supported_versions, GREASE included
};

enum class PrereadStatus {
  need_more,  // a prefix of a valid ClientHello: read more
  complete,   // `info` is filled
  not_tls,    // the first byte is not a TLS handshake record
  malformed,  // a TLS record, but not a well-formed ClientHello
  too_large,  // larger than the cap
};

struct PrereadResult {
  PrereadStatus status = PrereadStatus::need_more;
  ClientHelloInfo info;
  std::string why;  // for malformed / too_large
};

// Parses `bytes` (everything received so far, from the first byte).
// Stateless: call again with the longer buffer when need_more.
PrereadResult parse_client_hello(std::span<std::uint8_t const> bytes, std::size_t max_size = 32 * 1024);

}  // namespace edge::proxy
