#pragma once
// The client side of a terminated TLS connection: OpenSSL reads and writes the
// socket itself, through a small BIO of ours, the way nginx and HAProxy do.
//
// Why not asio::ssl::stream: it keeps two 17 KiB staging buffers and a BIO
// pair with two more per connection (about 70 KiB of the 73 KiB an idle
// connection cost), copies every byte twice, and sends a response's header
// and body as separate records. Here an idle connection holds only its SSL
// object and a 1 KiB inbox, each record is sent with one send(), and waiting
// for the peer uses Asio's speculative read (no epoll_ctl per request).
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
  boost::beast::flat_buffer& preread() noexcept { return preread_; }

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

  // Reads ahead into the inbox while nothing else reads (a client waiting for
  // its upstream), so that a close is seen at once, without a readiness wait
  // (which costs an epoll_ctl each time). `handler(error, bytes)` runs when
  // bytes or the close arrive; bytes stay in the inbox for the next TLS read,
  // which waits for a pending watch to end. socket().cancel() ends it. False
  // (and no handler) when the inbox has no room left.
  template <class Handler>
  bool watch(Handler handler) {
    if (watching_ || reading_) return false;
    if (inbox_begin_ == inbox_end_) inbox_begin_ = inbox_end_ = 0;
    if (inbox_end_ == inbox_.size()) return false;
    watching_ = true;
    socket_.async_read_some(
        boost::asio::buffer(inbox_.data() + inbox_end_, inbox_.size() - inbox_end_),
        [state = deadline_.state(), handler = std::move(handler)](boost::system::error_code error, std::size_t n) mutable {
          end_watch(state, n);
          handler(error, n);
        });
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

  bool begin_op() { return deadline_.begin(socket_); }  // false: timed out (see Deadline)
  void end_op() noexcept { deadline_.end(); }

  Step handshake_step();
  Step shutdown_step();
  Step read_step(boost::asio::mutable_buffer buffer);
  Step write_step(boost::asio::const_buffer buffer);
  Step finish(int result, std::size_t bytes);
  boost::asio::mutable_buffer inbox_space() noexcept { return boost::asio::buffer(inbox_); }
  void inbox_filled(std::size_t n) noexcept;
  static void end_watch(std::shared_ptr<Deadline::State> const& state, std::size_t n) noexcept;
  boost::system::error_code socket_error(boost::system::error_code error) const;

  // Runs `step` until it needs nothing from the socket, waiting for the socket
  // in between. A result ready at once is posted, never delivered inline.
  template <class Signature, class StepFn>
  struct StepOp {
    TlsStream* s;
    StepFn step;
    enum class Phase { start, reading, writing, yielding, posted } phase = Phase::start;
    Step result{};

    template <class Self>
    void operator()(Self& self, boost::system::error_code error = {}, std::size_t n = 0) {
      switch (phase) {
        case Phase::posted:
          return complete(self);
        case Phase::reading:
          s->reading_ = false;
          if (error) return fail(self, s->socket_error(error));
          if (n == 0) return fail(self, boost::asio::error::eof);
          s->inbox_filled(n);
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
          if (s->watching_) {  // its bytes may be on their way into the inbox: let its handler run first
            phase = Phase::yielding;
            return boost::asio::post(s->get_executor(), std::move(self));
          }
          if (s->reading_) return fail(self, boost::asio::error::in_progress);  // two readers: a bug
          phase = Phase::reading;
          s->reading_ = true;
          return s->socket_.async_read_some(s->inbox_space(), std::move(self));
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
        return s->socket_.async_read_some(s->preread_.prepare(size), std::move(self));
      }
      s->preread_.commit(n);
      s->end_op();
      self.complete(n > 0 ? boost::system::error_code{} : s->socket_error(error), n);
    }
  };

  friend struct BioAccess;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
  Deadline deadline_;
  boost::beast::flat_buffer preread_;
  std::array<unsigned char, 1024> inbox_;
  std::size_t inbox_begin_ = 0;
  std::size_t inbox_end_ = 0;
  bool reading_ = false;          // a read into the inbox is pending
  bool watching_ = false;         // a watch() read into the inbox is pending
  bool read_directly_ = false;    // the last read filled the inbox: more is likely waiting in the socket
  bool peer_closed_ = false;      // the socket read returned 0
  int io_errno_ = 0;              // the last failed send()/recv()
};

}  // namespace edge::proxy
