#include <edge/acme/renewal_scheduler.hpp>

#include <edge/acme/acme_client.hpp>

#include "renewal_policy.hpp"

#include <edge/store/store.hpp>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stop_token>
#include <thread>

namespace edge::acme {
namespace {

using Clock = std::chrono::steady_clock;

// One line per event on stderr; a single fwrite keeps lines from different
// threads from interleaving.
void log_line(std::string_view name, std::string const& message) {
  std::string line = "edged: acme: ";
  if (!name.empty()) {
    line += name;
    line += ": ";
  }
  line += message;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

struct Backoff {
  Clock::time_point next_attempt{};
  std::chrono::seconds delay{0};
};

}  // namespace

struct RenewalScheduler::Impl {
  Impl(AcmeConfig config_in, std::filesystem::path store_path_in,
       ChallengeResponder& responder_in, CertificateStored on_stored_in)
      : config(std::move(config_in)),
        store_path(std::move(store_path_in)),
        responder(responder_in),
        on_stored(std::move(on_stored_in)) {}

  AcmeConfig config;
  std::filesystem::path store_path;
  ChallengeResponder& responder;
  CertificateStored on_stored;

  std::mutex control;  // start/stop
  std::stop_source stop_source;
  std::thread thread;

  // Scheduler-thread state.
  std::map<std::string, Backoff> backoff;
  std::minstd_rand random{std::random_device{}()};
  std::string current_name;  // certificate being worked on, for client log lines

  void run(std::stop_token stop) noexcept {
    try {
      std::unique_ptr<store::Store> store;
      std::unique_ptr<AcmeClient> client;
      log_line({}, "renewal scheduler started (" + std::to_string(config.certificates.size()) +
                       " certificates)");
      std::string last_open_error;
      while (!stop.stop_requested()) {
        if (!store) {
          auto opened = store::open_sqlite_store(store_path);
          if (opened) {
            store = std::move(*opened);
            AcmeClientOptions options;
            options.stop = stop;
            options.log = [this](std::string const& line) { log_line(current_name, line); };
            client = std::make_unique<AcmeClient>(config, *store, responder, std::move(options));
          } else if (opened.error().message != last_open_error) {
            last_open_error = opened.error().message;
            log_line({}, "cannot open store: " + last_open_error);
          }
        }
        if (client) {
          try {
            tick(*store, *client, stop);
          } catch (std::exception const& e) {
            log_line(current_name, std::string("unexpected error: ") + e.what());
          }
          current_name.clear();
        }
        wait(stop, config.poll_interval);
      }
      log_line({}, "renewal scheduler stopped");
    } catch (std::exception const& e) {
      log_line({}, std::string("renewal scheduler failed: ") + e.what());
    } catch (...) {
      log_line({}, "renewal scheduler failed");
    }
  }

  static void wait(std::stop_token const& stop, std::chrono::milliseconds duration) {
    std::mutex mutex;
    std::condition_variable_any cv;
    std::unique_lock lock(mutex);
    cv.wait_for(lock, stop, duration, [] { return false; });
  }

  void tick(store::Store& store, AcmeClient& client, std::stop_token const& stop) {
    std::set<std::string> forced;
    if (auto requests = store.take_renewal_requests()) {
      for (auto& name : *requests) {
        bool const known = std::any_of(config.certificates.begin(), config.certificates.end(),
                                       [&](CertificateSpec const& s) { return s.name == name; });
        if (known)
          forced.insert(std::move(name));
        else
          log_line(name, "renewal requested for a certificate not in the configuration; ignored");
      }
    } else {
      log_line({}, "cannot read renewal requests: " + requests.error().message);
    }

    for (auto const& spec : config.certificates) {
      if (stop.stop_requested()) return;
      current_name = spec.name;
      auto current = store.current_certificate(spec.name);
      if (!current) {
        log_line(spec.name, "cannot read current certificate: " + current.error().message);
        continue;
      }
      bool const is_forced = forced.contains(spec.name);
      auto const reason = reason_to_issue(*current, spec, is_forced, std::time(nullptr));
      if (!reason) continue;
      auto& state = backoff[spec.name];
      // An operator's request overrides the backoff: they asked for it now.
      if (!is_forced && Clock::now() < state.next_attempt) continue;
      issue(client, spec, *reason, state, stop);
    }
  }

  void issue(AcmeClient& client, CertificateSpec const& spec, std::string const& reason,
             Backoff& state, std::stop_token const& stop) {
    log_line(spec.name, "issuing certificate: " + reason);
    auto const started = Clock::now();
    auto result = client.issue(spec);
    auto const seconds = std::chrono::duration<double>(Clock::now() - started).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f s", seconds);

    if (!result) {
      if (stop.stop_requested()) return;  // shutting down, not a failure
      state.delay = next_backoff(state.delay, config.max_backoff);
      auto const delay = retry_delay(state.delay, result.error().retry_after,
                                     std::uniform_real_distribution<double>(0.0, 1.0)(random));
      state.next_attempt = Clock::now() + delay;
      char retry[32];
      std::snprintf(retry, sizeof retry, "%.1f s", static_cast<double>(delay.count()) / 1000.0);
      log_line(spec.name, "issuance failed after " + std::string(took) + ": " +
                              result.error().message() + "; next attempt in " + retry);
      return;
    }

    state = Backoff{};
    auto const& record = *result;
    log_line(spec.name, "certificate issued serial=" + record.serial +
                            " not_after=" + utc_time(record.not_after) +
                            " generation=" + std::to_string(record.generation) + " (" + took +
                            ")");
    if (on_stored) {
      try {
        on_stored(record);
      } catch (std::exception const& e) {
        log_line(spec.name, std::string("certificate-stored handler failed: ") + e.what());
      } catch (...) {
        log_line(spec.name, "certificate-stored handler failed");
      }
    }
  }
};

RenewalScheduler::RenewalScheduler(AcmeConfig config, std::filesystem::path store_path,
                                   ChallengeResponder& responder, CertificateStored on_stored)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(store_path), responder,
                                   std::move(on_stored))) {}

RenewalScheduler::~RenewalScheduler() { stop(); }

void RenewalScheduler::start() {
  std::lock_guard lock(impl_->control);
  if (impl_->thread.joinable()) return;
  impl_->stop_source = std::stop_source();
  impl_->thread = std::thread([impl = impl_.get(), token = impl_->stop_source.get_token()] {
    impl->run(token);
  });
}

void RenewalScheduler::stop() {
  std::lock_guard lock(impl_->control);
  impl_->stop_source.request_stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace edge::acme
