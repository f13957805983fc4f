#pragma once
// The HTTP layer under the ACME client. An interface so unit tests can replay
// recorded server answers; make_curl_transport() is the real one.
#include <edge/acme/error.hpp>

#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edge::acme {

enum class HttpMethod { get, head, post };

struct HttpRequest {
  HttpMethod method = HttpMethod::get;
  std::string url;
  std::string body;          // POST only
  std::string content_type;  // POST only, e.g. application/jose+json
  std::string accept;        // empty = no Accept header
};

struct HttpResponse {
  int status = 0;
  std::string body;
  // Every header of the final response in order; names as sent by the server.
  std::vector<std::pair<std::string, std::string>> headers;

  // First header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  // All headers named `name`, e.g. Link, which may repeat.
  std::vector<std::string> headers_named(std::string_view name) const;
};

// One header line as the transport receives it ("Name: value\r\n"): added
// to `response.headers` trimmed; a status line ("HTTP/...") starts over, so
// only the final response's headers count; other lines are ignored.
void add_header_line(HttpResponse& response, std::string_view line);

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Fails (problem::transport / problem::cancelled) only when no HTTP response
  // arrived; any HTTP status is a response.
  virtual AcmeResult<HttpResponse> perform(HttpRequest const& request) = 0;
};

struct CurlTransportOptions {
  std::string ca_bundle;  // PEM file; empty = the system store
  std::stop_token stop;   // aborts a running transfer
};

std::unique_ptr<HttpTransport> make_curl_transport(CurlTransportOptions options);

}  // namespace edge::acme
