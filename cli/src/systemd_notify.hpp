#pragma once
// systemd's service notification protocol (sd_notify(3)), written directly so
// that edged needs no libsystemd: one datagram per message to the unix socket
// named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
// Without NOTIFY_SOCKET (not started by systemd with Type=notify) every call
// does nothing. The watchdog pings come from a thread of this object.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace edge::cli {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the watchdog is ours
  // only when WATCHDOG_PID is absent or our pid).
  SystemdNotifier();
  ~SystemdNotifier();  // stops the watchdog thread
  SystemdNotifier(SystemdNotifier const&) = delete;
  SystemdNotifier& operator=(SystemdNotifier const&) = delete;

  bool enabled() const { return !socket_.empty(); }
  // Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; zero when off.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  // READY=1 with a STATUS= line, then the watchdog pings start (when asked for).
  void ready(std::string_view status);
  // STOPPING=1; the watchdog keeps pinging while edged drains.
  void stopping(std::string_view status);
  // Sends one message ("KEY=value\n..."); false when it could not be sent.
  bool send(std::string_view message) const;

 private:
  void watchdog_loop();

  std::string socket_;
  std::chrono::microseconds watchdog_interval_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace edge::cli
