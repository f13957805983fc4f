#pragma once
// The set of certificates the listener serves. Readers (the I/O threads) take
// an immutable snapshot per handshake; writers build a whole new set and swap
// it in atomically, so a change serves the next handshake and never touches a
// connection that is already established.
#include <edge/proxy/config.hpp>
#include <edge/store/records.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

namespace edge::proxy {

class CertificateSet;  // defined in edge/src (holds the OpenSSL contexts)

class CertificateRegistry {
 public:
  explicit CertificateRegistry(TlsPolicy policy);
  ~CertificateRegistry();

  // When a certificate's PEM is parsed into an OpenSSL context.
  enum class Check {
    now,           // every context built here; a record that does not load is left out and reported
    on_first_use,  // nothing parsed here (start-up with many certificates); see check_contexts()
  };

  // Replaces the whole set. A record whose PEM does not load is skipped and
  // reported in the returned list of errors (Check::now); with
  // Check::on_first_use the set is published at once, the list is empty, and
  // each context is built by the first handshake that selects it.
  // Thread: any (not the I/O threads with Check::now: building contexts parses keys).
  std::vector<std::string> replace_all(std::vector<store::CertificateRecord> const& records, Check check = Check::now);
  // Same, under a new TLS policy (config reload): later puts use it too.
  std::vector<std::string> replace_all(std::vector<store::CertificateRecord> const& records, TlsPolicy policy,
                                       Check check = Check::now);

  // Parses every certificate of the current set whose context is not built
  // yet (and frees the context again: memory is spent on first use only), and
  // takes the ones that do not load out of the set. Returns one error per
  // certificate taken out. Thread: any but the I/O threads; slow (about 1 ms
  // per certificate), meant for a background thread after start-up; returns
  // early when `stop` is requested.
  std::vector<std::string> check_contexts(std::stop_token stop = {});

  // Adds or replaces the certificate of record.name; others stay as they are.
  std::vector<std::string> put(store::CertificateRecord const& record);

  std::shared_ptr<CertificateSet const> snapshot() const noexcept;
  TlsPolicy policy() const;

 private:
  std::shared_ptr<TlsPolicy const> current_policy() const;

  mutable std::mutex writer_;  // writers only (the policy); handshakes take the snapshot
  TlsPolicy policy_;
  std::shared_ptr<TlsPolicy const> shared_policy_;  // what lazily built contexts apply
  std::atomic<std::shared_ptr<CertificateSet const>> current_;
};

}  // namespace edge::proxy
