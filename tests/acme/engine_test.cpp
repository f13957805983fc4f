// The renewal scheduler's decisions (RenewalEngine) with a fake clock and
// FakeAcme behind the transport seam: backoff schedule, Retry-After, ARI,
// several issuers, concurrent orders, operator operations. Real SQLite file.
// Time only moves when a test moves it; nothing here sleeps or measures time.
#include "renewal_engine.hpp"

#include "fake_acme.hpp"
#include "renewal_policy.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

namespace edge::acme {
namespace {

using namespace edge::acme::test;
using namespace std::chrono_literals;

class QuietResponder final : public ChallengeResponder {
 public:
  void publish(std::string const&, std::string const&, std::string const&) override {}
  void withdraw(std::string const&) override {}
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "edge-acme-engine-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    store_ = store::open_sqlite_store(dir_ / "edge.db").value();
    config_.issuers = {IssuerConfig{ca_->directory_url()}};
    config_.certificates = {{"main", {"edge.test", "127.0.0.1", "::1"}}};
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<RenewalEngine> engine() {
    EngineHooks hooks;
    hooks.now = [this] { return now_.load(); };
    hooks.random = [] { return 0.5; };  // jitter factor exactly 1.0, window middle
    hooks.make_client = [this](IssuerConfig const& issuer, store::Store& s, AcmeClientOptions options) {
      options.transport = issuer.directory_url == ca_b_->directory_url() ? ca_b_ : ca_;
      return std::make_unique<AcmeClient>(issuer, s, responder_, std::move(options));
    };
    hooks.log = [this](std::string_view name, std::string const& line) {
      std::lock_guard lock(log_mutex_);
      log_.push_back(std::string(name) + ": " + line);
    };
    hooks.on_stored = [this](store::CertificateRecord const& r) {
      std::lock_guard lock(log_mutex_);
      stored_.push_back(r);
    };
    return std::make_unique<RenewalEngine>(config_, *store_, dir_ / "edge.db", responder_, std::move(hooks),
                                           stop_.get_token());
  }

  // One scheduler look, then wait for what it started and apply the results.
  static void step(RenewalEngine& e) {
    e.tick();
    e.wait_idle();
  }

  store::RenewalState state(std::string const& name = "main") {
    auto s = store_->renewal_state(name).value();
    EXPECT_TRUE(s);
    return s.value_or(store::RenewalState{});
  }

  std::string log_text() {
    std::lock_guard lock(log_mutex_);
    std::string out;
    for (auto const& l : log_) out += l + "\n";
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<FakeAcme> ca_ = std::make_shared<FakeAcme>("https://ca-a.test");
  std::shared_ptr<FakeAcme> ca_b_ = std::make_shared<FakeAcme>("https://ca-b.test");
  AcmeConfig config_;
  QuietResponder responder_;
  std::atomic<std::int64_t> now_{static_cast<std::int64_t>(std::time(nullptr))};
  std::stop_source stop_;
  std::mutex log_mutex_;
  std::vector<std::string> log_;
  std::vector<store::CertificateRecord> stored_;
};

TEST_F(EngineTest, IssuesAndPlansTheRenewalByTheLifetimeRule) {
  auto e = engine();
  step(*e);
  auto const cert = store_->current_certificate("main").value().value();
  EXPECT_EQ(cert.generation, 1);
  ASSERT_EQ(stored_.size(), 1u);
  auto const s = state();
  EXPECT_EQ(s.status, "valid");
  EXPECT_EQ(s.failures, 0);
  EXPECT_EQ(s.issuer, ca_->directory_url());
  EXPECT_EQ(s.last_success_at, now_.load());
  // 90 days: a third left, minus half of the (up to a tenth) jitter.
  auto const lifetime = cert.not_after - cert.not_before;
  EXPECT_EQ(s.next_renewal_at, cert.not_after - lifetime / 3 - (lifetime / 3) / 20);
  EXPECT_EQ(s.renewal_reason.rfind("lifetime rule: a third of the 90 d lifetime left", 0), 0u) << s.renewal_reason;
  // The directory has no renewalInfo: after one look, ARI is not asked again.
  step(*e);
  EXPECT_EQ(state().ari_next_check_at, 0);
  EXPECT_EQ(ca_->count("renewal-info"), 0u);

  // Nothing happens before the renewal time; at it, generation 2.
  auto const requests = ca_->requests();
  now_ = s.next_renewal_at - 1;
  step(*e);
  EXPECT_EQ(ca_->requests(), requests);
  now_ = s.next_renewal_at;
  step(*e);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 2);
}

TEST_F(EngineTest, BackoffIsOneMinuteTenMinutesHundredMinutesThenDaily) {
  ca_->down = true;
  auto e = engine();
  auto const t0 = now_.load();
  step(*e);
  auto s = state();
  EXPECT_EQ(s.status, "retrying");
  EXPECT_EQ(s.failures, 1);
  EXPECT_EQ(s.last_attempt_at, t0);
  EXPECT_EQ(s.next_attempt_at, t0 + 60);
  EXPECT_NE(s.last_error.find("Connection refused"), std::string::npos) << s.last_error;

  std::int64_t expected_gap[] = {600, 6000, 86400, 86400};
  for (auto gap : expected_gap) {
    auto const requests = ca_->requests();
    now_ = s.next_attempt_at - 1;
    step(*e);
    EXPECT_EQ(ca_->requests(), requests) << "a request before the next attempt time";
    now_ = s.next_attempt_at;
    step(*e);
    EXPECT_GT(ca_->requests(), requests);
    auto const previous_failures = s.failures;
    s = state();
    EXPECT_EQ(s.failures, previous_failures + 1);
    EXPECT_EQ(s.next_attempt_at - s.last_attempt_at, gap);
  }
  EXPECT_FALSE(store_->current_certificate("main").value());
}

TEST_F(EngineTest, BackoffSurvivesARestart) {
  ca_->down = true;
  auto const t0 = now_.load();
  {
    auto e = engine();
    step(*e);
  }
  auto const requests = ca_->requests();
  auto e = engine();  // edged restarted: the state comes from the store
  now_ = t0 + 59;
  step(*e);
  EXPECT_EQ(ca_->requests(), requests);
  EXPECT_EQ(state().failures, 1);
  ca_->down = false;
  now_ = t0 + 60;
  step(*e);
  EXPECT_EQ(state().status, "valid");
  EXPECT_EQ(state().failures, 0);
  EXPECT_EQ(state().last_error, "");
}

TEST_F(EngineTest, RateLimitedRetryAfterIsHonoured) {
  ca_->inject["newOrder"].push_back(problem_response(
      429, R"({"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates already issued","status":429})",
      "3600"));
  auto e = engine();
  auto const t0 = now_.load();
  step(*e);
  auto s = state();
  EXPECT_EQ(s.next_attempt_at, t0 + 3600);  // not the 60 s backoff
  EXPECT_NE(s.last_error.find("rateLimited"), std::string::npos);
  auto const requests = ca_->requests();
  now_ = t0 + 3599;
  step(*e);
  EXPECT_EQ(ca_->requests(), requests) << "a request before Retry-After";
  now_ = t0 + 3600;
  step(*e);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 1);
}

TEST_F(EngineTest, ServiceUnavailableRetryAfterIsHonoured) {
  auto busy = json_response(503, "Service Unavailable", "text/plain");
  busy.headers.emplace_back("Retry-After", "120");
  ca_->inject["directory"].push_back(busy);
  auto e = engine();
  auto const t0 = now_.load();
  step(*e);
  EXPECT_EQ(state().next_attempt_at, t0 + 120);
  auto const requests = ca_->requests();
  now_ = t0 + 119;
  step(*e);
  EXPECT_EQ(ca_->requests(), requests);
  now_ = t0 + 120;
  step(*e);
  EXPECT_TRUE(store_->current_certificate("main").value());
}

TEST_F(EngineTest, ShortRetryAfterDoesNotShortenTheBackoff) {
  ca_->inject["newOrder"].push_back(problem_response(
      503, R"({"type":"urn:ietf:params:acme:error:serverInternal","detail":"try again","status":503})", "5"));
  auto e = engine();
  auto const t0 = now_.load();
  step(*e);
  EXPECT_EQ(state().next_attempt_at, t0 + 60);
}

TEST_F(EngineTest, ProblemDocumentWithSubproblemsReachesStateAndLogVerbatim) {
  std::string const document =
      R"({"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Cannot issue for 2 identifiers","status":400,)"
      R"("subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Domain name is on the blocklist","identifier":{"type":"dns","value":"edge.test"}},)"
      R"({"type":"urn:ietf:params:acme:error:malformed","detail":"IP address is in a reserved range","identifier":{"type":"ip","value":"127.0.0.1"}}]})";
  ca_->inject["newOrder"].push_back(problem_response(400, document));
  auto e = engine();
  step(*e);
  auto const s = state();
  EXPECT_EQ(s.last_problem, document);
  EXPECT_NE(s.last_error.find("edge.test: Domain name is on the blocklist"), std::string::npos) << s.last_error;
  EXPECT_NE(log_text().find("problem document: " + document), std::string::npos) << log_text();
}

TEST_F(EngineTest, FallsBackToTheNextIssuerInTheSameAttempt) {
  config_.issuers = {IssuerConfig{ca_->directory_url()}, IssuerConfig{ca_b_->directory_url()}};
  ca_->down = true;
  auto e = engine();
  step(*e);
  auto const cert = store_->current_certificate("main").value().value();
  EXPECT_NE(cert.issuer.find("Fake Intermediate"), std::string::npos);
  EXPECT_GT(ca_->requests(), 0u);  // asked first
  EXPECT_EQ(ca_b_->count("finalize"), 1u);
  EXPECT_EQ(state().issuer, ca_b_->directory_url());
  EXPECT_EQ(state().failures, 0);
  EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).directory_url, ca_b_->directory_url());
}

TEST_F(EngineTest, AnOpenOrderOfAnIssuerThatWasReplacedByTheNextIsNotResumed) {
  config_.issuers = {IssuerConfig{ca_->directory_url()}, IssuerConfig{ca_b_->directory_url()}};
  ca_->inject["finalize"].push_back(json_response(503, "busy", "text/plain"));
  auto e = engine();
  step(*e);  // A stops at finalize (order left open), B issues
  EXPECT_EQ(state().issuer, ca_b_->directory_url());
  ASSERT_TRUE(store_->request_renewal("main"));
  step(*e);  // A again: its old order is stale now, a new one is made
  EXPECT_EQ(state().issuer, ca_->directory_url());
  EXPECT_EQ(ca_->count("newOrder"), 2u);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 2);
  auto const orders = store_->certificate_orders("main", 10).value();
  ASSERT_EQ(orders.size(), 3u);
  EXPECT_EQ(orders[2].directory_url, ca_->directory_url());
  EXPECT_EQ(orders[2].status, "abandoned");
}

TEST_F(EngineTest, AnIssuerThatAskedToWaitIsSkippedUntilThen) {
  config_.issuers = {IssuerConfig{ca_->directory_url()}, IssuerConfig{ca_b_->directory_url()}};
  ca_->inject["newOrder"].push_back(problem_response(
      429, R"({"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down","status":429})", "3600"));
  ca_b_->down = true;
  auto e = engine();
  auto const t0 = now_.load();
  step(*e);
  // B did not ask to wait, so the next attempt comes after the backoff...
  EXPECT_EQ(state().next_attempt_at, t0 + 60);
  EXPECT_NE(state().last_error.find("https://ca-a.test/dir: "), std::string::npos) << state().last_error;
  ca_b_->down = false;
  auto const a_requests = ca_->requests();
  now_ = t0 + 60;
  step(*e);
  // ...and does not ask A, which said Retry-After: 3600.
  EXPECT_EQ(ca_->requests(), a_requests);
  EXPECT_EQ(state().issuer, ca_b_->directory_url());
  EXPECT_TRUE(store_->current_certificate("main").value());
}

TEST_F(EngineTest, AriWindowDecidesTheRenewalAndTheOrderReplacesTheOldCertificate) {
  ca_->ari = true;
  auto e = engine();
  step(*e);  // issue
  auto const first = store_->current_certificate("main").value().value();
  step(*e);  // ask renewalInfo
  auto const s = state();
  EXPECT_EQ(s.next_renewal_at, first.not_before + 61 * 86400);  // middle of the 60..62 d window
  EXPECT_EQ(s.renewal_reason.rfind("ARI window ", 0), 0u) << s.renewal_reason;
  EXPECT_EQ(s.ari_next_check_at, now_.load() + 21600);  // Retry-After
  EXPECT_EQ(ca_->count("renewal-info"), 1u);

  // Not asked again before Retry-After; renewal at the chosen time.
  now_ = s.ari_next_check_at - 1;
  step(*e);
  EXPECT_EQ(ca_->count("renewal-info"), 1u);
  now_ = s.next_renewal_at;
  step(*e);  // renewalInfo is due again first (Retry-After passed)...
  step(*e);  // ...then the renewal
  auto const second = store_->current_certificate("main").value().value();
  EXPECT_EQ(second.generation, 2);
  EXPECT_EQ(ca_->payloads("newOrder").back().at("replaces").as_string(),
            AcmeClient::cert_id(first.chain_pem).value());
}

TEST_F(EngineTest, SeveralCertificatesAreOrderedConcurrently) {
  config_.certificates = {{"a", {"a.edge.test"}}, {"b", {"b.edge.test"}}, {"c", {"c.edge.test", "127.0.0.2"}}};
  // Each newOrder waits until three are in flight: run one after another,
  // the first would give up and fail.
  ca_->new_order_gate = 3;
  auto e = engine();
  step(*e);
  for (char const* name : {"a", "b", "c"}) {
    auto const cert = store_->current_certificate(name).value();
    ASSERT_TRUE(cert) << name << "\n" << log_text();
    EXPECT_EQ(cert->generation, 1);
  }
  // One account, though three orders wanted one at the same time.
  EXPECT_EQ(ca_->count("newAccount"), 1u);
}

TEST_F(EngineTest, CertificatesSharingAnIdentifierTakeTurns) {
  config_.certificates = {{"one", {"shared.edge.test", "127.0.0.1"}}, {"two", {"other.edge.test", "127.0.0.1"}}};
  auto e = engine();
  e->tick();  // starts what may start, does not wait
  EXPECT_EQ(state("one").status, "issuing");
  EXPECT_EQ(store_->renewal_state("two").value(), std::nullopt);  // not started
  e->wait_idle();
  step(*e);
  EXPECT_TRUE(store_->current_certificate("one").value());
  EXPECT_TRUE(store_->current_certificate("two").value());
}

TEST_F(EngineTest, RenewalRequestOverridesTheBackoff) {
  ca_->down = true;
  auto e = engine();
  step(*e);
  EXPECT_EQ(state().status, "retrying");
  ca_->down = false;
  ASSERT_TRUE(store_->request_renewal("main"));
  step(*e);  // same second: only the request makes it try
  EXPECT_EQ(state().status, "valid");
  EXPECT_NE(log_text().find("issuing certificate: renewal requested"), std::string::npos);
}

TEST_F(EngineTest, AnAttemptACrashInterruptedIsResumedAtOnce) {
  {
    auto e = engine();
    step(*e);
  }
  // As a kill -9 in the middle of a renewal leaves it: the state says
  // issuing, the order row is open (here: ready, key saved).
  auto s = state();
  s.status = "issuing";
  ASSERT_TRUE(store_->put_renewal_state(s));
  ca_->inject["finalize"].push_back(json_response(503, "busy", "text/plain"));
  {
    auto e = engine();
    ASSERT_TRUE(store_->request_renewal("main"));
    step(*e);  // the renewal stops at finalize, order left open
    EXPECT_EQ(store_->certificate_orders("main", 1).value().at(0).status, "ready");
  }
  s = state();
  s.status = "issuing";
  s.next_attempt_at = now_.load() + 86400;  // whatever the backoff said
  ASSERT_TRUE(store_->put_renewal_state(s));
  auto const orders_before = ca_->count("newOrder");
  auto e = engine();  // "restart"
  step(*e);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 2);
  EXPECT_EQ(ca_->count("newOrder"), orders_before);  // resumed, not reordered
  EXPECT_NE(log_text().find("resuming an attempt interrupted by a crash"), std::string::npos);
  EXPECT_EQ(state().status, "valid");
}

TEST_F(EngineTest, RevokeOperationRevokesAndReplaces) {
  auto e = engine();
  step(*e);
  auto const first = store_->current_certificate("main").value().value();
  auto const id = store_->request_operation({0, "revoke", "main", "keyCompromise", "", "", 0, 0}).value();
  step(*e);
  auto const op = store_->operation(id).value().value();
  EXPECT_EQ(op.status, "done") << op.result;
  EXPECT_NE(op.result.find("revoked serial " + first.serial), std::string::npos) << op.result;
  EXPECT_EQ(ca_->revoked_serials(), std::set<std::string>{first.serial});
  EXPECT_EQ(ca_->payloads("revokeCert").at(0).at("reason").as_int64(), 1);
  step(*e);  // the replacement
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 2);
}

TEST_F(EngineTest, RevokeOfAnUnknownCertificateFails) {
  auto e = engine();
  auto const id = store_->request_operation({0, "revoke", "nope", "superseded", "", "", 0, 0}).value();
  step(*e);
  auto const op = store_->operation(id).value().value();
  EXPECT_EQ(op.status, "failed");
  EXPECT_NE(op.result.find("no certificate named \"nope\""), std::string::npos);
}

TEST_F(EngineTest, AccountOperationsRunAlone) {
  auto e = engine();
  step(*e);
  auto const before = store_->account(ca_->directory_url()).value().value();
  auto const roll = store_->request_operation({0, "key-rollover", "", "", "", "", 0, 0}).value();
  step(*e);
  EXPECT_EQ(store_->operation(roll).value()->status, "done");
  EXPECT_NE(store_->account(ca_->directory_url()).value()->key_pem, before.key_pem);
  EXPECT_EQ(ca_->count("keyChange"), 1u);

  auto const deactivate = store_->request_operation({0, "deactivate-account", ca_->directory_url(), "", "", "", 0, 0}).value();
  step(*e);
  auto const op = store_->operation(deactivate).value().value();
  EXPECT_EQ(op.status, "done") << op.result;
  EXPECT_EQ(store_->account(ca_->directory_url()).value()->status, "deactivated");

  auto const wrong = store_->request_operation({0, "key-rollover", "https://elsewhere.test/dir", "", "", "", 0, 0}).value();
  step(*e);
  EXPECT_EQ(store_->operation(wrong).value()->status, "failed");
}

}  // namespace
}  // namespace edge::acme
