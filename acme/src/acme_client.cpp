// The order flow of RFC 8555 section 7 with tls-alpn-01 (RFC 8737) for DNS
// and IP (RFC 8738) identifiers:
//   account -> newOrder -> authorizations -> publish challenge certificates ->
//   answer challenges -> poll authorizations -> finalize with a CSR ->
//   poll order -> download the chain -> store it with its key.
#include <edge/acme/acme_client.hpp>

#include "acme_session.hpp"
#include "base64url.hpp"
#include "challenge_certificate.hpp"
#include "crypto.hpp"
#include "identifiers.hpp"
#include "interruptible_sleep.hpp"
#include "problem.hpp"

#include <edge/store/certificate_pem.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace edge::acme {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds first_poll_delay{50};
constexpr milliseconds max_poll_delay{1000};
constexpr char const* pem_chain_type = "application/pem-certificate-chain";

AcmeError make_error(char const* type, std::string detail, int status = 0) {
  return AcmeError{type, std::move(detail), status, std::nullopt};
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// --- Resources (RFC 8555 section 7.1) -------------------------------------

struct Challenge {
  std::string type;
  std::string url;
  std::string token;
  std::string status;
  std::optional<AcmeError> error;
};

struct Authorization {
  std::string url;
  Identifier identifier;
  std::string status;
  std::vector<Challenge> challenges;
};

struct Order {
  std::string url;
  std::string status;
  std::vector<std::string> authorizations;
  std::string finalize;
  std::string certificate;
  std::optional<AcmeError> error;
};

std::string string_member(json::object const& object, std::string_view key) {
  if (auto const* v = object.if_contains(key); v && v->is_string())
    return std::string(v->get_string());
  return {};
}

std::optional<AcmeError> error_member(json::object const& object) {
  if (auto const* e = object.if_contains("error"); e && e->is_object())
    return parse_problem_json(json::serialize(*e));
  return std::nullopt;
}

AcmeResult<json::object> parse_object(std::string_view body, std::string_view what) {
  boost::system::error_code ec;
  auto value = json::parse(body, ec);
  if (ec || !value.is_object())
    return make_error(problem::protocol, std::string(what) + " is not a JSON object");
  return std::move(value.get_object());
}

AcmeResult<Order> parse_order(std::string_view body, std::string url) {
  auto object = parse_object(body, "order");
  if (!object) return object.error();
  Order order;
  order.url = std::move(url);
  order.status = string_member(*object, "status");
  order.finalize = string_member(*object, "finalize");
  order.certificate = string_member(*object, "certificate");
  order.error = error_member(*object);
  if (auto const* list = object->if_contains("authorizations"); list && list->is_array())
    for (auto const& a : list->get_array())
      if (a.is_string()) order.authorizations.emplace_back(a.get_string());
  if (order.status.empty() || order.finalize.empty())
    return make_error(problem::protocol, "order lacks status or finalize");
  return order;
}

AcmeResult<Authorization> parse_authorization(std::string_view body, std::string url) {
  auto object = parse_object(body, "authorization");
  if (!object) return object.error();
  Authorization authz;
  authz.url = std::move(url);
  authz.status = string_member(*object, "status");
  if (auto const* id = object->if_contains("identifier"); id && id->is_object()) {
    auto const type = string_member(id->get_object(), "type");
    authz.identifier = classify_identifier(string_member(id->get_object(), "value"));
    if ((type == "ip") != (authz.identifier.type == IdentifierType::ip))
      return make_error(problem::protocol, "authorization identifier type does not match value");
  }
  if (auto const* list = object->if_contains("challenges"); list && list->is_array()) {
    for (auto const& c : list->get_array()) {
      auto const* co = c.if_object();
      if (co == nullptr) continue;
      authz.challenges.push_back({string_member(*co, "type"), string_member(*co, "url"),
                                  string_member(*co, "token"), string_member(*co, "status"),
                                  error_member(*co)});
    }
  }
  if (authz.status.empty() || authz.identifier.value.empty())
    return make_error(problem::protocol, "authorization lacks status or identifier");
  return authz;
}

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

std::optional<std::chrono::seconds> retry_after_of(HttpResponse const& response) {
  if (auto const value = response.header("Retry-After")) return parse_retry_after(*value);
  return std::nullopt;
}

}  // namespace

struct AcmeClient::Impl {
  Impl(AcmeConfig config_in, store::Store& store_in, ChallengeResponder& responder_in,
       AcmeClientOptions options_in)
      : config(std::move(config_in)),
        store(store_in),
        responder(responder_in),
        options(std::move(options_in)),
        transport(make_curl_transport({config.ca_bundle, options.stop})),
        session(*transport, config.directory_url) {}

  AcmeConfig config;
  store::Store& store;
  ChallengeResponder& responder;
  AcmeClientOptions options;
  std::unique_ptr<HttpTransport> transport;
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
    auto stored = store.account(config.directory_url);
    if (!stored) return store_error(stored.error());
    if (!*stored) return register_account();
    auto key = load_private_key((*stored)->key_pem);
    if (!key) return key.error();
    auto tp = jwk_thumbprint(key->get());
    if (!tp) return tp.error();
    session.set_account(std::move(*key), (*stored)->account_url);
    thumbprint = std::move(*tp);
    account = std::move(**stored);
    return *account;
  }

  AcmeResult<store::AcmeAccount> register_account() {
    auto dir = session.directory();
    if (!dir) return dir.error();
    if ((*dir)->external_account_required)
      return make_error(problem::unsupported,
                        "the ACME server requires external account binding");
    auto key = generate_account_key();
    if (!key) return key.error();
    auto key_pem = private_key_pem(key->get());
    if (!key_pem) return key_pem.error();
    auto tp = jwk_thumbprint(key->get());
    if (!tp) return tp.error();

    json::array contact;
    for (auto const& c : config.contact) contact.emplace_back(c);
    json::object payload;
    payload["termsOfServiceAgreed"] = true;
    if (!contact.empty()) payload["contact"] = contact;

    session.set_account(std::move(*key), {});  // newAccount is signed with "jwk"
    auto response = session.post((*dir)->new_account, json::serialize(payload));
    if (!response) {
      account.reset();
      return response.error();
    }
    auto location = response->header("Location");
    if (!location || location->empty())
      return make_error(problem::protocol, "newAccount answered without Location",
                        response->status);
    session.set_kid(*location);
    thumbprint = std::move(*tp);

    store::AcmeAccount record;
    record.directory_url = config.directory_url;
    record.account_url = *location;
    record.key_pem = std::move(*key_pem);
    record.contact_json = json::serialize(contact);
    record.created_at = unix_now();
    if (auto r = store.put_account(record); !r) return store_error(r.error());
    log("account registered " + record.account_url);
    account = std::move(record);
    return *account;
  }

  // --- Order (RFC 8555 section 7.4) --------------------------------------

  AcmeResult<Order> new_order(std::vector<Identifier> const& ids) {
    json::array identifiers;
    for (auto const& id : ids)
      identifiers.push_back(json::object{{"type", to_string(id.type)}, {"value", id.value}});
    std::string const payload = json::serialize(json::object{{"identifiers", identifiers}});

    for (int attempt = 0;; ++attempt) {
      auto acct = ensure_account();
      if (!acct) return acct.error();
      auto dir = session.directory();
      if (!dir) return dir.error();
      auto response = session.post((*dir)->new_order, payload);
      if (!response && response.error().type == problem::account_does_not_exist && attempt == 0) {
        // The server forgot us (Pebble does on restart): register afresh with a
        // new key and replace the stored account.
        log("account " + session.kid() + " unknown to the server; registering a new one");
        account.reset();
        if (auto r = register_account(); !r) return r.error();
        continue;
      }
      if (!response) return response.error();
      auto location = response->header("Location");
      if (!location || location->empty())
        return make_error(problem::protocol, "newOrder answered without Location",
                          response->status);
      return parse_order(response->body, *location);
    }
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

  // --- Progress rows (observability only: failures there are logged) -----

  void save_order(store::AcmeOrderRecord& progress, std::string status, std::string error = {}) {
    progress.status = std::move(status);
    progress.error = std::move(error);
    progress.updated_at = unix_now();
    if (auto id = store.put_order(progress))
      progress.id = *id;
    else
      log("cannot record order progress: " + id.error().message);
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
      if (authz->status == "valid") {  // reused from an earlier order
        save_challenge(progress, *authz, nullptr);
        continue;
      }
      if (authz->status != "pending")
        return make_error(problem::protocol, "authorization for " + authz->identifier.value +
                                                 " is " + authz->status);
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

    // Every certificate is in place before the first challenge is answered:
    // the server may validate at once.
    for (auto& p : pending) {
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

  AcmeResult<store::CertificateRecord> issue(CertificateSpec const& spec) {
    auto const started = Clock::now();
    if (spec.identifiers.empty())
      return make_error(problem::unsupported, "certificate " + spec.name + " has no identifiers");
    std::vector<Identifier> ids;
    for (auto const& text : spec.identifiers) {
      auto id = classify_identifier(text);
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
    }

    auto order = new_order(ids);
    if (!order) return order.error();
    log("order " + order->url + " " + order->status);

    store::AcmeOrderRecord progress;
    progress.certificate_name = spec.name;
    progress.directory_url = config.directory_url;
    progress.order_url = order->url;
    progress.created_at = unix_now();
    save_order(progress, order->status);

    auto result = complete_order(spec, ids, std::move(*order), progress);
    if (!result) {
      save_order(progress, "failed", result.error().message());
      return result.error();
    }
    auto const elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", elapsed);
    log("order " + progress.order_url + " valid in " + seconds + " s");
    return result;
  }

  AcmeResult<store::CertificateRecord> complete_order(CertificateSpec const& spec,
                                                      std::vector<Identifier> const& ids,
                                                      Order order, store::AcmeOrderRecord& progress) {
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
    if (order.status == "processing" || order.status == "valid")
      // Finalized before, with a key we no longer have: only a new order can
      // give a certificate we can serve.
      return make_error(problem::protocol, "order " + order.url + " was finalized elsewhere");
    if (order.status != "ready") return order_failed(order);
    save_order(progress, order.status);

    auto key = generate_key(config.key_type);
    if (!key) return key.error();
    auto key_pem = private_key_pem(key->get());
    if (!key_pem) return key_pem.error();
    std::vector<std::string> names;
    for (auto const& id : ids) names.push_back(id.value);
    auto csr = make_csr(key->get(), names);
    if (!csr) return csr.error();

    auto response = session.post(order.finalize,
                                 json::serialize(json::object{{"csr", base64url_encode(*csr)}}));
    if (!response) return response.error();
    auto finalized = parse_order(response->body, order.url);
    if (!finalized) return finalized.error();
    save_order(progress, finalized->status);

    auto done = wait_for_order(std::move(*finalized), "processing");
    if (!done) return done.error();
    if (done->status != "valid") return order_failed(*done);
    if (done->certificate.empty())
      return make_error(problem::protocol, "valid order without certificate URL");

    auto chain = session.post_as_get(done->certificate, pem_chain_type);
    if (!chain) return chain.error();
    if (chain->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      return make_error(problem::protocol, "certificate download is not a PEM chain");

    auto record = store::describe_certificate(spec.name, std::move(chain->body),
                                              std::move(*key_pem), store::CertificateSource::acme);
    if (!record) return make_error(problem::crypto, record.error().message);
    if (!same_identifier_set(record->identifiers, spec.identifiers))
      return make_error(problem::protocol,
                        "issued certificate names other identifiers than requested");

    auto generation = store.put_certificate(*record);
    if (!generation) return store_error(generation.error());
    record->generation = *generation;
    save_order(progress, "valid");

    auto stored = store.current_certificate(spec.name);
    if (stored && *stored && (*stored)->generation == *generation) return std::move(**stored);
    return std::move(*record);
  }
};

AcmeClient::AcmeClient(AcmeConfig config, store::Store& store, ChallengeResponder& responder,
                       AcmeClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), store, responder, std::move(options))) {}

AcmeClient::~AcmeClient() = default;

AcmeResult<store::AcmeAccount> AcmeClient::ensure_account() { return impl_->ensure_account(); }

AcmeResult<store::CertificateRecord> AcmeClient::issue(CertificateSpec const& spec) {
  return impl_->issue(spec);
}

}  // namespace edge::acme
