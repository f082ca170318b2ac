// The appliance's TLS identity (`kms-provision tls`): a fresh ECDSA P-256 key, a
// self-signed X.509 v3 server certificate for it and, on request, a PKCS#10 CSR, all made with
// mbedTLS and written as PEM files that kmsd.toml's [server.tls] `key` and `cert` point at.
//
// The certificate: subject CN = the first DNS name, a random positive 16-byte serial, valid from
// five minutes ago (clock skew) for `days` days (1..825, the CA/Browser Forum's old ceiling),
// basicConstraints CA:FALSE, keyUsage digitalSignature (critical), extendedKeyUsage serverAuth,
// subjectAltName with every DNS name (dNSName) and IP address (iPAddress, v4 and v6), a subject key
// identifier, signed ECDSA-SHA256. The CSR carries the same subject and the same subjectAltName
// (in an extensionRequest attribute), for operators whose own CA signs the appliance's certificate.
//
// Files are created with O_EXCL (an existing file is never overwritten): the key 0600, the
// certificate and CSR 0644. Everything is made in memory first, so a refused request writes
// nothing; if a write fails half-way, the files this call created are removed again.
//
// Ownership: the private key's PEM lives only in SecretBytes (wiped on free) and in mbedTLS's pk
// context (freed with mbedtls_pk_free, which wipes it) until it is written; it is never returned,
// logged or part of an error message. Thread-safety: CreateTlsIdentity has no shared state.
#ifndef KMS_PROVISIONING_TLS_IDENTITY_H_
#define KMS_PROVISIONING_TLS_IDENTITY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace kms::provisioning {

inline constexpr int kTlsDefaultDays = 397;
inline constexpr int kTlsMaxDays = 825;

struct TlsIdentityRequest {
  std::vector<std::string> dns_names;     // at least one; the first is also the subject CN
  std::vector<std::string> ip_addresses;  // textual IPv4 or IPv6 (inet_pton)
  int days = kTlsDefaultDays;
  std::string key_out;   // must not exist
  std::string cert_out;  // must not exist
  std::string csr_out;   // optional; must not exist
};

struct TlsIdentityResult {
  std::string sha256_fingerprint;              // "AB:CD:…", of the certificate's DER
  std::vector<std::string> subject_alt_names;  // "DNS:kms.example", "IP:10.0.0.5", in order
  std::string not_before;                      // "2025-01-31 12:00:00 UTC"
  std::string not_after;
};

// The request's errors, before anything is generated: InvalidArgument for the names, addresses and
// days, AlreadyExists for an output that exists. Messages name the option, e.g.
// "tls: --ip '10.0.0': not an IPv4 or IPv6 address".
Status CheckTlsIdentityRequest(const TlsIdentityRequest& request);

// Checks the request, then makes and writes the key, the certificate and the CSR (if asked).
StatusOr<TlsIdentityResult> CreateTlsIdentity(const TlsIdentityRequest& request);

// The subjectAltName extension's value (RFC 5280 §4.2.1.6: GeneralNames, DER) for these names;
// InvalidArgument when an address does not parse. Exposed for tests.
StatusOr<std::vector<std::uint8_t>> EncodeSubjectAltNames(const std::vector<std::string>& dns_names,
                                                          const std::vector<std::string>& ips);

// The operator's summary: where the files are, the fingerprint, the SANs, the validity. No key.
std::string FormatTlsIdentityText(const TlsIdentityRequest& request,
                                  const TlsIdentityResult& result);

}  // namespace kms::provisioning

#endif  // KMS_PROVISIONING_TLS_IDENTITY_H_
