#pragma once
// The renewal scheduler's decisions, one tick at a time: which certificates
// are due (no certificate, identifiers changed, lifetime rule or ARI window,
// operator request), when a failed one may be tried again (backoff,
// Retry-After), which issuer to ask (in order, skipping paused ones), and
// the operator's revocation and account operations. Orders run on worker
// threads, several at once; tick() starts them and applies finished ones.
// Clock, randomness and the ACME client are injected so unit tests drive it
// with recorded server answers and a fake clock.
#include <edge/acme/acme_client.hpp>
#include <edge/acme/challenge_responder.hpp>
#include <edge/acme/config.hpp>
#include <edge/store/store.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

namespace edge::acme {

struct EngineHooks {
  std::function<std::int64_t()> now;  // Unix seconds; default: the system clock
  std::function<double()> random;     // uniform in [0, 1); default: a seeded PRNG
  // Builds the client for one issuer, used on one worker thread with that
  // thread's store. Default: AcmeClient with libcurl.
  std::function<std::unique_ptr<AcmeClient>(IssuerConfig const&, store::Store&,
                                            AcmeClientOptions)>
      make_client;
  // One line per event, `name` the certificate ("" for the scheduler).
  std::function<void(std::string_view name, std::string const& line)> log;
  // After a certificate was stored (worker thread; calls are serialised).
  std::function<void(store::CertificateRecord const&)> on_stored;
};

class RenewalEngine {
 public:
  // `store` belongs to the calling thread; workers open `store_path` themselves.
  RenewalEngine(AcmeConfig config, store::Store& store, std::filesystem::path store_path,
                ChallengeResponder& responder, EngineHooks hooks, std::stop_token stop);
  ~RenewalEngine();  // waits for running jobs (stop first to abort them)
  RenewalEngine(RenewalEngine const&) = delete;
  RenewalEngine& operator=(RenewalEngine const&) = delete;

  // Applies finished jobs, takes renewal requests and operations, starts
  // what is due. Never blocks on the network.
  void tick();
  // Waits until no job runs, then applies their results (tests, shutdown).
  void wait_idle();
  bool busy() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::acme
