#include "edgectl_live.hpp"

#include "admin_client.hpp"

#include <edge/admin/views.hpp>
#include <edge/store/store.hpp>

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#ifndef EDGE_VERSION
#define EDGE_VERSION "0.0.0"
#endif

namespace edge::cli {
namespace json = boost::json;
using Rows = std::vector<std::vector<std::string>>;

namespace {

// Colour only for a person at a terminal (and never with NO_COLOR set).
bool colour() {
  static bool const on = ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
  return on;
}
std::string paint(std::string const& text, char const* code) {
  return colour() ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
}

void print_table(Rows const& rows) {
  std::vector<std::size_t> widths;
  for (auto const& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (auto const& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i)
      line += i + 1 < row.size() ? row[i] + std::string(widths[i] - row[i].size() + 2, ' ') : row[i];
    std::cout << line << '\n';
  }
}

std::string text(json::value const& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  if (v.is_int64()) return std::to_string(v.as_int64());
  if (v.is_uint64()) return std::to_string(v.as_uint64());
  return json::serialize(v);
}
std::string field(json::object const& o, std::string_view key) {
  auto const* v = o.if_contains(key);
  return v ? text(*v) : "-";
}
std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

std::int64_t parse_time(std::string const& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string next_event(json::object const& c) {
  auto const state = field(c, "state");
  if (state == "retrying" && field(c, "next_attempt") != "-") return "retry " + field(c, "next_attempt");
  if (state == "issuing") return "now";
  return field(c, "next_renewal") != "-" ? "renew " + field(c, "next_renewal") : "-";
}

// One source of answers: edged's admin API (live) or the SQLite file (offline, read-only).
class Source {
 public:
  Source(std::string const& admin_url, std::string const& token_file, std::string const& store_path)
      : store_path_(store_path) {
    if (!admin_url.empty()) client_.emplace(admin_url, read_token_file(token_file));
  }
  bool live() const { return client_.has_value(); }
  std::string where() const { return live() ? client_->url() : store_path_; }

  json::value call(std::string const& method, json::object params = {}) { return client_->call(method, std::move(params)).value(); }

  store::Store& store(store::OpenMode mode = store::OpenMode::read_only) {
    if (!store_ || mode != mode_) {
      store_ = store::open_sqlite_store(store_path_, mode).value();
      mode_ = mode;
    }
    return *store_;
  }

  json::array certificates() {
    if (live()) return call("certs.list").as_array();
    return admin::certificate_list(store()).value();
  }

  // Configured certificates without one yet (first issuance pending or failing).
  json::array pending() {
    if (live()) return call("certs.pending").as_array();
    return admin::pending_certificates(store()).value();
  }

  // Records (their JSON), newest first.
  json::array handshakes(store::HandshakeQuery const& q) {
    if (live()) {
      json::object params{{"limit", q.limit}};
      if (q.cert_name) params["cert"] = *q.cert_name;
      if (q.outcome) params["outcome"] = *q.outcome;
      if (q.error_type) params["error.type"] = *q.error_type;
      if (q.client_address) params["client"] = *q.client_address;
      if (q.since_us > 0) {
        params["since"] = admin::rfc3339(q.since_us / 1'000'000).substr(0, 19) + "." +
                          std::to_string(1'000'000 + q.since_us % 1'000'000).substr(1) + "Z";
      }
      auto records = call("handshakes.query", std::move(params)).as_array();
      if (q.failed_only) {
        json::array failed;
        for (auto& r : records) {
          auto const outcome = field(r.as_object(), "edge.outcome");
          if (outcome == "failed" || outcome == "timeout") failed.push_back(std::move(r));
        }
        return failed;
      }
      return records;
    }
    json::array out;
    for (auto const& row : store().handshakes(q).value()) {
      boost::system::error_code ec;
      auto record = json::parse(row.json, ec);
      if (!ec) out.push_back(std::move(record));
    }
    return out;
  }

 private:
  std::string store_path_;
  std::optional<AdminClient> client_;
  std::unique_ptr<store::Store> store_;
  store::OpenMode mode_ = store::OpenMode::read_only;
};

void print_certificates(json::array const& certs) {
  if (certs.empty()) {
    std::cout << "no certificates stored yet\n";
    return;
  }
  Rows rows{{"NAME", "IDENTIFIERS", "SERIAL", "NOT AFTER", "DAYS LEFT", "SOURCE", "GEN", "OK", "FAILED", "STATE", "NEXT"}};
  for (auto const& v : certs) {
    auto const& c = v.as_object();
    std::string ids;
    for (auto const& id : c.at("identifiers").as_array()) ids += (ids.empty() ? "" : ",") + text(id);
    auto const& hs = c.at("handshakes").as_object();
    rows.push_back({field(c, "name"), ids, field(c, "serial"), field(c, "not_after"), field(c, "days_left"),
                    field(c, "source"), field(c, "generation"), field(hs, "ok"), field(hs, "failed"), field(c, "state"),
                    next_event(c)});
  }
  print_table(rows);
  for (auto const& v : certs) {
    auto const& c = v.as_object();
    if (field(c, "state") == "retrying" && field(c, "last_error") != "-" && !field(c, "last_error").empty())
      std::cout << field(c, "name") << ": last error: " << field(c, "last_error") << '\n';
  }
}

std::string client_text(json::object const& r) {
  auto address = field(r, "client.address");
  if (address.find(':') != std::string::npos) address = "[" + address + "]";
  return address + ":" + field(r, "client.port");
}

std::vector<std::string> handshake_row(json::object const& r) {
  auto time = field(r, "@timestamp");
  if (time.size() > 24) time = time.substr(0, 23) + "Z";  // milliseconds are enough to read
  return {time,
          field(r, "edge.outcome"),
          r.contains("error.type") ? field(r, "error.type") : "-",
          field(r, "edge.alert.sent"),
          client_text(r),
          or_dash(field(r, "tls.client.server_name")),
          r.contains("tls.protocol.version") ? field(r, "tls.protocol.version") : "-",
          r.contains("edge.cert.name") ? field(r, "edge.cert.name") : "-",
          r.contains("edge.cert.serial") ? field(r, "edge.cert.serial") : "-"};
}

Rows handshake_header() { return {{"TIME", "OUTCOME", "ERROR", "ALERT", "CLIENT", "SNI", "VERSION", "CERT", "SERIAL"}}; }

// --- check (Nagios plugin convention) ----------------------------------------

enum Status { ok = 0, warning = 1, critical = 2, unknown = 3 };
char const* status_name(int s) {
  static char const* const names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
  return names[s];
}
std::string painted_status(int s) {
  static char const* const codes[] = {"32", "33", "31;1", "35"};
  return paint(status_name(s), codes[s]);
}

}  // namespace

OperatorCommands::OperatorCommands(CLI::App& app) : app_(app) {
  app.add_option("--admin", admin_url_,
                 "edged's admin API: http://127.0.0.1:9091 or unix:/run/edge/admin.sock (live mode); without it, "
                 "edgectl reads the store file (offline, read-only)")
      ->envname("EDGE_ADMIN");
  app.add_option("--token-file", token_file_, "file holding the admin token (edged's admin.token_file)")
      ->envname("EDGE_ADMIN_TOKEN_FILE");

  status_ = app.add_subcommand("status", "one screen: edged, connections, handshakes, certificates");
  status_->add_flag("--json", json_, "print one JSON object");

  import_ = app.add_subcommand("import", "import a PEM certificate chain and key (live: served at the next handshake)");
  import_->add_option("name", import_name_, "certificate name")->required();
  import_->add_option("--cert", import_cert_, "PEM chain, leaf first")->required()->check(CLI::ExistingFile);
  import_->add_option("--key", import_key_, "PEM private key of the leaf")->required()->check(CLI::ExistingFile);
  import_->add_flag("--json", json_, "print the result as JSON");

  check_ = app.add_subcommand(
      "check", "monitoring check (Nagios): exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN for certificates expiring "
               "within --warn/--crit days or failing renewal");
  check_->add_option("--warn", warn_days_, "WARNING when a certificate expires within DAYS")->capture_default_str();
  check_->add_option("--crit", crit_days_, "CRITICAL when a certificate expires within DAYS")->capture_default_str();
  check_->add_flag("--json", json_, "print the verdict as JSON");

  reload_ = app.add_subcommand("reload",
                               "make the running edged re-read its configuration file (needs --admin; same as "
                               "SIGHUP): exit 0 applied, 1 refused (the error names file:line:col: key)");
  reload_->add_flag("--json", json_, "print the result as JSON");

  version_ = app.add_subcommand("version", "edgectl's version, and edged's with --admin");
  version_->add_flag("--json", json_, "print JSON");

  if (auto* handshakes = app.get_subcommand("handshakes")) {
    handshakes->add_option("--outcome", outcome_, "only ok, failed, timeout or acme_challenge")
        ->check(CLI::IsMember({"ok", "failed", "timeout", "acme_challenge", "passthrough", "rejected"}));
    handshakes->add_option("--error-type", error_type_, "only this error.type, e.g. unknown_sni");
    handshakes->add_option("--client", client_, "only this client address");
    handshakes->add_option("--since", since_, "only records at or after this time (RFC 3339, e.g. 2025-01-31T12:00:00Z)");
    handshakes->add_flag("--follow,-f", follow_, "keep printing new records as they come (Ctrl-C to stop)");
    handshakes->add_flag("--summary", summary_, "counts by certificate, outcome and error.type instead of records");
  }
  // Global options (--store, --admin, --token-file) may follow the subcommand.
  for (auto* sub : app.get_subcommands({})) {
    sub->fallthrough();
    for (auto* nested : sub->get_subcommands({})) nested->fallthrough();
  }
}

std::optional<int> OperatorCommands::run(std::string const& store_path) {
  Source source(admin_url_, token_file_, store_path);
  auto* certs = app_.get_subcommand("certs");
  auto* handshakes = app_.get_subcommand("handshakes");
  auto* renew = app_.get_subcommand("renew");
  auto* cert = app_.get_subcommand("cert");
  auto const flag = [](CLI::App* sub, char const* name) { return sub->get_option(name)->count() > 0; };

  // --- version -----------------------------------------------------------------
  if (*version_) {
    json::object out{{"edgectl", EDGE_VERSION}};
    if (source.live()) out["edged"] = source.call("version");
    if (json_) {
      std::cout << json::serialize(out) << '\n';
      return 0;
    }
    std::cout << "edgectl " << EDGE_VERSION << '\n';
    if (source.live()) {
      auto const& v = out["edged"].as_object();
      std::cout << "edged " << field(v, "version") << " (" << field(v, "mode") << " mode, pid " << field(v, "pid")
                << ", up " << field(v, "uptime_seconds") << " s, " << field(v, "openssl") << ")\n";
    }
    return 0;
  }

  // --- check ----------------------------------------------------------------------
  if (*check_) {
    if (crit_days_ > warn_days_) {
      std::cerr << "edgectl: --crit (" << crit_days_ << ") must not be more than --warn (" << warn_days_ << ")\n";
      return unknown;
    }
    json::array list, pending;
    try {
      list = source.certificates();
      pending = source.pending();
    } catch (std::exception const& e) {
      std::cout << "EDGE CERTIFICATES UNKNOWN: " << e.what() << '\n';
      return unknown;
    }
    auto const now = admin::now_seconds();
    int worst = list.empty() && pending.empty() ? unknown : ok;
    std::vector<std::string> problems, details, perf;
    json::array verdicts;
    for (auto const& v : pending) {
      auto const& c = v.as_object();
      auto const name = field(c, "name");
      std::string why = "has no certificate yet (" + field(c, "state") + ", " + field(c, "failures") + " failed attempts)";
      if (!field(c, "last_error").empty() && field(c, "last_error") != "-") why += ": " + field(c, "last_error");
      worst = critical;
      problems.push_back(name + " " + why);
      details.push_back(std::string(status_name(critical)) + ": " + name + " " + why);
      verdicts.push_back({{"name", name}, {"status", status_name(critical)}, {"days_left", nullptr}, {"why", why}});
    }
    for (auto const& v : list) {
      auto const& c = v.as_object();
      auto const name = field(c, "name");
      double const days = static_cast<double>(parse_time(field(c, "not_after")) - now) / 86400.0;
      int s = ok;
      std::string why = "expires in " + std::to_string(static_cast<long long>(days)) + " days (" + field(c, "not_after") + ")";
      if (days < crit_days_) s = critical;
      else if (days < warn_days_) s = warning;
      if (days <= 0) why = "EXPIRED at " + field(c, "not_after");
      if (field(c, "state") == "retrying") {
        s = std::max<int>(s, warning);
        why += "; renewal failing (" + field(c, "failures") + " attempts): " + field(c, "last_error");
      }
      worst = std::max(worst, s);
      if (s != ok) problems.push_back(name + " " + why);
      details.push_back(std::string(status_name(s)) + ": " + name + " " + why);
      // Performance data: days left;warn;crit (plugins' "label=value;warn;crit").
      char buf[96];
      std::snprintf(buf, sizeof buf, "'%s'=%.1f;%g;%g", name.c_str(), days, warn_days_, crit_days_);
      perf.push_back(buf);
      verdicts.push_back({{"name", name}, {"status", status_name(s)}, {"days_left", days}, {"why", why}});
    }
    if (json_) {
      std::cout << json::serialize(json::object{{"status", status_name(worst)}, {"code", worst}, {"certificates", verdicts}})
                << '\n';
      return worst;
    }
    std::string summary = list.empty() ? "no certificates in " + source.where()
                          : problems.empty() ? std::to_string(list.size()) + " certificate(s) valid for more than " +
                                                   std::to_string(static_cast<int>(warn_days_)) + " days"
                                             : problems.front() + (problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more)" : "");
    std::string perf_text;
    for (auto const& p : perf) perf_text += (perf_text.empty() ? "" : " ") + p;
    std::cout << "EDGE CERTIFICATES " << painted_status(worst) << ": " << summary
              << (perf_text.empty() ? "" : " | " + perf_text) << '\n';
    for (auto const& d : details) std::cout << d << '\n';
    return worst;
  }

  // --- status ---------------------------------------------------------------------
  if (*status_) {
    auto const list = source.certificates();
    auto const pending = source.pending();
    json::object out{{"source", source.live() ? "live" : "store"},
                     {"where", source.where()},
                     {"certificates", list},
                     {"pending", pending}};
    if (source.live()) {
      out["edged"] = source.call("version");
      out["connections"] = source.call("stats.connections");
      out["tls"] = source.call("stats.tls");
    } else {
      std::int64_t ok_count = 0, failed_count = 0;
      for (auto const& c : source.store().handshake_counters().value()) {
        ok_count += c.ok;
        failed_count += c.failed;
      }
      out["handshakes"] = json::object{{"ok", ok_count}, {"failed", failed_count}};
    }
    if (json_) {
      std::cout << json::serialize(out) << '\n';
      return 0;
    }
    if (source.live()) {
      auto const& v = out["edged"].as_object();
      auto const& conn = out["connections"].as_object();
      auto const& tls = out["tls"].as_object();
      std::cout << "edged " << field(v, "version") << ", " << field(v, "mode") << " mode, pid " << field(v, "pid")
                << ", up " << field(v, "uptime_seconds") << " s (" << source.where() << ")\n";
      std::cout << "connections: " << field(conn, "active") << " open, " << field(conn, "total") << " since start\n";
      std::cout << "handshakes since start: " << field(tls, "total");
      for (auto const& [outcome, n] : tls.at("by_outcome").as_object()) std::cout << ", " << outcome << " " << text(n);
      std::cout << '\n';
      auto const& errors = tls.at("by_error_type").as_object();
      if (!errors.empty()) {
        std::vector<std::pair<std::uint64_t, std::string>> top;
        for (auto const& [type, n] : errors) top.emplace_back(n.to_number<std::uint64_t>(), std::string(type));
        std::sort(top.rbegin(), top.rend());
        std::cout << "top failures:";
        for (std::size_t i = 0; i < std::min<std::size_t>(5, top.size()); ++i)
          std::cout << (i ? ", " : " ") << top[i].second << " " << top[i].first;
        std::cout << '\n';
      }
    } else {
      auto const& hs = out["handshakes"].as_object();
      std::cout << "store " << source.where() << " (offline; --admin for the running edged's live counters)\n";
      std::cout << "handshakes recorded: ok " << field(hs, "ok") << ", failed " << field(hs, "failed") << '\n';
    }
    std::cout << '\n';
    Rows rows{{"CERTIFICATE", "DAYS LEFT", "NOT AFTER", "STATE", "NEXT", "LAST ERROR"}};
    for (auto const& c : list) {
      auto const& o = c.as_object();
      auto const days = o.at("days_left").to_number<std::int64_t>();
      auto days_text = std::to_string(days);
      days_text = days < 7 ? paint(days_text, "31;1") : days < 21 ? paint(days_text, "33") : days_text;
      rows.push_back({field(o, "name"), days_text, field(o, "not_after"), field(o, "state"), next_event(o),
                      or_dash(o.contains("last_error") ? field(o, "last_error") : "")});
    }
    for (auto const& p : pending) {
      auto const& o = p.as_object();
      rows.push_back({field(o, "name"), paint("none", "31;1"), "-", field(o, "state"),
                      field(o, "next_attempt") != "-" ? "retry " + field(o, "next_attempt") : "-",
                      or_dash(field(o, "last_error"))});
    }
    if (rows.size() == 1) std::cout << "no certificates stored yet\n";
    else print_table(rows);
    return 0;
  }

  // --- reload ---------------------------------------------------------------------
  if (*reload_) {
    if (!source.live()) {
      std::cerr << "edgectl: reload needs the running edged's admin API (--admin URL or EDGE_ADMIN)\n";
      return 1;
    }
    json::value result;
    try {
      result = source.call("config.reload");
    } catch (std::exception const& e) {
      std::cerr << "edgectl: reload refused, edged keeps its running configuration: " << e.what() << '\n';
      return 1;
    }
    if (json_) {
      std::cout << json::serialize(result) << '\n';
      return 0;
    }
    auto const& o = result.as_object();
    std::cout << "reloaded\n";
    for (auto const& a : o.at("applied").as_array()) std::cout << "  applied: " << text(a) << '\n';
    for (auto const& r : o.at("restart_required").as_array()) std::cout << "  needs a restart: " << text(r) << '\n';
    return 0;
  }

  // --- import ---------------------------------------------------------------------
  if (*import_) {
    auto const read = [](std::string const& path) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      return s.str();
    };
    auto chain = read(import_cert_);
    auto key = read(import_key_);
    json::object result;
    if (source.live()) {
      result = source.call("certs.import", {{"name", import_name_}, {"certificate", chain}, {"private_key", key}}).as_object();
    } else {
      auto record = admin::check_import(import_name_, std::move(chain), std::move(key));
      if (!record) {
        std::cerr << "edgectl: " << import_cert_ << ": " << record.error() << '\n';
        return 1;
      }
      auto const generation = source.store(store::OpenMode::read_write).put_certificate(*record).value();
      result = {{"name", import_name_}, {"generation", generation}, {"serial", record->serial},
                {"fingerprint_sha256", record->fingerprint_sha256},
                {"identifiers", json::array(record->identifiers.begin(), record->identifiers.end())},
                {"not_after", admin::rfc3339(record->not_after)}, {"served", false}};
    }
    if (json_) {
      std::cout << json::serialize(result) << '\n';
      return 0;
    }
    std::cout << "imported '" << field(result, "name") << "': generation " << field(result, "generation") << ", serial "
              << field(result, "serial") << ", not after " << field(result, "not_after") << '\n';
    std::cout << (source.live() ? "edged serves it from the next handshake\n"
                                : "stored; a running edged serves it after a restart (use --admin to import into "
                                  "a running edged)\n");
    return 0;
  }

  // --- handshakes -------------------------------------------------------------------
  bool const extended = follow_ || summary_ || !outcome_.empty() || !error_type_.empty() || !client_.empty() ||
                        !since_.empty();
  if (handshakes && *handshakes && (source.live() || extended)) {
    bool const as_json = flag(handshakes, "--json");
    if (summary_) {
      json::array rows_json;
      if (source.live()) {
        auto const tls = source.call("stats.tls");
        for (auto const& [cert_name, entry] : tls.at("by_certificate").as_object()) {
          for (auto const& [outcome, n] : entry.at("outcomes").as_object()) {
            if (outcome == "ok" || outcome == "acme_challenge")
              rows_json.push_back({{"cert", cert_name == "-" ? "" : std::string(cert_name)}, {"outcome", outcome},
                                   {"error_type", ""}, {"count", n}});
          }
          for (auto const& [type, n] : entry.at("errors").as_object())
            rows_json.push_back({{"cert", cert_name == "-" ? "" : std::string(cert_name)}, {"outcome", "failed"},
                                 {"error_type", type}, {"count", n}});
        }
      } else {
        for (auto const& r : source.store().handshake_summary().value())
          rows_json.push_back({{"cert", r.cert_name}, {"outcome", r.outcome}, {"error_type", r.error_type}, {"count", r.count}});
      }
      if (as_json) {
        std::cout << json::serialize(rows_json) << '\n';
        return 0;
      }
      Rows rows{{"CERT", "OUTCOME", "ERROR", "COUNT"}};
      for (auto const& v : rows_json) {
        auto const& o = v.as_object();
        rows.push_back({or_dash(field(o, "cert")), field(o, "outcome"), or_dash(field(o, "error_type")), field(o, "count")});
      }
      print_table(rows);
      if (source.live()) std::cout << "(counted since edged started; without --admin: since the store was created)\n";
      return 0;
    }
    store::HandshakeQuery q;
    if (flag(handshakes, "--cert")) q.cert_name = handshakes->get_option("--cert")->as<std::string>();
    q.failed_only = flag(handshakes, "--failed");
    q.limit = handshakes->get_option("--limit")->as<int>();
    if (!outcome_.empty()) q.outcome = outcome_;
    if (!error_type_.empty()) q.error_type = error_type_;
    if (!client_.empty()) q.client_address = client_;
    if (!since_.empty()) {
      auto const t = parse_time(since_);
      if (t == 0) {
        std::cerr << "edgectl: --since " << since_ << ": expected RFC 3339 UTC, e.g. 2025-01-31T12:00:00Z\n";
        return 2;
      }
      q.since_us = t * 1'000'000;
    }
    auto records = source.handshakes(q);
    auto const print_records = [&](json::array const& newest_first, bool header) {
      Rows rows = header ? handshake_header() : Rows{};
      for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
        if (as_json) std::cout << json::serialize(*it) << '\n';
        else rows.push_back(handshake_row(it->as_object()));
      }
      if (!as_json && !rows.empty()) print_table(rows);
      std::cout.flush();
    };
    if (!follow_) {
      // Newest first, as edgectl handshakes always printed them.
      if (as_json) {
        for (auto const& r : records) std::cout << json::serialize(r) << '\n';
      } else {
        Rows rows = handshake_header();
        for (auto const& r : records) rows.push_back(handshake_row(r.as_object()));
        print_table(rows);
      }
      return 0;
    }
    // --follow: oldest first, then whatever arrives (polled once a second;
    // records reach the store within about 100 ms of the handshake).
    print_records(records, true);
    std::string last_time;
    std::set<std::string> seen_at_last;
    auto const remember = [&](json::array const& newest_first) {
      for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
        auto const& r = it->as_object();
        auto const t = field(r, "@timestamp");
        if (t > last_time) {
          last_time = t;
          seen_at_last.clear();
        }
        if (t == last_time) seen_at_last.insert(field(r, "edge.connection.id"));
      }
    };
    remember(records);
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      auto next = q;
      next.limit = 10000;
      if (!last_time.empty()) {
        auto const seconds = parse_time(last_time);
        auto const dot = last_time.find('.');
        std::int64_t micros = 0;
        if (dot != std::string::npos) micros = std::stoll((last_time.substr(dot + 1, 6) + "000000").substr(0, 6));
        next.since_us = seconds * 1'000'000 + micros;
      }
      json::array fresh;
      for (auto& r : source.handshakes(next)) {
        auto const& o = r.as_object();
        auto const t = field(o, "@timestamp");
        if (t < last_time || (t == last_time && seen_at_last.contains(field(o, "edge.connection.id")))) continue;
        fresh.push_back(std::move(r));
      }
      if (fresh.empty()) continue;
      print_records(fresh, false);
      remember(fresh);
    }
  }

  if (!source.live()) return std::nullopt;  // the store commands of edgectl_main.cpp

  // --- live versions of the store commands ------------------------------------------
  if (certs && *certs) {
    auto const list = source.certificates();
    if (flag(certs, "--json")) std::cout << json::serialize(list) << '\n';
    else print_certificates(list);
    return 0;
  }
  if (cert && *cert) {
    auto* show = cert->get_subcommand("show");
    auto const name = show->get_option("name")->as<std::string>();
    auto const detail = source.call("certs.get", {{"name", name}}).as_object();
    if (flag(show, "--json")) {
      std::cout << json::serialize(detail) << '\n';
      return 0;
    }
    Rows facts;
    for (auto const* key : {"name", "identifiers", "issuer", "serial", "fingerprint_sha256", "not_before", "not_after",
                            "days_left", "source", "generation", "state", "next_renewal", "renewal_reason", "last_attempt",
                            "last_success", "next_attempt", "last_error"}) {
      if (auto const* v = detail.if_contains(key)) {
        std::string value = text(*v);
        if (v->is_array()) {
          value.clear();
          for (auto const& id : v->as_array()) value += (value.empty() ? "" : ", ") + text(id);
        }
        facts.push_back({std::string(key) + ":", or_dash(value)});
      }
    }
    print_table(facts);
    if (auto const* chain = detail.if_contains("chain"); chain && !chain->as_array().empty()) {
      std::cout << "\nchain:\n";
      std::size_t i = 0;
      for (auto const& e : chain->as_array())
        std::cout << "  " << i++ << ": " << field(e.as_object(), "subject") << "\n     issued by "
                  << field(e.as_object(), "issuer") << ", not after " << field(e.as_object(), "not_after") << '\n';
    }
    return 0;
  }
  if (renew && *renew) {
    auto const name = renew->get_option("name")->as<std::string>();
    auto const queued = source.call("certs.renew", {{"name", name}}).as_object();
    auto const generation = queued.at("generation").to_number<std::int64_t>();
    std::cout << "queued renewal of '" << name << "' (current generation " << generation
              << "); edged renews it within about a second\n";
    if (!flag(renew, "--wait")) return 0;
    auto const wait = renew->get_option("--wait")->as<int>();
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait);
    for (;;) {
      auto const now = source.call("certs.get", {{"name", name}}).as_object();
      if (now.contains("generation") && now.at("generation").to_number<std::int64_t>() > generation) {
        std::cout << "renewed '" << name << "': generation " << field(now, "generation") << ", serial "
                  << field(now, "serial") << ", not after " << field(now, "not_after") << '\n';
        return 0;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::cerr << "edgectl: '" << name << "' was not renewed within " << wait
              << " s (edgectl cert show " << name << " says why)\n";
    return 1;
  }
  return std::nullopt;  // revoke and account requests go through the store
}

}  // namespace edge::cli
