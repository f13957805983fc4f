#pragma once
// TLS-ALPN-01 challenge certificates currently published, by validation SNI.
// Written by the ACME thread, read by the I/O threads during a ClientHello
// that offers only the "acme-tls/1" protocol.
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace edge::proxy {

class ChallengeContext;  // defined in edge/src

class ChallengeRegistry {
 public:
  ChallengeRegistry();
  ~ChallengeRegistry();

  // Returns false with `why` set when the PEMs do not load.
  bool publish(std::string const& server_name, std::string const& certificate_pem,
               std::string const& private_key_pem, std::string& why);
  void withdraw(std::string const& server_name);

  // Thread: any. Lookup is case-insensitive; nullptr when none.
  std::shared_ptr<ChallengeContext const> find(std::string const& server_name) const;

 private:
  mutable std::mutex mutex_;  // challenges are rare: a mutex is cheaper than cleverness
  std::unordered_map<std::string, std::shared_ptr<ChallengeContext const>> by_name_;
};

}  // namespace edge::proxy
