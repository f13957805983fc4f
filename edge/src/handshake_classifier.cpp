#include "handshake_classifier.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace edge::proxy {

std::string alert_name(int description) {
  switch (description) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "alert_" + std::to_string(description);
  }
}

std::string classify_handshake_failure(HandshakeFailureFacts const& facts) {
  namespace asio = boost::asio;
  auto const& ec = facts.error;
  if (!facts.rejection.empty()) return facts.rejection;
  if (facts.alert_received >= 0 && facts.alert_received != 0) {
    return "peer_alert:" + alert_name(facts.alert_received);
  }
  if (ec == boost::beast::error::timeout) return "handshake_timeout";
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::broken_pipe) {
    return "client_closed";
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    int const reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    // Peer alerts surface as SSL_R_SSLV3_ALERT_* / SSL_R_TLSV1_ALERT_*: reason = 1000 + alert.
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
      return "peer_alert:" + alert_name(reason - SSL_AD_REASON_OFFSET);
    }
    switch (reason) {
      case SSL_R_UNSUPPORTED_PROTOCOL:
      case SSL_R_VERSION_TOO_LOW:
      case SSL_R_VERSION_TOO_HIGH:
        return "protocol_version";
      case SSL_R_NO_SHARED_CIPHER:
        return "no_shared_cipher";
      case SSL_R_NO_SHARED_GROUPS:
      case SSL_R_NO_SUITABLE_KEY_SHARE:
        return "no_shared_group";
      case SSL_R_NO_APPLICATION_PROTOCOL:
        return "no_application_protocol";
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
        return "not_tls";
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_UNKNOWN_PROTOCOL:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_RECORD_LENGTH_MISMATCH:
        return facts.client_hello_seen ? "malformed_record" : "not_tls";
      case SSL_R_LENGTH_MISMATCH:
      case SSL_R_BAD_PACKET:
      case SSL_R_BAD_EXTENSION:
      case SSL_R_PARSE_TLSEXT:
      case SSL_R_BAD_LENGTH:
        return "malformed_client_hello";
      default: {
        char const* text = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
        return std::string("tls_error:") + (text ? text : std::to_string(reason));
      }
    }
  }
  if (!facts.bytes_received) return "client_closed";
  return "io_error:" + ec.message();
}

}  // namespace edge::proxy
