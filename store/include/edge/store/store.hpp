#pragma once
// The store interface. SQLite implements it today; a shared PostgreSQL store
// can implement it later. No SQL leaves store/.
//
// Threading: one Store object belongs to one thread. Open one per thread that
// needs it (the backend serialises between connections, e.g. SQLite WAL).
#include <edge/store/acme_state.hpp>
#include <edge/store/error.hpp>
#include <edge/store/records.hpp>

#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

namespace edge::store {

class Store {
 public:
  virtual ~Store() = default;

  // Certificates. put_certificate stores chain and key in one transaction,
  // makes it the current certificate of its name and returns the generation
  // assigned (previous generation + 1). Older generations are kept as history.
  virtual Result<std::int64_t> put_certificate(CertificateRecord const& cert) = 0;
  virtual Result<std::optional<CertificateRecord>> current_certificate(std::string_view name) = 0;
  virtual Result<std::vector<CertificateRecord>> current_certificates() = 0;

  // ACME accounts, keyed by directory URL.
  virtual Result<std::optional<AcmeAccount>> account(std::string_view directory_url) = 0;
  virtual Result<void> put_account(AcmeAccount const& account) = 0;

  // ACME orders and challenges (observability and restart hints).
  // put_order inserts when order.id == 0 and returns the id, else updates.
  virtual Result<std::int64_t> put_order(AcmeOrderRecord const& order) = 0;
  virtual Result<std::vector<AcmeOrderRecord>> recent_orders(int limit) = 0;
  virtual Result<void> put_challenge(AcmeChallengeRecord const& challenge) = 0;

  // Renewal requests from the operator (edgectl renew): queued here, taken by
  // the running edged's renewal thread.
  virtual Result<void> request_renewal(std::string_view name) = 0;
  virtual Result<std::vector<std::string>> take_renewal_requests() = 0;

  // Handshake records, appended in one transaction per batch.
  virtual Result<void> append_handshakes(std::span<HandshakeRecord const> records) = 0;
  virtual Result<std::vector<HandshakeRecord>> handshakes(HandshakeQuery const& query) = 0;
  // Totals come from counters kept apart from the rows: they survive pruning
  // and count records left out by sampling.
  virtual Result<std::vector<HandshakeCounters>> handshake_counters() = 0;
  virtual Result<std::vector<HandshakeSummaryRow>> handshake_summary() = 0;
  // Retention: deletes rows older than `older_than_us` (0 = no age limit) and
  // all but the newest `keep_rows` (0 = no row limit). Returns rows deleted.
  virtual Result<std::int64_t> prune_handshakes(std::int64_t older_than_us, std::int64_t keep_rows) = 0;

  // Added after the first contract; not pure so existing fakes keep compiling.
  // Every generation of one name, newest first (history is kept on put).
  virtual Result<std::vector<CertificateRecord>> certificate_history(std::string_view) {
    return StoreError{"certificate history is not available from this store"};
  }
  // The challenges recorded for one order, in insertion order.
  virtual Result<std::vector<AcmeChallengeRecord>> challenges(std::int64_t) {
    return StoreError{"ACME challenges are not available from this store"};
  }

  // ACME renewal state (acme_state.hpp), one row per certificate name.
  virtual Result<std::optional<RenewalState>> renewal_state(std::string_view) {
    return StoreError{"renewal state is not available from this store"};
  }
  virtual Result<std::vector<RenewalState>> renewal_states() {
    return StoreError{"renewal state is not available from this store"};
  }
  virtual Result<void> put_renewal_state(RenewalState const&) {
    return StoreError{"renewal state is not available from this store"};
  }
  // The orders of one certificate name, newest first.
  virtual Result<std::vector<AcmeOrderRecord>> certificate_orders(std::string_view, int) {
    return StoreError{"ACME orders are not available from this store"};
  }
  // Operator requests for the running edged (edgectl revoke, account ...):
  // request_operation queues one and returns its id; take_operations hands
  // the pending ones to edged (marking them running); finish_operation
  // records the outcome, which operation(id) reads back.
  virtual Result<std::int64_t> request_operation(AcmeOperation const&) {
    return StoreError{"ACME operations are not available from this store"};
  }
  virtual Result<std::vector<AcmeOperation>> take_operations() {
    return StoreError{"ACME operations are not available from this store"};
  }
  virtual Result<void> finish_operation(std::int64_t, std::string_view, std::string_view) {
    return StoreError{"ACME operations are not available from this store"};
  }
  virtual Result<std::optional<AcmeOperation>> operation(std::int64_t) {
    return StoreError{"ACME operations are not available from this store"};
  }
  // ACME orders counted by status, over all certificates.
  virtual Result<std::vector<OrderStatusCount>> order_status_counts() {
    return StoreError{"ACME order counts are not available from this store"};
  }
};

enum class OpenMode { read_write_create, read_write, read_only };

// Opens (and creates, migrates) the SQLite store at `path`. The file is created
// with mode 0600. A file that is not an edge store gives an error naming it.
Result<std::unique_ptr<Store>> open_sqlite_store(std::filesystem::path const& path,
                                                 OpenMode mode = OpenMode::read_write_create);

}  // namespace edge::store
