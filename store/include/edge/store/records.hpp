#pragma once
// Plain data kept by the store. No behaviour, no SQL: any backend fills these.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edge::store {

enum class CertificateSource { acme, manual };
char const* to_string(CertificateSource s) noexcept;

// One certificate with its key, as served. Times are Unix seconds (UTC).
struct CertificateRecord {
  std::int64_t id = 0;  // assigned by the store
  std::string name;     // the configured name, e.g. "main"
  std::vector<std::string> identifiers;  // DNS names and IP addresses (textual)
  std::string chain_pem;                 // leaf first, then intermediates
  std::string private_key_pem;
  std::string serial;              // leaf serial, upper-case hex without separators
  std::string fingerprint_sha256;  // SHA-256 of the leaf DER, upper-case hex (as OpenTelemetry)
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
  std::string issuer;  // leaf issuer DN (RFC 2253)
  CertificateSource source = CertificateSource::acme;
  std::int64_t generation = 0;  // assigned by the store: 1, 2, ... per name
  std::int64_t created_at = 0;  // assigned by the store
};

// An ACME account, one per directory URL.
struct AcmeAccount {
  std::string directory_url;
  std::string account_url;  // the "kid"
  std::string key_pem;      // account private key (PKCS#8 PEM)
  std::string contact_json;  // JSON array of contact URIs, as registered
  std::int64_t created_at = 0;
  std::string status = "valid";  // "valid" or "deactivated" (then a new one is registered)
};

// Progress of one ACME order, kept so an operator can see what is pending.
struct AcmeOrderRecord {
  std::int64_t id = 0;  // 0 = new row
  std::string certificate_name;
  std::string directory_url;
  std::string order_url;
  std::string status;  // pending, ready, processing, valid, invalid, failed
  std::string error;   // last problem, human readable
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  // Crash safety: the certificate key is saved here before the order is
  // finalized, so that after a restart the order can be completed with it.
  std::string private_key_pem{};
  std::string profile{};   // ACME profile requested, "" for the CA's default
  std::string replaces{};  // ARI CertID of the certificate this order replaces, or ""
  std::string problem{};   // the server's problem document verbatim, or ""
  std::int64_t certificate_generation = 0;  // what it produced, once stored
};

struct AcmeChallengeRecord {
  std::int64_t order_id = 0;
  std::string identifier;  // "dns:edge.test" or "ip:127.0.0.1"
  std::string authorization_url;
  std::string challenge_url;
  std::string status;
  std::string error;
};

// One TLS handshake outcome. The typed columns are what queries filter on;
// `json` is the whole record exactly as written to the JSON-lines log.
struct HandshakeRecord {
  std::int64_t id = 0;
  std::int64_t timestamp_us = 0;  // Unix microseconds
  std::string outcome;            // ok, failed, timeout, acme_challenge
  std::string error_type;         // empty when ok
  std::string alert_sent;         // "none" or the alert name
  std::string client_address;
  int client_port = 0;
  int server_port = 0;
  std::string server_name;  // SNI as offered, empty when none
  std::string protocol_version;
  std::string cipher;
  std::string cert_name;  // empty when no certificate was selected
  std::string cert_serial;
  std::string cert_sha256;
  std::int64_t cert_generation = 0;
  std::int64_t duration_us = 0;
  std::string json;
  // Identical failures folded into this record (flood damping); counters add it.
  std::int64_t count = 1;
  // false: only the counters are updated (a success left out by sampling).
  bool keep_row = true;
};

struct HandshakeQuery {
  std::optional<std::string> cert_name;
  bool failed_only = false;
  int limit = 100;  // newest first
  // Added for the admin API's handshakes.query; unset = no filter.
  std::optional<std::string> outcome{};
  std::optional<std::string> error_type{};
  std::optional<std::string> client_address{};
  std::int64_t since_us = 0;  // only records at or after this time (Unix microseconds)
};

// How many ACME orders ended in each status (for edge_acme_orders_total).
struct OrderStatusCount {
  std::string status;
  std::int64_t count = 0;
};

// One line of the counters: how many handshakes of a certificate ended how.
struct HandshakeSummaryRow {
  std::string cert_name;
  std::string outcome;
  std::string error_type;
  std::int64_t count = 0;
};

// Handshake totals per certificate name (cert_name "" = none selected).
struct HandshakeCounters {
  std::string cert_name;
  std::int64_t ok = 0;
  std::int64_t failed = 0;
};

}  // namespace edge::store
