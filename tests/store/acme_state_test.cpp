// The store's ACME additions: renewal state rows, resumable order rows (key
// before finalize, profile, replaces, verbatim problem, generation),
// account status, and the operator's operation queue. Real SQLite file.
#include <edge/store/store.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace fs = std::filesystem;
using namespace edge::store;

namespace {

class AcmeStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "edge-acme-state-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    store_ = open_sqlite_store(dir_ / "edge.db").value();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(AcmeStateTest, RenewalStateRoundTripsAndUpdatesInPlace) {
  EXPECT_EQ(store_->renewal_state("main").value(), std::nullopt);
  RenewalState s;
  s.name = "main";
  s.status = "retrying";
  s.next_renewal_at = 100;
  s.renewal_reason = "lifetime rule";
  s.planned_generation = 3;
  s.ari_next_check_at = 200;
  s.failures = 2;
  s.last_attempt_at = 300;
  s.last_success_at = 250;
  s.next_attempt_at = 900;
  s.last_error = "Connection refused (urn:edge:error:transport)";
  s.last_problem = "{\n \"type\": \"urn:ietf:params:acme:error:rateLimited\"\n}";
  s.issuer = "https://ca.test/dir";
  ASSERT_TRUE(store_->put_renewal_state(s));
  auto got = store_->renewal_state("main").value().value();
  EXPECT_EQ(got.status, "retrying");
  EXPECT_EQ(got.next_renewal_at, 100);
  EXPECT_EQ(got.renewal_reason, "lifetime rule");
  EXPECT_EQ(got.planned_generation, 3);
  EXPECT_EQ(got.ari_next_check_at, 200);
  EXPECT_EQ(got.failures, 2);
  EXPECT_EQ(got.last_attempt_at, 300);
  EXPECT_EQ(got.last_success_at, 250);
  EXPECT_EQ(got.next_attempt_at, 900);
  EXPECT_EQ(got.last_error, s.last_error);
  EXPECT_EQ(got.last_problem, s.last_problem);  // verbatim, newlines included
  EXPECT_EQ(got.issuer, s.issuer);
  EXPECT_GT(got.updated_at, 0);

  s.status = "valid";
  s.failures = 0;
  ASSERT_TRUE(store_->put_renewal_state(s));
  RenewalState other = s;
  other.name = "api";
  ASSERT_TRUE(store_->put_renewal_state(other));
  auto const all = store_->renewal_states().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "api");
  EXPECT_EQ(all[1].name, "main");
  EXPECT_EQ(all[1].status, "valid");
  EXPECT_EQ(all[1].failures, 0);
}

TEST_F(AcmeStateTest, OrderRowsKeepTheResumeFields) {
  AcmeOrderRecord o;
  o.certificate_name = "main";
  o.directory_url = "https://ca.test/dir";
  o.order_url = "https://ca.test/order/1";
  o.status = "ready";
  o.private_key_pem = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n";
  o.profile = "shortlived";
  o.replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
  o.problem = R"({"type":"urn:ietf:params:acme:error:serverInternal"})";
  o.id = store_->put_order(o).value();
  AcmeOrderRecord other = o;
  other.id = 0;
  other.certificate_name = "api";
  ASSERT_TRUE(store_->put_order(other));

  o.status = "valid";
  o.certificate_generation = 4;
  o.private_key_pem.clear();
  ASSERT_TRUE(store_->put_order(o));

  auto const mine = store_->certificate_orders("main", 10).value();
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].status, "valid");
  EXPECT_EQ(mine[0].certificate_generation, 4);
  EXPECT_EQ(mine[0].private_key_pem, "");
  EXPECT_EQ(mine[0].profile, "shortlived");
  EXPECT_EQ(mine[0].replaces, o.replaces);
  EXPECT_EQ(mine[0].problem, o.problem);
  EXPECT_EQ(store_->recent_orders(10).value().size(), 2u);
  EXPECT_EQ(store_->certificate_orders("api", 10).value().at(0).private_key_pem, other.private_key_pem);
}

TEST_F(AcmeStateTest, AccountStatus) {
  AcmeAccount a{"https://ca.test/dir", "https://ca.test/acct/1", "key", "[]", 5};
  ASSERT_TRUE(store_->put_account(a));
  EXPECT_EQ(store_->account(a.directory_url).value()->status, "valid");
  a.status = "deactivated";
  ASSERT_TRUE(store_->put_account(a));
  EXPECT_EQ(store_->account(a.directory_url).value()->status, "deactivated");
}

TEST_F(AcmeStateTest, OperationsAreTakenOnceAndFinished) {
  EXPECT_TRUE(store_->take_operations().value().empty());
  auto const revoke = store_->request_operation({0, "revoke", "main", "keyCompromise", "", "", 0, 0}).value();
  auto const roll = store_->request_operation({0, "key-rollover", "", "", "", "", 0, 0}).value();
  EXPECT_EQ(store_->operation(revoke).value()->status, "pending");
  auto const taken = store_->take_operations().value();
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].id, revoke);
  EXPECT_EQ(taken[0].kind, "revoke");
  EXPECT_EQ(taken[0].target, "main");
  EXPECT_EQ(taken[0].argument, "keyCompromise");
  EXPECT_EQ(taken[0].status, "running");
  EXPECT_EQ(taken[1].id, roll);
  EXPECT_TRUE(store_->take_operations().value().empty());  // taken once

  ASSERT_TRUE(store_->finish_operation(revoke, "done", "revoked serial 01"));
  auto const finished = store_->operation(revoke).value().value();
  EXPECT_EQ(finished.status, "done");
  EXPECT_EQ(finished.result, "revoked serial 01");
  EXPECT_GT(finished.finished_at, 0);
  EXPECT_EQ(store_->operation(roll).value()->status, "running");
  EXPECT_EQ(store_->operation(12345).value(), std::nullopt);
  // Unknown kinds are refused by the schema.
  EXPECT_FALSE(store_->request_operation({0, "format-disk", "", "", "", "", 0, 0}));
}

}  // namespace
