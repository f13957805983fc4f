#pragma once
// A timeout for the operations on one socket, with beast::tcp_stream's
// meaning: `expires_after` sets a deadline for the operations that follow;
// when it passes while one is pending the socket is closed (they end, and
// report beast::error::timeout); one that starts after its deadline times out
// at once; a deadline passing while nothing is pending closes nothing.
//
// Why not beast::tcp_stream: it arms and cancels a timer around every read
// and write (a timer-queue insert, an allocation and an extra handler run
// each), and a proxied request makes several. Here one timer per socket
// serves every deadline: moving the deadline later costs a clock read, and
// the timer, when it fires early, just waits again.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>

namespace edge::proxy {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  struct State;  // shared with the timer's handler, which may outlive the owner

  // `executor`: an io_context's (std::invalid_argument otherwise).
  explicit Deadline(boost::asio::any_io_executor const& executor);
  ~Deadline();
  Deadline(Deadline&&) noexcept = default;
  Deadline& operator=(Deadline&&) = delete;

  void expires_after(Clock::duration timeout);
  void expires_never() noexcept;
  bool fired() const noexcept;

  // Around each operation on `socket` that the deadline governs. begin()
  // false: it had already passed; the socket is closed.
  bool begin(boost::asio::ip::tcp::socket& socket);
  void end() noexcept;

  // For handlers that may run after the owner is gone: the owner registered
  // here, null once ~Deadline ran.
  void set_owner(void* owner) noexcept;
  static void* owner(std::shared_ptr<State> const& state) noexcept;
  std::shared_ptr<State> const& state() const noexcept { return state_; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace edge::proxy
