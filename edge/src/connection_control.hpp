#pragma once
// What a graceful stop needs to reach every connection of one worker: the
// worker keeps a list of its open connections, each one says whether it is
// idle between HTTP requests, and the stop closes the idle ones at once and
// the rest when the grace period ends. Everything here is touched only by the
// worker's own thread (no lock on the data path).
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstdint>
#include <utility>
#include <list>

namespace edge::proxy {

class ConnectionSet;

// One connection counted in the server's open connections (its limit and the
// wait at stop) for as long as this lives; moved along with the connection.
class OpenConnection {
 public:
  explicit OpenConnection(std::atomic<std::int64_t>* count) noexcept : count_(count) {
    if (count_) count_->fetch_add(1, std::memory_order_relaxed);
  }
  OpenConnection(OpenConnection&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  OpenConnection& operator=(OpenConnection&&) = delete;
  ~OpenConnection() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::int64_t>* count_;
};

// One open connection, registered for its lifetime (RAII, on the frame of the
// connection's coroutine).
class ConnectionControl {
 public:
  ConnectionControl(ConnectionSet* set, boost::asio::ip::tcp::socket& socket);
  ~ConnectionControl();
  ConnectionControl(ConnectionControl const&) = delete;
  ConnectionControl& operator=(ConnectionControl const&) = delete;

  // True once the server stops: no new request on this connection, and a
  // response being written says `Connection: close`.
  bool draining() const noexcept;
  // Waiting for the next request after one was served: closed at once by a stop.
  void set_idle(bool idle) noexcept { idle_ = idle; }
  bool idle() const noexcept { return idle_; }
  void close() noexcept;  // aborts every pending operation on the client socket
  // The handshake record of this connection has been submitted.
  void set_recorded() noexcept;

 private:
  ConnectionSet* set_;
  boost::asio::ip::tcp::socket& socket_;
  bool idle_ = false;
  bool recorded_ = false;
  std::list<ConnectionControl*>::iterator position_;
};

class ConnectionSet {
 public:
  bool draining() const noexcept { return draining_; }
  std::size_t size() const noexcept { return open_.size(); }
  // Open connections whose handshake record is not submitted yet. Thread: any
  // (a stop waits for it to reach 0 before it ends the event loop).
  std::size_t unrecorded() const noexcept { return unrecorded_.load(std::memory_order_acquire); }
  // Start of a graceful stop: idle connections close now, busy ones after their current response.
  void drain() noexcept {
    draining_ = true;
    for (auto* c : std::list<ConnectionControl*>(open_))
      if (c->idle()) c->close();
  }
  // End of the grace period: whatever is left is closed.
  void close_all() noexcept {
    draining_ = true;
    for (auto* c : std::list<ConnectionControl*>(open_)) c->close();
  }

 private:
  friend class ConnectionControl;
  bool draining_ = false;
  std::list<ConnectionControl*> open_;
  std::atomic<std::size_t> unrecorded_{0};
};

inline ConnectionControl::ConnectionControl(ConnectionSet* set, boost::asio::ip::tcp::socket& socket)
    : set_(set), socket_(socket) {
  if (!set_) return;
  position_ = set_->open_.insert(set_->open_.end(), this);
  set_->unrecorded_.fetch_add(1, std::memory_order_relaxed);
}

inline ConnectionControl::~ConnectionControl() {
  if (!set_) return;
  set_recorded();
  set_->open_.erase(position_);
}

inline void ConnectionControl::set_recorded() noexcept {
  if (!set_ || recorded_) return;
  recorded_ = true;
  set_->unrecorded_.fetch_sub(1, std::memory_order_release);
}

inline bool ConnectionControl::draining() const noexcept { return set_ && set_->draining(); }

inline void ConnectionControl::close() noexcept {
  boost::system::error_code ignored;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace edge::proxy
