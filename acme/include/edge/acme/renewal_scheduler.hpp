#pragma once
// Keeps every configured certificate issued and fresh. Runs on its own thread
// (blocking HTTP and SQLite are fine there, never on the I/O threads).
#include <edge/acme/challenge_responder.hpp>
#include <edge/acme/config.hpp>
#include <edge/store/records.hpp>

#include <filesystem>
#include <functional>
#include <memory>

namespace edge::acme {

class RenewalScheduler {
 public:
  // Called on the scheduler thread after a certificate was stored.
  using CertificateStored = std::function<void(store::CertificateRecord const&)>;

  RenewalScheduler(AcmeConfig config, std::filesystem::path store_path,
                   ChallengeResponder& responder, CertificateStored on_stored);
  ~RenewalScheduler();  // stops and joins
  RenewalScheduler(RenewalScheduler const&) = delete;
  RenewalScheduler& operator=(RenewalScheduler const&) = delete;

  void start();
  void stop();  // wakes the thread, aborts waits, joins

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::acme
