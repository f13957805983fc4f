#include <edge/store/store.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace edge::store;

namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "edge-store-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ / "edge.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> open(OpenMode mode = OpenMode::read_write_create) {
    auto store = open_sqlite_store(path_, mode);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  // Runs SQL on a file behind the store's back, to fabricate files it must refuse.
  static void raw_sql(fs::path const& path, char const* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  static std::int64_t raw_pragma(fs::path const& path, char const* pragma) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, pragma, -1, &st, nullptr);
    std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }

  static std::string file_bytes(fs::path const& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  static CertificateRecord cert(std::string name, std::string serial) {
    CertificateRecord c;
    c.name = std::move(name);
    c.identifiers = {"edge.test", "127.0.0.1", "::1"};
    c.chain_pem = "-----BEGIN CERTIFICATE-----\n" + serial + "\n-----END CERTIFICATE-----\n";
    c.private_key_pem = "key for " + serial;
    c.serial = std::move(serial);
    c.fingerprint_sha256 = std::string(64, 'a');
    c.not_before = 1'700'000'000;
    c.not_after = 1'700'000'000 + 90 * 86400;
    c.issuer = "CN=Test CA,O=Edge";
    c.source = CertificateSource::manual;
    return c;
  }

  static HandshakeRecord handshake(std::int64_t ts, std::string outcome, std::string cert_name) {
    HandshakeRecord h;
    h.timestamp_us = ts;
    h.outcome = std::move(outcome);
    h.error_type = h.outcome == "ok" ? "" : "no_shared_cipher";
    h.alert_sent = h.outcome == "ok" ? "none" : "handshake_failure";
    h.client_address = "::1";
    h.client_port = 40000;
    h.server_port = 8443;
    h.server_name = "edge.test";
    h.protocol_version = "TLSv1.3";
    h.cipher = "TLS_AES_128_GCM_SHA256";
    h.cert_name = std::move(cert_name);
    h.cert_serial = "01";
    h.cert_sha256 = std::string(64, 'b');
    h.cert_generation = 1;
    h.duration_us = 1234;
    h.json = "{\"ts\":" + std::to_string(ts) + "}";
    return h;
  }

  fs::path dir_;
  fs::path path_;
};

TEST_F(SqliteStoreTest, CreatesReopensAndMigratesIdempotently) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_certificate(cert("main", "01")));
  }
  for (auto mode : {OpenMode::read_write_create, OpenMode::read_write, OpenMode::read_only}) {
    auto store = open(mode);
    ASSERT_TRUE(store);
    auto current = store->current_certificate("main");
    ASSERT_TRUE(current && *current);
    EXPECT_EQ((*current)->serial, "01");
  }
  EXPECT_EQ(raw_pragma(path_, "PRAGMA user_version"), 3);  // one per migration step
  EXPECT_EQ(raw_pragma(path_, "PRAGMA application_id"), 0x45444745);
  // journal_mode reads as text; WAL shows in the header's read/write versions (2 = WAL).
  auto const bytes = file_bytes(path_);
  ASSERT_GE(bytes.size(), 20u);
  EXPECT_EQ(bytes[18], 2);
  EXPECT_EQ(bytes[19], 2);
}

TEST_F(SqliteStoreTest, CreatesFileWithMode0600WhateverTheUmask) {
  auto const old_umask = ::umask(0);
  auto store = open();
  ::umask(old_umask);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->request_renewal("main"));  // make sure -wal and -shm exist
  for (char const* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    auto const file = path_.string() + suffix;
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
}

TEST_F(SqliteStoreTest, RefusesForeignSqliteFileAndLeavesItUnchanged) {
  raw_sql(path_, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes (body) VALUES ('keep me');");
  auto const before = file_bytes(path_);
  for (auto mode : {OpenMode::read_write_create, OpenMode::read_write, OpenMode::read_only}) {
    auto store = open_sqlite_store(path_, mode);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find(path_.string()), std::string::npos)
        << store.error().message;
    EXPECT_NE(store.error().message.find("not an edge store"), std::string::npos);
  }
  EXPECT_EQ(file_bytes(path_), before);
  EXPECT_FALSE(fs::exists(path_.string() + "-wal"));
}

TEST_F(SqliteStoreTest, RefusesGarbageFileAndLeavesItUnchanged) {
  {
    std::ofstream out(path_, std::ios::binary);
    for (int i = 0; i < 200; ++i) out << "this is not a database " << i << '\n';
  }
  auto const before = file_bytes(path_);
  for (auto mode : {OpenMode::read_write_create, OpenMode::read_only}) {
    auto store = open_sqlite_store(path_, mode);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find(path_.string()), std::string::npos);
    EXPECT_NE(store.error().message.find("not an SQLite database"), std::string::npos)
        << store.error().message;
  }
  EXPECT_EQ(file_bytes(path_), before);
}

TEST_F(SqliteStoreTest, RefusesNewerSchema) {
  open().reset();
  raw_sql(path_, "PRAGMA user_version = 99");
  auto store = open_sqlite_store(path_);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

TEST_F(SqliteStoreTest, MissingFileIsAnErrorUnlessCreating) {
  for (auto mode : {OpenMode::read_only, OpenMode::read_write}) {
    auto store = open_sqlite_store(path_, mode);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find(path_.string()), std::string::npos);
    EXPECT_FALSE(fs::exists(path_));
  }
}

TEST_F(SqliteStoreTest, ReadOnlyRefusesAnUnmigratedFile) {
  std::ofstream{path_};  // empty file: a database SQLite has yet to write
  auto store = open_sqlite_store(path_, OpenMode::read_only);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("older"), std::string::npos) << store.error().message;
  EXPECT_EQ(fs::file_size(path_), 0u);
}

TEST_F(SqliteStoreTest, PutCertificateAssignsGenerationsAndKeepsHistory) {
  auto store = open();
  EXPECT_EQ(store->put_certificate(cert("main", "01")).value(), 1);
  EXPECT_EQ(store->put_certificate(cert("other", "0A")).value(), 1);
  EXPECT_EQ(store->put_certificate(cert("main", "02")).value(), 2);

  auto current = store->current_certificate("main").value();
  ASSERT_TRUE(current);
  auto const expected = cert("main", "02");
  EXPECT_GT(current->id, 0);
  EXPECT_EQ(current->generation, 2);
  EXPECT_EQ(current->identifiers, expected.identifiers);
  EXPECT_EQ(current->chain_pem, expected.chain_pem);
  EXPECT_EQ(current->private_key_pem, expected.private_key_pem);
  EXPECT_EQ(current->serial, "02");
  EXPECT_EQ(current->fingerprint_sha256, expected.fingerprint_sha256);
  EXPECT_EQ(current->not_before, expected.not_before);
  EXPECT_EQ(current->not_after, expected.not_after);
  EXPECT_EQ(current->issuer, expected.issuer);
  EXPECT_EQ(current->source, CertificateSource::manual);
  EXPECT_GT(current->created_at, 1'700'000'000);

  EXPECT_FALSE(store->current_certificate("absent").value());
  auto all = store->current_certificates().value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "main");
  EXPECT_EQ(all[0].serial, "02");
  EXPECT_EQ(all[1].name, "other");

  auto history = store->certificate_history("main").value();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].generation, 2);
  EXPECT_EQ(history[0].serial, "02");
  EXPECT_EQ(history[1].generation, 1);
  EXPECT_EQ(history[1].serial, "01");
}

TEST_F(SqliteStoreTest, RejectedPutLeavesPreviousCertificateCurrent) {
  auto store = open();
  ASSERT_EQ(store->put_certificate(cert("main", "01")).value(), 1);
  // Fails on the INSERT, after the UPDATE that cleared is_current: only a
  // rollback brings generation 1 back as current.
  auto broken = cert("main", "02");
  broken.private_key_pem.clear();
  auto rejected = store->put_certificate(broken);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().message.find(path_.string()), std::string::npos);
  EXPECT_NE(rejected.error().message.find("CHECK constraint failed"), std::string::npos)
      << rejected.error().message;

  auto current = store->current_certificate("main").value();
  ASSERT_TRUE(current);
  EXPECT_EQ(current->generation, 1);
  EXPECT_EQ(store->certificate_history("main").value().size(), 1u);
  EXPECT_EQ(store->put_certificate(cert("main", "03")).value(), 2);
}

TEST_F(SqliteStoreTest, AccountsRoundTrip) {
  auto store = open();
  std::string const directory = "https://acme.test/directory";
  EXPECT_FALSE(store->account(directory).value());
  AcmeAccount a{directory, "https://acme.test/acct/1", "KEY1", R"(["mailto:ops@edge.test"])", 0};
  ASSERT_TRUE(store->put_account(a));
  auto got = store->account(directory).value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->account_url, a.account_url);
  EXPECT_EQ(got->key_pem, "KEY1");
  EXPECT_EQ(got->contact_json, a.contact_json);
  EXPECT_GT(got->created_at, 0);

  a.account_url = "https://acme.test/acct/2";
  a.key_pem = "KEY2";
  a.created_at = 5;
  ASSERT_TRUE(store->put_account(a));
  auto updated = store->account(directory).value();
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->account_url, "https://acme.test/acct/2");
  EXPECT_EQ(updated->key_pem, "KEY2");
  EXPECT_EQ(updated->created_at, got->created_at);  // first registration time is kept
}

TEST_F(SqliteStoreTest, OrdersAndChallenges) {
  auto store = open();
  AcmeOrderRecord order{0, "main", "https://acme.test/dir", "https://acme.test/order/1",
                        "pending", "", 0, 0};
  auto const id = store->put_order(order).value();
  EXPECT_GT(id, 0);
  order.id = id;
  order.status = "invalid";
  order.error = "challenge failed";
  EXPECT_EQ(store->put_order(order).value(), id);
  auto const second = store->put_order({0, "other", "d", "o2", "pending", "", 0, 0}).value();

  auto orders = store->recent_orders(10).value();
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].id, second);
  EXPECT_EQ(orders[1].status, "invalid");
  EXPECT_EQ(orders[1].error, "challenge failed");
  EXPECT_EQ(store->recent_orders(1).value().size(), 1u);
  order.id = 999;
  EXPECT_FALSE(store->put_order(order));

  AcmeChallengeRecord ch{id, "dns:edge.test", "https://acme.test/authz/1",
                         "https://acme.test/chall/1", "pending", ""};
  ASSERT_TRUE(store->put_challenge(ch));
  ch.status = "valid";
  ASSERT_TRUE(store->put_challenge(ch));
  ASSERT_TRUE(store->put_challenge({id, "ip:127.0.0.1", "a2", "c2", "pending", ""}));
  auto challenges = store->challenges(id).value();
  ASSERT_EQ(challenges.size(), 2u);
  EXPECT_EQ(challenges[0].identifier, "dns:edge.test");
  EXPECT_EQ(challenges[0].status, "valid");
  EXPECT_EQ(challenges[0].challenge_url, "https://acme.test/chall/1");
  EXPECT_EQ(challenges[1].identifier, "ip:127.0.0.1");
  // foreign_keys=ON: a challenge needs its order.
  EXPECT_FALSE(store->put_challenge({12345, "dns:x", "a", "c", "pending", ""}));
}

TEST_F(SqliteStoreTest, RenewalRequestsAreQueuedAndTakenOnce) {
  auto store = open();
  EXPECT_TRUE(store->take_renewal_requests().value().empty());
  ASSERT_TRUE(store->request_renewal("main"));
  {
    auto other = open();  // as edgectl would, from another connection
    ASSERT_TRUE(other->request_renewal("other"));
    ASSERT_TRUE(other->request_renewal("main"));
  }
  EXPECT_EQ(store->take_renewal_requests().value(), (std::vector<std::string>{"main", "other"}));
  EXPECT_TRUE(store->take_renewal_requests().value().empty());
}

TEST_F(SqliteStoreTest, HandshakesBatchQueryAndCounters) {
  auto store = open();
  std::vector<HandshakeRecord> batch;
  for (int i = 0; i < 1000; ++i) {
    char const* outcome = i % 10 == 0 ? "failed" : i % 25 == 1 ? "timeout" : i % 50 == 2 ? "acme_challenge" : "ok";
    batch.push_back(handshake(1'700'000'000'000'000 + i, outcome, i % 2 ? "main" : "other"));
  }
  batch.push_back(handshake(1'600'000'000'000'000, "failed", ""));
  ASSERT_TRUE(store->append_handshakes(batch));
  ASSERT_TRUE(store->append_handshakes({}));

  auto newest = store->handshakes({std::nullopt, false, 5}).value();
  ASSERT_EQ(newest.size(), 5u);
  EXPECT_EQ(newest[0].timestamp_us, 1'700'000'000'000'999);
  EXPECT_EQ(newest[4].timestamp_us, 1'700'000'000'000'995);
  auto const& h = newest[0];
  auto const expected = handshake(h.timestamp_us, "ok", "main");
  EXPECT_GT(h.id, 0);
  EXPECT_EQ(h.outcome, "ok");
  EXPECT_EQ(h.alert_sent, "none");
  EXPECT_EQ(h.client_address, "::1");
  EXPECT_EQ(h.client_port, 40000);
  EXPECT_EQ(h.server_port, 8443);
  EXPECT_EQ(h.server_name, "edge.test");
  EXPECT_EQ(h.protocol_version, "TLSv1.3");
  EXPECT_EQ(h.cipher, expected.cipher);
  EXPECT_EQ(h.cert_name, "main");
  EXPECT_EQ(h.cert_serial, "01");
  EXPECT_EQ(h.cert_sha256, expected.cert_sha256);
  EXPECT_EQ(h.cert_generation, 1);
  EXPECT_EQ(h.duration_us, 1234);
  EXPECT_EQ(h.json, expected.json);

  EXPECT_EQ(store->handshakes({std::nullopt, false, 0}).value().size(), 1001u);
  auto mains = store->handshakes({"main", false, 1000}).value();
  EXPECT_EQ(mains.size(), 500u);
  for (auto const& r : mains) EXPECT_EQ(r.cert_name, "main");

  auto failed = store->handshakes({std::nullopt, true, 1000}).value();
  auto const expected_failed = std::count_if(batch.begin(), batch.end(), [](auto const& r) {
    return r.outcome == "failed" || r.outcome == "timeout";
  });
  EXPECT_EQ(static_cast<std::ptrdiff_t>(failed.size()), expected_failed);
  for (auto const& r : failed) EXPECT_TRUE(r.outcome == "failed" || r.outcome == "timeout");
  EXPECT_EQ(failed.back().cert_name, "");  // oldest last

  auto counters = store->handshake_counters().value();
  ASSERT_EQ(counters.size(), 3u);
  EXPECT_EQ(counters[0].cert_name, "");
  EXPECT_EQ(counters[0].ok, 0);
  EXPECT_EQ(counters[0].failed, 1);
  std::int64_t ok = 0, bad = 0;
  for (auto const& r : batch)
    if (r.cert_name == "main") {
      ok += r.outcome == "ok";
      bad += r.outcome == "failed" || r.outcome == "timeout";
    }
  EXPECT_EQ(counters[1].cert_name, "main");
  EXPECT_EQ(counters[1].ok, ok);
  EXPECT_EQ(counters[1].failed, bad);
  EXPECT_EQ(counters[2].cert_name, "other");
}

TEST_F(SqliteStoreTest, ReadOnlyCannotWrite) {
  auto writer = open();
  ASSERT_TRUE(writer->put_certificate(cert("main", "01")));
  auto reader = open(OpenMode::read_only);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->current_certificates().value().size(), 1u);

  auto put = reader->put_certificate(cert("main", "02"));
  ASSERT_FALSE(put);
  EXPECT_NE(put.error().message.find(path_.string()), std::string::npos);
  EXPECT_NE(put.error().message.find("readonly"), std::string::npos) << put.error().message;
  EXPECT_FALSE(reader->request_renewal("main"));
  EXPECT_FALSE(reader->append_handshakes(std::vector{handshake(1, "ok", "main")}));

  // The reader sees the writer's later commits.
  ASSERT_EQ(writer->put_certificate(cert("main", "03")).value(), 2);
  EXPECT_EQ(reader->current_certificate("main").value()->serial, "03");
}

TEST_F(SqliteStoreTest, ReadOnlyOpensAClosedWalStore) {
  open()->put_certificate(cert("main", "01")).value();  // last connection closed: no -wal/-shm left
  auto reader = open(OpenMode::read_only);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->current_certificate("main").value()->serial, "01");
}

}  // namespace

namespace {

// Counts handshakes from a fresh process, as edgectl would see them.
std::int64_t count_in_child(fs::path const& path) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return -1;
  pid_t const pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::int64_t n = -1;
    if (auto s = open_sqlite_store(path, OpenMode::read_only)) {
      if (auto rows = (*s)->handshakes({std::nullopt, false, 0})) n = static_cast<std::int64_t>(rows->size());
    }
    [[maybe_unused]] auto w = ::write(pipe_fds[1], &n, sizeof n);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::int64_t n = -2;
  [[maybe_unused]] auto r = ::read(pipe_fds[0], &n, sizeof n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return n;
}

// A writer in another process that opens and closes the store.
void open_and_close_in_child(fs::path const& path) {
  pid_t const pid = ::fork();
  if (pid == 0) {
    { auto s = open_sqlite_store(path, OpenMode::read_write); }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace

// Regression: opening a second connection in the same process must not drop
// the first one's POSIX locks; otherwise another process closing the store
// believes it is the last user, deletes the WAL, and every later write of the
// first connection vanishes into an unlinked file (seen in edged: handshake
// records written but invisible to edgectl).
TEST_F(SqliteStoreTest, SecondConnectionInProcessKeepsWalWritesVisible) {
  auto writer = open();
  ASSERT_TRUE(writer);
  HandshakeRecord h;
  h.timestamp_us = 1;
  h.outcome = "ok";
  h.json = "{}";
  ASSERT_TRUE(writer->append_handshakes(std::span<HandshakeRecord const>(&h, 1)));
  auto second = open();  // e.g. the renewal thread's own connection
  ASSERT_TRUE(second);
  auto third = open();
  ASSERT_TRUE(third);
  EXPECT_EQ(count_in_child(path_), 1);  // edgectl reading
  open_and_close_in_child(path_);       // edgectl renew
  ASSERT_TRUE(second->append_handshakes(std::span<HandshakeRecord const>(&h, 1)));
  ASSERT_TRUE(writer->append_handshakes(std::span<HandshakeRecord const>(&h, 1)));
  EXPECT_EQ(count_in_child(path_), 3);
}

TEST_F(SqliteStoreTest, CountersSurviveRetentionAndCountUnkeptRows) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<HandshakeRecord> batch;
  for (int i = 0; i < 10; ++i) {
    HandshakeRecord h;
    h.timestamp_us = 1000 + i;
    h.outcome = i < 6 ? "ok" : "failed";
    h.error_type = i < 6 ? "" : "protocol_version";
    h.cert_name = "main";
    h.json = "{}";
    h.keep_row = i != 0;     // one success left out by sampling
    h.count = i == 9 ? 5 : 1;  // one record folding five identical failures
    batch.push_back(h);
  }
  ASSERT_TRUE(store->append_handshakes(batch));
  auto rows = store->handshakes({std::nullopt, false, 0});
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->size(), 9u);

  auto pruned = store->prune_handshakes(1005, 2);  // drop ts < 1005, then keep the newest 2
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 7);
  rows = store->handshakes({std::nullopt, false, 0});
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].timestamp_us, 1009);

  auto counters = store->handshake_counters();
  ASSERT_TRUE(counters);
  ASSERT_EQ(counters->size(), 1u);
  EXPECT_EQ((*counters)[0].ok, 6);
  EXPECT_EQ((*counters)[0].failed, 8);  // 3 + 5 folded

  auto summary = store->handshake_summary();
  ASSERT_TRUE(summary);
  ASSERT_EQ(summary->size(), 2u);
  EXPECT_EQ((*summary)[0].error_type, "protocol_version");
  EXPECT_EQ((*summary)[0].count, 8);
  EXPECT_EQ((*summary)[1].outcome, "ok");
  EXPECT_EQ((*summary)[1].count, 6);
}
