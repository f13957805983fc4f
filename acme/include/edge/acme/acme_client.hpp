#pragma once
// One ACME (RFC 8555) client bound to one directory: keeps the account in the
// store and runs orders with tls-alpn-01 (RFC 8737) for DNS and IP (RFC 8738)
// identifiers; asks for renewal information (ARI, RFC 9773), revokes, rolls
// the account key over and deactivates the account. Blocking; meant for the
// renewal scheduler's threads (and tests).
#include <edge/acme/challenge_responder.hpp>
#include <edge/acme/config.hpp>
#include <edge/acme/error.hpp>
#include <edge/store/records.hpp>
#include <edge/store/store.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace edge::acme {

class HttpTransport;  // acme/src/http_transport.hpp

struct AcmeClientOptions {
  // Requesting a stop aborts HTTP transfers and polling waits; the running call
  // then fails with problem::cancelled.
  std::stop_token stop;
  // Progress lines (no secrets), e.g. "order created https://...". Optional.
  std::function<void(std::string const&)> log;
  // Bound for waiting on authorizations and on order finalization, each.
  std::chrono::seconds poll_deadline{90};
  // Certificate key type when the certificate does not name one.
  KeyType default_key_type = KeyType::ecdsa_p256;
  // The HTTP layer; unset = libcurl trusting the issuer's ca_bundle. Unit
  // tests replay recorded server answers through it.
  std::shared_ptr<HttpTransport> transport;
};

// The server's suggestion for renewing one certificate (RFC 9773 section 4.2).
struct RenewalWindow {
  std::int64_t start = 0;  // Unix seconds
  std::int64_t end = 0;
  std::string explanation_url;
  std::optional<std::chrono::seconds> retry_after;  // when to ask again
};

struct IssueOptions {
  // ARI CertID of the certificate this order replaces; sent as "replaces"
  // when the directory offers renewalInfo.
  std::string replaces;
  // A key to certify again (reuse_key); "" = a fresh key of the spec's type.
  std::string reuse_key_pem;
};

// RFC 5280 CRLReason codes ACME CAs accept, by their RFC 5280 names:
// unspecified, keyCompromise, affiliationChanged, superseded,
// cessationOfOperation. nullopt for anything else.
std::optional<int> revocation_reason_code(std::string_view name);

class AcmeClient {
 public:
  // `store` and `responder` must outlive the client; the client uses the store
  // from the calling thread only.
  AcmeClient(IssuerConfig issuer, store::Store& store, ChallengeResponder& responder,
             AcmeClientOptions options = {});
  // The first issuer of `config`, with config.key_type as the default key type.
  AcmeClient(AcmeConfig const& config, store::Store& store, ChallengeResponder& responder,
             AcmeClientOptions options = {});
  ~AcmeClient();
  AcmeClient(AcmeClient const&) = delete;
  AcmeClient& operator=(AcmeClient const&) = delete;

  IssuerConfig const& issuer() const;

  // Loads the account for the directory from the store, or registers a new
  // one (with External Account Binding when configured) and stores it. When
  // the server no longer knows the stored account URL, asks for the account
  // of the stored key (onlyReturnExisting) before registering anew. Updates
  // the contact when the configuration changed it.
  AcmeResult<store::AcmeAccount> ensure_account();

  // Runs one order for `spec` to the end and stores the certificate with its
  // key. An order a previous run left unfinished (crash, kill) is resumed
  // first; when it can no longer give a certificate, a new order follows in
  // the same call. Returns the record as stored (with its generation).
  AcmeResult<store::CertificateRecord> issue(CertificateSpec const& spec,
                                             IssueOptions const& options = {});

  // ARI for the first certificate of `chain_pem`; nullopt when the directory
  // does not offer renewalInfo.
  AcmeResult<std::optional<RenewalWindow>> renewal_info(std::string const& chain_pem);
  // The ARI CertID of the first certificate of `chain_pem`.
  static AcmeResult<std::string> cert_id(std::string const& chain_pem);

  // revokeCert signed by the account key (RFC 8555 section 7.6).
  AcmeResult<void> revoke(std::string const& chain_pem, int reason);
  // keyChange (RFC 8555 section 7.3.5): a new account key of the configured
  // type replaces the stored one.
  AcmeResult<store::AcmeAccount> roll_account_key();
  // Deactivates the account (RFC 8555 section 7.3.6); the next order
  // registers a new one.
  AcmeResult<void> deactivate_account();

  // badNonce answers retried so far, for logs and tests.
  int bad_nonce_retries() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::acme
