#include <edge/acme/renewal_scheduler.hpp>

#include "renewal_engine.hpp"

#include <edge/store/store.hpp>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stop_token>
#include <thread>

namespace edge::acme {
namespace {

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

void wait(std::stop_token const& stop, std::chrono::milliseconds duration) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  cv.wait_for(lock, stop, duration, [] { return false; });
}

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

  void run(std::stop_token stop) noexcept {
    try {
      log_line({}, "renewal scheduler started (" + std::to_string(config.certificates.size()) +
                       " certificates, " + std::to_string(config.effective_issuers().size()) +
                       " issuers)");
      std::unique_ptr<store::Store> store;
      std::unique_ptr<RenewalEngine> engine;
      std::string last_open_error;
      while (!stop.stop_requested()) {
        if (!store) {
          auto opened = store::open_sqlite_store(store_path);
          if (opened) {
            store = std::move(*opened);
            EngineHooks hooks;
            hooks.log = [](std::string_view name, std::string const& line) {
              log_line(name, line);
            };
            hooks.on_stored = on_stored;
            engine = std::make_unique<RenewalEngine>(config, *store, store_path, responder,
                                                     std::move(hooks), stop);
          } else if (opened.error().message != last_open_error) {
            last_open_error = opened.error().message;
            log_line({}, "cannot open store: " + last_open_error);
          }
        }
        if (engine) {
          try {
            engine->tick();
          } catch (std::exception const& e) {
            log_line({}, std::string("unexpected error: ") + e.what());
          }
        }
        wait(stop, config.poll_interval);
      }
      // Running orders see the stop (transfers and waits abort); wait for them.
      if (engine) engine->wait_idle();
      log_line({}, "renewal scheduler stopped");
    } catch (std::exception const& e) {
      log_line({}, std::string("renewal scheduler failed: ") + e.what());
    } catch (...) {
      log_line({}, "renewal scheduler failed");
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
