// Server-side TLS configuration on mbedTLS (mbedTLS is the only software crypto,
// docs/architecture.md "Software cryptography").
//
// Policy, fixed here rather than configurable: TLS 1.2 only, ECDHE key exchange with AES-GCM suites only
// (ECDHE-ECDSA/RSA-AES-128/256-GCM), no renegotiation. The server certificate chain and private key are
// read from PEM files; when `client_ca_file` is set, clients must present a certificate that chains to
// it (mutual TLS), otherwise no client certificate is requested.
//
// One `TlsContext` is shared by every connection of a server (`TlsTransport` holds a shared_ptr). The
// private key stays inside mbedTLS's pk context, which wipes it on free; mbedtls_pk_parse_keyfile wipes
// its file buffer.
//
// Thread-safety: immutable after Create; the DRBG is shared and mbedTLS is built with
// MBEDTLS_THREADING_C, so mbedtls_ctr_drbg_random locks it itself.
#ifndef KMS_API_TLS_TLS_CONTEXT_H_
#define KMS_API_TLS_TLS_CONTEXT_H_

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace kms::api::tls {

struct TlsOptions {
  std::string cert_file;       // PEM: server certificate first, then intermediates
  std::string key_file;        // PEM: the server's private key
  std::string client_ca_file;  // PEM CA bundle; empty = no client certificates
};

class TlsContext {
 public:
  static StatusOr<std::shared_ptr<TlsContext>> Create(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const mbedtls_ssl_config* config() const { return &conf_; }
  bool verifies_clients() const { return verify_clients_; }

 private:
  TlsContext();

  mbedtls_ssl_config conf_;
  mbedtls_x509_crt cert_;
  mbedtls_x509_crt ca_;
  mbedtls_pk_context key_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  bool verify_clients_ = false;
};

// "mbedTLS -0x7780: SSL - A fatal alert message was received from our peer" style text for logs.
std::string MbedtlsErrorText(int rc);

}  // namespace kms::api::tls

#endif  // KMS_API_TLS_TLS_CONTEXT_H_
