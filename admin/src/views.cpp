#include <edge/admin/views.hpp>

#include <edge/store/certificate_pem.hpp>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <memory>

namespace edge::admin {
namespace json = boost::json;
using namespace edge::store;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rfc3339(std::int64_t unix_seconds, int millis) {
  std::time_t const t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis >= 0) n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis));
  return std::string(buf, n) + "Z";
}

std::int64_t days_left(std::int64_t not_after) {
  auto const diff = not_after - now_seconds();
  return diff >= 0 ? diff / 86400 : -((-diff + 86399) / 86400);
}

namespace {

std::string time_or_dash(std::int64_t unix_seconds) { return unix_seconds > 0 ? rfc3339(unix_seconds) : "-"; }

void add_renewal_fields(json::object& out, RenewalState const* state) {
  auto const time = [](std::int64_t t) -> json::value {
    if (t <= 0) return nullptr;
    return json::value(rfc3339(t));
  };
  if (state == nullptr) {
    out["state"] = nullptr;
    return;
  }
  out["state"] = state->status;
  out["next_renewal"] = time(state->next_renewal_at);
  out["renewal_reason"] = state->renewal_reason;
  out["failures"] = state->failures;
  out["last_attempt"] = time(state->last_attempt_at);
  out["last_success"] = time(state->last_success_at);
  out["next_attempt"] = time(state->next_attempt_at);
  out["last_error"] = state->last_error;
  out["last_problem"] = state->last_problem;
  out["issuer_directory"] = state->issuer;
}

struct ChainEntry {
  std::string subject;
  std::string issuer;
  std::int64_t not_after = 0;
};

std::string name_line(X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio.get(), &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::vector<ChainEntry> chain_entries(std::string const& pem) {
  std::vector<ChainEntry> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    std::unique_ptr<X509, decltype(&X509_free)> cert(raw, &X509_free);
    ChainEntry e{name_line(X509_get_subject_name(raw)), name_line(X509_get_issuer_name(raw)), 0};
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(raw), &tm) == 1) e.not_after = timegm(&tm);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<json::array> certificate_list(Store& store) {
  auto certificates = store.current_certificates();
  if (!certificates) return certificates.error();
  auto counters_rows = store.handshake_counters();
  if (!counters_rows) return counters_rows.error();
  auto state_rows = store.renewal_states();
  if (!state_rows) return state_rows.error();
  std::map<std::string, HandshakeCounters> counters;
  for (auto& c : *counters_rows) counters[c.cert_name] = c;
  std::map<std::string, RenewalState> states;
  for (auto& s : *state_rows) states[s.name] = s;

  json::array out;
  for (auto const& c : *certificates) {
    auto const& n = counters[c.name];
    out.push_back(json::object{
        {"name", c.name},
        {"identifiers", json::array(c.identifiers.begin(), c.identifiers.end())},
        {"serial", c.serial},
        {"fingerprint_sha256", c.fingerprint_sha256},
        {"not_before", rfc3339(c.not_before)},
        {"not_after", rfc3339(c.not_after)},
        {"days_left", days_left(c.not_after)},
        {"issuer", c.issuer},
        {"source", to_string(c.source)},
        {"generation", c.generation},
        {"handshakes", {{"ok", n.ok}, {"failed", n.failed}}},
    });
    auto it = states.find(c.name);
    add_renewal_fields(out.back().as_object(), it == states.end() ? nullptr : &it->second);
  }
  return out;
}

Result<json::array> pending_certificates(Store& store) {
  auto certificates = store.current_certificates();
  if (!certificates) return certificates.error();
  auto states = store.renewal_states();
  if (!states) return states.error();
  json::array out;
  for (auto const& state : *states) {
    bool const stored = std::any_of(certificates->begin(), certificates->end(),
                                    [&](CertificateRecord const& c) { return c.name == state.name; });
    if (stored) continue;
    auto const time = [](std::int64_t t) -> json::value { return t > 0 ? json::value(rfc3339(t)) : json::value(nullptr); };
    out.push_back(json::object{{"name", state.name},
                               {"state", state.status},
                               {"failures", state.failures},
                               {"last_attempt", time(state.last_attempt_at)},
                               {"next_attempt", time(state.next_attempt_at)},
                               {"last_error", state.last_error}});
  }
  return out;
}

Result<std::optional<json::object>> certificate_detail(Store& store, std::string const& name) {
  auto current_row = store.current_certificate(name);
  if (!current_row) return current_row.error();
  auto state_row = store.renewal_state(name);
  if (!state_row) return state_row.error();
  auto const& current = *current_row;
  auto const& state = *state_row;
  if (!current && !state) return std::optional<json::object>{};
  auto history = store.certificate_history(name);
  if (!history) return history.error();
  auto orders = store.certificate_orders(name, 10);
  if (!orders) return orders.error();
  auto const chain = current ? chain_entries(current->chain_pem) : std::vector<ChainEntry>{};

  json::object out{{"name", name}};
  if (current) {
    out["identifiers"] = json::array(current->identifiers.begin(), current->identifiers.end());
    out["issuer"] = current->issuer;
    out["serial"] = current->serial;
    out["fingerprint_sha256"] = current->fingerprint_sha256;
    out["not_before"] = rfc3339(current->not_before);
    out["not_after"] = rfc3339(current->not_after);
    out["days_left"] = days_left(current->not_after);
    out["source"] = to_string(current->source);
    out["generation"] = current->generation;
  }
  json::array chain_json;
  for (auto const& e : chain)
    chain_json.push_back({{"subject", e.subject}, {"issuer", e.issuer}, {"not_after", time_or_dash(e.not_after)}});
  out["chain"] = std::move(chain_json);
  add_renewal_fields(out, state ? &*state : nullptr);
  json::array generations;
  for (auto const& h : *history)
    generations.push_back({{"generation", h.generation},
                           {"serial", h.serial},
                           {"not_before", rfc3339(h.not_before)},
                           {"not_after", rfc3339(h.not_after)},
                           {"issuer", h.issuer},
                           {"source", to_string(h.source)},
                           {"stored_at", rfc3339(h.created_at)}});
  out["history"] = std::move(generations);
  json::array order_json;
  for (auto const& o : *orders)
    order_json.push_back({{"url", o.order_url},
                          {"directory", o.directory_url},
                          {"status", o.status},
                          {"profile", o.profile},
                          {"replaces", o.replaces},
                          {"error", o.error},
                          {"problem", o.problem},
                          {"generation", o.certificate_generation},
                          {"created_at", rfc3339(o.created_at)},
                          {"updated_at", rfc3339(o.updated_at)}});
  out["orders"] = std::move(order_json);
  return std::optional<json::object>(std::move(out));
}

boost::system::result<CertificateRecord, std::string> check_import(std::string const& name, std::string chain_pem,
                                                                    std::string private_key_pem) {
  if (name.empty() || name.size() > 128 ||
      std::any_of(name.begin(), name.end(), [](unsigned char ch) { return ch < 0x21 || ch == 0x7f; }))
    return std::string("the name must be 1..128 printable characters without blanks");
  auto record = describe_certificate(name, std::move(chain_pem), std::move(private_key_pem), CertificateSource::manual);
  if (!record) return record.error().message;
  auto const now = now_seconds();
  if (record->not_after <= now) return "the certificate expired at " + rfc3339(record->not_after);
  if (record->not_before > now) return "the certificate is not valid before " + rfc3339(record->not_before);
  return std::move(*record);
}

}  // namespace edge::admin
