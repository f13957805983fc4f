// proxy.listen addresses: parsed by the config loader, printed in logs. Its
// own file (not server.cpp) so that the config loader's fuzz target can use
// it without compiling the server.
#include <boost/asio/ip/address.hpp>
#include <edge/proxy/config.hpp>
#include <stdexcept>
#include <string>

namespace edge::proxy {
namespace asio = boost::asio;

std::string ListenAddress::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool parse_listen_address(std::string const& text, ListenAddress& out, std::string& why) {
  std::string host, port;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string::npos) {
      why = "expected \"[ipv6]:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      why = "expected \"ip:port\" or \"[ipv6]:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    why = "\"" + host + "\" is not an IP address";
    return false;
  }
  unsigned long number = 0;
  try {
    std::size_t used = 0;
    number = std::stoul(port, &used);
    if (used != port.size()) throw std::invalid_argument(port);
  } catch (std::exception const&) {
    why = "\"" + port + "\" is not a port number";
    return false;
  }
  if (number == 0 || number > 65535) {
    why = "port " + port + " is out of range 1..65535";
    return false;
  }
  out.host = address.to_string();
  out.port = static_cast<std::uint16_t>(number);
  return true;
}

}  // namespace edge::proxy
