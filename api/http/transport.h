// The byte stream under one HTTP connection: plain TCP or TLS (api/tls/tls_transport.h).
//
// The session (api/http/server.cc) parses HTTP itself from the bytes a transport delivers, so the same
// session code runs over both, and timeouts are the session's: it arms a timer and calls `Close()`,
// which makes every pending operation complete with an error.
//
// Contract: at most one read and one write outstanding at a time; all calls and completions happen on
// the connection's strand (the socket is created with the strand as its executor, so completion
// handlers run there). `AsyncWrite` writes the whole buffer or fails.
//
// Thread-safety: none beyond the strand.
#ifndef KMS_API_HTTP_TRANSPORT_H_
#define KMS_API_HTTP_TRANSPORT_H_

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <functional>

namespace kms::api::http {

class Transport {
 public:
  using HandshakeCallback = std::function<void(boost::system::error_code)>;
  using IoCallback = std::function<void(boost::system::error_code, std::size_t)>;

  virtual ~Transport() = default;
  // Completes at once for plain TCP; runs the TLS handshake otherwise.
  virtual void AsyncHandshake(HandshakeCallback done) = 0;
  virtual void AsyncReadSome(boost::asio::mutable_buffer buffer, IoCallback done) = 0;
  virtual void AsyncWrite(boost::asio::const_buffer buffer, IoCallback done) = 0;
  // Closes the socket; pending operations complete with operation_aborted or an I/O error.
  virtual void Close() = 0;
  virtual boost::asio::ip::tcp::socket& socket() = 0;
};

// Plain TCP.
class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  void AsyncHandshake(HandshakeCallback done) override;
  void AsyncReadSome(boost::asio::mutable_buffer buffer, IoCallback done) override;
  void AsyncWrite(boost::asio::const_buffer buffer, IoCallback done) override;
  void Close() override;
  boost::asio::ip::tcp::socket& socket() override { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_TRANSPORT_H_
