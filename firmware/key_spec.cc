#include "firmware/key_spec.h"

#include <array>
#include <string>
#include <utility>

namespace kms::firmware {
namespace {

template <typename E>
struct Named {
  E value;
  std::string_view name;
};

constexpr std::array<Named<KeySpec>, 12> kKeySpecs{{
    {KeySpec::kSymmetricDefault, "SYMMETRIC_DEFAULT"},
    {KeySpec::kRsa2048, "RSA_2048"},
    {KeySpec::kRsa3072, "RSA_3072"},
    {KeySpec::kRsa4096, "RSA_4096"},
    {KeySpec::kEccNistP256, "ECC_NIST_P256"},
    {KeySpec::kEccNistP384, "ECC_NIST_P384"},
    {KeySpec::kEccNistP521, "ECC_NIST_P521"},
    {KeySpec::kEccSecgP256k1, "ECC_SECG_P256K1"},
    {KeySpec::kHmac224, "HMAC_224"},
    {KeySpec::kHmac256, "HMAC_256"},
    {KeySpec::kHmac384, "HMAC_384"},
    {KeySpec::kHmac512, "HMAC_512"},
}};
// AWS names (docs/aws-kms-protocol.md "Key specs and algorithms") the appliance knows but does not
// implement.
constexpr std::array<std::string_view, 6> kUnsupportedKeySpecs{
    "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "SM2", "ECC_NIST_EDWARDS448"};

constexpr std::array<Named<KeyUsage>, 3> kKeyUsages{{
    {KeyUsage::kEncryptDecrypt, "ENCRYPT_DECRYPT"},
    {KeyUsage::kSignVerify, "SIGN_VERIFY"},
    {KeyUsage::kGenerateVerifyMac, "GENERATE_VERIFY_MAC"},
}};
constexpr std::array<std::string_view, 1> kUnsupportedKeyUsages{"KEY_AGREEMENT"};

constexpr std::array<Named<EncryptionAlgorithm>, 3> kEncryptionAlgorithms{{
    {EncryptionAlgorithm::kSymmetricDefault, "SYMMETRIC_DEFAULT"},
    {EncryptionAlgorithm::kRsaesOaepSha1, "RSAES_OAEP_SHA_1"},
    {EncryptionAlgorithm::kRsaesOaepSha256, "RSAES_OAEP_SHA_256"},
}};
constexpr std::array<std::string_view, 1> kUnsupportedEncryptionAlgorithms{"SM2PKE"};

constexpr std::array<Named<SigningAlgorithm>, 9> kSigningAlgorithms{{
    {SigningAlgorithm::kRsassaPssSha256, "RSASSA_PSS_SHA_256"},
    {SigningAlgorithm::kRsassaPssSha384, "RSASSA_PSS_SHA_384"},
    {SigningAlgorithm::kRsassaPssSha512, "RSASSA_PSS_SHA_512"},
    {SigningAlgorithm::kRsassaPkcs1V15Sha256, "RSASSA_PKCS1_V1_5_SHA_256"},
    {SigningAlgorithm::kRsassaPkcs1V15Sha384, "RSASSA_PKCS1_V1_5_SHA_384"},
    {SigningAlgorithm::kRsassaPkcs1V15Sha512, "RSASSA_PKCS1_V1_5_SHA_512"},
    {SigningAlgorithm::kEcdsaSha256, "ECDSA_SHA_256"},
    {SigningAlgorithm::kEcdsaSha384, "ECDSA_SHA_384"},
    {SigningAlgorithm::kEcdsaSha512, "ECDSA_SHA_512"},
}};
constexpr std::array<std::string_view, 4> kUnsupportedSigningAlgorithms{
    "ED25519_SHA_512", "ED25519_PH_SHA_512", "ML_DSA_SHAKE_256", "SM2DSA"};

constexpr std::array<Named<MacAlgorithm>, 4> kMacAlgorithms{{
    {MacAlgorithm::kHmacSha224, "HMAC_SHA_224"},
    {MacAlgorithm::kHmacSha256, "HMAC_SHA_256"},
    {MacAlgorithm::kHmacSha384, "HMAC_SHA_384"},
    {MacAlgorithm::kHmacSha512, "HMAC_SHA_512"},
}};

constexpr std::array<Named<DataKeySpec>, 2> kDataKeySpecs{{
    {DataKeySpec::kAes256, "AES_256"},
    {DataKeySpec::kAes128, "AES_128"},
}};

constexpr std::array<Named<MessageType>, 2> kMessageTypes{{
    {MessageType::kRaw, "RAW"},
    {MessageType::kDigest, "DIGEST"},
}};
constexpr std::array<std::string_view, 1> kUnsupportedMessageTypes{"EXTERNAL_MU"};

template <typename E, std::size_t N>
std::string_view NameOf(const std::array<Named<E>, N>& table, E value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "UNKNOWN";
}

// AWS's ValidationException wording for an enum member (docs/aws-kms-protocol.md "Errors").
template <typename E, std::size_t N, std::size_t M>
Status EnumError(std::string_view name, std::string_view field, const std::array<Named<E>, N>& table,
                 const std::array<std::string_view, M>& unsupported) {
  for (std::string_view u : unsupported) {
    if (u == name) {
      return UnimplementedError(std::string(name) + " is not supported by this key store.",
                                Reason::kUnsupportedOperation);
    }
  }
  std::string set;
  for (const auto& entry : table) {
    if (!set.empty()) set += ", ";
    set += entry.name;
  }
  for (std::string_view u : unsupported) {
    set += ", ";
    set += u;
  }
  return InvalidArgumentError("1 validation error detected: Value '" + std::string(name) + "' at '" +
                              std::string(field) +
                              "' failed to satisfy constraint: Member must satisfy enum value set: [" +
                              set + "]");
}

template <typename E, std::size_t N, std::size_t M>
StatusOr<E> Parse(std::string_view name, std::string_view field, const std::array<Named<E>, N>& table,
                  const std::array<std::string_view, M>& unsupported) {
  for (const auto& entry : table) {
    if (entry.name == name) return entry.value;
  }
  return EnumError(name, field, table, unsupported);
}

constexpr std::array<std::string_view, 0> kNone{};

}  // namespace

std::string_view KeySpecName(KeySpec s) { return NameOf(kKeySpecs, s); }
std::string_view KeyUsageName(KeyUsage u) { return NameOf(kKeyUsages, u); }
std::string_view EncryptionAlgorithmName(EncryptionAlgorithm a) {
  return NameOf(kEncryptionAlgorithms, a);
}
std::string_view SigningAlgorithmName(SigningAlgorithm a) { return NameOf(kSigningAlgorithms, a); }
std::string_view MacAlgorithmName(MacAlgorithm a) { return NameOf(kMacAlgorithms, a); }
std::string_view DataKeySpecName(DataKeySpec s) { return NameOf(kDataKeySpecs, s); }
std::string_view MessageTypeName(MessageType t) { return NameOf(kMessageTypes, t); }
std::string_view KeyStateName(KeyState s) {
  switch (s) {
    case KeyState::kEnabled: return "Enabled";
    case KeyState::kDisabled: return "Disabled";
    case KeyState::kPendingDeletion: return "PendingDeletion";
    case KeyState::kUnavailable: return "Unavailable";
  }
  return "Unavailable";
}
std::string_view RotationTypeName(RotationType t) {
  return t == RotationType::kAutomatic ? "AUTOMATIC" : "ON_DEMAND";
}

StatusOr<KeySpec> ParseKeySpec(std::string_view name, std::string_view field) {
  return Parse(name, field, kKeySpecs, kUnsupportedKeySpecs);
}
StatusOr<KeyUsage> ParseKeyUsage(std::string_view name, std::string_view field) {
  return Parse(name, field, kKeyUsages, kUnsupportedKeyUsages);
}
StatusOr<EncryptionAlgorithm> ParseEncryptionAlgorithm(std::string_view name,
                                                       std::string_view field) {
  return Parse(name, field, kEncryptionAlgorithms, kUnsupportedEncryptionAlgorithms);
}
StatusOr<SigningAlgorithm> ParseSigningAlgorithm(std::string_view name, std::string_view field) {
  return Parse(name, field, kSigningAlgorithms, kUnsupportedSigningAlgorithms);
}
StatusOr<MacAlgorithm> ParseMacAlgorithm(std::string_view name, std::string_view field) {
  return Parse(name, field, kMacAlgorithms, kNone);
}
StatusOr<DataKeySpec> ParseDataKeySpec(std::string_view name, std::string_view field) {
  return Parse(name, field, kDataKeySpecs, kNone);
}
StatusOr<KeySpec> ParseDataKeyPairSpec(std::string_view name, std::string_view field) {
  static constexpr std::array<Named<KeySpec>, 7> kPairSpecs{{
      {KeySpec::kRsa2048, "RSA_2048"},
      {KeySpec::kRsa3072, "RSA_3072"},
      {KeySpec::kRsa4096, "RSA_4096"},
      {KeySpec::kEccNistP256, "ECC_NIST_P256"},
      {KeySpec::kEccNistP384, "ECC_NIST_P384"},
      {KeySpec::kEccNistP521, "ECC_NIST_P521"},
      {KeySpec::kEccSecgP256k1, "ECC_SECG_P256K1"},
  }};
  static constexpr std::array<std::string_view, 2> kUnsupportedPairSpecs{"ECC_NIST_EDWARDS25519",
                                                                         "SM2"};
  return Parse(name, field, kPairSpecs, kUnsupportedPairSpecs);
}
StatusOr<MessageType> ParseMessageType(std::string_view name, std::string_view field) {
  return Parse(name, field, kMessageTypes, kUnsupportedMessageTypes);
}

bool IsAsymmetric(KeySpec s) {
  switch (s) {
    case KeySpec::kRsa2048:
    case KeySpec::kRsa3072:
    case KeySpec::kRsa4096:
    case KeySpec::kEccNistP256:
    case KeySpec::kEccNistP384:
    case KeySpec::kEccNistP521:
    case KeySpec::kEccSecgP256k1:
      return true;
    default:
      return false;
  }
}

bool IsHmacSpec(KeySpec s) {
  return s == KeySpec::kHmac224 || s == KeySpec::kHmac256 || s == KeySpec::kHmac384 ||
         s == KeySpec::kHmac512;
}

static bool IsRsaSpec(KeySpec s) {
  return s == KeySpec::kRsa2048 || s == KeySpec::kRsa3072 || s == KeySpec::kRsa4096;
}

bool UsageAllowed(KeySpec spec, KeyUsage usage) {
  if (spec == KeySpec::kSymmetricDefault) return usage == KeyUsage::kEncryptDecrypt;
  if (IsHmacSpec(spec)) return usage == KeyUsage::kGenerateVerifyMac;
  if (IsRsaSpec(spec)) return usage == KeyUsage::kEncryptDecrypt || usage == KeyUsage::kSignVerify;
  return usage == KeyUsage::kSignVerify;  // ECC
}

std::vector<EncryptionAlgorithm> EncryptionAlgorithmsFor(KeySpec spec, KeyUsage usage) {
  if (usage != KeyUsage::kEncryptDecrypt) return {};
  if (spec == KeySpec::kSymmetricDefault) return {EncryptionAlgorithm::kSymmetricDefault};
  if (IsRsaSpec(spec)) {
    return {EncryptionAlgorithm::kRsaesOaepSha1, EncryptionAlgorithm::kRsaesOaepSha256};
  }
  return {};
}

std::vector<SigningAlgorithm> SigningAlgorithmsFor(KeySpec spec, KeyUsage usage) {
  if (usage != KeyUsage::kSignVerify) return {};
  switch (spec) {
    case KeySpec::kRsa2048:
    case KeySpec::kRsa3072:
    case KeySpec::kRsa4096:
      return {SigningAlgorithm::kRsassaPssSha256,      SigningAlgorithm::kRsassaPssSha384,
              SigningAlgorithm::kRsassaPssSha512,      SigningAlgorithm::kRsassaPkcs1V15Sha256,
              SigningAlgorithm::kRsassaPkcs1V15Sha384, SigningAlgorithm::kRsassaPkcs1V15Sha512};
    case KeySpec::kEccNistP256:
    case KeySpec::kEccSecgP256k1:
      return {SigningAlgorithm::kEcdsaSha256};
    case KeySpec::kEccNistP384:
      return {SigningAlgorithm::kEcdsaSha384};
    case KeySpec::kEccNistP521:
      return {SigningAlgorithm::kEcdsaSha512};
    default:
      return {};
  }
}

std::vector<MacAlgorithm> MacAlgorithmsFor(KeySpec spec, KeyUsage usage) {
  if (usage != KeyUsage::kGenerateVerifyMac) return {};
  auto mac = MacAlgorithmOf(spec);
  if (!mac) return {};
  return {*mac};
}

std::size_t MaxRsaOaepPlaintext(KeySpec spec, EncryptionAlgorithm algorithm) {
  // Modulus bytes - 2*hLen - 2 (RFC 8017 §7.1.1).
  std::size_t k = 0;
  switch (spec) {
    case KeySpec::kRsa2048: k = 256; break;
    case KeySpec::kRsa3072: k = 384; break;
    case KeySpec::kRsa4096: k = 512; break;
    default: return 0;
  }
  switch (algorithm) {
    case EncryptionAlgorithm::kRsaesOaepSha1: return k - 2 * 20 - 2;
    case EncryptionAlgorithm::kRsaesOaepSha256: return k - 2 * 32 - 2;
    default: return 0;
  }
}

hal::KeyAlgorithm ToHalAlgorithm(KeySpec s) {
  switch (s) {
    case KeySpec::kSymmetricDefault: return hal::KeyAlgorithm::kAes256;
    case KeySpec::kRsa2048: return hal::KeyAlgorithm::kRsa2048;
    case KeySpec::kRsa3072: return hal::KeyAlgorithm::kRsa3072;
    case KeySpec::kRsa4096: return hal::KeyAlgorithm::kRsa4096;
    case KeySpec::kEccNistP256: return hal::KeyAlgorithm::kEcP256;
    case KeySpec::kEccNistP384: return hal::KeyAlgorithm::kEcP384;
    case KeySpec::kEccNistP521: return hal::KeyAlgorithm::kEcP521;
    case KeySpec::kEccSecgP256k1: return hal::KeyAlgorithm::kEcSecp256k1;
    case KeySpec::kHmac224: return hal::KeyAlgorithm::kHmacSha224;
    case KeySpec::kHmac256: return hal::KeyAlgorithm::kHmacSha256;
    case KeySpec::kHmac384: return hal::KeyAlgorithm::kHmacSha384;
    case KeySpec::kHmac512: return hal::KeyAlgorithm::kHmacSha512;
  }
  return hal::KeyAlgorithm::kAes256;
}

hal::KeyPurpose ToHalPurpose(KeyUsage u) {
  switch (u) {
    case KeyUsage::kEncryptDecrypt: return hal::KeyPurpose::kEncryptDecrypt;
    case KeyUsage::kSignVerify: return hal::KeyPurpose::kSignVerify;
    case KeyUsage::kGenerateVerifyMac: return hal::KeyPurpose::kMac;
  }
  return hal::KeyPurpose::kEncryptDecrypt;
}

hal::SignatureAlgorithm ToHalSignature(SigningAlgorithm a) {
  switch (a) {
    case SigningAlgorithm::kRsassaPssSha256: return hal::SignatureAlgorithm::kRsaPssSha256;
    case SigningAlgorithm::kRsassaPssSha384: return hal::SignatureAlgorithm::kRsaPssSha384;
    case SigningAlgorithm::kRsassaPssSha512: return hal::SignatureAlgorithm::kRsaPssSha512;
    case SigningAlgorithm::kRsassaPkcs1V15Sha256: return hal::SignatureAlgorithm::kRsaPkcs1Sha256;
    case SigningAlgorithm::kRsassaPkcs1V15Sha384: return hal::SignatureAlgorithm::kRsaPkcs1Sha384;
    case SigningAlgorithm::kRsassaPkcs1V15Sha512: return hal::SignatureAlgorithm::kRsaPkcs1Sha512;
    case SigningAlgorithm::kEcdsaSha256: return hal::SignatureAlgorithm::kEcdsaSha256;
    case SigningAlgorithm::kEcdsaSha384: return hal::SignatureAlgorithm::kEcdsaSha384;
    case SigningAlgorithm::kEcdsaSha512: return hal::SignatureAlgorithm::kEcdsaSha512;
  }
  return hal::SignatureAlgorithm::kRsaPssSha256;
}

std::optional<hal::HashAlgorithm> OaepHashOf(EncryptionAlgorithm a) {
  switch (a) {
    case EncryptionAlgorithm::kRsaesOaepSha1: return hal::HashAlgorithm::kSha1;
    case EncryptionAlgorithm::kRsaesOaepSha256: return hal::HashAlgorithm::kSha256;
    default: return std::nullopt;
  }
}

hal::HashAlgorithm MacHashOf(MacAlgorithm a) {
  switch (a) {
    case MacAlgorithm::kHmacSha224: return hal::HashAlgorithm::kSha224;
    case MacAlgorithm::kHmacSha256: return hal::HashAlgorithm::kSha256;
    case MacAlgorithm::kHmacSha384: return hal::HashAlgorithm::kSha384;
    case MacAlgorithm::kHmacSha512: return hal::HashAlgorithm::kSha512;
  }
  return hal::HashAlgorithm::kSha256;
}

std::optional<MacAlgorithm> MacAlgorithmOf(KeySpec s) {
  switch (s) {
    case KeySpec::kHmac224: return MacAlgorithm::kHmacSha224;
    case KeySpec::kHmac256: return MacAlgorithm::kHmacSha256;
    case KeySpec::kHmac384: return MacAlgorithm::kHmacSha384;
    case KeySpec::kHmac512: return MacAlgorithm::kHmacSha512;
    default: return std::nullopt;
  }
}

std::size_t DataKeySpecBytes(DataKeySpec s) { return s == DataKeySpec::kAes256 ? 32 : 16; }

}  // namespace kms::firmware
