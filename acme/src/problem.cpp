#include "problem.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <iomanip>
#include <sstream>

namespace edge::acme {
namespace {

namespace json = boost::json;

std::string string_member(json::object const& object, std::string_view key) {
  if (auto const* v = object.if_contains(key); v && v->is_string())
    return std::string(v->get_string());
  return {};
}

std::optional<AcmeError> problem_from_value(json::value const& value) {
  auto const* object = value.if_object();
  if (object == nullptr) return std::nullopt;
  AcmeError error;
  error.type = string_member(*object, "type");
  error.detail = string_member(*object, "detail");
  if (error.type.empty() && error.detail.empty()) return std::nullopt;
  if (auto const* status = object->if_contains("status"); status && status->is_int64())
    error.status = static_cast<int>(status->get_int64());
  // Subproblems (RFC 8555 section 6.7.1) name the identifier that failed,
  // which is what an operator needs to see.
  if (auto const* subproblems = object->if_contains("subproblems");
      subproblems && subproblems->is_array()) {
    for (auto const& sub : subproblems->get_array()) {
      auto const* sub_object = sub.if_object();
      if (sub_object == nullptr) continue;
      std::string part = string_member(*sub_object, "detail");
      if (auto const* id = sub_object->if_contains("identifier"); id && id->is_object())
        part = string_member(id->get_object(), "value") + ": " + part;
      error.detail += "; " + part;
    }
  }
  return error;
}

std::string_view media_type(std::string_view content_type) {
  auto const semicolon = content_type.find(';');
  if (semicolon != std::string_view::npos) content_type = content_type.substr(0, semicolon);
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return content_type;
}

}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;

  // Capped: a hostile or broken server's "forever" must not overflow the
  // clock arithmetic of whoever schedules the retry (the callers clamp further).
  constexpr long long max_seconds = 10LL * 366 * 24 * 3600;
  long long seconds = 0;
  auto const [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc{} && end == value.data() + value.size())
    return seconds < 0 ? std::nullopt : std::optional(std::chrono::seconds(std::min(seconds, max_seconds)));

  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  std::istringstream in{std::string(value)};
  in.imbue(std::locale::classic());
  in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S GMT");
  if (in.fail()) return std::nullopt;
  // In whole seconds since the epoch: a date in year 1 or 9999 is a valid
  // time_t but overflows the clock's nanoseconds (found by fuzz_acme_responses).
  long long const at = timegm(&tm);
  long long const current =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (at <= current) return std::chrono::seconds(0);
  // (at - now, rounded up, is at - current: `at` is whole seconds.)
  return std::chrono::seconds(std::min(at - current, max_seconds));
}

std::optional<AcmeError> parse_problem_json(std::string_view text) {
  boost::system::error_code ec;
  auto const value = json::parse(text, ec);
  if (ec) return std::nullopt;
  auto error = problem_from_value(value);
  if (error) error->document = std::string(text);
  return error;
}

AcmeError error_from_response(HttpResponse const& response, std::string_view what) {
  AcmeError error;
  auto const content_type_header = response.header("Content-Type").value_or("");
  auto const content_type = media_type(content_type_header);
  if (content_type == "application/problem+json" || content_type == "application/json") {
    // parse_problem_json keeps the body as the verbatim document.
    if (auto problem = parse_problem_json(response.body)) error = std::move(*problem);
  }
  if (error.type.empty()) {
    error.type = problem::http;
    std::string body = response.body.substr(0, 200);
    for (auto& c : body)
      if (c == '\n' || c == '\r') c = ' ';
    error.detail = std::string(what) + ": HTTP " + std::to_string(response.status) +
                   (body.empty() ? std::string() : ": " + body);
  } else if (!what.empty()) {
    error.detail = std::string(what) + ": " + error.detail;
  }
  // The HTTP status is authoritative; the document's copy is advisory.
  error.status = response.status;
  if (auto const retry_after = response.header("Retry-After"))
    error.retry_after = parse_retry_after(*retry_after);
  return error;
}

}  // namespace edge::acme
