#pragma once
// edgectl's client of edged's admin API: JSON-RPC 2.0 over HTTP/1.1 on TCP
// ("http://127.0.0.1:9091") or the admin Unix socket ("unix:/run/edge/admin.sock").
// Blocking POSIX sockets: edgectl makes one call at a time and has nothing
// else to do meanwhile.
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <string>

namespace edge::cli {

struct AdminCallError {
  enum class Kind { unreachable, unauthorized, http, rpc } kind = Kind::unreachable;
  int code = 0;         // JSON-RPC error code (kind rpc) or HTTP status (kind http/unauthorized)
  std::string message;  // says what failed and what to do
};

[[noreturn]] void throw_exception_from_error(AdminCallError const& e, boost::source_location const&);

class AdminClient {
 public:
  // `url`: http://host:port[/] or unix:/path. `token` may be empty.
  AdminClient(std::string url, std::string token, std::chrono::seconds timeout = std::chrono::seconds(30));

  boost::system::result<boost::json::value, AdminCallError> call(std::string const& method,
                                                                 boost::json::object params = {}) const;
  std::string const& url() const { return url_; }

 private:
  boost::system::result<std::string, AdminCallError> post(std::string const& body, int& status) const;
  std::string url_;
  std::string token_;
  std::chrono::seconds timeout_;
};

// The token from a file: the first line, blanks trimmed. Empty path: "".
std::string read_token_file(std::string const& path);

}  // namespace edge::cli
