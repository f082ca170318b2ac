#include "firmware/key_spec.h"

#include <catch2/catch.hpp>

namespace kms::firmware {
namespace {

TEST_CASE("key spec names round-trip through their AWS strings", "[unit]") {
  for (KeySpec s : {KeySpec::kSymmetricDefault, KeySpec::kRsa2048, KeySpec::kRsa3072, KeySpec::kRsa4096,
                    KeySpec::kEccNistP256, KeySpec::kEccNistP384, KeySpec::kEccNistP521,
                    KeySpec::kEccSecgP256k1, KeySpec::kHmac224, KeySpec::kHmac256, KeySpec::kHmac384,
                    KeySpec::kHmac512}) {
    auto parsed = ParseKeySpec(KeySpecName(s));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == s);
  }
  CHECK(KeySpecName(KeySpec::kEccSecgP256k1) == "ECC_SECG_P256K1");
  CHECK(KeyUsageName(KeyUsage::kGenerateVerifyMac) == "GENERATE_VERIFY_MAC");
  CHECK(SigningAlgorithmName(SigningAlgorithm::kRsassaPkcs1V15Sha384) == "RSASSA_PKCS1_V1_5_SHA_384");
  CHECK(EncryptionAlgorithmName(EncryptionAlgorithm::kRsaesOaepSha256) == "RSAES_OAEP_SHA_256");
  CHECK(MacAlgorithmName(MacAlgorithm::kHmacSha512) == "HMAC_SHA_512");
  CHECK(DataKeySpecName(DataKeySpec::kAes128) == "AES_128");
  CHECK(KeyStateName(KeyState::kPendingDeletion) == "PendingDeletion");
  CHECK(MessageTypeName(MessageType::kDigest) == "DIGEST");
  CHECK(RotationTypeName(RotationType::kOnDemand) == "ON_DEMAND");
  for (auto a : {SigningAlgorithm::kRsassaPssSha256, SigningAlgorithm::kEcdsaSha512}) {
    CHECK(*ParseSigningAlgorithm(SigningAlgorithmName(a)) == a);
  }
  CHECK(*ParseMacAlgorithm("HMAC_SHA_224") == MacAlgorithm::kHmacSha224);
  CHECK(*ParseKeyUsage("SIGN_VERIFY") == KeyUsage::kSignVerify);
  CHECK(*ParseDataKeySpec("AES_256") == DataKeySpec::kAes256);
  CHECK(*ParseDataKeyPairSpec("ECC_NIST_P384") == KeySpec::kEccNistP384);
  CHECK(*ParseMessageType("RAW") == MessageType::kRaw);
  CHECK(*ParseEncryptionAlgorithm("SYMMETRIC_DEFAULT") == EncryptionAlgorithm::kSymmetricDefault);
}

TEST_CASE("unknown enum names are ValidationExceptions with AWS's wording", "[unit]") {
  auto bad = ParseKeySpec("symmetric_default");  // case-sensitive
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == StatusCode::kInvalidArgument);
  CHECK(bad.error().reason() == Reason::kNone);
  CHECK(bad.error().message().starts_with(
      "1 validation error detected: Value 'symmetric_default' at 'keySpec' failed to satisfy "
      "constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSA_2048"));
  auto bad_usage = ParseKeyUsage("ENCRYPT", "keyUsage");
  REQUIRE_FALSE(bad_usage.has_value());
  CHECK(bad_usage.error().message().find("at 'keyUsage'") != std::string::npos);
  CHECK_FALSE(ParseDataKeyPairSpec("SYMMETRIC_DEFAULT").has_value());
  CHECK_FALSE(ParseMacAlgorithm("HMAC_SHA_1").has_value());
}

TEST_CASE("AWS names the appliance does not implement are UnsupportedOperation", "[unit]") {
  for (auto r : {ParseKeySpec("ECC_NIST_EDWARDS25519").error(), ParseKeySpec("ML_DSA_44").error(),
                 ParseKeyUsage("KEY_AGREEMENT").error(), ParseEncryptionAlgorithm("SM2PKE").error(),
                 ParseSigningAlgorithm("ED25519_SHA_512").error(),
                 ParseMessageType("EXTERNAL_MU").error()}) {
    CHECK(r.code() == StatusCode::kUnimplemented);
    CHECK(r.reason() == Reason::kUnsupportedOperation);
  }
}

TEST_CASE("the AWS key spec compatibility table", "[unit]") {
  CHECK(UsageAllowed(KeySpec::kSymmetricDefault, KeyUsage::kEncryptDecrypt));
  CHECK_FALSE(UsageAllowed(KeySpec::kSymmetricDefault, KeyUsage::kSignVerify));
  CHECK(UsageAllowed(KeySpec::kRsa3072, KeyUsage::kEncryptDecrypt));
  CHECK(UsageAllowed(KeySpec::kRsa3072, KeyUsage::kSignVerify));
  CHECK_FALSE(UsageAllowed(KeySpec::kRsa3072, KeyUsage::kGenerateVerifyMac));
  CHECK(UsageAllowed(KeySpec::kEccNistP521, KeyUsage::kSignVerify));
  CHECK_FALSE(UsageAllowed(KeySpec::kEccNistP521, KeyUsage::kEncryptDecrypt));
  CHECK(UsageAllowed(KeySpec::kHmac384, KeyUsage::kGenerateVerifyMac));
  CHECK_FALSE(UsageAllowed(KeySpec::kHmac384, KeyUsage::kEncryptDecrypt));

  CHECK(EncryptionAlgorithmsFor(KeySpec::kSymmetricDefault, KeyUsage::kEncryptDecrypt) ==
        std::vector{EncryptionAlgorithm::kSymmetricDefault});
  CHECK(EncryptionAlgorithmsFor(KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt).size() == 2);
  CHECK(EncryptionAlgorithmsFor(KeySpec::kRsa2048, KeyUsage::kSignVerify).empty());
  CHECK(SigningAlgorithmsFor(KeySpec::kRsa4096, KeyUsage::kSignVerify).size() == 6);
  CHECK(SigningAlgorithmsFor(KeySpec::kEccSecgP256k1, KeyUsage::kSignVerify) ==
        std::vector{SigningAlgorithm::kEcdsaSha256});
  CHECK(SigningAlgorithmsFor(KeySpec::kEccNistP384, KeyUsage::kSignVerify) ==
        std::vector{SigningAlgorithm::kEcdsaSha384});
  CHECK(SigningAlgorithmsFor(KeySpec::kEccNistP521, KeyUsage::kSignVerify) ==
        std::vector{SigningAlgorithm::kEcdsaSha512});
  CHECK(MacAlgorithmsFor(KeySpec::kHmac224, KeyUsage::kGenerateVerifyMac) ==
        std::vector{MacAlgorithm::kHmacSha224});

  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa2048, EncryptionAlgorithm::kRsaesOaepSha1) == 214);
  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa3072, EncryptionAlgorithm::kRsaesOaepSha1) == 342);
  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa4096, EncryptionAlgorithm::kRsaesOaepSha1) == 470);
  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa2048, EncryptionAlgorithm::kRsaesOaepSha256) == 190);
  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa3072, EncryptionAlgorithm::kRsaesOaepSha256) == 318);
  CHECK(MaxRsaOaepPlaintext(KeySpec::kRsa4096, EncryptionAlgorithm::kRsaesOaepSha256) == 446);
}

TEST_CASE("key specs map onto HAL algorithms the HAL accepts for the usage", "[unit]") {
  for (KeySpec s : {KeySpec::kSymmetricDefault, KeySpec::kRsa2048, KeySpec::kEccNistP256,
                    KeySpec::kEccSecgP256k1, KeySpec::kHmac512}) {
    for (KeyUsage u : {KeyUsage::kEncryptDecrypt, KeyUsage::kSignVerify, KeyUsage::kGenerateVerifyMac}) {
      CHECK(UsageAllowed(s, u) == hal::PurposeAllowed(ToHalAlgorithm(s), ToHalPurpose(u)));
    }
  }
  CHECK(ToHalAlgorithm(KeySpec::kHmac224) == hal::KeyAlgorithm::kHmacSha224);
  CHECK(ToHalSignature(SigningAlgorithm::kRsassaPkcs1V15Sha512) ==
        hal::SignatureAlgorithm::kRsaPkcs1Sha512);
  CHECK(*OaepHashOf(EncryptionAlgorithm::kRsaesOaepSha1) == hal::HashAlgorithm::kSha1);
  CHECK_FALSE(OaepHashOf(EncryptionAlgorithm::kSymmetricDefault).has_value());
  CHECK(MacHashOf(MacAlgorithm::kHmacSha384) == hal::HashAlgorithm::kSha384);
  CHECK(DataKeySpecBytes(DataKeySpec::kAes128) == 16);
}

}  // namespace
}  // namespace kms::firmware
