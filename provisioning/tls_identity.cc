#include "provisioning/tls_identity.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>
#include <utility>

#include "base/bytes.h"
#include "base/secret_bytes.h"

namespace kms::provisioning {
namespace {

std::string MbedtlsText(int rc) {
  std::array<char, 160> buf{};
  mbedtls_strerror(rc, buf.data(), buf.size());
  char code[16];
  std::snprintf(code, sizeof code, "-0x%04x", static_cast<unsigned>(-rc));
  return std::string("mbedTLS ") + code + ": " + buf.data();
}

Status MbedtlsError(const char* what, int rc) {
  return InternalError(std::string("tls: ") + what + ": " + MbedtlsText(rc));
}

// RFC 1123 §2.1 host names: labels of letters, digits and '-', 1..63 characters, not starting or
// ending with '-'; 253 characters in all. No wildcards and no trailing dot: the appliance names
// itself, and every name here ends up in a dNSName SAN (an IA5String).
bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (const char c : label) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

// The address's 4 or 16 network-order bytes; empty when `text` is neither.
Bytes ParseIp(const std::string& text) {
  std::array<std::uint8_t, 16> buf{};
  if (::inet_pton(AF_INET, text.c_str(), buf.data()) == 1)
    return Bytes(buf.begin(), buf.begin() + 4);
  if (::inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) return Bytes(buf.begin(), buf.end());
  return {};
}

// The canonical text of an address (inet_ntop), for the summary: "::1" for "0:0::1".
std::string IpText(const Bytes& ip) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  ::inet_ntop(ip.size() == 4 ? AF_INET : AF_INET6, ip.data(), buf.data(),
              static_cast<socklen_t>(buf.size()));
  return buf.data();
}

// X.690 §8.1.2, §8.1.3: a low-tag-number identifier and a definite length, short or long form.
void AppendTlv(Bytes& out, std::uint8_t tag, ByteView value) {
  out.push_back(tag);
  const std::size_t n = value.size();
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n <= 0xff) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(0x82);  // callers keep values under 64 KiB
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n & 0xff));
  }
  out.insert(out.end(), value.begin(), value.end());
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Creates `path` (never an existing file, never through a symlink) with exactly `mode` (fchmod,
// so the umask cannot loosen or tighten it), writes `bytes` and fsyncs. On failure the file is
// removed again.
Status WriteNewFile(const std::string& path, ByteView bytes, mode_t mode, const char* what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return AlreadyExistsError(std::string("tls: ") + what + " '" + path +
                                "': already exists (never overwritten)");
    }
    return InternalError(std::string("tls: cannot create ") + what + " '" + path +
                         "': " + std::strerror(err));
  }
  int err = 0;
  if (::fchmod(fd, mode) != 0) err = errno;
  while (err == 0 && !bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(path.c_str());
    return InternalError(std::string("tls: cannot write ") + what + " '" + path +
                         "': " + std::strerror(err));
  }
  return Status();
}

// "YYYYMMDDHHMMSS" (mbedtls_x509write_crt_set_validity) and "YYYY-MM-DD HH:MM:SS UTC" (summary).
enum class TimeFormat { kX509Writer, kHuman };
std::string TimeText(std::time_t t, TimeFormat format) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  if (format == TimeFormat::kX509Writer) {
    std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  } else {
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  }
  return buf;
}

// The mbedTLS objects of one run, freed (and the key wiped) on every path.
struct Mbedtls {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_pk_context key;
  mbedtls_x509write_cert crt;
  mbedtls_x509write_csr csr;
  mbedtls_x509_crt parsed;
  mbedtls_mpi serial;
  Mbedtls() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_x509write_csr_init(&csr);
    mbedtls_x509_crt_init(&parsed);
    mbedtls_mpi_init(&serial);
  }
  ~Mbedtls() {
    mbedtls_mpi_free(&serial);
    mbedtls_x509_crt_free(&parsed);
    mbedtls_x509write_csr_free(&csr);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  Mbedtls(const Mbedtls&) = delete;
  Mbedtls& operator=(const Mbedtls&) = delete;
};

// mbedTLS's *_pem writers fill a buffer and NUL-terminate it; the PEM is what precedes the NUL.
std::string PemString(const std::vector<unsigned char>& buf) {
  return std::string(reinterpret_cast<const char*>(buf.data()));
}

// extendedKeyUsage (RFC 5280 §4.2.1.12): SEQUENCE { id-kp-serverAuth }. mbedTLS 2.28 has no writer
// for it (mbedtls_x509write_crt_set_ext_key_usage came with 3.0), so the DER is built here.
Bytes ServerAuthEku() {
  const std::string_view oid(MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
  Bytes oid_tlv;
  AppendTlv(oid_tlv, MBEDTLS_ASN1_OID, AsBytes(oid));
  Bytes seq;
  AppendTlv(seq, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE, oid_tlv);
  return seq;
}

}  // namespace

StatusOr<std::vector<std::uint8_t>> EncodeSubjectAltNames(const std::vector<std::string>& dns_names,
                                                          const std::vector<std::string>& ips) {
  // GeneralName ::= CHOICE { dNSName [2] IA5String, iPAddress [7] OCTET STRING, … }, IMPLICIT
  // tags (RFC 5280 Appendix A.2), so a name is the context-specific primitive tag and its bytes;
  // iPAddress is 4 bytes for IPv4 and 16 for IPv6 in network order (§4.2.1.6).
  Bytes names;
  for (const std::string& dns : dns_names) {
    if (!IsDnsName(dns))
      return InvalidArgumentError("tls: --dns '" + dns + "': not a valid DNS name");
    AppendTlv(names, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2, AsBytes(dns));
  }
  for (const std::string& ip : ips) {
    const Bytes addr = ParseIp(ip);
    if (addr.empty()) {
      return InvalidArgumentError("tls: --ip '" + ip + "': not an IPv4 or IPv6 address");
    }
    AppendTlv(names, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7, addr);
  }
  if (names.size() > 0xffff) return InvalidArgumentError("tls: too many --dns/--ip names");
  Bytes general_names;  // GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName
  AppendTlv(general_names, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE, names);
  return general_names;
}

Status CheckTlsIdentityRequest(const TlsIdentityRequest& request) {
  if (request.dns_names.empty()) {
    return InvalidArgumentError(
        "tls: at least one --dns name is needed (the first is the subject CN)");
  }
  for (const std::string& dns : request.dns_names) {
    if (!ParseIp(dns).empty()) {
      return InvalidArgumentError("tls: --dns '" + dns + "': an IP address; give it with --ip");
    }
    if (!IsDnsName(dns)) {
      return InvalidArgumentError(
          "tls: --dns '" + dns +
          "': not a valid DNS name (dot-separated labels of letters, digits and '-', 1 to 63 "
          "characters each, not starting or ending with '-', 253 characters in all; no wildcards)");
    }
  }
  for (const std::string& ip : request.ip_addresses) {
    if (ParseIp(ip).empty()) {
      return InvalidArgumentError("tls: --ip '" + ip + "': not an IPv4 or IPv6 address");
    }
  }
  if (request.dns_names.size() + request.ip_addresses.size() > 100) {
    return InvalidArgumentError("tls: at most 100 --dns and --ip names in all");
  }
  if (request.days < 1 || request.days > kTlsMaxDays) {
    return InvalidArgumentError("tls: --days " + std::to_string(request.days) + ": must be 1 to " +
                                std::to_string(kTlsMaxDays));
  }
  const std::pair<const char*, const std::string*> outputs[] = {{"--key-out", &request.key_out},
                                                                {"--cert-out", &request.cert_out},
                                                                {"--csr-out", &request.csr_out}};
  for (const auto& [option, path] : outputs) {
    if (path->empty()) {
      if (path == &request.csr_out) continue;
      return InvalidArgumentError(std::string("tls: ") + option + " is needed");
    }
    if (Exists(*path)) {
      return AlreadyExistsError(std::string("tls: ") + option + " '" + *path +
                                "': already exists (never overwritten)");
    }
  }
  if (request.key_out == request.cert_out || request.key_out == request.csr_out ||
      request.cert_out == request.csr_out) {
    return InvalidArgumentError("tls: --key-out, --cert-out and --csr-out must be different files");
  }
  return Status();
}

StatusOr<TlsIdentityResult> CreateTlsIdentity(const TlsIdentityRequest& request) {
  KMS_RETURN_IF_ERROR(CheckTlsIdentityRequest(request));
  KMS_ASSIGN_OR_RETURN(const Bytes san,
                       EncodeSubjectAltNames(request.dns_names, request.ip_addresses));
  const Bytes eku = ServerAuthEku();

  Mbedtls m;
  constexpr std::string_view kPersonalisation = "kms-provision tls";
  int rc = mbedtls_ctr_drbg_seed(&m.drbg, mbedtls_entropy_func, &m.entropy,
                                 reinterpret_cast<const unsigned char*>(kPersonalisation.data()),
                                 kPersonalisation.size());
  if (rc != 0) return MbedtlsError("seeding the DRBG", rc);

  // The key: ECDSA P-256 (NIST SP 800-186; every TLS 1.2 client speaks ECDHE-ECDSA with it).
  rc = mbedtls_pk_setup(&m.key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc == 0) {
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(m.key),
                             mbedtls_ctr_drbg_random, &m.drbg);
  }
  if (rc != 0) return MbedtlsError("generating the P-256 key", rc);
  SecretBytes key_pem(2048);
  rc = mbedtls_pk_write_key_pem(&m.key, key_pem.ExposeSecretMutable().data(), key_pem.size());
  if (rc != 0) return MbedtlsError("encoding the key", rc);
  key_pem.resize(std::strlen(reinterpret_cast<const char*>(key_pem.ExposeSecret().data())));

  // The serial: 16 random bytes with the top bit clear, so the INTEGER is positive (RFC 5280
  // §4.1.2.2: positive, at most 20 octets); bit 6 set so it is never zero and keeps its length.
  std::array<unsigned char, 16> serial{};
  rc = mbedtls_ctr_drbg_random(&m.drbg, serial.data(), serial.size());
  if (rc != 0) return MbedtlsError("drawing the serial", rc);
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x40);
  rc = mbedtls_mpi_read_binary(&m.serial, serial.data(), serial.size());
  if (rc != 0) return MbedtlsError("setting the serial", rc);

  const std::time_t now = std::time(nullptr);
  const std::time_t not_before = now - 5 * 60;  // tolerates clients whose clock is a little behind
  const std::time_t not_after = now + static_cast<std::time_t>(request.days) * 24 * 60 * 60;
  const std::string subject = "CN=" + request.dns_names.front();

  mbedtls_x509write_cert* crt = &m.crt;
  mbedtls_x509write_crt_set_version(crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(crt, &m.key);
  mbedtls_x509write_crt_set_issuer_key(crt, &m.key);  // self-signed
  rc = mbedtls_x509write_crt_set_subject_name(crt, subject.c_str());
  if (rc == 0) rc = mbedtls_x509write_crt_set_issuer_name(crt, subject.c_str());
  if (rc == 0) rc = mbedtls_x509write_crt_set_serial(crt, &m.serial);
  if (rc == 0) {
    rc = mbedtls_x509write_crt_set_validity(crt,
                                            TimeText(not_before, TimeFormat::kX509Writer).c_str(),
                                            TimeText(not_after, TimeFormat::kX509Writer).c_str());
  }
  if (rc == 0) rc = mbedtls_x509write_crt_set_basic_constraints(crt, 0, -1);  // CA:FALSE
  if (rc == 0) rc = mbedtls_x509write_crt_set_key_usage(crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  if (rc == 0) {
    rc = mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0,
                                             eku.data(), eku.size());
  }
  // Not critical: the subject is not empty (RFC 5280 §4.2.1.6).
  if (rc == 0) {
    rc = mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                             san.data(), san.size());
  }
#if defined(MBEDTLS_SHA1_C)
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_key_identifier(crt);
#endif
  if (rc != 0) return MbedtlsError("building the certificate", rc);
  std::vector<unsigned char> cert_buf(16384);
  rc = mbedtls_x509write_crt_pem(crt, cert_buf.data(), cert_buf.size(), mbedtls_ctr_drbg_random,
                                 &m.drbg);
  if (rc != 0) return MbedtlsError("signing the certificate", rc);
  const std::string cert_pem = PemString(cert_buf);

  std::string csr_pem;
  if (!request.csr_out.empty()) {
    // PKCS#10 (RFC 2986) with the SAN in an extensionRequest attribute (RFC 2985 §5.4.2), which
    // mbedtls_x509write_csr_set_extension writes.
    mbedtls_x509write_csr* csr = &m.csr;
    mbedtls_x509write_csr_set_md_alg(csr, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(csr, &m.key);
    rc = mbedtls_x509write_csr_set_subject_name(csr, subject.c_str());
    if (rc == 0) rc = mbedtls_x509write_csr_set_key_usage(csr, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    if (rc == 0) {
      rc = mbedtls_x509write_csr_set_extension(csr, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                                               san.data(), san.size());
    }
    if (rc != 0) return MbedtlsError("building the CSR", rc);
    std::vector<unsigned char> csr_buf(16384);
    rc = mbedtls_x509write_csr_pem(csr, csr_buf.data(), csr_buf.size(), mbedtls_ctr_drbg_random,
                                   &m.drbg);
    if (rc != 0) return MbedtlsError("signing the CSR", rc);
    csr_pem = PemString(csr_buf);
  }

  // Read our own certificate back: a SAN encoding mbedTLS (kmsd's TLS stack) cannot parse fails
  // here, before any file exists. The fingerprint is of the DER it parsed.
  rc = mbedtls_x509_crt_parse(&m.parsed, reinterpret_cast<const unsigned char*>(cert_pem.c_str()),
                              cert_pem.size() + 1);
  if (rc != 0) return MbedtlsError("parsing the new certificate back", rc);
  std::array<unsigned char, 32> digest{};
  rc = mbedtls_sha256_ret(m.parsed.raw.p, m.parsed.raw.len, digest.data(), 0);
  if (rc != 0) return MbedtlsError("hashing the certificate", rc);

  TlsIdentityResult result;
  for (std::size_t i = 0; i < digest.size(); ++i) {
    char hex[4];
    std::snprintf(hex, sizeof hex, i == 0 ? "%02X" : ":%02X", digest[i]);
    result.sha256_fingerprint += hex;
  }
  for (const std::string& dns : request.dns_names) result.subject_alt_names.push_back("DNS:" + dns);
  for (const std::string& ip : request.ip_addresses) {
    result.subject_alt_names.push_back("IP:" + IpText(ParseIp(ip)));
  }
  result.not_before = TimeText(not_before, TimeFormat::kHuman);
  result.not_after = TimeText(not_after, TimeFormat::kHuman);

  // The key first: a certificate without its key would be useless, a key alone is harmless.
  KMS_RETURN_IF_ERROR(WriteNewFile(request.key_out, key_pem.ExposeSecret(), 0600, "--key-out"));
  key_pem.clear();
  if (Status s = WriteNewFile(request.cert_out, AsBytes(cert_pem), 0644, "--cert-out"); !s.ok()) {
    ::unlink(request.key_out.c_str());
    return s;
  }
  if (!request.csr_out.empty()) {
    if (Status s = WriteNewFile(request.csr_out, AsBytes(csr_pem), 0644, "--csr-out"); !s.ok()) {
      ::unlink(request.key_out.c_str());
      ::unlink(request.cert_out.c_str());
      return s;
    }
  }
  return result;
}

std::string FormatTlsIdentityText(const TlsIdentityRequest& request,
                                  const TlsIdentityResult& result) {
  std::string out;
  out += "key: " + request.key_out + " (ECDSA P-256, mode 0600)\n";
  out +=
      "certificate: " + request.cert_out + " (self-signed, CN=" + request.dns_names.front() + ")\n";
  if (!request.csr_out.empty()) out += "csr: " + request.csr_out + "\n";
  out += "valid: " + result.not_before + " to " + result.not_after + "\n";
  out += "sha256 fingerprint: " + result.sha256_fingerprint + "\n";
  out += "subject alternative names:";
  for (std::size_t i = 0; i < result.subject_alt_names.size(); ++i) {
    out += (i == 0 ? " " : ", ") + result.subject_alt_names[i];
  }
  out += "\n";
  return out;
}

}  // namespace kms::provisioning
