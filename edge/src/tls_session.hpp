#pragma once
// One accepted TCP connection: TLS handshake (certificate chosen from the
// ClientHello), exactly one handshake record, then the HTTP proxy.
#include <edge/proxy/config.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <string>

namespace edge::proxy {

class CertificateRegistry;
class ChallengeRegistry;
class HandshakeLog;

// Shared by all connections of a server; read-only after start.
struct SessionEnvironment {
  ProxyConfig const& config;
  boost::asio::ssl::context& ssl_context;  // base context with the ClientHello callback
  CertificateRegistry const& certificates;
  ChallengeRegistry const& challenges;
  HandshakeLog& log;
};

// Installs the ClientHello callback that picks the certificate per handshake.
void install_certificate_selection(SSL_CTX* base_context);

boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket,
                                              SessionEnvironment const& env);

}  // namespace edge::proxy
