#include "api/tls/tls_transport.h"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <cstring>
#include <utility>

namespace kms::api::tls {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

TlsTransport::TlsTransport(asio::ip::tcp::socket socket, std::shared_ptr<TlsContext> context)
    : socket_(std::move(socket)), context_(std::move(context)) {
  mbedtls_ssl_init(&ssl_);
  setup_ok_ = mbedtls_ssl_setup(&ssl_, context_->config()) == 0;
  mbedtls_ssl_set_bio(&ssl_, this, &TlsTransport::BioSend, &TlsTransport::BioRecv, nullptr);
}

TlsTransport::~TlsTransport() { mbedtls_ssl_free(&ssl_); }

int TlsTransport::BioSend(void* self, const unsigned char* buf, std::size_t len) {
  auto* t = static_cast<TlsTransport*>(self);
  t->out_.append(reinterpret_cast<const char*>(buf), len);
  return static_cast<int>(len);
}

int TlsTransport::BioRecv(void* self, unsigned char* buf, std::size_t len) {
  auto* t = static_cast<TlsTransport*>(self);
  const std::size_t avail = t->in_.size() - t->in_pos_;
  if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  const std::size_t n = std::min(avail, len);
  std::memcpy(buf, t->in_.data() + t->in_pos_, n);
  t->in_pos_ += n;
  if (t->in_pos_ == t->in_.size()) {
    t->in_.clear();
    t->in_pos_ = 0;
  }
  return static_cast<int>(n);
}

void TlsTransport::Flush(HandshakeCallback next) {
  if (out_.empty()) return next(error_code());
  writing_.swap(out_);
  out_.clear();
  asio::async_write(socket_, asio::buffer(writing_),
                    [this, next = std::move(next)](error_code ec, std::size_t) {
                      writing_.clear();
                      next(ec);
                    });
}

void TlsTransport::Fill(HandshakeCallback next) {
  socket_.async_read_some(asio::buffer(rbuf_),
                          [this, next = std::move(next)](error_code ec, std::size_t n) {
                            if (!ec) in_.append(rbuf_.data(), n);
                            next(ec);
                          });
}

void TlsTransport::AsyncHandshake(HandshakeCallback done) {
  if (!setup_ok_) {
    asio::post(socket_.get_executor(), [done = std::move(done)] {
      done(asio::error::no_memory);
    });
    return;
  }
  StepHandshake(std::move(done));
}

void TlsTransport::StepHandshake(HandshakeCallback done) {
  const int rc = mbedtls_ssl_handshake(&ssl_);
  if (rc == 0) return Flush(std::move(done));
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
    return Flush([this, done = std::move(done)](error_code ec) mutable {
      if (ec) return done(ec);
      Fill([this, done = std::move(done)](error_code ec2) mutable {
        if (ec2) return done(ec2);
        StepHandshake(std::move(done));
      });
    });
  }
  // A failed handshake: send the alert mbedTLS queued (if any), then report.
  Flush([done = std::move(done)](error_code) { done(asio::error::connection_aborted); });
}

void TlsTransport::AsyncReadSome(asio::mutable_buffer buffer, IoCallback done) {
  const int rc = mbedtls_ssl_read(&ssl_, static_cast<unsigned char*>(buffer.data()), buffer.size());
  if (rc > 0) {
    asio::post(socket_.get_executor(),
               [done = std::move(done), rc] { done(error_code(), static_cast<std::size_t>(rc)); });
    return;
  }
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
    Flush([this, buffer, done = std::move(done)](error_code ec) mutable {
      if (ec) return done(ec, 0);
      Fill([this, buffer, done = std::move(done)](error_code ec2) mutable {
        if (ec2) return done(ec2, 0);
        AsyncReadSome(buffer, std::move(done));
      });
    });
    return;
  }
  const error_code ec = (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
                            ? error_code(asio::error::eof)
                            : error_code(asio::error::connection_aborted);
  asio::post(socket_.get_executor(), [done = std::move(done), ec] { done(ec, 0); });
}

void TlsTransport::AsyncWrite(asio::const_buffer buffer, IoCallback done) {
  const auto* data = static_cast<const unsigned char*>(buffer.data());
  std::size_t written = 0;
  while (written < buffer.size()) {
    // Our BIO accepts everything, so mbedtls_ssl_write only stops at record boundaries.
    const int rc = mbedtls_ssl_write(&ssl_, data + written, buffer.size() - written);
    if (rc < 0) {
      asio::post(socket_.get_executor(),
                 [done = std::move(done)] { done(asio::error::connection_aborted, 0); });
      return;
    }
    written += static_cast<std::size_t>(rc);
  }
  // All records of the response leave in one socket write.
  Flush([done = std::move(done), written](error_code ec) { done(ec, ec ? 0 : written); });
}

void TlsTransport::Close() {
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace kms::api::tls
