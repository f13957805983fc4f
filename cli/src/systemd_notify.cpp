#include "systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace edge::cli {
namespace {

std::string environment(char const* name) {
  char const* value = std::getenv(name);
  return value ? value : "";
}

// A positive decimal number, or 0 for anything else (systemd's own parser is as strict).
unsigned long long number(std::string const& text) {
  if (text.empty() || text.size() > 19) return 0;
  unsigned long long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

}  // namespace

SystemdNotifier::SystemdNotifier() : socket_(environment("NOTIFY_SOCKET")) {
  // Only an absolute path or an abstract name is a socket systemd made.
  if (!socket_.empty() && socket_[0] != '/' && socket_[0] != '@') {
    std::fprintf(stderr, "edged: NOTIFY_SOCKET=%s is neither a path nor an @abstract name: not notifying\n",
                 socket_.c_str());
    socket_.clear();
  }
  if (socket_.size() >= sizeof(sockaddr_un::sun_path)) {
    std::fprintf(stderr, "edged: NOTIFY_SOCKET is too long: not notifying\n");
    socket_.clear();
  }
  auto const usec = number(environment("WATCHDOG_USEC"));
  auto const pid = environment("WATCHDOG_PID");
  bool const ours = pid.empty() || number(pid) == static_cast<unsigned long long>(::getpid());
  if (enabled() && usec > 0 && ours) watchdog_interval_ = std::chrono::microseconds(usec / 2);
}

SystemdNotifier::~SystemdNotifier() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

bool SystemdNotifier::send(std::string_view message) const {
  if (!enabled()) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_.data(), socket_.size());
  // An abstract name starts with a NUL byte and its length is exact (no terminator).
  if (socket_[0] == '@') address.sun_path[0] = '\0';
  auto const length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  int const fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  auto const sent =
      ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr const*>(&address), length);
  int const error = errno;
  ::close(fd);
  if (sent != static_cast<ssize_t>(message.size())) {
    std::fprintf(stderr, "edged: sd_notify to %s failed: %s\n", socket_.c_str(), std::strerror(error));
    return false;
  }
  return true;
}

void SystemdNotifier::ready(std::string_view status) {
  send("READY=1\nSTATUS=" + std::string(status) + "\nMAINPID=" + std::to_string(::getpid()) + "\n");
  if (watchdog_interval_.count() > 0 && !watchdog_.joinable()) watchdog_ = std::thread([this] { watchdog_loop(); });
}

void SystemdNotifier::stopping(std::string_view status) {
  send("STOPPING=1\nSTATUS=" + std::string(status) + "\n");
}

void SystemdNotifier::watchdog_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    send("WATCHDOG=1\n");
    lock.lock();
    wake_.wait_for(lock, watchdog_interval_, [this] { return stop_; });
  }
}

}  // namespace edge::cli
