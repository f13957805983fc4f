#include "http_transport.hpp"

#include <algorithm>
#include <cctype>

namespace edge::acme {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' ||
                        s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

void add_header_line(HttpResponse& response, std::string_view line) {
  // A new status line starts a new response (e.g. after 100 Continue): only
  // the final response's headers count.
  if (line.starts_with("HTTP/")) {
    response.headers.clear();
  } else if (auto const colon = line.find(':'); colon != std::string_view::npos) {
    response.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                                  std::string(trim(line.substr(colon + 1))));
  }
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (auto const& [key, value] : headers)
    if (iequals(key, name)) return value;
  return std::nullopt;
}

std::vector<std::string> HttpResponse::headers_named(std::string_view name) const {
  std::vector<std::string> out;
  for (auto const& [key, value] : headers)
    if (iequals(key, name)) out.push_back(value);
  return out;
}

}  // namespace edge::acme
