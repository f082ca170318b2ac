#include "hal/internal/key_encoding.h"

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <array>
#include <cstring>
#include <memory>

namespace kms::hal::internal {
namespace {

constexpr std::uint8_t kP256Oid[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr std::uint8_t kP384Oid[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22};
constexpr std::uint8_t kP521Oid[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23};
constexpr std::uint8_t kSecp256k1Oid[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A};

const CurveInfo kCurves[] = {
    {KeyAlgorithm::kEcP256, MBEDTLS_ECP_DP_SECP256R1, ByteView(kP256Oid), 32},
    {KeyAlgorithm::kEcP384, MBEDTLS_ECP_DP_SECP384R1, ByteView(kP384Oid), 48},
    {KeyAlgorithm::kEcP521, MBEDTLS_ECP_DP_SECP521R1, ByteView(kP521Oid), 66},
    {KeyAlgorithm::kEcSecp256k1, MBEDTLS_ECP_DP_SECP256K1, ByteView(kSecp256k1Oid), 32},
};

const CurveInfo* CurveOfGroup(mbedtls_ecp_group_id id) {
  for (const CurveInfo& c : kCurves) {
    if (c.mbedtls_group == id) return &c;
  }
  return nullptr;
}

Status BadSignature() {
  return InvalidArgumentError("invalid signature", Reason::kInvalidSignature);
}

// RAII for mbedTLS contexts (their free functions wipe secret numbers).
struct Pk {
  mbedtls_pk_context ctx;
  Pk() { mbedtls_pk_init(&ctx); }
  ~Pk() { mbedtls_pk_free(&ctx); }
  Pk(const Pk&) = delete;
  Pk& operator=(const Pk&) = delete;
};
struct Mpi {
  mbedtls_mpi v;
  Mpi() { mbedtls_mpi_init(&v); }
  ~Mpi() { mbedtls_mpi_free(&v); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
};
struct Group {
  mbedtls_ecp_group g;
  Group() { mbedtls_ecp_group_init(&g); }
  ~Group() { mbedtls_ecp_group_free(&g); }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
};

// The group order n of `curve`, big-endian in order_bytes.
StatusOr<Bytes> OrderOf(const CurveInfo& curve) {
  Group group;
  if (mbedtls_ecp_group_load(&group.g, static_cast<mbedtls_ecp_group_id>(curve.mbedtls_group)) !=
      0) {
    return InternalError("mbedTLS lacks curve " + std::string(KeyAlgorithmName(curve.algorithm)));
  }
  Bytes n(curve.order_bytes);
  if (mbedtls_mpi_write_binary(&group.g.N, n.data(), n.size()) != 0) {
    return InternalError("curve order does not fit");
  }
  return n;
}

void AppendDerLength(Bytes& out, std::size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<std::uint8_t>(len));
  } else if (len <= 0xFF) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(len));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<std::uint8_t>(len >> 8));
    out.push_back(static_cast<std::uint8_t>(len & 0xFF));
  }
}

void AppendDerInteger(Bytes& out, ByteView magnitude) {
  std::size_t i = 0;
  while (i + 1 < magnitude.size() && magnitude[i] == 0) ++i;
  ByteView m = magnitude.subspan(i);
  bool pad = m.empty() || (m[0] & 0x80) != 0;
  out.push_back(0x02);
  AppendDerLength(out, m.size() + (pad ? 1 : 0));
  if (pad) out.push_back(0x00);
  out.insert(out.end(), m.begin(), m.end());
}

// Reads a strict-DER INTEGER at `der[pos]` as an unsigned magnitude of at most `max_bytes`.
bool ReadStrictPositiveInteger(ByteView der, std::size_t& pos, std::size_t max_bytes, Bytes& out) {
  if (pos + 2 > der.size() || der[pos] != 0x02) return false;
  std::size_t len = der[pos + 1];
  // Integers here are at most 67 bytes: only the short length form is minimal (X.690 §10.1).
  if (len >= 0x80 || len == 0) return false;
  pos += 2;
  if (pos + len > der.size()) return false;
  ByteView v = der.subspan(pos, len);
  pos += len;
  if ((v[0] & 0x80) != 0) return false;                             // negative
  if (v[0] == 0x00 && len > 1 && (v[1] & 0x80) == 0) return false;  // non-minimal
  if (v[0] == 0x00) v = v.subspan(1);
  if (v.size() > max_bytes) return false;
  out.assign(max_bytes - v.size(), 0);
  out.insert(out.end(), v.begin(), v.end());
  return true;
}

bool IsZero(ByteView v) {
  for (std::uint8_t b : v) {
    if (b != 0) return false;
  }
  return true;
}

// Big-endian a < b for equal lengths.
bool LessThan(ByteView a, ByteView b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return a[i] < b[i];
  }
  return false;
}

Bytes MpiBytes(const mbedtls_mpi& m) {
  Bytes out(mbedtls_mpi_size(&m));
  if (!out.empty()) (void)mbedtls_mpi_write_binary(&m, out.data(), out.size());
  return out;
}

SecretBytes MpiSecret(const mbedtls_mpi& m) {
  SecretBytes out(mbedtls_mpi_size(&m));
  if (!out.empty()) {
    (void)mbedtls_mpi_write_binary(&m, out.ExposeSecretMutable().data(), out.size());
  }
  return out;
}

StatusOr<PublicKeyParts> PartsOf(const mbedtls_pk_context& pk) {
  PublicKeyParts parts;
  mbedtls_pk_type_t type = mbedtls_pk_get_type(&pk);
  if (type == MBEDTLS_PK_RSA) {
    const mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk);
    Mpi n, e;
    if (mbedtls_rsa_export(rsa, &n.v, nullptr, nullptr, nullptr, &e.v) != 0) {
      return InvalidArgumentError("malformed RSA key");
    }
    parts.rsa = true;
    parts.rsa_bits = mbedtls_mpi_bitlen(&n.v);
    parts.modulus = MpiBytes(n.v);
    parts.public_exponent = MpiBytes(e.v);
    return parts;
  }
  if (type == MBEDTLS_PK_ECKEY) {
    const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk);
    if (ec == nullptr) return InvalidArgumentError("malformed EC key");
    parts.curve = CurveOfGroup(ec->grp.id);
    if (parts.curve == nullptr) return InvalidArgumentError("unsupported elliptic curve");
    std::size_t olen = 0;
    Bytes point(1 + 2 * 66);
    if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
                                       point.data(), point.size()) != 0) {
      return InvalidArgumentError("malformed EC point");
    }
    point.resize(olen);
    parts.point = std::move(point);
    return parts;
  }
  return InvalidArgumentError("unsupported public key type");
}

// PKCS#8 PrivateKeyInfo around an mbedTLS-written RSAPrivateKey/ECPrivateKey (RFC 5208 §5):
// SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING privateKey }.
StatusOr<SecretBytes> WritePkcs8(mbedtls_pk_context& pk, const CurveInfo* curve) {
  SecretBytes buf(8192);
  unsigned char* start = buf.ExposeSecretMutable().data();
  unsigned char* end = start + buf.size();
  int inner = mbedtls_pk_write_key_der(&pk, start, buf.size());
  if (inner <= 0) return InternalError("cannot encode private key");
  unsigned char* p = end - inner;
  std::size_t len = static_cast<std::size_t>(inner);
  auto add = [&len](int r) {
    if (r < 0) return false;
    len += static_cast<std::size_t>(r);
    return true;
  };
  bool ok = add(mbedtls_asn1_write_len(&p, start, len)) &&
            add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_OCTET_STRING));
  if (ok) {
    std::size_t alg_len = 0;
    int r;
    if (curve != nullptr) {
      r = mbedtls_asn1_write_raw_buffer(&p, start, curve->ec_params.data(),
                                        curve->ec_params.size());
      ok = r > 0;
      if (ok) {
        r = mbedtls_asn1_write_algorithm_identifier(
            &p, start, MBEDTLS_OID_EC_ALG_UNRESTRICTED,
            MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_ALG_UNRESTRICTED), curve->ec_params.size());
        ok = r > 0;
        alg_len = ok ? static_cast<std::size_t>(r) : 0;  // r counts the parameters already
      }
    } else {
      r = mbedtls_asn1_write_algorithm_identifier(&p, start, MBEDTLS_OID_PKCS1_RSA,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS1_RSA), 0);
      ok = r > 0;
      alg_len = ok ? static_cast<std::size_t>(r) : 0;
    }
    len += alg_len;
  }
  ok = ok && add(mbedtls_asn1_write_int(&p, start, 0)) &&
       add(mbedtls_asn1_write_len(&p, start, len)) &&
       add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  if (!ok) return InternalError("cannot encode PKCS#8");
  return SecretBytes::CopyFrom(ByteView(p, static_cast<std::size_t>(end - p)));
}

}  // namespace

const CurveInfo* CurveOf(KeyAlgorithm algorithm) {
  for (const CurveInfo& c : kCurves) {
    if (c.algorithm == algorithm) return &c;
  }
  return nullptr;
}

std::size_t RsaBits(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::kRsa2048:
      return 2048;
    case KeyAlgorithm::kRsa3072:
      return 3072;
    case KeyAlgorithm::kRsa4096:
      return 4096;
    default:
      return 0;
  }
}

StatusOr<Bytes> EcdsaRawToDer(ByteView raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 2 * 66) {
    return InternalError("CKM_ECDSA returned a malformed signature");
  }
  Bytes body;
  AppendDerInteger(body, raw.first(raw.size() / 2));
  AppendDerInteger(body, raw.subspan(raw.size() / 2));
  Bytes out{0x30};
  AppendDerLength(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

StatusOr<Bytes> EcdsaDerToRaw(const CurveInfo& curve, ByteView der) {
  // X.690 DER: SEQUENCE with a minimal definite length covering exactly the rest of the input.
  if (der.size() < 2 || der[0] != 0x30) return BadSignature();
  std::size_t pos = 2;
  std::size_t len = der[1];
  if (len == 0x81) {
    if (der.size() < 3 || der[2] < 0x80) return BadSignature();  // long form only when needed
    len = der[2];
    pos = 3;
  } else if (len >= 0x80) {
    return BadSignature();  // indefinite (BER) or needlessly long forms
  }
  if (pos + len != der.size()) return BadSignature();  // truncated or trailing bytes
  Bytes r, s;
  if (!ReadStrictPositiveInteger(der, pos, curve.order_bytes, r)) return BadSignature();
  if (!ReadStrictPositiveInteger(der, pos, curve.order_bytes, s)) return BadSignature();
  if (pos != der.size()) return BadSignature();
  KMS_ASSIGN_OR_RETURN(Bytes n, OrderOf(curve));
  // SEC 1 v2 §4.1.4 step 1: r and s must be in [1, n-1].
  if (IsZero(r) || IsZero(s) || !LessThan(r, n) || !LessThan(s, n)) return BadSignature();
  r.insert(r.end(), s.begin(), s.end());
  return r;
}

Bytes DerOctetString(ByteView content) {
  Bytes out{0x04};
  AppendDerLength(out, content.size());
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

StatusOr<Bytes> ParseDerOctetString(ByteView der) {
  if (der.size() < 2 || der[0] != 0x04) return InvalidArgumentError("not a DER OCTET STRING");
  std::size_t pos = 2;
  std::size_t len = der[1];
  if (len == 0x81) {
    if (der.size() < 3 || der[2] < 0x80) return InvalidArgumentError("non-minimal DER length");
    len = der[2];
    pos = 3;
  } else if (len == 0x82) {
    if (der.size() < 4) return InvalidArgumentError("truncated DER");
    len = (std::size_t{der[2]} << 8) | der[3];
    if (len < 0x100) return InvalidArgumentError("non-minimal DER length");
    pos = 4;
  } else if (len >= 0x80) {
    return InvalidArgumentError("unsupported DER length");
  }
  if (pos + len != der.size()) return InvalidArgumentError("DER length mismatch");
  return Bytes(der.begin() + static_cast<std::ptrdiff_t>(pos), der.end());
}

StatusOr<Bytes> RsaSpki(ByteView modulus, ByteView public_exponent) {
  Pk pk;
  if (mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0) {
    return InternalError("mbedTLS pk setup failed");
  }
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  // mbedtls_rsa_check_pubkey is what ParseSpki's parser applies (a modulus of 128+ bits, an odd
  // exponent > 1): a key the reader would refuse is not written, so every SPKI this writes parses.
  if (mbedtls_rsa_import_raw(rsa, modulus.data(), modulus.size(), nullptr, 0, nullptr, 0, nullptr,
                             0, public_exponent.data(), public_exponent.size()) != 0 ||
      mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_pubkey(rsa) != 0) {
    return InvalidArgumentError("malformed RSA public key");
  }
  Bytes buf(2048);
  int n = mbedtls_pk_write_pubkey_der(&pk.ctx, buf.data(), buf.size());
  if (n <= 0) return InternalError("cannot encode RSA SubjectPublicKeyInfo");
  return Bytes(buf.end() - n, buf.end());
}

StatusOr<Bytes> EcSpki(const CurveInfo& curve, ByteView uncompressed_point) {
  Pk pk;
  if (mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
    return InternalError("mbedTLS pk setup failed");
  }
  mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk.ctx);
  if (mbedtls_ecp_group_load(&ec->grp, static_cast<mbedtls_ecp_group_id>(curve.mbedtls_group)) !=
      0) {
    return InternalError("mbedTLS lacks the curve");
  }
  if (mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, uncompressed_point.data(),
                                    uncompressed_point.size()) != 0 ||
      mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q) != 0) {
    return InvalidArgumentError("malformed EC point");
  }
  Bytes buf(512);
  int n = mbedtls_pk_write_pubkey_der(&pk.ctx, buf.data(), buf.size());
  if (n <= 0) return InternalError("cannot encode EC SubjectPublicKeyInfo");
  return Bytes(buf.end() - n, buf.end());
}

StatusOr<PublicKeyParts> ParseSpki(ByteView der) {
  if (der.empty()) return InvalidArgumentError("empty public key");
  Pk pk;
  if (mbedtls_pk_parse_public_key(&pk.ctx, der.data(), der.size()) != 0) {
    return InvalidArgumentError("malformed SubjectPublicKeyInfo");
  }
  // mbedTLS accepts PEM too; a DER key starts with a SEQUENCE tag.
  if (der[0] != 0x30) return InvalidArgumentError("SubjectPublicKeyInfo must be DER");
  KMS_ASSIGN_OR_RETURN(PublicKeyParts parts, PartsOf(pk.ctx));
  // mbedTLS's reader is not strict: it takes long-form lengths that fit the short form, and an
  // INTEGER with its sign bit set as a positive number. DER has one encoding per key, so the key
  // written again must be the input byte for byte.
  auto canonical = parts.rsa ? RsaSpki(parts.modulus, parts.public_exponent)
                             : EcSpki(*parts.curve, parts.point);
  if (!canonical.has_value() || *canonical != Bytes(der.begin(), der.end())) {
    return InvalidArgumentError("SubjectPublicKeyInfo must be DER");
  }
  return parts;
}

StatusOr<PrivateKeyParts> ParsePkcs8(const SecretBytes& der) {
  ByteView d = der.ExposeSecret();
  {
    // RFC 5208 §5: SEQUENCE { INTEGER version, AlgorithmIdentifier (a SEQUENCE), OCTET STRING, ...
    // } covering the whole input. mbedTLS also takes PKCS#1 and SEC1 keys and PEM; only PKCS#8 DER
    // is accepted here (a PKCS#1/SEC1 key has an INTEGER or OCTET STRING after the version).
    unsigned char* p = const_cast<unsigned char*>(d.data());
    const unsigned char* end = p + d.size();
    std::size_t len = 0;
    int version = -1;
    if (d.empty() ||
        mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
            0 ||
        p + len != end || mbedtls_asn1_get_int(&p, end, &version) != 0 || version != 0 ||
        p >= end || *p != (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) {
      return InvalidArgumentError("private key must be DER PKCS#8");
    }
  }
  Pk pk;
  if (mbedtls_pk_parse_key(&pk.ctx, d.data(), d.size(), nullptr, 0) != 0) {
    return InvalidArgumentError("malformed private key");
  }
  PrivateKeyParts parts;
  KMS_ASSIGN_OR_RETURN(parts.pub, PartsOf(pk.ctx));
  if (parts.pub.rsa) {
    const mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
    Mpi p, q, dd, dp, dq, qp;
    if (mbedtls_rsa_export(rsa, nullptr, &p.v, &q.v, &dd.v, nullptr) != 0 ||
        mbedtls_rsa_export_crt(rsa, &dp.v, &dq.v, &qp.v) != 0) {
      return InvalidArgumentError("malformed RSA private key");
    }
    parts.private_exponent = MpiSecret(dd.v);
    parts.prime1 = MpiSecret(p.v);
    parts.prime2 = MpiSecret(q.v);
    parts.exponent1 = MpiSecret(dp.v);
    parts.exponent2 = MpiSecret(dq.v);
    parts.coefficient = MpiSecret(qp.v);
  } else {
    const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk.ctx);
    SecretBytes scalar(parts.pub.curve->order_bytes);
    if (mbedtls_mpi_write_binary(&ec->d, scalar.ExposeSecretMutable().data(), scalar.size()) != 0) {
      return InvalidArgumentError("malformed EC private key");
    }
    parts.scalar = std::move(scalar);
  }
  return parts;
}

StatusOr<SecretBytes> RsaPkcs8(ByteView modulus, ByteView public_exponent,
                               const SecretBytes& private_exponent, const SecretBytes& prime1,
                               const SecretBytes& prime2) {
  Pk pk;
  if (mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0) {
    return InternalError("mbedTLS pk setup failed");
  }
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  ByteView p = prime1.ExposeSecret(), q = prime2.ExposeSecret(),
           d = private_exponent.ExposeSecret();
  if (mbedtls_rsa_import_raw(rsa, modulus.data(), modulus.size(), p.data(), p.size(), q.data(),
                             q.size(), d.data(), d.size(), public_exponent.data(),
                             public_exponent.size()) != 0 ||
      mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_privkey(rsa) != 0) {
    return InternalError("device returned an inconsistent RSA key");
  }
  return WritePkcs8(pk.ctx, nullptr);
}

StatusOr<SecretBytes> EcPkcs8(const CurveInfo& curve, const SecretBytes& scalar,
                              ByteView uncompressed_point) {
  Pk pk;
  if (mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
    return InternalError("mbedTLS pk setup failed");
  }
  mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk.ctx);
  ByteView d = scalar.ExposeSecret();
  if (mbedtls_ecp_group_load(&ec->grp, static_cast<mbedtls_ecp_group_id>(curve.mbedtls_group)) !=
          0 ||
      mbedtls_mpi_read_binary(&ec->d, d.data(), d.size()) != 0 ||
      mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, uncompressed_point.data(),
                                    uncompressed_point.size()) != 0 ||
      mbedtls_ecp_check_privkey(&ec->grp, &ec->d) != 0) {
    return InternalError("device returned an inconsistent EC key");
  }
  return WritePkcs8(pk.ctx, &curve);
}

Bytes Pkcs1DigestInfo(HashAlgorithm hash, ByteView digest) {
  // RFC 8017 §9.2 note 1: the DER prefixes of DigestInfo for each hash.
  static constexpr std::uint8_t kSha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                           0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
  static constexpr std::uint8_t kSha224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                             0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                             0x04, 0x05, 0x00, 0x04, 0x1c};
  static constexpr std::uint8_t kSha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                             0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                             0x01, 0x05, 0x00, 0x04, 0x20};
  static constexpr std::uint8_t kSha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                             0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                             0x02, 0x05, 0x00, 0x04, 0x30};
  static constexpr std::uint8_t kSha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                             0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                             0x03, 0x05, 0x00, 0x04, 0x40};
  ByteView prefix;
  switch (hash) {
    case HashAlgorithm::kSha1:
      prefix = kSha1;
      break;
    case HashAlgorithm::kSha224:
      prefix = kSha224;
      break;
    case HashAlgorithm::kSha256:
      prefix = kSha256;
      break;
    case HashAlgorithm::kSha384:
      prefix = kSha384;
      break;
    case HashAlgorithm::kSha512:
      prefix = kSha512;
      break;
  }
  Bytes out(prefix.begin(), prefix.end());
  out.insert(out.end(), digest.begin(), digest.end());
  return out;
}

}  // namespace kms::hal::internal
