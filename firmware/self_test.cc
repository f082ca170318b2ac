#include "firmware/self_test.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "base/bytes.h"
#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "hal/key_types.h"

namespace kms::firmware {
namespace {

using hal::Capabilities;
using hal::KeyAlgorithm;
using hal::KeyHandle;
using hal::KeyPurpose;
using hal::SignatureAlgorithm;

// --- test vectors --------------------------------------------------------------------------------
// Public data only: nothing here is, or protects, a secret of the appliance.

// AES-256-GCM: test case 16 of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)"
// (the GCM specification submitted to NIST, Appendix B): a 256-bit key, a 96-bit IV, 20 bytes of
// AAD and a 60-byte plaintext (not a whole number of blocks).
constexpr std::string_view kGcmKey =
    "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr std::string_view kGcmIv = "cafebabefacedbaddecaf888";
constexpr std::string_view kGcmAad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
constexpr std::string_view kGcmPlaintext =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
constexpr std::string_view kGcmCiphertext =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
constexpr std::string_view kGcmTag = "76fc6ece0f4e1768cddf8853bb2d551b";

// HMAC: RFC 4231 §4.7, test case 6 ("Test Using Larger Than Block-Size Key - Hash Key First"): a
// 131-byte key of 0xaa. The shorter keys of cases 1-5 are below the digest size, which the HAL
// refuses (RFC 2104 §3).
constexpr std::size_t kHmacKeySize = 131;
constexpr std::uint8_t kHmacKeyByte = 0xaa;
constexpr std::string_view kHmacMessage = "Test Using Larger Than Block-Size Key - Hash Key First";
struct MacVector {
  KeyAlgorithm key;
  std::string_view mac;
};
constexpr MacVector kHmacSha256{KeyAlgorithm::kHmacSha256,
                                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"};
constexpr MacVector kHmacSha384{KeyAlgorithm::kHmacSha384,
                                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f"
                                "3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952"};
constexpr MacVector kHmacSha512{KeyAlgorithm::kHmacSha512,
                                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
                                "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"};

// Signatures: made once for this file with OpenSSL 3.0 (the private keys were then discarded):
//   printf 'kms power-on self-test' > msg; openssl dgst -sha256 -binary msg > digest
//   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
//   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem
//   openssl pkey -in {ec,rsa}.pem -pubout -outform DER            (the SubjectPublicKeyInfo)
//   openssl pkeyutl -sign -inkey ec.pem -in digest -pkeyopt digest:sha256     (DER ECDSA-Sig-Value)
//   openssl pkeyutl -sign -inkey rsa.pem -in digest -pkeyopt digest:sha256
//       -pkeyopt rsa_padding_mode:pkcs1
//   openssl pkeyutl -sign -inkey rsa.pem -in digest -pkeyopt digest:sha256
//       -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt rsa_mgf1_md:sha256
// and each checked with `openssl pkeyutl -verify`. The PSS salt is as long as the digest, as the
// HAL uses. The digest is SHA-256("kms power-on self-test").
constexpr std::string_view kDigest =
    "c1f8c9b8539815d82ab7a656ba5a1da71ee16b966c88f9c2be420cefbd4360cc";
constexpr std::string_view kEcP256PublicKey =
    "3059301306072a8648ce3d020106082a8648ce3d030107034200047b381a8b705aee84728eef239ff28c57a71766"
    "38771fcbb30fbde81238fc20f04c8d36d8c1a3a302cf2178f9387a55b3b68ec86854d81a90a542d18cc567e91f";
constexpr std::string_view kEcdsaP256Signature =
    "304502200b4ee6750d96df5b17a77a2976c493b26ee3f25ec838c3befc3395a3c2f0f4ef022100de99712985c26a"
    "146aa7f5480a8d20e75a8371c8693ecd071d05ba8085488d95";
constexpr std::string_view kRsa2048PublicKey =
    "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a0743e2844797e16edeeff9eef"
    "ce41548146b5bdae17b2f9d5f32750c9c9bc92bbffd436b31935275cf0d0f616a5d4cec9c2a345fb1192719db812"
    "8d1891fc3ed92916bed8a0aeb76ffddf53fbfee20ce4ea32900f77808166b65886af836ddbb80805defe861cce70"
    "bbd715e92282db50030d735859a843928ade3df99ac37a08b9848b4d5bab4f9ceea4ea8a97b2efa3e7096347d612"
    "6a4a5b690f4d78c45bd2898cf8a583cf03282d50dbd7ff4a5e24f210c3ef3b3512562e6322a7c2c28b69e114bdde"
    "1b802ed47d15612886e3c45bf5e8ee5bf2d6c7b59200a6f3df3db85deb45688f5fae10ebf07b1601a8401ed24c28"
    "ee9555cca175b451e9b15e2f290203010001";
constexpr std::string_view kRsa2048Pkcs1Signature =
    "33598be6c7ede25bb5949ee938b630409da85ea2429f6f13f87ddfc293a9281d4647ab72f8f9ed4467f310f16441"
    "ca8c44ede0bb0c62c1190f1865e03122859f386bdf8eee97cb17d36d59c3547b0e8a7930ebaf376f264401293e3a"
    "44acd6cc083b4adc98aee2e220445fb36fd125b3ecafceb13e42e3b111a1786ee3d1aa572380987ce39d11d49f1f"
    "7324d4187393a76412af10c2b4f0c1381c859409128219a7c201f123837504ff574e77a678ed15995107af9c5845"
    "521c27b9021489ecbc03880c31c527ec7390496c8cff4fe4718b43b2d33de640f0569753cb104498d50525fe88c7"
    "94c9779b140c113cd3d46080dcade7fcd163425e4204be7892e1";
constexpr std::string_view kRsa2048PssSignature =
    "7f89873efa701ba888041728e87243f7258c297fcec5a24d2389a88c5a83466a4e2b79496f7c557bd23ddd1c57a3"
    "7058a21e9bcddf581fd33c7760458b3b52863263195460d3f8af7f9081e35b453e3016e661525a407bcae200e435"
    "787d6232cdb4631ae26432ac9b955935bd365a030b54d429ae0b37c90b9ac8338614c5d0ee834aabbdce2b112e63"
    "3b8cd6f580e9b9755e94e6177da91ace7f6126481772de3fff443fa61f93c4d41438ae72b3a70dd96239fdf1bf50"
    "a2c98343e0a3231bbb520ef5cdd1dc9c7fd1d07e6360b65c12eae91ebeb8a95f14edb2bb8bdd5caf5a26c6f61f63"
    "020d696c34db806042c0cb3c6fdb22c813dc00b6219a03b6c68c";
struct SignatureVector {
  KeyAlgorithm key;
  SignatureAlgorithm algorithm;
  std::string_view public_key_der;
  std::string_view signature;
};
constexpr SignatureVector kEcdsaP256{KeyAlgorithm::kEcP256, SignatureAlgorithm::kEcdsaSha256,
                                     kEcP256PublicKey, kEcdsaP256Signature};
constexpr SignatureVector kRsa2048Pkcs1{KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPkcs1Sha256,
                                        kRsa2048PublicKey, kRsa2048Pkcs1Signature};
constexpr SignatureVector kRsa2048Pss{KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPssSha256,
                                      kRsa2048PublicKey, kRsa2048PssSignature};

// --- failures ------------------------------------------------------------------------------------

// A HAL call that failed: its code and device code stay, the message says which step it was.
Status StepFailed(std::string_view step, const Status& hal) {
  std::string detail =
      hal.message().empty() ? std::string(StatusCodeName(hal.code())) : hal.message();
  return Status(hal.code(), std::string(step) + ": " + detail, Reason::kNone, hal.device_code());
}
Status At(std::string_view step, const Status& s) { return s.ok() ? s : StepFailed(step, s); }
template <typename T>
StatusOr<T> At(std::string_view step, StatusOr<T> r) {
  if (!r.has_value()) return StepFailed(step, r.error());
  return r;
}

// The device answered, but not what the vector says.
Status WrongAnswer(std::string_view what) {
  return InternalError("wrong answer: " + std::string(what));
}

// A call that must be refused for `reason`: OK is a wrong answer, another error is a failed step.
Status ExpectRefused(std::string_view step, const Status& s, Reason reason) {
  if (s.ok()) return WrongAnswer(std::string(step) + " was accepted");
  if (s.reason() != reason) return StepFailed(step, s);
  return Status();
}

StatusOr<Bytes> Vector(std::string_view hex) {
  StatusOr<Bytes> bytes = HexDecode(hex);
  if (!bytes.has_value()) return InternalError("a test vector does not decode");
  return bytes;
}

// `bytes` with the lowest bit of its last byte flipped: still well-formed (a DER signature stays
// DER, a tag stays 16 bytes), so the device itself has to refuse it.
Bytes FlipLastBit(ByteView bytes) {
  Bytes out(bytes.begin(), bytes.end());
  if (!out.empty()) out.back() ^= 0x01;
  return out;
}

// --- the tests -----------------------------------------------------------------------------------

bool Always(const Capabilities&) { return true; }
bool HasAesGcm(const Capabilities& c) {
  return c.aes_gcm && c.key_algorithms.contains(KeyAlgorithm::kAes256);
}
bool HasKeyWrap(const Capabilities& c) { return HasAesGcm(c) && c.key_wrap_pad; }
bool HasSignature(const Capabilities& c, const SignatureVector& v) {
  return c.key_algorithms.contains(v.key) && c.signature_algorithms.contains(v.algorithm);
}

// FIPS 140-2 §4.9.2 continuous RNG test: a stuck RNG repeats itself, so two draws must differ.
Status Rng(hal::Hsm& hsm) {
  constexpr std::size_t kDraw = 32;
  KMS_ASSIGN_OR_RETURN(SecretBytes first, At("GenerateRandom", hsm.GenerateRandom(kDraw)));
  KMS_ASSIGN_OR_RETURN(SecretBytes second, At("GenerateRandom", hsm.GenerateRandom(kDraw)));
  if (first.size() != kDraw || second.size() != kDraw) {
    return WrongAnswer("GenerateRandom returned the wrong number of bytes");
  }
  if (first == second) return WrongAnswer("two random draws are equal");
  return Status();
}

StatusOr<KeyHandle> ImportGcmKey(hal::Hsm& hsm) {
  KMS_ASSIGN_OR_RETURN(Bytes key, Vector(kGcmKey));
  return At("ImportKey", hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt,
                                       SecretBytes::CopyFrom(key)));
}

// A true KAT: the device decrypts a published vector under a key imported for the purpose.
Status AesGcmKat(hal::Hsm& hsm) {
  KMS_ASSIGN_OR_RETURN(Bytes iv, Vector(kGcmIv));
  KMS_ASSIGN_OR_RETURN(Bytes aad, Vector(kGcmAad));
  KMS_ASSIGN_OR_RETURN(Bytes plaintext, Vector(kGcmPlaintext));
  KMS_ASSIGN_OR_RETURN(Bytes ciphertext, Vector(kGcmCiphertext));
  KMS_ASSIGN_OR_RETURN(Bytes tag, Vector(kGcmTag));
  KMS_ASSIGN_OR_RETURN(KeyHandle key, ImportGcmKey(hsm));
  KMS_ASSIGN_OR_RETURN(SecretBytes decrypted,
                       At("DecryptAesGcm", hsm.DecryptAesGcm(key, iv, ciphertext, tag, aad)));
  if (!ConstantTimeEquals(decrypted.ExposeSecret(), plaintext)) {
    return WrongAnswer("DecryptAesGcm did not give the vector's plaintext");
  }
  return ExpectRefused("DecryptAesGcm with a flipped tag bit",
                       StatusOf(hsm.DecryptAesGcm(key, iv, ciphertext, FlipLastBit(tag), aad)),
                       Reason::kInvalidCiphertext);
}

// Not a KAT: EncryptAesGcm draws its own IV from the device RNG (hal/hsm.h) and takes none from the
// caller, so its output cannot be known in advance. The round trip checks that encryption and
// decryption agree, that the IV and tag have the enforced sizes, and that the output is not the
// input.
Status AesGcmRoundTrip(hal::Hsm& hsm) {
  KMS_ASSIGN_OR_RETURN(Bytes aad, Vector(kGcmAad));
  KMS_ASSIGN_OR_RETURN(Bytes plaintext, Vector(kGcmPlaintext));
  KMS_ASSIGN_OR_RETURN(KeyHandle key, ImportGcmKey(hsm));
  KMS_ASSIGN_OR_RETURN(hal::GcmCiphertext sealed,
                       At("EncryptAesGcm", hsm.EncryptAesGcm(key, plaintext, aad)));
  if (sealed.iv.size() != hal::kGcmIvSize || sealed.tag.size() != hal::kGcmTagSize ||
      sealed.ciphertext.size() != plaintext.size()) {
    return WrongAnswer("EncryptAesGcm output has the wrong shape");
  }
  if (ConstantTimeEquals(sealed.ciphertext, plaintext)) {
    return WrongAnswer("EncryptAesGcm returned the plaintext");
  }
  KMS_ASSIGN_OR_RETURN(
      SecretBytes opened,
      At("DecryptAesGcm", hsm.DecryptAesGcm(key, sealed.iv, sealed.ciphertext, sealed.tag, aad)));
  if (!ConstantTimeEquals(opened.ExposeSecret(), plaintext)) {
    return WrongAnswer("DecryptAesGcm of EncryptAesGcm's output is not the plaintext");
  }
  return Status();
}

// Pairwise, not a KAT: the domain key is generated inside the token and never leaves it, and keys
// that enter through ImportKey cannot be wrapped (hal/hsm.h), so no wrapped blob can be known in
// advance. Instead a fresh key goes through WrapKey and UnwrapKey, and the two handles must be the
// same key: what one encrypts, the other decrypts.
Status KeyWrap(hal::Hsm& hsm) {
  constexpr std::string_view kMessage = "kms key-wrap self-test";
  constexpr std::string_view kAad = "key-wrap";
  KMS_ASSIGN_OR_RETURN(
      KeyHandle original,
      At("GenerateKey", hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt)));
  KMS_ASSIGN_OR_RETURN(hal::WrappedKey wrapped, At("WrapKey", hsm.WrapKey(original)));
  KMS_ASSIGN_OR_RETURN(KeyHandle unwrapped, At("UnwrapKey", hsm.UnwrapKey(wrapped)));
  KMS_ASSIGN_OR_RETURN(hal::GcmCiphertext sealed,
                       At("EncryptAesGcm with the generated key",
                          hsm.EncryptAesGcm(original, AsBytes(kMessage), AsBytes(kAad))));
  KMS_ASSIGN_OR_RETURN(
      SecretBytes opened,
      At("DecryptAesGcm with the unwrapped key",
         hsm.DecryptAesGcm(unwrapped, sealed.iv, sealed.ciphertext, sealed.tag, AsBytes(kAad))));
  if (!ConstantTimeEquals(opened.ExposeSecret(), AsBytes(kMessage))) {
    return WrongAnswer("the unwrapped key is not the wrapped one");
  }
  return Status();
}

// A KAT of the device's verify: a fixed signature over a fixed digest under a fixed public key.
Status VerifyKat(hal::Hsm& hsm, const SignatureVector& v) {
  KMS_ASSIGN_OR_RETURN(Bytes public_key, Vector(v.public_key_der));
  KMS_ASSIGN_OR_RETURN(Bytes digest, Vector(kDigest));
  KMS_ASSIGN_OR_RETURN(Bytes signature, Vector(v.signature));
  KMS_ASSIGN_OR_RETURN(
      KeyHandle key,
      At("ImportPublicKey", hsm.ImportPublicKey(v.key, KeyPurpose::kSignVerify, public_key)));
  KMS_RETURN_IF_ERROR(At("VerifyDigest", hsm.VerifyDigest(key, v.algorithm, digest, signature)));
  return ExpectRefused("VerifyDigest of a flipped signature bit",
                       hsm.VerifyDigest(key, v.algorithm, digest, FlipLastBit(signature)),
                       Reason::kInvalidSignature);
}

// A KAT: the device computes the RFC 4231 MAC, accepts it and refuses it with one bit flipped.
Status HmacKat(hal::Hsm& hsm, const MacVector& v) {
  KMS_ASSIGN_OR_RETURN(Bytes expected, Vector(v.mac));
  SecretBytes material(kHmacKeySize);
  std::ranges::fill(material.ExposeSecretMutable(), kHmacKeyByte);
  KMS_ASSIGN_OR_RETURN(KeyHandle key,
                       At("ImportKey", hsm.ImportKey(v.key, KeyPurpose::kMac, material)));
  KMS_ASSIGN_OR_RETURN(Bytes mac, At("ComputeMac", hsm.ComputeMac(key, AsBytes(kHmacMessage))));
  if (!ConstantTimeEquals(mac, expected))
    return WrongAnswer("ComputeMac did not give the vector's MAC");
  KMS_RETURN_IF_ERROR(At("VerifyMac", hsm.VerifyMac(key, AsBytes(kHmacMessage), expected)));
  return ExpectRefused("VerifyMac of a flipped MAC bit",
                       hsm.VerifyMac(key, AsBytes(kHmacMessage), FlipLastBit(expected)),
                       Reason::kInvalidMac);
}

constexpr SelfTest kTests[] = {
    {"rng", Always, Rng},
    {"aes-256-gcm-kat", HasAesGcm, AesGcmKat},
    {"aes-256-gcm-roundtrip", HasAesGcm, AesGcmRoundTrip},
    {"key-wrap", HasKeyWrap, KeyWrap},
    {"ecdsa-p256-verify-kat", [](const Capabilities& c) { return HasSignature(c, kEcdsaP256); },
     [](hal::Hsm& hsm) { return VerifyKat(hsm, kEcdsaP256); }},
    {"rsa-2048-pkcs1-verify-kat",
     [](const Capabilities& c) { return HasSignature(c, kRsa2048Pkcs1); },
     [](hal::Hsm& hsm) { return VerifyKat(hsm, kRsa2048Pkcs1); }},
    {"rsa-2048-pss-verify-kat", [](const Capabilities& c) { return HasSignature(c, kRsa2048Pss); },
     [](hal::Hsm& hsm) { return VerifyKat(hsm, kRsa2048Pss); }},
    {"hmac-sha256-kat",
     [](const Capabilities& c) { return c.key_algorithms.contains(kHmacSha256.key); },
     [](hal::Hsm& hsm) { return HmacKat(hsm, kHmacSha256); }},
    {"hmac-sha384-kat",
     [](const Capabilities& c) { return c.key_algorithms.contains(kHmacSha384.key); },
     [](hal::Hsm& hsm) { return HmacKat(hsm, kHmacSha384); }},
    {"hmac-sha512-kat",
     [](const Capabilities& c) { return c.key_algorithms.contains(kHmacSha512.key); },
     [](hal::Hsm& hsm) { return HmacKat(hsm, kHmacSha512); }},
};

}  // namespace

std::span<const SelfTest> PowerOnSelfTests() { return kTests; }

Status RunSelfTest(hal::Hsm& hsm, const SelfTest& test) {
  Status s = test.run(hsm);
  if (s.ok()) return s;
  return Status(s.code(), "self-test " + std::string(test.name) + " failed: " + s.message(),
                Reason::kNone, s.device_code());
}

StatusOr<SelfTestReport> RunPowerOnSelfTests(hal::Hsm& hsm) {
  const auto start = std::chrono::steady_clock::now();
  SelfTestReport report;
  const Capabilities& capabilities = hsm.capabilities();
  for (const SelfTest& test : kTests) {
    if (!test.applies(capabilities)) {
      report.skipped.push_back(test.name);
      continue;
    }
    KMS_RETURN_IF_ERROR(RunSelfTest(hsm, test));
    report.passed.push_back(test.name);
  }
  report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  return report;
}

}  // namespace kms::firmware
