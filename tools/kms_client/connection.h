// A client connection to a KMS endpoint for the operator tools (kmsctl, kms_load): TCP with
// TCP_NODELAY, plain or TLS 1.2 on mbedTLS, in blocking or non-blocking mode.
//
// `Endpoint::Parse` reads "http://host:port" / "https://host[:port]" (the KMS_ENDPOINT of dev.env).
// `TlsClientContext` holds one mbedTLS client configuration (CA bundle, DRBG) shared by every
// connection of a process; the server certificate must chain to the CA bundle and match the host
// the endpoint names (mbedTLS 2.28 compares it with the certificate's CN and DNS names).
// `Connection::Read`/`Write` return the byte count, or kWouldBlock in non-blocking mode when the
// socket must become readable/writable first (`wants_write()` tells which), or an error Status.
//
// Thread-safety: a Connection is used by one thread at a time; a TlsClientContext may be shared
// (mbedTLS is built with MBEDTLS_THREADING_C, so its DRBG locks itself).
#ifndef KMS_TOOLS_KMS_CLIENT_CONNECTION_H_
#define KMS_TOOLS_KMS_CLIENT_CONNECTION_H_

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace kms::tools {

struct Endpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  // "host:port" as the Host header carries it (port always included, as the SDKs do for
  // non-default ports).
  std::string HostHeader() const;
  std::string ToString() const;
  static StatusOr<Endpoint> Parse(std::string_view url);
};

class TlsClientContext {
 public:
  // `ca_file` empty: $AWS_CA_BUNDLE, else the system bundle /etc/ssl/certs/ca-certificates.crt.
  static StatusOr<std::shared_ptr<TlsClientContext>> Create(const std::string& ca_file);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;
  const mbedtls_ssl_config* config() const { return &conf_; }

 private:
  TlsClientContext();
  mbedtls_ssl_config conf_;
  mbedtls_x509_crt ca_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
};

class Connection {
 public:
  static constexpr long kWouldBlock = -1;

  // Connects (blocking), then performs the TLS handshake (blocking) when `tls` is set, then
  // switches the socket to non-blocking mode if asked. Unavailable with the reason (e.g.
  // "connection refused") when the endpoint cannot be reached.
  static StatusOr<std::unique_ptr<Connection>> Open(const Endpoint& endpoint,
                                                    std::shared_ptr<TlsClientContext> tls,
                                                    bool non_blocking);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Bytes written/read (0 from Read = the peer closed), kWouldBlock, or an error.
  StatusOr<long> Write(const char* data, std::size_t size);
  StatusOr<long> Read(char* data, std::size_t size);
  // After kWouldBlock: true if the socket must become writable, false if readable.
  bool wants_write() const { return wants_write_; }
  int fd() const { return fd_; }

 private:
  Connection() = default;
  static int BioSend(void* self, const unsigned char* buf, std::size_t len);
  static int BioRecv(void* self, unsigned char* buf, std::size_t len);

  int fd_ = -1;
  std::shared_ptr<TlsClientContext> tls_;
  std::unique_ptr<mbedtls_ssl_context> ssl_;
  bool wants_write_ = false;
};

// mbedTLS error code as text.
std::string MbedtlsClientError(int rc);

}  // namespace kms::tools

#endif  // KMS_TOOLS_KMS_CLIENT_CONNECTION_H_
