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

void strip_hop_by_hop(http::fields& fields) {
  // Names listed in Connection, collected first: erasing while iterating would invalidate.
  std::vector<std::string> named;
  for (auto const& f : fields) {
    if (f.name() != http::field::connection) continue;
    std::string_view value = f.value();
    while (!value.empty()) {
      auto comma = value.find(',');
      auto token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (!token.empty() && !beast::iequals(token, "close") && !beast::iequals(token, "keep-alive")) {
        named.emplace_back(token);
      }
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    }
  }
  for (auto const& name : named) {
    if (!beast::iequals(name, "transfer-encoding") && !beast::iequals(name, "content-length")) fields.erase(name);
  }
  for (auto field : {http::field::connection, http::field::keep_alive, http::field::proxy_connection, http::field::te,
                     http::field::trailer, http::field::upgrade, http::field::proxy_authorization,
                     http::field::proxy_authenticate}) {
    fields.erase(field);
  }
}

void apply_forward_headers(http::request_header<>& req, HttpRoute const& route) {
  if (!route.forward_headers) return;
  auto const& allowed = *route.forward_headers;
  auto keep = [&](http::field id, std::string_view name) {
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
    return std::any_of(allowed.begin(), allowed.end(), [&](std::string const& a) { return beast::iequals(a, name); });
  };
  for (auto it = req.begin(); it != req.end();) {
    if (keep(it->name(), it->name_string()))
      ++it;
    else
      it = req.erase(it);
  }
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

void add_forwarding_headers(http::request_header<>& req, HttpRoute const& route, HttpClientInfo const& client) {
  auto const previous = req["X-Forwarded-For"];
  if (previous.empty()) {
    req.set("X-Forwarded-For", client.address);
  } else {
    std::string forwarded_for;
    forwarded_for.reserve(previous.size() + 2 + client.address.size());
    forwarded_for.append(previous).append(", ").append(client.address);
    req.set("X-Forwarded-For", forwarded_for);
  }
  req.set("X-Real-IP", client.address);
  req.set("X-Forwarded-Proto", "https");
  auto const host = req[http::field::host];
  if (!host.empty())
    req.set("X-Forwarded-Host", host);
  else if (!client.server_name.empty())
    req.set("X-Forwarded-Host", client.server_name);
  if (!route.preserve_host || req[http::field::host].empty()) req.set(http::field::host, upstream_authority(route));
  req.set(http::field::via, "1.1 edge");
}

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

void rewrite_request_head(http::request_header<>& req, HttpRoute const& route, HttpClientInfo const& client,
                          bool upgrade) {
  if (!upgrade) strip_hop_by_hop(req);
  apply_forward_headers(req, route);
  auto const& base = route.upstream.base_path;
  if (!(base.empty() || base == "/" || route.compiled_regex)) req.target(upstream_target(route, req.target()));
  add_forwarding_headers(req, route, client);
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

void append_fields(std::string& out, http::fields const& fields) {
  for (auto const& field : fields) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
}

void append_version(std::string& out, unsigned version) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10 % 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
}

}  // namespace

std::string render_head(http::request_header<> const& req) {
  std::string out;
  out.reserve(256);
  out += req.method_string();
  out += ' ';
  out += req.target();
  out += ' ';
  append_version(out, req.version());
  out += "\r\n";
  append_fields(out, req);
  return out;
}

std::string render_head(http::response_header<> const& res) {
  std::string out;
  out.reserve(256);
  append_version(out, res.version());
  out += ' ';
  auto const status = res.result_int();
  out += static_cast<char>('0' + status / 100 % 10);
  out += static_cast<char>('0' + status / 10 % 10);
  out += static_cast<char>('0' + status % 10);
  out += ' ';
  auto const reason = res.reason();
  out += reason.empty() ? http::obsolete_reason(res.result()) : reason;
  out += "\r\n";
  append_fields(out, res);
  return out;
}

}  // namespace edge::proxy
