#pragma once
// An accepted client connection: what outlives each step of serving it (the
// handshake coroutine, a burst of HTTP requests, the wait for the next one).
// It lives on the heap and is handed from step to step, so that a keep-alive
// connection waiting for its next request holds this object, its SSL object
// and one pending readiness wait - no coroutine frame, request buffer or
// parser (nginx keeps about as much for an idle connection).
#include <edge/proxy/proxy_metrics.hpp>

#include "connection_control.hpp"
#include "http_head.hpp"
#include "tls_stream.hpp"

#include <memory>

namespace edge::proxy {

struct SessionEnvironment;
class AccessLog;
class UpstreamPool;

struct ClientConnection {
  ClientConnection(boost::asio::ip::tcp::socket socket, SSL_CTX* context,
                   std::shared_ptr<SessionEnvironment const> environment, ConnectionSet* set, OpenConnection counted)
      : generation(std::move(environment)),
        open(std::move(counted)),
        stream(std::move(socket), context),
        control(set, stream.socket()) {}
  ClientConnection(ClientConnection const&) = delete;
  ClientConnection& operator=(ClientConnection const&) = delete;

  // Member order matters: the stream outlives the control that refers to
  // its socket; the generation (configuration, contexts) outlives both.
  std::shared_ptr<SessionEnvironment const> generation;
  OpenConnection open;                      // the server's count of open connections
  count::ActiveConnection const active;     // edge_connections_active
  TlsStream stream;
  ConnectionControl control;
  HttpClientInfo client;

  // Set when the connection serves HTTP; all outlive it (the generation, the worker).
  ProxyConfig const* config = nullptr;
  UpstreamPool* pool = nullptr;
  AccessLog* access_log = nullptr;  // null when off
};

}  // namespace edge::proxy
