// The AWS KMS key vocabulary: key specs, key usages, encryption/signing/MAC algorithms, data key specs,
// message types and key states, with their exact AWS wire names (docs/aws-kms-protocol.md "Key
// specs and algorithms"), AWS's compatibility table (which usage and which algorithms each key spec
// admits), and the mapping onto the HAL's device vocabulary (hal/key_types.h).
//
// Parsing is strict and case-sensitive, as AWS's enum validation is. A name AWS defines but this appliance
// does not implement (ECC_NIST_EDWARDS25519, ML_DSA_*, SM2, KEY_AGREEMENT, SM2PKE, ...) parses to
// Unimplemented/kUnsupportedOperation; a name AWS does not define is InvalidArgument (ValidationException)
// with AWS's "1 validation error detected: ..." wording, naming the camelCase member `field`.
//
// Thread-safety: pure functions over constant tables.
#ifndef KMS_FIRMWARE_KEY_SPEC_H_
#define KMS_FIRMWARE_KEY_SPEC_H_

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hal/key_types.h"

namespace kms::firmware {

enum class KeySpec {
  kSymmetricDefault,
  kRsa2048,
  kRsa3072,
  kRsa4096,
  kEccNistP256,
  kEccNistP384,
  kEccNistP521,
  kEccSecgP256k1,
  kHmac224,
  kHmac256,
  kHmac384,
  kHmac512,
};

enum class KeyUsage { kEncryptDecrypt, kSignVerify, kGenerateVerifyMac };

enum class EncryptionAlgorithm { kSymmetricDefault, kRsaesOaepSha1, kRsaesOaepSha256 };

enum class SigningAlgorithm {
  kRsassaPssSha256,
  kRsassaPssSha384,
  kRsassaPssSha512,
  kRsassaPkcs1V15Sha256,
  kRsassaPkcs1V15Sha384,
  kRsassaPkcs1V15Sha512,
  kEcdsaSha256,
  kEcdsaSha384,
  kEcdsaSha512,
};

enum class MacAlgorithm { kHmacSha224, kHmacSha256, kHmacSha384, kHmacSha512 };

// GenerateDataKey's KeySpec (AES_256 = 32 bytes, AES_128 = 16 bytes).
enum class DataKeySpec { kAes256, kAes128 };

// Sign/Verify MessageType. EXTERNAL_MU (ML-DSA only) is not offered.
enum class MessageType { kRaw, kDigest };

// AWS KeyState values this appliance reaches (docs/aws-kms-protocol.md "Key states").
// kUnavailable: a stored state this firmware does not know; such a key is neither used nor changed.
enum class KeyState { kEnabled, kDisabled, kPendingDeletion, kUnavailable };

// RotationsListEntry.RotationType.
enum class RotationType { kAutomatic, kOnDemand };

std::string_view KeySpecName(KeySpec s);
std::string_view KeyUsageName(KeyUsage u);
std::string_view EncryptionAlgorithmName(EncryptionAlgorithm a);
std::string_view SigningAlgorithmName(SigningAlgorithm a);
std::string_view MacAlgorithmName(MacAlgorithm a);
std::string_view DataKeySpecName(DataKeySpec s);
std::string_view MessageTypeName(MessageType t);
std::string_view KeyStateName(KeyState s);
std::string_view RotationTypeName(RotationType t);

// `field` is the camelCase member name used in the ValidationException text ("keySpec", "keyUsage",
// "signingAlgorithm", ...).
StatusOr<KeySpec> ParseKeySpec(std::string_view name, std::string_view field = "keySpec");
StatusOr<KeyUsage> ParseKeyUsage(std::string_view name, std::string_view field = "keyUsage");
StatusOr<EncryptionAlgorithm> ParseEncryptionAlgorithm(std::string_view name,
                                                       std::string_view field = "encryptionAlgorithm");
StatusOr<SigningAlgorithm> ParseSigningAlgorithm(std::string_view name,
                                                 std::string_view field = "signingAlgorithm");
StatusOr<MacAlgorithm> ParseMacAlgorithm(std::string_view name,
                                         std::string_view field = "macAlgorithm");
StatusOr<DataKeySpec> ParseDataKeySpec(std::string_view name, std::string_view field = "keySpec");
// DataKeyPairSpec names are the asymmetric KeySpec names (RSA_*, ECC_*).
StatusOr<KeySpec> ParseDataKeyPairSpec(std::string_view name,
                                       std::string_view field = "keyPairSpec");
StatusOr<MessageType> ParseMessageType(std::string_view name,
                                       std::string_view field = "messageType");

// --- AWS's key spec compatibility table ----------------------------------------------------------
bool IsAsymmetric(KeySpec s);
bool IsHmacSpec(KeySpec s);
// Whether CreateKey may combine `spec` with `usage`.
bool UsageAllowed(KeySpec spec, KeyUsage usage);
// What DescribeKey advertises for a key of `spec` and `usage` (empty lists where not applicable).
// The key service further drops the encryption algorithms its HSM cannot perform (RSA-OAEP hashes
// missing from hal::Capabilities::oaep_hashes).
std::vector<EncryptionAlgorithm> EncryptionAlgorithmsFor(KeySpec spec, KeyUsage usage);
std::vector<SigningAlgorithm> SigningAlgorithmsFor(KeySpec spec, KeyUsage usage);
std::vector<MacAlgorithm> MacAlgorithmsFor(KeySpec spec, KeyUsage usage);
// The largest RSA-OAEP plaintext for `spec` (docs/aws-kms-protocol.md "Limits": SHA_1 214/342/470,
// SHA_256 190/318/446); 0 otherwise.
std::size_t MaxRsaOaepPlaintext(KeySpec spec, EncryptionAlgorithm algorithm);

// --- mapping onto the HAL ---------------------------------------------------------------------------
hal::KeyAlgorithm ToHalAlgorithm(KeySpec s);
hal::KeyPurpose ToHalPurpose(KeyUsage u);
hal::SignatureAlgorithm ToHalSignature(SigningAlgorithm a);
// The OAEP hash of an RSAES algorithm; nullopt for SYMMETRIC_DEFAULT.
std::optional<hal::HashAlgorithm> OaepHashOf(EncryptionAlgorithm a);
// The hash an HMAC MacAlgorithm uses; and the MacAlgorithm an HMAC key spec admits (one-to-one).
hal::HashAlgorithm MacHashOf(MacAlgorithm a);
std::optional<MacAlgorithm> MacAlgorithmOf(KeySpec s);
// Bytes of a data key of `s` (AES_256: 32, AES_128: 16).
std::size_t DataKeySpecBytes(DataKeySpec s);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_KEY_SPEC_H_
