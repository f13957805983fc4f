#pragma once
// Turns what OpenSSL and the socket said about a failed handshake into the
// record's error.type. Kept apart from the session so it can be tested alone.
#include <boost/system/error_code.hpp>

#include <string>

namespace edge::proxy {

// RFC 8446 section 6 alert names ("protocol_version"); "alert_<n>" if unknown.
std::string alert_name(int description);

struct HandshakeFailureFacts {
  boost::system::error_code error;  // from the async handshake
  std::string rejection;            // set by the ClientHello callback, if it refused
  int alert_received = -1;          // alert the peer sent, -1 when none
  bool client_hello_seen = false;
  bool bytes_received = false;      // anything at all arrived from the client
};

// Returns the error.type value, e.g. "protocol_version", "peer_alert:unknown_ca",
// "handshake_timeout", "client_closed", "not_tls".
std::string classify_handshake_failure(HandshakeFailureFacts const& facts);

}  // namespace edge::proxy
