#pragma once
// Where the ACME client hands TLS-ALPN-01 challenge certificates so that the
// TLS listener can answer validation handshakes. Implemented outside acme/
// (the edge's ChallengeRegistry, adapted in cli/).
#include <string>

namespace edge::acme {

class ChallengeResponder {
 public:
  virtual ~ChallengeResponder() = default;
  // server_name: the SNI the validator sends (DNS name, or the reverse-DNS
  // name of an IP identifier without trailing dot). PEMs: self-signed
  // certificate with the acmeIdentifier extension, and its key.
  // Thread: called from the ACME thread; must be safe against the I/O threads.
  virtual void publish(std::string const& server_name, std::string const& certificate_pem,
                       std::string const& private_key_pem) = 0;
  virtual void withdraw(std::string const& server_name) = 0;
};

}  // namespace edge::acme
