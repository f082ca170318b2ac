// The HAL contract suite: one set of cases that every hal::Hsm backend must pass (the fake and
// SoftHSM2; see tests/hal/hsm_test_backend.h). What is checked is the contract of hal/hsm.h: round
// trips, the exact Status (code and Reason) of every refusal, and interoperability with an
// independent implementation (mbedTLS) for every format the HAL hands out (GCM, DER signatures,
// SPKI, PKCS#8, OAEP).
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/hsm.h"
#include "hal/key_types.h"
#include "tests/hal/hsm_test_backend.h"

namespace kms::hal {
namespace {

using testing::TestHsm;

constexpr KeyAlgorithm kAllAlgorithms[] = {
    KeyAlgorithm::kAes256,     KeyAlgorithm::kHmacSha224, KeyAlgorithm::kHmacSha256,
    KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512, KeyAlgorithm::kRsa2048,
    KeyAlgorithm::kRsa3072,    KeyAlgorithm::kRsa4096,    KeyAlgorithm::kEcP256,
    KeyAlgorithm::kEcP384,     KeyAlgorithm::kEcP521,     KeyAlgorithm::kEcSecp256k1};
constexpr KeyPurpose kAllPurposes[] = {KeyPurpose::kEncryptDecrypt, KeyPurpose::kSignVerify,
                                       KeyPurpose::kMac};
constexpr SignatureAlgorithm kAllSignatures[] = {
    SignatureAlgorithm::kRsaPssSha256,   SignatureAlgorithm::kRsaPssSha384,
    SignatureAlgorithm::kRsaPssSha512,   SignatureAlgorithm::kRsaPkcs1Sha256,
    SignatureAlgorithm::kRsaPkcs1Sha384, SignatureAlgorithm::kRsaPkcs1Sha512,
    SignatureAlgorithm::kEcdsaSha256,    SignatureAlgorithm::kEcdsaSha384,
    SignatureAlgorithm::kEcdsaSha512};
constexpr HashAlgorithm kAllHashes[] = {HashAlgorithm::kSha1, HashAlgorithm::kSha224,
                                        HashAlgorithm::kSha256, HashAlgorithm::kSha384,
                                        HashAlgorithm::kSha512};

// ---- helpers
// -----------------------------------------------------------------------------------------

#define REQUIRE_OK(expr)                                       \
  do {                                                         \
    const ::kms::Status require_ok_s_ = ::kms::StatusOf(expr); \
    INFO(require_ok_s_.ToString());                            \
    REQUIRE(require_ok_s_.ok());                               \
  } while (0)

// Checks that `s` is exactly (code, reason).
void CheckError(const Status& s, StatusCode code, Reason reason) {
  INFO("status: " << s.ToString() << " reason " << static_cast<int>(s.reason()));
  CHECK(s.code() == code);
  CHECK(s.reason() == reason);
}
template <typename T>
void CheckError(const StatusOr<T>& s, StatusCode code, Reason reason) {
  REQUIRE_FALSE(s.has_value());
  CheckError(s.error(), code, reason);
}

const Capabilities& Caps() { return TestHsm().capabilities(); }
bool Supported(KeyAlgorithm a) { return Caps().key_algorithms.contains(a); }
bool Supported(SignatureAlgorithm a) { return Caps().signature_algorithms.contains(a); }

mbedtls_md_type_t MdType(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1:
      return MBEDTLS_MD_SHA1;
    case HashAlgorithm::kSha224:
      return MBEDTLS_MD_SHA224;
    case HashAlgorithm::kSha256:
      return MBEDTLS_MD_SHA256;
    case HashAlgorithm::kSha384:
      return MBEDTLS_MD_SHA384;
    case HashAlgorithm::kSha512:
      return MBEDTLS_MD_SHA512;
  }
  return MBEDTLS_MD_NONE;
}

Bytes Digest(HashAlgorithm h, ByteView message) {
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(MdType(h));
  Bytes out(mbedtls_md_get_size(md));
  REQUIRE(mbedtls_md(md, message.data(), message.size(), out.data()) == 0);
  return out;
}

Bytes Hex(std::string_view hex) {
  auto b = HexDecode(hex);
  REQUIRE(b.has_value());
  return *b;
}

// An independent RNG for the mbedTLS side of interop checks.
struct TestRng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  TestRng() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    REQUIRE(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, nullptr, 0) == 0);
  }
  ~TestRng() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
};

struct Pk {
  mbedtls_pk_context ctx;
  Pk() { mbedtls_pk_init(&ctx); }
  ~Pk() { mbedtls_pk_free(&ctx); }
};

// Parses an SPKI with mbedTLS and checks it is the kind `algorithm` names.
void CheckSpki(KeyAlgorithm algorithm, ByteView der, Pk& pk) {
  REQUIRE(mbedtls_pk_parse_public_key(&pk.ctx, der.data(), der.size()) == 0);
  if (IsRsa(algorithm)) {
    REQUIRE(mbedtls_pk_get_type(&pk.ctx) == MBEDTLS_PK_RSA);
    std::size_t bits = algorithm == KeyAlgorithm::kRsa2048   ? 2048
                       : algorithm == KeyAlgorithm::kRsa3072 ? 3072
                                                             : 4096;
    CHECK(mbedtls_pk_get_bitlen(&pk.ctx) == bits);
  } else {
    REQUIRE(mbedtls_pk_get_type(&pk.ctx) == MBEDTLS_PK_ECKEY);
    mbedtls_ecp_group_id want = algorithm == KeyAlgorithm::kEcP256   ? MBEDTLS_ECP_DP_SECP256R1
                                : algorithm == KeyAlgorithm::kEcP384 ? MBEDTLS_ECP_DP_SECP384R1
                                : algorithm == KeyAlgorithm::kEcP521 ? MBEDTLS_ECP_DP_SECP521R1
                                                                     : MBEDTLS_ECP_DP_SECP256K1;
    const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk.ctx);
    REQUIRE(ec != nullptr);
    CHECK(ec->grp.id == want);
  }
}

// Verifies a HAL signature with mbedTLS: proves the format (DER ECDSA, PSS salt = digest length).
bool MbedVerify(ByteView spki, SignatureAlgorithm sig_alg, ByteView digest, ByteView signature) {
  Pk pk;
  if (mbedtls_pk_parse_public_key(&pk.ctx, spki.data(), spki.size()) != 0) return false;
  mbedtls_md_type_t md = MdType(DigestOf(sig_alg));
  switch (sig_alg) {
    case SignatureAlgorithm::kRsaPssSha256:
    case SignatureAlgorithm::kRsaPssSha384:
    case SignatureAlgorithm::kRsaPssSha512: {
      mbedtls_pk_rsassa_pss_options opts{md, static_cast<int>(digest.size())};
      return mbedtls_pk_verify_ext(MBEDTLS_PK_RSASSA_PSS, &opts, &pk.ctx, md, digest.data(),
                                   digest.size(), signature.data(), signature.size()) == 0;
    }
    default:
      return mbedtls_pk_verify(&pk.ctx, md, digest.data(), digest.size(), signature.data(),
                               signature.size()) == 0;
  }
}

// One generated key per (algorithm, purpose), shared by the cases: RSA-4096 generation is slow.
KeyHandle GeneratedKey(KeyAlgorithm algorithm, KeyPurpose purpose) {
  TestHsm();  // opened before the cache exists, so the cache (and its handles) dies first at exit
  static std::mutex mu;
  static std::map<std::pair<KeyAlgorithm, KeyPurpose>, KeyHandle> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{algorithm, purpose}];
  if (!slot) {
    auto k = TestHsm().GenerateKey(algorithm, purpose);
    REQUIRE_OK(k);
    slot = *k;
  }
  return slot;
}

// Some non-secret test bytes.
Bytes Message(std::size_t n, std::uint8_t seed = 0x5a) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + 31 * i);
  return b;
}

// ---- capabilities and keys
// ----------------------------------------------------------------------------

TEST_CASE(KMS_HSM_CASE("HSM reports what it can do and is healthy"), "[hal][contract]") {
  INFO("backend " << testing::TestHsmName());
  CHECK(Caps().aes_gcm);
  CHECK(Caps().key_wrap_pad);
  CHECK(Supported(KeyAlgorithm::kAes256));
  CHECK(Supported(KeyAlgorithm::kEcP256));
  REQUIRE_OK(TestHsm().CheckHealth());
}

TEST_CASE(KMS_HSM_CASE("GenerateKey refuses a purpose the algorithm does not allow"),
          "[hal][contract]") {
  for (KeyAlgorithm a : kAllAlgorithms) {
    for (KeyPurpose p : kAllPurposes) {
      if (PurposeAllowed(a, p)) continue;
      INFO(KeyAlgorithmName(a) << " for " << KeyPurposeName(p));
      CheckError(TestHsm().GenerateKey(a, p), StatusCode::kInvalidArgument,
                 Reason::kInvalidKeyUsage);
    }
  }
}

// Shows that `original` and `unwrapped` are the same key, by an operation across the two.
void CheckSameKey(const KeyHandle& original, const KeyHandle& unwrapped) {
  Hsm& hsm = TestHsm();
  KeyAlgorithm a = original->algorithm();
  Bytes msg = Message(100);
  if (a == KeyAlgorithm::kAes256) {
    auto ct = hsm.EncryptAesGcm(original, msg, AsBytes("aad"));
    REQUIRE_OK(ct);
    auto pt = hsm.DecryptAesGcm(unwrapped, ct->iv, ct->ciphertext, ct->tag, AsBytes("aad"));
    REQUIRE_OK(pt);
    CHECK(ConstantTimeEquals(pt->ExposeSecret(), msg));
  } else if (IsHmac(a)) {
    auto m1 = hsm.ComputeMac(original, msg);
    REQUIRE_OK(m1);
    REQUIRE_OK(hsm.VerifyMac(unwrapped, msg, *m1));
  } else if (original->purpose() == KeyPurpose::kSignVerify) {
    SignatureAlgorithm s =
        IsRsa(a) ? SignatureAlgorithm::kRsaPssSha256 : SignatureAlgorithm::kEcdsaSha256;
    Bytes d = Digest(HashAlgorithm::kSha256, msg);
    auto sig = hsm.SignDigest(unwrapped, s, d);
    REQUIRE_OK(sig);
    REQUIRE_OK(hsm.VerifyDigest(original, s, d, *sig));
  } else {  // RSA encrypt/decrypt
    HashAlgorithm h = *Caps().oaep_hashes.begin();
    auto ct = hsm.EncryptRsaOaep(original, h, msg);
    REQUIRE_OK(ct);
    auto pt = hsm.DecryptRsaOaep(unwrapped, h, *ct);
    REQUIRE_OK(pt);
    CHECK(ConstantTimeEquals(pt->ExposeSecret(), msg));
  }
}

TEST_CASE(KMS_HSM_CASE("Every supported key generates, wraps and unwraps to the same key"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  for (KeyAlgorithm a : kAllAlgorithms) {
    for (KeyPurpose p : kAllPurposes) {
      if (!PurposeAllowed(a, p)) continue;
      INFO(KeyAlgorithmName(a) << " for " << KeyPurposeName(p));
      if (!Supported(a)) {
        CheckError(hsm.GenerateKey(a, p), StatusCode::kUnimplemented,
                   Reason::kMechanismUnsupported);
        continue;
      }
      KeyHandle key = GeneratedKey(a, p);
      CHECK(key->algorithm() == a);
      CHECK(key->purpose() == p);
      auto wrapped = hsm.WrapKey(key);
      REQUIRE_OK(wrapped);
      CHECK(wrapped->algorithm == a);
      CHECK(wrapped->purpose == p);
      CHECK(wrapped->wrapped.size() % 8 == 0);  // RFC 5649 output is whole 64-bit blocks
      CHECK(wrapped->wrapped.size() >= 16);
      CHECK(wrapped->public_key_der.empty() == IsSymmetric(a));
      if (!IsSymmetric(a)) {
        auto pub = hsm.PublicKeyDer(key);
        REQUIRE_OK(pub);
        CHECK(*pub == wrapped->public_key_der);
        Pk pk;
        CheckSpki(a, *pub, pk);
      }
      auto unwrapped = hsm.UnwrapKey(*wrapped);
      REQUIRE_OK(unwrapped);
      CHECK((*unwrapped)->algorithm() == a);
      CHECK((*unwrapped)->purpose() == p);
      if (!IsSymmetric(a)) {
        auto pub2 = hsm.PublicKeyDer(*unwrapped);
        REQUIRE_OK(pub2);
        CHECK(*pub2 == wrapped->public_key_der);
      }
      CheckSameKey(key, *unwrapped);
      // An unwrapped key is a non-extractable session key: it is never wrapped again.
      CheckError(hsm.WrapKey(*unwrapped), StatusCode::kFailedPrecondition,
                 Reason::kPolicyViolation);
    }
  }
}

TEST_CASE(KMS_HSM_CASE("Wrapping the same key twice gives blobs that both unwrap"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle key = GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  auto w1 = hsm.WrapKey(key);
  auto w2 = hsm.WrapKey(key);
  REQUIRE_OK(w1);
  REQUIRE_OK(w2);
  CHECK(w1->wrapped.size() == 40);  // RFC 5649: 32-byte key + 8-byte integrity block
  auto u1 = hsm.UnwrapKey(*w1);
  auto u2 = hsm.UnwrapKey(*w2);
  REQUIRE_OK(u1);
  REQUIRE_OK(u2);
  CheckSameKey(*u1, *u2);
}

TEST_CASE(KMS_HSM_CASE("A tampered or truncated wrapped blob is an invalid ciphertext"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  for (auto [a, p] : {std::pair{KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt},
                      std::pair{KeyAlgorithm::kHmacSha256, KeyPurpose::kMac},
                      std::pair{KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify}}) {
    INFO(KeyAlgorithmName(a));
    auto wrapped = hsm.WrapKey(GeneratedKey(a, p));
    REQUIRE_OK(wrapped);
    for (std::size_t pos :
         {std::size_t{0}, std::size_t{7}, std::size_t{8}, wrapped->wrapped.size() - 1}) {
      INFO("flipped byte " << pos);
      WrappedKey bad = *wrapped;
      bad.wrapped[pos] ^= 0x01;
      CheckError(hsm.UnwrapKey(bad), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    }
    WrappedKey shorter = *wrapped;
    shorter.wrapped.resize(shorter.wrapped.size() - 8);
    CheckError(hsm.UnwrapKey(shorter), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    WrappedKey ragged = *wrapped;
    ragged.wrapped.resize(ragged.wrapped.size() - 3);
    CheckError(hsm.UnwrapKey(ragged), StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  }
}

TEST_CASE(KMS_HSM_CASE("A null key handle is refused"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle null_key;
  CheckError(hsm.EncryptAesGcm(null_key, Message(4), {}), StatusCode::kInvalidArgument,
             Reason::kNone);
  CheckError(hsm.WrapKey(null_key), StatusCode::kInvalidArgument, Reason::kNone);
}

// ---- AES-GCM
// ------------------------------------------------------------------------------------------

TEST_CASE(KMS_HSM_CASE("AES-GCM round trips with AAD, 12-byte IVs and 16-byte tags"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle key = GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  for (std::size_t n :
       {std::size_t{0}, std::size_t{1}, std::size_t{16}, std::size_t{1024}, std::size_t{70000}}) {
    INFO("plaintext size " << n);
    Bytes pt = Message(n);
    auto ct = hsm.EncryptAesGcm(key, pt, AsBytes("context"));
    REQUIRE_OK(ct);
    CHECK(ct->iv.size() == kGcmIvSize);
    CHECK(ct->tag.size() == kGcmTagSize);
    CHECK(ct->ciphertext.size() == n);
    auto back = hsm.DecryptAesGcm(key, ct->iv, ct->ciphertext, ct->tag, AsBytes("context"));
    REQUIRE_OK(back);
    CHECK(ConstantTimeEquals(back->ExposeSecret(), pt));
  }
  // Fresh IVs from the device RNG: two encryptions of the same input differ.
  auto c1 = hsm.EncryptAesGcm(key, Message(32), {});
  auto c2 = hsm.EncryptAesGcm(key, Message(32), {});
  REQUIRE_OK(c1);
  REQUIRE_OK(c2);
  CHECK(c1->iv != c2->iv);
  CHECK(c1->ciphertext != c2->ciphertext);
}

TEST_CASE(KMS_HSM_CASE("AES-GCM output is standard GCM (an imported key, checked by mbedTLS)"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  auto raw = hsm.GenerateRandom(32);
  REQUIRE_OK(raw);
  auto key = hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, *raw);
  REQUIRE_OK(key);
  Bytes pt = Message(77);
  auto ct = hsm.EncryptAesGcm(*key, pt, AsBytes("aad"));
  REQUIRE_OK(ct);
  mbedtls_gcm_context gcm;
  mbedtls_gcm_init(&gcm);
  REQUIRE(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, raw->ExposeSecret().data(), 256) == 0);
  Bytes out(pt.size());
  int rc = mbedtls_gcm_auth_decrypt(&gcm, ct->ciphertext.size(), ct->iv.data(), ct->iv.size(),
                                    AsBytes("aad").data(), 3, ct->tag.data(), ct->tag.size(),
                                    ct->ciphertext.data(), out.data());
  mbedtls_gcm_free(&gcm);
  CHECK(rc == 0);
  CHECK(out == pt);
}

TEST_CASE(KMS_HSM_CASE("AES-GCM refuses other IV and tag sizes and fails closed on tampering"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle key = GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  Bytes pt = Message(48);
  auto ct = hsm.EncryptAesGcm(key, pt, AsBytes("aad"));
  REQUIRE_OK(ct);
  SECTION("8- and 16-byte IVs are refused") {
    for (std::size_t n : {std::size_t{0}, std::size_t{8}, std::size_t{16}}) {
      INFO("IV size " << n);
      Bytes iv(n, 0x11);
      CheckError(hsm.DecryptAesGcm(key, iv, ct->ciphertext, ct->tag, AsBytes("aad")),
                 StatusCode::kInvalidArgument, Reason::kNone);
    }
  }
  SECTION("12-byte (and other short) tags are refused") {
    for (std::size_t n : {std::size_t{0}, std::size_t{12}, std::size_t{15}}) {
      INFO("tag size " << n);
      Bytes tag(ct->tag.begin(), ct->tag.begin() + static_cast<std::ptrdiff_t>(n));
      CheckError(hsm.DecryptAesGcm(key, ct->iv, ct->ciphertext, tag, AsBytes("aad")),
                 StatusCode::kInvalidArgument, Reason::kNone);
    }
  }
  SECTION("tampering with anything authenticated is an invalid ciphertext") {
    Bytes bad_ct = ct->ciphertext;
    bad_ct[5] ^= 0x80;
    CheckError(hsm.DecryptAesGcm(key, ct->iv, bad_ct, ct->tag, AsBytes("aad")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    Bytes bad_tag = ct->tag;
    bad_tag[15] ^= 0x01;
    CheckError(hsm.DecryptAesGcm(key, ct->iv, ct->ciphertext, bad_tag, AsBytes("aad")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    Bytes bad_iv = ct->iv;
    bad_iv[0] ^= 0x01;
    CheckError(hsm.DecryptAesGcm(key, bad_iv, ct->ciphertext, ct->tag, AsBytes("aad")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    CheckError(hsm.DecryptAesGcm(key, ct->iv, ct->ciphertext, ct->tag, AsBytes("aaD")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    CheckError(hsm.DecryptAesGcm(key, ct->iv, ct->ciphertext, ct->tag, {}),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
    Bytes shorter(ct->ciphertext.begin(), ct->ciphertext.end() - 1);
    CheckError(hsm.DecryptAesGcm(key, ct->iv, shorter, ct->tag, AsBytes("aad")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  }
  SECTION("another key cannot decrypt") {
    auto other = hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
    REQUIRE_OK(other);
    CheckError(hsm.DecryptAesGcm(*other, ct->iv, ct->ciphertext, ct->tag, AsBytes("aad")),
               StatusCode::kInvalidArgument, Reason::kInvalidCiphertext);
  }
}

TEST_CASE(KMS_HSM_CASE("AES-GCM refuses keys made for something else"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  GcmCiphertext ct{Bytes(12), Bytes(4), Bytes(16)};
  for (auto [a, p] : {std::pair{KeyAlgorithm::kHmacSha256, KeyPurpose::kMac},
                      std::pair{KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify},
                      std::pair{KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt},
                      std::pair{KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify}}) {
    INFO(KeyAlgorithmName(a) << " for " << KeyPurposeName(p));
    KeyHandle key = GeneratedKey(a, p);
    CheckError(hsm.EncryptAesGcm(key, Message(4), {}), StatusCode::kInvalidArgument,
               Reason::kInvalidKeyUsage);
    CheckError(hsm.DecryptAesGcm(key, ct.iv, ct.ciphertext, ct.tag, {}),
               StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  }
}

// ---- signatures
// ---------------------------------------------------------------------------------------

TEST_CASE(KMS_HSM_CASE("Every allowed signature algorithm signs and verifies, interoperably"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  Bytes msg = Message(200);
  for (KeyAlgorithm a : kAllAlgorithms) {
    if (!PurposeAllowed(a, KeyPurpose::kSignVerify) || !Supported(a)) continue;
    KeyHandle key = GeneratedKey(a, KeyPurpose::kSignVerify);
    auto spki = hsm.PublicKeyDer(key);
    REQUIRE_OK(spki);
    auto pub = hsm.ImportPublicKey(a, KeyPurpose::kSignVerify, *spki);
    REQUIRE_OK(pub);
    for (SignatureAlgorithm s : kAllSignatures) {
      INFO(KeyAlgorithmName(a) << " with " << SignatureAlgorithmName(s));
      Bytes digest = Digest(DigestOf(s), msg);
      if (!SignatureAllowed(a, s)) {
        CheckError(hsm.SignDigest(key, s, digest), StatusCode::kInvalidArgument,
                   Reason::kInvalidKeyUsage);
        continue;
      }
      if (!Supported(s)) {
        CheckError(hsm.SignDigest(key, s, digest), StatusCode::kUnimplemented,
                   Reason::kMechanismUnsupported);
        continue;
      }
      auto sig = hsm.SignDigest(key, s, digest);
      REQUIRE_OK(sig);
      REQUIRE_OK(hsm.VerifyDigest(key, s, digest, *sig));
      REQUIRE_OK(hsm.VerifyDigest(*pub, s, digest, *sig));
      CHECK(MbedVerify(*spki, s, digest, *sig));
      // Wrong digest, flipped signature bytes, empty signature: all kInvalidSignature.
      Bytes other = Digest(DigestOf(s), AsBytes("another message"));
      CheckError(hsm.VerifyDigest(*pub, s, other, *sig), StatusCode::kInvalidArgument,
                 Reason::kInvalidSignature);
      Bytes bad = *sig;
      bad[bad.size() / 2] ^= 0x01;
      CheckError(hsm.VerifyDigest(*pub, s, digest, bad), StatusCode::kInvalidArgument,
                 Reason::kInvalidSignature);
      bad = *sig;
      bad.back() ^= 0x01;
      CheckError(hsm.VerifyDigest(*pub, s, digest, bad), StatusCode::kInvalidArgument,
                 Reason::kInvalidSignature);
      CheckError(hsm.VerifyDigest(*pub, s, digest, {}), StatusCode::kInvalidArgument,
                 Reason::kInvalidSignature);
      Bytes longer = *sig;
      longer.push_back(0);
      CheckError(hsm.VerifyDigest(*pub, s, digest, longer), StatusCode::kInvalidArgument,
                 Reason::kInvalidSignature);
      // A digest of the wrong size is the caller's bug, not a bad signature.
      Bytes short_digest(digest.begin(), digest.end() - 1);
      CheckError(hsm.SignDigest(key, s, short_digest), StatusCode::kInvalidArgument, Reason::kNone);
      CheckError(hsm.VerifyDigest(*pub, s, short_digest, *sig), StatusCode::kInvalidArgument,
                 Reason::kNone);
    }
  }
}

// Re-encodes a DER ECDSA signature's two INTEGER contents with the given quirks.
Bytes EncodeEcdsa(Bytes r, Bytes s, bool long_form_seq_len, bool pad_r) {
  auto int_tlv = [](Bytes v) {
    Bytes out = {0x02, static_cast<std::uint8_t>(v.size())};
    out.insert(out.end(), v.begin(), v.end());
    return out;
  };
  if (pad_r) r.insert(r.begin(), 0x00);
  Bytes body = int_tlv(r);
  Bytes sb = int_tlv(s);
  body.insert(body.end(), sb.begin(), sb.end());
  Bytes out = {0x30};
  if (long_form_seq_len || body.size() >= 0x80) out.push_back(0x81);
  out.push_back(static_cast<std::uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// Splits a DER Ecdsa-Sig-Value (as produced by the HAL, short or 0x81 length) into r and s
// contents.
std::pair<Bytes, Bytes> SplitEcdsa(const Bytes& sig) {
  std::size_t pos = sig[1] == 0x81 ? 3 : 2;
  REQUIRE(sig[pos] == 0x02);
  std::size_t rlen = sig[pos + 1];
  Bytes r(sig.begin() + static_cast<std::ptrdiff_t>(pos + 2),
          sig.begin() + static_cast<std::ptrdiff_t>(pos + 2 + rlen));
  pos += 2 + rlen;
  REQUIRE(sig[pos] == 0x02);
  std::size_t slen = sig[pos + 1];
  Bytes s(sig.begin() + static_cast<std::ptrdiff_t>(pos + 2),
          sig.begin() + static_cast<std::ptrdiff_t>(pos + 2 + slen));
  return {r, s};
}

TEST_CASE(KMS_HSM_CASE("ECDSA verification accepts strict DER only"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle key = GeneratedKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
  Bytes digest = Digest(HashAlgorithm::kSha256, Message(10));
  auto sig = hsm.SignDigest(key, SignatureAlgorithm::kEcdsaSha256, digest);
  REQUIRE_OK(sig);
  auto [r, s] = SplitEcdsa(*sig);
  // Sanity: re-encoding without quirks is the same signature and verifies.
  Bytes same = EncodeEcdsa(r, s, false, false);
  REQUIRE(same == *sig);
  auto verify = [&](const Bytes& candidate) {
    return hsm.VerifyDigest(key, SignatureAlgorithm::kEcdsaSha256, digest, candidate);
  };
  REQUIRE_OK(verify(same));
  SECTION("long-form length where short form fits (BER)") {
    CheckError(verify(EncodeEcdsa(r, s, true, false)), StatusCode::kInvalidArgument,
               Reason::kInvalidSignature);
  }
  SECTION("non-minimal INTEGER (extra leading zero)") {
    // Any extra leading zero is non-minimal (X.690 §8.3.2), whether or not r already had one.
    CheckError(verify(EncodeEcdsa(r, s, false, true)), StatusCode::kInvalidArgument,
               Reason::kInvalidSignature);
  }
  SECTION("trailing garbage after the SEQUENCE") {
    Bytes t = *sig;
    t.push_back(0x00);
    CheckError(verify(t), StatusCode::kInvalidArgument, Reason::kInvalidSignature);
  }
  SECTION("raw r||s (IEEE P1363) instead of DER") {
    Bytes raw(64, 0);
    std::copy(
        r.end() - std::min<std::ptrdiff_t>(32, static_cast<std::ptrdiff_t>(r.size())), r.end(),
        raw.begin() + 32 - std::min<std::ptrdiff_t>(32, static_cast<std::ptrdiff_t>(r.size())));
    std::copy(s.end() - std::min<std::ptrdiff_t>(32, static_cast<std::ptrdiff_t>(s.size())),
              s.end(),
              raw.end() - std::min<std::ptrdiff_t>(32, static_cast<std::ptrdiff_t>(s.size())));
    CheckError(verify(raw), StatusCode::kInvalidArgument, Reason::kInvalidSignature);
  }
  SECTION("r and s swapped") {
    CheckError(verify(EncodeEcdsa(s, r, false, false)), StatusCode::kInvalidArgument,
               Reason::kInvalidSignature);
  }
}

TEST_CASE(KMS_HSM_CASE("Signing refuses keys made for something else"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  Bytes d = Digest(HashAlgorithm::kSha256, Message(3));
  for (auto [a, p] : {std::pair{KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt},
                      std::pair{KeyAlgorithm::kHmacSha256, KeyPurpose::kMac},
                      std::pair{KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt}}) {
    INFO(KeyAlgorithmName(a) << " for " << KeyPurposeName(p));
    KeyHandle key = GeneratedKey(a, p);
    CheckError(hsm.SignDigest(key, SignatureAlgorithm::kRsaPssSha256, d),
               StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
    CheckError(hsm.VerifyDigest(key, SignatureAlgorithm::kRsaPssSha256, d, Bytes(256)),
               StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  }
  // An EC key with an RSA scheme and the other way round.
  CheckError(hsm.SignDigest(GeneratedKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify),
                            SignatureAlgorithm::kRsaPkcs1Sha256, d),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  CheckError(hsm.SignDigest(GeneratedKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify),
                            SignatureAlgorithm::kEcdsaSha256, d),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  // A public key cannot sign.
  auto spki = hsm.PublicKeyDer(GeneratedKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
  REQUIRE_OK(spki);
  auto pub = hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, *spki);
  REQUIRE_OK(pub);
  CheckError(hsm.SignDigest(*pub, SignatureAlgorithm::kEcdsaSha256, d),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
}

// ---- HMAC
// ---------------------------------------------------------------------------------------------

TEST_CASE(KMS_HSM_CASE("HMAC computes and verifies full-length tags"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  Bytes msg = Message(300);
  for (KeyAlgorithm a : {KeyAlgorithm::kHmacSha224, KeyAlgorithm::kHmacSha256,
                         KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512}) {
    if (!Supported(a)) continue;
    INFO(KeyAlgorithmName(a));
    KeyHandle key = GeneratedKey(a, KeyPurpose::kMac);
    auto mac = hsm.ComputeMac(key, msg);
    REQUIRE_OK(mac);
    CHECK(mac->size() == DigestSize(*HmacHashOf(a)));
    auto again = hsm.ComputeMac(key, msg);
    REQUIRE_OK(again);
    CHECK(*again == *mac);
    REQUIRE_OK(hsm.VerifyMac(key, msg, *mac));
    auto empty_mac = hsm.ComputeMac(key, {});
    REQUIRE_OK(empty_mac);
    REQUIRE_OK(hsm.VerifyMac(key, {}, *empty_mac));
    Bytes bad = *mac;
    bad[0] ^= 0x01;
    CheckError(hsm.VerifyMac(key, msg, bad), StatusCode::kInvalidArgument, Reason::kInvalidMac);
    Bytes truncated(mac->begin(), mac->begin() + 16);
    CheckError(hsm.VerifyMac(key, msg, truncated), StatusCode::kInvalidArgument,
               Reason::kInvalidMac);
    CheckError(hsm.VerifyMac(key, msg, {}), StatusCode::kInvalidArgument, Reason::kInvalidMac);
    CheckError(hsm.VerifyMac(key, Message(300, 0x5b), *mac), StatusCode::kInvalidArgument,
               Reason::kInvalidMac);
  }
}

TEST_CASE(KMS_HSM_CASE("HMAC of imported keys matches RFC 4231 test case 7"), "[hal][contract]") {
  // RFC 4231 §4.8: a 131-byte key (longer than the block size, so hashed first).
  Hsm& hsm = TestHsm();
  std::string_view data =
      "This is a test using a larger than block-size key and a larger than block-size data. The "
      "key "
      "needs to be hashed before being used by the HMAC algorithm.";
  struct Case {
    KeyAlgorithm algorithm;
    std::string_view mac_hex;
  } cases[] = {
      {KeyAlgorithm::kHmacSha224, "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1"},
      {KeyAlgorithm::kHmacSha256,
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
      {KeyAlgorithm::kHmacSha384,
       "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c4"
       "6523e"},
      {KeyAlgorithm::kHmacSha512,
       "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e"
       "4de15"
       "134676fb6de0446065c97440fa8c6a58"},
  };
  SecretBytes key_bytes = SecretBytes::CopyFrom(Bytes(131, 0xaa));
  for (const Case& c : cases) {
    if (!Supported(c.algorithm)) continue;
    INFO(KeyAlgorithmName(c.algorithm));
    auto key = hsm.ImportKey(c.algorithm, KeyPurpose::kMac, key_bytes);
    REQUIRE_OK(key);
    auto mac = hsm.ComputeMac(*key, AsBytes(data));
    REQUIRE_OK(mac);
    CHECK(*mac == Hex(c.mac_hex));
    REQUIRE_OK(hsm.VerifyMac(*key, AsBytes(data), Hex(c.mac_hex)));
  }
}

// Contract (hal/hsm.h extension, see tests/support/fake_hsm.h): ImportKey takes HMAC keys of any
// length from the hash's output size (RFC 2104 §3 discourages shorter ones; SoftHSM2 refuses them
// at use with CKR_KEY_SIZE_RANGE, so a shorter key must be refused at import rather than fail
// later).
TEST_CASE(KMS_HSM_CASE("HMAC keys shorter than the digest are refused at import"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  for (KeyAlgorithm a :
       {KeyAlgorithm::kHmacSha256, KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512}) {
    INFO(KeyAlgorithmName(a));
    std::size_t d = DigestSize(*HmacHashOf(a));
    CheckError(hsm.ImportKey(a, KeyPurpose::kMac, SecretBytes(d - 1)), StatusCode::kInvalidArgument,
               Reason::kNone);
    auto ok = hsm.ImportKey(a, KeyPurpose::kMac, SecretBytes(d));
    REQUIRE_OK(ok);
    REQUIRE_OK(hsm.ComputeMac(*ok, Message(5)));
    auto longer = hsm.ImportKey(a, KeyPurpose::kMac, SecretBytes(d + 1));
    REQUIRE_OK(longer);
    REQUIRE_OK(hsm.ComputeMac(*longer, Message(5)));
  }
}

TEST_CASE(KMS_HSM_CASE("MAC operations refuse keys made for something else"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  for (auto [a, p] : {std::pair{KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt},
                      std::pair{KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify}}) {
    INFO(KeyAlgorithmName(a));
    KeyHandle key = GeneratedKey(a, p);
    CheckError(hsm.ComputeMac(key, Message(3)), StatusCode::kInvalidArgument,
               Reason::kInvalidKeyUsage);
    CheckError(hsm.VerifyMac(key, Message(3), Bytes(32)), StatusCode::kInvalidArgument,
               Reason::kInvalidKeyUsage);
  }
}

// ---- RSA-OAEP
// -----------------------------------------------------------------------------------------

TEST_CASE(
    KMS_HSM_CASE("RSA-OAEP works for the hashes the device lists and is refused clearly otherwise"),
    "[hal][contract]") {
  Hsm& hsm = TestHsm();
  KeyHandle key = GeneratedKey(KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt);
  auto spki = hsm.PublicKeyDer(key);
  REQUIRE_OK(spki);
  auto pub = hsm.ImportPublicKey(KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt, *spki);
  REQUIRE_OK(pub);
  Bytes pt = Message(32);
  for (HashAlgorithm h : kAllHashes) {
    INFO("OAEP with " << HashAlgorithmName(h));
    if (!Caps().oaep_hashes.contains(h)) {
      CheckError(hsm.EncryptRsaOaep(*pub, h, pt), StatusCode::kUnimplemented,
                 Reason::kMechanismUnsupported);
      CheckError(hsm.DecryptRsaOaep(key, h, Bytes(256)), StatusCode::kUnimplemented,
                 Reason::kMechanismUnsupported);
      continue;
    }
    auto ct = hsm.EncryptRsaOaep(*pub, h, pt);
    REQUIRE_OK(ct);
    CHECK(ct->size() == 256);
    auto back = hsm.DecryptRsaOaep(key, h, *ct);
    REQUIRE_OK(back);
    CHECK(ConstantTimeEquals(back->ExposeSecret(), pt));
    // Interop: mbedTLS encrypts with the exported public key, the device decrypts.
    {
      Pk pk;
      REQUIRE(mbedtls_pk_parse_public_key(&pk.ctx, spki->data(), spki->size()) == 0);
      mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
      mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MdType(h));
      TestRng rng;
      Bytes mct(256);
      REQUIRE(mbedtls_rsa_rsaes_oaep_encrypt(rsa, mbedtls_ctr_drbg_random, &rng.drbg,
                                             MBEDTLS_RSA_PUBLIC, nullptr, 0, pt.size(), pt.data(),
                                             mct.data()) == 0);
      auto dec = hsm.DecryptRsaOaep(key, h, mct);
      REQUIRE_OK(dec);
      CHECK(ConstantTimeEquals(dec->ExposeSecret(), pt));
    }
    Bytes bad = *ct;
    bad[100] ^= 0x01;
    CheckError(hsm.DecryptRsaOaep(key, h, bad), StatusCode::kInvalidArgument,
               Reason::kInvalidCiphertext);
    // A plaintext longer than k - 2hLen - 2 (RFC 8017 §7.1.1) cannot be encrypted.
    Bytes too_long(256 - 2 * DigestSize(h) - 1, 0x42);
    CheckError(hsm.EncryptRsaOaep(*pub, h, too_long), StatusCode::kInvalidArgument, Reason::kNone);
  }
  // Sign keys, EC keys and AES keys do not do OAEP.
  HashAlgorithm any = HashAlgorithm::kSha1;
  CheckError(
      hsm.EncryptRsaOaep(GeneratedKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify), any, pt),
      StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  CheckError(hsm.DecryptRsaOaep(GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt),
                                any, Bytes(256)),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
}

// ---- random, public keys, exportable pairs, import
// ---------------------------------------------------

TEST_CASE(KMS_HSM_CASE("GenerateRandom returns the size asked for, fresh each time"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  for (std::size_t n :
       {std::size_t{1}, std::size_t{12}, std::size_t{32}, std::size_t{1000}, std::size_t{4096}}) {
    INFO("size " << n);
    auto r = hsm.GenerateRandom(n);
    REQUIRE_OK(r);
    CHECK(r->size() == n);
  }
  auto a = hsm.GenerateRandom(32);
  auto b = hsm.GenerateRandom(32);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  CHECK_FALSE(*a == *b);
  CHECK_FALSE(*a == SecretBytes(32));
}

TEST_CASE(KMS_HSM_CASE("PublicKeyDer is refused for symmetric keys"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  CheckError(hsm.PublicKeyDer(GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt)),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  CheckError(hsm.PublicKeyDer(GeneratedKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac)),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
}

TEST_CASE(
    KMS_HSM_CASE("GenerateExportableKeyPair returns a PKCS#8 private key matching its public key"),
    "[hal][contract]") {
  Hsm& hsm = TestHsm();
  TestRng rng;
  for (KeyAlgorithm a : {KeyAlgorithm::kEcP256, KeyAlgorithm::kEcP384, KeyAlgorithm::kEcP521,
                         KeyAlgorithm::kEcSecp256k1, KeyAlgorithm::kRsa2048}) {
    if (!Supported(a)) continue;
    INFO(KeyAlgorithmName(a));
    auto pair = hsm.GenerateExportableKeyPair(a);
    REQUIRE_OK(pair);
    Pk pub;
    CheckSpki(a, pair->public_key_der, pub);
    Pk priv;
    REQUIRE(mbedtls_pk_parse_key(&priv.ctx, pair->private_key_pkcs8.ExposeSecret().data(),
                                 pair->private_key_pkcs8.size(), nullptr, 0) == 0);
    // PKCS#8 (RFC 5208): SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING }.
    ByteView p8 = pair->private_key_pkcs8.ExposeSecret();
    REQUIRE(p8.size() > 8);
    CHECK(p8[0] == 0x30);
    CHECK(mbedtls_pk_check_pair(&pub.ctx, &priv.ctx) == 0);
    // The pair works through the HAL: sign with mbedTLS, verify in the device.
    Bytes digest = Digest(HashAlgorithm::kSha256, Message(20));
    Bytes sig(MBEDTLS_PK_SIGNATURE_MAX_SIZE);
    std::size_t sig_len = 0;
    REQUIRE(mbedtls_pk_sign(&priv.ctx, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig.data(),
                            &sig_len, mbedtls_ctr_drbg_random, &rng.drbg) == 0);
    sig.resize(sig_len);
    auto key = hsm.ImportPublicKey(a, KeyPurpose::kSignVerify, pair->public_key_der);
    REQUIRE_OK(key);
    SignatureAlgorithm s =
        IsRsa(a) ? SignatureAlgorithm::kRsaPkcs1Sha256 : SignatureAlgorithm::kEcdsaSha256;
    REQUIRE_OK(hsm.VerifyDigest(*key, s, digest, sig));
    // And it enters the device through ImportKey.
    auto imported = hsm.ImportKey(a, KeyPurpose::kSignVerify, pair->private_key_pkcs8);
    REQUIRE_OK(imported);
    auto hal_sig = hsm.SignDigest(*imported, s, digest);
    REQUIRE_OK(hal_sig);
    CHECK(MbedVerify(pair->public_key_der, s, digest, *hal_sig));
    auto imported_pub = hsm.PublicKeyDer(*imported);
    REQUIRE_OK(imported_pub);
    CHECK(*imported_pub == pair->public_key_der);
  }
  // Not a key pair algorithm: the caller's bug (firmware maps key specs), not a key's wrong usage.
  CheckError(hsm.GenerateExportableKeyPair(KeyAlgorithm::kAes256), StatusCode::kInvalidArgument,
             Reason::kNone);
  CheckError(hsm.GenerateExportableKeyPair(KeyAlgorithm::kHmacSha256), StatusCode::kInvalidArgument,
             Reason::kNone);
}

TEST_CASE(KMS_HSM_CASE("ImportKey checks material and makes keys that cannot be wrapped"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  SECTION("AES-256 takes exactly 32 bytes") {
    CheckError(hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, SecretBytes(16)),
               StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, SecretBytes(33)),
               StatusCode::kInvalidArgument, Reason::kNone);
    auto key = hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, SecretBytes(32));
    REQUIRE_OK(key);
    CHECK((*key)->algorithm() == KeyAlgorithm::kAes256);
    CheckError(hsm.WrapKey(*key), StatusCode::kFailedPrecondition, Reason::kPolicyViolation);
  }
  SECTION("the purpose must suit the algorithm") {
    CheckError(hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kMac, SecretBytes(32)),
               StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
    CheckError(
        hsm.ImportKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kEncryptDecrypt, SecretBytes(32)),
        StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  }
  SECTION("private keys are DER PKCS#8 of the named kind") {
    auto pair = hsm.GenerateExportableKeyPair(KeyAlgorithm::kEcP384);
    REQUIRE_OK(pair);
    CheckError(
        hsm.ImportKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, pair->private_key_pkcs8),
        StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(
        hsm.ImportKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify, pair->private_key_pkcs8),
        StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.ImportKey(KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify,
                             SecretBytes::CopyFrom(Message(40))),
               StatusCode::kInvalidArgument, Reason::kNone);
    // The same key as SEC1 ECPrivateKey (RFC 5915), not wrapped in PKCS#8, is refused.
    Pk sec1_pk;
    REQUIRE(mbedtls_pk_parse_key(&sec1_pk.ctx, pair->private_key_pkcs8.ExposeSecret().data(),
                                 pair->private_key_pkcs8.size(), nullptr, 0) == 0);
    SecretBytes sec1_buf(1024);
    int n = mbedtls_pk_write_key_der(&sec1_pk.ctx, sec1_buf.ExposeSecretMutable().data(),
                                     sec1_buf.size());
    REQUIRE(n > 0);
    SecretBytes sec1 =
        SecretBytes::CopyFrom(sec1_buf.ExposeSecret().last(static_cast<std::size_t>(n)));
    CheckError(hsm.ImportKey(KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify, sec1),
               StatusCode::kInvalidArgument, Reason::kNone);
    auto key =
        hsm.ImportKey(KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify, pair->private_key_pkcs8);
    REQUIRE_OK(key);
    CheckError(hsm.WrapKey(*key), StatusCode::kFailedPrecondition, Reason::kPolicyViolation);
  }
}

TEST_CASE(KMS_HSM_CASE("ImportPublicKey checks the SPKI against the algorithm"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  auto p256 = hsm.PublicKeyDer(GeneratedKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
  REQUIRE_OK(p256);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify, *p256),
             StatusCode::kInvalidArgument, Reason::kNone);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify, *p256),
             StatusCode::kInvalidArgument, Reason::kNone);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, Message(91)),
             StatusCode::kInvalidArgument, Reason::kNone);
  Bytes truncated(p256->begin(), p256->end() - 1);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, truncated),
             StatusCode::kInvalidArgument, Reason::kNone);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kEncryptDecrypt, *p256),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  CheckError(hsm.ImportPublicKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, *p256),
             StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage);
  auto pub = hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, *p256);
  REQUIRE_OK(pub);
  CheckError(hsm.WrapKey(*pub), StatusCode::kFailedPrecondition, Reason::kPolicyViolation);
  auto back = hsm.PublicKeyDer(*pub);
  REQUIRE_OK(back);
  CHECK(*back == *p256);
}

// ---- token data
// --------------------------------------------------------------------------------------

// A label no other case wrote: the backend lives as long as the process (hsm_test_backend.h), so
// running the whole binary at once puts every case on one token.
std::string FreshLabel(std::string_view what) {
  auto r = TestHsm().GenerateRandom(8);
  REQUIRE_OK(r);
  return std::string(what) + "-" + HexEncode(r->ExposeSecret());
}

Bytes ReadBack(std::string_view label) {
  auto value = TestHsm().ReadTokenData(label);
  REQUIRE_OK(value);
  return *value;
}

TEST_CASE(KMS_HSM_CASE("Token data: an absent label is NotFound"), "[hal][contract]") {
  const std::string label = FreshLabel("absent");
  CheckError(TestHsm().ReadTokenData(label), StatusCode::kNotFound, Reason::kNone);
}

TEST_CASE(KMS_HSM_CASE("Token data: a written value reads back"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  const std::string label = FreshLabel("written");
  REQUIRE_OK(hsm.WriteTokenData(label, AsBytes("v1 epoch=42")));
  CHECK(ToString(ReadBack(label)) == "v1 epoch=42");
  // Every byte value survives, and a value past 64 bytes (the binding's first read buffer).
  Bytes all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string binary = FreshLabel("binary");
  REQUIRE_OK(hsm.WriteTokenData(binary, all));
  CHECK(ReadBack(binary) == all);
}

TEST_CASE(KMS_HSM_CASE("Token data: an overwrite replaces the value"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  const std::string label = FreshLabel("overwritten");
  REQUIRE_OK(hsm.WriteTokenData(label, Message(1024, 1)));
  REQUIRE_OK(hsm.WriteTokenData(label, AsBytes("v1 epoch=7")));
  CHECK(ToString(ReadBack(label)) == "v1 epoch=7");  // nothing left of the longer value
  REQUIRE_OK(hsm.WriteTokenData(label, Message(300, 2)));
  CHECK(ReadBack(label) == Message(300, 2));
}

TEST_CASE(KMS_HSM_CASE("Token data: two labels are independent"), "[hal][contract]") {
  Hsm& hsm = TestHsm();
  const std::string a = FreshLabel("first");
  const std::string b = FreshLabel("second");
  REQUIRE_OK(hsm.WriteTokenData(a, AsBytes("alpha")));
  CheckError(hsm.ReadTokenData(b), StatusCode::kNotFound, Reason::kNone);
  REQUIRE_OK(hsm.WriteTokenData(b, AsBytes("beta")));
  REQUIRE_OK(hsm.WriteTokenData(a, AsBytes("alpha 2")));
  CHECK(ToString(ReadBack(a)) == "alpha 2");
  CHECK(ToString(ReadBack(b)) == "beta");
  // A label that is a prefix of another is another label.
  CheckError(hsm.ReadTokenData(a.substr(0, a.size() - 1)), StatusCode::kNotFound, Reason::kNone);
}

TEST_CASE(KMS_HSM_CASE("Token data: labels of 1..64 bytes and values of 1..1024 bytes only"),
          "[hal][contract]") {
  Hsm& hsm = TestHsm();
  const std::string label = FreshLabel("limits");
  REQUIRE_OK(hsm.WriteTokenData(label, AsBytes("kept")));
  SECTION("the label must be 1..64 bytes, for reads and writes") {
    CheckError(hsm.ReadTokenData(""), StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.WriteTokenData("", AsBytes("x")), StatusCode::kInvalidArgument, Reason::kNone);
    const std::string too_long = label + std::string(65 - label.size(), 'x');
    REQUIRE(too_long.size() == 65);
    CheckError(hsm.ReadTokenData(too_long), StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.WriteTokenData(too_long, AsBytes("x")), StatusCode::kInvalidArgument,
               Reason::kNone);
    // 64 bytes is still a label.
    const std::string longest = too_long.substr(0, 64);
    CheckError(hsm.ReadTokenData(longest), StatusCode::kNotFound, Reason::kNone);
    REQUIRE_OK(hsm.WriteTokenData(longest, AsBytes("x")));
    CHECK(ToString(ReadBack(longest)) == "x");
  }
  SECTION("the value must be 1..1024 bytes, and a refused write changes nothing") {
    CheckError(hsm.WriteTokenData(label, Bytes()), StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.WriteTokenData(label, Bytes(1025, 0x11)), StatusCode::kInvalidArgument,
               Reason::kNone);
    CHECK(ToString(ReadBack(label)) == "kept");
    const std::string refused = FreshLabel("refused");
    CheckError(hsm.WriteTokenData(refused, Bytes()), StatusCode::kInvalidArgument, Reason::kNone);
    CheckError(hsm.ReadTokenData(refused), StatusCode::kNotFound, Reason::kNone);
    REQUIRE_OK(hsm.WriteTokenData(label, Bytes(1024, 0x22)));
    CHECK(ReadBack(label) == Bytes(1024, 0x22));
    REQUIRE_OK(hsm.WriteTokenData(label, Bytes(1, 0x33)));
    CHECK(ReadBack(label) == Bytes(1, 0x33));
  }
}

TEST_CASE(KMS_HSM_CASE("Token data: concurrent writers of a new label leave one value"),
          "[hal][contract][concurrency]") {
  Hsm& hsm = TestHsm();
  const std::string label = FreshLabel("raced");
  std::vector<std::thread> threads;
  std::vector<Status> results(4);
  for (std::size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3 && results[t].ok(); ++i) {
        results[t] = hsm.WriteTokenData(label, Bytes(8, static_cast<std::uint8_t>(t)));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const Status& r : results) CHECK(r.ok());
  // Two objects under the label would make every later call refuse (Internal).
  Bytes value = ReadBack(label);
  REQUIRE(value.size() == 8);
  CHECK(value[0] < results.size());
  CHECK(value == Bytes(8, value[0]));
  REQUIRE_OK(hsm.WriteTokenData(label, AsBytes("after")));
  CHECK(ToString(ReadBack(label)) == "after");
}

TEST_CASE(KMS_HSM_CASE("The HSM serves concurrent callers"), "[hal][contract][concurrency]") {
  Hsm& hsm = TestHsm();
  KeyHandle aes = GeneratedKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  KeyHandle ec = GeneratedKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (std::size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Bytes pt = Message(64, static_cast<std::uint8_t>(t));
        auto ct = hsm.EncryptAesGcm(aes, pt, {});
        if (!ct) {
          ++failures[t];
          continue;
        }
        auto back = hsm.DecryptAesGcm(aes, ct->iv, ct->ciphertext, ct->tag, {});
        if (!back || !ConstantTimeEquals(back->ExposeSecret(), pt)) ++failures[t];
        Bytes d(32, static_cast<std::uint8_t>(i));
        auto sig = hsm.SignDigest(ec, SignatureAlgorithm::kEcdsaSha256, d);
        if (!sig || !hsm.VerifyDigest(ec, SignatureAlgorithm::kEcdsaSha256, d, *sig).ok())
          ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) CHECK(f == 0);
}

}  // namespace
}  // namespace kms::hal
