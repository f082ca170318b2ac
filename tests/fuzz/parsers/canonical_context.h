// An independent decoder of the encryption context's canonical encoding (firmware/ciphertext_blob.h),
// for the parser fuzz targets that check the encoder against it: written apart from the encoder,
// from the format's description, so a bug would have to be made twice to go unseen.
//
// Thread-safety: a pure function.
#ifndef KMS_TESTS_FUZZ_PARSERS_CANONICAL_CONTEXT_H_
#define KMS_TESTS_FUZZ_PARSERS_CANONICAL_CONTEXT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/bytes.h"
#include "firmware/ciphertext_blob.h"

namespace kms::fuzz {

// Decodes the canonical encoding (a 32-bit big-endian pair count, then each key and value as a
// 32-bit big-endian length and its bytes, keys strictly ascending bytewise, nothing after), written
// apart from the encoder so the two check each other. nullopt when `b` is not such an encoding.
inline std::optional<firmware::EncryptionContext> DecodeCanonicalContext(ByteView b) {
  std::size_t pos = 0;
  auto u32 = [&](std::uint32_t& out) {
    if (b.size() - pos < 4) return false;
    out = (std::uint32_t{b[pos]} << 24) | (std::uint32_t{b[pos + 1]} << 16) |
          (std::uint32_t{b[pos + 2]} << 8) | std::uint32_t{b[pos + 3]};
    pos += 4;
    return true;
  };
  auto str = [&](std::string& out) {
    std::uint32_t n = 0;
    if (!u32(n) || b.size() - pos < n) return false;
    out.assign(reinterpret_cast<const char*>(b.data() + pos), n);
    pos += n;
    return true;
  };
  std::uint32_t count = 0;
  if (!u32(count)) return std::nullopt;
  firmware::EncryptionContext out;
  std::string previous;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string k, v;
    if (!str(k) || !str(v)) return std::nullopt;
    if (i > 0 && !(ToBytes(previous) < ToBytes(k))) return std::nullopt;
    previous = k;
    out.emplace(std::move(k), std::move(v));
  }
  if (pos != b.size()) return std::nullopt;
  return out;
}

}  // namespace kms::fuzz

#endif  // KMS_TESTS_FUZZ_PARSERS_CANONICAL_CONTEXT_H_
