#include "http_transport.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <stdexcept>

namespace edge::acme {
namespace {

constexpr long connect_timeout_ms = 10'000;
constexpr long total_timeout_ms = 30'000;
constexpr char const* user_agent = "edge-acme/0.1";

void global_init() {
  // curl_global_init is not guaranteed thread-safe; run it once per process.
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

struct CurlDeleter {
  void operator()(CURL* p) const noexcept { curl_easy_cleanup(p); }
};
struct SlistDeleter {
  void operator()(curl_slist* p) const noexcept { curl_slist_free_all(p); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct Transfer {
  HttpResponse response;
  std::stop_token stop;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<Transfer*>(user)->response.body.append(data, size * count);
  return size * count;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  add_header_line(static_cast<Transfer*>(user)->response, std::string_view(data, size * count));
  return size * count;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->stop.stop_requested() ? 1 : 0;
}

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(CurlTransportOptions options) : options_(std::move(options)) {
    global_init();
    handle_.reset(curl_easy_init());
    if (!handle_) throw std::runtime_error("curl_easy_init failed");
  }

  AcmeResult<HttpResponse> perform(HttpRequest const& request) override {
    if (options_.stop.stop_requested())
      return AcmeError{problem::cancelled, "stop requested", 0, std::nullopt};
    CURL* curl = handle_.get();
    // Reset keeps the connection cache, so nonce/poll requests reuse the
    // TLS connection.
    curl_easy_reset(curl);

    Transfer transfer;
    transfer.stop = options_.stop;
    SlistPtr headers;
    auto add_header = [&headers](std::string const& line) {
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next == nullptr) throw std::bad_alloc();
      (void)headers.release();
      headers.reset(next);
    };
    if (!request.accept.empty()) add_header("Accept: " + request.accept);
    if (request.method == HttpMethod::post)
      add_header("Content-Type: " + (request.content_type.empty() ? std::string("application/json")
                                                                   : request.content_type));
    add_header("Expect:");  // no 100-continue round trip for JWS bodies

    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // we run on a worker thread
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");  // RFC 8555 section 6.1
    if (!options_.ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_bundle.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    switch (request.method) {
      case HttpMethod::get: curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L); break;
      case HttpMethod::head: curl_easy_setopt(curl, CURLOPT_NOBODY, 1L); break;
      case HttpMethod::post:
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
        break;
    }
    char error_buffer[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);

    CURLcode const code = curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    if (code == CURLE_ABORTED_BY_CALLBACK)
      return AcmeError{problem::cancelled, "stop requested", 0, std::nullopt};
    if (code != CURLE_OK) {
      std::string detail = method_name(request.method) + " " + request.url + ": ";
      detail += error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
      return AcmeError{problem::transport, std::move(detail), 0, std::nullopt};
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    transfer.response.status = static_cast<int>(status);
    return std::move(transfer.response);
  }

 private:
  static std::string method_name(HttpMethod m) {
    switch (m) {
      case HttpMethod::get: return "GET";
      case HttpMethod::head: return "HEAD";
      case HttpMethod::post: return "POST";
    }
    return "?";
  }

  CurlTransportOptions options_;
  CurlPtr handle_;
};

}  // namespace

std::unique_ptr<HttpTransport> make_curl_transport(CurlTransportOptions options) {
  return std::make_unique<CurlTransport>(std::move(options));
}

}  // namespace edge::acme
