#include "tls_contexts.hpp"

#include <edge/proxy/challenge_registry.hpp>

namespace edge::proxy {

ChallengeRegistry::ChallengeRegistry() = default;
ChallengeRegistry::~ChallengeRegistry() = default;

bool ChallengeRegistry::publish(std::string const& server_name, std::string const& certificate_pem,
                                std::string const& private_key_pem, std::string& why) {
  // Validators speak TLS 1.3 (Pebble) or 1.2: serve both, whatever the traffic policy says.
  TlsPolicy const policy{};
  auto ctx = make_certificate_context(policy, certificate_pem, private_key_pem, AlpnPolicy::acme_tls, why);
  if (!ctx) return false;
  auto challenge = std::make_shared<ChallengeContext const>(std::move(ctx));
  std::lock_guard lock(mutex_);
  by_name_[to_lower_ascii(server_name)] = std::move(challenge);
  return true;
}

void ChallengeRegistry::withdraw(std::string const& server_name) {
  std::lock_guard lock(mutex_);
  by_name_.erase(to_lower_ascii(server_name));
}

std::shared_ptr<ChallengeContext const> ChallengeRegistry::find(std::string const& server_name) const {
  auto const key = to_lower_ascii(server_name);
  std::lock_guard lock(mutex_);
  auto it = by_name_.find(key);
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace edge::proxy
