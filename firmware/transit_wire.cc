#include "firmware/transit_wire.h"

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>

#include <charconv>

#include "base/encoding.h"

namespace kms::firmware::transit {

// ---- "vault:v<N>:<payload>" ----
std::string VersionPrefix(std::uint32_t version) {
  return "vault:v" + std::to_string(version) + ":";
}

// Vault's policy.Decrypt parse: strip "vault:v", split once on ':', Atoi (v0 means v1). `what` is
// "ciphertext", "signature" or "HMAC" for the messages.
StatusOr<VersionedValue> ParseVersioned(std::string_view value, std::string_view what) {
  constexpr std::string_view kPrefix = "vault:v";
  const std::string noun(what);
  if (!value.starts_with(kPrefix)) return InvalidArgumentError("invalid " + noun + ": no prefix");
  value.remove_prefix(kPrefix.size());
  const std::size_t colon = value.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("invalid " + noun + ": wrong number of fields");
  }
  std::string_view digits = value.substr(0, colon);
  // Go's Atoi takes one optional sign, '+' or '-'; from_chars takes only '-', so a '+' is dropped
  // first, unless a second sign follows it ("+-1" is no number to Go either).
  if (digits.starts_with('+') && !digits.substr(1).starts_with('-')) digits.remove_prefix(1);
  std::int64_t version = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    return InvalidArgumentError("invalid " + noun + ": version number could not be decoded");
  }
  if (version == 0) version = 1;
  return VersionedValue{version, value.substr(colon + 1)};
}

// RFC 4648 §5 without padding (Vault's jws marshaling).
std::string Base64UrlEncode(ByteView bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}
StatusOr<Bytes> Base64UrlDecode(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c == '+' || c == '/' || c == '=') return InvalidArgumentError("invalid base64url");
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  if (s.size() % 4 == 1) return InvalidArgumentError("invalid base64url");
  while (s.size() % 4 != 0) s.push_back('=');
  return Base64Decode(s);
}

StatusOr<Bytes> DerToRaw(ByteView der, std::size_t n) {
  // mbedTLS 2.28's parsers take a non-const cursor but only read through it.
  unsigned char* p = const_cast<unsigned char*>(der.data());
  const unsigned char* end = der.data() + der.size();
  std::size_t len = 0;
  mbedtls_mpi r, s;
  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  Bytes out(2 * n);
  int rc = mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  if (rc == 0 && p + len != end) rc = -1;
  if (rc == 0) rc = mbedtls_asn1_get_mpi(&p, end, &r);
  if (rc == 0) rc = mbedtls_asn1_get_mpi(&p, end, &s);
  if (rc == 0 && p != end) rc = -1;
  if (rc == 0) rc = mbedtls_mpi_write_binary(&r, out.data(), n);
  if (rc == 0) rc = mbedtls_mpi_write_binary(&s, out.data() + n, n);
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  if (rc != 0) return InternalError("the HSM returned a malformed ECDSA signature");
  return out;
}

// nullopt: not a raw signature of this curve's width (the signature simply does not verify).
std::optional<Bytes> RawToDer(ByteView raw, std::size_t n) {
  if (raw.size() != 2 * n) return std::nullopt;
  mbedtls_mpi r, s;
  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  unsigned char buf[2 * (66 + 4) + 8];
  unsigned char* p = buf + sizeof(buf);
  int rc = mbedtls_mpi_read_binary(&r, raw.data(), n);
  if (rc == 0) rc = mbedtls_mpi_read_binary(&s, raw.data() + n, n);
  std::size_t total = 0;
  int w = 0;
  if (rc == 0) rc = w = mbedtls_asn1_write_mpi(&p, buf, &s);
  if (rc >= 0) total += static_cast<std::size_t>(w);
  if (rc >= 0) rc = w = mbedtls_asn1_write_mpi(&p, buf, &r);
  if (rc >= 0) total += static_cast<std::size_t>(w);
  if (rc >= 0) rc = w = mbedtls_asn1_write_len(&p, buf, total);
  if (rc >= 0) total += static_cast<std::size_t>(w);
  if (rc >= 0) {
    rc = w = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  }
  if (rc >= 0) total += static_cast<std::size_t>(w);
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  if (rc < 0) return std::nullopt;
  return Bytes(p, p + total);
}

// RFC 7468 §13: SubjectPublicKeyInfo as "PUBLIC KEY", base64 in 64-character lines.
std::string PublicKeyPem(ByteView der) {
  const std::string b64 = Base64Encode(der);
  std::string pem = "-----BEGIN PUBLIC KEY-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    pem += b64.substr(i, 64);
    pem += '\n';
  }
  pem += "-----END PUBLIC KEY-----\n";
  return pem;
}

}  // namespace kms::firmware::transit
