// libFuzzer target: the symmetric ciphertext blob (firmware/ciphertext_blob.h) and the canonical
// encryption-context encoding that is part of its AAD.
//
// The whole input is parsed as a blob; then the same bytes drive two encryption contexts and a key id.
// Invariants (abort with a message naming the one that broke):
//  * ParseCiphertextBlob accepts exactly what a direct reading of the layout accepts (format 0x01,
//    length 50..6144, a version-4 UUID key id, key version >= 1), and every refusal is the one
//    InvalidCiphertextError (InvalidArgument, kInvalidCiphertext, empty message: no oracle);
//  * round trip: a parsed blob serialised again is the same bytes, and its Header() is the first 21;
//  * CanonicalEncryptionContext decodes back to the context it encodes (so it is injective), two
//    different contexts never share an encoding, and the AAD is the header followed by it;
//  * FormatKeyId and ParseKeyId invert each other on version-4 ids.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/status.h"
#include "firmware/ciphertext_blob.h"
#include "tests/fuzz/parsers/canonical_context.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

using kms::Bytes;
using kms::ByteView;
using kms::firmware::EncryptionContext;
using kms::firmware::KeyIdBytes;

bool IsInvalidCiphertext(const kms::Status& s) {
  return s.code() == kms::StatusCode::kInvalidArgument &&
         s.reason() == kms::Reason::kInvalidCiphertext && s.message().empty();
}

// The layout read straight from the header comment.
bool ReferenceAccepts(ByteView b) {
  if (b.size() < 50 || b.size() > 6144) return false;
  if (b[0] != 0x01) return false;
  if ((b[1 + 6] & 0xf0) != 0x40) return false;  // UUID version nibble
  if ((b[1 + 8] & 0xc0) != 0x80) return false;  // UUID variant 10
  const std::uint32_t version = (std::uint32_t{b[17]} << 24) | (std::uint32_t{b[18]} << 16) |
                                (std::uint32_t{b[19]} << 8) | std::uint32_t{b[20]};
  return version != 0;
}

EncryptionContext ContextFrom(kms::fuzz::ByteReader& in) {
  EncryptionContext c;
  const std::size_t pairs = in.Range(0, 6);
  for (std::size_t i = 0; i < pairs; ++i) {
    std::string k = in.String(24);
    c[std::move(k)] = in.String(24);
  }
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kms::firmware;
  const ByteView input(data, size);

  // ---- the blob ----
  auto parsed = ParseCiphertextBlob(input);
  KMS_FUZZ_CHECK(parsed.has_value() == ReferenceAccepts(input),
                 "ParseCiphertextBlob accepts exactly the documented layout");
  if (parsed.has_value()) {
    const CiphertextBlob& blob = *parsed;
    KMS_FUZZ_CHECK(blob.Serialize() == Bytes(input.begin(), input.end()),
                   "a parsed blob serialises to the same bytes");
    KMS_FUZZ_CHECK(blob.Header() == Bytes(input.begin(), input.begin() + kCiphertextHeaderSize),
                   "Header() is the blob's first 21 bytes");
    KMS_FUZZ_CHECK(blob.iv.size() == kCiphertextIvSize && blob.tag.size() == kCiphertextTagSize &&
                       blob.ciphertext.size() == size - kCiphertextOverhead,
                   "field sizes follow the layout");
    KMS_FUZZ_CHECK(ParseKeyId(FormatKeyId(blob.key_id)) == blob.key_id,
                   "a parsed key id formats and parses back");
  } else {
    KMS_FUZZ_CHECK(IsInvalidCiphertext(parsed.error()),
                   "every refusal is the one InvalidCiphertextError, without detail");
  }

  // ---- key id text ----
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto id = ParseKeyId(text.substr(0, 36)); id.has_value()) {
    std::string lower(text.substr(0, 36));
    for (char& c : lower) c = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
    KMS_FUZZ_CHECK(FormatKeyId(*id) == lower, "ParseKeyId reads the text FormatKeyId prints");
  }
  if (size >= 16) {
    const KeyIdBytes id = KeyIdFromRandom(input.first(16));
    KMS_FUZZ_CHECK(ParseKeyId(FormatKeyId(id)) == id, "version-4 ids round-trip through text");
  }

  // ---- canonical encryption context ----
  kms::fuzz::ByteReader in(data, size);
  const EncryptionContext a = ContextFrom(in);
  EncryptionContext b = in.Bool() ? a : ContextFrom(in);
  if (in.Bool() && !b.empty()) {
    // A near miss: one value or key changed by one byte, where collisions would hide.
    auto it = b.begin();
    std::string k = it->first;
    std::string v = it->second;
    b.erase(it);
    if (in.Bool()) {
      v.push_back(static_cast<char>(in.Byte()));
    } else {
      k.push_back(static_cast<char>(in.Byte()));
    }
    b[k] = v;
  }
  const Bytes ea = CanonicalEncryptionContext(a);
  const Bytes eb = CanonicalEncryptionContext(b);
  KMS_FUZZ_CHECK(kms::fuzz::DecodeCanonicalContext(ea) == a, "the canonical encoding decodes to its context");
  KMS_FUZZ_CHECK((ea == eb) == (a == b), "two contexts share an encoding only when equal");

  CiphertextBlob blob;
  if (size >= 16) blob.key_id = KeyIdFromRandom(input.first(16));
  blob.key_version = in.U32();
  Bytes aad = blob.Header();
  aad.insert(aad.end(), ea.begin(), ea.end());
  KMS_FUZZ_CHECK(blob.Aad(a) == aad, "the AAD is the header followed by the canonical context");
  return 0;
}
