// edgectl: the operator's view of an edge store. Reads what edged wrote and
// queues requests for the running edged (renewal, revocation, account key
// rollover and deactivation): edged owns the ACME accounts.
#include "edgectl_live.hpp"

#include <edge/store/store.hpp>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace edge::store;
using Rows = std::vector<std::vector<std::string>>;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RFC 3339 in UTC, e.g. 2025-01-31T12:00:00Z; with millis >= 0, 2025-01-31T12:00:00.042Z.
std::string rfc3339(std::int64_t unix_seconds, int millis = -1) {
  std::time_t const t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (millis >= 0) n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis));
  return std::string(buf, n) + "Z";
}

// Whole days until expiry, rounded down: an hour past expiry is already -1.
std::int64_t days_left(std::int64_t not_after) {
  auto const diff = not_after - now_seconds();
  return diff >= 0 ? diff / 86400 : -((-diff + 86399) / 86400);
}

std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

std::string join(std::vector<std::string> const& items, char const* separator) {
  std::string out;
  for (auto const& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

// Left-aligned columns, the first row being the header.
void print_table(Rows const& rows) {
  std::vector<std::size_t> widths;
  for (auto const& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths.resize(std::max(widths.size(), row.size()));
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (auto const& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i)
      line += i + 1 < row.size() ? row[i] + std::string(widths[i] - row[i].size() + 2, ' ') : row[i];
    std::cout << line << '\n';
  }
}

std::unique_ptr<Store> open_store(std::string const& path, OpenMode mode) {
  return open_sqlite_store(path, mode).value();  // throws with a message naming the file
}

std::string time_or_dash(std::int64_t unix_seconds) {
  return unix_seconds > 0 ? rfc3339(unix_seconds) : "-";
}

std::map<std::string, RenewalState> renewal_states(Store& store) {
  std::map<std::string, RenewalState> out;
  for (auto& s : store.renewal_states().value()) out[s.name] = s;
  return out;
}

// The renewal state's fields as they appear in `certs --json` and `cert show --json`.
void add_renewal_fields(boost::json::object& out, RenewalState const* state) {
  auto const time = [](std::int64_t t) -> boost::json::value {
    if (t <= 0) return nullptr;
    return boost::json::value(rfc3339(t));
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

// What to look at next: the retry time while failing, else the renewal time.
std::string next_event(RenewalState const* state) {
  if (state == nullptr) return "-";
  if (state->status == "retrying" && state->next_attempt_at > 0) return "retry " + rfc3339(state->next_attempt_at);
  if (state->status == "issuing") return "now";
  return state->next_renewal_at > 0 ? "renew " + rfc3339(state->next_renewal_at) : "-";
}

int list_certificates(Store& store, bool json) {
  auto const certificates = store.current_certificates().value();
  std::map<std::string, HandshakeCounters> counters;
  for (auto& c : store.handshake_counters().value()) counters[c.cert_name] = c;
  auto const states = renewal_states(store);
  auto const state_of = [&](std::string const& name) -> RenewalState const* {
    auto it = states.find(name);
    return it == states.end() ? nullptr : &it->second;
  };

  if (json) {
    boost::json::array out;
    for (auto const& c : certificates) {
      auto const& n = counters[c.name];
      out.push_back(boost::json::object{
          {"name", c.name},
          {"identifiers", boost::json::array(c.identifiers.begin(), c.identifiers.end())},
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
      add_renewal_fields(out.back().as_object(), state_of(c.name));
    }
    std::cout << boost::json::serialize(out) << '\n';
    return 0;
  }
  // Configured certificates without one yet (first issuance failing) are
  // named below the table: that is when an operator most needs the state.
  auto const print_pending = [&] {
    for (auto const& [name, state] : states) {
      bool const stored = std::any_of(certificates.begin(), certificates.end(),
                                      [&](CertificateRecord const& c) { return c.name == name; });
      if (stored) continue;
      std::cout << name << ": no certificate yet, " << state.status << ", next: " << next_event(&state)
                << (state.last_error.empty() ? std::string() : ", last error: " + state.last_error) << '\n';
    }
  };
  if (certificates.empty()) {
    std::cout << "no certificates stored yet\n";
    print_pending();
    return 0;
  }
  Rows rows{{"NAME", "IDENTIFIERS", "SERIAL", "NOT AFTER", "DAYS LEFT", "SOURCE", "GEN", "OK",
             "FAILED", "STATE", "NEXT"}};
  for (auto const& c : certificates) {
    auto const& n = counters[c.name];
    auto const* state = state_of(c.name);
    rows.push_back({c.name, join(c.identifiers, ","), c.serial, rfc3339(c.not_after),
                    std::to_string(days_left(c.not_after)), to_string(c.source),
                    std::to_string(c.generation), std::to_string(n.ok),
                    std::to_string(n.failed), state ? state->status : "-", next_event(state)});
  }
  print_table(rows);
  for (auto const& c : certificates) {
    auto const* state = state_of(c.name);
    if (state && !state->last_error.empty() && state->status == "retrying")
      std::cout << c.name << ": last error: " << state->last_error << '\n';
  }
  print_pending();
  return 0;
}

// --- cert show --------------------------------------------------------------

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
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    std::unique_ptr<X509, decltype(&X509_free)> cert(raw, &X509_free);
    ChainEntry e{name_line(X509_get_subject_name(raw)), name_line(X509_get_issuer_name(raw)), 0};
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(raw), &tm) == 1) e.not_after = timegm(&tm);
    out.push_back(std::move(e));
  }
  return out;
}

int show_certificate(Store& store, std::string const& name, bool json) {
  auto const current = store.current_certificate(name).value();
  auto const state = store.renewal_state(name).value();
  if (!current && !state) {
    std::cerr << "edgectl: no certificate named '" << name << "' in the store\n";
    return 1;
  }
  auto const history = store.certificate_history(name).value();
  auto const orders = store.certificate_orders(name, 10).value();
  auto const chain = current ? chain_entries(current->chain_pem) : std::vector<ChainEntry>{};

  if (json) {
    boost::json::object out{{"name", name}};
    if (current) {
      out["identifiers"] = boost::json::array(current->identifiers.begin(), current->identifiers.end());
      out["issuer"] = current->issuer;
      out["serial"] = current->serial;
      out["fingerprint_sha256"] = current->fingerprint_sha256;
      out["not_before"] = rfc3339(current->not_before);
      out["not_after"] = rfc3339(current->not_after);
      out["days_left"] = days_left(current->not_after);
      out["source"] = to_string(current->source);
      out["generation"] = current->generation;
    }
    boost::json::array chain_json;
    for (auto const& e : chain)
      chain_json.push_back({{"subject", e.subject}, {"issuer", e.issuer}, {"not_after", time_or_dash(e.not_after)}});
    out["chain"] = std::move(chain_json);
    add_renewal_fields(out, state ? &*state : nullptr);
    boost::json::array generations;
    for (auto const& h : history)
      generations.push_back({{"generation", h.generation},
                             {"serial", h.serial},
                             {"not_before", rfc3339(h.not_before)},
                             {"not_after", rfc3339(h.not_after)},
                             {"issuer", h.issuer},
                             {"source", to_string(h.source)},
                             {"stored_at", rfc3339(h.created_at)}});
    out["history"] = std::move(generations);
    boost::json::array order_json;
    for (auto const& o : orders)
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
    std::cout << boost::json::serialize(out) << '\n';
    return 0;
  }

  Rows facts{{"name", name}};
  if (current) {
    facts.push_back({"identifiers", join(current->identifiers, ", ")});
    facts.push_back({"issuer", current->issuer});
    facts.push_back({"serial", current->serial});
    facts.push_back({"fingerprint", current->fingerprint_sha256});
    facts.push_back({"valid", rfc3339(current->not_before) + " .. " + rfc3339(current->not_after) + " (" +
                                  std::to_string(days_left(current->not_after)) + " days left)"});
    facts.push_back({"source", std::string(to_string(current->source)) + ", generation " +
                                   std::to_string(current->generation)});
  } else {
    facts.push_back({"certificate", "none stored yet"});
  }
  if (state) {
    facts.push_back({"state", state->status + (state->failures > 0
                                                   ? " (" + std::to_string(state->failures) + " failed attempts)"
                                                   : std::string())});
    facts.push_back({"next renewal", time_or_dash(state->next_renewal_at)});
    facts.push_back({"because", or_dash(state->renewal_reason)});
    facts.push_back({"last attempt", time_or_dash(state->last_attempt_at)});
    facts.push_back({"last success", time_or_dash(state->last_success_at)});
    facts.push_back({"next attempt", state->next_attempt_at > 0 ? rfc3339(state->next_attempt_at) : "when due"});
    facts.push_back({"issuer directory", or_dash(state->issuer)});
    facts.push_back({"last error", or_dash(state->last_error)});
  }
  for (auto& row : facts) row[0] += ":";
  print_table(facts);
  if (state && !state->last_problem.empty()) {
    // Verbatim, as the CA sent it: subproblems name the failing identifiers.
    std::cout << "problem document:\n" << state->last_problem << '\n';
  }
  if (!chain.empty()) {
    std::cout << "\nchain:\n";
    for (std::size_t i = 0; i < chain.size(); ++i)
      std::cout << "  " << i << ": " << chain[i].subject << "\n     issued by " << chain[i].issuer
                << ", not after " << time_or_dash(chain[i].not_after) << '\n';
  }
  if (!history.empty()) {
    std::cout << "\nhistory:\n";
    Rows rows{{"GEN", "SERIAL", "NOT BEFORE", "NOT AFTER", "SOURCE", "STORED"}};
    for (auto const& h : history)
      rows.push_back({std::to_string(h.generation), h.serial, rfc3339(h.not_before), rfc3339(h.not_after),
                      to_string(h.source), rfc3339(h.created_at)});
    print_table(rows);
  }
  if (!orders.empty()) {
    std::cout << "\norders:\n";
    Rows rows{{"CREATED", "STATUS", "GEN", "URL", "ERROR"}};
    for (auto const& o : orders)
      rows.push_back({rfc3339(o.created_at), o.status, o.certificate_generation ? std::to_string(o.certificate_generation) : "-",
                      o.order_url, or_dash(o.error)});
    print_table(rows);
  }
  return 0;
}

// --- operations carried out by edged ----------------------------------------

int run_operation(Store& store, AcmeOperation op, int wait_seconds) {
  auto const id = store.request_operation(op).value();
  std::cout << "queued " << op.kind << (op.target.empty() ? "" : " of '" + op.target + "'")
            << "; a running edged carries it out within about a second\n";
  auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  for (;;) {
    auto const current = store.operation(id).value();
    if (current && (current->status == "done" || current->status == "failed")) {
      std::cout << op.kind << " " << current->status << ": " << current->result << '\n';
      return current->status == "done" ? 0 : 1;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cerr << "edgectl: " << op.kind << " not carried out within " << wait_seconds
            << " s (is edged running? the request stays queued)\n";
  return 1;
}

int list_handshakes(Store& store, HandshakeQuery const& query, bool json) {
  auto const records = store.handshakes(query).value();
  if (json) {
    for (auto const& h : records) std::cout << h.json << '\n';
    return 0;
  }
  Rows rows{{"TIME", "OUTCOME", "ERROR", "ALERT", "CLIENT", "SNI", "VERSION", "CERT", "SERIAL"}};
  for (auto const& h : records) {
    auto const address = h.client_address.find(':') == std::string::npos
                             ? h.client_address
                             : "[" + h.client_address + "]";
    rows.push_back({rfc3339(h.timestamp_us / 1'000'000, static_cast<int>(h.timestamp_us / 1000 % 1000)),
                    h.outcome, or_dash(h.error_type), or_dash(h.alert_sent),
                    address + ":" + std::to_string(h.client_port), or_dash(h.server_name),
                    or_dash(h.protocol_version), or_dash(h.cert_name), or_dash(h.cert_serial)});
  }
  print_table(rows);
  return 0;
}

int renew(Store& store, std::string const& name, std::optional<int> wait_seconds) {
  auto const before = store.current_certificate(name).value();
  auto const generation = before ? before->generation : 0;
  store.request_renewal(name).value();
  std::cout << "queued renewal of '" << name << "' ("
            << (before ? "current generation " + std::to_string(generation)
                       : std::string("no certificate yet"))
            << "); a running edged picks it up within about a second\n";
  if (!wait_seconds) return 0;

  auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*wait_seconds);
  for (;;) {
    auto const current = store.current_certificate(name).value();
    if (current && current->generation > generation) {
      std::cout << "renewed '" << name << "': generation " << current->generation << ", serial "
                << current->serial << ", not after " << rfc3339(current->not_after) << '\n';
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::cerr << "edgectl: '" << name << "' was not renewed within " << *wait_seconds
            << " s (is edged running? the request stays queued)\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"edgectl: inspect an edge store; ask edged to renew or revoke certificates and manage its ACME accounts"};
  app.require_subcommand(1);
  std::string store_path = "./edge.db";
  app.add_option("--store", store_path, "SQLite store written by edged")
      ->envname("EDGE_STORE")
      ->capture_default_str();

  bool json = false;
  auto* certs = app.add_subcommand("certs", "current certificates with handshake counts");
  certs->add_flag("--json", json, "print a JSON array");

  HandshakeQuery query;
  std::string cert_name;
  auto* handshakes = app.add_subcommand("handshakes", "recent TLS handshakes, newest first");
  auto* cert_option = handshakes->add_option("--cert", cert_name, "only this certificate name");
  handshakes->add_flag("--failed", query.failed_only, "only failed or timed-out handshakes");
  handshakes->add_option("--limit", query.limit, "at most this many records")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  handshakes->add_flag("--json", json, "print the stored JSON records, one per line");

  std::string renew_name;
  int wait_seconds = 0;
  auto* renew_cmd = app.add_subcommand("renew", "queue a renewal for the running edged");
  renew_cmd->add_option("name", renew_name, "certificate name")->required();
  auto* wait_option = renew_cmd->add_option(
      "--wait", wait_seconds, "wait up to SECONDS for the new certificate, exit 1 on timeout");
  wait_option->check(CLI::Range(0, 86400));

  std::string show_name;
  auto* cert_cmd = app.add_subcommand("cert", "one certificate");
  cert_cmd->require_subcommand(1);
  auto* show_cmd = cert_cmd->add_subcommand("show", "identifiers, chain, renewal state and history");
  show_cmd->add_option("name", show_name, "certificate name")->required();
  show_cmd->add_flag("--json", json, "print one JSON object");

  std::string revoke_name;
  std::string revoke_reason = "unspecified";
  int operation_wait = 60;
  auto* revoke_cmd = app.add_subcommand("revoke", "revoke a certificate (edged signs with the account key)");
  revoke_cmd->add_option("name", revoke_name, "certificate name")->required();
  revoke_cmd->add_option("--reason", revoke_reason, "RFC 5280 reason")
      ->check(CLI::IsMember({"unspecified", "keyCompromise", "affiliationChanged", "superseded",
                             "cessationOfOperation"}))
      ->capture_default_str();
  revoke_cmd->add_option("--wait", operation_wait, "wait up to SECONDS for edged's answer")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();

  std::string issuer_directory;
  auto* account_cmd = app.add_subcommand("account", "the ACME accounts edged uses");
  account_cmd->require_subcommand(1);
  auto* rollover_cmd = account_cmd->add_subcommand("key-rollover", "replace the account key (keyChange)");
  auto* deactivate_cmd = account_cmd->add_subcommand("deactivate", "deactivate the account; the next order registers a new one");
  for (auto* sub : {rollover_cmd, deactivate_cmd}) {
    sub->add_option("--issuer", issuer_directory, "directory URL (default: every issuer)");
    sub->add_option("--wait", operation_wait, "wait up to SECONDS for edged's answer")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
  }

  edge::cli::OperatorCommands operator_commands(app);  // status, import, check, version, live mode (--admin)
  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (auto code = operator_commands.run(store_path)) return *code;
    if (*certs) return list_certificates(*open_store(store_path, OpenMode::read_only), json);
    if (*handshakes) {
      if (*cert_option) query.cert_name = cert_name;
      return list_handshakes(*open_store(store_path, OpenMode::read_only), query, json);
    }
    if (*cert_cmd) return show_certificate(*open_store(store_path, OpenMode::read_only), show_name, json);
    if (*revoke_cmd)
      return run_operation(*open_store(store_path, OpenMode::read_write),
                           {0, "revoke", revoke_name, revoke_reason, "pending", "", 0, 0}, operation_wait);
    if (*rollover_cmd)
      return run_operation(*open_store(store_path, OpenMode::read_write),
                           {0, "key-rollover", issuer_directory, "", "pending", "", 0, 0}, operation_wait);
    if (*deactivate_cmd)
      return run_operation(*open_store(store_path, OpenMode::read_write),
                           {0, "deactivate-account", issuer_directory, "", "pending", "", 0, 0}, operation_wait);
    return renew(*open_store(store_path, OpenMode::read_write), renew_name,
                 *wait_option ? std::optional<int>(wait_seconds) : std::nullopt);
  } catch (std::exception const& e) {
    std::cerr << "edgectl: " << e.what() << '\n';
    return 1;
  }
}
