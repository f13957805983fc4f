// TlsStream (edge/src/tls_stream.hpp) against a real OpenSSL client on a
// loopback socket: handshake after pre-read bytes, records, timeouts, the
// readiness wait between requests, the watch.
#include "tls_stream.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

namespace {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using edge::proxy::TlsStream;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;

SslCtx server_context() {
  SslCtx ctx(SSL_CTX_new(TLS_server_method()));
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<unsigned char const*>("stream.test"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX_use_certificate(ctx.get(), cert);
  SSL_CTX_use_PrivateKey(ctx.get(), key);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ctx;
}

// A blocking OpenSSL client in its own thread, on its own socket.
class Client {
 public:
  explicit Client(unsigned short port) : context_(SSL_CTX_new(TLS_client_method())) {
    asio::ip::tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    fd_ = s.release();
    ssl_ = SSL_new(context_.get());
    SSL_set_fd(ssl_, fd_);
  }
  ~Client() {
    SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool handshake() { return SSL_connect(ssl_) == 1; }
  void send(std::string const& text) { SSL_write(ssl_, text.data(), static_cast<int>(text.size())); }
  // One SSL_read: at most one record's plaintext.
  std::string read_once() {
    char buffer[4096];
    int const n = SSL_read(ssl_, buffer, sizeof buffer);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }
  void close_tcp() {
    ::shutdown(fd_, SHUT_RDWR);
  }
  int fd() const { return fd_; }

 private:
  asio::io_context io_;
  SslCtx context_;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest() : context_(server_context()), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {}

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  // Runs `server(stream)` on the accepted connection while `client` runs in a thread.
  template <class Server, class ClientFn>
  void run(Server server, ClientFn client) {
    auto client_done = std::async(std::launch::async, [&] { client(port()); });
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
          TlsStream stream(std::move(socket), context_.get());
          co_await server(stream);
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    io_.run_for(std::chrono::seconds(20));
    ASSERT_EQ(client_done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    client_done.get();
  }

  SslCtx context_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
};

TEST_F(TlsStreamTest, HandshakeAfterPrereadBytesThenSmallBuffersGoOutAsOneRecord) {
  std::string first_record;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        // What the router does: read part of the ClientHello ahead of TLS.
        auto [read_error, n] = co_await stream.async_read_plain(16, use_tuple);
        EXPECT_FALSE(read_error);
        EXPECT_GT(stream.preread().size(), 0u);
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error) << handshake_error.message();
        EXPECT_EQ(stream.preread().size(), 0u) << "OpenSSL read the pre-read bytes first";
        char buffer[64];
        auto [e1, got] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_FALSE(e1);
        EXPECT_EQ(std::string(buffer, got), "ping");
        std::array<asio::const_buffer, 2> const pieces{asio::buffer("HEAD\r\n", 6), asio::buffer("body", 4)};
        auto [e2, written] = co_await asio::async_write(stream, pieces, use_tuple);
        EXPECT_FALSE(e2);
        EXPECT_EQ(written, 10u);
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        client.send("ping");
        first_record = client.read_once();
      });
  EXPECT_EQ(first_record, "HEAD\r\nbody") << "header and body in one record";
}

TEST_F(TlsStreamTest, SilentClientTimesOutWithoutBlockingTheEventLoop) {
  std::promise<void> server_done;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        // The BIO's first recv() comes before any Asio read: the socket must
        // already be non-blocking, or this thread would sleep in recv().
        stream.expires_after(std::chrono::milliseconds(200));
        auto const started = std::chrono::steady_clock::now();
        auto [error] = co_await stream.async_handshake(use_tuple);
        EXPECT_EQ(error, boost::beast::error::timeout) << error.message();
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
        server_done.set_value();
      },
      [&](unsigned short port) {
        asio::io_context io;
        tcp::socket silent(io);
        silent.connect({asio::ip::make_address("127.0.0.1"), port});
        server_done.get_future().wait_for(std::chrono::seconds(10));
      });
}

TEST_F(TlsStreamTest, ClientLeavingBeforeItsHelloIsEndOfStream) {
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        stream.expires_after(std::chrono::seconds(10));
        auto [error] = co_await stream.async_handshake(use_tuple);
        // Not stream_truncated, and no decode_error alert sent into the closed socket.
        EXPECT_EQ(error, asio::error::eof) << error.message();
      },
      [&](unsigned short port) {
        asio::io_context io;
        tcp::socket leaving(io);
        leaving.connect({asio::ip::make_address("127.0.0.1"), port});
        leaving.close();
      });
}

TEST_F(TlsStreamTest, WaitReadableEndsWhenBytesComeAndWhenThePeerLeaves) {
  std::promise<void> waiting;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        stream.expires_after(std::chrono::seconds(10));
        EXPECT_FALSE(stream.has_buffered());
        waiting.set_value();
        auto [first] = co_await stream.async_wait_readable(use_tuple);
        EXPECT_FALSE(first) << first.message();
        char buffer[16];
        auto [read_error, n] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_FALSE(read_error);
        EXPECT_EQ(std::string(buffer, n), "next");
        auto [second] = co_await stream.async_wait_readable(use_tuple);
        EXPECT_FALSE(second) << "the end is something to read, too";
        auto [end_error, none] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_EQ(end_error, asio::error::eof) << end_error.message();
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        waiting.get_future().wait_for(std::chrono::seconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        client.send("next");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        client.close_tcp();
      });
}

TEST_F(TlsStreamTest, WaitReadableTimesOutAtTheDeadline) {
  std::promise<void> server_done;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        stream.expires_after(std::chrono::milliseconds(100));
        auto [error] = co_await stream.async_wait_readable(use_tuple);
        EXPECT_EQ(error, boost::beast::error::timeout) << error.message();
        EXPECT_FALSE(stream.socket().is_open());
        server_done.set_value();
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        server_done.get_future().wait_for(std::chrono::seconds(10));
      });
}

TEST_F(TlsStreamTest, DeadlineEndsAPendingReadWithTimeout) {
  std::promise<void> server_done;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        stream.expires_after(std::chrono::milliseconds(100));
        char buffer[16];
        auto const started = std::chrono::steady_clock::now();
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_EQ(error, boost::beast::error::timeout) << error.message();
        EXPECT_TRUE(stream.timed_out());
        EXPECT_FALSE(stream.socket().is_open()) << "a timeout closes the socket, as beast::tcp_stream does";
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
        server_done.set_value();
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        server_done.get_future().wait_for(std::chrono::seconds(10));
      });
}

TEST_F(TlsStreamTest, DeadlineMovedLaterDoesNotFireAtTheEarlierTime) {
  std::promise<void> go;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        stream.expires_after(std::chrono::milliseconds(100));
        stream.expires_after(std::chrono::seconds(10));  // as each request does: later and later
        go.set_value();
        char buffer[16];
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_FALSE(error) << error.message();
        EXPECT_EQ(std::string(buffer, n), "late");
        EXPECT_FALSE(stream.timed_out());
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        go.get_future().wait_for(std::chrono::seconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(400));  // well past the first deadline
        client.send("late");
      });
}

TEST_F(TlsStreamTest, DeadlinePassingWithNothingPendingClosesNothingButTheNextOperationTimesOut) {
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        stream.expires_after(std::chrono::milliseconds(50));
        asio::steady_timer pause(stream.get_executor(), std::chrono::milliseconds(300));
        co_await pause.async_wait(use_tuple);  // e.g. waiting for an upstream, not for this client
        EXPECT_TRUE(stream.socket().is_open());
        EXPECT_FALSE(stream.timed_out());
        char buffer[16];
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_EQ(error, boost::beast::error::timeout) << error.message();
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        client.read_once();  // until the server closes
      });
}

TEST_F(TlsStreamTest, WatchKeepsArrivingBytesForTheNextRead) {
  std::promise<void> watching;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        asio::steady_timer arrived(stream.get_executor(), std::chrono::seconds(10));
        std::size_t seen = 0;
        EXPECT_TRUE(stream.watch([&](boost::system::error_code error, std::size_t n) {
          EXPECT_FALSE(error);
          seen = n;
          arrived.cancel();
        }));
        watching.set_value();
        co_await arrived.async_wait(use_tuple);
        EXPECT_GT(seen, 0u);
        // The bytes the watch read stay in the inbox for the next TLS read.
        char buffer[64];
        auto [error, n] = co_await stream.async_read_some(asio::buffer(buffer), use_tuple);
        EXPECT_FALSE(error) << error.message();
        EXPECT_EQ(std::string(buffer, n), "pipelined");
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        watching.get_future().wait_for(std::chrono::seconds(10));
        client.send("pipelined");
        client.read_once();  // until the server closes
      });
}

TEST_F(TlsStreamTest, AttemptsWithoutWaitingSayWouldBlockThenTheAsyncOperationTakesOver) {
  std::promise<void> drained;
  std::promise<void> sent;
  std::string reply;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        char buffer[64];
        boost::system::error_code error;
        // Nothing sent yet: the attempt returns at once.
        EXPECT_EQ(stream.read_some(asio::buffer(buffer), error), 0u);
        EXPECT_EQ(error, asio::error::would_block);
        drained.set_value();
        sent.get_future().wait_for(std::chrono::seconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the record crosses loopback
        // Found drained, the socket is not read again before a wait says it is readable (as nginx does).
        EXPECT_EQ(stream.read_some(asio::buffer(buffer), error), 0u);
        EXPECT_EQ(error, asio::error::would_block);
        stream.expires_after(std::chrono::seconds(10));
        auto [wait_error] = co_await stream.async_wait_readable(use_tuple);
        EXPECT_FALSE(wait_error);
        auto const n = stream.read_some(asio::buffer(buffer), error);
        EXPECT_FALSE(error) << error.message();
        EXPECT_EQ(std::string(buffer, n), "request");
        // A pending watch comes before any read attempt, but not before a write.
        EXPECT_TRUE(stream.watch([](boost::system::error_code, std::size_t) {}));
        EXPECT_EQ(stream.read_some(asio::buffer(buffer), error), 0u);
        EXPECT_EQ(error, asio::error::would_block);
        std::array<asio::const_buffer, 2> const pieces{asio::buffer("HEAD\r\n", 6), asio::buffer("body", 4)};
        EXPECT_EQ(stream.write_some(pieces, error), 10u) << "gathered into one record";
        EXPECT_FALSE(error) << error.message();
        stream.socket().cancel();  // ends the watch
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        drained.get_future().wait_for(std::chrono::seconds(10));
        client.send("request");
        sent.set_value();
        reply = client.read_once();
      });
  EXPECT_EQ(reply, "HEAD\r\nbody");
}

TEST_F(TlsStreamTest, WatchSeesTheClientLeave) {
  std::promise<void> watching;
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_FALSE(handshake_error);
        asio::steady_timer done(stream.get_executor(), std::chrono::seconds(10));
        bool left = false;
        EXPECT_TRUE(stream.watch([&](boost::system::error_code error, std::size_t n) {
          left = error || n == 0;
          done.cancel();
        }));
        watching.set_value();
        co_await done.async_wait(use_tuple);
        EXPECT_TRUE(left) << "FIN seen by the watch";
      },
      [&](unsigned short port) {
        Client client(port);
        ASSERT_TRUE(client.handshake());
        watching.get_future().wait_for(std::chrono::seconds(10));
        client.close_tcp();
      });
}

TEST_F(TlsStreamTest, PlainBytesFailTheHandshakeWithAnSslError) {
  run(
      [&](TlsStream& stream) -> asio::awaitable<void> {
        auto [handshake_error] = co_await stream.async_handshake(use_tuple);
        EXPECT_TRUE(handshake_error);
        EXPECT_EQ(handshake_error.category(), asio::error::get_ssl_category()) << handshake_error.message();
        EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(handshake_error.value())), SSL_R_HTTP_REQUEST);
      },
      [&](unsigned short port) {
        asio::io_context io;
        tcp::socket s(io);
        s.connect({asio::ip::make_address("127.0.0.1"), port});
        asio::write(s, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
        char buffer[64];
        boost::system::error_code ignored;
        s.read_some(asio::buffer(buffer), ignored);
      });
}

}  // namespace
