#include "renewal_engine.hpp"

#include "identifiers.hpp"
#include "renewal_policy.hpp"

#include "crypto.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace edge::acme {
namespace {

// After an ARI request fails, ask again this much later; the lifetime rule
// stays in force meanwhile.
constexpr std::int64_t ari_failure_retry = 3600;

std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

std::set<std::string> labels_of(CertificateSpec const& spec) {
  std::set<std::string> out;
  for (auto const& id : spec.identifiers) out.insert(identifier_label(classify_identifier(id)));
  return out;
}

enum class JobKind { issue, ari, operation };

struct Job {
  JobKind kind = JobKind::issue;
  CertificateSpec spec;  // issue, ari
  std::set<std::string> labels;
  std::string reason;  // why it runs, for the log
  store::AcmeOperation operation;
  std::int64_t started_at = 0;
  std::thread thread;
  std::atomic<bool> done{false};

  // Results, written by the worker before `done`.
  bool ok = false;
  bool cancelled = false;
  store::CertificateRecord record;
  std::string issuer;     // directory URL that answered (or was asked last)
  std::string error;      // one line
  std::string problem;    // verbatim problem document
  std::optional<std::chrono::seconds> retry_after;
  std::optional<RenewalWindow> window;  // ari
  bool ari_unsupported = false;
};

}  // namespace

struct RenewalEngine::Impl {
  Impl(AcmeConfig config_in, store::Store& store_in, std::filesystem::path store_path_in,
       ChallengeResponder& responder_in, EngineHooks hooks_in, std::stop_token stop_in)
      : config(std::move(config_in)),
        issuers(config.effective_issuers()),
        store(store_in),
        store_path(std::move(store_path_in)),
        responder(responder_in),
        hooks(std::move(hooks_in)),
        stop(std::move(stop_in)) {
    if (!hooks.now) hooks.now = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
    if (!hooks.random) {
      hooks.random = [rng = std::mt19937_64(std::random_device{}())]() mutable {
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      };
    }
    if (!hooks.make_client) {
      hooks.make_client = [this](IssuerConfig const& issuer, store::Store& s,
                                 AcmeClientOptions options) {
        return std::make_unique<AcmeClient>(issuer, s, responder, std::move(options));
      };
    }
    if (!hooks.log) hooks.log = [](std::string_view, std::string const&) {};
  }

  AcmeConfig config;
  std::vector<IssuerConfig> issuers;
  store::Store& store;
  std::filesystem::path store_path;
  ChallengeResponder& responder;
  EngineHooks hooks;
  std::stop_token stop;

  std::list<std::unique_ptr<Job>> jobs;  // running or finished, not yet applied
  std::set<std::string> forced;          // renewal requested, not yet started
  std::list<store::AcmeOperation> operations;  // taken, not yet started
  std::map<std::string, store::RenewalState> states;  // cache of the store's rows
  std::set<std::string> interrupted;  // attempts a crash cut short, to resume at once

  mutable std::mutex shared_mutex;  // guards the members below, used by workers
  std::condition_variable done_cv;
  std::map<std::string, std::int64_t> paused_until;  // directory -> Retry-After end
  std::map<std::string, std::unique_ptr<std::mutex>> account_mutexes;
  std::mutex stored_mutex;  // serialises on_stored

  void log(std::string_view name, std::string const& line) const { hooks.log(name, line); }

  // --- state rows ------------------------------------------------------------

  store::RenewalState& state_of(std::string const& name) {
    auto it = states.find(name);
    if (it != states.end()) return it->second;
    store::RenewalState state;
    if (auto row = store.renewal_state(name); row && *row) {
      state = std::move(**row);
      // Still "issuing" when first read: the process that made the attempt
      // died in it (a stop records the outcome). Its order is resumed now.
      if (state.status == "issuing") interrupted.insert(name);
    } else {
      if (!row) log(name, "cannot read renewal state: " + row.error().message);
      state.name = name;
      state.status = "due";
    }
    return states.emplace(name, std::move(state)).first->second;
  }

  void save(store::RenewalState const& state) {
    if (auto r = store.put_renewal_state(state); !r)
      log(state.name, "cannot save renewal state: " + r.error().message);
  }

  // --- tick ------------------------------------------------------------------

  void tick() {
    reap();
    take_requests();
    if (!operations.empty()) {
      // Account operations run alone: a key rollover under a running order
      // would invalidate that order's signatures.
      if (jobs.empty()) start_operation();
      return;
    }
    auto const now = hooks.now();
    for (auto const& spec : config.certificates) {
      if (stop.stop_requested()) return;
      if (jobs.size() >= std::max<std::size_t>(config.max_parallel_orders, 1)) return;
      consider(spec, now);
    }
  }

  void take_requests() {
    if (auto requests = store.take_renewal_requests()) {
      for (auto& name : *requests) {
        bool const known = std::any_of(config.certificates.begin(), config.certificates.end(),
                                       [&](CertificateSpec const& s) { return s.name == name; });
        if (known)
          forced.insert(std::move(name));
        else
          log(name, "renewal requested for a certificate not in the configuration; ignored");
      }
    } else {
      log({}, "cannot read renewal requests: " + requests.error().message);
    }
    if (auto taken = store.take_operations()) {
      for (auto& op : *taken) operations.push_back(std::move(op));
    } else {
      log({}, "cannot read operations: " + taken.error().message);
    }
  }

  // Whether `spec` must wait for a running job (`for_issue`: to start an order).
  bool running(CertificateSpec const& spec, bool for_issue = true) const {
    auto const labels = labels_of(spec);
    return std::any_of(jobs.begin(), jobs.end(), [&](auto const& job) {
      if (job->kind == JobKind::operation) return true;
      if (job->spec.name == spec.name) return true;
      if (!for_issue || job->kind != JobKind::issue) return false;
      // Two orders naming the same identifier would publish challenge
      // certificates for the same validation name: one at a time.
      return std::any_of(labels.begin(), labels.end(),
                         [&](auto const& l) { return job->labels.contains(l); });
    });
  }

  void consider(CertificateSpec const& spec, std::int64_t now) {
    if (running(spec)) return;
    auto current = store.current_certificate(spec.name);
    if (!current) {
      log(spec.name, "cannot read current certificate: " + current.error().message);
      return;
    }
    auto& state = state_of(spec.name);
    if (forced.erase(spec.name) > 0) {
      // The operator asked for it now: that overrides the backoff (issuers
      // paused by Retry-After stay paused).
      start_issue(spec, "renewal requested", state, now);
      return;
    }
    if (interrupted.erase(spec.name) > 0) {
      start_issue(spec, "resuming an attempt interrupted by a crash", state, now);
      return;
    }
    bool const waiting = now < state.next_attempt_at;
    if (auto reason = reason_to_replace(*current, spec)) {
      if (!waiting) start_issue(spec, *reason, state, now);
      return;
    }
    auto const& cert = **current;
    if (state.planned_generation != cert.generation) plan(state, cert, now);
    if (waiting) return;
    if (state.ari_next_check_at != 0 && now >= state.ari_next_check_at) {
      start_ari(spec, state, now);
      return;
    }
    if (now >= state.next_renewal_at) start_issue(spec, state.renewal_reason, state, now);
  }

  // A new certificate (generation) gets its renewal time from the lifetime
  // rule at once; ARI, when the CA offers it, refines it on the next look.
  void plan(store::RenewalState& state, store::CertificateRecord const& cert, std::int64_t now) {
    auto const p = lifetime_plan(cert.not_before, cert.not_after, hooks.random());
    state.next_renewal_at = p.at;
    state.renewal_reason = p.reason;
    state.planned_generation = cert.generation;
    state.ari_next_check_at = cert.source == store::CertificateSource::acme ? now : 0;
    if (state.status != "retrying") state.status = "valid";
    save(state);
    log(cert.name, "next renewal " + utc_time(state.next_renewal_at) + " (" + p.reason + ")");
  }

  // --- jobs ------------------------------------------------------------------

  void start_issue(CertificateSpec const& spec, std::string reason, store::RenewalState& state,
                   std::int64_t now) {
    interrupted.erase(spec.name);  // any attempt resumes the open order
    state.status = "issuing";
    state.last_attempt_at = now;
    save(state);
    auto job = std::make_unique<Job>();
    job->kind = JobKind::issue;
    job->spec = spec;
    job->labels = labels_of(spec);
    job->reason = std::move(reason);
    job->started_at = now;
    log(spec.name, "issuing certificate: " + job->reason);
    launch(std::move(job));
  }

  void start_ari(CertificateSpec const& spec, store::RenewalState& state, std::int64_t now) {
    // Marked now so that a slow answer is not asked for twice.
    state.ari_next_check_at = now + ari_failure_retry;
    auto job = std::make_unique<Job>();
    job->kind = JobKind::ari;
    job->spec = spec;
    job->labels = labels_of(spec);
    job->started_at = now;
    launch(std::move(job));
  }

  void start_operation() {
    auto job = std::make_unique<Job>();
    job->kind = JobKind::operation;
    job->operation = std::move(operations.front());
    operations.pop_front();
    job->started_at = hooks.now();
    log(job->operation.target, "operation " + job->operation.kind + " requested");
    launch(std::move(job));
  }

  void launch(std::unique_ptr<Job> job) {
    Job* raw = job.get();
    jobs.push_back(std::move(job));
    raw->thread = std::thread([this, raw] {
      try {
        work(*raw);
      } catch (std::exception const& e) {
        raw->ok = false;
        raw->error = std::string("unexpected error: ") + e.what();
      } catch (...) {
        raw->ok = false;
        raw->error = "unexpected error";
      }
      {
        std::lock_guard lock(shared_mutex);
        raw->done = true;
      }
      done_cv.notify_all();
    });
  }

  void reap() {
    for (auto it = jobs.begin(); it != jobs.end();) {
      if (!(*it)->done) {
        ++it;
        continue;
      }
      (*it)->thread.join();
      apply(**it);
      it = jobs.erase(it);
    }
  }

  void wait_idle() {
    {
      std::unique_lock lock(shared_mutex);
      done_cv.wait(lock, [&] {
        return std::all_of(jobs.begin(), jobs.end(), [](auto const& j) { return j->done.load(); });
      });
    }
    reap();
  }

  // --- results (scheduler thread) -------------------------------------------

  void apply(Job& job) {
    switch (job.kind) {
      case JobKind::issue: apply_issue(job); break;
      case JobKind::ari: apply_ari(job); break;
      case JobKind::operation: break;  // recorded by the worker
    }
  }

  void apply_issue(Job& job) {
    auto& state = state_of(job.spec.name);
    auto const now = hooks.now();
    state.issuer = job.issuer;
    if (job.ok) {
      state.failures = 0;
      state.last_success_at = now;
      state.next_attempt_at = 0;
      state.last_error.clear();
      state.last_problem.clear();
      state.status = "valid";
      plan(state, job.record, now);  // saves
      return;
    }
    if (job.cancelled && stop.stop_requested()) {
      state.status = state.failures > 0 ? "retrying" : "due";
      save(state);
      return;  // shutting down, not a failure
    }
    state.failures += 1;
    auto const delay = retry_delay(state.failures, config.retry_schedule, job.retry_after,
                                   hooks.random());
    state.next_attempt_at = now + delay.count();
    state.last_error = job.error;
    state.last_problem = job.problem;
    state.status = "retrying";
    save(state);
    std::string line = "issuance failed (attempt " + std::to_string(state.failures) + "): " +
                       job.error + "; next attempt " + utc_time(state.next_attempt_at) + " (in " +
                       human_duration(delay.count()) + ")";
    if (!job.problem.empty()) line += "; problem document: " + one_line(job.problem);
    log(job.spec.name, line);
  }

  void apply_ari(Job& job) {
    auto& state = state_of(job.spec.name);
    auto const now = hooks.now();
    if (job.ari_unsupported) {
      state.ari_next_check_at = 0;  // the CA has no ARI: the lifetime rule stands
    } else if (!job.ok) {
      state.ari_next_check_at = now + ari_failure_retry;
      log(job.spec.name, "renewalInfo failed: " + job.error + "; asking again in " +
                             human_duration(ari_failure_retry));
    } else if (job.window) {
      auto const p = ari_plan(job.window->start, job.window->end, hooks.random(), now);
      state.next_renewal_at = p.at;
      state.renewal_reason = p.reason;
      auto const retry = job.window->retry_after.value_or(std::chrono::hours(6)).count();
      state.ari_next_check_at = now + retry;
      log(job.spec.name, "next renewal " + utc_time(p.at) + " (" + p.reason + "); asking again " +
                             utc_time(state.ari_next_check_at));
    }
    save(state);
  }

  // --- work (worker threads) -------------------------------------------------

  AcmeClientOptions client_options(std::string const& name) const {
    AcmeClientOptions options;
    options.stop = stop;
    options.default_key_type = config.key_type;
    options.log = [this, name](std::string const& line) { log(name, line); };
    return options;
  }

  std::mutex& account_mutex(std::string const& directory) {
    std::lock_guard lock(shared_mutex);
    auto& m = account_mutexes[directory];
    if (!m) m = std::make_unique<std::mutex>();
    return *m;
  }

  std::unique_ptr<AcmeClient> client_for(IssuerConfig const& issuer, store::Store& s,
                                         std::string const& name) {
    return hooks.make_client(issuer, s, client_options(name));
  }

  // The issuer that issued `generation` of `name` (from its order), else the first.
  IssuerConfig const& issuer_of(store::Store& s, std::string const& name,
                                std::int64_t generation) const {
    if (auto orders = s.certificate_orders(name, 100)) {
      for (auto const& o : *orders) {
        if (o.certificate_generation != generation) continue;
        for (auto const& issuer : issuers)
          if (issuer.directory_url == o.directory_url) return issuer;
      }
    }
    return issuers.front();
  }

  void work(Job& job) {
    auto opened = store::open_sqlite_store(store_path);
    if (!opened) {
      job.error = "cannot open store: " + opened.error().message;
      return;
    }
    auto& s = **opened;
    switch (job.kind) {
      case JobKind::issue: work_issue(job, s); break;
      case JobKind::ari: work_ari(job, s); break;
      case JobKind::operation: work_operation(job, s); break;
    }
  }

  void work_issue(Job& job, store::Store& s) {
    auto const& spec = job.spec;
    IssueOptions opts;
    auto current = s.current_certificate(spec.name);
    if (current && *current && (*current)->source == store::CertificateSource::acme) {
      if (auto id = AcmeClient::cert_id((*current)->chain_pem)) opts.replaces = *id;
      if (spec.reuse_key) {
        auto key = load_private_key((*current)->private_key_pem);
        auto const wanted = spec.key_type.value_or(config.key_type);
        if (key && key_type_of(key->get()) == wanted)
          opts.reuse_key_pem = (*current)->private_key_pem;
        else
          log(spec.name, "reuse_key: the current key is not " + std::string(to_string(wanted)) +
                             "; a new key is made");
      }
    }

    std::vector<std::string> errors;
    std::optional<std::chrono::seconds> shortest_retry;
    bool every_failure_asked_to_wait = true;
    for (auto const& issuer : issuers) {
      if (stop.stop_requested()) {
        job.cancelled = true;
        job.error = "stop requested";
        return;
      }
      auto const now = hooks.now();
      std::int64_t paused = 0;
      {
        std::lock_guard lock(shared_mutex);
        if (auto it = paused_until.find(issuer.directory_url); it != paused_until.end())
          paused = it->second;
      }
      if (paused > now) {
        errors.push_back(issuer.directory_url + ": asked us to wait until " + utc_time(paused) +
                         " (Retry-After)");
        auto const left = std::chrono::seconds(paused - now);
        shortest_retry = shortest_retry ? std::min(*shortest_retry, left) : left;
        continue;
      }
      job.issuer = issuer.directory_url;
      auto client = client_for(issuer, s, spec.name);
      AcmeResult<store::AcmeAccount> account = AcmeError{problem::cancelled, "not started"};
      {
        // Concurrent first orders must not register two accounts.
        std::lock_guard lock(account_mutex(issuer.directory_url));
        account = client->ensure_account();
      }
      auto result = account ? client->issue(spec, opts)
                            : AcmeResult<store::CertificateRecord>(account.error());
      if (result) {
        job.ok = true;
        job.record = std::move(*result);
        std::lock_guard lock(stored_mutex);
        if (hooks.on_stored) {
          try {
            hooks.on_stored(job.record);
          } catch (std::exception const& e) {
            log(spec.name, std::string("certificate-stored handler failed: ") + e.what());
          }
        }
        log(spec.name, "certificate issued serial=" + job.record.serial + " not_after=" +
                           utc_time(job.record.not_after) + " generation=" +
                           std::to_string(job.record.generation) + " issuer=" +
                           issuer.directory_url);
        return;
      }
      auto const& error = result.error();
      if (error.type == problem::cancelled) {
        job.cancelled = true;
        job.error = "stop requested";
        return;
      }
      errors.push_back((issuers.size() > 1 ? issuer.directory_url + ": " : std::string()) +
                       one_line(error.message()));
      if (job.problem.empty()) job.problem = error.document;
      if (error.retry_after) {
        std::lock_guard lock(shared_mutex);
        paused_until[issuer.directory_url] = hooks.now() + error.retry_after->count();
        shortest_retry = shortest_retry ? std::min(*shortest_retry, *error.retry_after)
                                        : *error.retry_after;
      } else {
        every_failure_asked_to_wait = false;
      }
      if (issuers.size() > 1 && &issuer != &issuers.back())
        log(spec.name, "issuer " + issuer.directory_url + " failed: " + one_line(error.message()) +
                           "; trying the next issuer");
    }
    job.error.clear();
    for (auto const& e : errors) job.error += (job.error.empty() ? "" : "; ") + e;
    // Retry-After bounds the next attempt only when every issuer asked for
    // it; otherwise an issuer that did not is tried after the backoff.
    if (every_failure_asked_to_wait) job.retry_after = shortest_retry;
  }

  void work_ari(Job& job, store::Store& s) {
    auto current = s.current_certificate(job.spec.name);
    if (!current || !*current) {
      job.ari_unsupported = true;
      return;
    }
    auto const& issuer = issuer_of(s, job.spec.name, (*current)->generation);
    job.issuer = issuer.directory_url;
    auto client = client_for(issuer, s, job.spec.name);
    auto window = client->renewal_info((*current)->chain_pem);
    if (!window) {
      job.error = one_line(window.error().message());
      return;
    }
    job.ok = true;
    if (!*window)
      job.ari_unsupported = true;
    else
      job.window = **window;
  }

  void work_operation(Job& job, store::Store& s) {
    auto const& op = job.operation;
    std::string result;
    std::string status = "done";
    auto fail = [&](std::string why) {
      status = "failed";
      result = std::move(why);
    };
    if (op.kind == "revoke") {
      auto const reason = revocation_reason_code(op.argument.empty() ? "unspecified" : op.argument);
      auto current = s.current_certificate(op.target);
      if (!reason) {
        fail("unknown revocation reason \"" + op.argument + "\"");
      } else if (!current || !*current) {
        fail("no certificate named \"" + op.target + "\"");
      } else {
        auto const& issuer = issuer_of(s, op.target, (*current)->generation);
        auto client = client_for(issuer, s, op.target);
        auto r = client->revoke((*current)->chain_pem, *reason);
        if (r || r.error().type == problem::already_revoked) {
          result = "revoked serial " + (*current)->serial + " (generation " +
                   std::to_string((*current)->generation) + ", reason " +
                   (op.argument.empty() ? "unspecified" : op.argument) + ") at " +
                   issuer.directory_url;
          // A revoked certificate must not stay in service: replace it now.
          if (auto q = s.request_renewal(op.target); !q)
            result += "; cannot queue its replacement: " + q.error().message;
          else
            result += "; replacement queued";
        } else {
          fail(one_line(r.error().message()));
        }
      }
    } else if (op.kind == "key-rollover" || op.kind == "deactivate-account") {
      std::vector<std::string> done;
      for (auto const& issuer : issuers) {
        if (!op.target.empty() && op.target != issuer.directory_url) continue;
        auto client = client_for(issuer, s, op.target);
        if (op.kind == "key-rollover") {
          auto r = client->roll_account_key();
          if (!r) {
            fail(issuer.directory_url + ": " + one_line(r.error().message()));
            break;
          }
          done.push_back("rolled the account key of " + r->account_url);
        } else {
          auto account = client->ensure_account();
          auto r = account ? client->deactivate_account() : AcmeResult<void>(account.error());
          if (!r) {
            fail(issuer.directory_url + ": " + one_line(r.error().message()));
            break;
          }
          done.push_back("deactivated " + account->account_url);
        }
      }
      if (status == "done") {
        if (done.empty()) fail("no issuer with directory \"" + op.target + "\"");
        for (auto const& d : done) result += (result.empty() ? "" : "; ") + d;
      }
    } else {
      fail("unknown operation \"" + op.kind + "\"");
    }
    log(op.target, "operation " + op.kind + " " + status + ": " + result);
    if (auto r = s.finish_operation(op.id, status, result); !r)
      log(op.target, "cannot record the operation's outcome: " + r.error().message);
    job.ok = status == "done";
  }
};

RenewalEngine::RenewalEngine(AcmeConfig config, store::Store& store,
                             std::filesystem::path store_path, ChallengeResponder& responder,
                             EngineHooks hooks, std::stop_token stop)
    : impl_(std::make_unique<Impl>(std::move(config), store, std::move(store_path), responder,
                                   std::move(hooks), std::move(stop))) {
  if (impl_->issuers.empty()) throw std::invalid_argument("RenewalEngine without an issuer");
}

RenewalEngine::~RenewalEngine() {
  for (auto& job : impl_->jobs)
    if (job->thread.joinable()) job->thread.join();
}

void RenewalEngine::tick() { impl_->tick(); }

void RenewalEngine::wait_idle() { impl_->wait_idle(); }

bool RenewalEngine::busy() const { return !impl_->jobs.empty(); }

}  // namespace edge::acme
