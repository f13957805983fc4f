#include "http_head.hpp"

#include <algorithm>
#include <array>
#include <boost/beast/core/string.hpp>
#include <cctype>
#include <ctime>
#include <vector>

namespace edge::proxy {
namespace beast = boost::beast;
namespace http = beast::http;

bool ambiguous_framing(http::request_header<> const& req) {
  bool const has_te = req.find(http::field::transfer_encoding) != req.end();
  bool const has_cl = req.find(http::field::content_length) != req.end();
  if (has_te && has_cl) return true;
  if (req.count(http::field::content_length) > 1 || req.count(http::field::transfer_encoding) > 1) return true;
  if (has_te) {
    // Only a plain "chunked" is accepted: obfuscations ("xchunked", "chunked, identity") are desync tools.
    auto const te = req[http::field::transfer_encoding];
    if (!beast::iequals(te, "chunked")) return true;
  }
  for (auto const& f : req) {
    auto const name = f.name_string();
    if (name.empty()) return true;
    for (char c : name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) ||
            std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos)) {
        return true;
      }
    }
  }
  return false;
}

namespace {

std::string upstream_authority(HttpRoute const& route) {
  auto const& host = route.upstream.host;
  bool const ipv6 = host.find(':') != std::string::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  if (route.upstream.port != (route.upstream.tls ? 443 : 80)) {
    out += ':';
    out += std::to_string(route.upstream.port);
  }
  return out;
}

}  // namespace

std::string upstream_target(HttpRoute const& route, std::string_view target) {
  auto const& base = route.upstream.base_path;
  if (base.empty() || base == "/" || route.compiled_regex) return std::string(target);
  auto const query = target.find('?');
  if (!route.path.empty()) return base + std::string(query == std::string_view::npos ? "" : target.substr(query));
  if (route.path_prefix == base) return std::string(target);
  std::string rest(target.substr(std::min(route.path_prefix.size(), target.size())));
  std::string out = base;
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') out.pop_back();
  if (!out.empty() && out.back() != '/' && !rest.empty() && rest.front() != '/' && rest.front() != '?') out += '/';
  return out + rest;
}

std::string_view http_date() {
  thread_local std::time_t formatted_at = 0;
  thread_local std::array<char, 40> text{};
  thread_local std::size_t length = 0;
  std::time_t const now = std::time(nullptr);
  if (now != formatted_at) {
    std::tm utc{};
    gmtime_r(&now, &utc);
    length = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    formatted_at = now;
  }
  return {text.data(), length};
}

namespace {

// Which fields are hop-by-hop in a parsed head: the fixed list and what its
// Connection headers name (except the framing headers, which must stay for
// the body to stream as is). The names point into the head's fields.
class HopByHop {
 public:
  explicit HopByHop(http::fields const& fields) {
    for (auto const& f : fields) {
      if (f.name() != http::field::connection) continue;
      std::string_view value = f.value();
      while (!value.empty()) {
        auto const comma = value.find(',');
        auto token = value.substr(0, comma);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        if (!token.empty() && !beast::iequals(token, "close") && !beast::iequals(token, "keep-alive") &&
            !beast::iequals(token, "transfer-encoding") && !beast::iequals(token, "content-length")) {
          named_.push_back(token);
        }
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
      }
    }
  }

  bool operator()(http::field id, std::string_view name) const {
    switch (id) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::upgrade:
      case http::field::proxy_authorization:
      case http::field::proxy_authenticate:
        return true;
      default:
        break;
    }
    return std::any_of(named_.begin(), named_.end(), [&](std::string_view n) { return beast::iequals(n, name); });
  }

 private:
  std::vector<std::string_view> named_;  // usually empty: no allocation
};

// The route's allow-list (when it has one) with what the proxy itself needs.
bool on_allow_list(HttpRoute const& route, http::field id, std::string_view name) {
  if (!route.forward_headers) return true;
  switch (id) {
    case http::field::content_length:
    case http::field::transfer_encoding:
    case http::field::host:
    case http::field::expect:
      return true;
    case http::field::upgrade:
    case http::field::connection:
    case http::field::sec_websocket_key:
    case http::field::sec_websocket_version:
    case http::field::sec_websocket_protocol:
    case http::field::sec_websocket_extensions:
      if (route.websocket) return true;
      break;
    default:
      break;
  }
  auto const& allowed = *route.forward_headers;
  return std::any_of(allowed.begin(), allowed.end(), [&](std::string const& a) { return beast::iequals(a, name); });
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

void append_version(std::string& out, unsigned version) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10 % 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
}

}  // namespace

std::string render_upstream_request(http::request_header<> const& req, HttpRoute const& route,
                                    HttpClientInfo const& client, bool upgrade) {
  // The forwarding headers replace the client's; its X-Forwarded-For is
  // appended to (the first one, as Beast's lookup finds it).
  std::string_view previous_for;
  std::string_view host;
  bool seen_for = false;
  bool seen_host = false;
  for (auto const& f : req) {
    if (!seen_host && f.name() == http::field::host) {
      host = f.value();
      seen_host = true;
    } else if (!seen_for && beast::iequals(f.name_string(), "X-Forwarded-For")) {
      previous_for = f.value();
      seen_for = true;
    }
  }
  bool const keep_host = route.preserve_host && !host.empty();
  auto const is_replaced = [&](http::field id, std::string_view name) {
    switch (id) {
      case http::field::via:
        return true;
      case http::field::host:
        return !keep_host;
      case http::field::unknown:
        return beast::iequals(name, "X-Forwarded-For") || beast::iequals(name, "X-Real-IP") ||
               beast::iequals(name, "X-Forwarded-Proto") || beast::iequals(name, "X-Forwarded-Host");
      default:
        return false;
    }
  };
  HopByHop const hop_by_hop(req);

  std::string out;
  out.reserve(384);
  out += req.method_string();
  out += ' ';
  auto const& base = route.upstream.base_path;
  if (base.empty() || base == "/" || route.compiled_regex)
    out += req.target();
  else
    out += upstream_target(route, req.target());
  out += ' ';
  append_version(out, upgrade ? req.version() : 11);  // HTTP/1.1 keeps the upstream connection without a header
  out += "\r\n";
  for (auto const& f : req) {
    auto const id = f.name();
    auto const name = f.name_string();
    if (!upgrade && hop_by_hop(id, name)) continue;
    if (is_replaced(id, name) || !on_allow_list(route, id, name)) continue;
    append_field(out, name, f.value());
  }
  out += "X-Forwarded-For: ";
  if (!previous_for.empty() && on_allow_list(route, http::field::unknown, "X-Forwarded-For")) {
    out += previous_for;
    out += ", ";
  }
  out += client.address;
  out += "\r\n";
  append_field(out, "X-Real-IP", client.address);
  append_field(out, "X-Forwarded-Proto", "https");
  if (!host.empty())
    append_field(out, "X-Forwarded-Host", host);
  else if (!client.server_name.empty())
    append_field(out, "X-Forwarded-Host", client.server_name);
  if (!keep_host) append_field(out, "Host", upstream_authority(route));
  append_field(out, "Via", "1.1 edge");
  out += "\r\n";
  return out;
}

std::string render_client_response(http::response_header<> const& res, ClientResponseHead const& head) {
  HopByHop const hop_by_hop(res);
  std::string out;
  out.reserve(384);
  append_version(out, head.version);
  out += ' ';
  auto const status = res.result_int();
  out += static_cast<char>('0' + status / 100 % 10);
  out += static_cast<char>('0' + status / 10 % 10);
  out += static_cast<char>('0' + status % 10);
  out += ' ';
  auto const reason = res.reason();
  out += reason.empty() ? http::obsolete_reason(res.result()) : reason;
  out += "\r\n";
  bool has_date = false;
  for (auto const& f : res) {
    auto const id = f.name();
    if (id == http::field::server || hop_by_hop(id, f.name_string())) continue;
    has_date = has_date || id == http::field::date;
    append_field(out, f.name_string(), f.value());
  }
  // HTTP/1.1 is persistent unless it says close; HTTP/1.0 the other way round.
  if (head.version >= 11 && !head.keep_alive) append_field(out, "Connection", "close");
  if (head.version < 11 && head.keep_alive) append_field(out, "Connection", "keep-alive");
  if (head.server_header) append_field(out, "Server", "edge");
  if (!has_date) append_field(out, "Date", http_date());
  if (head.add_chunked) append_field(out, "Transfer-Encoding", "chunked");
  out += "\r\n";
  return out;
}

}  // namespace edge::proxy
