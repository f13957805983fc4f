#pragma once
// The per-request access log: one JSON line per HTTP request, joined to the
// connection's handshake record by edge.connection.id. Same design as the
// handshake log: the I/O thread fills a small record and queues it; one writer
// thread formats and writes in batches; a full queue drops and counts.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace edge::proxy {

struct AccessRecord {
  std::int64_t timestamp_us = 0;  // request head received, UTC
  std::string connection_id;      // edge.connection.id of the handshake record
  std::string client_address;     // the PROXY-protocol address when one came
  std::string method;
  std::string path;                        // the request target's path, without the query
  unsigned status = 0;                     // 499: the client went away before the response
  std::uint64_t bytes_in = 0;              // request body bytes read from the client
  std::uint64_t bytes_out = 0;             // response body bytes written to the client
  std::int64_t duration_us = 0;            // head received to response done
  std::int64_t upstream_duration_us = -1;  // upstream connection taken to response end; -1 = none
  std::string upstream_address;            // "ip:port" connected to
  std::string route;                       // route name
  bool upstream_reused = false;            // pooled connection
  bool upstream_tls_resumed = false;
};

class AccessLog {
 public:
  // `file`: a path, or "-" for stdout. Throws std::runtime_error when it cannot be opened.
  explicit AccessLog(std::string file, std::size_t queue_capacity = 65536);
  ~AccessLog();  // writes what is queued, then joins
  AccessLog(AccessLog const&) = delete;
  AccessLog& operator=(AccessLog const&) = delete;

  // Thread: any (I/O threads). Never blocks on I/O.
  void submit(AccessRecord&& record);
  // Reopens the file at its path (after logrotate moved it). Thread: any;
  // not async-signal-safe: call it from the signal-handling thread.
  void reopen() noexcept;

  std::uint64_t dropped() const noexcept { return dropped_.load(); }

  static constexpr std::size_t batch_size = 512;
  static constexpr std::chrono::milliseconds batch_interval{100};

 private:
  void run();
  void open_file();

  std::string path_;
  std::size_t capacity_;
  std::FILE* file_ = nullptr;
  bool owns_file_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<AccessRecord> queue_;
  bool stopping_ = false;
  std::atomic<bool> reopen_requested_{false};
  std::atomic<std::uint64_t> dropped_{0};
  std::thread writer_;
};

// The record as one JSON object (no newline). Exposed for tests.
std::string to_json(AccessRecord const& record);

}  // namespace edge::proxy
