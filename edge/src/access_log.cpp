#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <edge/proxy/access_log.hpp>
#include <stdexcept>

namespace edge::proxy {

std::string to_json(AccessRecord const& r) {
  namespace json = boost::json;
  unsigned char buffer[4096];
  json::monotonic_resource arena(buffer, sizeof buffer);
  json::object o{json::storage_ptr(&arena)};
  o.reserve(16);
  std::time_t const seconds = static_cast<std::time_t>(r.timestamp_us / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  n += static_cast<std::size_t>(
      std::snprintf(stamp + n, sizeof stamp - n, ".%06dZ", static_cast<int>(r.timestamp_us % 1000000)));
  // Field names as in the handshake record (OpenTelemetry's where one exists).
  o["@timestamp"] = json::string_view(stamp, n);
  o["edge.connection.id"] = r.connection_id;
  o["client.address"] = r.client_address;
  o["http.request.method"] = r.method;
  o["url.path"] = r.path;
  o["http.response.status_code"] = r.status;
  o["http.request.body.size"] = r.bytes_in;
  o["http.response.body.size"] = r.bytes_out;
  o["edge.duration_us"] = r.duration_us;
  o["edge.route"] = r.route;
  if (r.upstream_duration_us >= 0) {
    o["edge.upstream.duration_us"] = r.upstream_duration_us;
    o["edge.upstream.address"] = r.upstream_address;
    o["edge.upstream.reused"] = r.upstream_reused;
    if (r.upstream_tls_resumed) o["edge.upstream.tls.resumed"] = true;
  }
  return json::serialize(o);
}

AccessLog::AccessLog(std::string file, std::size_t queue_capacity) : path_(std::move(file)), capacity_(queue_capacity) {
  open_file();
  queue_.reserve(1024);
  writer_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (file_ && owns_file_) std::fclose(file_);
}

void AccessLog::open_file() {
  if (path_ == "-") {
    file_ = stdout;
    return;
  }
  std::FILE* file = std::fopen(path_.c_str(), "a");
  if (!file) throw std::runtime_error("proxy.http.access_log.file: cannot open " + path_ + ": " + std::strerror(errno));
  if (file_ && owns_file_) std::fclose(file_);
  file_ = file;
  owns_file_ = true;
}

void AccessLog::reopen() noexcept {
  reopen_requested_.store(true);
  wake_.notify_one();
}

void AccessLog::submit(AccessRecord&& record) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= capacity_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(record));
    // The writer drains every batch_interval on its own; a wake per request would cost a context switch.
    wake = queue_.size() == batch_size;
  }
  if (wake) wake_.notify_one();
}

void AccessLog::run() {
  std::vector<AccessRecord> batch;
  std::string lines;
  std::uint64_t dropped_reported = 0;
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
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
    lines.clear();
    for (auto const& record : batch) {
      lines += to_json(record);
      lines += '\n';
    }
    batch.clear();
    if (!lines.empty()) {
      std::fwrite(lines.data(), 1, lines.size(), file_);
      std::fflush(file_);
    }
    if (auto const dropped = dropped_.load(); dropped != dropped_reported) {
      std::fprintf(stderr, "edged: access log: %llu records dropped so far (queue full)\n",
                   static_cast<unsigned long long>(dropped));
      dropped_reported = dropped;
    }
    if (stopping) {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) return;
    }
  }
}

}  // namespace edge::proxy
