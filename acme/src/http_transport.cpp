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

}  // namespace

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
