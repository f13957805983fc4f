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
#include <string>
#include <vector>

namespace edge::proxy {

class CertificateSet;  // defined in edge/src (holds the OpenSSL contexts)

class CertificateRegistry {
 public:
  explicit CertificateRegistry(TlsPolicy policy);
  ~CertificateRegistry();

  // Replaces the whole set. A record whose PEM does not load is skipped and
  // reported in the returned list of errors; the others are served.
  // Thread: any (not the I/O threads: building contexts parses keys).
  std::vector<std::string> replace_all(std::vector<store::CertificateRecord> const& records);
  // Same, under a new TLS policy (config reload): later puts use it too.
  std::vector<std::string> replace_all(std::vector<store::CertificateRecord> const& records, TlsPolicy policy);

  // Adds or replaces the certificate of record.name; others stay as they are.
  std::vector<std::string> put(store::CertificateRecord const& record);

  std::shared_ptr<CertificateSet const> snapshot() const noexcept;
  TlsPolicy policy() const;

 private:
  mutable std::mutex writer_;  // writers only (policy_); readers take the snapshot
  TlsPolicy policy_;
  std::atomic<std::shared_ptr<CertificateSet const>> current_;
};

}  // namespace edge::proxy
