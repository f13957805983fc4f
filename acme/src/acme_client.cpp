// The order flow of RFC 8555 section 7 with tls-alpn-01 (RFC 8737) for DNS
// and IP (RFC 8738) identifiers:
//   account -> newOrder -> authorizations -> publish challenge certificates ->
//   answer challenges -> poll authorizations -> save the key -> finalize with
//   a CSR -> poll order -> download the chain (or a preferred alternate) ->
//   store it with its key.
// Every step is recorded in the store's order row before the next request,
// so an order interrupted at any point (kill -9) is resumed by the next run.
#include <edge/acme/acme_client.hpp>

#include "acme_resources.hpp"
#include "acme_session.hpp"
#include "base64url.hpp"
#include "challenge_certificate.hpp"
#include "crypto.hpp"
#include "identifiers.hpp"
#include "interruptible_sleep.hpp"
#include "jws.hpp"
#include "problem.hpp"
#include "renewal_policy.hpp"

#include <edge/store/certificate_pem.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

namespace edge::acme {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds first_poll_delay{50};
constexpr milliseconds max_poll_delay{1000};
constexpr char const* pem_chain_type = "application/pem-certificate-chain";
// Orders live for days at most (Let's Encrypt: 7); an older open row is stale.
constexpr std::int64_t max_resumable_order_age = 7 * 86400;
// A resumed order that can no longer give a certificate: issue() starts a
// new one in the same call. Never leaves this file.
constexpr char const* order_unusable = "urn:edge:error:order-unusable";
constexpr char const* already_replaced = "urn:ietf:params:acme:error:alreadyReplaced";

AcmeError make_error(char const* type, std::string detail, int status = 0) {
  return AcmeError{type, std::move(detail), status, std::nullopt};
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Withdraws every published challenge certificate when the order step ends,
// however it ends.
class PublishedChallenges {
 public:
  explicit PublishedChallenges(ChallengeResponder& responder) : responder_(responder) {}
  ~PublishedChallenges() {
    for (auto const& name : names_) {
      try {
        responder_.withdraw(name);
      } catch (...) {
        // A destructor must not throw; the registry entry merely lingers.
      }
    }
  }
  PublishedChallenges(PublishedChallenges const&) = delete;
  PublishedChallenges& operator=(PublishedChallenges const&) = delete;

  void publish(std::string const& name, ChallengeCertificate const& certificate) {
    responder_.publish(name, certificate.certificate_pem, certificate.private_key_pem);
    names_.push_back(name);
  }

 private:
  ChallengeResponder& responder_;
  std::vector<std::string> names_;
};

// Doubles the polling delay up to a cap, but waits at least what the server
// asked for with Retry-After and never past the deadline.
class Poller {
 public:
  Poller(std::stop_token stop, std::chrono::seconds budget)
      : stop_(std::move(stop)), deadline_(Clock::now() + budget) {}

  void server_asked(std::optional<std::chrono::seconds> retry_after) {
    if (retry_after) requested_ = std::max(requested_, milliseconds(*retry_after));
  }

  // Fails when the deadline passed or a stop was requested.
  AcmeResult<void> wait(std::string_view what) {
    auto const now = Clock::now();
    if (now >= deadline_)
      return make_error(problem::timeout, "gave up waiting for " + std::string(what));
    auto delay = std::max(delay_, requested_);
    delay = std::min(delay, std::chrono::duration_cast<milliseconds>(deadline_ - now));
    requested_ = milliseconds{0};
    delay_ = std::min(delay_ * 2, max_poll_delay);
    if (!interruptible_sleep(stop_, delay)) return make_error(problem::cancelled, "stop requested");
    return {};
  }

 private:
  std::stop_token stop_;
  Clock::time_point deadline_;
  milliseconds delay_ = first_poll_delay;
  milliseconds requested_{0};
};

std::string contact_json(std::vector<std::string> const& contact) {
  json::array list;
  for (auto const& c : contact) list.emplace_back(c);
  return json::serialize(list);
}

}  // namespace

std::optional<int> revocation_reason_code(std::string_view name) {
  if (name == "unspecified") return 0;
  if (name == "keyCompromise") return 1;
  if (name == "affiliationChanged") return 3;
  if (name == "superseded") return 4;
  if (name == "cessationOfOperation") return 5;
  return std::nullopt;
}

struct AcmeClient::Impl {
  Impl(IssuerConfig issuer_in, store::Store& store_in, ChallengeResponder& responder_in,
       AcmeClientOptions options_in)
      : issuer(std::move(issuer_in)),
        store(store_in),
        responder(responder_in),
        options(std::move(options_in)),
        transport(options.transport ? options.transport
                                    : std::shared_ptr<HttpTransport>(make_curl_transport(
                                          {issuer.ca_bundle, options.stop}))),
        session(*transport, issuer.directory_url) {}

  IssuerConfig issuer;
  store::Store& store;
  ChallengeResponder& responder;
  AcmeClientOptions options;
  std::shared_ptr<HttpTransport> transport;
  AcmeSession session;
  std::optional<store::AcmeAccount> account;
  std::string thumbprint;  // of the account key, for key authorizations

  void log(std::string const& line) const {
    if (options.log) options.log(line);
  }

  AcmeError store_error(store::StoreError const& e) const {
    return make_error(problem::store, e.message);
  }

  // --- Account (RFC 8555 section 7.3) ------------------------------------

  AcmeResult<store::AcmeAccount> ensure_account() {
    if (account) return *account;
    auto stored = store.account(issuer.directory_url);
    if (!stored) return store_error(stored.error());
    if (!*stored || (*stored)->status == "deactivated") return register_account();
    if (auto r = use_key((*stored)->key_pem, (*stored)->account_url); !r) return r.error();
    account = std::move(**stored);
    if (account->contact_json != contact_json(issuer.contact)) {
      if (auto r = update_contact(); !r) return r.error();
    }
    return *account;
  }

  AcmeResult<void> use_key(std::string const& key_pem, std::string const& kid) {
    auto key = load_private_key(key_pem);
    if (!key) return key.error();
    auto tp = jwk_thumbprint(key->get());
    if (!tp) return tp.error();
    session.set_account(std::move(*key), kid);
    thumbprint = std::move(*tp);
    return {};
  }

  AcmeResult<store::AcmeAccount> register_account() {
    account.reset();
    auto dir = session.directory();
    if (!dir) return dir.error();
    if ((*dir)->external_account_required && !issuer.eab)
      return make_error(problem::external_account_required,
                        "the ACME server requires external account binding: set eab.key_id "
                        "and eab.hmac_key for " + issuer.directory_url);
    auto key = generate_account_key(issuer.account_key_type);
    if (!key) return key.error();
    auto key_pem = private_key_pem(key->get());
    if (!key_pem) return key_pem.error();
    auto tp = jwk_thumbprint(key->get());
    if (!tp) return tp.error();

    json::object payload;
    payload["termsOfServiceAgreed"] = true;
    if (!issuer.contact.empty()) payload["contact"] = json::parse(contact_json(issuer.contact));
    if (issuer.eab) {
      auto binding = make_eab_jws(*issuer.eab, key->get(), (*dir)->new_account);
      if (!binding) return binding.error();
      payload["externalAccountBinding"] = json::parse(*binding);
    }

    session.set_account(std::move(*key), {});  // newAccount is signed with "jwk"
    auto response = session.post((*dir)->new_account, json::serialize(payload));
    if (!response) return response.error();
    auto location = response->header("Location");
    if (!location || location->empty())
      return make_error(problem::protocol, "newAccount answered without Location",
                        response->status);
    session.set_kid(*location);
    thumbprint = std::move(*tp);

    store::AcmeAccount record;
    record.directory_url = issuer.directory_url;
    record.account_url = *location;
    record.key_pem = std::move(*key_pem);
    record.contact_json = contact_json(issuer.contact);
    record.created_at = unix_now();
    if (auto r = store.put_account(record); !r) return store_error(r.error());
    log("account registered " + record.account_url +
        (issuer.eab ? " (external account binding, key id " + issuer.eab->key_id + ")" : ""));
    account = std::move(record);
    return *account;
  }

  // The server does not know our account URL: ask for the account of our
  // key (onlyReturnExisting); only when there is none, register a new one.
  AcmeResult<store::AcmeAccount> recover_account() {
    auto dir = session.directory();
    if (!dir) return dir.error();
    if (!account) return register_account();
    std::string const old_url = account->account_url;
    session.set_kid({});  // onlyReturnExisting is signed with "jwk"
    auto response = session.post((*dir)->new_account, R"({"onlyReturnExisting":true})");
    if (!response) {
      if (response.error().type == problem::account_does_not_exist) {
        log("account " + old_url + " unknown to the server; registering a new one");
        return register_account();
      }
      session.set_kid(old_url);
      return response.error();
    }
    auto location = response->header("Location");
    if (!location || location->empty())
      return make_error(problem::protocol, "newAccount answered without Location",
                        response->status);
    session.set_kid(*location);
    account->account_url = *location;
    if (auto r = store.put_account(*account); !r) return store_error(r.error());
    log("account of the stored key found with onlyReturnExisting: " + *location +
        " (was " + old_url + ")");
    return *account;
  }

  // A request signed with the account's kid; when the server says the
  // account does not exist, recovers it once and signs again.
  AcmeResult<HttpResponse> account_post(std::string const& url, std::string const& payload,
                                        std::string const& accept = "application/json") {
    auto acct = ensure_account();
    if (!acct) return acct.error();
    auto response = session.post(url, payload, accept);
    if (response || response.error().type != problem::account_does_not_exist) return response;
    if (auto r = recover_account(); !r) return r.error();
    return session.post(url, payload, accept);
  }

  AcmeResult<void> update_contact() {
    json::object payload;
    payload["contact"] = json::parse(contact_json(issuer.contact));
    auto response = account_post(account->account_url, json::serialize(payload));
    if (!response) return response.error();
    account->contact_json = contact_json(issuer.contact);
    if (auto r = store.put_account(*account); !r) return store_error(r.error());
    log("account contact updated to " + account->contact_json);
    return {};
  }

  AcmeResult<store::AcmeAccount> roll_account_key() {
    auto acct = ensure_account();
    if (!acct) return acct.error();
    auto dir = session.directory();
    if (!dir) return dir.error();
    if ((*dir)->key_change.empty())
      return make_error(problem::unsupported, "the directory offers no keyChange");
    auto old_jwk = jwk_json(session.account_key());
    if (!old_jwk) return old_jwk.error();
    auto key = generate_account_key(issuer.account_key_type);
    if (!key) return key.error();
    auto key_pem = private_key_pem(key->get());
    if (!key_pem) return key_pem.error();

    // Inner JWS: signed by the new key, carrying it as "jwk", no nonce.
    json::object inner_payload;
    inner_payload["account"] = account->account_url;
    inner_payload["oldKey"] = json::parse(*old_jwk);
    auto inner = make_jws(key->get(), {}, {}, (*dir)->key_change, json::serialize(inner_payload));
    if (!inner) return inner.error();
    auto response = account_post((*dir)->key_change, *inner);
    if (!response) return response.error();

    auto const kid = account->account_url;
    account->key_pem = std::move(*key_pem);
    if (auto r = store.put_account(*account); !r) return store_error(r.error());
    if (auto r = use_key(account->key_pem, kid); !r) return r.error();
    log("account key rolled over for " + kid);
    return *account;
  }

  AcmeResult<void> deactivate_account() {
    auto acct = ensure_account();
    if (!acct) return acct.error();
    auto response = account_post(account->account_url, R"({"status":"deactivated"})");
    if (!response) return response.error();
    account->status = "deactivated";
    if (auto r = store.put_account(*account); !r) return store_error(r.error());
    log("account " + account->account_url + " deactivated");
    account.reset();
    return {};
  }

  // --- Revocation (RFC 8555 section 7.6) ----------------------------------

  AcmeResult<void> revoke(std::string const& chain_pem, int reason) {
    auto chain = parse_pem_chain(chain_pem);
    if (!chain) return chain.error();
    auto der = certificate_der(chain->front().get());
    if (!der) return der.error();
    auto dir = session.directory();
    if (!dir) return dir.error();
    if ((*dir)->revoke_cert.empty())
      return make_error(problem::unsupported, "the directory offers no revokeCert");
    json::object payload;
    payload["certificate"] = base64url_encode(*der);
    payload["reason"] = reason;
    auto response = account_post((*dir)->revoke_cert, json::serialize(payload));
    if (!response) return response.error();
    return {};
  }

  // --- Renewal information (RFC 9773) --------------------------------------

  AcmeResult<std::optional<RenewalWindow>> renewal_info(std::string const& chain_pem) {
    auto dir = session.directory();
    if (!dir) return dir.error();
    if ((*dir)->renewal_info.empty()) return std::optional<RenewalWindow>();
    auto id = ari_cert_id(chain_pem);
    if (!id) return id.error();
    std::string url = (*dir)->renewal_info;
    if (!url.ends_with('/')) url += '/';
    auto response = session.get(url + *id);
    if (!response) return response.error();
    auto window = parse_renewal_info(*response);
    if (!window) return window.error();
    return std::optional<RenewalWindow>(std::move(*window));
  }

  // --- Order (RFC 8555 section 7.4) --------------------------------------

  AcmeResult<Order> new_order(std::vector<Identifier> const& ids, CertificateSpec const& spec,
                              std::string replaces, store::AcmeOrderRecord& progress) {
    auto dir = session.directory();
    if (!dir) return dir.error();
    json::array identifiers;
    for (auto const& id : ids)
      identifiers.push_back(json::object{{"type", to_string(id.type)}, {"value", id.value}});
    json::object payload{{"identifiers", identifiers}};
    if (!spec.profile.empty()) {
      if ((*dir)->profiles.empty()) {
        log("the directory advertises no profiles; ordering without profile " + spec.profile);
      } else if (!(*dir)->offers_profile(spec.profile)) {
        std::string offered;
        for (auto const& p : (*dir)->profiles) offered += (offered.empty() ? "" : ", ") + p.first;
        return make_error(problem::unsupported, "profile \"" + spec.profile +
                                                    "\" is not offered by " +
                                                    issuer.directory_url + " (offered: " +
                                                    offered + ")");
      } else {
        payload["profile"] = spec.profile;
        progress.profile = spec.profile;
      }
    }
    if (!replaces.empty() && !(*dir)->renewal_info.empty()) payload["replaces"] = replaces;

    auto response = account_post((*dir)->new_order, json::serialize(payload));
    if (!response && payload.contains("replaces") &&
        response.error().type == already_replaced) {
      // Another order already replaces that certificate (e.g. ours, lost in
      // a crash): order without the hint rather than not at all.
      log("server says the certificate was already replaced; ordering without \"replaces\"");
      payload.erase("replaces");
      response = account_post((*dir)->new_order, json::serialize(payload));
    }
    if (!response) return response.error();
    if (payload.contains("replaces")) progress.replaces = replaces;
    auto location = response->header("Location");
    if (!location || location->empty())
      return make_error(problem::protocol, "newOrder answered without Location",
                        response->status);
    return parse_order(response->body, *location);
  }

  AcmeResult<Order> fetch_order(std::string const& url, Poller* poller = nullptr) {
    auto response = session.post_as_get(url);
    if (!response) return response.error();
    if (poller) poller->server_asked(retry_after_of(*response));
    return parse_order(response->body, url);
  }

  AcmeResult<Authorization> fetch_authorization(std::string const& url,
                                                Poller* poller = nullptr) {
    auto response = session.post_as_get(url);
    if (!response) return response.error();
    if (poller) poller->server_asked(retry_after_of(*response));
    return parse_authorization(response->body, url);
  }

  // --- Progress rows -------------------------------------------------------
  // The order row is the resume point after a crash: a failure to write it
  // fails the attempt rather than running an order nobody could resume.

  AcmeResult<void> save_order(store::AcmeOrderRecord& progress, std::string status,
                              AcmeError const* error = nullptr) {
    progress.status = std::move(status);
    progress.error = error ? error->message() : std::string();
    progress.problem = error ? error->document : std::string();
    progress.updated_at = unix_now();
    auto id = store.put_order(progress);
    if (!id) return store_error(id.error());
    progress.id = *id;
    return {};
  }

  void save_challenge(store::AcmeOrderRecord const& progress, Authorization const& authz,
                      Challenge const* challenge, std::string error = {}) {
    if (progress.id == 0) return;
    store::AcmeChallengeRecord row;
    row.order_id = progress.id;
    row.identifier = identifier_label(authz.identifier);
    row.authorization_url = authz.url;
    row.challenge_url = challenge ? challenge->url : std::string();
    row.status = challenge ? challenge->status : authz.status;
    row.error = std::move(error);
    if (auto r = store.put_challenge(row); !r)
      log("cannot record challenge progress: " + r.error().message);
  }

  // --- Authorizations and challenges (RFC 8555 sections 7.5, 8; RFC 8737) --

  struct PendingAuthorization {
    Authorization authz;
    Challenge challenge;
  };

  AcmeResult<void> authorize(Order const& order, store::AcmeOrderRecord& progress) {
    PublishedChallenges published(responder);
    std::vector<PendingAuthorization> pending;

    for (auto const& url : order.authorizations) {
      auto authz = fetch_authorization(url);
      if (!authz) return authz.error();
      if (authz->status == "valid") {  // reused, or validated before a restart
        save_challenge(progress, *authz, nullptr);
        continue;
      }
      if (authz->status != "pending") {
        auto error = make_error(problem::protocol, "authorization for " +
                                                       authz->identifier.value + " is " +
                                                       authz->status);
        for (auto const& c : authz->challenges)
          if (c.error) error = *c.error;
        return error;
      }
      auto const it = std::find_if(authz->challenges.begin(), authz->challenges.end(),
                                   [](Challenge const& c) { return c.type == "tls-alpn-01"; });
      if (it == authz->challenges.end())
        return make_error(problem::unsupported,
                          "no tls-alpn-01 challenge offered for " + authz->identifier.value);
      if (it->token.empty() || it->url.empty())
        return make_error(problem::protocol, "tls-alpn-01 challenge lacks token or url");

      auto certificate =
          make_challenge_certificate(authz->identifier, key_authorization(it->token, thumbprint));
      if (!certificate) return certificate.error();
      published.publish(validation_server_name(authz->identifier), *certificate);
      save_challenge(progress, *authz, &*it);
      pending.push_back({*authz, *it});
    }

    // Every certificate is in place before the first challenge is answered,
    // so the server validates all identifiers of the order in parallel.
    for (auto& p : pending) {
      // A challenge answered before a restart is being (or was) validated;
      // answering again would be refused.
      if (p.challenge.status != "pending") continue;
      auto response = session.post(p.challenge.url, "{}");
      if (!response) {
        save_challenge(progress, p.authz, &p.challenge, response.error().message());
        return response.error();
      }
    }
    return wait_for_authorizations(pending, progress);
  }

  AcmeResult<void> wait_for_authorizations(std::vector<PendingAuthorization>& pending,
                                           store::AcmeOrderRecord& progress) {
    Poller poller(options.stop, options.poll_deadline);
    while (!pending.empty()) {
      if (auto r = poller.wait("authorizations"); !r) return r.error();
      for (auto it = pending.begin(); it != pending.end();) {
        auto authz = fetch_authorization(it->authz.url, &poller);
        if (!authz) return authz.error();
        auto const challenge =
            std::find_if(authz->challenges.begin(), authz->challenges.end(),
                         [&](Challenge const& c) { return c.url == it->challenge.url; });
        Challenge const* current = challenge != authz->challenges.end() ? &*challenge : nullptr;
        if (authz->status == "pending") {
          ++it;
          continue;
        }
        if (authz->status == "valid") {
          save_challenge(progress, *authz, current);
          it = pending.erase(it);
          continue;
        }
        AcmeError error = current && current->error
                              ? *current->error
                              : make_error(problem::protocol, "authorization is " + authz->status);
        error.detail = authz->identifier.value + ": " + error.detail;
        save_challenge(progress, *authz, current, error.message());
        return error;
      }
    }
    return {};
  }

  // --- Finalize and download (RFC 8555 sections 7.4, 7.4.2) --------------

  // Polls until the order leaves `waiting_status` (pending or processing).
  AcmeResult<Order> wait_for_order(Order order, std::string_view waiting_status) {
    Poller poller(options.stop, options.poll_deadline);
    while (order.status == waiting_status) {
      if (auto r = poller.wait("order " + order.url); !r) return r.error();
      auto next = fetch_order(order.url, &poller);
      if (!next) return next.error();
      order = std::move(*next);
    }
    return order;
  }

  static AcmeError order_failed(Order const& order) {
    return order.error ? *order.error : make_error(problem::protocol, "order is " + order.status);
  }

  // The chain to serve: the default one, or the first alternate whose chain
  // names `preferred` as an issuer.
  AcmeResult<std::string> download_chain(std::string const& url, std::string const& preferred) {
    auto response = session.post_as_get(url, pem_chain_type);
    if (!response) return response.error();
    if (response->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      return make_error(problem::protocol, "certificate download is not a PEM chain");
    if (preferred.empty() || chain_has_issuer(response->body, preferred))
      return std::move(response->body);
    auto const alternates = alternate_links(*response);
    for (auto const& alternate : alternates) {
      auto chain = session.post_as_get(alternate, pem_chain_type);
      if (!chain) return chain.error();
      if (chain_has_issuer(chain->body, preferred)) {
        log("using alternate chain " + alternate + " (issuer \"" + preferred + "\")");
        return std::move(chain->body);
      }
    }
    log("no chain names issuer \"" + preferred + "\" (" + std::to_string(alternates.size()) +
        " alternates); using the default chain");
    return std::move(response->body);
  }

  std::vector<Identifier> identifiers_of(CertificateSpec const& spec) const {
    std::vector<Identifier> ids;
    for (auto const& text : spec.identifiers) {
      auto id = classify_identifier(text);
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
    }
    return ids;
  }

  // The newest order row of this certificate and directory that may still
  // give a certificate, if any.
  AcmeResult<std::optional<store::AcmeOrderRecord>> open_order(CertificateSpec const& spec) {
    auto orders = store.certificate_orders(spec.name, 10);
    if (!orders) return store_error(orders.error());
    bool superseded = false;  // another issuer delivered since (fallback)
    for (auto& o : *orders) {
      if (o.directory_url != issuer.directory_url) {
        superseded = superseded || o.certificate_generation > 0;
        continue;
      }
      bool const open = o.status == "pending" || o.status == "ready" ||
                        o.status == "processing" ||
                        (o.status == "valid" && o.certificate_generation == 0);
      if (!open) return std::optional<store::AcmeOrderRecord>();  // newest is finished
      if (superseded || unix_now() - o.created_at > max_resumable_order_age) {
        if (auto r = save_order(o, "abandoned"); !r) return r.error();
        return std::optional<store::AcmeOrderRecord>();
      }
      return std::optional<store::AcmeOrderRecord>(std::move(o));
    }
    return std::optional<store::AcmeOrderRecord>();
  }

  AcmeResult<store::CertificateRecord> issue(CertificateSpec const& spec,
                                             IssueOptions const& opts) {
    auto const started = Clock::now();
    int const bad_nonces_before = session.bad_nonce_retries();
    if (spec.identifiers.empty())
      return make_error(problem::unsupported, "certificate " + spec.name + " has no identifiers");
    auto const ids = identifiers_of(spec);

    auto open = open_order(spec);
    if (!open) return open.error();
    if (*open) {
      auto progress = std::move(**open);
      log("resuming order " + progress.order_url + " (" + progress.status + ")");
      auto result = resume(spec, ids, progress, opts);
      if (result) return finished(progress, started, bad_nonces_before, std::move(*result));
      if (result.error().type != order_unusable) {
        // Left open: the next attempt resumes it again.
        auto const error = result.error();
        if (auto r = save_order(progress, progress.status, &error); !r) return r.error();
        return result.error();
      }
      log("order " + progress.order_url + " cannot be completed (" + result.error().detail +
          "); starting a new order");
      auto const error = result.error();
      if (auto r = save_order(progress, "abandoned", &error); !r) return r.error();
    }

    store::AcmeOrderRecord progress;
    progress.certificate_name = spec.name;
    progress.directory_url = issuer.directory_url;
    auto order = new_order(ids, spec, opts.replaces, progress);
    if (!order) return order.error();
    log("order " + order->url + " " + order->status +
        (progress.profile.empty() ? "" : " profile " + progress.profile) +
        (progress.replaces.empty() ? "" : " replaces " + progress.replaces));
    progress.order_url = order->url;
    progress.created_at = unix_now();
    if (auto r = save_order(progress, order->status); !r) return r.error();

    auto result = complete_order(spec, ids, std::move(*order), progress, opts);
    if (!result) {
      auto const error = result.error();
      // A passing failure leaves the order open for the next attempt to
      // resume; the server's verdict on the order closes it.
      auto const status = error.type == order_unusable ? std::string("abandoned")
                          : is_transient(error)        ? progress.status
                                                       : std::string("failed");
      if (auto r = save_order(progress, status, &error); !r) return r.error();
      return result.error();
    }
    return finished(progress, started, bad_nonces_before, std::move(*result));
  }

  store::CertificateRecord finished(store::AcmeOrderRecord const& progress,
                                    Clock::time_point started, int bad_nonces_before,
                                    store::CertificateRecord record) {
    auto const elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.3f", elapsed);
    log("order " + progress.order_url + " valid in " + seconds + " s (" +
        std::to_string(session.bad_nonce_retries() - bad_nonces_before) + " badNonce retries)");
    return record;
  }

  AcmeResult<store::CertificateRecord> resume(CertificateSpec const& spec,
                                              std::vector<Identifier> const& ids,
                                              store::AcmeOrderRecord& progress,
                                              IssueOptions const& opts) {
    auto acct = ensure_account();
    if (!acct) return acct.error();
    auto order = fetch_order(progress.order_url);
    if (!order) {
      // No HTTP answer: try again next attempt. Any HTTP error (404, not
      // ours, account replaced): the order is gone for us.
      if (order.error().type == problem::transport || order.error().type == problem::cancelled)
        return order.error();
      return make_error(order_unusable, order.error().message());
    }
    std::vector<std::string> wanted;
    for (auto const& id : ids) wanted.push_back(id.value);
    if (!order->identifiers.empty() && !same_identifier_set(order->identifiers, wanted))
      return make_error(order_unusable, "it names other identifiers than configured now");
    auto result = complete_order(spec, ids, std::move(*order), progress, opts);
    if (!result && is_server_verdict(result.error())) {
      // Typically validation that failed while we were down: the order is
      // spent, a new one follows in the same attempt.
      auto error = result.error();
      error.type = order_unusable;
      return error;
    }
    return result;
  }

  static bool is_transient(AcmeError const& e) {
    return e.type == problem::transport || e.type == problem::cancelled ||
           e.type == problem::timeout || e.type == problem::store || e.type == problem::http ||
           e.type == problem::rate_limited || e.type == problem::bad_nonce || e.status >= 500;
  }

  static bool is_server_verdict(AcmeError const& e) {
    return e.type.starts_with("urn:ietf:params:acme:error:") || e.type == problem::protocol;
  }

  AcmeResult<store::CertificateRecord> complete_order(CertificateSpec const& spec,
                                                      std::vector<Identifier> const& ids,
                                                      Order order,
                                                      store::AcmeOrderRecord& progress,
                                                      IssueOptions const& opts) {
    if (order.status == "pending") {
      if (auto r = authorize(order, progress); !r) return r.error();
      // The order turns ready once its last authorization is valid; a server
      // may take a moment to notice.
      auto next = fetch_order(order.url);
      if (!next) return next.error();
      auto ready = wait_for_order(std::move(*next), "pending");
      if (!ready) return ready.error();
      order = std::move(*ready);
    }
    if (order.status == "ready") {
      // The key is saved before finalize: a crash after the server accepted
      // the CSR must not leave a certificate whose key nobody has.
      if (progress.private_key_pem.empty()) {
        if (!opts.reuse_key_pem.empty()) {
          progress.private_key_pem = opts.reuse_key_pem;
        } else {
          auto key = generate_key(spec.key_type.value_or(options.default_key_type));
          if (!key) return key.error();
          auto key_pem = private_key_pem(key->get());
          if (!key_pem) return key_pem.error();
          progress.private_key_pem = std::move(*key_pem);
        }
      }
      if (auto r = save_order(progress, "ready"); !r) return r.error();
      auto key = load_private_key(progress.private_key_pem);
      if (!key) return key.error();
      std::vector<std::string> names;
      for (auto const& id : ids) names.push_back(id.value);
      auto csr = make_csr(key->get(), names);
      if (!csr) return csr.error();
      auto response = session.post(
          order.finalize, json::serialize(json::object{{"csr", base64url_encode(*csr)}}));
      if (!response) return response.error();
      auto finalized = parse_order(response->body, order.url);
      if (!finalized) return finalized.error();
      order = std::move(*finalized);
      if (auto r = save_order(progress, order.status); !r) return r.error();
    }
    if (order.status == "processing") {
      auto done = wait_for_order(std::move(order), "processing");
      if (!done) return done.error();
      order = std::move(*done);
    }
    if (order.status != "valid") {
      auto error = order_failed(order);
      if (order.status == "invalid" || order.status == "expired") error.type = order_unusable;
      return error;
    }
    if (progress.private_key_pem.empty())
      // Finalized by a run that did not save its key: only a new order can
      // give a certificate we can serve.
      return make_error(order_unusable, "order " + order.url + " was finalized with an unknown key");
    if (order.certificate.empty())
      return make_error(problem::protocol, "valid order without certificate URL");
    if (progress.status != "valid") {
      if (auto r = save_order(progress, "valid"); !r) return r.error();
    }

    auto chain = download_chain(order.certificate, spec.preferred_chain);
    if (!chain) return chain.error();
    auto record = store::describe_certificate(spec.name, std::move(*chain),
                                              progress.private_key_pem,
                                              store::CertificateSource::acme);
    if (!record) return make_error(problem::crypto, record.error().message);
    if (!same_identifier_set(record->identifiers, spec.identifiers))
      return make_error(problem::protocol,
                        "issued certificate names other identifiers than requested");

    // Stored already by a run that stopped before marking the order: do not
    // store it twice.
    auto current = store.current_certificate(spec.name);
    if (!current) return store_error(current.error());
    if (*current && (*current)->fingerprint_sha256 == record->fingerprint_sha256) {
      progress.certificate_generation = (*current)->generation;
      if (auto r = save_order(progress, "valid"); !r) return r.error();
      return std::move(**current);
    }
    auto generation = store.put_certificate(*record);
    if (!generation) return store_error(generation.error());
    record->generation = *generation;
    progress.certificate_generation = *generation;
    // The key lives in the certificate row now; the order row need not keep it.
    progress.private_key_pem.clear();
    if (auto r = save_order(progress, "valid"); !r)
      log("cannot record order completion: " + r.error().message());

    auto stored = store.current_certificate(spec.name);
    if (stored && *stored && (*stored)->generation == *generation) return std::move(**stored);
    return std::move(*record);
  }
};

AcmeClient::AcmeClient(IssuerConfig issuer, store::Store& store, ChallengeResponder& responder,
                       AcmeClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(issuer), store, responder, std::move(options))) {}

AcmeClient::AcmeClient(AcmeConfig const& config, store::Store& store,
                       ChallengeResponder& responder, AcmeClientOptions options)
    : impl_(nullptr) {
  options.default_key_type = config.key_type;
  impl_ = std::make_unique<Impl>(config.effective_issuers().at(0), store, responder,
                                 std::move(options));
}

AcmeClient::~AcmeClient() = default;

IssuerConfig const& AcmeClient::issuer() const { return impl_->issuer; }

AcmeResult<store::AcmeAccount> AcmeClient::ensure_account() { return impl_->ensure_account(); }

AcmeResult<store::CertificateRecord> AcmeClient::issue(CertificateSpec const& spec,
                                                       IssueOptions const& options) {
  return impl_->issue(spec, options);
}

AcmeResult<std::optional<RenewalWindow>> AcmeClient::renewal_info(std::string const& chain_pem) {
  return impl_->renewal_info(chain_pem);
}

AcmeResult<std::string> AcmeClient::cert_id(std::string const& chain_pem) {
  return ari_cert_id(chain_pem);
}

AcmeResult<void> AcmeClient::revoke(std::string const& chain_pem, int reason) {
  return impl_->revoke(chain_pem, reason);
}

AcmeResult<store::AcmeAccount> AcmeClient::roll_account_key() { return impl_->roll_account_key(); }

AcmeResult<void> AcmeClient::deactivate_account() { return impl_->deactivate_account(); }

int AcmeClient::bad_nonce_retries() const { return impl_->session.bad_nonce_retries(); }

}  // namespace edge::acme
