// The key and algorithm vocabulary of the HAL: what kinds of keys the device makes and which operations
// it performs with them. Names are the device's view (an AES-256 key, a P-256 key pair), not the AWS or
// Vault names; firmware/ maps its key specs onto these.
#ifndef KMS_HAL_KEY_TYPES_H_
#define KMS_HAL_KEY_TYPES_H_

#include <cstddef>
#include <optional>
#include <string_view>

namespace kms::hal {

enum class KeyAlgorithm {
  kAes256,        // AES-256, for AES-GCM
  kHmacSha224,    // generic secret of 32 bytes (a multiple of 8: SoftHSM's KWP loses other lengths)
  kHmacSha256,    // generic secret of 32 bytes
  kHmacSha384,    // generic secret of 48 bytes
  kHmacSha512,    // generic secret of 64 bytes
  kRsa2048,
  kRsa3072,
  kRsa4096,
  kEcP256,
  kEcP384,
  kEcP521,
  kEcSecp256k1,
};

// What a key may be used for. Exactly one per key: a key never both encrypts and signs, and no key
// (but the domain key, which only wraps) may wrap.
enum class KeyPurpose {
  kEncryptDecrypt,  // AES-GCM, or RSA-OAEP for RSA keys
  kSignVerify,      // RSA-PSS, RSASSA-PKCS1-v1_5, ECDSA
  kMac,             // HMAC
};

enum class SignatureAlgorithm {
  kRsaPssSha256,
  kRsaPssSha384,
  kRsaPssSha512,
  kRsaPkcs1Sha256,
  kRsaPkcs1Sha384,
  kRsaPkcs1Sha512,
  kEcdsaSha256,
  kEcdsaSha384,
  kEcdsaSha512,
};

enum class HashAlgorithm { kSha1, kSha224, kSha256, kSha384, kSha512 };

std::string_view KeyAlgorithmName(KeyAlgorithm a);
std::string_view KeyPurposeName(KeyPurpose p);
std::string_view SignatureAlgorithmName(SignatureAlgorithm a);
std::string_view HashAlgorithmName(HashAlgorithm h);

bool IsSymmetric(KeyAlgorithm a);
bool IsHmac(KeyAlgorithm a);
bool IsRsa(KeyAlgorithm a);
bool IsEc(KeyAlgorithm a);
// Whether `purpose` is a valid use of `algorithm` (AES: encrypt; HMAC: mac; RSA: encrypt or sign; EC: sign).
bool PurposeAllowed(KeyAlgorithm algorithm, KeyPurpose purpose);
// The digest a signature algorithm signs, and whether `algorithm` can make it (RSA schemes need an RSA
// key, ECDSA an EC key).
HashAlgorithm DigestOf(SignatureAlgorithm a);
bool SignatureAllowed(KeyAlgorithm key, SignatureAlgorithm sig);
// HMAC keys: the hash they use. nullopt for other algorithms.
std::optional<HashAlgorithm> HmacHashOf(KeyAlgorithm a);
std::size_t DigestSize(HashAlgorithm h);

// AES-GCM parameters the HAL enforces (NIST SP 800-38D §5.2.1.1, §5.2.1.2): a 96-bit IV drawn from the
// device RNG, a 128-bit tag. Nothing else is accepted in either direction.
inline constexpr std::size_t kGcmIvSize = 12;
inline constexpr std::size_t kGcmTagSize = 16;

}  // namespace kms::hal

#endif  // KMS_HAL_KEY_TYPES_H_
