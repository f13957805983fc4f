#pragma once
// The ACME client's expected-failure type. Server problems (RFC 7807 / RFC 8555
// section 6.7) keep their type URN; failures on our side use urn:edge:error:*.
#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace edge::acme {

struct AcmeError {
  AcmeError() = default;
  // Two strings at least: a lone string must not convert to an error, or
  // AcmeResult<std::string> could not be built from a value.
  AcmeError(std::string type_in, std::string detail_in, int status_in = 0,
            std::optional<std::chrono::seconds> retry_after_in = std::nullopt)
      : type(std::move(type_in)),
        detail(std::move(detail_in)),
        status(status_in),
        retry_after(retry_after_in) {}

  std::string type;    // e.g. urn:ietf:params:acme:error:badNonce
  std::string detail;  // human readable
  int status = 0;      // HTTP status, 0 when there was no HTTP response
  std::optional<std::chrono::seconds> retry_after;  // from the Retry-After header
  // The server's problem document (RFC 7807) exactly as received, subproblems
  // included; "" when the failure had none. Operators see it verbatim.
  std::string document;

  // "detail (type, HTTP status)", one line, for logs and exceptions.
  std::string message() const {
    std::string m = detail.empty() ? std::string("ACME request failed") : detail;
    m += " (";
    m += type.empty() ? std::string("unknown") : type;
    if (status != 0) m += ", HTTP " + std::to_string(status);
    if (retry_after) m += ", retry after " + std::to_string(retry_after->count()) + " s";
    m += ")";
    return m;
  }
};

// Lets AcmeResult<T>::value() throw a readable exception (found by ADL).
[[noreturn]] inline void throw_exception_from_error(AcmeError const& e,
                                                    boost::source_location const&) {
  throw std::runtime_error(e.message());
}

template <class T>
using AcmeResult = boost::system::result<T, AcmeError>;

// Problem types the client reacts to (RFC 8555 section 6.7).
namespace problem {
inline constexpr char const* bad_nonce = "urn:ietf:params:acme:error:badNonce";
inline constexpr char const* account_does_not_exist =
    "urn:ietf:params:acme:error:accountDoesNotExist";
inline constexpr char const* rate_limited = "urn:ietf:params:acme:error:rateLimited";
inline constexpr char const* unauthorized = "urn:ietf:params:acme:error:unauthorized";
inline constexpr char const* already_revoked = "urn:ietf:params:acme:error:alreadyRevoked";
inline constexpr char const* external_account_required =
    "urn:ietf:params:acme:error:externalAccountRequired";
// Failures on the client side.
inline constexpr char const* transport = "urn:edge:error:transport";     // no HTTP response
inline constexpr char const* http = "urn:edge:error:http";               // error without problem document
inline constexpr char const* protocol = "urn:edge:error:protocol";       // unexpected server answer
inline constexpr char const* timeout = "urn:edge:error:timeout";         // polling deadline passed
inline constexpr char const* cancelled = "urn:edge:error:cancelled";     // stop requested
inline constexpr char const* store = "urn:edge:error:store";             // local store failed
inline constexpr char const* crypto = "urn:edge:error:crypto";           // key/CSR/certificate
inline constexpr char const* unsupported = "urn:edge:error:unsupported"; // e.g. no tls-alpn-01
}  // namespace problem

}  // namespace edge::acme
