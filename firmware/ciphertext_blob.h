// The symmetric ciphertext blob: what Encrypt and GenerateDataKey return as `CiphertextBlob`, and what
// Decrypt and ReEncrypt accept without a KeyId (docs/aws-kms-protocol.md "Ciphertext and encryption
// context"; docs/architecture.md "Ciphertext blob"; docs/ciphertext-format.md).
//
// Byte layout, format 0x01 (all integers big-endian):
//
//   offset  size  field
//   0       1     format            0x01
//   1       16    key id            the customer key's UUID, binary (RFC 9562 §4), version 4 variant 10
//   17      4     key version       uint32, >= 1: which backing key version encrypted it
//   21      12    iv                AES-GCM IV from the HSM RNG (NIST SP 800-38D §8.2.2)
//   33      n     ciphertext        AES-256-GCM of the plaintext, n = plaintext length (1..4096)
//   33+n    16    tag               GCM tag, 128 bits (SP 800-38D §5.2.1.2)
//
//   header = bytes [0, 21)   (format, key id, key version)
//   AAD    = header || CanonicalEncryptionContext(context)
//
// CanonicalEncryptionContext: uint32 pair count, then for every pair in ascending bytewise order of the
// key: uint32 key length, key bytes (UTF-8), uint32 value length, value bytes (UTF-8). Keys are unique
// (a map), so the order is total and the encoding injective: two contexts give the same AAD only when
// they are equal, whatever order the caller listed them in. An absent context is the empty map.
//
// Overhead is 49 bytes: a 32-byte data key gives an 81-byte blob (108 base64 characters), a 4096-byte
// plaintext 4145 bytes, under AWS's 6144-byte CiphertextBlob limit.
//
// Parsing is strict: a wrong format byte, a length outside [50, 6144], a key id that is not a version-4
// UUID or a key version of 0 all give InvalidArgument/kInvalidCiphertext with an EMPTY message, the same
// status a failed GCM tag gives, so a caller learns nothing about why (no oracle).
//
// Thread-safety: value types and pure functions.
#ifndef KMS_FIRMWARE_CIPHERTEXT_BLOB_H_
#define KMS_FIRMWARE_CIPHERTEXT_BLOB_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"

namespace kms::firmware {

using KeyIdBytes = std::array<std::uint8_t, 16>;
// AWS's EncryptionContext: map<string,string>. std::map keeps it sorted by key, bytewise.
using EncryptionContext = std::map<std::string, std::string>;

// "1234abcd-12ab-4bcd-8def-1234567890ab": lowercase, 36 characters.
std::string FormatKeyId(const KeyIdBytes& id);
// Accepts exactly the 36-character hyphenated form of a version-4 UUID (either hex case); nullopt otherwise.
std::optional<KeyIdBytes> ParseKeyId(std::string_view text);
// Makes a version-4 UUID from 16 random bytes (sets the version and variant bits).
KeyIdBytes KeyIdFromRandom(ByteView random16);

inline constexpr std::uint8_t kCiphertextFormatV1 = 0x01;
inline constexpr std::size_t kCiphertextHeaderSize = 1 + 16 + 4;
inline constexpr std::size_t kCiphertextIvSize = 12;
inline constexpr std::size_t kCiphertextTagSize = 16;
inline constexpr std::size_t kCiphertextOverhead =
    kCiphertextHeaderSize + kCiphertextIvSize + kCiphertextTagSize;
inline constexpr std::size_t kMaxCiphertextBlobSize = 6144;  // AWS CiphertextBlob [1-6144]

struct CiphertextBlob {
  KeyIdBytes key_id{};
  std::uint32_t key_version = 0;
  Bytes iv;          // 12 bytes
  Bytes ciphertext;  // >= 1 byte
  Bytes tag;         // 16 bytes

  // The 21 header bytes (format, key id, version): the first part of the AAD.
  Bytes Header() const;
  // Header() || CanonicalEncryptionContext(context).
  Bytes Aad(const EncryptionContext& context) const;
  Bytes Serialize() const;
};

// The header of a blob about to be made, for computing its AAD before the IV exists.
Bytes CiphertextHeader(const KeyIdBytes& key_id, std::uint32_t key_version);
Bytes CanonicalEncryptionContext(const EncryptionContext& context);

// Strict parse; any malformation is InvalidCiphertextError().
StatusOr<CiphertextBlob> ParseCiphertextBlob(ByteView blob);

// The one InvalidCiphertextException status: InvalidArgument, kInvalidCiphertext, empty message.
Status InvalidCiphertextError();

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_CIPHERTEXT_BLOB_H_
