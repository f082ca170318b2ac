#include "hal/key_types.h"

namespace kms::hal {

std::string_view KeyAlgorithmName(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kAes256: return "AES-256";
    case KeyAlgorithm::kHmacSha224: return "HMAC-SHA-224";
    case KeyAlgorithm::kHmacSha256: return "HMAC-SHA-256";
    case KeyAlgorithm::kHmacSha384: return "HMAC-SHA-384";
    case KeyAlgorithm::kHmacSha512: return "HMAC-SHA-512";
    case KeyAlgorithm::kRsa2048: return "RSA-2048";
    case KeyAlgorithm::kRsa3072: return "RSA-3072";
    case KeyAlgorithm::kRsa4096: return "RSA-4096";
    case KeyAlgorithm::kEcP256: return "EC-P256";
    case KeyAlgorithm::kEcP384: return "EC-P384";
    case KeyAlgorithm::kEcP521: return "EC-P521";
    case KeyAlgorithm::kEcSecp256k1: return "EC-secp256k1";
  }
  return "unknown";
}

std::string_view KeyPurposeName(KeyPurpose p) {
  switch (p) {
    case KeyPurpose::kEncryptDecrypt: return "encrypt/decrypt";
    case KeyPurpose::kSignVerify: return "sign/verify";
    case KeyPurpose::kMac: return "mac";
  }
  return "unknown";
}

std::string_view SignatureAlgorithmName(SignatureAlgorithm a) {
  switch (a) {
    case SignatureAlgorithm::kRsaPssSha256: return "RSASSA-PSS-SHA-256";
    case SignatureAlgorithm::kRsaPssSha384: return "RSASSA-PSS-SHA-384";
    case SignatureAlgorithm::kRsaPssSha512: return "RSASSA-PSS-SHA-512";
    case SignatureAlgorithm::kRsaPkcs1Sha256: return "RSASSA-PKCS1-v1_5-SHA-256";
    case SignatureAlgorithm::kRsaPkcs1Sha384: return "RSASSA-PKCS1-v1_5-SHA-384";
    case SignatureAlgorithm::kRsaPkcs1Sha512: return "RSASSA-PKCS1-v1_5-SHA-512";
    case SignatureAlgorithm::kEcdsaSha256: return "ECDSA-SHA-256";
    case SignatureAlgorithm::kEcdsaSha384: return "ECDSA-SHA-384";
    case SignatureAlgorithm::kEcdsaSha512: return "ECDSA-SHA-512";
  }
  return "unknown";
}

std::string_view HashAlgorithmName(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1: return "SHA-1";
    case HashAlgorithm::kSha224: return "SHA-224";
    case HashAlgorithm::kSha256: return "SHA-256";
    case HashAlgorithm::kSha384: return "SHA-384";
    case HashAlgorithm::kSha512: return "SHA-512";
  }
  return "unknown";
}

bool IsSymmetric(KeyAlgorithm a) { return a == KeyAlgorithm::kAes256 || IsHmac(a); }

bool IsHmac(KeyAlgorithm a) {
  return a == KeyAlgorithm::kHmacSha224 || a == KeyAlgorithm::kHmacSha256 ||
         a == KeyAlgorithm::kHmacSha384 || a == KeyAlgorithm::kHmacSha512;
}

bool IsRsa(KeyAlgorithm a) {
  return a == KeyAlgorithm::kRsa2048 || a == KeyAlgorithm::kRsa3072 || a == KeyAlgorithm::kRsa4096;
}

bool IsEc(KeyAlgorithm a) {
  return a == KeyAlgorithm::kEcP256 || a == KeyAlgorithm::kEcP384 || a == KeyAlgorithm::kEcP521 ||
         a == KeyAlgorithm::kEcSecp256k1;
}

bool PurposeAllowed(KeyAlgorithm algorithm, KeyPurpose purpose) {
  if (algorithm == KeyAlgorithm::kAes256) return purpose == KeyPurpose::kEncryptDecrypt;
  if (IsHmac(algorithm)) return purpose == KeyPurpose::kMac;
  if (IsRsa(algorithm)) {
    return purpose == KeyPurpose::kEncryptDecrypt || purpose == KeyPurpose::kSignVerify;
  }
  return purpose == KeyPurpose::kSignVerify;  // EC
}

HashAlgorithm DigestOf(SignatureAlgorithm a) {
  switch (a) {
    case SignatureAlgorithm::kRsaPssSha256:
    case SignatureAlgorithm::kRsaPkcs1Sha256:
    case SignatureAlgorithm::kEcdsaSha256:
      return HashAlgorithm::kSha256;
    case SignatureAlgorithm::kRsaPssSha384:
    case SignatureAlgorithm::kRsaPkcs1Sha384:
    case SignatureAlgorithm::kEcdsaSha384:
      return HashAlgorithm::kSha384;
    case SignatureAlgorithm::kRsaPssSha512:
    case SignatureAlgorithm::kRsaPkcs1Sha512:
    case SignatureAlgorithm::kEcdsaSha512:
      return HashAlgorithm::kSha512;
  }
  return HashAlgorithm::kSha256;
}

bool SignatureAllowed(KeyAlgorithm key, SignatureAlgorithm sig) {
  bool ecdsa = sig == SignatureAlgorithm::kEcdsaSha256 || sig == SignatureAlgorithm::kEcdsaSha384 ||
               sig == SignatureAlgorithm::kEcdsaSha512;
  return ecdsa ? IsEc(key) : IsRsa(key);
}

std::optional<HashAlgorithm> HmacHashOf(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kHmacSha224: return HashAlgorithm::kSha224;
    case KeyAlgorithm::kHmacSha256: return HashAlgorithm::kSha256;
    case KeyAlgorithm::kHmacSha384: return HashAlgorithm::kSha384;
    case KeyAlgorithm::kHmacSha512: return HashAlgorithm::kSha512;
    default: return std::nullopt;
  }
}

std::size_t DigestSize(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1: return 20;
    case HashAlgorithm::kSha224: return 28;
    case HashAlgorithm::kSha256: return 32;
    case HashAlgorithm::kSha384: return 48;
    case HashAlgorithm::kSha512: return 64;
  }
  return 0;
}

}  // namespace kms::hal
