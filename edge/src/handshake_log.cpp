#include <edge/proxy/handshake_log.hpp>
#include <edge/store/store.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <unordered_map>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace edge::proxy {

char const* to_string(HandshakeOutcome outcome) noexcept {
  switch (outcome) {
    case HandshakeOutcome::ok: return "ok";
    case HandshakeOutcome::failed: return "failed";
    case HandshakeOutcome::timeout: return "timeout";
    case HandshakeOutcome::acme_challenge: return "acme_challenge";
    case HandshakeOutcome::passthrough: return "passthrough";
    case HandshakeOutcome::rejected: return "rejected";
  }
  return "failed";
}

namespace {

std::string rfc3339(std::int64_t unix_seconds, int micros = -1) {
  std::time_t const t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (micros >= 0) n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%06d", micros));
  buf[n++] = 'Z';
  return std::string(buf, n);
}

store::HandshakeRecord to_store_record(HandshakeEvent const& e, std::string json) {
  store::HandshakeRecord r;
  r.timestamp_us = e.timestamp_us;
  r.outcome = to_string(e.outcome);
  r.error_type = e.error_type;
  r.alert_sent = e.alert_sent;
  r.client_address = e.client_address;
  r.client_port = e.client_port;
  r.server_port = e.server_port;
  r.server_name = e.server_name;
  r.protocol_version = e.protocol_version;
  r.cipher = e.cipher;
  r.cert_name = e.cert_name;
  r.cert_serial = e.cert_serial;
  r.cert_sha256 = e.cert_sha256;
  r.cert_generation = e.cert_generation;
  r.duration_us = e.duration_us;
  r.json = std::move(json);
  return r;
}

}  // namespace

std::string to_json(HandshakeEvent const& e) {
  namespace json = boost::json;
  // One record is a few hundred bytes: build it in a stack buffer, no malloc per field.
  unsigned char buffer[8192];
  json::monotonic_resource arena(buffer, sizeof buffer);
  json::object o{json::storage_ptr(&arena)};
  o.reserve(40);
  o["@timestamp"] = rfc3339(e.timestamp_us / 1000000, static_cast<int>(e.timestamp_us % 1000000));
  o["edge.outcome"] = to_string(e.outcome);
  if (!e.error_type.empty()) o["error.type"] = e.error_type;
  o["edge.alert.sent"] = e.alert_sent;
  if (!e.alert_received.empty()) o["edge.alert.received"] = e.alert_received;
  o["client.address"] = e.client_address;
  if (!e.peer_address.empty()) o["network.peer.address"] = e.peer_address;
  o["client.port"] = e.client_port;
  o["server.address"] = e.server_address;
  o["server.port"] = e.server_port;
  o["edge.listener"] = e.listener;
  o["edge.connection.id"] = e.connection_id;
  o["tls.client.server_name"] = e.server_name;
  if (!e.offered_versions.empty()) o["tls.client.supported_versions"] = e.offered_versions;
  if (!e.offered_alpn.empty()) o["tls.client.supported_protocols"] = e.offered_alpn;
  if (!e.client_subject.empty()) {
    o["tls.client.subject"] = e.client_subject;
    o["tls.client.issuer"] = e.client_issuer;
    o["tls.client.serial"] = e.client_serial;
    o["tls.client.not_after"] = rfc3339(e.client_not_after);
    o["tls.client.hash.sha256"] = e.client_sha256;
  }
  o["tls.established"] = e.established;
  if (e.established) {
    o["tls.protocol.name"] = "tls";
    o["tls.protocol.version"] = e.protocol_version;
    o["tls.cipher"] = e.cipher;
    o["tls.curve"] = e.curve;
    o["tls.next_protocol"] = e.next_protocol;
    o["tls.resumed"] = e.resumed;
  }
  if (!e.cert_name.empty()) {
    o["edge.cert.name"] = e.cert_name;
    o["edge.cert.serial"] = e.cert_serial;
    o["edge.cert.generation"] = e.cert_generation;
    o["tls.server.hash.sha256"] = e.cert_sha256;
    o["tls.server.not_after"] = rfc3339(e.cert_not_after);
  }
  o["edge.handshake.duration_us"] = e.duration_us;
  if (!e.upstream.empty()) o["edge.upstream"] = e.upstream;
  if (e.bytes_in >= 0) o["edge.bytes.in"] = e.bytes_in;
  if (e.bytes_out >= 0) o["edge.bytes.out"] = e.bytes_out;
  if (e.count > 1) o["count"] = e.count;
  return json::serialize(o);
}

struct HandshakeLog::Sinks {
  std::FILE* file = nullptr;
  bool owns_file = false;
  std::unique_ptr<store::Store> store;
  std::mt19937_64 random{std::random_device{}()};
  // Flood damping: the first failure of a kind is written at once; identical
  // ones from the same client within the window are counted and written as
  // one record with `count` when the window closes.
  struct Damped {
    HandshakeEvent latest;
    std::int64_t folded = 0;
    std::chrono::steady_clock::time_point window_end;
  };
  std::unordered_map<std::string, Damped> damped;
  std::vector<HandshakeEvent> ready;  // records to write in this round
  std::chrono::steady_clock::time_point next_prune{};
  bool pruned_once = false;
  std::uint64_t dropped_reported = 0;
  // Rows the store refused (disk full, read-only, locked): kept and written
  // with the next batch once the store takes writes again, oldest first.
  std::deque<store::HandshakeRecord> held;
  bool store_failing = false;
  std::chrono::steady_clock::time_point next_store_retry{};
  ~Sinks() {
    if (file && owns_file) std::fclose(file);
  }
};

HandshakeLog::HandshakeLog(HandshakeLogOptions options) : options_(std::move(options)) {}

HandshakeLog::~HandshakeLog() { stop(); }

void HandshakeLog::open_file() {
  if (options_.file.empty()) return;
  if (options_.file == "-") {
    sinks_->file = stdout;
    return;
  }
  std::FILE* file = std::fopen(options_.file.c_str(), "a");
  if (!file) throw std::runtime_error("handshake_log.file: cannot open " + options_.file + ": " + std::strerror(errno));
  if (sinks_->file && sinks_->owns_file) std::fclose(sinks_->file);
  sinks_->file = file;
  sinks_->owns_file = true;
}

void HandshakeLog::start() {
  sinks_ = std::make_unique<Sinks>();
  open_file();
  if (!options_.store_path.empty()) {
    auto opened = store::open_sqlite_store(options_.store_path);
    if (!opened) throw std::runtime_error(opened.error().message);
    sinks_->store = std::move(*opened);
  }
  queue_.reserve(1024);
  writer_ = std::thread([this] { run(); });
}

void HandshakeLog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
}

void HandshakeLog::reopen() noexcept {
  reopen_requested_.store(true);
  wake_.notify_one();
}

void HandshakeLog::submit(HandshakeEvent&& event) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(event));
    // The writer drains on its own every batch_interval; waking it for every
    // record would cost a context switch per handshake.
    wake = queue_.size() == batch_size;
  }
  if (wake) wake_.notify_one();
}

namespace {

bool is_failure(HandshakeEvent const& e) {
  return e.outcome == HandshakeOutcome::failed || e.outcome == HandshakeOutcome::timeout;
}

std::string damping_key(HandshakeEvent const& e) {
  std::string key = e.client_address;
  for (auto const* part : {&e.error_type, &e.server_name, &e.cert_name, &e.listener}) {
    key += '\0';
    key += *part;
  }
  return key;
}

}  // namespace

void HandshakeLog::flush_damped(bool everything) {
  auto const now = std::chrono::steady_clock::now();
  for (auto it = sinks_->damped.begin(); it != sinks_->damped.end();) {
    if (!everything && now < it->second.window_end) {
      ++it;
      continue;
    }
    if (it->second.folded > 0) {
      it->second.latest.count = it->second.folded;
      sinks_->ready.push_back(std::move(it->second.latest));
    }
    it = sinks_->damped.erase(it);
  }
}

void HandshakeLog::rotate_if_needed() {
  if (options_.max_file_bytes == 0 || !sinks_->owns_file) return;
  long const size = std::ftell(sinks_->file);
  if (size < 0 || static_cast<std::uint64_t>(size) < options_.max_file_bytes) return;
  std::fclose(sinks_->file);
  sinks_->file = nullptr;
  std::error_code ignored;
  auto const base = options_.file;
  std::filesystem::remove(base + "." + std::to_string(options_.max_files), ignored);
  for (unsigned i = options_.max_files; i > 1; --i) {
    std::filesystem::rename(base + "." + std::to_string(i - 1), base + "." + std::to_string(i), ignored);
  }
  std::filesystem::rename(base, base + ".1", ignored);
  open_file();
}

void HandshakeLog::write_rows(std::vector<store::HandshakeRecord>& rows, bool final) {
  auto& held = sinks_->held;
  auto const now = std::chrono::steady_clock::now();
  if (!held.empty()) {
    rows.insert(rows.begin(), std::make_move_iterator(held.begin()), std::make_move_iterator(held.end()));
    held.clear();
  }
  // While the store fails, one attempt a second: each may wait out SQLite's
  // busy timeout, and the records are safe in memory meanwhile.
  bool const attempt = !sinks_->store_failing || final || now >= sinks_->next_store_retry;
  std::string why;
  if (attempt) {
    auto written = sinks_->store->append_handshakes(rows);
    if (written) {
      if (sinks_->store_failing) {
        std::fprintf(stderr, "edged: handshake log: store takes writes again; %zu held records written\n",
                     rows.size());
        sinks_->store_failing = false;
      }
      store_held_.store(0, std::memory_order_relaxed);
      return;
    }
    why = written.error().message;
    store_failures_.fetch_add(1, std::memory_order_relaxed);
    sinks_->next_store_retry = now + std::chrono::seconds(1);
    if (!sinks_->store_failing) {
      std::fprintf(stderr, "edged: handshake log: store refused %zu records, holding them for a retry: %s\n",
                   rows.size(), why.c_str());
      sinks_->store_failing = true;
    }
  }
  // Bounded: past the cap the oldest rows are given up (and counted), so a
  // store that never recovers cannot exhaust memory; at stop nothing is left
  // to retry with.
  std::size_t const cap = final ? 0 : options_.store_hold_capacity;
  std::size_t const excess = rows.size() > cap ? rows.size() - cap : 0;
  if (excess > 0) {
    store_lost_.fetch_add(excess, std::memory_order_relaxed);
    std::fprintf(stderr, "edged: handshake log: store still failing, %zu records not stored%s\n", excess,
                 why.empty() ? "" : (": " + why).c_str());
  }
  held.assign(std::make_move_iterator(rows.begin() + static_cast<std::ptrdiff_t>(excess)),
              std::make_move_iterator(rows.end()));
  store_held_.store(held.size(), std::memory_order_relaxed);
}

void HandshakeLog::write_batch(std::vector<HandshakeEvent>& batch, bool final) {
  auto const now = std::chrono::steady_clock::now();
  std::bernoulli_distribution keep_success(std::clamp(options_.sample_success, 0.0, 1.0));
  std::vector<store::HandshakeRecord> rows;
  std::string lines;
  if (observer_) {
    for (auto const& event : batch) observer_->observe(event);
  }
  auto emit = [&](HandshakeEvent const& event, bool keep) {
    // JSON only for a sink that keeps it: with no file and no store (the
    // log-off row of bench/run.sh) a record costs the counters only.
    std::string json = keep && (sinks_->file || sinks_->store) ? to_json(event) : std::string();
    if (keep && sinks_->file) {
      lines += json;
      lines += '\n';
    }
    if (sinks_->store) {
      auto row = to_store_record(event, keep ? std::move(json) : std::string());
      row.count = event.count;
      row.keep_row = keep;
      rows.push_back(std::move(row));
    }
  };
  for (auto& event : batch) {
    if (options_.damping_window.count() > 0 && is_failure(event)) {
      auto [it, first] = sinks_->damped.try_emplace(damping_key(event));
      if (!first) {
        ++it->second.folded;
        it->second.latest = std::move(event);
        folded_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      it->second.window_end = now + options_.damping_window;
    }
    bool const keep = event.outcome != HandshakeOutcome::ok || options_.sample_success >= 1.0 ||
                      keep_success(sinks_->random);
    emit(event, keep);
  }
  flush_damped(final);
  for (auto const& event : sinks_->ready) emit(event, true);
  sinks_->ready.clear();

  if (sinks_->file && !lines.empty()) {
    std::fwrite(lines.data(), 1, lines.size(), sinks_->file);
    std::fflush(sinks_->file);
    rotate_if_needed();
  }
  if (sinks_->store && (!rows.empty() || !sinks_->held.empty())) write_rows(rows, final);
  if (sinks_->store && (options_.retention_age.count() > 0 || options_.retention_rows > 0) &&
      now >= sinks_->next_prune && (sinks_->pruned_once || !rows.empty())) {
    // The first prune follows the first write, not an empty first batch: a
    // restart with a new limit then shows its effect on a store that holds the
    // newest rows (and the test of it cannot race the writer).
    sinks_->pruned_once = true;
    sinks_->next_prune = now + std::chrono::seconds(60);
    std::int64_t const cutoff =
        options_.retention_age.count() > 0
            ? std::chrono::duration_cast<std::chrono::microseconds>(
                  (std::chrono::system_clock::now() - options_.retention_age).time_since_epoch())
                  .count()
            : 0;
    if (auto pruned = sinks_->store->prune_handshakes(cutoff, options_.retention_rows); !pruned) {
      std::fprintf(stderr, "edged: handshake log: retention failed: %s\n", pruned.error().message.c_str());
    }
  }
  if (auto const dropped = dropped_.load(); dropped != sinks_->dropped_reported) {
    std::fprintf(stderr, "edged: handshake log: %llu records dropped so far (queue full)\n",
                 static_cast<unsigned long long>(dropped));
    sinks_->dropped_reported = dropped;
  }
  written_.fetch_add(batch.size(), std::memory_order_relaxed);
  batch.clear();
}

void HandshakeLog::run() {
  std::vector<HandshakeEvent> batch;
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      // Batches by time (records reach the sinks within batch_interval) or by
      // size under load, whichever comes first.
      wake_.wait_for(lock, batch_interval,
                     [this] { return stopping_ || queue_.size() >= batch_size || reopen_requested_.load(); });
      batch.swap(queue_);
      stopping = stopping_;
    }
    if (reopen_requested_.exchange(false)) {
      try {
        open_file();
      } catch (std::exception const& e) {
        std::fprintf(stderr, "edged: %s (still writing to the old file)\n", e.what());
      }
    }
    write_batch(batch, stopping);
    if (stopping) {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
    }
  }
}

}  // namespace edge::proxy
