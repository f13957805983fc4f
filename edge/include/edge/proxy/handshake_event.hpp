#pragma once
// Everything known about one accepted connection's handshake. Field comments
// give the JSON name (OpenTelemetry semantic conventions where one exists).
#include <cstdint>
#include <string>

namespace edge::proxy {

enum class HandshakeOutcome { ok, failed, timeout, acme_challenge };
char const* to_string(HandshakeOutcome outcome) noexcept;

struct HandshakeEvent {
  std::int64_t timestamp_us = 0;            // @timestamp (accept time)
  HandshakeOutcome outcome = HandshakeOutcome::failed;  // edge.outcome
  std::string error_type;                   // error.type (empty when ok)
  std::string alert_sent = "none";          // edge.alert.sent
  std::string alert_received;               // edge.alert.received (empty when none)
  std::string client_address;               // client.address
  std::uint16_t client_port = 0;            // client.port
  std::string server_address;               // server.address (local address)
  std::uint16_t server_port = 0;            // server.port
  std::string server_name;                  // tls.client.server_name
  std::string protocol_version;             // tls.protocol.version ("1.2", "1.3")
  std::string cipher;                       // tls.cipher (IANA name)
  std::string curve;                        // tls.curve
  std::string next_protocol;                // tls.next_protocol (ALPN)
  bool resumed = false;                     // tls.resumed
  bool established = false;                 // tls.established
  std::string offered_alpn;                 // tls.client.supported_protocols (comma list)
  // The served certificate, when selection happened.
  std::string cert_name;                    // edge.cert.name
  std::string cert_serial;                  // edge.cert.serial
  std::string cert_sha256;                  // tls.server.hash.sha256
  std::int64_t cert_not_after = 0;          // tls.server.not_after (Unix seconds)
  std::int64_t cert_generation = 0;         // edge.cert.generation
  std::int64_t duration_us = 0;             // edge.handshake.duration_us
};

}  // namespace edge::proxy
