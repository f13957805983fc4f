#pragma once
// What the ACME client reads from server answers (RFC 8555 section 7.1,
// RFC 9773): orders, authorizations with their challenges, renewalInfo, Link
// headers naming alternate chains, Retry-After. Internal to acme/; its own
// header so that the fuzz target (tests/fuzz/fuzz_acme_responses.cpp) reaches
// the same parsers the client uses. Nothing here does I/O.
#include <chrono>
#include <edge/acme/acme_client.hpp>
#include <edge/acme/error.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http_transport.hpp"
#include "identifiers.hpp"

namespace edge::acme {

struct Challenge {
  std::string type;
  std::string url;
  std::string token;
  std::string status;
  std::optional<AcmeError> error;
};

struct Authorization {
  std::string url;
  Identifier identifier;
  std::string status;
  std::vector<Challenge> challenges;
};

struct Order {
  std::string url;
  std::string status;
  std::vector<std::string> identifiers;  // values as the server lists them
  std::vector<std::string> authorizations;
  std::string finalize;
  std::string certificate;
  std::optional<AcmeError> error;
};

// An order object; `url` is where it came from (the Location of newOrder).
// Fails (problem::protocol) when the body is not a JSON object or lacks
// status or finalize.
AcmeResult<Order> parse_order(std::string_view body, std::string url);

// An authorization object. Fails (problem::protocol) when the body is not a
// JSON object, lacks status or identifier, or the identifier's type does not
// match its value.
AcmeResult<Authorization> parse_authorization(std::string_view body, std::string url);

// A renewalInfo answer (RFC 9773 section 4.2): the suggested window, the
// explanation URL, and when to ask again (Retry-After clamped to 60 s..1 d,
// 6 h without one). Fails (problem::protocol) without a valid window.
AcmeResult<RenewalWindow> parse_renewal_info(HttpResponse const& response);

// The response's Retry-After, when it has a usable one.
std::optional<std::chrono::seconds> retry_after_of(HttpResponse const& response);

// The URLs of Link headers with rel="alternate" (RFC 8555 section 7.4.2).
// One header may carry several comma-separated links.
std::vector<std::string> alternate_links(HttpResponse const& response);

// True when a certificate of the chain was issued by `issuer_cn`; the chain's
// topmost certificate is what tells chains apart, and it is in the list.
bool chain_has_issuer(std::string const& chain_pem, std::string const& issuer_cn);

}  // namespace edge::acme
