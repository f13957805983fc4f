#include "deadline.hpp"

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>

#include <stdexcept>

namespace edge::proxy {
namespace asio = boost::asio;

namespace {
asio::io_context::executor_type io_executor(asio::any_io_executor const& executor) {
  auto const* target = executor.target<asio::io_context::executor_type>();
  if (!target) throw std::invalid_argument("Deadline: the executor is not an io_context's");
  return *target;
}
}  // namespace

struct Deadline::State {
  explicit State(asio::any_io_executor const& executor) : timer(io_executor(executor)) {}
  // Typed on the io_context's executor, not any_io_executor: 48 bytes less
  // here and in the pending wait, on every connection.
  asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::io_context::executor_type> timer;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point armed = Clock::time_point::max();  // what the timer waits for; max: not waiting
  bool fired = false;
  int pending = 0;                          // operations in flight that the deadline governs
  asio::ip::tcp::socket* socket = nullptr;  // of the last operation; null once the owner is gone
  void* owner = nullptr;
};

namespace {

void on_timer(std::shared_ptr<Deadline::State> const& state, boost::system::error_code error);

void arm(std::shared_ptr<Deadline::State> const& state) {
  state->armed = state->deadline;
  state->timer.expires_at(state->deadline);
  state->timer.async_wait([state](boost::system::error_code error) { on_timer(state, error); });
}

void fire(Deadline::State& state) {
  state.armed = Deadline::Clock::time_point::max();
  state.fired = true;
  boost::system::error_code ignored;
  if (state.socket) state.socket->close(ignored);  // every pending operation ends; they report the timeout
}

void on_timer(std::shared_ptr<Deadline::State> const& state, boost::system::error_code error) {
  if (error == asio::error::operation_aborted || !state->socket) return;  // re-armed earlier, or the owner is gone
  if (state->deadline == Deadline::Clock::time_point::max()) {
    state->armed = Deadline::Clock::time_point::max();
    return;
  }
  if (Deadline::Clock::now() < state->deadline) return arm(state);  // moved later since it was armed
  if (state->pending == 0) {  // nothing to time out: the next operation looks at the deadline
    state->armed = Deadline::Clock::time_point::max();
    return;
  }
  fire(*state);
}

}  // namespace

Deadline::Deadline(asio::any_io_executor const& executor) : state_(std::make_shared<State>(executor)) {}

Deadline::~Deadline() {
  if (!state_) return;  // moved from
  state_->socket = nullptr;
  state_->owner = nullptr;
  state_->timer.cancel();
}

void Deadline::expires_after(Clock::duration timeout) {
  auto& state = *state_;
  state.deadline = Clock::now() + timeout;
  if (state.armed != Clock::time_point::max() && state.armed <= state.deadline) return;  // it will look again then
  if (state.pending > 0) arm(state_);  // otherwise the next operation arms it
}

void Deadline::expires_never() noexcept { state_->deadline = Clock::time_point::max(); }
bool Deadline::fired() const noexcept { return state_->fired; }

bool Deadline::begin(asio::ip::tcp::socket& socket) {
  auto& state = *state_;
  state.socket = &socket;
  ++state.pending;
  if (state.fired) return false;
  if (state.deadline == Clock::time_point::max()) return true;
  if (state.deadline <= Clock::now()) {
    fire(state);
    return false;
  }
  if (state.armed == Clock::time_point::max() || state.deadline < state.armed) arm(state_);
  return true;
}

void Deadline::end() noexcept { --state_->pending; }

void Deadline::set_owner(void* owner) noexcept { state_->owner = owner; }
void* Deadline::owner(std::shared_ptr<State> const& state) noexcept { return state->owner; }

}  // namespace edge::proxy
