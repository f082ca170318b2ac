// hal/internal/key_encoding.h: the strict DER Ecdsa-Sig-Value parser and its inverse.
#include <catch2/catch.hpp>

#include "base/encoding.h"
#include "hal/internal/key_encoding.h"

namespace kms::hal::internal {
namespace {

Bytes Hex(std::string_view h) { return *HexDecode(h); }

const Status kBad = InvalidArgumentError("invalid signature", Reason::kInvalidSignature);

TEST_CASE("ECDSA raw <-> DER round trip / with high-bit and leading-zero halves",
          "[softhsm][der]") {
  const CurveInfo& p256 = *CurveOf(KeyAlgorithm::kEcP256);
  Bytes raw(64, 0);
  raw[1] = 0x80;  // r = 0x0080..., has a leading zero byte and a high bit after it
  raw[31] = 0x01;
  raw[32] = 0x7F;  // s has no high bit
  raw[63] = 0x02;
  auto der = EcdsaRawToDer(raw);
  REQUIRE(der.has_value());
  // r: leading 00 stripped then 00 re-added for the high bit -> 31 bytes + 00 = 32 bytes
  CHECK((*der)[0] == 0x30);
  auto back = EcdsaDerToRaw(p256, *der);
  REQUIRE(back.has_value());
  CHECK(*back == raw);
}

TEST_CASE("ECDSA DER parser refuses BER / trailing bytes and bad integers", "[softhsm][der]") {
  const CurveInfo& p256 = *CurveOf(KeyAlgorithm::kEcP256);
  // r = 1, s = 1: the smallest valid signature.
  CHECK(EcdsaDerToRaw(p256, Hex("3006020101020101")).has_value());
  CHECK(EcdsaDerToRaw(p256, Hex("300602010102010100")).error() == kBad);    // trailing byte
  CHECK(EcdsaDerToRaw(p256, Hex("308106020101020101")).error() == kBad);    // long form for 6
  CHECK(EcdsaDerToRaw(p256, Hex("30800201010201010000")).error() == kBad);  // indefinite (BER)
  CHECK(EcdsaDerToRaw(p256, Hex("30070201010202000101")).error() == kBad);  // wrong outer length
  CHECK(EcdsaDerToRaw(p256, Hex("300702020001020101")).error() == kBad);    // non-minimal r
  CHECK(EcdsaDerToRaw(p256, Hex("3006020181020101")).error() == kBad);      // negative r
  CHECK(EcdsaDerToRaw(p256, Hex("3006020100020101")).error() == kBad);      // r = 0
  CHECK(EcdsaDerToRaw(p256, Hex("3005020101020100")).error() == kBad);      // truncated
  CHECK(EcdsaDerToRaw(p256, Hex("3006020101020100")).error() == kBad);      // s = 0
  CHECK(EcdsaDerToRaw(p256, Hex("3106020101020101")).error() == kBad);      // not a SEQUENCE
  CHECK(EcdsaDerToRaw(p256, Hex("3006040101020101")).error() == kBad);      // r not an INTEGER
  CHECK(EcdsaDerToRaw(p256, {}).error() == kBad);
  // r = n (the P-256 order) is out of range, n-1 is in range.
  const std::string n = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
  const std::string n_minus_1 = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
  CHECK(EcdsaDerToRaw(p256, Hex("3026022100" + n + "020101")).error() == kBad);
  CHECK(EcdsaDerToRaw(p256, Hex("3026022100" + n_minus_1 + "020101")).has_value());
  // 33 significant bytes cannot be a P-256 scalar.
  CHECK(EcdsaDerToRaw(p256, Hex("3026022101" + std::string(64, '0') + "020101")).error() == kBad);
}

TEST_CASE("P-521 signatures use the long length form exactly when needed", "[softhsm][der]") {
  const CurveInfo& p521 = *CurveOf(KeyAlgorithm::kEcP521);
  Bytes raw(132, 0);
  raw[0] = 0x01;  // 521-bit r and s with the top byte set
  raw[65] = 0x01;
  raw[66] = 0x01;
  raw[131] = 0x01;
  auto der = EcdsaRawToDer(raw);
  REQUIRE(der.has_value());
  CHECK((*der)[1] == 0x81);
  auto back = EcdsaDerToRaw(p521, *der);
  REQUIRE(back.has_value());
  CHECK(*back == raw);
}

TEST_CASE("DER OCTET STRING wrapping of EC points", "[softhsm][der]") {
  Bytes point(65, 0x04);
  Bytes wrapped = DerOctetString(point);
  CHECK(wrapped[0] == 0x04);
  CHECK(wrapped[1] == 65);
  CHECK(*ParseDerOctetString(wrapped) == point);
  Bytes big(133, 0x04);
  Bytes wrapped_big = DerOctetString(big);
  CHECK(wrapped_big[1] == 0x81);
  CHECK(*ParseDerOctetString(wrapped_big) == big);
  CHECK(!ParseDerOctetString(Hex("0481050102030405")).has_value());  // non-minimal length
  CHECK(!ParseDerOctetString(Hex("040201")).has_value());            // truncated
}

TEST_CASE("SubjectPublicKeyInfo parsing refuses junk", "[softhsm][der]") {
  CHECK(!ParseSpki({}).has_value());
  CHECK(!ParseSpki(Hex("3003020101")).has_value());
}

TEST_CASE("RsaSpki writes only keys ParseSpki reads back", "[softhsm][der]") {
  // What a module could hand back as CKA_MODULUS / CKA_PUBLIC_EXPONENT: a 6-bit modulus, an even
  // exponent. mbedTLS's SPKI reader refuses both, so the writer must not make them.
  const Status kMalformed = InvalidArgumentError("malformed RSA public key");
  auto tiny = RsaSpki(Hex("2d"), Hex("0a0a"));
  REQUIRE_FALSE(tiny.has_value());
  CHECK(tiny.error() == kMalformed);
  const Bytes modulus = Hex("c5" + std::string(254, 'a') + "b1");  // 1024 bits, odd
  auto even = RsaSpki(modulus, Hex("02"));
  REQUIRE_FALSE(even.has_value());
  CHECK(even.error() == kMalformed);
  auto der = RsaSpki(modulus, Hex("010001"));
  REQUIRE(der.has_value());
  auto parts = ParseSpki(*der);
  REQUIRE(parts.has_value());
  CHECK(parts->rsa);
  CHECK(parts->modulus == modulus);
  CHECK(parts->public_exponent == Hex("010001"));
}

TEST_CASE("SubjectPublicKeyInfo parsing takes DER only", "[softhsm][der]") {
  // A 128-bit RSA key (the smallest mbedTLS reads) with exponent 0x810001, whose INTEGER needs a
  // leading zero byte in DER.
  const std::string modulus = "c5aaaaaaaaaaaaaaaaaaaaaaaaaaaab1";
  const std::string algorithm = "300d06092a864886f70d0101010500";
  const std::string canonical =
      "302d" + algorithm + "031c00" + "3019" + "021100" + modulus + "020400810001";
  REQUIRE(*RsaSpki(Hex(modulus), Hex("810001")) == Hex(canonical));
  REQUIRE(ParseSpki(Hex(canonical)).has_value());
  const Status kNotDer = InvalidArgumentError("SubjectPublicKeyInfo must be DER");
  // The exponent without its zero byte: a negative INTEGER, which mbedTLS reads as 0x810001.
  auto negative = ParseSpki(Hex("302c" + algorithm + "031b00" + "3018" + "021100" + modulus +
                                "0203810001"));
  REQUIRE_FALSE(negative.has_value());
  CHECK(negative.error() == kNotDer);
  // A long-form length that fits the short form.
  auto long_form = ParseSpki(Hex("30812d" + canonical.substr(4)));
  REQUIRE_FALSE(long_form.has_value());
  CHECK(long_form.error() == kNotDer);
  // A byte after the key (mbedTLS's reader refuses that one itself).
  auto trailing = ParseSpki(Hex(canonical + "00"));
  REQUIRE_FALSE(trailing.has_value());
  CHECK(trailing.error() == InvalidArgumentError("malformed SubjectPublicKeyInfo"));
}

}  // namespace
}  // namespace kms::hal::internal
