#pragma once
// Problem documents (RFC 7807, RFC 8555 section 6.7) and Retry-After.
#include "http_transport.hpp"

#include <edge/acme/error.hpp>

#include <chrono>
#include <optional>
#include <string_view>

namespace edge::acme {

// Retry-After is delta-seconds or an HTTP-date (RFC 9110 section 10.2.3).
// Dates in the past give 0 s; unparsable values give nullopt.
std::optional<std::chrono::seconds> parse_retry_after(
    std::string_view value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The AcmeError for an HTTP error response: the problem document's type,
// detail (with subproblems) and status when there is one, else problem::http
// with the start of the body. Retry-After is taken from the headers.
AcmeError error_from_response(HttpResponse const& response, std::string_view what);

// Parses a problem object found inside another resource (e.g. a challenge's
// "error" member). Returns nullopt when the text is not a problem object.
std::optional<AcmeError> parse_problem_json(std::string_view json);

}  // namespace edge::acme
