// TLS over one TCP connection: an mbedTLS session driven asynchronously by Asio.
//
// mbedTLS never touches the socket: its BIO callbacks read from and write to memory buffers
// (`in_`, `out_`), and this class moves those buffers over the socket with Asio's async operations.
// An mbedTLS call that needs more bytes returns WANT_READ; we then flush what it produced, read more
// from the socket and call it again. So no network thread ever blocks on a slow peer, and the
// session's timers (api/http/server.cc) bound every step, the handshake included.
//
// Thread-safety: as http::Transport (one strand; never a read and a write at once).
#ifndef KMS_API_TLS_TLS_TRANSPORT_H_
#define KMS_API_TLS_TLS_TRANSPORT_H_

#include <mbedtls/ssl.h>

#include <array>
#include <memory>
#include <string>

#include "api/http/transport.h"
#include "api/tls/tls_context.h"

namespace kms::api::tls {

class TlsTransport final : public http::Transport {
 public:
  TlsTransport(boost::asio::ip::tcp::socket socket, std::shared_ptr<TlsContext> context);
  ~TlsTransport() override;

  void AsyncHandshake(HandshakeCallback done) override;
  void AsyncReadSome(boost::asio::mutable_buffer buffer, IoCallback done) override;
  void AsyncWrite(boost::asio::const_buffer buffer, IoCallback done) override;
  void Close() override;
  boost::asio::ip::tcp::socket& socket() override { return socket_; }

 private:
  static int BioSend(void* self, const unsigned char* buf, std::size_t len);
  static int BioRecv(void* self, unsigned char* buf, std::size_t len);
  void StepHandshake(HandshakeCallback done);
  // Writes out_ to the socket (if anything is there), then calls `next`.
  void Flush(HandshakeCallback next);
  // Reads more ciphertext into in_, then calls `next`.
  void Fill(HandshakeCallback next);

  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<TlsContext> context_;
  mbedtls_ssl_context ssl_;
  bool setup_ok_ = false;
  std::string in_;
  std::size_t in_pos_ = 0;
  std::string out_;
  std::string writing_;
  std::array<char, 17 * 1024> rbuf_{};
};

}  // namespace kms::api::tls

#endif  // KMS_API_TLS_TLS_TRANSPORT_H_
