#pragma once
// Handshake records: built on the I/O thread, handed to a bounded queue, and
// written in batches by one writer thread to the JSON-lines file and the store.
// A full queue drops the record and counts it; a handshake never waits.
#include <edge/proxy/handshake_event.hpp>

#include <condition_variable>
#include <cstdint>
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace edge::proxy {

struct HandshakeLogOptions {
  std::string file;                  // JSON lines; "-" = stdout; empty = no file
  std::filesystem::path store_path;  // empty = no SQLite sink
  std::size_t queue_capacity = 65536;
};

class HandshakeLog {
 public:
  explicit HandshakeLog(HandshakeLogOptions options);
  ~HandshakeLog();  // drains and joins
  HandshakeLog(HandshakeLog const&) = delete;
  HandshakeLog& operator=(HandshakeLog const&) = delete;

  // Throws std::runtime_error when the file or store cannot be opened (start-up).
  void start();
  void stop();  // writes everything queued, then joins

  // Thread: any (I/O threads). Never blocks on I/O.
  void submit(HandshakeEvent&& event);

  std::uint64_t dropped() const noexcept { return dropped_.load(); }
  std::uint64_t written() const noexcept { return written_.load(); }
  std::uint64_t store_failures() const noexcept { return store_failures_.load(); }

 private:
  void run();

  struct Sinks;
  HandshakeLogOptions options_;
  std::unique_ptr<Sinks> sinks_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<HandshakeEvent> queue_;
  bool stopping_ = false;
  std::thread writer_;
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> store_failures_{0};
};

// The record as one JSON object (no trailing newline). Exposed for tests.
std::string to_json(HandshakeEvent const& event);

}  // namespace edge::proxy
