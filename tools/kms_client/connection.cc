#include "tools/kms_client/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace kms::tools {

namespace {

// RFC 6125 §6.2.1 / RFC 5280 §4.2.1.6: a server reached by IP address must carry that address as an
// iPAddress subjectAltName. mbedTLS 2.28 neither matches nor even keeps iPAddress entries (its
// subject_alt_names lists dNSName and otherName only), so the raw extensions are read here:
// Extensions ::= SEQUENCE OF SEQUENCE { extnID OID, critical BOOLEAN OPTIONAL, extnValue OCTET
// STRING }, subjectAltName (2.5.29.17) = GeneralNames, iPAddress = [7] IMPLICIT OCTET STRING.
bool CertificateNamesIp(const mbedtls_x509_crt& crt, const unsigned char* ip, std::size_t ip_len) {
  static constexpr unsigned char kSanOid[] = {0x55, 0x1d, 0x11};
  constexpr int kSeq = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
  unsigned char* p = crt.v3_ext.p;
  if (p == nullptr) return false;
  const unsigned char* end = p + crt.v3_ext.len;
  std::size_t len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &len, kSeq) != 0) return false;
  end = p + len;
  while (p < end) {
    if (mbedtls_asn1_get_tag(&p, end, &len, kSeq) != 0) return false;
    const unsigned char* ext_end = p + len;
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OID) != 0) return false;
    const bool san = len == sizeof kSanOid && std::equal(p, p + len, kSanOid);
    p += len;
    if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN) {
      int critical = 0;
      if (mbedtls_asn1_get_bool(&p, ext_end, &critical) != 0) return false;
    }
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) return false;
    if (san) {
      unsigned char* q = p;
      const unsigned char* value_end = p + len;
      std::size_t names_len = 0;
      if (mbedtls_asn1_get_tag(&q, value_end, &names_len, kSeq) != 0) return false;
      while (q < value_end) {
        const unsigned char tag = *q++;
        std::size_t n = 0;
        if (mbedtls_asn1_get_len(&q, value_end, &n) != 0) return false;
        if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && n == ip_len && std::equal(q, q + n, ip)) {
          return true;
        }
        q += n;
      }
    }
    p = const_cast<unsigned char*>(ext_end);
  }
  return false;
}

}  // namespace

std::string MbedtlsClientError(int rc) {
  char buf[160];
  mbedtls_strerror(rc, buf, sizeof buf);
  return "mbedTLS -0x" +
         [rc] {
           char hex[16];
           std::snprintf(hex, sizeof hex, "%04x", static_cast<unsigned>(-rc));
           return std::string(hex);
         }() +
         ": " + buf;
}

std::string Endpoint::HostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Endpoint::ToString() const { return (tls ? "https://" : "http://") + HostHeader(); }

StatusOr<Endpoint> Endpoint::Parse(std::string_view url) {
  Endpoint e;
  if (url.starts_with("http://")) {
    url.remove_prefix(7);
    e.port = 80;
  } else if (url.starts_with("https://")) {
    url.remove_prefix(8);
    e.tls = true;
    e.port = 443;
  } else {
    return InvalidArgumentError("endpoint must start with http:// or https://, got '" +
                                std::string(url) + "'");
  }
  if (auto slash = url.find('/'); slash != std::string_view::npos) {
    if (url.substr(slash) != "/") {
      return InvalidArgumentError("endpoint must have no path (the KMS API is POST /)");
    }
    url = url.substr(0, slash);
  }
  std::string_view port_text;
  if (url.starts_with("[")) {
    const auto close = url.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("endpoint: unclosed '['");
    e.host = std::string(url.substr(1, close - 1));
    if (close + 1 < url.size()) {
      if (url[close + 1] != ':') return InvalidArgumentError("endpoint: junk after ']'");
      port_text = url.substr(close + 2);
    }
  } else if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    e.host = std::string(url.substr(0, colon));
    port_text = url.substr(colon + 1);
  } else {
    e.host = std::string(url);
  }
  if (e.host.empty()) return InvalidArgumentError("endpoint: no host");
  if (!port_text.empty() || url.ends_with(":")) {
    char* end = nullptr;
    const std::string p(port_text);
    const unsigned long port = std::strtoul(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || port == 0 || port > 65535) {
      return InvalidArgumentError("endpoint: bad port '" + p + "'");
    }
    e.port = static_cast<std::uint16_t>(port);
  }
  return e;
}

TlsClientContext::TlsClientContext() {
  mbedtls_ssl_config_init(&conf_);
  mbedtls_x509_crt_init(&ca_);
  mbedtls_entropy_init(&entropy_);
  mbedtls_ctr_drbg_init(&drbg_);
}

TlsClientContext::~TlsClientContext() {
  mbedtls_ssl_config_free(&conf_);
  mbedtls_x509_crt_free(&ca_);
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
}

StatusOr<std::shared_ptr<TlsClientContext>> TlsClientContext::Create(const std::string& ca_file) {
  std::shared_ptr<TlsClientContext> c(new TlsClientContext());
  std::string ca = ca_file;
  if (ca.empty()) {
    const char* env = std::getenv("AWS_CA_BUNDLE");
    ca = env && *env ? env : "/etc/ssl/certs/ca-certificates.crt";
  }
  if (int rc = mbedtls_x509_crt_parse_file(&c->ca_, ca.c_str()); rc < 0) {
    return InvalidArgumentError("cannot read CA bundle " + ca + ": " + MbedtlsClientError(rc));
  }
  static constexpr char kPers[] = "kms-tools-tls-client";
  if (int rc = mbedtls_ctr_drbg_seed(&c->drbg_, mbedtls_entropy_func, &c->entropy_,
                                     reinterpret_cast<const unsigned char*>(kPers), sizeof kPers);
      rc != 0) {
    return InternalError("DRBG seed: " + MbedtlsClientError(rc));
  }
  if (int rc =
          mbedtls_ssl_config_defaults(&c->conf_, MBEDTLS_SSL_IS_CLIENT,
                                      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
      rc != 0) {
    return InternalError("TLS config: " + MbedtlsClientError(rc));
  }
  // The appliance speaks TLS 1.2 only (api/tls/tls_context.h); verify its chain always.
  mbedtls_ssl_conf_min_version(&c->conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_authmode(&c->conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&c->conf_, &c->ca_, nullptr);
  mbedtls_ssl_conf_rng(&c->conf_, mbedtls_ctr_drbg_random, &c->drbg_);
  return c;
}

Connection::~Connection() {
  if (ssl_) {
    if (fd_ >= 0) mbedtls_ssl_close_notify(ssl_.get());
    mbedtls_ssl_free(ssl_.get());
  }
  if (fd_ >= 0) ::close(fd_);
}

int Connection::BioSend(void* self, const unsigned char* buf, std::size_t len) {
  auto* c = static_cast<Connection*>(self);
  const ssize_t n = ::send(c->fd_, buf, len, MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_WRITE;
  if (errno == EINTR) return MBEDTLS_ERR_SSL_WANT_WRITE;
  return MBEDTLS_ERR_NET_SEND_FAILED;
}

int Connection::BioRecv(void* self, unsigned char* buf, std::size_t len) {
  auto* c = static_cast<Connection*>(self);
  const ssize_t n = ::recv(c->fd_, buf, len, 0);
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return MBEDTLS_ERR_SSL_WANT_READ;
  return MBEDTLS_ERR_NET_RECV_FAILED;
}

StatusOr<std::unique_ptr<Connection>> Connection::Open(const Endpoint& endpoint,
                                                       std::shared_ptr<TlsClientContext> tls,
                                                       bool non_blocking) {
  std::unique_ptr<Connection> c(new Connection());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return UnavailableError("cannot resolve " + endpoint.host + ": " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      c->fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (c->fd_ < 0) return UnavailableError(last_error);
  // Requests leave in one write; NODELAY so no request waits on a delayed ACK
  // (docs/aws-kms-protocol.md "Framing").
  int one = 1;
  ::setsockopt(c->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (endpoint.tls) {
    if (!tls) return InvalidArgumentError("https endpoint without a TLS client context");
    c->tls_ = std::move(tls);
    c->ssl_ = std::make_unique<mbedtls_ssl_context>();
    mbedtls_ssl_init(c->ssl_.get());
    if (int rc = mbedtls_ssl_setup(c->ssl_.get(), c->tls_->config()); rc != 0) {
      return InternalError("TLS setup: " + MbedtlsClientError(rc));
    }
    // An IP literal is checked against the certificate's iPAddress names after the handshake (see
    // CertificateNamesIp); a DNS name is mbedTLS's to match (CN and dNSName).
    unsigned char ip[16];
    std::size_t ip_len = 0;
    if (::inet_pton(AF_INET, endpoint.host.c_str(), ip) == 1) {
      ip_len = 4;
    } else if (::inet_pton(AF_INET6, endpoint.host.c_str(), ip) == 1) {
      ip_len = 16;
    } else if (int rc = mbedtls_ssl_set_hostname(c->ssl_.get(), endpoint.host.c_str()); rc != 0) {
      return InternalError("TLS hostname: " + MbedtlsClientError(rc));
    }
    mbedtls_ssl_set_bio(c->ssl_.get(), c.get(), &Connection::BioSend, &Connection::BioRecv,
                        nullptr);
    for (;;) {
      const int rc = mbedtls_ssl_handshake(c->ssl_.get());
      if (rc == 0) break;
      if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
      std::string why = MbedtlsClientError(rc);
      if (const uint32_t flags = mbedtls_ssl_get_verify_result(c->ssl_.get()); flags != 0) {
        char info[512];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        std::string text(info);
        while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        why += " (certificate: " + text + ")";
      }
      return UnavailableError("TLS handshake with " + endpoint.ToString() + " failed: " + why);
    }
    if (ip_len != 0) {
      const mbedtls_x509_crt* peer = mbedtls_ssl_get_peer_cert(c->ssl_.get());
      if (peer == nullptr || !CertificateNamesIp(*peer, ip, ip_len)) {
        return UnavailableError("TLS handshake with " + endpoint.ToString() +
                                " failed: the server certificate does not name IP address " +
                                endpoint.host + " (subjectAltName iPAddress)");
      }
    }
  }
  if (non_blocking) {
    const int flags = ::fcntl(c->fd_, F_GETFL, 0);
    ::fcntl(c->fd_, F_SETFL, flags | O_NONBLOCK);
  }
  return c;
}

StatusOr<long> Connection::Write(const char* data, std::size_t size) {
  if (ssl_) {
    const int rc =
        mbedtls_ssl_write(ssl_.get(), reinterpret_cast<const unsigned char*>(data), size);
    if (rc >= 0) return static_cast<long>(rc);
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
      wants_write_ = rc == MBEDTLS_ERR_SSL_WANT_WRITE;
      return kWouldBlock;
    }
    return UnavailableError("TLS write: " + MbedtlsClientError(rc));
  }
  const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
  if (n >= 0) return static_cast<long>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    wants_write_ = true;
    return kWouldBlock;
  }
  return UnavailableError(std::string("write: ") + std::strerror(errno));
}

StatusOr<long> Connection::Read(char* data, std::size_t size) {
  if (ssl_) {
    const int rc = mbedtls_ssl_read(ssl_.get(), reinterpret_cast<unsigned char*>(data), size);
    if (rc >= 0) return static_cast<long>(rc);
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return 0L;
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
      wants_write_ = rc == MBEDTLS_ERR_SSL_WANT_WRITE;
      return kWouldBlock;
    }
    return UnavailableError("TLS read: " + MbedtlsClientError(rc));
  }
  const ssize_t n = ::recv(fd_, data, size, 0);
  if (n >= 0) return static_cast<long>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    wants_write_ = false;
    return kWouldBlock;
  }
  return UnavailableError(std::string("read: ") + std::strerror(errno));
}

}  // namespace kms::tools
