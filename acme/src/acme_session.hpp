#pragma once
// The request layer of RFC 8555 section 6: the directory, the nonce pool of
// one, and the single `post` every JWS request goes through.
#include "crypto.hpp"
#include "http_transport.hpp"

#include <edge/acme/error.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edge::acme {

struct Directory {
  std::string new_nonce;
  std::string new_account;
  std::string new_order;
  std::string revoke_cert;
  std::string key_change;
  std::string renewal_info;  // ARI, absent on older servers
  std::string terms_of_service;
  bool external_account_required = false;
  // meta.profiles (draft-ietf-acme-profiles): name -> description, in the
  // server's order; empty when the server offers none.
  std::vector<std::pair<std::string, std::string>> profiles;

  bool offers_profile(std::string_view name) const;
};

AcmeResult<Directory> parse_directory(std::string_view body);

class AcmeSession {
 public:
  // How often one request is re-signed after badNonce before giving up. Only
  // a bound against a broken server: each retry fails independently, so with
  // Pebble rejecting half of all nonces 10 retries lose one request in 2^11,
  // i.e. several percent of test runs of ~100 requests; 20 lose one in 2^21.
  static constexpr int max_bad_nonce_retries = 20;

  AcmeSession(HttpTransport& transport, std::string directory_url);

  // Fetched once, then cached; forget_directory() makes the next call refetch.
  AcmeResult<Directory const*> directory();
  void forget_directory() { directory_.reset(); }
  std::string const& directory_url() const { return directory_url_; }

  // The account key signs every request; with an empty kid the JWS carries
  // the key as "jwk" (newAccount), afterwards the account URL as "kid".
  void set_account(PkeyPtr key, std::string kid);
  void set_kid(std::string kid) { kid_ = std::move(kid); }
  EVP_PKEY* account_key() const { return key_.get(); }
  std::string const& kid() const { return kid_; }

  // Signs `payload` for `url` (which must be the exact request URL), sends it,
  // keeps the response's Replay-Nonce and re-signs on badNonce. Non-2xx
  // answers become AcmeError (problem document, Retry-After). payload "" is
  // POST-as-GET.
  AcmeResult<HttpResponse> post(std::string const& url, std::string_view payload,
                                std::string const& accept = "application/json");
  AcmeResult<HttpResponse> post_as_get(std::string const& url,
                                       std::string const& accept = "application/json") {
    return post(url, "", accept);
  }
  // An unauthenticated GET (renewalInfo, RFC 9773). Non-2xx answers become
  // AcmeError as for post().
  AcmeResult<HttpResponse> get(std::string const& url);

  int bad_nonce_retries() const { return bad_nonce_retries_; }

 private:
  AcmeResult<void> fetch_nonce();
  void take_nonce(HttpResponse const& response);

  HttpTransport& transport_;
  std::string directory_url_;
  std::optional<Directory> directory_;
  PkeyPtr key_;
  std::string kid_;
  std::string nonce_;  // unused nonce from the last response, "" when none
  int bad_nonce_retries_ = 0;
};

}  // namespace edge::acme
