// edgectl: the operator's view of an edge store. Reads what edged wrote and
// queues renewal requests for edged's renewal thread.
#include <edge/store/store.hpp>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

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

int list_certificates(Store& store, bool json) {
  auto const certificates = store.current_certificates().value();
  std::map<std::string, HandshakeCounters> counters;
  for (auto& c : store.handshake_counters().value()) counters[c.cert_name] = c;

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
    }
    std::cout << boost::json::serialize(out) << '\n';
    return 0;
  }
  if (certificates.empty()) {
    std::cout << "no certificates stored yet\n";
    return 0;
  }
  Rows rows{{"NAME", "IDENTIFIERS", "SERIAL", "NOT AFTER", "DAYS LEFT", "SOURCE", "GEN", "OK",
             "FAILED"}};
  for (auto const& c : certificates) {
    auto const& n = counters[c.name];
    rows.push_back({c.name, join(c.identifiers, ","), c.serial, rfc3339(c.not_after),
                    std::to_string(days_left(c.not_after)), to_string(c.source),
                    std::to_string(c.generation), std::to_string(n.ok),
                    std::to_string(n.failed)});
  }
  print_table(rows);
  return 0;
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
  CLI::App app{"edgectl: inspect an edge store and ask edged to renew certificates"};
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

  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (*certs) return list_certificates(*open_store(store_path, OpenMode::read_only), json);
    if (*handshakes) {
      if (*cert_option) query.cert_name = cert_name;
      return list_handshakes(*open_store(store_path, OpenMode::read_only), query, json);
    }
    return renew(*open_store(store_path, OpenMode::read_write), renew_name,
                 *wait_option ? std::optional<int>(wait_seconds) : std::nullopt);
  } catch (std::exception const& e) {
    std::cerr << "edgectl: " << e.what() << '\n';
    return 1;
  }
}
