#pragma once
// ACME bookkeeping added with the production-grade client: the renewal state
// of every configured certificate (what edgectl shows: state, next renewal and
// why, last attempt, last error, next attempt) and the operator's requests
// that the running edged carries out (revocation, account key rollover,
// account deactivation). Plain data, no SQL.
#include <cstdint>
#include <string>

namespace edge::store {

// One row per configured certificate, written by edged's renewal scheduler
// after every decision and every attempt, so that a restart resumes the
// backoff instead of hammering a failing CA, and an operator can see why.
struct RenewalState {
  std::string name;
  // "valid": nothing to do until next_renewal_at; "issuing": an attempt is
  // running; "retrying": the last attempt failed, next_attempt_at says when
  // the next one is made.
  std::string status;
  std::int64_t next_renewal_at = 0;  // Unix seconds; 0 = no certificate yet
  std::string renewal_reason;        // why then (ARI window or lifetime rule)
  // The generation next_renewal_at was planned for: the random point is
  // drawn once per certificate, not on every look.
  std::int64_t planned_generation = 0;
  std::int64_t ari_next_check_at = 0;  // when to ask renewalInfo again; 0 = not using ARI
  std::int64_t failures = 0;           // consecutive failed attempts
  std::int64_t last_attempt_at = 0;
  std::int64_t last_success_at = 0;
  std::int64_t next_attempt_at = 0;  // no attempt before this (backoff, Retry-After)
  std::string last_error;            // one line; "" after a success
  std::string last_problem;          // the server's problem document verbatim; "" when none
  std::string issuer;                // directory URL of the last attempt
  std::int64_t updated_at = 0;       // set by the store
};

// An operator request queued by edgectl and carried out by the running edged,
// which owns the ACME accounts (a second client signing with the same account
// key while edged rolls it over would break one of them).
struct AcmeOperation {
  std::int64_t id = 0;  // assigned by the store
  std::string kind;     // "revoke", "key-rollover", "deactivate-account"
  std::string target;   // certificate name (revoke) or directory URL ("" = every issuer)
  std::string argument; // revoke: the reason name, e.g. "keyCompromise"
  std::string status;   // "pending", "running", "done", "failed"
  std::string result;   // one line: what was done, or why it failed
  std::int64_t requested_at = 0;
  std::int64_t finished_at = 0;
};

}  // namespace edge::store
