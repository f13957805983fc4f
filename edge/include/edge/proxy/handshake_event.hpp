#pragma once
// Everything known about one accepted connection's handshake. Field comments
// give the JSON name (OpenTelemetry semantic conventions where one exists).
#include <cstdint>
#include <string>

namespace edge::proxy {

enum class HandshakeOutcome { ok, failed, timeout, acme_challenge, passthrough, rejected };
char const* to_string(HandshakeOutcome outcome) noexcept;

struct HandshakeEvent {
  std::int64_t timestamp_us = 0;            // @timestamp (accept time)
  HandshakeOutcome outcome = HandshakeOutcome::failed;  // edge.outcome
  std::string error_type;                   // error.type (empty when ok)
  std::string alert_sent = "none";          // edge.alert.sent
  std::string alert_received;               // edge.alert.received (empty when none)
  std::string client_address;               // client.address (from the PROXY header when there is one)
  std::string peer_address;                 // network.peer.address (the TCP peer, when it differs)
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
  std::string offered_versions;             // tls.client.supported_versions ("1.3,1.2")
  std::string listener;                     // edge.listener ("127.0.0.1:8443")
  std::string connection_id;                // edge.connection.id (joins later access logs)
  // The client certificate, when one was presented (mTLS).
  std::string client_subject;               // tls.client.subject
  std::string client_issuer;                // tls.client.issuer
  std::string client_serial;                // tls.client.serial
  std::int64_t client_not_after = 0;        // tls.client.not_after
  std::string client_sha256;                // tls.client.hash.sha256
  // The served certificate, when selection happened.
  std::string cert_name;                    // edge.cert.name
  std::string cert_serial;                  // edge.cert.serial
  std::string cert_sha256;                  // tls.server.hash.sha256
  std::int64_t cert_not_after = 0;          // tls.server.not_after (Unix seconds)
  std::int64_t cert_generation = 0;         // edge.cert.generation
  std::int64_t duration_us = 0;             // edge.handshake.duration_us
  std::string upstream;                     // edge.upstream (passthrough and TCP routes)
  std::int64_t bytes_in = -1;               // edge.bytes.in: from the client (passthrough, at close)
  std::int64_t bytes_out = -1;              // edge.bytes.out: to the client
  std::int64_t count = 1;                   // count: identical failures folded into this record
};

}  // namespace edge::proxy
