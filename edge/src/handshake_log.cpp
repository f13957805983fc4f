#include <edge/proxy/handshake_log.hpp>
#include <edge/store/store.hpp>

#include <boost/json.hpp>

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
  json::object o;
  o["@timestamp"] = rfc3339(e.timestamp_us / 1000000, static_cast<int>(e.timestamp_us % 1000000));
  o["edge.outcome"] = to_string(e.outcome);
  if (!e.error_type.empty()) o["error.type"] = e.error_type;
  o["edge.alert.sent"] = e.alert_sent;
  if (!e.alert_received.empty()) o["edge.alert.received"] = e.alert_received;
  o["client.address"] = e.client_address;
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
  if (e.count > 1) o["count"] = e.count;
  return json::serialize(o);
}

struct HandshakeLog::Sinks {
  std::FILE* file = nullptr;
  bool owns_file = false;
  std::unique_ptr<store::Store> store;
  ~Sinks() {
    if (file && owns_file) std::fclose(file);
  }
};

HandshakeLog::HandshakeLog(HandshakeLogOptions options) : options_(std::move(options)) {}

HandshakeLog::~HandshakeLog() { stop(); }

void HandshakeLog::start() {
  auto sinks = std::make_unique<Sinks>();
  if (options_.file == "-") {
    sinks->file = stdout;
  } else if (!options_.file.empty()) {
    sinks->file = std::fopen(options_.file.c_str(), "a");
    if (!sinks->file) throw std::runtime_error("handshake_log.file: cannot open " + options_.file);
    sinks->owns_file = true;
  }
  if (!options_.store_path.empty()) {
    auto opened = store::open_sqlite_store(options_.store_path);
    if (!opened) throw std::runtime_error(opened.error().message);
    sinks->store = std::move(*opened);
  }
  sinks_ = std::move(sinks);
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

void HandshakeLog::submit(HandshakeEvent&& event) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(event));
  }
  wake_.notify_one();
}

void HandshakeLog::run() {
  std::vector<HandshakeEvent> batch;
  std::vector<store::HandshakeRecord> rows;
  std::string lines;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    rows.clear();
    lines.clear();
    for (auto const& event : batch) {
      std::string json = to_json(event);
      if (sinks_->file) {
        lines += json;
        lines += '\n';
      }
      if (sinks_->store) rows.push_back(to_store_record(event, std::move(json)));
    }
    if (sinks_->file) {
      std::fwrite(lines.data(), 1, lines.size(), sinks_->file);
      std::fflush(sinks_->file);
    }
    if (sinks_->store) {
      if (auto written = sinks_->store->append_handshakes(rows); !written) {
        store_failures_.fetch_add(rows.size(), std::memory_order_relaxed);
        std::fprintf(stderr, "edged: handshake log: %zu records not stored: %s\n", rows.size(),
                     written.error().message.c_str());
      }
    }
    written_.fetch_add(batch.size(), std::memory_order_relaxed);
    batch.clear();
  }
}

}  // namespace edge::proxy
