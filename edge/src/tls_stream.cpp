#include "tls_stream.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace edge::proxy {
namespace asio = boost::asio;

// The BIO between OpenSSL and the socket. Reads come from the pre-read bytes,
// then straight from the socket, into OpenSSL's own read-ahead buffer; a
// read that found the socket drained is not retried before the next
// readiness wait. Writes go straight to the socket.
struct BioAccess {
  static TlsStream& of(BIO* bio) { return *static_cast<TlsStream*>(BIO_get_data(bio)); }

  static int read(BIO* bio, char* out, int size) {
    BIO_clear_retry_flags(bio);
    if (size <= 0) return 0;
    auto& s = of(bio);
    auto const wanted = static_cast<std::size_t>(size);
    if (s.preread_ && s.preread_->size() > 0) {
      auto const n = asio::buffer_copy(asio::buffer(out, wanted), s.preread_->data());
      s.preread_->consume(n);
      if (s.preread_->size() == 0) s.preread_.reset();  // a connection keeps no pre-read buffer
      return static_cast<int>(n);
    }
    // The peer's end is not shown to OpenSSL, which would take it for a
    // truncated record and send a decode_error alert into a closed socket:
    // the read "waits", and finish() reports the end (as eof or truncation).
    if (s.peer_closed_) {
      BIO_set_retry_read(bio);
      return -1;
    }
    if (!s.drained_) {
      ssize_t const n = ::recv(s.socket_.native_handle(), out, wanted, 0);
      if (n > 0) {
        // Short: the socket is empty now (a stream socket returns what it has).
        s.drained_ = static_cast<std::size_t>(n) < wanted;
        return static_cast<int>(n);
      }
      if (n == 0) {
        s.peer_closed_ = true;
        BIO_set_retry_read(bio);
        return -1;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        s.io_errno_ = errno;
        return -1;
      }
      s.drained_ = errno != EINTR;
    }
    BIO_set_retry_read(bio);
    return -1;
  }

  static int write(BIO* bio, char const* in, int size) {
    BIO_clear_retry_flags(bio);
    if (size <= 0) return 0;
    auto& s = of(bio);
    for (;;) {
      ssize_t const n = ::send(s.socket_.native_handle(), in, static_cast<std::size_t>(size), MSG_NOSIGNAL);
      if (n >= 0) return static_cast<int>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        BIO_set_retry_write(bio);
      } else {
        s.io_errno_ = errno;
      }
      return -1;
    }
  }

  static long control(BIO* bio, int command, long, void*) {
    switch (command) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_EOF:
        return of(bio).peer_closed_ ? 1 : 0;
      case BIO_CTRL_PENDING: {
        auto& s = of(bio);
        return static_cast<long>(s.preread_ ? s.preread_->size() : 0);
      }
      default:
        return 0;
    }
  }

  static int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD const* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edge socket");
      if (!made || BIO_meth_set_read(made, read) != 1 || BIO_meth_set_write(made, write) != 1 ||
          BIO_meth_set_ctrl(made, control) != 1 || BIO_meth_set_create(made, create) != 1) {
        throw std::runtime_error("cannot create the socket BIO method");
      }
      return made;
    }();
    return m;
  }
};

std::array<char, TlsStream::kGatherLimit>& TlsStream::gather_scratch() {
  thread_local std::array<char, kGatherLimit> scratch;
  return scratch;
}

TlsStream::TlsStream(asio::ip::tcp::socket socket, SSL_CTX* context)
    : socket_(std::move(socket)),
      ssl_(SSL_new(context)),
      deadline_(socket_.get_executor()) {
  if (!ssl_) throw std::bad_alloc();
  // The BIO calls recv()/send() itself, possibly before any Asio operation
  // would have made the socket non-blocking.
  socket_.native_non_blocking(true);
  deadline_.set_owner(this);
  BIO* bio = BIO_new(BioAccess::method());
  if (!bio) throw std::bad_alloc();
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);
  // Partial writes: a write returns once a record is out, as Asio's stream
  // does; released buffers: an idle connection keeps no 17 KiB record buffers.
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
  // Read ahead: one recv() takes whatever the socket has (a record's header
  // and body, or several records) instead of a 5-byte header read and then
  // the body; the buffer is OpenSSL's, released when empty.
  SSL_set_read_ahead(ssl_.get(), 1);
  SSL_set_accept_state(ssl_.get());
}

TlsStream::~TlsStream() = default;  // ~Deadline: handlers that outlive the stream find no owner

asio::mutable_buffer TlsStream::peek_space() {
  // Written only by the kernel (MSG_PEEK), on this worker's thread, and never
  // read: every connection of the worker can share it. Its size makes a
  // peek see all that is there, so a short one tells Asio the socket is
  // drained (its next receive waits for epoll without trying first).
  thread_local std::array<char, 16384> scratch;
  return asio::buffer(scratch);
}

boost::system::error_code TlsStream::socket_error(boost::system::error_code error) const {
  if (deadline_.fired()) return boost::beast::error::timeout;
  return error;
}

TlsStream::Step TlsStream::finish(int result, std::size_t bytes) {
  int const code = SSL_get_error(ssl_.get(), result);
  switch (code) {
    case SSL_ERROR_NONE:
      return {Want::nothing, {}, bytes};
    case SSL_ERROR_WANT_READ:
      if (deadline_.fired()) return {Want::nothing, boost::beast::error::timeout, 0};
      if (peer_closed_) return {Want::nothing, end_of_stream(), 0};
      return {Want::read, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      if (deadline_.fired()) return {Want::nothing, boost::beast::error::timeout, 0};
      return {Want::write, {}, 0};
    case SSL_ERROR_ZERO_RETURN:
      return {Want::nothing, asio::error::eof, 0};  // close_notify
    case SSL_ERROR_SYSCALL: {
      ERR_clear_error();
      if (deadline_.fired()) return {Want::nothing, boost::beast::error::timeout, 0};
      if (io_errno_ != 0) return {Want::nothing, {io_errno_, boost::system::system_category()}, 0};
      return {Want::nothing, end_of_stream(), 0};
    }
    default: {
      unsigned long const e = ERR_get_error();
      ERR_clear_error();
      if (deadline_.fired()) return {Want::nothing, boost::beast::error::timeout, 0};
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return {Want::nothing, end_of_stream(), 0};
      if (e == 0 && io_errno_ != 0) return {Want::nothing, {io_errno_, boost::system::system_category()}, 0};
      return {Want::nothing, {static_cast<int>(e), asio::error::get_ssl_category()}, 0};
    }
  }
}

// The peer's FIN without close_notify: eof when it came between records (as
// a plain stream would say; HTTP takes it as the client leaving between
// requests), stream_truncated inside one (as Asio reports it).
boost::system::error_code TlsStream::end_of_stream() const {
  if (peer_closed_ && SSL_has_pending(ssl_.get()) == 0) return asio::error::eof;
  return asio::ssl::error::stream_truncated;
}

TlsStream::Step TlsStream::handshake_step() {
  ERR_clear_error();
  return finish(SSL_do_handshake(ssl_.get()), 0);
}

TlsStream::Step TlsStream::shutdown_step() {
  ERR_clear_error();
  int const result = SSL_shutdown(ssl_.get());
  if (result >= 0) return {};  // close_notify sent (0: the peer's not seen, not waited for)
  auto step = finish(result, 0);
  if (step.want == Want::read) return {};  // only the peer's close_notify is missing
  return step;
}

TlsStream::Step TlsStream::read_step(asio::mutable_buffer buffer) {
  if (buffer.size() == 0) return {};
  ERR_clear_error();
  std::size_t n = 0;
  int const result = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
  return finish(result, n);
}

TlsStream::Step TlsStream::write_step(asio::const_buffer buffer) {
  if (buffer.size() == 0) return {};
  ERR_clear_error();
  std::size_t n = 0;
  int const result = SSL_write_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
  return finish(result, n);
}

}  // namespace edge::proxy
