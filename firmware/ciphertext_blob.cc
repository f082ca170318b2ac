#include "firmware/ciphertext_blob.h"

#include <algorithm>

namespace kms::firmware {
namespace {

void PutU32(Bytes& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint32_t GetU32(ByteView in) {
  return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
         std::uint32_t{in[3]};
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 9562 §5.4: version nibble 4, variant bits 10.
bool IsUuidV4(const KeyIdBytes& id) { return (id[6] >> 4) == 4 && (id[8] >> 6) == 2; }

}  // namespace

std::string FormatKeyId(const KeyIdBytes& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[id[i] >> 4]);
    out.push_back(kHex[id[i] & 0xf]);
  }
  return out;
}

std::optional<KeyIdBytes> ParseKeyId(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  KeyIdBytes id{};
  std::size_t byte = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = HexValue(text[i]);
    int lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id[byte++] = static_cast<std::uint8_t>((hi << 4) | lo);
    i += 2;
  }
  if (!IsUuidV4(id)) return std::nullopt;
  return id;
}

KeyIdBytes KeyIdFromRandom(ByteView random16) {
  KeyIdBytes id{};
  std::copy_n(random16.begin(), std::min<std::size_t>(16, random16.size()), id.begin());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0f) | 0x40);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3f) | 0x80);
  return id;
}

Status InvalidCiphertextError() { return InvalidArgumentError("", Reason::kInvalidCiphertext); }

Bytes CiphertextHeader(const KeyIdBytes& key_id, std::uint32_t key_version) {
  Bytes out;
  out.reserve(kCiphertextHeaderSize);
  out.push_back(kCiphertextFormatV1);
  out.insert(out.end(), key_id.begin(), key_id.end());
  PutU32(out, key_version);
  return out;
}

Bytes CanonicalEncryptionContext(const EncryptionContext& context) {
  Bytes out;
  PutU32(out, static_cast<std::uint32_t>(context.size()));
  // std::map iterates in ascending std::string order, which is bytewise (char_traits<char>::compare
  // compares as unsigned char).
  for (const auto& [k, v] : context) {
    PutU32(out, static_cast<std::uint32_t>(k.size()));
    out.insert(out.end(), k.begin(), k.end());
    PutU32(out, static_cast<std::uint32_t>(v.size()));
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

Bytes CiphertextBlob::Header() const { return CiphertextHeader(key_id, key_version); }

Bytes CiphertextBlob::Aad(const EncryptionContext& context) const {
  Bytes aad = Header();
  Bytes ctx = CanonicalEncryptionContext(context);
  aad.insert(aad.end(), ctx.begin(), ctx.end());
  return aad;
}

Bytes CiphertextBlob::Serialize() const {
  Bytes out = Header();
  out.reserve(kCiphertextOverhead + ciphertext.size());
  out.insert(out.end(), iv.begin(), iv.end());
  out.insert(out.end(), ciphertext.begin(), ciphertext.end());
  out.insert(out.end(), tag.begin(), tag.end());
  return out;
}

StatusOr<CiphertextBlob> ParseCiphertextBlob(ByteView blob) {
  if (blob.size() < kCiphertextOverhead + 1 || blob.size() > kMaxCiphertextBlobSize) {
    return InvalidCiphertextError();
  }
  if (blob[0] != kCiphertextFormatV1) return InvalidCiphertextError();
  CiphertextBlob out;
  std::copy_n(blob.begin() + 1, 16, out.key_id.begin());
  if (!IsUuidV4(out.key_id)) return InvalidCiphertextError();
  out.key_version = GetU32(blob.subspan(17, 4));
  if (out.key_version == 0) return InvalidCiphertextError();
  std::size_t n = blob.size() - kCiphertextOverhead;
  auto iv = blob.subspan(kCiphertextHeaderSize, kCiphertextIvSize);
  auto ct = blob.subspan(kCiphertextHeaderSize + kCiphertextIvSize, n);
  auto tag = blob.subspan(kCiphertextHeaderSize + kCiphertextIvSize + n, kCiphertextTagSize);
  out.iv.assign(iv.begin(), iv.end());
  out.ciphertext.assign(ct.begin(), ct.end());
  out.tag.assign(tag.begin(), tag.end());
  return out;
}

}  // namespace kms::firmware
