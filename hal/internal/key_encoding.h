// Encodings the PKCS#11 backend needs around the device: curve parameters, ECDSA signatures (raw
// r||s from CKM_ECDSA <-> DER Ecdsa-Sig-Value), DER SubjectPublicKeyInfo, PKCS#8 PrivateKeyInfo and
// the PKCS#1 v1.5 DigestInfo. Built on mbedTLS's ASN.1 and pk modules; no key the appliance guards
// passes through here (only public keys, and the private key of GenerateExportableKeyPair, which is
// the caller's by design).
//
// Parsers are strict: DER only (no BER, no trailing bytes), minimal integers, values in range.
//
// Thread-safety: pure functions.
#ifndef KMS_HAL_INTERNAL_KEY_ENCODING_H_
#define KMS_HAL_INTERNAL_KEY_ENCODING_H_

#include <cstddef>
#include <optional>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/key_types.h"

namespace kms::hal::internal {

struct CurveInfo {
  KeyAlgorithm algorithm;
  int mbedtls_group;        // mbedtls_ecp_group_id
  ByteView ec_params;       // DER namedCurve OID, the CKA_EC_PARAMS value (RFC 5480 §2.1.1.1)
  std::size_t order_bytes;  // size of the group order n, so of r and s in CKM_ECDSA output
};

// nullptr for non-EC algorithms.
const CurveInfo* CurveOf(KeyAlgorithm algorithm);
// RSA modulus size in bits; 0 for non-RSA algorithms.
std::size_t RsaBits(KeyAlgorithm algorithm);

// r||s (two equal halves, as CKM_ECDSA returns, PKCS#11 v2.40 curr. mech. §2.3.1) to DER
// Ecdsa-Sig-Value (RFC 3279 §2.2.3).
StatusOr<Bytes> EcdsaRawToDer(ByteView raw);
// Strict DER Ecdsa-Sig-Value to r||s of 2*order_bytes for `curve`. Rejects BER lengths, trailing
// bytes, non-minimal or negative integers, and r or s outside [1, n-1]:
// InvalidArgument/kInvalidSignature.
StatusOr<Bytes> EcdsaDerToRaw(const CurveInfo& curve, ByteView der);

// CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (PKCS#11 v2.40 §2.3.3).
Bytes DerOctetString(ByteView content);
StatusOr<Bytes> ParseDerOctetString(ByteView der);

// DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7; RFC 3279/5480 algorithm identifiers).
StatusOr<Bytes> RsaSpki(ByteView modulus, ByteView public_exponent);
StatusOr<Bytes> EcSpki(const CurveInfo& curve, ByteView uncompressed_point);

struct PublicKeyParts {
  bool rsa = false;
  std::size_t rsa_bits = 0;
  Bytes modulus;                     // RSA, big-endian, no leading zero
  Bytes public_exponent;             // RSA
  const CurveInfo* curve = nullptr;  // EC
  Bytes point;                       // EC, uncompressed 04||X||Y
};
// Parses a DER SubjectPublicKeyInfo (RSA or a curve of CurveOf). InvalidArgument when malformed, of
// an unsupported type, or not the one DER encoding of its key (BER lengths, a negative or padded
// INTEGER).
StatusOr<PublicKeyParts> ParseSpki(ByteView der);

struct PrivateKeyParts {
  PublicKeyParts pub;
  // RSA (PKCS#1 RSAPrivateKey fields)
  SecretBytes private_exponent, prime1, prime2, exponent1, exponent2, coefficient;
  // EC
  SecretBytes scalar;
};
// Parses a DER PKCS#8 PrivateKeyInfo (RFC 5208) of RSA or a supported curve.
StatusOr<PrivateKeyParts> ParsePkcs8(const SecretBytes& der);
// DER PKCS#8 PrivateKeyInfo from components.
StatusOr<SecretBytes> RsaPkcs8(ByteView modulus, ByteView public_exponent,
                               const SecretBytes& private_exponent, const SecretBytes& prime1,
                               const SecretBytes& prime2);
StatusOr<SecretBytes> EcPkcs8(const CurveInfo& curve, const SecretBytes& scalar,
                              ByteView uncompressed_point);

// DigestInfo (RFC 8017 §9.2 step 2) for RSASSA-PKCS1-v1_5 over CKM_RSA_PKCS.
Bytes Pkcs1DigestInfo(HashAlgorithm hash, ByteView digest);

}  // namespace kms::hal::internal

#endif  // KMS_HAL_INTERNAL_KEY_ENCODING_H_
