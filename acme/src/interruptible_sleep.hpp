#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace edge::acme {

// Sleeps for `duration` unless `stop` is requested first. Returns false when
// stopped, so polling loops end at once on shutdown.
inline bool interruptible_sleep(std::stop_token const& stop, std::chrono::milliseconds duration) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  cv.wait_for(lock, stop, duration, [] { return false; });
  return !stop.stop_requested();
}

}  // namespace edge::acme
