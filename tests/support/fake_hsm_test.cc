// What only the fake has: its test knobs (reduced capabilities, re-initialisation, siblings sharing
// a domain key and token data, loaded-key count) and its own RFC 5649 implementation. The hal::Hsm
// contract itself is checked by tests/hal/hsm_contract_test.cc, which runs against the fake too.
#include "tests/support/fake_hsm.h"

#include <catch2/catch.hpp>

#include "base/encoding.h"

namespace kms::testing {
namespace {

using hal::HashAlgorithm;
using hal::KeyAlgorithm;
using hal::KeyPurpose;
using hal::SignatureAlgorithm;

void CheckError(const Status& s, StatusCode code, Reason reason) {
  INFO(s.ToString());
  CHECK(s.code() == code);
  CHECK(s.reason() == reason);
}
template <typename T>
void CheckError(const StatusOr<T>& s, StatusCode code, Reason reason) {
  REQUIRE_FALSE(s.has_value());
  CheckError(s.error(), code, reason);
}

Bytes Hex(std::string_view h) { return HexDecode(h).value(); }

TEST_CASE("FakeHsm with reduced capabilities refuses what is missing", "[unit][fake_hsm]") {
  FakeHsmOptions options;
  options.capabilities = SoftHsm2LikeCapabilities();
  options.capabilities.key_algorithms.erase(KeyAlgorithm::kEcSecp256k1);
  options.capabilities.signature_algorithms.erase(SignatureAlgorithm::kRsaPkcs1Sha512);
  auto hsm = NewFakeHsm(options);
  CHECK(hsm->capabilities().oaep_hashes == std::set<HashAlgorithm>{HashAlgorithm::kSha1});
  CheckError(hsm->GenerateKey(KeyAlgorithm::kEcSecp256k1, KeyPurpose::kSignVerify),
             StatusCode::kUnimplemented, Reason::kMechanismUnsupported);
  CheckError(hsm->GenerateExportableKeyPair(KeyAlgorithm::kEcSecp256k1), StatusCode::kUnimplemented,
             Reason::kMechanismUnsupported);
  auto rsa = hsm->GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt);
  REQUIRE(rsa.has_value());
  CheckError(hsm->EncryptRsaOaep(*rsa, HashAlgorithm::kSha256, Bytes(16)),
             StatusCode::kUnimplemented, Reason::kMechanismUnsupported);
  auto ct = hsm->EncryptRsaOaep(*rsa, HashAlgorithm::kSha1, Bytes(16));
  REQUIRE(ct.has_value());
  auto signer = hsm->GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify);
  REQUIRE(signer.has_value());
  CheckError(hsm->SignDigest(*signer, SignatureAlgorithm::kRsaPkcs1Sha512, Bytes(64)),
             StatusCode::kUnimplemented, Reason::kMechanismUnsupported);

  FakeHsmOptions no_gcm;
  no_gcm.capabilities.aes_gcm = false;
  auto hsm2 = NewFakeHsm(no_gcm);
  auto aes = hsm2->GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  REQUIRE(aes.has_value());
  CheckError(hsm2->EncryptAesGcm(*aes, Bytes(3), {}), StatusCode::kUnimplemented,
             Reason::kMechanismUnsupported);
}

TEST_CASE("FakeHsm handles go stale on re-initialisation, unwrapping again works",
          "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  auto key = hsm->GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  REQUIRE(key.has_value());
  auto wrapped = hsm->WrapKey(*key);
  REQUIRE(wrapped.has_value());
  hsm->SimulateReinitialize();
  CheckError(hsm->EncryptAesGcm(*key, Bytes(3), {}), StatusCode::kUnavailable,
             Reason::kHandleStale);
  CheckError(hsm->WrapKey(*key), StatusCode::kUnavailable, Reason::kHandleStale);
  auto again = hsm->UnwrapKey(*wrapped);
  REQUIRE(again.has_value());
  CHECK(hsm->EncryptAesGcm(*again, Bytes(3), {}).has_value());
}

TEST_CASE("FakeHsm siblings share the domain key but not handles", "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  auto sibling = hsm->NewSibling();
  auto stranger = NewFakeHsm();
  auto key = hsm->GenerateKey(KeyAlgorithm::kHmacSha384, KeyPurpose::kMac);
  REQUIRE(key.has_value());
  auto wrapped = hsm->WrapKey(*key);
  REQUIRE(wrapped.has_value());
  auto mac = hsm->ComputeMac(*key, AsBytes("m"));
  REQUIRE(mac.has_value());
  auto there = sibling->UnwrapKey(*wrapped);
  REQUIRE(there.has_value());
  CHECK(sibling->VerifyMac(*there, AsBytes("m"), *mac).ok());
  CheckError(sibling->ComputeMac(*key, AsBytes("m")), StatusCode::kInvalidArgument, Reason::kNone);
  CheckError(stranger->UnwrapKey(*wrapped), StatusCode::kInvalidArgument,
             Reason::kInvalidCiphertext);
}

TEST_CASE("FakeHsm frees a key when its last handle goes", "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  CHECK(hsm->LoadedKeyCount() == 0);
  {
    auto key = hsm->GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
    REQUIRE(key.has_value());
    hal::KeyHandle copy = *key;
    CHECK(hsm->LoadedKeyCount() == 1);
  }
  CHECK(hsm->LoadedKeyCount() == 0);
}

TEST_CASE("FakeHsm refuses a wrapped blob relabelled as another key kind", "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  auto key = hsm->GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  REQUIRE(key.has_value());
  auto wrapped = hsm->WrapKey(*key);
  REQUIRE(wrapped.has_value());
  hal::WrappedKey relabelled = *wrapped;
  relabelled.algorithm = KeyAlgorithm::kHmacSha512;
  relabelled.purpose = KeyPurpose::kMac;
  CheckError(hsm->UnwrapKey(relabelled), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  relabelled.algorithm = KeyAlgorithm::kEcP256;
  relabelled.purpose = KeyPurpose::kSignVerify;
  CheckError(hsm->UnwrapKey(relabelled), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  // A private key blob with someone else's public key beside it.
  auto ec = hsm->GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
  auto other = hsm->GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
  REQUIRE(ec.has_value());
  REQUIRE(other.has_value());
  auto w = hsm->WrapKey(*ec);
  REQUIRE(w.has_value());
  w->public_key_der = hsm->PublicKeyDer(*other).value();
  CheckError(hsm->UnwrapKey(*w), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
}

TEST_CASE("FakeHsm injects failures after N calls, then recovers", "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  auto key = hsm->GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  REQUIRE(key.has_value());
  hsm->InjectFailure(UnavailableError("device gone"), /*after_calls=*/1, /*count=*/2);
  auto first = hsm->EncryptAesGcm(*key, Bytes(3), {});  // the one call let through
  REQUIRE(first.has_value());
  CheckError(hsm->DecryptAesGcm(*key, first->iv, first->ciphertext, first->tag, {}),
             StatusCode::kUnavailable, Reason::kNone);
  CheckError(hsm->CheckHealth(), StatusCode::kUnavailable, Reason::kNone);
  CHECK(hsm->CheckHealth().ok());
  auto back = hsm->DecryptAesGcm(*key, first->iv, first->ciphertext, first->tag, {});
  CHECK(back.has_value());
  // VerifyMac counts as one call, though it computes a MAC inside.
  auto mac_key = hsm->GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac);
  REQUIRE(mac_key.has_value());
  auto mac = hsm->ComputeMac(*mac_key, AsBytes("m"));
  REQUIRE(mac.has_value());
  hsm->InjectFailure(InternalError("boom"), 1, 1);
  CHECK(hsm->VerifyMac(*mac_key, AsBytes("m"), *mac).ok());
  CheckError(hsm->GenerateRandom(4), StatusCode::kInternal, Reason::kNone);
  // count 0 clears a pending failure.
  hsm->InjectFailure(InternalError("boom"), 0, 1);
  hsm->InjectFailure(Status(), 0, 0);
  CHECK(hsm->GenerateRandom(4).has_value());
}

TEST_CASE("FakeHsm token data belongs to the token: siblings share it, strangers do not",
          "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  REQUIRE(hsm->WriteTokenData("watermark", AsBytes("v1 epoch=3")).ok());
  auto restarted = hsm->NewSibling();  // what key_service_fixture.h's Restart() does
  auto there = restarted->ReadTokenData("watermark");
  REQUIRE(there.has_value());
  CHECK(ToString(*there) == "v1 epoch=3");
  REQUIRE(restarted->WriteTokenData("watermark", AsBytes("v1 epoch=4")).ok());
  auto back = hsm->ReadTokenData("watermark");
  REQUIRE(back.has_value());
  CHECK(ToString(*back) == "v1 epoch=4");
  CheckError(NewFakeHsm()->ReadTokenData("watermark"), StatusCode::kNotFound, Reason::kNone);
}

TEST_CASE("FakeHsm token data calls take injected failures and change nothing then",
          "[unit][fake_hsm]") {
  auto hsm = NewFakeHsm();
  REQUIRE(hsm->WriteTokenData("watermark", AsBytes("kept")).ok());
  hsm->InjectFailure(UnavailableError("device gone"), /*after_calls=*/0, /*count=*/2);
  CheckError(hsm->WriteTokenData("watermark", AsBytes("lost")), StatusCode::kUnavailable,
             Reason::kNone);
  CheckError(hsm->ReadTokenData("watermark"), StatusCode::kUnavailable, Reason::kNone);
  auto value = hsm->ReadTokenData("watermark");
  REQUIRE(value.has_value());
  CHECK(ToString(*value) == "kept");
  // The fault is taken before validation, as for every other call: a device that is gone answers
  // Unavailable whatever it is asked.
  hsm->InjectFailure(UnavailableError("device gone"));
  CheckError(hsm->ReadTokenData(""), StatusCode::kUnavailable, Reason::kNone);
  CheckError(hsm->ReadTokenData(""), StatusCode::kInvalidArgument, Reason::kNone);
}

TEST_CASE("FakeHsm's AES-KWP matches RFC 5649 §6", "[unit][fake_hsm]") {
  SecretBytes kek = SecretBytes::CopyFrom(Hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"));
  SecretBytes k20 = SecretBytes::CopyFrom(Hex("c37b7e6492584340bed12207808941155068f738"));
  SecretBytes k7 = SecretBytes::CopyFrom(Hex("466f7250617369"));
  Bytes w20 = Hex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
  Bytes w7 = Hex("afbeb0f07dfbf5419200f2ccb50bb24f");
  CHECK(AesKwpWrap(kek, k20).value() == w20);
  CHECK(AesKwpWrap(kek, k7).value() == w7);
  CHECK(AesKwpUnwrap(kek, w20).value() == k20);
  CHECK(AesKwpUnwrap(kek, w7).value() == k7);
  Bytes bad = w20;
  bad[3] ^= 1;
  CheckError(AesKwpUnwrap(kek, bad), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  CheckError(AesKwpUnwrap(kek, Bytes(8)), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  CheckError(AesKwpWrap(kek, SecretBytes()), StatusCode::kInvalidArgument, Reason::kNone);
  CheckError(AesKwpWrap(SecretBytes(20), k7), StatusCode::kInvalidArgument, Reason::kNone);
}

}  // namespace
}  // namespace kms::testing
