#include "tls_session.hpp"

#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <cctype>
#include <cstdio>
#include <chrono>
#include <ctime>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/challenge_registry.hpp>
#include <edge/proxy/handshake_log.hpp>
#include <edge/proxy/proxy_metrics.hpp>
#include <optional>

#include "client_connection.hpp"
#include "client_hello.hpp"
#include "connection_control.hpp"
#include "client_hello_preread.hpp"
#include "handshake_classifier.hpp"
#include "http_proxy.hpp"
#include "proxy_protocol.hpp"
#include "tcp_relay.hpp"
#include "tls_contexts.hpp"
#include "tls_policy.hpp"
#include "tls_stream.hpp"

namespace edge::proxy {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// What the OpenSSL callbacks learn during one handshake. Lives on the
// coroutine frame, which outlives the handshake.
struct TlsConnectionState {
  std::shared_ptr<CertificateSet const> certificates;
  ChallengeRegistry const* challenges = nullptr;
  SniPolicies const* sni_policies = nullptr;
  TicketKeyRing* tickets = nullptr;
  UnknownSniPolicy unknown_sni = UnknownSniPolicy::default_certificate;
  std::string local_address;

  bool client_hello_seen = false;
  bool bytes_received = false;
  bool dropped = false;  // closed without an alert on purpose
  std::string server_name;
  std::string offered_alpn;
  std::string offered_versions;
  ServedCertificate const* selected = nullptr;  // kept alive by `certificates`
  std::shared_ptr<ChallengeContext const> challenge;
  std::string rejection;  // error.type decided by a callback
  int client_verify_error = 0;
  // The client's leaf as the verifier saw it: OpenSSL keeps no peer
  // certificate when verification fails, but the record must name it.
  std::unique_ptr<X509, decltype(&X509_free)> client_leaf{nullptr, X509_free};
  int alert_sent = -1;
  int alert_received = -1;
};

int state_index() {
  static int const index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

TlsConnectionState& state_of(SSL* ssl) {
  return *static_cast<TlsConnectionState*>(SSL_get_ex_data(ssl, state_index()));
}

int refuse(TlsConnectionState& state, int* alert, std::string error_type, int description) {
  state.rejection = std::move(error_type);
  *alert = description;
  return SSL_CLIENT_HELLO_ERROR;
}

// Silent drop: the alert OpenSSL writes for the failed ClientHello goes to a
// null BIO, so the client sees only the TCP close. Asio set one BIO as both
// read and write side, and SSL_set_bio then holds a reference for each:
// SSL_set0_wbio drops the write side's, the read side keeps its own (an extra
// reference here leaked the BIO pair of every dropped connection - LSan).
int drop_silently(SSL* ssl, TlsConnectionState& state, int* alert, std::string error_type) {
  SSL_set0_wbio(ssl, BIO_new(BIO_s_null()));
  state.dropped = true;
  return refuse(state, alert, std::move(error_type), SSL_AD_UNRECOGNIZED_NAME);
}

void read_offered_versions(SSL* ssl, TlsConnectionState& state) {
  unsigned char const* data = nullptr;
  std::size_t size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &data, &size) == 1) {
    if (auto versions = parse_supported_versions_extension({data, size})) {
      for (auto v : *versions) {
        if ((v & 0x0f0f) == 0x0a0a) continue;  // GREASE (RFC 8701)
        if (!state.offered_versions.empty()) state.offered_versions += ',';
        state.offered_versions += tls_version_name(v);
      }
      return;
    }
  }
  state.offered_versions = tls_version_name(static_cast<std::uint16_t>(SSL_client_hello_get0_legacy_version(ssl)));
}

int on_client_verify(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto& state = state_of(ssl);
  if (!state.client_leaf) {
    if (X509* leaf = X509_STORE_CTX_get0_cert(store); leaf && X509_up_ref(leaf) == 1) state.client_leaf.reset(leaf);
  }
  if (!preverify_ok && state.client_verify_error == 0) state.client_verify_error = X509_STORE_CTX_get_error(store);
  return preverify_ok;
}

int on_client_hello(SSL* ssl, int* alert, void*) {
  auto& state = state_of(ssl);
  state.client_hello_seen = true;

  unsigned char const* data = nullptr;
  std::size_t size = 0;
  read_offered_versions(ssl, state);
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &size) == 1) {
    auto name = parse_server_name_extension({data, size});
    if (!name) return refuse(state, alert, "malformed_client_hello", SSL_AD_DECODE_ERROR);
    state.server_name = std::move(*name);
  }
  bool acme_only = false;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &size) == 1) {
    auto protocols = parse_alpn_extension({data, size});
    if (!protocols) return refuse(state, alert, "malformed_client_hello", SSL_AD_DECODE_ERROR);
    for (auto const& p : *protocols) {
      if (!state.offered_alpn.empty()) state.offered_alpn += ',';
      state.offered_alpn += p;
    }
    // RFC 8737 section 3: a validation ClientHello offers acme-tls/1 and nothing else.
    acme_only = protocols->size() == 1 && protocols->front() == "acme-tls/1";
  }

  if (acme_only) {
    state.challenge = state.challenges->find(state.server_name);
    if (!state.challenge) return refuse(state, alert, "acme_challenge_unknown", SSL_AD_UNRECOGNIZED_NAME);
    SSL_set_SSL_CTX(ssl, state.challenge->native());
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  auto const& set = *state.certificates;
  ServedCertificate const* cert = nullptr;
  if (state.server_name.empty()) {
    cert = set.find_by_ip(state.local_address);
    if (!cert) cert = set.fallback();
    if (!cert) return refuse(state, alert, "no_certificate", SSL_AD_HANDSHAKE_FAILURE);
  } else {
    cert = set.find_by_name(state.server_name);
    if (!cert) {
      switch (state.unknown_sni) {
        case UnknownSniPolicy::drop:
          return drop_silently(ssl, state, alert, "unknown_sni");
        case UnknownSniPolicy::reject:
          return refuse(state, alert, "unknown_sni", SSL_AD_UNRECOGNIZED_NAME);
        case UnknownSniPolicy::default_certificate:
          cert = set.fallback();
          if (!cert) return refuse(state, alert, "unknown_sni", SSL_AD_UNRECOGNIZED_NAME);
          break;
      }
    }
  }
  state.selected = cert;
  SSL_CTX* const context = cert->context();  // built here the first time this certificate is selected
  if (!context) return refuse(state, alert, "certificate_unusable", SSL_AD_INTERNAL_ERROR);
  SSL_set_SSL_CTX(ssl, context);
  if (!state.server_name.empty()) {
    if (auto const* client_auth = state.sni_policies->client_auth(state.server_name)) {
      client_auth->apply(ssl, on_client_verify);
    }
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                  int encrypt) {
  // No state after the handshake (it lived on the handshake's frame): no ticket then.
  auto* state = static_cast<TlsConnectionState*>(SSL_get_ex_data(ssl, state_index()));
  return state && state->tickets ? state->tickets->handle(key_name, iv, cipher, mac, encrypt) : 0;
}

// Sees every record and alert in both directions: the only reliable way to
// know which alert we sent, or which one the client sent us.
void on_tls_message(int write_p, int, int content_type, void const* buf, std::size_t len, SSL*, void* arg) {
  auto& state = *static_cast<TlsConnectionState*>(arg);
  if (!write_p) state.bytes_received = true;
  if (content_type != SSL3_RT_ALERT || len < 2) return;
  int const description = static_cast<unsigned char const*>(buf)[1];
  (write_p ? state.alert_sent : state.alert_received) = description;
}

std::int64_t unix_micros_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string negotiated_group(SSL* ssl) {
  int const nid = SSL_get_negotiated_group(ssl);
  if (nid == NID_undef || nid == 0) return {};
  if (char const* name = SSL_group_to_name(ssl, nid)) return name;
  return OBJ_nid2sn(nid);
}

std::string name_text(X509_NAME const* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long const len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

void describe_client_certificate(X509* peer, HandshakeEvent& event) {
  if (!peer) return;
  event.client_subject = name_text(X509_get_subject_name(peer));
  event.client_issuer = name_text(X509_get_issuer_name(peer));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      event.client_serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm) == 1) event.client_not_after = timegm(&tm);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(peer, EVP_sha256(), digest, &digest_len) == 1) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < digest_len; ++i) {
      event.client_sha256 += kHex[digest[i] >> 4];
      event.client_sha256 += kHex[digest[i] & 0x0f];
    }
  }
}

void describe_success(SSL* ssl, HandshakeEvent& event) {
  int const version = SSL_version(ssl);
  event.protocol_version = version == TLS1_3_VERSION ? "1.3" : version == TLS1_2_VERSION ? "1.2" : SSL_get_version(ssl);
  if (SSL_CIPHER const* cipher = SSL_get_current_cipher(ssl)) {
    char const* standard = SSL_CIPHER_standard_name(cipher);
    event.cipher = standard ? standard : SSL_CIPHER_get_name(cipher);
  }
  event.curve = negotiated_group(ssl);
  unsigned char const* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  event.next_protocol.assign(reinterpret_cast<char const*>(alpn), alpn_len);
  event.resumed = SSL_session_reused(ssl) == 1;
  event.established = true;
}

// The client certificate's X509 verdict, as the record's error.type.
std::string client_certificate_error(int code) {
  switch (code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "client_cert_expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "client_cert_not_yet_valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "client_cert_unknown_ca";
    case X509_V_ERR_CERT_REVOKED:
      return "client_cert_revoked";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "client_cert_bad_signature";
    default:
      return "client_cert_other:" + x509_error_name(code);
  }
}

struct ClientEndpoints {
  std::string client_address;
  std::uint16_t client_port;
  std::string server_address;
  std::uint16_t server_port;
};

// TLS ends here; the decrypted bytes go to a TCP upstream and back.
asio::awaitable<void> terminate_to_tcp(TlsStream& stream, TlsRoute const& route, SessionEnvironment const& env,
                                       ClientEndpoints const& endpoints) {
  std::string why;
  auto upstream = co_await connect_tcp(route.upstream, env.config.upstream_timeout, why);
  if (!upstream) co_return;  // the record already names the upstream; the client sees the close
  if (route.proxy_protocol) {
    auto const header = make_proxy_header(*route.proxy_protocol, endpoints.client_address, endpoints.client_port,
                                          endpoints.server_address, endpoints.server_port);
    auto [error, n] = co_await asio::async_write(*upstream, asio::buffer(header), use_tuple);
    if (error) co_return;
  }
  co_await relay(stream, *upstream, false);
}

asio::awaitable<void> answer_plain_http(TlsStream& stream) {
  static constexpr std::string_view kResponse =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 35\r\nConnection: close\r\n\r\n"
      "This port speaks HTTPS, not HTTP.\r\n";
  stream.expires_after(std::chrono::seconds(5));
  co_await asio::async_write(stream.socket(), asio::buffer(kResponse), use_tuple);
}

}  // namespace

void install_certificate_selection(SSL_CTX* base_context, bool tickets) {
  state_index();  // allocate the ex_data slot before any thread races for it
  SSL_CTX_set_client_hello_cb(base_context, on_client_hello, nullptr);
  if (tickets) SSL_CTX_set_tlsext_ticket_key_evp_cb(base_context, on_ticket_key);
}

namespace {

// Reads more bytes into the pre-read buffer; false on close, error or timeout.
asio::awaitable<bool> read_more(TlsStream& stream) {
  auto [error, n] = co_await stream.async_read_plain(4096, use_tuple);
  co_return !error || n > 0;
}

std::span<std::uint8_t const> buffered(TlsStream& stream) {
  auto const data = stream.preread().data();
  return {static_cast<std::uint8_t const*>(data.data()), data.size()};
}

// The PROXY header from a trusted balancer: the real client address.
asio::awaitable<bool> read_proxy_header(TlsStream& stream, SessionEnvironment const& env, HandshakeEvent& event) {
  auto const& inbound = env.config.proxy_protocol;
  bool trusted = false;
  for (auto const& cidr : inbound.trusted_proxies) trusted = trusted || cidr.contains(event.client_address);
  if (!trusted) {
    event.error_type = "proxy_protocol_untrusted";
    co_return false;
  }
  for (;;) {
    auto const parsed = parse_proxy_header(buffered(stream));
    if (parsed.status == ProxyParseStatus::complete) {
      bool const v2 = buffered(stream)[0] == 0x0D;
      if (inbound.version && *inbound.version != (v2 ? ProxyProtocolVersion::v2 : ProxyProtocolVersion::v1)) {
        event.error_type = "proxy_protocol_invalid";
        co_return false;
      }
      stream.preread().consume(parsed.consumed);
      if (parsed.header.has_addresses) {
        event.peer_address = event.client_address;
        event.client_address = parsed.header.source_address;
        event.client_port = parsed.header.source_port;
      }
      co_return true;
    }
    if (parsed.status == ProxyParseStatus::invalid) {
      event.error_type = "proxy_protocol_invalid";
      co_return false;
    }
    if (!co_await read_more(stream)) {
      event.error_type = stream.timed_out() ? "handshake_timeout" : "client_closed";
      co_return false;
    }
  }
}

// The ClientHello read ahead of OpenSSL, for routing.
asio::awaitable<std::optional<ClientHelloInfo>> preread_client_hello(TlsStream& stream, HandshakeEvent& event) {
  for (;;) {
    auto parsed = parse_client_hello(buffered(stream));
    switch (parsed.status) {
      case PrereadStatus::complete:
        co_return std::move(parsed.info);
      case PrereadStatus::not_tls:
        event.error_type = "not_tls";
        co_return std::nullopt;
      case PrereadStatus::malformed:
      case PrereadStatus::too_large:
        event.error_type = "malformed_client_hello";
        co_return std::nullopt;
      case PrereadStatus::need_more:
        break;
    }
    if (!co_await read_more(stream)) {
      // A client that sent part of a ClientHello and went quiet timed out.
      event.error_type = buffered(stream).empty() && !stream.timed_out() ? "client_closed" : "handshake_timeout";
      co_return std::nullopt;
    }
  }
}

std::string join(std::vector<std::string> const& items) {
  std::string out;
  for (auto const& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

std::string version_list(std::vector<std::uint16_t> const& versions, std::uint16_t legacy) {
  std::string out;
  for (auto v : versions) {
    if ((v & 0x0f0f) == 0x0a0a) continue;  // GREASE
    out += (out.empty() ? "" : ",") + tls_version_name(v);
  }
  return out.empty() ? tls_version_name(legacy) : out;
}

// Layer 4: bytes pass through to the upstream, nothing terminated here. The
// record is written when the connection ends, with the byte counts.
asio::awaitable<void> pass_through(TlsStream& stream, TlsRoute const& route, SessionEnvironment const& env,
                                   HandshakeEvent event, std::chrono::steady_clock::time_point started) {
  event.upstream = route.upstream.text();
  std::string why;
  auto upstream = co_await connect_tcp(route.upstream, env.config.upstream_timeout, why);
  event.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  if (!upstream) {
    event.outcome = HandshakeOutcome::failed;
    event.error_type = "upstream_unreachable";
    env.log.submit(std::move(event));
    co_return;
  }
  std::string first;
  if (route.proxy_protocol) {
    first = make_proxy_header(*route.proxy_protocol, event.client_address, event.client_port, event.server_address,
                              event.server_port);
  }
  auto const preread = buffered(stream);
  first.append(reinterpret_cast<char const*>(preread.data()), preread.size());
  std::int64_t const preread_size = static_cast<std::int64_t>(preread.size());
  stream.preread().consume(preread.size());
  auto [write_error, written] = co_await asio::async_write(*upstream, asio::buffer(first), use_tuple);
  RelayCounts counts;
  stream.expires_never();
  if (!write_error) counts = co_await relay(stream.socket(), *upstream, true);
  event.outcome = HandshakeOutcome::passthrough;
  event.bytes_in = preread_size + counts.from_client;
  event.bytes_out = counts.to_client;
  env.log.submit(std::move(event));
}

}  // namespace

namespace {

// What the connection does once its handshake record is written.
struct Established {
  enum class Next { close, answer_plain_http, say_goodbye, to_tcp, to_http } next = Next::close;
  TlsRoute const* route = nullptr;
  HttpClientInfo client;
  ClientEndpoints endpoints;
};

// Everything up to the handshake record: PROXY header, ClientHello routing,
// the handshake. Its own coroutine so that its frame (the record, the
// callbacks' state) is freed before the connection settles down to serve
// requests; an idle connection keeps only the caller's small frame.
asio::awaitable<Established> establish(TlsStream& stream, tcp::endpoint const& peer, SessionEnvironment const& env,
                                       ListenerContext const& listener, std::string connection_id,
                                       ConnectionControl& control, std::chrono::steady_clock::time_point started) {
  Established out;
  HandshakeEvent event;
  event.timestamp_us = unix_micros_now();
  event.listener = listener.text;
  event.connection_id = std::move(connection_id);
  event.client_address = peer.address().to_string();
  event.client_port = peer.port();
  boost::system::error_code ec;
  auto const local = listener.local ? *listener.local : stream.socket().local_endpoint(ec);
  if (!ec) {
    event.server_address = local.address().to_string();
    event.server_port = local.port();
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  stream.expires_after(env.config.tls.handshake_timeout);
  auto finish_early = [&](HandshakeOutcome outcome) {
    event.outcome = outcome;
    event.duration_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    env.log.submit(std::move(event));
  };

  if (listener.proxy_protocol && !co_await read_proxy_header(stream, env, event)) {
    finish_early(event.error_type == "handshake_timeout" ? HandshakeOutcome::timeout : HandshakeOutcome::failed);
    co_return out;
  }

  TlsRoute const* route = nullptr;
  if (env.preread) {
    auto hello = co_await preread_client_hello(stream, event);
    if (!hello) {
      bool const http = event.error_type == "not_tls" && buffered(stream).size() >= 4 &&
                        std::isupper(buffered(stream)[0]) && std::isupper(buffered(stream)[1]);
      finish_early(event.error_type == "handshake_timeout" ? HandshakeOutcome::timeout : HandshakeOutcome::failed);
      if (http) out.next = Established::Next::answer_plain_http;
      co_return out;
    }
    event.server_name = hello->server_name;
    event.offered_alpn = join(hello->alpn);
    event.offered_versions = version_list(hello->supported_versions, hello->legacy_version);
    route = &env.sni_policies.route(hello->server_name);
    if (route->mode == RouteMode::reject) {
      finish_early(HandshakeOutcome::rejected);  // silent: no alert, nothing for a scanner to learn
      co_return out;
    }
    if (route->mode == RouteMode::transparent) {
      co_await pass_through(stream, *route, env, std::move(event), started);
      co_return out;
    }
  }

  TlsConnectionState state;
  state.certificates = env.certificates.snapshot();
  state.challenges = &env.challenges;
  state.sni_policies = &env.sni_policies;
  state.tickets = env.tickets;
  state.unknown_sni = listener.unknown_sni;
  state.local_address = event.server_address;
  SSL* ssl = stream.native_handle();
  SSL_set_ex_data(ssl, state_index(), &state);
  SSL_set_msg_callback(ssl, on_tls_message);
  SSL_set_msg_callback_arg(ssl, &state);

  auto [handshake_error] = co_await stream.async_handshake(use_tuple);
  SSL_set_msg_callback(ssl, nullptr);
  SSL_set_ex_data(ssl, state_index(), nullptr);  // `state` ends with this frame

  event.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  event.server_name = state.server_name;
  event.offered_alpn = state.offered_alpn;
  event.offered_versions = state.offered_versions;
  if (state.selected) {
    event.cert_name = state.selected->name;
    event.cert_serial = state.selected->serial;
    event.cert_sha256 = state.selected->sha256;
    event.cert_not_after = state.selected->not_after;
    event.cert_generation = state.selected->generation;
  }
  if (state.alert_sent >= 0 && !state.dropped) event.alert_sent = alert_name(state.alert_sent);
  if (state.alert_received >= 0) event.alert_received = alert_name(state.alert_received);
  X509* client_certificate = SSL_get0_peer_certificate(ssl);
  describe_client_certificate(client_certificate ? client_certificate : state.client_leaf.get(), event);

  if (!handshake_error) {
    describe_success(ssl, event);
    event.outcome = state.challenge ? HandshakeOutcome::acme_challenge : HandshakeOutcome::ok;
  } else {
    if (state.client_verify_error != 0) {
      event.error_type = client_certificate_error(state.client_verify_error);
    } else if (handshake_error.category() == asio::error::get_ssl_category() &&
               ERR_GET_REASON(static_cast<unsigned long>(handshake_error.value())) ==
                   SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      event.error_type = "client_cert_missing";
    } else {
      event.error_type = classify_handshake_failure(
          {handshake_error, state.rejection, state.alert_received, state.client_hello_seen, state.bytes_received});
    }
    event.outcome = event.error_type == "handshake_timeout" ? HandshakeOutcome::timeout : HandshakeOutcome::failed;
  }
  bool const plain_http = event.error_type == "not_tls" && !state.client_hello_seen &&
                          ERR_GET_REASON(static_cast<unsigned long>(handshake_error.value())) == SSL_R_HTTP_REQUEST;
  bool const is_challenge = state.challenge != nullptr;
  if (!handshake_error && !is_challenge && !route) route = &env.sni_policies.route(state.server_name);
  bool const tcp_upstream = route && !route->http;
  if (tcp_upstream) event.upstream = route->upstream.text();
  out.client = HttpClientInfo{event.client_address, state.server_name, event.connection_id};
  out.client.control = &control;
  out.endpoints = ClientEndpoints{event.client_address, event.client_port, event.server_address, event.server_port};
  out.route = route;
  env.log.submit(std::move(event));
  control.set_recorded();  // a stop may now end this connection with its event loop

  if (handshake_error) {
    if (plain_http) out.next = Established::Next::answer_plain_http;
  } else if (is_challenge) {
    out.next = Established::Next::say_goodbye;
  } else {
    out.next = tcp_upstream ? Established::Next::to_tcp : Established::Next::to_http;
  }
  co_return out;
}

}  // namespace

asio::awaitable<void> serve_connection(tcp::socket socket, tcp::endpoint peer,
                                       std::shared_ptr<SessionEnvironment const> environment,
                                       ListenerContext listener, std::string connection_id, OpenConnection open) {
  SessionEnvironment const& env = *environment;  // kept alive by the connection's `generation`
  auto const started = std::chrono::steady_clock::now();
  auto connection = std::make_unique<ClientConnection>(std::move(socket), env.ssl_context.native_handle(),
                                                       std::move(environment), listener.connections, std::move(open));
  TlsStream& stream = connection->stream;
  auto established =
      co_await establish(stream, peer, env, listener, std::move(connection_id), connection->control, started);
  switch (established.next) {
    case Established::Next::close:
      co_return;
    case Established::Next::answer_plain_http:
      co_await answer_plain_http(stream);
      co_return;
    case Established::Next::say_goodbye:
      // The validator only needed our certificate; say goodbye properly.
      stream.expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(use_tuple);
      co_return;
    case Established::Next::to_tcp:
      co_await terminate_to_tcp(stream, *established.route, env, established.endpoints);
      co_return;
    case Established::Next::to_http:
      stream.expires_never();
      connection->client = std::move(established.client);
      connection->client.control = &connection->control;
      connection->config = &env.config;
      connection->pool = listener.upstreams;
      connection->access_log = env.access_log;
      serve_http(std::move(connection));  // this frame ends; the connection goes on
      co_return;
  }
}

void report_connection_error(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "edged: connection: %s\n", e.what());
  }
}

}  // namespace edge::proxy
