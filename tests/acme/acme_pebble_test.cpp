// The ACME client against a real Pebble on loopback (started by
// run_pebble_tests.py with PEBBLE_VA_ALWAYS_VALID=1 and
// PEBBLE_WFE_NONCEREJECT=50). Nothing answers tls-alpn-01 here: the
// responder only records what the client published and withdrew.
#include <edge/acme/acme_client.hpp>
#include <edge/acme/renewal_scheduler.hpp>
#include <edge/store/store.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <openssl/x509_vfy.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

namespace edge::acme {
namespace {

using namespace edge::acme::test;
using namespace std::chrono_literals;

std::string env(char const* name) {
  char const* value = std::getenv(name);
  return value ? value : "";
}

constexpr char const* v4_reverse = "1.0.0.127.in-addr.arpa";
constexpr char const* v6_reverse =
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa";

class RecordingResponder final : public ChallengeResponder {
 public:
  void publish(std::string const& server_name, std::string const& certificate_pem,
               std::string const& private_key_pem) override {
    std::lock_guard lock(mutex_);
    published_.push_back(server_name);
    EXPECT_FALSE(active_.contains(server_name)) << "published twice: " << server_name;
    EXPECT_NE(certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
    EXPECT_NE(private_key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
    active_.insert(server_name);
  }
  void withdraw(std::string const& server_name) override {
    std::lock_guard lock(mutex_);
    withdrawn_.push_back(server_name);
    EXPECT_TRUE(active_.erase(server_name) == 1) << "withdrawn but not published: " << server_name;
  }

  std::multiset<std::string> published() const {
    std::lock_guard lock(mutex_);
    return {published_.begin(), published_.end()};
  }
  std::multiset<std::string> withdrawn() const {
    std::lock_guard lock(mutex_);
    return {withdrawn_.begin(), withdrawn_.end()};
  }
  std::size_t active() const {
    std::lock_guard lock(mutex_);
    return active_.size();
  }
  void clear() {
    std::lock_guard lock(mutex_);
    published_.clear();
    withdrawn_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> published_;
  std::vector<std::string> withdrawn_;
  std::set<std::string> active_;
};

std::vector<X509Cert> parse_chain(std::string const& pem) {
  std::vector<X509Cert> chain;
  Bio const bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    chain.emplace_back(cert);
  return chain;
}

std::string read_file(std::string const& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Verifies leaf -> intermediates -> Pebble's root (when the runner gave it).
void expect_chain_verifies(std::string const& chain_pem) {
  auto const root_path = env("EDGE_TEST_ACME_ROOT");
  if (root_path.empty()) return;
  auto chain = parse_chain(chain_pem);
  ASSERT_GE(chain.size(), 2u);
  auto roots = parse_chain(read_file(root_path));
  ASSERT_EQ(roots.size(), 1u);

  std::unique_ptr<X509_STORE, Deleter<&X509_STORE_free>> trust(X509_STORE_new());
  X509_STORE_add_cert(trust.get(), roots[0].get());
  std::unique_ptr<STACK_OF(X509), Deleter<[](STACK_OF(X509) * s) { sk_X509_free(s); }>>
      untrusted(sk_X509_new_null());
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, Deleter<&X509_STORE_CTX_free>> ctx(X509_STORE_CTX_new());
  ASSERT_EQ(X509_STORE_CTX_init(ctx.get(), trust.get(), chain[0].get(), untrusted.get()), 1);
  EXPECT_EQ(X509_verify_cert(ctx.get()), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::string generate_test_key_pem() {
  Pkey key(EVP_EC_gen("P-256"));
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string upper_hex_serial(X509* cert) {
  Bignum const bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string der_sha256_hex(X509* cert) {
  unsigned char* der = nullptr;
  int const length = i2d_X509(cert, &der);
  auto const digest = sha256_bytes(std::string_view(reinterpret_cast<char*>(der), length));
  OPENSSL_free(der);
  std::string out;
  for (auto b : digest) {
    static constexpr char digits[] = "0123456789abcdef";
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

class AcmePebbleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.directory_url = env("EDGE_TEST_ACME_DIRECTORY");
    config_.ca_bundle = env("EDGE_TEST_ACME_CA");
    if (config_.directory_url.empty() || config_.ca_bundle.empty())
      FAIL() << "EDGE_TEST_ACME_DIRECTORY / EDGE_TEST_ACME_CA not set: run via "
                      "tests/acme/run_pebble_tests.py";
    config_.contact = {"mailto:ops@edge.test"};
    config_.poll_interval = 100ms;

    std::string pattern =
        (std::filesystem::temp_directory_path() / "edge-acme-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    store_path_ = dir_ / "edge.db";
    auto opened = store::open_sqlite_store(store_path_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  AcmeClientOptions options() {
    AcmeClientOptions o;
    o.log = [](std::string const& line) { std::fprintf(stderr, "  acme: %s\n", line.c_str()); };
    return o;
  }

  // Every challenge published was withdrawn, under the right SNI names. With
  // PEBBLE_VA_ALWAYS_VALID this runner's Pebble may hand out an authorization
  // that is already valid (seen in CI for any identifier): then nothing is
  // published for that name. The real validation path, with every name
  // answered, is the spine test's (tests/integration/test_spine.py).
  void expect_challenges_for(std::multiset<std::string> const& names) {
    auto const published = responder_.published();
    EXPECT_EQ(responder_.withdrawn(), published);
    EXPECT_EQ(responder_.active(), 0u);
    for (auto const& name : std::set<std::string>(published.begin(), published.end())) {
      EXPECT_LE(published.count(name), names.count(name)) << name << " was not in the order";
    }
  }

  AcmeConfig config_;
  std::filesystem::path dir_;
  std::filesystem::path store_path_;
  std::unique_ptr<store::Store> store_;
  RecordingResponder responder_;
};

TEST_F(AcmePebbleTest, RegistersAccountOnceAndStoresIt) {
  AcmeClient client(config_, *store_, responder_, options());
  auto const account = client.ensure_account();
  ASSERT_TRUE(account) << account.error().message();
  EXPECT_NE(account->account_url.find("/my-account/"), std::string::npos);
  EXPECT_NE(account->key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(account->contact_json, R"(["mailto:ops@edge.test"])");

  auto const stored = store_->account(config_.directory_url);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->account_url, account->account_url);
  EXPECT_EQ((*stored)->key_pem, account->key_pem);

  // A second client reuses the stored account instead of registering.
  AcmeClient again(config_, *store_, responder_, options());
  auto const reused = again.ensure_account();
  ASSERT_TRUE(reused);
  EXPECT_EQ(reused->account_url, account->account_url);
}

TEST_F(AcmePebbleTest, IssuesDnsAndIpCertificateTwice) {
  CertificateSpec const spec{"main", {"edge.test", "127.0.0.1", "::1"}};
  std::string account_url;
  std::string first_serial;
  {
    AcmeClient client(config_, *store_, responder_, options());
    auto const started = std::chrono::steady_clock::now();
    auto const record = client.issue(spec);
    auto const took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
    ASSERT_TRUE(record) << record.error().message();
    std::fprintf(stderr, "  first issuance (with account registration): %.3f s\n", took.count());

    EXPECT_EQ(record->name, "main");
    EXPECT_EQ(record->generation, 1);
    EXPECT_EQ(record->source, store::CertificateSource::acme);
    EXPECT_EQ(std::multiset<std::string>(record->identifiers.begin(), record->identifiers.end()),
              (std::multiset<std::string>{"edge.test", "127.0.0.1", "::1"}));

    auto const chain = parse_chain(record->chain_pem);
    ASSERT_GE(chain.size(), 1u);
    X509* leaf = chain[0].get();
    GeneralNames const names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr)));
    auto sans = san_entries(names.get());
    std::sort(sans.begin(), sans.end());
    EXPECT_EQ(sans, (std::vector<std::string>{"DNS:edge.test", "IP:00000000000000000000000000000001",
                                              "IP:7f000001"}));
    EXPECT_EQ(record->serial, upper_hex_serial(leaf));
    // records.hpp says lower-case hex, the store writes upper case: compare the value.
    EXPECT_EQ(lower(record->fingerprint_sha256), der_sha256_hex(leaf));
    auto const key = parse_private_key(record->private_key_pem);
    ASSERT_TRUE(key);
    EXPECT_EQ(X509_check_private_key(leaf, key.get()), 1);
    EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);  // ecdsa_p256 default
    expect_chain_verifies(record->chain_pem);

    auto const current = store_->current_certificate("main");
    ASSERT_TRUE(current && *current);
    EXPECT_EQ((*current)->serial, record->serial);
    EXPECT_EQ((*current)->fingerprint_sha256, record->fingerprint_sha256);
    EXPECT_EQ((*current)->generation, 1);
    EXPECT_EQ((*current)->private_key_pem, record->private_key_pem);

    expect_challenges_for({"edge.test", v4_reverse, v6_reverse});

    auto const orders = store_->recent_orders(10);
    ASSERT_TRUE(orders);
    ASSERT_FALSE(orders->empty());
    EXPECT_EQ(orders->front().certificate_name, "main");
    EXPECT_EQ(orders->front().status, "valid");
    EXPECT_EQ(orders->front().directory_url, config_.directory_url);
    auto const challenges = store_->challenges(orders->front().id);
    ASSERT_TRUE(challenges) << challenges.error().message;
    std::multiset<std::string> labels;
    for (auto const& c : *challenges) {
      labels.insert(c.identifier);
      EXPECT_EQ(c.status, "valid") << c.identifier;
      EXPECT_NE(c.authorization_url.find("/authZ/"), std::string::npos);
      EXPECT_NE(c.challenge_url.find("/chalZ/"), std::string::npos);
    }
    EXPECT_EQ(labels, (std::multiset<std::string>{"dns:edge.test", "ip:127.0.0.1", "ip:::1"}));

    account_url = store_->account(config_.directory_url).value()->account_url;
    first_serial = record->serial;
  }
  responder_.clear();

  // A new client (as after a restart of edged) reuses the stored account.
  AcmeClient client(config_, *store_, responder_, options());
  auto const started = std::chrono::steady_clock::now();
  auto const second = client.issue(spec);
  auto const took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
  ASSERT_TRUE(second) << second.error().message();
  std::fprintf(stderr, "  second issuance (account reused): %.3f s\n", took.count());
  EXPECT_EQ(second->generation, 2);
  EXPECT_NE(second->serial, first_serial);
  EXPECT_EQ(store_->account(config_.directory_url).value()->account_url, account_url);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 2);
  expect_challenges_for({"edge.test", v4_reverse, v6_reverse});
}

TEST_F(AcmePebbleTest, FindsItsAccountWithOnlyReturnExistingWhenTheUrlIsLost) {
  AcmeClient first(config_, *store_, responder_, options());
  auto account = first.ensure_account();
  ASSERT_TRUE(account) << account.error().message();
  // The stored URL no longer names the account (e.g. restored from an old
  // backup); the key is still the account's.
  auto lost = *account;
  lost.account_url = lost.account_url.substr(0, lost.account_url.rfind('/') + 1) +
                     "7fffffffffffffff";
  ASSERT_TRUE(store_->put_account(lost));

  AcmeClient client(config_, *store_, responder_, options());
  auto const record = client.issue({"lost", {"lost.edge.test"}});
  ASSERT_TRUE(record) << record.error().message();
  auto const recovered = store_->account(config_.directory_url).value();
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->account_url, account->account_url);  // found, not re-registered
  EXPECT_EQ(recovered->key_pem, account->key_pem);
}

TEST_F(AcmePebbleTest, RegistersANewAccountWhenTheServerForgotTheKey) {
  // A key and URL the server never saw: Pebble after a restart looks the same.
  AcmeClient first(config_, *store_, responder_, options());
  ASSERT_TRUE(first.ensure_account());
  auto forgotten = store_->account(config_.directory_url).value().value();
  auto const stranger = generate_test_key_pem();
  forgotten.key_pem = stranger;
  forgotten.account_url = forgotten.account_url.substr(0, forgotten.account_url.rfind('/') + 1) +
                          "7ffffffffffffffe";
  ASSERT_TRUE(store_->put_account(forgotten));

  AcmeClient client(config_, *store_, responder_, options());
  auto const record = client.issue({"forgotten", {"forgotten.edge.test"}});
  ASSERT_TRUE(record) << record.error().message();
  auto const replaced = store_->account(config_.directory_url).value().value();
  EXPECT_NE(replaced.account_url, forgotten.account_url);
  EXPECT_NE(replaced.key_pem, stranger);  // fresh key
}

TEST_F(AcmePebbleTest, HonoursKeyType) {
  struct Case {
    KeyType type;
    int base_id;
    int bits;
  };
  for (auto const& c : {Case{KeyType::ecdsa_p384, EVP_PKEY_EC, 384},
                        Case{KeyType::rsa_2048, EVP_PKEY_RSA, 2048}}) {
    auto config = config_;
    config.key_type = c.type;
    AcmeClient client(config, *store_, responder_, options());
    auto const record = client.issue({"keys", {"keys.edge.test"}});
    ASSERT_TRUE(record) << record.error().message();
    auto const chain = parse_chain(record->chain_pem);
    ASSERT_FALSE(chain.empty());
    EVP_PKEY* pub = X509_get0_pubkey(chain[0].get());
    EXPECT_EQ(EVP_PKEY_get_base_id(pub), c.base_id);
    EXPECT_EQ(EVP_PKEY_get_bits(pub), c.bits);
  }
}

TEST_F(AcmePebbleTest, Rs256AccountKey) {
  IssuerConfig issuer{config_.directory_url, config_.ca_bundle, config_.contact};
  issuer.account_key_type = KeyType::rsa_2048;
  AcmeClient client(issuer, *store_, responder_, options());
  auto const record = client.issue({"rsa-account", {"rsa-account.edge.test"}});
  ASSERT_TRUE(record) << record.error().message();
  auto const key = parse_private_key(store_->account(config_.directory_url).value()->key_pem);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_RSA);
}

TEST_F(AcmePebbleTest, ReportsUnreachableDirectory) {
  auto config = config_;
  config.directory_url = "https://127.0.0.1:1/dir";
  AcmeClient client(config, *store_, responder_, options());
  auto const record = client.issue({"nowhere", {"nowhere.edge.test"}});
  ASSERT_FALSE(record);
  EXPECT_EQ(record.error().type, problem::transport);
  EXPECT_EQ(responder_.active(), 0u);
}

class StoredRecords {
 public:
  void add(store::CertificateRecord const& record) {
    std::lock_guard lock(mutex_);
    records_.push_back(record);
    cv_.notify_all();
  }
  // The record with `generation`, waiting at most `timeout` for it.
  std::optional<store::CertificateRecord> wait_for(std::int64_t generation,
                                                   std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    auto const found = [&] {
      return std::find_if(records_.begin(), records_.end(), [&](auto const& r) {
        return r.generation == generation;
      });
    };
    if (!cv_.wait_for(lock, timeout, [&] { return found() != records_.end(); }))
      return std::nullopt;
    return *found();
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return records_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<store::CertificateRecord> records_;
};

TEST_F(AcmePebbleTest, SchedulerIssuesThenRenewsOnRequest) {
  auto config = config_;
  config.certificates = {{"sched", {"sched.edge.test", "127.0.0.1"}}};
  StoredRecords stored;
  RenewalScheduler scheduler(config, store_path_, responder_,
                             [&](store::CertificateRecord const& r) { stored.add(r); });
  scheduler.start();

  auto const first = stored.wait_for(1, 60s);
  ASSERT_TRUE(first) << "no certificate stored within 60 s";
  EXPECT_EQ(first->name, "sched");
  EXPECT_EQ(store_->current_certificate("sched").value()->serial, first->serial);

  // A fresh certificate is left alone until the operator asks (edgectl
  // renew goes through the store): exactly one more generation follows.
  ASSERT_TRUE(store_->request_renewal("sched"));
  auto const second = stored.wait_for(2, 60s);
  ASSERT_TRUE(second) << "renewal request not honoured within 60 s";
  EXPECT_NE(second->serial, first->serial);
  EXPECT_EQ(store_->current_certificate("sched").value()->generation, 2);

  scheduler.stop();
  EXPECT_EQ(stored.size(), 2u);
  EXPECT_EQ(store_->renewal_state("sched").value()->status, "valid");
  expect_challenges_for({"sched.edge.test", v4_reverse, "sched.edge.test", v4_reverse});
}

TEST_F(AcmePebbleTest, SchedulerRecordsAFailureAndStops) {
  auto config = config_;
  config.directory_url = "https://127.0.0.1:1/dir";
  config.poll_interval = 1s;
  config.certificates = {{"failing", {"failing.edge.test"}}};
  RenewalScheduler scheduler(config, store_path_, responder_, nullptr);
  scheduler.start();
  // Bounded wait for the failed attempt to be recorded (the state row).
  auto const deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto const state = store_->renewal_state("failing");
    if (state && *state && (*state)->status == "retrying") break;
    std::this_thread::sleep_for(20ms);
  }
  auto const state = store_->renewal_state("failing").value();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->status, "retrying");
  EXPECT_EQ(state->failures, 1);
  scheduler.stop();
  EXPECT_FALSE(store_->current_certificate("failing").value());
}

}  // namespace
}  // namespace edge::acme
