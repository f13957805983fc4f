#pragma once
// Handshake records: built on the I/O thread, handed to a bounded queue, and
// written in batches by one writer thread to the JSON-lines file and the store.
// A full queue drops the record and counts it; a handshake never waits.
#include <edge/proxy/handshake_event.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace edge::store {
struct HandshakeRecord;
}

namespace edge::proxy {

struct HandshakeLogOptions {
  std::string file;                  // JSON lines; "-" = stdout; empty = no file
  std::filesystem::path store_path;  // empty = no SQLite sink
  std::size_t queue_capacity = 65536;
  double sample_success = 1.0;              // share of ok records kept; failures are always kept
  std::chrono::seconds damping_window{0};   // fold identical failures per client (0 = off)
  std::uint64_t max_file_bytes = 0;         // rotate the file at this size (0 = never; logrotate + SIGUSR1)
  unsigned max_files = 5;                   // rotated files kept: file.1 .. file.N
  std::chrono::seconds retention_age{0};    // delete stored rows older than this (0 = keep)
  std::int64_t retention_rows = 0;          // keep at most this many stored rows (0 = no limit)
  std::size_t store_hold_capacity = 100000; // rows kept in memory while the store refuses writes
};

// Sees every record on the writer thread, before sampling and damping: how
// metrics are derived without costing the I/O threads anything.
class HandshakeObserver {
 public:
  virtual ~HandshakeObserver() = default;
  virtual void observe(HandshakeEvent const& event) noexcept = 0;
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

  // Reopens the file at its path (after logrotate moved it). Thread: any;
  // async-signal-unsafe, call it from the signal-handling thread.
  void reopen() noexcept;

  std::uint64_t dropped() const noexcept { return dropped_.load(); }
  std::uint64_t written() const noexcept { return written_.load(); }
  // Failed store writes (each retried with the next batch); rows held for
  // that retry; rows given up because the store failed past the hold capacity.
  std::uint64_t store_failures() const noexcept { return store_failures_.load(); }
  std::uint64_t store_held() const noexcept { return store_held_.load(); }
  std::uint64_t store_lost() const noexcept { return store_lost_.load(); }
  std::uint64_t folded() const noexcept { return folded_.load(); }

  // Called before start(); the observer must outlive stop().
  void set_observer(HandshakeObserver* observer) noexcept { observer_ = observer; }

  static constexpr std::size_t batch_size = 512;
  static constexpr std::chrono::milliseconds batch_interval{100};

 private:
  void run();
  void write_batch(std::vector<HandshakeEvent>& batch, bool final);
  void write_rows(std::vector<store::HandshakeRecord>& rows, bool final);
  void flush_damped(bool everything);
  void rotate_if_needed();
  void open_file();

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
  std::atomic<std::uint64_t> store_held_{0};
  std::atomic<std::uint64_t> store_lost_{0};
  std::atomic<std::uint64_t> folded_{0};
  std::atomic<bool> reopen_requested_{false};
  HandshakeObserver* observer_ = nullptr;
};

// The record as one JSON object (no trailing newline). Exposed for tests.
std::string to_json(HandshakeEvent const& event);

}  // namespace edge::proxy
