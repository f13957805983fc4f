#include "admin_client.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace edge::cli {
namespace json = boost::json;

void throw_exception_from_error(AdminCallError const& e, boost::source_location const&) {
  throw std::runtime_error(e.message);
}

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd const&) = delete;
  Fd& operator=(Fd const&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

AdminCallError unreachable(std::string const& url, std::string const& why) {
  return {AdminCallError::Kind::unreachable, 0,
          "cannot reach edged's admin API at " + url + " (" + why +
              "): is edged running with an admin: section there? Without --admin, edgectl reads the store (--store)"};
}

bool wait_for(int fd, short events, std::chrono::seconds timeout) {
  pollfd p{fd, events, 0};
  int const rc = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(timeout).count()));
  return rc > 0;
}

}  // namespace

std::string read_token_file(std::string const& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read the token file " + path + " (admin.token_file of edged)");
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(token.begin());
  return token;
}

AdminClient::AdminClient(std::string url, std::string token, std::chrono::seconds timeout)
    : url_(std::move(url)), token_(std::move(token)), timeout_(timeout) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
}

boost::system::result<std::string, AdminCallError> AdminClient::post(std::string const& body, int& status) const {
  int fd = -1;
  std::string host = "localhost";
  if (url_.starts_with("unix:")) {
    auto const path = url_.substr(5);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return unreachable(url_, "socket path too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      auto const why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return unreachable(url_, why);
    }
  } else if (url_.starts_with("http://")) {
    auto authority = url_.substr(7);
    authority = authority.substr(0, authority.find('/'));
    std::string port = "80";
    if (authority.starts_with("[")) {
      auto const close = authority.find(']');
      host = authority.substr(1, close - 1);
      if (close != std::string::npos && close + 1 < authority.size()) port = authority.substr(close + 2);
    } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    } else {
      host = authority;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
      return unreachable(url_, gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
    std::string why = "no address";
    for (auto* a = found; a; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
      why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    if (fd < 0) return unreachable(url_, why);
  } else {
    return AdminCallError{AdminCallError::Kind::unreachable, 0,
                          "--admin " + url_ + ": expected http://HOST:PORT or unix:/PATH"};
  }
  Fd socket(fd);
  std::string request = "POST /rpc HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n";
  if (!token_.empty()) request += "Authorization: Bearer " + token_ + "\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    if (!wait_for(fd, POLLOUT, timeout_)) return unreachable(url_, "timed out writing");
    auto const n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return unreachable(url_, std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    if (!wait_for(fd, POLLIN, timeout_)) return unreachable(url_, "timed out waiting for the answer");
    auto const n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) return unreachable(url_, std::strerror(errno));
    if (n == 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody": edged answers with Content-Length and closes.
  auto const header_end = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || header_end == std::string::npos || response.size() < 12)
    return unreachable(url_, "not an HTTP answer");
  status = std::atoi(response.c_str() + 9);
  return response.substr(header_end + 4);
}

boost::system::result<json::value, AdminCallError> AdminClient::call(std::string const& method,
                                                                     json::object params) const {
  json::object request{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", std::move(params)}};
  int status = 0;
  auto body = post(json::serialize(request), status);
  if (!body) return body.error();
  if (status == 401) {
    return AdminCallError{AdminCallError::Kind::unauthorized, 401,
                          token_.empty() ? "edged wants the admin token for " + method +
                                               ": pass --token-file (the admin.token_file of edged)"
                                         : "edged refused the admin token for " + method +
                                               ": check --token-file against edged's admin.token_file"};
  }
  boost::system::error_code ec;
  auto answer = json::parse(*body, ec);
  if (ec || !answer.is_object()) {
    return AdminCallError{AdminCallError::Kind::http, status,
                          "edged answered HTTP " + std::to_string(status) + " without a JSON-RPC answer"};
  }
  auto const& o = answer.as_object();
  if (auto const* error = o.if_contains("error")) {
    auto const& e = error->as_object();
    std::string message = std::string(e.at("message").as_string());
    if (auto const* data = e.if_contains("data"); data && data->is_string()) message += ": " + std::string(data->as_string());
    return AdminCallError{AdminCallError::Kind::rpc, static_cast<int>(e.at("code").to_number<std::int64_t>()),
                          method + ": " + message};
  }
  if (auto const* result = o.if_contains("result")) return *result;
  return AdminCallError{AdminCallError::Kind::http, status, method + ": the answer has no result"};
}

}  // namespace edge::cli
