#pragma once
// One ACME (RFC 8555) client bound to one directory: keeps the account in the
// store and runs orders with tls-alpn-01 (RFC 8737) for DNS and IP (RFC 8738)
// identifiers. Blocking; meant for the renewal thread (and tests).
#include <edge/acme/challenge_responder.hpp>
#include <edge/acme/config.hpp>
#include <edge/acme/error.hpp>
#include <edge/store/records.hpp>
#include <edge/store/store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

namespace edge::acme {

struct AcmeClientOptions {
  // Requesting a stop aborts HTTP transfers and polling waits; the running call
  // then fails with problem::cancelled.
  std::stop_token stop;
  // Progress lines (no secrets), e.g. "order created https://...". Optional.
  std::function<void(std::string const&)> log;
  // Bound for waiting on authorizations and on order finalization, each.
  std::chrono::seconds poll_deadline{90};
};

class AcmeClient {
 public:
  // `store` and `responder` must outlive the client; the client uses the store
  // from the calling thread only.
  AcmeClient(AcmeConfig config, store::Store& store, ChallengeResponder& responder,
             AcmeClientOptions options = {});
  ~AcmeClient();
  AcmeClient(AcmeClient const&) = delete;
  AcmeClient& operator=(AcmeClient const&) = delete;

  // Loads the account for config.directory_url from the store, or registers a
  // new one (and stores it). Called by issue() as needed.
  AcmeResult<store::AcmeAccount> ensure_account();

  // Runs one order for `spec` to the end and stores the certificate with its
  // key. Returns the record as stored (with its generation).
  AcmeResult<store::CertificateRecord> issue(CertificateSpec const& spec);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::acme
