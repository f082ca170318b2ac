#include "firmware/ciphertext_blob.h"

#include <catch2/catch.hpp>

namespace kms::firmware {
namespace {

KeyIdBytes SomeId() {
  Bytes r(16);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = static_cast<std::uint8_t>(0xA0 + i);
  return KeyIdFromRandom(r);
}

CiphertextBlob SomeBlob(std::size_t n) {
  CiphertextBlob b;
  b.key_id = SomeId();
  b.key_version = 7;
  b.iv = Bytes(12, 0x11);
  b.ciphertext = Bytes(n, 0x22);
  b.tag = Bytes(16, 0x33);
  return b;
}

void ExpectInvalid(ByteView bytes) {
  auto parsed = ParseCiphertextBlob(bytes);
  REQUIRE_FALSE(parsed.has_value());
  CHECK(parsed.error() == InvalidCiphertextError());
  CHECK(parsed.error().message().empty());
  CHECK(parsed.error().reason() == Reason::kInvalidCiphertext);
}

TEST_CASE("the blob layout is as documented", "[unit]") {
  CiphertextBlob b = SomeBlob(32);
  Bytes out = b.Serialize();
  // A 32-byte data key: 49 bytes of overhead, well under the 190-byte budget
  // (docs/ciphertext-format.md "Sizes").
  CHECK(out.size() == 81);
  CHECK(out.size() < 190);
  CHECK(out[0] == 0x01);
  CHECK(std::equal(b.key_id.begin(), b.key_id.end(), out.begin() + 1));
  CHECK(out[17] == 0);
  CHECK(out[20] == 7);
  CHECK(out[21] == 0x11);
  CHECK(out[33] == 0x22);
  CHECK(out[65] == 0x33);
  CHECK(b.Header() == Bytes(out.begin(), out.begin() + 21));
  CHECK(SomeBlob(4096).Serialize().size() == 4145);
}

TEST_CASE("blobs parse back exactly", "[unit]") {
  CiphertextBlob b = SomeBlob(5);
  auto parsed = ParseCiphertextBlob(b.Serialize());
  REQUIRE(parsed.has_value());
  CHECK(parsed->key_id == b.key_id);
  CHECK(parsed->key_version == 7);
  CHECK(parsed->iv == b.iv);
  CHECK(parsed->ciphertext == b.ciphertext);
  CHECK(parsed->tag == b.tag);
}

TEST_CASE("malformed blobs are all the same empty InvalidCiphertext", "[unit]") {
  Bytes good = SomeBlob(1).Serialize();
  REQUIRE(ParseCiphertextBlob(good).has_value());
  ExpectInvalid(Bytes{});
  ExpectInvalid(Bytes(good.begin(), good.end() - 1));  // truncated: no room for 1 byte + tag
  Bytes format = good;
  format[0] = 0x02;
  ExpectInvalid(format);
  Bytes not_v4 = good;
  not_v4[1 + 6] = 0x10;  // UUID version 1
  ExpectInvalid(not_v4);
  Bytes variant = good;
  variant[1 + 8] = 0x00;
  ExpectInvalid(variant);
  Bytes version0 = good;
  version0[20] = 0;
  ExpectInvalid(version0);
  ExpectInvalid(Bytes(6145, 0x01));
  ExpectInvalid(Bytes(10, 0x01));
}

TEST_CASE("the canonical encryption context is order-free and injective", "[unit]") {
  EncryptionContext a{{"b", "2"}, {"a", "1"}};
  EncryptionContext b;
  b["a"] = "1";
  b["b"] = "2";
  CHECK(CanonicalEncryptionContext(a) == CanonicalEncryptionContext(b));
  CHECK(CanonicalEncryptionContext({}) == Bytes{0, 0, 0, 0});
  // Moving a boundary between key and value changes the encoding.
  CHECK(CanonicalEncryptionContext({{"ab", "c"}}) != CanonicalEncryptionContext({{"a", "bc"}}));
  CHECK(CanonicalEncryptionContext({{"a", "1"}}) != CanonicalEncryptionContext({{"A", "1"}}));
  Bytes expect{0, 0, 0, 1, 0, 0, 0, 1, 'k', 0, 0, 0, 2, 'v', 'v'};
  CHECK(CanonicalEncryptionContext({{"k", "vv"}}) == expect);
  CiphertextBlob blob = SomeBlob(3);
  Bytes aad = blob.Aad({{"k", "vv"}});
  CHECK(Bytes(aad.begin(), aad.begin() + 21) == blob.Header());
  CHECK(Bytes(aad.begin() + 21, aad.end()) == expect);
}

TEST_CASE("key ids are version-4 UUIDs in their 36-character form", "[unit]") {
  KeyIdBytes id = SomeId();
  std::string text = FormatKeyId(id);
  CHECK(text.size() == 36);
  CHECK(text[14] == '4');
  auto parsed = ParseKeyId(text);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == id);
  std::string upper = text;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(ParseKeyId(upper) == id);
  CHECK_FALSE(ParseKeyId("").has_value());
  CHECK_FALSE(ParseKeyId(text.substr(1)).has_value());
  CHECK_FALSE(ParseKeyId("1234abcd-12ab-34cd-56ef-1234567890ab").has_value());  // version 3
  std::string no_dash = text;
  no_dash[8] = 'a';
  CHECK_FALSE(ParseKeyId(no_dash).has_value());
  std::string bad_hex = text;
  bad_hex[0] = 'g';
  CHECK_FALSE(ParseKeyId(bad_hex).has_value());
}

}  // namespace
}  // namespace kms::firmware
