#pragma once
// One accepted TCP connection: TLS handshake (certificate chosen from the
// ClientHello), exactly one handshake record, then the HTTP proxy.
#include <edge/proxy/config.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace edge::proxy {

class CertificateRegistry;
class ChallengeRegistry;
class AccessLog;
class HandshakeLog;
class SniPolicies;
class TicketKeyRing;

// Shared by the connections of one configuration generation; read-only. A
// connection holds the generation (through its shared_ptr) for life.
struct SessionEnvironment {
  ProxyConfig const& config;
  bool preread;  // routing needs the ClientHello before TLS (needs_preread)
  boost::asio::ssl::context& ssl_context;  // base context with the ClientHello callback
  CertificateRegistry const& certificates;
  ChallengeRegistry const& challenges;
  SniPolicies const& sni_policies;
  TicketKeyRing* tickets;  // null when session tickets are off
  HandshakeLog& log;
  AccessLog* access_log;  // null when proxy.http.access_log is off
};

class UpstreamPool;
class ConnectionSet;

// One listen address as a connection sees it, and the worker's own state.
struct ListenerContext {
  std::string text;  // "127.0.0.1:8443"
  UnknownSniPolicy unknown_sni = UnknownSniPolicy::default_certificate;
  bool proxy_protocol = false;        // a PROXY header comes first
  UpstreamPool* upstreams = nullptr;  // the accepting worker's pool
  ConnectionSet* connections = nullptr;  // the accepting worker's open connections (graceful stop)
  std::optional<boost::asio::ip::tcp::endpoint> local;  // the listener's address; none for a wildcard
};

// Installs the ClientHello callback that picks the certificate per handshake,
// and the ticket-key callback when `tickets` is set.
void install_certificate_selection(SSL_CTX* base_context, bool tickets);

class OpenConnection;

// The connection from its accept to the handshake record, then the route's
// service. An HTTP connection outlives this coroutine: it is handed on
// (serve_http) with its state in a ClientConnection.
boost::asio::awaitable<void> serve_connection(boost::asio::ip::tcp::socket socket, boost::asio::ip::tcp::endpoint peer,
                                              std::shared_ptr<SessionEnvironment const> environment,
                                              ListenerContext listener, std::string connection_id,
                                              OpenConnection open);

// Completion of a connection's coroutines: an exception escaping one is a
// bug, reported on stderr; the connection is closed by then.
void report_connection_error(std::exception_ptr error);

}  // namespace edge::proxy
