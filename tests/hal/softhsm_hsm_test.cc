// The PKCS#11 HAL on SoftHSM2: round trips for every key kind, cross-checks with mbedTLS, exact
// errors, opening errors, the session pool under threads, and the dev token folder.
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "provisioning/dev_token.h"
#include "tests/hal/softhsm_test_util.h"

namespace kms::testing {
namespace {

using hal::HashAlgorithm;
using hal::KeyAlgorithm;
using hal::KeyPurpose;
using hal::SignatureAlgorithm;

Bytes Digest(HashAlgorithm h, std::string_view message) {
  mbedtls_md_type_t t = h == HashAlgorithm::kSha256   ? MBEDTLS_MD_SHA256
                        : h == HashAlgorithm::kSha384 ? MBEDTLS_MD_SHA384
                                                      : MBEDTLS_MD_SHA512;
  const mbedtls_md_info_t* info = mbedtls_md_info_from_type(t);
  Bytes out(mbedtls_md_get_size(info));
  REQUIRE(mbedtls_md(info, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                     out.data()) == 0);
  return out;
}

// Verifies with mbedTLS, independently of the device.
bool SoftwareVerify(ByteView spki, SignatureAlgorithm alg, ByteView digest, ByteView sig) {
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  bool ok = false;
  if (mbedtls_pk_parse_public_key(&pk, spki.data(), spki.size()) == 0) {
    HashAlgorithm h = hal::DigestOf(alg);
    mbedtls_md_type_t md = h == HashAlgorithm::kSha256   ? MBEDTLS_MD_SHA256
                           : h == HashAlgorithm::kSha384 ? MBEDTLS_MD_SHA384
                                                         : MBEDTLS_MD_SHA512;
    if (alg == SignatureAlgorithm::kRsaPssSha256 || alg == SignatureAlgorithm::kRsaPssSha384 ||
        alg == SignatureAlgorithm::kRsaPssSha512) {
      mbedtls_pk_rsassa_pss_options opts{md, static_cast<int>(digest.size())};
      ok = mbedtls_pk_verify_ext(MBEDTLS_PK_RSASSA_PSS, &opts, &pk, md, digest.data(),
                                 digest.size(), sig.data(), sig.size()) == 0;
    } else {
      ok = mbedtls_pk_verify(&pk, md, digest.data(), digest.size(), sig.data(), sig.size()) == 0;
    }
  }
  mbedtls_pk_free(&pk);
  return ok;
}

TEST_CASE("capabilities are asked of SoftHSM2", "[softhsm][hal]") {
  auto fx = MakeFixture();
  const hal::Capabilities& caps = fx->hsm().capabilities();
  CHECK(caps.aes_gcm);
  CHECK(caps.key_wrap_pad);
  CHECK(caps.key_algorithms.size() == 12);  // all of key_types.h, secp256k1 included
  CHECK(caps.signature_algorithms.size() == 9);
  // SoftHSM2 lists CKM_RSA_PKCS_OAEP but only does SHA-1 (docs/softhsm2.md "Mechanisms").
  CHECK(caps.oaep_hashes == std::set<HashAlgorithm>{HashAlgorithm::kSha1});
}

TEST_CASE("symmetric keys: generate then wrap then unwrap then use", "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  auto aes = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  hal::WrappedKey w = Must(hsm.WrapKey(aes));
  CHECK(w.wrapped.size() == 40);  // RFC 5649: 32 bytes + 8
  CHECK(w.public_key_der.empty());
  auto aes2 = Must(hsm.UnwrapKey(w));
  auto c = Must(hsm.EncryptAesGcm(aes, AsBytes(""), {}));
  CHECK(c.ciphertext.empty());
  CHECK(Must(hsm.DecryptAesGcm(aes2, c.iv, c.ciphertext, c.tag, {})).empty());
  Bytes big(100000, 0xA5);
  auto cb = Must(hsm.EncryptAesGcm(aes2, big, AsBytes("x")));
  CHECK(Must(hsm.DecryptAesGcm(aes, cb.iv, cb.ciphertext, cb.tag, AsBytes("x")))
            .ExposeSecret()
            .size() == big.size());
  // Two encryptions never share an IV.
  CHECK(Must(hsm.EncryptAesGcm(aes, AsBytes("a"), {})).iv != c.iv);
  // Unwrapped keys cannot be wrapped again.
  CHECK(hsm.WrapKey(aes2).error() ==
        FailedPreconditionError("only keys made by GenerateKey can be wrapped",
                                Reason::kPolicyViolation));

  for (KeyAlgorithm a : {KeyAlgorithm::kHmacSha224, KeyAlgorithm::kHmacSha256,
                         KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512}) {
    INFO(hal::KeyAlgorithmName(a));
    auto k = Must(hsm.GenerateKey(a, KeyPurpose::kMac));
    auto k2 = Must(hsm.UnwrapKey(Must(hsm.WrapKey(k))));
    Bytes mac = Must(hsm.ComputeMac(k, AsBytes("message")));
    CHECK(mac.size() == hal::DigestSize(*hal::HmacHashOf(a)));
    MustOk(hsm.VerifyMac(k2, AsBytes("message"), mac));
    CHECK(hsm.VerifyMac(k2, AsBytes("messagf"), mac) ==
          InvalidArgumentError("invalid MAC", Reason::kInvalidMac));
    Bytes truncated(mac.begin(), mac.end() - 1);
    CHECK(hsm.VerifyMac(k2, AsBytes("message"), truncated) ==
          InvalidArgumentError("invalid MAC", Reason::kInvalidMac));
    mac[0] ^= 1;
    CHECK(hsm.VerifyMac(k, AsBytes("message"), mac) ==
          InvalidArgumentError("invalid MAC", Reason::kInvalidMac));
  }
}

TEST_CASE("HMAC and AES known answers through ImportKey", "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  // RFC 4231 test case 6: a 131-byte key of 0xaa (longer than the block: hashed first).
  SecretBytes long_key(131);
  for (auto& b : long_key.ExposeSecretMutable()) b = 0xaa;
  auto k = Must(hsm.ImportKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac, long_key));
  Bytes mac =
      Must(hsm.ComputeMac(k, AsBytes("Test Using Larger Than Block-Size Key - Hash Key First")));
  CHECK(HexEncode(mac) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // Keys shorter than the digest are refused (RFC 2104 §3), e.g. RFC 4231's "Jefe".
  CHECK(hsm.ImportKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac,
                      SecretBytes::CopyFrom(AsBytes("Jefe")))
            .error() == InvalidArgumentError("an HMAC key must be at least as long as its digest"));
  // Imported keys can never be wrapped.
  CHECK(hsm.WrapKey(k).error().reason() == Reason::kPolicyViolation);
  CHECK(
      hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, SecretBytes(16)).error() ==
      InvalidArgumentError("an AES-256 key is 32 bytes"));
  CHECK(hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kMac, SecretBytes(32)).error().reason() ==
        Reason::kInvalidKeyUsage);
}

TEST_CASE("asymmetric keys: sign and verify and cross-check with mbedTLS and wrap and unwrap",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  const std::pair<KeyAlgorithm, std::vector<SignatureAlgorithm>> kinds[] = {
      {KeyAlgorithm::kEcP256, {SignatureAlgorithm::kEcdsaSha256, SignatureAlgorithm::kEcdsaSha512}},
      {KeyAlgorithm::kEcP384, {SignatureAlgorithm::kEcdsaSha384}},
      {KeyAlgorithm::kEcP521, {SignatureAlgorithm::kEcdsaSha512}},
      {KeyAlgorithm::kEcSecp256k1, {SignatureAlgorithm::kEcdsaSha256}},
      {KeyAlgorithm::kRsa2048,
       {SignatureAlgorithm::kRsaPssSha256, SignatureAlgorithm::kRsaPssSha512,
        SignatureAlgorithm::kRsaPkcs1Sha256, SignatureAlgorithm::kRsaPkcs1Sha384}},
  };
  for (const auto& [algorithm, sigs] : kinds) {
    INFO(hal::KeyAlgorithmName(algorithm));
    auto key = Must(hsm.GenerateKey(algorithm, KeyPurpose::kSignVerify));
    Bytes spki = Must(hsm.PublicKeyDer(key));
    hal::WrappedKey w = Must(hsm.WrapKey(key));
    CHECK(w.public_key_der == spki);
    auto loaded = Must(hsm.UnwrapKey(w));
    auto verifier = Must(hsm.ImportPublicKey(algorithm, KeyPurpose::kSignVerify, spki));
    for (SignatureAlgorithm sa : sigs) {
      INFO(hal::SignatureAlgorithmName(sa));
      Bytes digest = Digest(hal::DigestOf(sa), "payload");
      Bytes sig = Must(hsm.SignDigest(loaded, sa, digest));
      CHECK(SoftwareVerify(spki, sa, digest, sig));  // DER and SPKI as any verifier reads them
      MustOk(hsm.VerifyDigest(key, sa, digest, sig));
      MustOk(hsm.VerifyDigest(verifier, sa, digest, sig));
      Bytes bad = sig;
      bad[bad.size() / 2] ^= 0x01;
      CHECK(hsm.VerifyDigest(verifier, sa, digest, bad) ==
            InvalidArgumentError("invalid signature", Reason::kInvalidSignature));
      Bytes other = Digest(hal::DigestOf(sa), "other");
      CHECK(hsm.VerifyDigest(verifier, sa, other, sig) ==
            InvalidArgumentError("invalid signature", Reason::kInvalidSignature));
      CHECK(hsm.SignDigest(verifier, sa, digest).error().reason() == Reason::kInvalidKeyUsage);
      CHECK(hsm.SignDigest(loaded, sa, AsBytes("short")).error().code() ==
            StatusCode::kInvalidArgument);
    }
  }
}

TEST_CASE("RSA-OAEP: SHA-1 works and SHA-256 is a clear Unimplemented", "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt));
  auto loaded = Must(hsm.UnwrapKey(Must(hsm.WrapKey(key))));
  Bytes c = Must(hsm.EncryptRsaOaep(key, HashAlgorithm::kSha1, AsBytes("data key")));
  CHECK(c.size() == 256);
  CHECK(AsStringView(Must(hsm.DecryptRsaOaep(loaded, HashAlgorithm::kSha1, c)).ExposeSecret()) ==
        "data key");
  c[10] ^= 1;
  CHECK(hsm.DecryptRsaOaep(loaded, HashAlgorithm::kSha1, c).error() ==
        InvalidArgumentError("invalid ciphertext", Reason::kInvalidCiphertext));
  CHECK(hsm.EncryptRsaOaep(key, HashAlgorithm::kSha1, Bytes(256 - 2 * 20 - 1)).error() ==
        InvalidArgumentError("plaintext too long for RSA-OAEP with this key"));
  CHECK(Must(hsm.EncryptRsaOaep(key, HashAlgorithm::kSha1, Bytes(256 - 2 * 20 - 2))).size() == 256);
  CHECK(hsm.EncryptRsaOaep(key, HashAlgorithm::kSha256, AsBytes("x")).error() ==
        UnimplementedError("RSA-OAEP with SHA-256 is not supported by the HSM",
                           Reason::kMechanismUnsupported));
  // A sign key cannot decrypt, an encrypt key cannot sign.
  auto signer = Must(hsm.GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify));
  CHECK(hsm.DecryptRsaOaep(signer, HashAlgorithm::kSha1, c).error().reason() ==
        Reason::kInvalidKeyUsage);
  CHECK(hsm.SignDigest(key, SignatureAlgorithm::kRsaPssSha256, Bytes(32)).error().reason() ==
        Reason::kInvalidKeyUsage);
}

TEST_CASE("wrong key for the operation is InvalidArgument/kInvalidKeyUsage", "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  auto hmac = Must(hsm.GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac));
  auto aes = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  CHECK(hsm.EncryptAesGcm(hmac, AsBytes("x"), {}).error() ==
        InvalidArgumentError("AES-GCM needs an AES-256 encryption key", Reason::kInvalidKeyUsage));
  CHECK(hsm.ComputeMac(aes, AsBytes("x")).error() ==
        InvalidArgumentError("not an HMAC key", Reason::kInvalidKeyUsage));
  CHECK(hsm.PublicKeyDer(aes).error().reason() == Reason::kInvalidKeyUsage);
  CHECK(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kEncryptDecrypt).error().reason() ==
        Reason::kInvalidKeyUsage);
  CHECK(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kSignVerify).error().reason() ==
        Reason::kInvalidKeyUsage);
  CHECK(hsm.ImportPublicKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify, AsBytes("junk"))
            .error() == InvalidArgumentError("malformed SubjectPublicKeyInfo"));
  CHECK(hsm.GenerateRandom(std::size_t{2} << 20).error().code() == StatusCode::kInvalidArgument);
  CHECK(Must(hsm.GenerateRandom(64)).size() == 64);
  MustOk(hsm.CheckHealth());
}

TEST_CASE("GenerateExportableKeyPair returns a PKCS#8 key matching its public key",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  for (KeyAlgorithm a : {KeyAlgorithm::kEcP256, KeyAlgorithm::kEcSecp256k1, KeyAlgorithm::kEcP521,
                         KeyAlgorithm::kRsa2048}) {
    INFO(hal::KeyAlgorithmName(a));
    hal::ExportedKeyPair pair = Must(hsm.GenerateExportableKeyPair(a));
    mbedtls_pk_context priv, pub;
    mbedtls_pk_init(&priv);
    mbedtls_pk_init(&pub);
    ByteView der = pair.private_key_pkcs8.ExposeSecret();
    CHECK(der[0] == 0x30);
    CHECK(mbedtls_pk_parse_key(&priv, der.data(), der.size(), nullptr, 0) == 0);
    CHECK(mbedtls_pk_parse_public_key(&pub, pair.public_key_der.data(),
                                      pair.public_key_der.size()) == 0);
    CHECK(mbedtls_pk_check_pair(&pub, &priv) == 0);
    mbedtls_pk_free(&priv);
    mbedtls_pk_free(&pub);
  }
  CHECK(hsm.GenerateExportableKeyPair(KeyAlgorithm::kAes256).error().code() ==
        StatusCode::kInvalidArgument);
  // The exportable pair left no object behind: only the domain key remains.
  RawSession raw(*fx);
  CHECK(raw.Find({}).size() == 1);
}

TEST_CASE("imported PKCS#8 private keys sign like the originals and cannot be wrapped",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  const std::pair<KeyAlgorithm, SignatureAlgorithm> kinds[] = {
      {KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPssSha256},
      {KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPkcs1Sha512},
      {KeyAlgorithm::kEcP384, SignatureAlgorithm::kEcdsaSha384},
      {KeyAlgorithm::kEcSecp256k1, SignatureAlgorithm::kEcdsaSha256},
  };
  for (auto [algorithm, sa] : kinds) {
    INFO(hal::KeyAlgorithmName(algorithm) << " " << hal::SignatureAlgorithmName(sa));
    hal::ExportedKeyPair pair = Must(hsm.GenerateExportableKeyPair(algorithm));
    auto key = Must(hsm.ImportKey(algorithm, KeyPurpose::kSignVerify, pair.private_key_pkcs8));
    CHECK(Must(hsm.PublicKeyDer(key)) == pair.public_key_der);
    Bytes digest = Digest(hal::DigestOf(sa), "imported");
    Bytes sig = Must(hsm.SignDigest(key, sa, digest));
    CHECK(SoftwareVerify(pair.public_key_der, sa, digest, sig));
    MustOk(hsm.VerifyDigest(key, sa, digest, sig));
    CHECK(hsm.WrapKey(key).error() ==
          FailedPreconditionError("only keys made by GenerateKey can be wrapped",
                                  Reason::kPolicyViolation));
  }
}

TEST_CASE("a key's objects are destroyed with its last handle", "[softhsm][hal]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  RawSession raw(*fx);
  const std::size_t before = raw.Find({}).size();
  {
    auto k = Must(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
    auto u = Must(hsm.UnwrapKey(Must(hsm.WrapKey(k))));
    CHECK(raw.Find({}).size() == before + 4);
  }
  CHECK(raw.Find({}).size() == before);
}

TEST_CASE("opening fails loudly on a wrong token or serial or PIN or module", "[softhsm][hal]") {
  auto fx = MakeFixture({.open_hsm = false});
  hal::Pkcs11HsmConfig label = fx->Config();
  label.token_label = "nope";
  label.token_serial.clear();
  CHECK(fx->OpenHsm(std::move(label)) == NotFoundError("PKCS#11 token 'nope' not found"));
  hal::Pkcs11HsmConfig serial = fx->Config();
  serial.token_serial = "0000";
  CHECK(fx->OpenHsm(std::move(serial)).code() == StatusCode::kNotFound);
  hal::Pkcs11HsmConfig pin = fx->Config();
  pin.user_pin = SecretBytes::CopyFrom(AsBytes("wrong-pin"));
  CHECK(fx->OpenHsm(std::move(pin)) ==
        Status(StatusCode::kUnauthenticated, "C_Login: CKR_PIN_INCORRECT"));
  hal::Pkcs11HsmConfig pool = fx->Config();
  pool.session_pool_size = 0;
  CHECK(fx->OpenHsm(std::move(pool)).code() == StatusCode::kInvalidArgument);
  hal::Pkcs11HsmConfig module = fx->Config();
  module.module_path = "/nonexistent/libpkcs11.so";
  CHECK(hal::OpenPkcs11Hsm(std::move(module)).error().code() == StatusCode::kFailedPrecondition);
  // By path, the way kmsd opens it.
  auto by_path = Must(hal::OpenPkcs11Hsm(fx->Config()));
  MustOk(by_path->CheckHealth());
}

TEST_CASE("the session pool serves many threads on few sessions", "[softhsm][hal][concurrency]") {
  auto fx = MakeFixture({.session_pool_size = 2, .inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  auto mac = Must(hsm.GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        auto c = hsm.EncryptAesGcm(key, AsBytes("payload"), AsBytes("aad"));
        if (!c.has_value()) {
          ++failures;
          continue;
        }
        auto p = hsm.DecryptAesGcm(key, c->iv, c->ciphertext, c->tag, AsBytes("aad"));
        if (!p.has_value()) ++failures;
        if (!hsm.ComputeMac(mac, AsBytes("m")).has_value()) ++failures;
        if (t == 0 && i % 50 == 0) {  // objects come and go on the anchor meanwhile
          if (!hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify).has_value()) {
            ++failures;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  // The anchor plus at most the pool, however many threads.
  CHECK(fx->faults()->open_sessions() <= 3);
  CHECK(fx->faults()->calls("C_OpenSession") <= 3);
}

// ---- token data (hal/hsm.h): private CKO_DATA token objects ------------------------------------

constexpr std::string_view kWatermark = "kms-store-watermark";

std::vector<CK_OBJECT_HANDLE> FindData(RawSession& raw, std::string_view label) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  std::vector<CK_ATTRIBUTE> q = {{CKA_CLASS, &cls, sizeof(cls)},
                                 {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  return raw.Find(q);
}

// Makes a CKO_DATA token object directly on the module, as other software (or an intruder) could;
// `generation` is the HAL's CKA_OBJECT_ID (8 bytes big-endian), none when empty.
CK_RV CreateData(RawSession& raw, std::string_view label, bool is_private, std::string_view value,
                 Bytes generation = {}) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL priv = is_private ? CK_TRUE : CK_FALSE;
  std::string_view application = "kms-appliance";
  std::vector<CK_ATTRIBUTE> t = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &priv, sizeof(priv)},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
      {CKA_APPLICATION, const_cast<char*>(application.data()), application.size()},
      {CKA_VALUE, const_cast<char*>(value.data()), value.size()}};
  if (!generation.empty()) t.push_back({CKA_OBJECT_ID, generation.data(), generation.size()});
  CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
  return raw.f()->C_CreateObject(raw.h(), t.data(), t.size(), &object);
}

Bytes Generation(std::uint64_t g) {
  Bytes out(8);
  for (int i = 7; i >= 0; --i, g >>= 8) out[static_cast<std::size_t>(i)] = g & 0xFF;
  return out;
}

std::string StringAttribute(RawSession& raw, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE a{type, nullptr, 0};
  REQUIRE(raw.f()->C_GetAttributeValue(raw.h(), o, &a, 1) == CKR_OK);
  std::string out(a.ulValueLen, '\0');
  a.pValue = out.data();
  REQUIRE(raw.f()->C_GetAttributeValue(raw.h(), o, &a, 1) == CKR_OK);
  return out;
}

// Whether `needle` is in plaintext in any file under `dir`.
bool OnDisk(const std::string& dir, std::string_view needle) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string contents(static_cast<std::size_t>(e.file_size()), '\0');
    std::ifstream in(e.path(), std::ios::binary);
    in.read(contents.data(), static_cast<std::streamsize>(contents.size()));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(contents.size()));
    if (contents.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("token data survives closing the Hsm and opening a new one on the token",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=1")));
  // CloseHsm finalises the module, so the reopened Hsm reads the token back from its files.
  fx->CloseHsm();
  MustOk(fx->OpenHsm());
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=1");
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=2")));
  fx->CloseHsm();
  MustOk(fx->OpenHsm());
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=2");
  // A replace leaves one object, however many writes: the old one is destroyed once the new one is
  // on the token (SoftHSM2 refuses to change a data object's CKA_VALUE in place).
  RawSession raw(*fx);
  auto found = FindData(raw, kWatermark);
  REQUIRE(found.size() == 1);
  CHECK(StringAttribute(raw, found[0], CKA_OBJECT_ID) == ToString(Generation(2)));
}

TEST_CASE("token data is a private token object that a session without the PIN cannot see",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  const std::string value = "v1 epoch=9 canary-5e1f0c7a";
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes(value)));
  {
    RawSession raw(*fx);  // logged in: login is shared by every session of the process
    auto found = FindData(raw, kWatermark);
    REQUIRE(found.size() == 1);
    CHECK(raw.Bool(found[0], CKA_TOKEN) == 1);
    CHECK(raw.Bool(found[0], CKA_PRIVATE) == 1);
    CHECK(raw.Bool(found[0], CKA_MODIFIABLE) == 1);
    CHECK(StringAttribute(raw, found[0], CKA_APPLICATION) == "kms-appliance");
    CHECK(StringAttribute(raw, found[0], CKA_VALUE) == value);
  }
  // SoftHSM2 keeps CKA_PRIVATE=FALSE objects in plaintext on disk
  // (docs/softhsm2.md "Key attributes and templates"); a
  // private one is encrypted under the PIN-derived key.
  CHECK_FALSE(OnDisk(fx->token().dir, "canary-5e1f0c7a"));

  // A fresh initialisation of the module is logged out: what anyone without the PIN sees.
  fx->CloseHsm();
  CK_FUNCTION_LIST* f = fx->real_functions();
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  REQUIRE(f->C_Initialize(&args) == CKR_OK);
  {
    RawSession anonymous(*fx);
    CHECK(FindData(anonymous, kWatermark).empty());
    // Such a session may still create public token objects: plant one under our label and
    // application, which the HAL must neither read nor trip over.
    CHECK(CreateData(anonymous, kWatermark, /*is_private=*/false, "v1 epoch=0 plant-3b9d") ==
          CKR_OK);
    CHECK(CreateData(anonymous, kWatermark, /*is_private=*/true, "v1 epoch=0") ==
          CKR_USER_NOT_LOGGED_IN);
  }
  REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
  // The plant, being public, is readable in the token folder: the scan above can see values.
  CHECK(OnDisk(fx->token().dir, "plant-3b9d"));
  MustOk(fx->OpenHsm());
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == value);
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=10")));
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=10");
  RawSession raw(*fx);
  CHECK(FindData(raw, kWatermark).size() == 2);  // ours and the plant, which was left alone
}

TEST_CASE("token data after a replace cut short: the newer value reads, the next write tidies",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=5")));  // generation 1
  RawSession raw(*fx);
  // What a crash between creating generation 2 and destroying generation 1 leaves.
  REQUIRE(CreateData(raw, kWatermark, /*is_private=*/true, "v1 epoch=6", Generation(2)) == CKR_OK);
  REQUIRE(FindData(raw, kWatermark).size() == 2);
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=6");
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=7")));
  auto found = FindData(raw, kWatermark);
  REQUIRE(found.size() == 1);
  CHECK(StringAttribute(raw, found[0], CKA_OBJECT_ID) == ToString(Generation(3)));
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=7");
}

TEST_CASE("token data refuses two objects under one label instead of picking one",
          "[softhsm][hal]") {
  auto fx = MakeFixture();
  MustOk(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=5")));  // generation 1
  RawSession raw(*fx);
  const Status ambiguous =
      InternalError("more than one token data object labelled 'kms-store-watermark'");
  auto refused = [&] {
    auto read = fx->hsm().ReadTokenData(kWatermark);
    REQUIRE_FALSE(read.has_value());
    CHECK(read.error() == ambiguous);
    CHECK(fx->hsm().WriteTokenData(kWatermark, AsBytes("v1 epoch=9")) == ambiguous);
  };
  auto drop = [&](std::string_view value) {
    for (CK_OBJECT_HANDLE o : FindData(raw, kWatermark)) {
      if (StringAttribute(raw, o, CKA_VALUE) == value) {
        REQUIRE(raw.f()->C_DestroyObject(raw.h(), o) == CKR_OK);
      }
    }
  };
  SECTION("a copy made by hand, without a generation") {
    REQUIRE(CreateData(raw, kWatermark, /*is_private=*/true, "v1 epoch=1") == CKR_OK);
    refused();
    drop("v1 epoch=1");
  }
  SECTION("a copy of the same generation") {
    REQUIRE(CreateData(raw, kWatermark, true, "v1 epoch=1", Generation(1)) == CKR_OK);
    refused();
    drop("v1 epoch=1");
  }
  SECTION("a copy whose generation does not follow") {
    REQUIRE(CreateData(raw, kWatermark, true, "v1 epoch=1", Generation(3)) == CKR_OK);
    refused();
    drop("v1 epoch=1");
  }
  SECTION("three objects, even with consecutive generations") {
    REQUIRE(CreateData(raw, kWatermark, true, "v1 epoch=1", Generation(2)) == CKR_OK);
    REQUIRE(CreateData(raw, kWatermark, true, "v1 epoch=2", Generation(3)) == CKR_OK);
    refused();
    drop("v1 epoch=1");
    drop("v1 epoch=2");
  }
  // Nothing was changed while refusing: with the copies gone the first value is still there.
  REQUIRE(FindData(raw, kWatermark).size() == 1);
  CHECK(ToString(Must(fx->hsm().ReadTokenData(kWatermark))) == "v1 epoch=5");
}

TEST_CASE("the dev token folder survives a restart", "[softhsm][provisioning]") {
  std::string dir;
  hal::WrappedKey wrapped;
  Bytes ciphertext, iv, tag;
  {
    auto fx = MakeFixture();
    dir = fx->token().dir;
    struct stat st {};
    REQUIRE(::stat((dir + "/dev-token.state").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((dir + "/softhsm2.conf").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(fx->token().user_pin.size() == 32);
    CHECK(fx->token().so_pin.size() == 32);
    CHECK_FALSE(fx->token().user_pin == fx->token().so_pin);
    CHECK(provisioning::CreateDevToken(dir).error().code() == StatusCode::kAlreadyExists);

    {
      auto key = Must(fx->hsm().GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
      wrapped = Must(fx->hsm().WrapKey(key));
      auto c = Must(fx->hsm().EncryptAesGcm(key, AsBytes("kept"), {}));
      ciphertext = c.ciphertext;
      iv = c.iv;
      tag = c.tag;
    }  // keys keep their device alive: drop them before closing
    fx->CloseHsm();

    // A restart: reopen the folder, open the HSM by path, and the old blob still opens.
    provisioning::DevToken token = Must(provisioning::OpenDevToken(dir));
    CHECK(token.user_pin == fx->token().user_pin);
    CHECK(token.so_pin.empty());
    CHECK(token.token_serial == fx->token().token_serial);
    hal::Pkcs11HsmConfig config;
    config.module_path = token.module_path;
    config.token_label = token.token_label;
    config.token_serial = token.token_serial;
    config.user_pin = std::move(token.user_pin);
    auto hsm = Must(hal::OpenPkcs11Hsm(std::move(config)));
    auto again = Must(hsm->UnwrapKey(wrapped));
    CHECK(AsStringView(Must(hsm->DecryptAesGcm(again, iv, ciphertext, tag, {})).ExposeSecret()) ==
          "kept");
  }
  CHECK_FALSE(std::filesystem::exists(dir));  // the fixture cleans up
  CHECK(provisioning::OpenDevToken(dir).error().code() == StatusCode::kNotFound);
}

TEST_CASE("a token.object emptied by a crash during login is restored on reopen",
          "[softhsm][provisioning]") {
  std::string dir = std::filesystem::temp_directory_path().string() + "/kms-devtoken-XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const std::string token_dir = dir + "/state";
  provisioning::DevToken made = Must(provisioning::CreateDevToken(token_dir));
  std::filesystem::path object;
  for (const auto& e : std::filesystem::directory_iterator(token_dir + "/tokens")) {
    object = e.path() / "token.object";
  }
  REQUIRE(std::filesystem::file_size(object) > 0);
  auto open_hsm = [&](const provisioning::DevToken& t) {
    hal::Pkcs11HsmConfig config;
    config.module_path = t.module_path;
    config.token_label = t.token_label;
    config.token_serial = t.token_serial;
    config.user_pin = t.user_pin.Clone();
    return hal::OpenPkcs11Hsm(std::move(config));
  };
  // What SIGKILL between SoftHSM's ftruncate and write leaves behind.
  std::filesystem::resize_file(object, 0);
  {
    provisioning::DevToken reopened = Must(provisioning::OpenDevToken(token_dir));
    CHECK(std::filesystem::file_size(object) > 0);
    auto hsm = Must(open_hsm(reopened));
    MustOk(hsm->CheckHealth());
  }
  // Without the copy the token is simply gone: that is the hazard being repaired.
  std::filesystem::remove(token_dir + "/token.object.backup");
  std::filesystem::resize_file(object, 0);
  CHECK(provisioning::OpenDevToken(token_dir).error().code() == StatusCode::kNotFound);
  CHECK(open_hsm(made).error().code() == StatusCode::kNotFound);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("OpenOrCreateDevToken creates once then reopens", "[softhsm][provisioning]") {
  std::string dir = std::filesystem::temp_directory_path().string() + "/kms-devtoken-XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  {
    provisioning::DevToken made = Must(provisioning::OpenOrCreateDevToken(dir + "/state"));
    CHECK_FALSE(made.so_pin.empty());
    CHECK(made.token_label == "kms-dev");
    CHECK(made.domain_key_label == "kms-domain-key");
    CHECK(made.module_path == provisioning::kSoftHsmModulePath);
    provisioning::DevToken again = Must(provisioning::OpenOrCreateDevToken(dir + "/state"));
    CHECK(again.so_pin.empty());  // reopened, not recreated
    CHECK(again.user_pin == made.user_pin);
    CHECK(std::string(::getenv("SOFTHSM2_CONF")) == again.conf_path);
  }
  CHECK(provisioning::CreateDevToken(dir + "/x", {.token_label = std::string(33, 'a')}).error() ==
        InvalidArgumentError("token label must be 1..32 characters"));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace kms::testing
