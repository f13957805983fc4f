// SQLite implementation of the store: one connection per Store object, WAL so
// edged's threads and edgectl can read while another connection writes.
#include <sys/statvfs.h>

#include <edge/store/store.hpp>

#include <boost/json.hpp>
#include <sqlite3.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>

namespace edge::store {

char const* to_string(CertificateSource s) noexcept {
  return s == CertificateSource::manual ? "manual" : "acme";
}

namespace {

// "EDGE": marks the file as ours so another application's database is refused.
constexpr std::int32_t edge_application_id = 0x45444745;

// Step i moves the schema from version i to i + 1. Released steps are never
// edited; a schema change appends a step.
constexpr std::array<char const*, 3> migrations = {R"sql(
CREATE TABLE acme_accounts (
  directory_url TEXT PRIMARY KEY,
  account_url   TEXT NOT NULL,
  key_pem       TEXT NOT NULL,
  contact_json  TEXT NOT NULL DEFAULT '[]',
  created_at    INTEGER NOT NULL
);
CREATE TABLE certificates (
  id                 INTEGER PRIMARY KEY,
  name               TEXT NOT NULL CHECK (name <> ''),
  generation         INTEGER NOT NULL CHECK (generation > 0),
  identifiers        TEXT NOT NULL,  -- JSON array of strings
  chain_pem          TEXT NOT NULL CHECK (chain_pem <> ''),
  private_key_pem    TEXT NOT NULL CHECK (private_key_pem <> ''),
  serial             TEXT NOT NULL,
  fingerprint_sha256 TEXT NOT NULL,
  not_before         INTEGER NOT NULL,
  not_after          INTEGER NOT NULL,
  issuer             TEXT NOT NULL,
  source             TEXT NOT NULL CHECK (source IN ('acme', 'manual')),
  created_at         INTEGER NOT NULL,
  is_current         INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
  UNIQUE (name, generation)
);
CREATE UNIQUE INDEX certificates_one_current ON certificates (name) WHERE is_current = 1;
CREATE TABLE acme_orders (
  id               INTEGER PRIMARY KEY,
  certificate_name TEXT NOT NULL,
  directory_url    TEXT NOT NULL,
  order_url        TEXT NOT NULL,
  status           TEXT NOT NULL,
  error            TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX acme_orders_certificate_name ON acme_orders (certificate_name);
CREATE TABLE acme_challenges (
  id                INTEGER PRIMARY KEY,
  order_id          INTEGER NOT NULL REFERENCES acme_orders (id) ON DELETE CASCADE,
  identifier        TEXT NOT NULL,
  authorization_url TEXT NOT NULL,
  challenge_url     TEXT NOT NULL,
  status            TEXT NOT NULL,
  error             TEXT NOT NULL DEFAULT '',
  updated_at        INTEGER NOT NULL,
  UNIQUE (order_id, identifier)
);
CREATE TABLE renewal_requests (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL CHECK (name <> ''),
  requested_at INTEGER NOT NULL
);
CREATE TABLE handshakes (
  id               INTEGER PRIMARY KEY,
  timestamp_us     INTEGER NOT NULL,
  outcome          TEXT NOT NULL,
  error_type       TEXT NOT NULL,
  alert_sent       TEXT NOT NULL,
  client_address   TEXT NOT NULL,
  client_port      INTEGER NOT NULL,
  server_port      INTEGER NOT NULL,
  server_name      TEXT NOT NULL,
  protocol_version TEXT NOT NULL,
  cipher           TEXT NOT NULL,
  cert_name        TEXT NOT NULL,
  cert_serial      TEXT NOT NULL,
  cert_sha256      TEXT NOT NULL,
  cert_generation  INTEGER NOT NULL,
  duration_us      INTEGER NOT NULL,
  json             TEXT NOT NULL
);
CREATE INDEX handshakes_cert_name ON handshakes (cert_name);
CREATE INDEX handshakes_timestamp ON handshakes (timestamp_us);
CREATE INDEX handshakes_outcome ON handshakes (outcome);
)sql",
    // ACME production grade: renewal state per certificate, crash-safe orders
    // (the certificate key is saved before finalize), operator operations.
    R"sql(
ALTER TABLE acme_accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'valid';
ALTER TABLE acme_orders ADD COLUMN private_key_pem TEXT NOT NULL DEFAULT '';
ALTER TABLE acme_orders ADD COLUMN profile TEXT NOT NULL DEFAULT '';
ALTER TABLE acme_orders ADD COLUMN replaces TEXT NOT NULL DEFAULT '';
ALTER TABLE acme_orders ADD COLUMN problem TEXT NOT NULL DEFAULT '';
ALTER TABLE acme_orders ADD COLUMN certificate_generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE renewal_state (
  name               TEXT PRIMARY KEY CHECK (name <> ''),
  status             TEXT NOT NULL,
  next_renewal_at    INTEGER NOT NULL DEFAULT 0,
  renewal_reason     TEXT NOT NULL DEFAULT '',
  planned_generation INTEGER NOT NULL DEFAULT 0,
  ari_next_check_at  INTEGER NOT NULL DEFAULT 0,
  failures           INTEGER NOT NULL DEFAULT 0,
  last_attempt_at    INTEGER NOT NULL DEFAULT 0,
  last_success_at    INTEGER NOT NULL DEFAULT 0,
  next_attempt_at    INTEGER NOT NULL DEFAULT 0,
  last_error         TEXT NOT NULL DEFAULT '',
  last_problem       TEXT NOT NULL DEFAULT '',
  issuer             TEXT NOT NULL DEFAULT '',
  updated_at         INTEGER NOT NULL
);
CREATE TABLE acme_operations (
  id           INTEGER PRIMARY KEY,
  kind         TEXT NOT NULL CHECK (kind IN ('revoke', 'key-rollover', 'deactivate-account')),
  target       TEXT NOT NULL DEFAULT '',
  argument     TEXT NOT NULL DEFAULT '',
  status       TEXT NOT NULL DEFAULT 'pending',
  result       TEXT NOT NULL DEFAULT '',
  requested_at INTEGER NOT NULL,
  finished_at  INTEGER NOT NULL DEFAULT 0
);
)sql",
    // Handshake counters per certificate, outcome and error.type, kept apart
    // from the rows so that they survive retention and success sampling.
    R"sql(
CREATE TABLE handshake_counters (
  cert_name  TEXT NOT NULL,
  outcome    TEXT NOT NULL,
  error_type TEXT NOT NULL,
  count      INTEGER NOT NULL,
  PRIMARY KEY (cert_name, outcome, error_type)
) WITHOUT ROWID;
INSERT INTO handshake_counters (cert_name, outcome, error_type, count)
  SELECT cert_name, outcome, error_type, COUNT(*) FROM handshakes GROUP BY cert_name, outcome, error_type;
)sql"};
constexpr int schema_version = static_cast<int>(migrations.size());

constexpr char const* certificate_columns =
    "id, name, identifiers, chain_pem, private_key_pem, serial, fingerprint_sha256, not_before, "
    "not_after, issuer, source, generation, created_at";
constexpr char const* handshake_columns =
    "id, timestamp_us, outcome, error_type, alert_sent, client_address, client_port, server_port, "
    "server_name, protocol_version, cipher, cert_name, cert_serial, cert_sha256, cert_generation, "
    "duration_us, json";

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};
using DbPtr = std::unique_ptr<sqlite3, Deleter<sqlite3_close_v2>>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, Deleter<sqlite3_finalize>>;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Db {
  DbPtr handle;
  std::string path;

  StoreError error(std::string_view what) const {
    return {path + ": " + std::string(what) + ": " + sqlite3_errmsg(handle.get())};
  }
};

// A cached prepared statement in use. Resetting on scope exit matters: a
// statement left mid-result keeps a WAL read snapshot open. A failed prepare
// or bind is carried to step() so call sites check once.
class Statement {
 public:
  Statement(Db const& db, sqlite3_stmt* stmt, std::optional<StoreError> error = {})
      : db_(db), stmt_(stmt), error_(std::move(error)) {}
  Statement(Statement const&) = delete;
  Statement& operator=(Statement const&) = delete;
  ~Statement() { reset(); }

  template <class... Args>
  Statement& bind(Args const&... args) {
    (bind_one(args), ...);
    return *this;
  }

  // true when a row is available.
  Result<bool> step() {
    if (error_) return *error_;
    int const rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_.error(context());
  }

  Result<void> run() {
    auto r = step();
    if (!r) return r.error();
    return {};
  }

  void reset() {
    if (!stmt_) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    next_ = 0;
  }

  std::string text(int col) const {
    auto const* p = reinterpret_cast<char const*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  void bind_one(std::string_view v) {
    if (stmt_)
      check(sqlite3_bind_text64(stmt_, ++next_, v.data() ? v.data() : "", v.size(),
                                SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void bind_one(std::string const& v) { bind_one(std::string_view(v)); }
  void bind_one(char const* v) { bind_one(std::string_view(v)); }
  void bind_one(std::int64_t v) {
    if (stmt_) check(sqlite3_bind_int64(stmt_, ++next_, v));
  }
  void bind_one(int v) { bind_one(static_cast<std::int64_t>(v)); }

  void check(int rc) {
    if (rc != SQLITE_OK && !error_) error_ = db_.error("binding parameters of " + context());
  }

  // The start of the SQL text: enough to tell which statement failed.
  std::string context() const {
    std::string sql = stmt_ ? sqlite3_sql(stmt_) : "";
    if (sql.size() > 60) sql = sql.substr(0, 57) + "...";
    return "SQL \"" + sql + "\"";
  }

  Db const& db_;
  sqlite3_stmt* stmt_;
  std::optional<StoreError> error_;
  int next_ = 0;
};

std::string identifiers_to_json(std::vector<std::string> const& identifiers) {
  boost::json::array a;
  for (auto const& id : identifiers) a.emplace_back(id);
  return boost::json::serialize(a);
}

std::optional<std::vector<std::string>> identifiers_from_json(std::string const& text) {
  boost::system::error_code ec;
  auto const v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (auto const& e : v.get_array()) {
    if (!e.is_string()) return std::nullopt;
    out.emplace_back(e.get_string());
  }
  return out;
}

struct SchemaState {
  std::int64_t application_id = 0;
  std::int64_t version = 0;
  bool empty = true;

  bool ours_or_fresh() const {
    return application_id == edge_application_id ||
           (application_id == 0 && version == 0 && empty);
  }
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(Db db) : db_(std::move(db)) {}

  static Result<std::unique_ptr<SqliteStore>> connect(std::string const& path, int flags) {
    sqlite3* raw = nullptr;
    int const rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Db db{DbPtr(raw), path};
    if (rc != SQLITE_OK) {
      return raw ? db.error("cannot open")
                 : StoreError{path + ": cannot open: " + sqlite3_errstr(rc)};
    }
    sqlite3_busy_timeout(raw, 5000);
    auto store = std::make_unique<SqliteStore>(std::move(db));
    if (auto r = store->exec("PRAGMA foreign_keys = ON"); !r) return r.error();
    return store;
  }

  Result<SchemaState> schema_state() {
    SchemaState s;
    auto id = scalar("PRAGMA application_id");
    if (!id) return id.error();
    auto version = scalar("PRAGMA user_version");
    if (!version) return version.error();
    auto objects = scalar("SELECT count(*) FROM sqlite_master");
    if (!objects) return objects.error();
    return SchemaState{*id, *version, *objects == 0};
  }

  Result<void> enable_wal() {
    auto st = prepare("PRAGMA journal_mode = WAL");
    auto row = st.step();
    if (!row) return row.error();
    if (!*row || st.text(0) != "wal")
      return StoreError{db_.path + ": cannot switch to WAL journal mode"};
    return exec("PRAGMA synchronous = NORMAL");
  }

  Result<void> migrate() {
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    // Re-read under the write lock: another process may have migrated meanwhile.
    auto state = schema_state();
    if (!state) return state.error();
    if (!state->ours_or_fresh()) return not_ours();
    for (auto v = state->version; v < schema_version; ++v) {
      if (sqlite3_exec(db_.handle.get(), migrations[static_cast<std::size_t>(v)], nullptr,
                       nullptr, nullptr) != SQLITE_OK)
        return db_.error("migrating schema to version " + std::to_string(v + 1));
    }
    if (state->version < schema_version) {
      // PRAGMA takes no bound parameters; both values are compile-time constants.
      auto r = exec("PRAGMA user_version = " + std::to_string(schema_version));
      if (r) r = exec("PRAGMA application_id = " + std::to_string(edge_application_id));
      if (!r) return r.error();
    }
    return tx.commit();
  }

  StoreError not_ours() const {
    return {db_.path + ": not an edge store (another application's SQLite database); "
                       "refusing to use or modify it"};
  }

  Result<std::int64_t> put_certificate(CertificateRecord const& c) override {
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    auto generation = scalar(
        "SELECT COALESCE(MAX(generation), 0) + 1 FROM certificates WHERE name = ?", c.name);
    if (!generation) return generation.error();
    auto r = exec("UPDATE certificates SET is_current = 0 WHERE name = ? AND is_current = 1",
                  c.name);
    if (r)
      r = exec(
          "INSERT INTO certificates (name, generation, identifiers, chain_pem, private_key_pem, "
          "serial, fingerprint_sha256, not_before, not_after, issuer, source, created_at, "
          "is_current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
          c.name, *generation, identifiers_to_json(c.identifiers), c.chain_pem,
          c.private_key_pem, c.serial, c.fingerprint_sha256, c.not_before, c.not_after, c.issuer,
          to_string(c.source), now_seconds());
    if (r) r = tx.commit();
    if (!r) return r.error();
    return *generation;
  }

  Result<std::optional<CertificateRecord>> current_certificate(std::string_view name) override {
    auto list = certificates(" WHERE name = ? AND is_current = 1", name);
    if (!list) return list.error();
    if (list->empty()) return std::optional<CertificateRecord>();
    return std::optional<CertificateRecord>(std::move(list->front()));
  }

  Result<std::vector<CertificateRecord>> current_certificates() override {
    return certificates(" WHERE is_current = 1 ORDER BY name");
  }

  Result<std::vector<CertificateRecord>> certificate_history(std::string_view name) override {
    return certificates(" WHERE name = ? ORDER BY generation DESC", name);
  }

  Result<std::optional<AcmeAccount>> account(std::string_view directory_url) override {
    auto st = prepare(
        "SELECT directory_url, account_url, key_pem, contact_json, created_at, status "
        "FROM acme_accounts WHERE directory_url = ?");
    st.bind(directory_url);
    auto row = st.step();
    if (!row) return row.error();
    if (!*row) return std::optional<AcmeAccount>();
    return std::optional<AcmeAccount>(AcmeAccount{st.text(0), st.text(1), st.text(2), st.text(3),
                                                  st.integer(4), st.text(5)});
  }

  Result<void> put_account(AcmeAccount const& a) override {
    return exec(
        "INSERT INTO acme_accounts (directory_url, account_url, key_pem, contact_json, "
        "created_at, status) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (directory_url) DO UPDATE SET "
        "account_url = excluded.account_url, key_pem = excluded.key_pem, "
        "contact_json = excluded.contact_json, status = excluded.status",
        a.directory_url, a.account_url, a.key_pem,
        a.contact_json.empty() ? std::string("[]") : a.contact_json,
        a.created_at ? a.created_at : now_seconds(), a.status.empty() ? "valid" : a.status);
  }

  Result<std::int64_t> put_order(AcmeOrderRecord const& o) override {
    auto const updated = o.updated_at ? o.updated_at : now_seconds();
    if (o.id == 0) {
      auto r = exec(
          "INSERT INTO acme_orders (certificate_name, directory_url, order_url, status, error, "
          "created_at, updated_at, private_key_pem, profile, replaces, problem, "
          "certificate_generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          o.certificate_name, o.directory_url, o.order_url, o.status, o.error,
          o.created_at ? o.created_at : updated, updated, o.private_key_pem, o.profile,
          o.replaces, o.problem, o.certificate_generation);
      if (!r) return r.error();
      return sqlite3_last_insert_rowid(db_.handle.get());
    }
    auto r = exec(
        "UPDATE acme_orders SET certificate_name = ?, directory_url = ?, order_url = ?, "
        "status = ?, error = ?, updated_at = ?, private_key_pem = ?, profile = ?, replaces = ?, "
        "problem = ?, certificate_generation = ? WHERE id = ?",
        o.certificate_name, o.directory_url, o.order_url, o.status, o.error, updated,
        o.private_key_pem, o.profile, o.replaces, o.problem, o.certificate_generation, o.id);
    if (!r) return r.error();
    if (sqlite3_changes(db_.handle.get()) == 0)
      return StoreError{db_.path + ": no ACME order with id " + std::to_string(o.id)};
    return o.id;
  }

  Result<std::vector<AcmeOrderRecord>> recent_orders(int limit) override {
    return orders(" ORDER BY id DESC LIMIT ?", limit);
  }

  Result<std::vector<AcmeOrderRecord>> certificate_orders(std::string_view name,
                                                          int limit) override {
    return orders(" WHERE certificate_name = ? ORDER BY id DESC LIMIT ?", name, limit);
  }

  Result<std::optional<RenewalState>> renewal_state(std::string_view name) override {
    auto list = renewal_rows(" WHERE name = ?", name);
    if (!list) return list.error();
    if (list->empty()) return std::optional<RenewalState>();
    return std::optional<RenewalState>(std::move(list->front()));
  }

  Result<std::vector<RenewalState>> renewal_states() override {
    return renewal_rows(" ORDER BY name");
  }

  Result<void> put_renewal_state(RenewalState const& r) override {
    return exec(
        "INSERT INTO renewal_state (name, status, next_renewal_at, renewal_reason, "
        "planned_generation, ari_next_check_at, failures, last_attempt_at, last_success_at, "
        "next_attempt_at, last_error, last_problem, issuer, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "status = excluded.status, next_renewal_at = excluded.next_renewal_at, "
        "renewal_reason = excluded.renewal_reason, "
        "planned_generation = excluded.planned_generation, "
        "ari_next_check_at = excluded.ari_next_check_at, failures = excluded.failures, "
        "last_attempt_at = excluded.last_attempt_at, "
        "last_success_at = excluded.last_success_at, "
        "next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, "
        "last_problem = excluded.last_problem, issuer = excluded.issuer, "
        "updated_at = excluded.updated_at",
        r.name, r.status, r.next_renewal_at, r.renewal_reason, r.planned_generation,
        r.ari_next_check_at, r.failures, r.last_attempt_at, r.last_success_at, r.next_attempt_at,
        r.last_error, r.last_problem, r.issuer, now_seconds());
  }

  Result<std::int64_t> request_operation(AcmeOperation const& op) override {
    auto r = exec(
        "INSERT INTO acme_operations (kind, target, argument, status, requested_at) "
        "VALUES (?, ?, ?, 'pending', ?)",
        op.kind, op.target, op.argument, now_seconds());
    if (!r) return r.error();
    return sqlite3_last_insert_rowid(db_.handle.get());
  }

  Result<std::vector<AcmeOperation>> take_operations() override {
    std::vector<AcmeOperation> out;
    // Polled every tick by edged: skip the write lock when nothing is queued.
    auto pending = scalar("SELECT EXISTS (SELECT 1 FROM acme_operations WHERE status = 'pending')");
    if (!pending) return pending.error();
    if (!*pending) return out;
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    auto list = operation_rows(" WHERE status = 'pending' ORDER BY id");
    if (!list) return list.error();
    auto r = exec("UPDATE acme_operations SET status = 'running' WHERE status = 'pending'");
    if (r) r = tx.commit();
    if (!r) return r.error();
    for (auto& op : *list) op.status = "running";
    return std::move(*list);
  }

  Result<void> finish_operation(std::int64_t id, std::string_view status,
                                std::string_view result) override {
    return exec("UPDATE acme_operations SET status = ?, result = ?, finished_at = ? WHERE id = ?",
                status, result, now_seconds(), id);
  }

  Result<std::optional<AcmeOperation>> operation(std::int64_t id) override {
    auto list = operation_rows(" WHERE id = ?", id);
    if (!list) return list.error();
    if (list->empty()) return std::optional<AcmeOperation>();
    return std::optional<AcmeOperation>(std::move(list->front()));
  }

  Result<void> put_challenge(AcmeChallengeRecord const& c) override {
    return exec(
        "INSERT INTO acme_challenges (order_id, identifier, authorization_url, challenge_url, "
        "status, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (order_id, identifier) DO UPDATE SET "
        "authorization_url = excluded.authorization_url, "
        "challenge_url = excluded.challenge_url, status = excluded.status, "
        "error = excluded.error, updated_at = excluded.updated_at",
        c.order_id, c.identifier, c.authorization_url, c.challenge_url, c.status, c.error,
        now_seconds());
  }

  Result<std::vector<AcmeChallengeRecord>> challenges(std::int64_t order_id) override {
    auto st = prepare(
        "SELECT order_id, identifier, authorization_url, challenge_url, status, error "
        "FROM acme_challenges WHERE order_id = ? ORDER BY id");
    st.bind(order_id);
    std::vector<AcmeChallengeRecord> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back(
          {st.integer(0), st.text(1), st.text(2), st.text(3), st.text(4), st.text(5)});
    }
  }

  Result<void> request_renewal(std::string_view name) override {
    return exec("INSERT INTO renewal_requests (name, requested_at) VALUES (?, ?)", name,
                now_seconds());
  }

  Result<std::vector<std::string>> take_renewal_requests() override {
    std::vector<std::string> names;
    // edged polls this every second: skip the write lock when nothing is queued.
    auto pending = scalar("SELECT EXISTS (SELECT 1 FROM renewal_requests)");
    if (!pending) return pending.error();
    if (!*pending) return names;
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    {
      auto st = prepare("SELECT name FROM renewal_requests GROUP BY name ORDER BY MIN(id)");
      for (;;) {
        auto row = st.step();
        if (!row) return row.error();
        if (!*row) break;
        names.push_back(st.text(0));
      }
    }
    auto r = exec("DELETE FROM renewal_requests");
    if (r) r = tx.commit();
    if (!r) return r.error();
    return names;
  }

  Result<void> append_handshakes(std::span<HandshakeRecord const> records) override {
    if (records.empty()) return {};
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    {
      auto insert = prepare(
          "INSERT INTO handshakes (timestamp_us, outcome, error_type, alert_sent, "
          "client_address, client_port, server_port, server_name, protocol_version, cipher, "
          "cert_name, cert_serial, cert_sha256, cert_generation, duration_us, json) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      auto count = prepare(
          "INSERT INTO handshake_counters (cert_name, outcome, error_type, count) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (cert_name, outcome, error_type) DO UPDATE SET count = count + excluded.count");
      // A batch holds thousands of records but few distinct counters: sum first.
      std::map<std::tuple<std::string_view, std::string_view, std::string_view>, std::int64_t> counts;
      for (auto const& h : records) {
        if (h.keep_row) {
          insert.bind(h.timestamp_us, h.outcome, h.error_type, h.alert_sent, h.client_address, h.client_port,
                      h.server_port, h.server_name, h.protocol_version, h.cipher, h.cert_name, h.cert_serial,
                      h.cert_sha256, h.cert_generation, h.duration_us, h.json);
          if (auto r = insert.run(); !r) return r.error();
          insert.reset();
        }
        counts[{h.cert_name, h.outcome, h.error_type}] += h.count;
      }
      for (auto const& [key, n] : counts) {
        count.bind(std::get<0>(key), std::get<1>(key), std::get<2>(key), n);
        if (auto r = count.run(); !r) return r.error();
        count.reset();
      }
    }
    return tx.commit();
  }

  Result<std::int64_t> prune_handshakes(std::int64_t older_than_us, std::int64_t keep_rows) override {
    Transaction tx(*this);
    if (auto r = tx.begin(); !r) return r.error();
    std::int64_t deleted = 0;
    if (older_than_us > 0) {
      auto st = prepare("DELETE FROM handshakes WHERE timestamp_us < ?");
      st.bind(older_than_us);
      if (auto r = st.run(); !r) return r.error();
      deleted += sqlite3_changes(db_.handle.get());
    }
    if (keep_rows > 0) {
      // Rows are appended in time order, so the newest keep_rows have the highest ids.
      auto st = prepare("DELETE FROM handshakes WHERE id <= (SELECT id FROM handshakes ORDER BY id DESC LIMIT 1 OFFSET ?)");
      st.bind(keep_rows);
      if (auto r = st.run(); !r) return r.error();
      deleted += sqlite3_changes(db_.handle.get());
    }
    if (auto r = tx.commit(); !r) return r.error();
    return deleted;
  }

  Result<std::vector<HandshakeSummaryRow>> handshake_summary() override {
    auto st = prepare(
        "SELECT cert_name, outcome, error_type, count FROM handshake_counters "
        "ORDER BY cert_name, count DESC, outcome, error_type");
    std::vector<HandshakeSummaryRow> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.text(0), st.text(1), st.text(2), st.integer(3)});
    }
  }

  Result<std::vector<HandshakeRecord>> handshakes(HandshakeQuery const& q) override {
    // Only fixed fragments are appended; values are bound.
    std::string sql = std::string("SELECT ") + handshake_columns + " FROM handshakes WHERE 1";
    if (q.cert_name) sql += " AND cert_name = ?";
    if (q.failed_only) sql += " AND outcome NOT IN ('ok', 'acme_challenge')";
    if (q.outcome) sql += " AND outcome = ?";
    if (q.error_type) sql += " AND error_type = ?";
    if (q.client_address) sql += " AND client_address = ?";
    if (q.since_us > 0) sql += " AND timestamp_us >= ?";
    sql += " ORDER BY timestamp_us DESC, id DESC LIMIT ?";
    auto st = prepare(sql);
    if (q.cert_name) st.bind(*q.cert_name);
    if (q.outcome) st.bind(*q.outcome);
    if (q.error_type) st.bind(*q.error_type);
    if (q.client_address) st.bind(*q.client_address);
    if (q.since_us > 0) st.bind(q.since_us);
    st.bind(q.limit > 0 ? q.limit : -1);
    std::vector<HandshakeRecord> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      HandshakeRecord h;
      h.id = st.integer(0);
      h.timestamp_us = st.integer(1);
      h.outcome = st.text(2);
      h.error_type = st.text(3);
      h.alert_sent = st.text(4);
      h.client_address = st.text(5);
      h.client_port = static_cast<int>(st.integer(6));
      h.server_port = static_cast<int>(st.integer(7));
      h.server_name = st.text(8);
      h.protocol_version = st.text(9);
      h.cipher = st.text(10);
      h.cert_name = st.text(11);
      h.cert_serial = st.text(12);
      h.cert_sha256 = st.text(13);
      h.cert_generation = st.integer(14);
      h.duration_us = st.integer(15);
      h.json = st.text(16);
      out.push_back(std::move(h));
    }
  }

  Result<std::vector<OrderStatusCount>> order_status_counts() override {
    auto st = prepare("SELECT status, COUNT(*) FROM acme_orders GROUP BY status ORDER BY status");
    std::vector<OrderStatusCount> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.text(0), st.integer(1)});
    }
  }

  Result<std::vector<HandshakeCounters>> handshake_counters() override {
    auto st = prepare(
        "SELECT cert_name, SUM(CASE WHEN outcome = 'ok' THEN count ELSE 0 END), "
        "SUM(CASE WHEN outcome IN ('failed', 'timeout') THEN count ELSE 0 END) "
        "FROM handshake_counters GROUP BY cert_name ORDER BY cert_name");
    std::vector<HandshakeCounters> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.text(0), st.integer(1), st.integer(2)});
    }
  }

 private:
  // Rolls back unless committed, so every early return leaves the store as it was.
  class Transaction {
   public:
    explicit Transaction(SqliteStore& store) : store_(store) {}
    Transaction(Transaction const&) = delete;
    Transaction& operator=(Transaction const&) = delete;
    ~Transaction() {
      if (active_) sqlite3_exec(store_.db_.handle.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Result<void> begin() {
      // IMMEDIATE takes the write lock up front (waiting up to busy_timeout)
      // instead of failing with SQLITE_BUSY when a read upgrades to a write.
      auto r = store_.exec("BEGIN IMMEDIATE");
      active_ = r.has_value();
      return r;
    }
    Result<void> commit() {
      auto r = store_.exec("COMMIT");
      if (r) active_ = false;
      return r;
    }

   private:
    SqliteStore& store_;
    bool active_ = false;
  };

  Statement prepare(std::string const& sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v3(db_.handle.get(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &raw,
                             nullptr) != SQLITE_OK)
        return Statement(db_, nullptr, db_.error("preparing SQL \"" + sql.substr(0, 60) + "\""));
      it = statements_.emplace(sql, StmtPtr(raw)).first;
    }
    return Statement(db_, it->second.get());
  }

  template <class... Args>
  Result<void> exec(std::string const& sql, Args const&... args) {
    auto st = prepare(sql);
    st.bind(args...);
    return st.run();
  }

  template <class... Args>
  Result<std::int64_t> scalar(std::string const& sql, Args const&... args) {
    auto st = prepare(sql);
    st.bind(args...);
    auto row = st.step();
    if (!row) return row.error();
    if (!*row) return StoreError{db_.path + ": no result from \"" + sql + "\""};
    return st.integer(0);
  }

  template <class... Args>
  Result<std::vector<AcmeOrderRecord>> orders(char const* tail, Args const&... args) {
    auto st = prepare(std::string(
                          "SELECT id, certificate_name, directory_url, order_url, status, error, "
                          "created_at, updated_at, private_key_pem, profile, replaces, problem, "
                          "certificate_generation FROM acme_orders") +
                      tail);
    st.bind(args...);
    std::vector<AcmeOrderRecord> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.integer(0), st.text(1), st.text(2), st.text(3), st.text(4), st.text(5),
                     st.integer(6), st.integer(7), st.text(8), st.text(9), st.text(10),
                     st.text(11), st.integer(12)});
    }
  }

  template <class... Args>
  Result<std::vector<RenewalState>> renewal_rows(char const* tail, Args const&... args) {
    auto st = prepare(std::string(
                          "SELECT name, status, next_renewal_at, renewal_reason, "
                          "planned_generation, ari_next_check_at, failures, last_attempt_at, "
                          "last_success_at, next_attempt_at, last_error, last_problem, issuer, "
                          "updated_at FROM renewal_state") +
                      tail);
    st.bind(args...);
    std::vector<RenewalState> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.text(0), st.text(1), st.integer(2), st.text(3), st.integer(4),
                     st.integer(5), st.integer(6), st.integer(7), st.integer(8), st.integer(9),
                     st.text(10), st.text(11), st.text(12), st.integer(13)});
    }
  }

  template <class... Args>
  Result<std::vector<AcmeOperation>> operation_rows(char const* tail, Args const&... args) {
    auto st = prepare(std::string("SELECT id, kind, target, argument, status, result, "
                                  "requested_at, finished_at FROM acme_operations") +
                      tail);
    st.bind(args...);
    std::vector<AcmeOperation> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      out.push_back({st.integer(0), st.text(1), st.text(2), st.text(3), st.text(4), st.text(5),
                     st.integer(6), st.integer(7)});
    }
  }

  template <class... Args>
  Result<std::vector<CertificateRecord>> certificates(char const* where, Args const&... args) {
    auto st = prepare(std::string("SELECT ") + certificate_columns + " FROM certificates" + where);
    st.bind(args...);
    std::vector<CertificateRecord> out;
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) return out;
      CertificateRecord c;
      c.id = st.integer(0);
      c.name = st.text(1);
      auto identifiers = identifiers_from_json(st.text(2));
      if (!identifiers)
        return StoreError{db_.path + ": certificate " + c.name +
                          ": identifiers column is not a JSON array of strings"};
      c.identifiers = std::move(*identifiers);
      c.chain_pem = st.text(3);
      c.private_key_pem = st.text(4);
      c.serial = st.text(5);
      c.fingerprint_sha256 = st.text(6);
      c.not_before = st.integer(7);
      c.not_after = st.integer(8);
      c.issuer = st.text(9);
      c.source = st.text(10) == "manual" ? CertificateSource::manual : CertificateSource::acme;
      c.generation = st.integer(11);
      c.created_at = st.integer(12);
      out.push_back(std::move(c));
    }
  }

  Db db_;
  // Declared after db_: statements are finalized before the connection closes.
  std::unordered_map<std::string, StmtPtr> statements_;
};

// Creates the file ourselves so it is 0600 whatever the umask; SQLite gives
// its -wal and -shm files the mode of the database file.
Result<void> create_private_file(std::string const& path) {
  int const fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return {};  // another process created it just now
    return StoreError{path + ": cannot create store file: " + std::strerror(errno)};
  }
  int const rc = ::fchmod(fd, 0600);
  int const saved = errno;
  ::close(fd);
  if (rc != 0) return StoreError{path + ": cannot set mode 0600: " + std::strerror(saved)};
  return {};
}

std::mutex validated_mutex;
std::set<std::string>& validated_paths() {
  static std::set<std::string> paths;
  return paths;
}
bool already_validated(std::string const& canonical) {
  std::lock_guard lock(validated_mutex);
  return validated_paths().contains(canonical);
}
void mark_validated(std::string const& canonical) {
  std::lock_guard lock(validated_mutex);
  validated_paths().insert(canonical);
}

// Checked before SQLite sees the file, so nothing is ever written to a file
// that is not a database. An empty file is a database SQLite has yet to write.
Result<void> check_sqlite_header(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return StoreError{path + ": cannot read store file: " + std::strerror(errno)};
  std::array<char, 16> header{};
  in.read(header.data(), header.size());
  auto const n = in.gcount();
  if (n == 0) return {};
  if (n != static_cast<std::streamsize>(header.size()) ||
      std::memcmp(header.data(), "SQLite format 3", header.size()) != 0)
    return StoreError{path + ": not an SQLite database (not an edge store); refusing to use it"};
  return {};
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(std::filesystem::path const& path, OpenMode mode) {
  std::string const name = path.string();
  std::error_code ec;
  bool const exists = std::filesystem::exists(path, ec);
  if (ec) return StoreError{name + ": " + ec.message()};
  bool const created = !exists && mode == OpenMode::read_write_create;
  if (!exists && !created) return StoreError{name + ": store file does not exist"};
  if (exists && std::filesystem::is_directory(path, ec))
    return StoreError{name + ": is a directory, not a store file"};
  if (created) {
    if (auto r = create_private_file(name); !r) return r.error();
  }
  // POSIX advisory locks belong to the process: closing ANY descriptor of the
  // file drops the locks every SQLite connection of this process holds on it,
  // after which another process may checkpoint and delete the WAL under us.
  // So the raw header check runs only before this process first opens a path.
  auto const canonical = std::filesystem::weakly_canonical(path, ec).string();
  if (!already_validated(canonical)) {
    if (auto r = check_sqlite_header(name); !r) return r.error();
  }

  // Inspect through a read-only connection first: even reading with a
  // read-write connection could roll back a hot journal or checkpoint a WAL,
  // i.e. modify a file that turns out not to be ours.
  auto probe = SqliteStore::connect(name, SQLITE_OPEN_READONLY);
  if (!probe) return probe.error();
  auto state = (*probe)->schema_state();
  if (!state) return state.error();
  if (!state->ours_or_fresh()) return (*probe)->not_ours();
  if (state->version > schema_version)
    return StoreError{name + ": schema version " + std::to_string(state->version) +
                      " is newer than this program supports (" + std::to_string(schema_version) +
                      "); upgrade edge"};
  if (mode == OpenMode::read_only) {
    if (state->version < schema_version)
      return StoreError{name + ": schema version " + std::to_string(state->version) +
                        " is older than " + std::to_string(schema_version) +
                        "; open it read-write once (start edged) to migrate it"};
    mark_validated(canonical);
    return std::unique_ptr<Store>(std::move(*probe));
  }
  probe->reset();

  struct statvfs fs{};
  auto const directory = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (::statvfs(directory.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0)
    return StoreError{name + ": on a read-only file system; edged writes its store (certificates, ACME state, "
                             "handshake records): mount it read-write"};
  auto store = SqliteStore::connect(name, SQLITE_OPEN_READWRITE);
  if (!store) return store.error();
  if (auto r = (*store)->enable_wal(); !r) return r.error();
  if (auto r = (*store)->migrate(); !r) return r.error();
  if (created) {
    for (char const* suffix : {"-wal", "-shm"})
      std::filesystem::permissions(name + suffix, std::filesystem::perms::owner_read |
                                                      std::filesystem::perms::owner_write,
                                   ec);  // best effort: SQLite already copies the mode
  }
  mark_validated(canonical);
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace edge::store
