#include "rpc_methods.hpp"

#include "openmetrics.hpp"
#include "system_metrics.hpp"

#include <edge/admin/views.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/handshake_log.hpp>
#include <edge/proxy/proxy_metrics.hpp>
#include <edge/proxy/tls_statistics.hpp>
#include <edge/store/certificate_pem.hpp>

#include <boost/json/parse.hpp>
#include <boost/version.hpp>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <map>
#include <set>

#ifndef EDGE_VERSION
#define EDGE_VERSION "0.0.0"
#endif

namespace edge::admin {
namespace json = boost::json;

std::string const& edge_version() {
  static std::string const version = EDGE_VERSION;
  return version;
}

namespace {

constexpr std::array<std::string_view, 3> state_changing = {"certs.renew", "certs.import", "config.reload"};
constexpr std::array<std::string_view, 12> all_methods = {
    "version",     "stats.connections", "stats.tls",    "stats.timeline",   "certs.list",    "certs.pending",
    "certs.get",   "certs.renew",       "certs.import", "handshakes.query", "config.reload", "system.describe"};

RpcError store_failure(store::StoreError const& e) { return {rpc_code::store_error, "Store error", json::value(e.message)}; }

RpcError invalid(std::string why) { return {rpc_code::invalid_params, "Invalid params", json::value(std::move(why))}; }

// Turns the parameter checks into the method's answer when one failed.
#define EDGE_CHECK_PARAMS(params)                  \
  if (auto failed = (params).finish()) return *failed


RpcResult version(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  auto const started = std::chrono::system_clock::to_time_t(c.started);
  return json::value(json::object{
      {"name", "edged"},
      {"version", edge_version()},
      {"openssl", OpenSSL_version(OPENSSL_VERSION)},
      {"boost", std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                    std::to_string(BOOST_VERSION % 100)},
      {"sqlite", sqlite3_libversion()},
      {"pid", static_cast<std::int64_t>(getpid())},
      {"started_at", rfc3339(started)},
      {"uptime_seconds", now_seconds() - started},
      {"mode", c.services.acme_mode ? "acme" : "manual"},
  });
}

// Connections by route type, counted from their handshake records.
std::array<std::uint64_t, proxy::route_type_count> connections_by_route(MethodContext const& c) {
  std::array<std::uint64_t, proxy::route_type_count> out{};
  if (!c.services.tls_statistics) return out;
  auto const s = c.services.tls_statistics->snapshot();
  for (std::size_t i = 0; i < proxy::route_type_count; ++i) {
    auto it = s.connections.find(proxy::to_string(static_cast<proxy::RouteType>(i)));
    if (it != s.connections.end()) out[i] = it->second;
  }
  return out;
}

RpcResult stats_connections(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  if (!c.services.proxy_metrics) return RpcError{rpc_code::not_supported, "Not supported", "no proxy counters"};
  auto const s = c.services.proxy_metrics->snapshot();
  auto const by_route = connections_by_route(c);
  json::object total;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < proxy::route_type_count; ++i) {
    auto const n = by_route[i];
    total[proxy::to_string(static_cast<proxy::RouteType>(i))] = n;
    sum += n;
  }
  json::object requests;
  for (unsigned status = 0; status < proxy::ProxyMetrics::max_status; ++status) {
    if (s.requests_by_status[status] > 0) requests[std::to_string(status)] = s.requests_by_status[status];
  }
  json::object errors;
  for (std::size_t i = 0; i < proxy::proxy_error_count; ++i)
    errors[proxy::to_string(static_cast<proxy::ProxyError>(i))] = s.errors[i];
  json::array workers;
  for (auto active : s.active_per_worker) workers.push_back(json::object{{"active", active}});
  return json::value(json::object{
      {"active", s.connections_active},
      {"total", sum},
      {"by_route_type", std::move(total)},
      {"requests", std::move(requests)},
      {"errors", std::move(errors)},
      {"upstream_timeouts", s.upstream_timeouts},
      {"rate_limit", {{"requests_rejected", s.rate_limit_requests_rejected},
                      {"connections_rejected", s.rate_limit_connections_rejected}}},
      {"workers", std::move(workers)},
  });
}

RpcResult stats_tls(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  if (!c.services.tls_statistics) return RpcError{rpc_code::not_supported, "Not supported", "no TLS statistics"};
  auto const s = c.services.tls_statistics->snapshot();
  json::object by_outcome, by_error_type, by_certificate;
  auto const bump = [](json::object& o, std::string const& key, std::uint64_t n) {
    auto& v = o[key];
    v = (v.is_null() ? 0 : v.to_number<std::uint64_t>()) + n;
  };
  for (auto const& [key, n] : s.handshakes) {
    bump(by_outcome, key.outcome, n);
    if (!key.error_type.empty()) bump(by_error_type, key.error_type, n);
    auto& cert = by_certificate[key.cert.empty() ? "-" : key.cert];
    if (cert.is_null()) cert = json::object{{"outcomes", json::object{}}, {"errors", json::object{}}};
    bump(cert.as_object()["outcomes"].as_object(), key.outcome, n);
    if (!key.error_type.empty()) bump(cert.as_object()["errors"].as_object(), key.error_type, n);
  }
  json::object versions, ciphers;
  for (auto const& [v, n] : s.versions) versions[v] = n;
  for (auto const& [v, n] : s.ciphers) ciphers[v] = n;
  json::array buckets;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < s.duration_buckets.size(); ++i) {
    cumulative += s.duration_buckets[i];
    json::value le = i < proxy::TlsStatistics::duration_bounds.size()
                         ? json::value(proxy::TlsStatistics::duration_bounds[i])
                         : json::value("+Inf");
    buckets.push_back(json::object{{"le", le}, {"count", cumulative}});
  }
  json::object out{
      {"total", s.total},
      {"by_outcome", std::move(by_outcome)},
      {"by_error_type", std::move(by_error_type)},
      {"by_certificate", std::move(by_certificate)},
      {"versions", std::move(versions)},
      {"ciphers", std::move(ciphers)},
      {"duration_seconds", {{"count", s.total}, {"sum", s.duration_sum_seconds}, {"buckets", std::move(buckets)}}},
      {"since", rfc3339(std::chrono::system_clock::to_time_t(c.started))},
  };
  if (auto const* log = c.services.handshake_log) {
    out["records"] = json::object{{"written", log->written()},
                                  {"dropped", log->dropped()},
                                  {"folded", log->folded()},
                                  {"store_failures", log->store_failures()},
                                  {"store_held", log->store_held()},
                                  {"store_lost", log->store_lost()}};
  }
  return json::value(std::move(out));
}

// Per-minute handshake outcomes for the status page's chart.
RpcResult stats_timeline(MethodContext& c, Params& p) {
  auto const cert = p.string("cert");
  auto const minutes = p.integer("minutes", 1, proxy::TlsStatistics::timeline_minutes);
  EDGE_CHECK_PARAMS(p);
  if (!c.services.tls_statistics) return RpcError{rpc_code::not_supported, "Not supported", "no TLS statistics"};
  auto const s = c.services.tls_statistics->snapshot();
  std::int64_t const window = minutes.value_or(proxy::TlsStatistics::timeline_minutes);
  std::int64_t const now_minute = now_seconds() / 60;
  json::array points;
  for (auto const& minute : s.timeline) {
    if (minute.minute <= now_minute - window) continue;
    for (auto const& [key, n] : minute.counts) {
      if (cert && key.cert != *cert) continue;
      points.push_back(json::object{{"minute", rfc3339(minute.minute * 60)},
                                    {"cert", key.cert},
                                    {"outcome", key.outcome},
                                    {"error_type", key.error_type},
                                    {"count", n}});
    }
  }
  return json::value(json::object{{"minutes", window},
                                  {"from", rfc3339((now_minute - window + 1) * 60)},
                                  {"to", rfc3339(now_minute * 60)},
                                  {"points", std::move(points)}});
}

RpcResult certs_list(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  auto list = certificate_list(c.store);
  if (!list) return store_failure(list.error());
  return json::value(std::move(*list));
}

RpcResult certs_pending(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  auto list = pending_certificates(c.store);
  if (!list) return store_failure(list.error());
  return json::value(std::move(*list));
}

RpcResult certs_get(MethodContext& c, Params& p) {
  auto const name = p.string("name", true);
  EDGE_CHECK_PARAMS(p);
  auto detail = certificate_detail(c.store, *name);
  if (!detail) return store_failure(detail.error());
  if (!*detail) return RpcError{rpc_code::not_found, "Not found", json::value("no certificate named \"" + *name + "\"")};
  return json::value(std::move(**detail));
}

RpcResult certs_renew(MethodContext& c, Params& p) {
  auto const name = p.string("name", true);
  EDGE_CHECK_PARAMS(p);
  auto const& names = c.services.acme_certificates;
  if (!c.services.acme_mode)
    return RpcError{rpc_code::not_supported, "Not supported",
                    "edged runs in manual mode: certificates come from files; use certs.import to replace one"};
  if (std::find(names.begin(), names.end(), *name) == names.end())
    return RpcError{rpc_code::not_found, "Not found",
                    json::value("\"" + *name + "\" is not a configured ACME certificate")};
  auto current = c.store.current_certificate(*name);
  if (!current) return store_failure(current.error());
  if (auto queued = c.store.request_renewal(*name); !queued) return store_failure(queued.error());
  return json::value(json::object{{"name", *name},
                                  {"queued", true},
                                  {"generation", *current ? (*current)->generation : 0}});
}

RpcResult certs_import(MethodContext& c, Params& p) {
  auto const name = p.string("name", true);
  auto const chain = p.string("certificate", true);
  auto const key = p.string("private_key", true);
  EDGE_CHECK_PARAMS(p);
  if (name->empty() || name->size() > 128 ||
      std::any_of(name->begin(), name->end(), [](unsigned char ch) { return ch < 0x21 || ch == 0x7f; }))
    return invalid("\"name\" must be 1..128 printable characters without blanks");
  auto const reject = [](std::string why) {
    return RpcError{rpc_code::certificate_rejected, "Certificate rejected", json::value(std::move(why))};
  };
  auto record = check_import(*name, *chain, *key);
  if (!record) return reject(record.error());
  auto generation = c.store.put_certificate(*record);
  if (!generation) return store_failure(generation.error());
  record->generation = *generation;
  if (c.services.certificates) {
    auto const errors = c.services.certificates->put(*record);
    if (!errors.empty())
      return reject("stored as generation " + std::to_string(*generation) + " but not served: " + errors.front());
  }
  if (c.services.on_imported) c.services.on_imported(*record);
  return json::value(json::object{{"name", record->name},
                                  {"generation", record->generation},
                                  {"serial", record->serial},
                                  {"fingerprint_sha256", record->fingerprint_sha256},
                                  {"identifiers", json::array(record->identifiers.begin(), record->identifiers.end())},
                                  {"not_after", rfc3339(record->not_after)},
                                  {"served", true}});
}

// "2025-01-31T12:00:00Z", or with a fraction as the records have it
// ("...:00.123456Z"); Unix microseconds on success.
std::optional<std::int64_t> parse_rfc3339_us(std::string const& text) {
  std::tm tm{};
  char const* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  std::int64_t micros = 0;
  if (*end == '.') {
    ++end;
    for (std::int64_t scale = 100000; std::isdigit(static_cast<unsigned char>(*end)); ++end, scale /= 10)
      micros += (*end - '0') * scale;
  }
  if (std::string_view(end) != "Z") return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

RpcResult handshakes_query(MethodContext& c, Params& p) {
  store::HandshakeQuery q;
  q.cert_name = p.string("cert");
  q.outcome = p.string("outcome");
  q.error_type = p.string("error.type");
  q.client_address = p.string("client");
  q.limit = static_cast<int>(p.integer("limit", 1, 10000).value_or(100));
  std::optional<std::int64_t> since_us;
  if (auto const* raw = p.raw("since"); raw && raw->is_string()) {
    since_us = parse_rfc3339_us(std::string(raw->as_string()));
    p.string("since");  // marks it read
    if (!since_us) return invalid("\"since\" must be RFC 3339 (2025-01-31T12:00:00Z) or Unix seconds");
  } else if (auto seconds = p.integer("since", 0, INT64_MAX / 1'000'000)) {
    since_us = *seconds * 1'000'000;
  }
  EDGE_CHECK_PARAMS(p);
  if (q.outcome) {
    static std::set<std::string> const outcomes = {"ok", "failed", "timeout", "acme_challenge"};
    if (!outcomes.contains(*q.outcome)) return invalid("\"outcome\" must be ok, failed, timeout or acme_challenge");
  }
  if (since_us) q.since_us = *since_us;
  auto rows = c.store.handshakes(q);
  if (!rows) return store_failure(rows.error());
  json::array out;
  for (auto const& row : *rows) {
    boost::system::error_code ec;
    auto record = json::parse(row.json, ec);
    out.push_back(ec ? json::value(json::object{{"edge.outcome", row.outcome}, {"error.type", row.error_type}})
                     : std::move(record));
  }
  return json::value(std::move(out));
}

RpcResult config_reload(MethodContext& c, Params& p) {
  EDGE_CHECK_PARAMS(p);
  if (!c.services.reload)
    return RpcError{rpc_code::not_supported, "Not supported",
                    "edged runs on built-in defaults (no --config): there is no file to reload"};
  auto const outcome = c.services.reload(c.store);
  if (!outcome.ok) return RpcError{rpc_code::config_invalid, "Configuration invalid", json::value(outcome.error)};
  return json::value(json::object{{"reloaded", true},
                                  {"applied", json::array(outcome.applied.begin(), outcome.applied.end())},
                                  {"restart_required", json::array(outcome.restart_required.begin(),
                                                                   outcome.restart_required.end())}});
}

// The methods and what each needs, as the status page and edgectl discover them.
RpcResult system_describe(MethodContext&, Params& p) {
  EDGE_CHECK_PARAMS(p);
  json::array methods;
  for (auto name : all_methods)
    methods.push_back(json::object{{"name", name}, {"requires_token", method_changes_state(name)}});
  return json::value(json::object{{"methods", std::move(methods)}});
}

}  // namespace

bool method_exists(std::string_view method) {
  return std::find(all_methods.begin(), all_methods.end(), method) != all_methods.end();
}

bool method_changes_state(std::string_view method) {
  return std::find(state_changing.begin(), state_changing.end(), method) != state_changing.end();
}

RpcResult call_method(std::string const& method, json::value const& params, MethodContext& context) {
  using Method = RpcResult (*)(MethodContext&, Params&);
  static std::map<std::string, Method, std::less<>> const table = {
      {"version", version},
      {"stats.connections", stats_connections},
      {"stats.tls", stats_tls},
      {"stats.timeline", stats_timeline},
      {"certs.list", certs_list},
      {"certs.pending", certs_pending},
      {"certs.get", certs_get},
      {"certs.renew", certs_renew},
      {"certs.import", certs_import},
      {"handshakes.query", handshakes_query},
      {"config.reload", config_reload},
      {"system.describe", system_describe},
  };
  auto it = table.find(method);
  if (it == table.end())
    return RpcError{rpc_code::method_not_found, "Method not found", json::value("no method \"" + method + "\"")};
  auto parsed = Params::from(params);
  if (!parsed) return parsed.error();
  try {
    return it->second(context, *parsed);
  } catch (std::exception const& e) {
    return RpcError{rpc_code::internal_error, "Internal error", json::value(e.what())};
  }
}

std::string render_metrics(MethodContext& c, MetricsFormat format) {
  OpenMetricsWriter out(format);
  auto const& s = c.services;
  if (s.proxy_metrics) {
    auto const m = s.proxy_metrics->snapshot();
    auto const by_route = connections_by_route(c);
    out.family("edge_connections", "counter", "Accepted connections by what they became (from their handshake records).");
    for (std::size_t i = 0; i < proxy::route_type_count; ++i)
      out.sample("_total", {{"route_type", proxy::to_string(static_cast<proxy::RouteType>(i))}}, by_route[i]);
    out.family("edge_connections_active", "gauge", "Connections open now.");
    out.sample("", {}, m.connections_active);
    out.family("edge_requests", "counter", "HTTP responses sent to clients, by status code.");
    for (unsigned status = 0; status < proxy::ProxyMetrics::max_status; ++status)
      if (m.requests_by_status[status] > 0) out.sample("_total", {{"status", std::to_string(status)}}, m.requests_by_status[status]);
    out.family("edge_errors", "counter", "Errors the proxy answered itself, by type.");
    for (std::size_t i = 0; i < proxy::proxy_error_count; ++i)
      out.sample("_total", {{"error_type", proxy::to_string(static_cast<proxy::ProxyError>(i))}}, m.errors[i]);
    out.family("edge_upstream_timeout", "counter", "Requests whose upstream timed out (answered 504).");
    out.sample("_total", {}, m.upstream_timeouts);
    out.family("edge_rate_limit_req_rejected", "counter", "Requests refused by a rate limit.");
    out.sample("_total", {}, m.rate_limit_requests_rejected);
    out.family("edge_rate_limit_conn_rejected", "counter", "Connections refused by a connection limit.");
    out.sample("_total", {}, m.rate_limit_connections_rejected);
  }
  if (s.tls_statistics) {
    auto const t = s.tls_statistics->snapshot();
    out.family("edge_tls_handshakes", "counter", "TLS handshakes by outcome, error.type and served certificate.");
    for (auto const& [key, n] : t.handshakes)
      out.sample("_total", {{"outcome", key.outcome}, {"error_type", key.error_type}, {"cert", key.cert}}, n);
    out.family("edge_tls_handshake_duration_seconds", "histogram", "Time from accept to the end of the handshake.",
               "seconds");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < t.duration_buckets.size(); ++i) {
      cumulative += t.duration_buckets[i];
      auto const le = i < proxy::TlsStatistics::duration_bounds.size()
                          ? OpenMetricsWriter::number(proxy::TlsStatistics::duration_bounds[i])
                          : std::string("+Inf");
      out.sample("_bucket", {{"le", le}}, cumulative);
    }
    out.sample("_sum", {}, t.duration_sum_seconds);
    out.sample("_count", {}, t.total);
  }
  if (auto const* log = s.handshake_log) {
    out.family("edge_handshake_records_dropped", "counter", "Handshake records dropped because the queue was full.");
    out.sample("_total", {}, log->dropped());
    out.family("edge_handshake_records_written", "counter", "Handshake records handed to the sinks.");
    out.sample("_total", {}, log->written());
    out.family("edge_handshake_store_write_failures", "counter",
               "Failed writes of handshake records to the store (each retried).");
    out.sample("_total", {}, log->store_failures());
    out.family("edge_handshake_records_held", "gauge", "Handshake records held in memory until the store takes writes.");
    out.sample("", {}, log->store_held());
    out.family("edge_handshake_records_store_lost", "counter",
               "Handshake records never stored: the store failed past the hold capacity or at shutdown.");
    out.sample("_total", {}, log->store_lost());
  }
  out.family("edge_admin_unauthorized", "counter", "Admin API requests refused with 401.");
  out.sample("_total", {}, c.unauthorized);

  // Certificates and ACME state from the store: what is served is what the store holds.
  auto certificates = c.store.current_certificates();
  out.family("edge_certificate_not_after_seconds", "gauge", "Expiry of the current certificate, Unix seconds.",
             "seconds");
  if (certificates)
    for (auto const& cert : *certificates) out.sample("", {{"cert", cert.name}}, cert.not_after);
  out.family("edge_certificate_generation", "gauge", "Generation of the current certificate (1, 2, ... per name).");
  if (certificates)
    for (auto const& cert : *certificates) out.sample("", {{"cert", cert.name}}, cert.generation);
  auto orders = c.store.order_status_counts();
  out.family("edge_acme_orders", "counter", "ACME orders by their last status (valid, invalid, failed, ...).");
  if (orders)
    for (auto const& o : *orders) out.sample("_total", {{"result", o.status}}, o.count);
  auto states = c.store.renewal_states();
  out.family("edge_acme_next_attempt_seconds", "gauge",
             "When the next ACME attempt for a certificate is due (retry or renewal), Unix seconds.", "seconds");
  if (states) {
    for (auto const& st : *states) {
      auto const next = st.status == "retrying" && st.next_attempt_at > 0 ? st.next_attempt_at : st.next_renewal_at;
      if (next > 0) out.sample("", {{"cert", st.name}}, next);
    }
  }
  out.family("edge_acme_failures", "gauge", "Consecutive failed ACME attempts per certificate.");
  if (states)
    for (auto const& st : *states) out.sample("", {{"cert", st.name}}, st.failures);

  write_system_metrics(out, SystemSource{"/", edge_version()});
  return out.finish();
}

}  // namespace edge::admin
