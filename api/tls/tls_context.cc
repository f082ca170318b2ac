#include "api/tls/tls_context.h"

#include <mbedtls/error.h>

#include <array>

namespace kms::api::tls {

namespace {
// TLS 1.2 ECDHE + AES-GCM only (forward secrecy, AEAD). Order: server preference.
const int kCipherSuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    0};
}  // namespace

std::string MbedtlsErrorText(int rc) {
  std::array<char, 160> buf{};
  mbedtls_strerror(rc, buf.data(), buf.size());
  return std::string(buf.data());
}

TlsContext::TlsContext() {
  mbedtls_ssl_config_init(&conf_);
  mbedtls_x509_crt_init(&cert_);
  mbedtls_x509_crt_init(&ca_);
  mbedtls_pk_init(&key_);
  mbedtls_entropy_init(&entropy_);
  mbedtls_ctr_drbg_init(&drbg_);
}

TlsContext::~TlsContext() {
  mbedtls_ssl_config_free(&conf_);
  mbedtls_x509_crt_free(&cert_);
  mbedtls_x509_crt_free(&ca_);
  mbedtls_pk_free(&key_);
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
}

StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsOptions& options) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    return InvalidArgumentError("TLS needs a certificate file and a key file");
  }
  std::shared_ptr<TlsContext> ctx(new TlsContext());
  static constexpr char kPersonalization[] = "kms-appliance-tls";
  int rc = mbedtls_ctr_drbg_seed(&ctx->drbg_, mbedtls_entropy_func, &ctx->entropy_,
                                 reinterpret_cast<const unsigned char*>(kPersonalization),
                                 sizeof kPersonalization - 1);
  if (rc != 0) return InternalError("TLS DRBG seeding failed: " + MbedtlsErrorText(rc));
  rc = mbedtls_x509_crt_parse_file(&ctx->cert_, options.cert_file.c_str());
  if (rc != 0) {
    return InvalidArgumentError("cannot load TLS certificate '" + options.cert_file +
                                "': " + MbedtlsErrorText(rc));
  }
  rc = mbedtls_pk_parse_keyfile(&ctx->key_, options.key_file.c_str(), nullptr);
  if (rc != 0) {
    return InvalidArgumentError("cannot load TLS private key '" + options.key_file +
                                "': " + MbedtlsErrorText(rc));
  }
  // mbedtls_ssl_conf_own_cert does not check that the key belongs to the certificate; a mismatch
  // would only show up as failed handshakes, so refuse it here.
  rc = mbedtls_pk_check_pair(&ctx->cert_.pk, &ctx->key_);
  if (rc != 0) {
    return InvalidArgumentError("TLS private key '" + options.key_file +
                                "' does not match the certificate: " + MbedtlsErrorText(rc));
  }
  rc = mbedtls_ssl_config_defaults(&ctx->conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                   MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return InternalError("TLS config defaults failed: " + MbedtlsErrorText(rc));
  mbedtls_ssl_conf_rng(&ctx->conf_, mbedtls_ctr_drbg_random, &ctx->drbg_);
  // TLS 1.2 only (RFC 5246): major 3, minor 3.
  mbedtls_ssl_conf_min_version(&ctx->conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&ctx->conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(&ctx->conf_, kCipherSuites);
  mbedtls_ssl_conf_renegotiation(&ctx->conf_, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  rc = mbedtls_ssl_conf_own_cert(&ctx->conf_, &ctx->cert_, &ctx->key_);
  if (rc != 0) {
    return InvalidArgumentError("TLS certificate and key do not match: " + MbedtlsErrorText(rc));
  }
  if (!options.client_ca_file.empty()) {
    rc = mbedtls_x509_crt_parse_file(&ctx->ca_, options.client_ca_file.c_str());
    if (rc != 0) {
      return InvalidArgumentError("cannot load client CA '" + options.client_ca_file +
                                  "': " + MbedtlsErrorText(rc));
    }
    mbedtls_ssl_conf_ca_chain(&ctx->conf_, &ctx->ca_, nullptr);
    mbedtls_ssl_conf_authmode(&ctx->conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
    ctx->verify_clients_ = true;
  } else {
    mbedtls_ssl_conf_authmode(&ctx->conf_, MBEDTLS_SSL_VERIFY_NONE);
  }
  return ctx;
}

}  // namespace kms::api::tls
