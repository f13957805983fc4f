#pragma once
// The client side of a terminated TLS connection: OpenSSL reads and writes the
// socket itself, through a small BIO of ours, the way nginx and HAProxy do.
//
// Why not asio::ssl::stream: it keeps two 17 KiB staging buffers and a BIO
// pair with two more per connection (about 70 KiB of the 73 KiB an idle
// connection cost), copies every byte twice, and sends a response's header
// and body as separate records. Here an idle connection holds only its SSL
// object: OpenSSL reads ahead into its own record buffer, which it releases
// when empty (SSL_MODE_RELEASE_BUFFERS), and each record is sent with one
// send(). Like nginx, a read that found the socket drained is not retried
// before the socket says more has come.
//
// Waiting for the socket is an Asio receive with MSG_PEEK into a scratch
// buffer shared by the worker's connections (the bytes stay in the socket
// for OpenSSL; only the kernel writes the scratch, on this thread), not a
// readiness wait: Asio re-arms those with an epoll_ctl each time, while a
// receive is speculative and, after a short one, skips the system call
// until epoll reports the socket again.
//
// The stream is an Asio AsyncReadStream/AsyncWriteStream, so Beast's HTTP
// reads and writes work on it unchanged. Timeouts follow beast::tcp_stream
// (see Deadline; a watch() is not governed by it).
#include <boost/asio/ip/tcp.hpp>

#include "deadline.hpp"
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <type_traits>

#include <openssl/ssl.h>

namespace edge::proxy {

class TlsStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using Clock = std::chrono::steady_clock;

  // A server-side stream on `socket`, with a new SSL object from `context`.
  TlsStream(boost::asio::ip::tcp::socket socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(TlsStream const&) = delete;
  TlsStream& operator=(TlsStream const&) = delete;

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  SSL* native_handle() noexcept { return ssl_.get(); }
  boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }

  // Bytes read ahead of TLS (PROXY header, ClientHello for routing): OpenSSL
  // reads what is left here before the socket.
  boost::beast::flat_buffer& preread() {
    if (!preread_) preread_ = std::make_unique<boost::beast::flat_buffer>();
    return *preread_;
  }

  // Deadline for the operations that follow (also plain ones on socket()).
  void expires_after(Clock::duration timeout) { deadline_.expires_after(timeout); }
  void expires_never() noexcept { deadline_.expires_never(); }
  bool timed_out() const noexcept { return deadline_.fired(); }

  // Reads plain bytes from the socket into preread() (before TLS starts).
  template <class Token>
  auto async_read_plain(std::size_t size, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        PlainRead{this, size}, token, socket_);
  }

  template <class Token>
  auto async_handshake(Token&& token) {
    return async_step<void(boost::system::error_code)>(Handshake{this}, token);
  }
  // Sends close_notify; does not wait for the peer's (as nginx does).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return async_step<void(boost::system::error_code)>(Shutdown{this}, token);
  }
  template <class MutableBuffers, class Token>
  auto async_read_some(MutableBuffers const& buffers, Token&& token) {
    return async_step<void(boost::system::error_code, std::size_t)>(
        Read{this, first_buffer(buffers)}, token);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(ConstBuffers const& buffers, Token&& token) {
    return async_step<void(boost::system::error_code, std::size_t)>(Write{this, gather(buffers)}, token);
  }

  // One attempt, without waiting (a SyncReadStream, so Beast's synchronous
  // HTTP reads work on it; the throwing read_some is only for that): what OpenSSL can read or
  // write now. asio::error::would_block when it would have to wait for the
  // socket; the asynchronous operation then takes over. Most of a proxied
  // request's reads and writes need no wait, and this spares them the round
  // through the event loop an Asio operation makes even when it could
  // complete at once (a post, a handler dispatch, a coroutine resumption).
  template <class MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers, boost::system::error_code& error) {
    return attempt(Read{this, first_buffer(buffers)}, error);
  }
  template <class MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers) {
    boost::system::error_code error;
    auto const n = read_some(buffers, error);
    if (error) throw boost::system::system_error(error);
    return n;
  }
  template <class ConstBuffers>
  std::size_t write_some(ConstBuffers const& buffers, boost::system::error_code& error) {
    return attempt(Write{this, gather(buffers)}, error);
  }

  // Completes when a read would find something: bytes already read ahead
  // (by OpenSSL or pre-read), the socket readable, or its end. Waiting here
  // between requests keeps no buffer: it is one peek of the socket (no
  // composed operation). Governed by the deadline.
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) { start_readable_wait(std::move(handler)); }, token);
  }
  // Bytes read ahead and not yet taken by a read (OpenSSL's or pre-read).
  bool has_buffered() const noexcept {
    return (preread_ && preread_->size() > 0) || SSL_has_pending(ssl_.get()) == 1;
  }

  // Watches the socket while nothing else reads (a client waiting for its
  // upstream), so that a close is seen at once. `handler(error, bytes)` runs
  // when bytes or the close arrive: bytes 0 (or an error) is the end of the
  // stream, more means something is there, left in the socket for the next
  // TLS read (which waits for a pending watch to end). socket().cancel()
  // ends it. False (and no handler) when a read is pending.
  template <class Handler>
  bool watch(Handler handler) {
    if (watching_ || waiting_) return false;
    watching_ = true;
    socket_.async_receive(peek_space(), boost::asio::socket_base::message_peek,
                          WatchOp<Handler>{deadline_.state(), std::move(handler)});
    return true;
  }

  // What one attempt of an OpenSSL call came to.
  enum class Want { nothing, read, write };
  struct Step {
    Want want = Want::nothing;
    boost::system::error_code error;
    std::size_t bytes = 0;
  };

 private:
  struct Handshake { TlsStream* s; Step operator()() const { return s->handshake_step(); } };
  struct Shutdown { TlsStream* s; Step operator()() const { return s->shutdown_step(); } };
  struct Read {
    TlsStream* s;
    boost::asio::mutable_buffer buffer;
    Step operator()() const { return s->read_step(buffer); }
  };
  struct Write {
    TlsStream* s;
    boost::asio::const_buffer buffer;
    Step operator()() const { return s->write_step(buffer); }
  };

  template <class Buffers>
  static boost::asio::mutable_buffer first_buffer(Buffers const& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it)
      if (boost::asio::mutable_buffer b = *it; b.size() > 0) return b;
    return {};
  }
  // A record per buffer would cost a send() and 22 bytes each: small buffer
  // sequences (an HTTP header and its body) are joined into one record.
  template <class Buffers>
  static boost::asio::const_buffer gather(Buffers const& buffers) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    auto const end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::const_buffer(*it).size() == 0) ++it;
    if (it == end) return {};
    boost::asio::const_buffer const first = *it;
    if (std::next(it) == end || first.size() >= kGatherLimit) return first;
    auto& scratch = gather_scratch();
    std::size_t used = 0;
    for (; it != end && used < scratch.size(); ++it) used += boost::asio::buffer_copy(
        boost::asio::buffer(scratch.data() + used, scratch.size() - used), boost::asio::const_buffer(*it));
    return {scratch.data(), used};
  }
  static constexpr std::size_t kGatherLimit = 16384;
  static std::array<char, kGatherLimit>& gather_scratch();

  template <class StepFn>
  std::size_t attempt(StepFn step, boost::system::error_code& error) {
    error = {};
    if (deadline_.fired()) {
      error = boost::beast::error::timeout;
      return 0;
    }
    // A pending peek (a wait or a watch) comes before any read: its handler
    // must see the socket as it left it. A write reads nothing (one that
    // would, Want::read, is left to the asynchronous operation).
    if (std::is_same_v<StepFn, Read> && (watching_ || waiting_)) {
      error = boost::asio::error::would_block;
      return 0;
    }
    Step const result = step();
    if (result.want != Want::nothing) {
      error = boost::asio::error::would_block;
      return 0;
    }
    error = result.error;
    return result.bytes;
  }

  bool begin_op() { return deadline_.begin(socket_); }  // false: timed out (see Deadline)
  void end_op() noexcept { deadline_.end(); }

  Step handshake_step();
  Step shutdown_step();
  Step read_step(boost::asio::mutable_buffer buffer);
  Step write_step(boost::asio::const_buffer buffer);
  Step finish(int result, std::size_t bytes);
  static boost::asio::mutable_buffer peek_space();
  // The end of a peek (a wait or a watch): what it says about the socket.
  void peeked(boost::system::error_code error) noexcept {
    if (error == boost::asio::error::eof) peer_closed_ = true;
    if (!error || error == boost::asio::error::eof) drained_ = false;
  }

  template <class Handler>
  struct ReadableWait {
    TlsStream* s;  // outlives the wait, as with any Asio I/O object
    Handler handler;
    void operator()(boost::system::error_code error, std::size_t) {
      s->waiting_ = false;
      s->end_op();
      s->peeked(error);
      if (error == boost::asio::error::eof) error = {};  // the end is something to read, too
      handler(error ? s->socket_error(error) : error);
    }
  };

  template <class Handler>
  void start_readable_wait(Handler handler, bool yielded = false) {
    auto now = [this, &handler](boost::system::error_code error) {
      boost::asio::post(get_executor(), [handler = std::move(handler), error]() mutable { handler(error); });
    };
    if (waiting_) return now(boost::asio::error::in_progress);  // two waits: a bug
    if (watching_) {
      // A watch just stopped (its cancelled handler is queued) when the
      // response went out without a wait: that handler runs first.
      if (yielded) return now(boost::asio::error::in_progress);  // a watch left running: a bug
      return boost::asio::post(get_executor(), [this, handler = std::move(handler)]() mutable {
        start_readable_wait(std::move(handler), true);
      });
    }
    if (!begin_op()) {
      end_op();
      return now(boost::beast::error::timeout);
    }
    // Not drained: the last read took all it asked for, so more may be there.
    if (!drained_ || peer_closed_ || has_buffered()) {
      end_op();
      return now({});
    }
    waiting_ = true;
    socket_.async_receive(peek_space(), boost::asio::socket_base::message_peek,
                          ReadableWait<Handler>{this, std::move(handler)});
  }

  template <class Handler>
  struct WatchOp {
    std::shared_ptr<Deadline::State> state;  // the watch may outlive the stream
    Handler handler;
    void operator()(boost::system::error_code error, std::size_t n) {
      if (auto* s = static_cast<TlsStream*>(Deadline::owner(state))) {
        s->watching_ = false;
        s->peeked(error);
      }
      handler(error, n);
    }
  };
  boost::system::error_code socket_error(boost::system::error_code error) const;
  boost::system::error_code end_of_stream() const;

  // Runs `step` until it needs nothing from the socket, waiting for the socket
  // in between. A result ready at once is posted, never delivered inline.
  template <class Signature, class StepFn>
  struct StepOp {
    TlsStream* s;
    StepFn step;
    enum class Phase { start, reading, writing, yielding, posted } phase = Phase::start;
    Step result{};

    template <class Self>
    void operator()(Self& self, boost::system::error_code error = {}, std::size_t = 0) {
      switch (phase) {
        case Phase::posted:
          return complete(self);
        case Phase::reading:
          s->waiting_ = false;
          s->peeked(error);
          if (error && error != boost::asio::error::eof) return fail(self, s->socket_error(error));
          break;
        case Phase::writing:
          if (error) return fail(self, s->socket_error(error));
          break;
        case Phase::start:
          if (!s->begin_op()) {  // started after its deadline: times out at once, as with beast::tcp_stream
            result = Step{Want::nothing, boost::beast::error::timeout, 0};
            phase = Phase::posted;
            return boost::asio::post(s->get_executor(), std::move(self));
          }
          break;
        case Phase::yielding:
          break;
      }
      Phase const before = phase;
      result = step();
      switch (result.want) {
        case Want::read:
          if (s->watching_) {  // its handler must run first (it was just cancelled, or is about to complete)
            phase = Phase::yielding;
            return boost::asio::post(s->get_executor(), std::move(self));
          }
          if (s->waiting_) return fail(self, boost::asio::error::in_progress);  // two readers: a bug
          phase = Phase::reading;
          s->waiting_ = true;
          return s->socket_.async_receive(peek_space(), boost::asio::socket_base::message_peek, std::move(self));
        case Want::write:
          phase = Phase::writing;
          return s->socket_.async_wait(boost::asio::ip::tcp::socket::wait_write, std::move(self));
        case Want::nothing:
          break;
      }
      if (before == Phase::start) {
        phase = Phase::posted;
        return boost::asio::post(s->get_executor(), std::move(self));
      }
      complete(self);
    }

   private:
    template <class Self>
    void fail(Self& self, boost::system::error_code error) {
      result = Step{Want::nothing, error, 0};
      complete(self);
    }
    template <class Self>
    void complete(Self& self) {
      s->end_op();
      if constexpr (std::is_same_v<Signature, void(boost::system::error_code)>)
        self.complete(result.error);
      else
        self.complete(result.error, result.bytes);
    }
  };

  template <class Signature, class StepFn, class Token>
  auto async_step(StepFn step, Token& token) {
    return boost::asio::async_compose<Token, Signature>(StepOp<Signature, StepFn>{this, step}, token, socket_);
  }

  struct PlainRead {
    TlsStream* s;
    std::size_t size;
    bool started = false;
    template <class Self>
    void operator()(Self& self, boost::system::error_code error = {}, std::size_t n = 0) {
      if (!started) {
        started = true;
        if (!s->begin_op()) return s->socket_.async_read_some(boost::asio::mutable_buffer(), std::move(self));
        return s->socket_.async_read_some(s->preread().prepare(size), std::move(self));
      }
      s->preread().commit(n);
      s->end_op();
      self.complete(n > 0 ? boost::system::error_code{} : s->socket_error(error), n);
    }
  };

  friend struct BioAccess;
  boost::asio::ip::tcp::socket socket_;
  struct SslFree {
    void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
  };
  std::unique_ptr<SSL, SslFree> ssl_;
  Deadline deadline_;
  std::unique_ptr<boost::beast::flat_buffer> preread_;  // only while pre-read bytes wait for OpenSSL
  bool waiting_ = false;          // a peek for a read (or async_wait_readable) is pending
  bool watching_ = false;         // a watch() is pending
  bool drained_ = false;          // the last recv() found the socket empty: wait before the next
  bool peer_closed_ = false;      // the socket read returned 0
  int io_errno_ = 0;              // the last failed send()/recv()
};

}  // namespace edge::proxy
