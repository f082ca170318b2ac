// Power-on self-tests (firmware/self_test.h) on the fake HSM (unit) or a real SoftHSM2 token
// (KMS_TEST_HSM_SOFTHSM, softhsm): they all pass on a working device; a device that gives a wrong
// answer (a tampering decorator, in the spirit of BoringSSL's break-kat) or fails a call (the
// fake's InjectFailure, or the FaultInjector under the PKCS#11 HAL) stops the run with the failing
// test's name (docs/self-tests.md "How the tests are tested").
#include "firmware/self_test.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/hsm.h"
#include "tests/support/fake_hsm.h"
#if defined(KMS_TEST_HSM_SOFTHSM)
#include "pkcs11/rv.h"
#include "tests/support/fault_injection.h"
#include "tests/support/softhsm_fixture.h"
#endif

namespace kms::firmware {
namespace {

using hal::KeyAlgorithm;
using hal::KeyHandle;
using hal::SignatureAlgorithm;

#if defined(KMS_TEST_HSM_SOFTHSM)
#define KMS_SELF_TEST_CASE(name) "softhsm: " name
#define KMS_SELF_TEST_TAGS "[softhsm][self_test]"
#else
#define KMS_SELF_TEST_CASE(name) "fake: " name
#define KMS_SELF_TEST_TAGS "[unit][self_test]"
#endif

const std::vector<std::string> kExpectedOrder = {
    "rng",
    "aes-256-gcm-kat",
    "aes-256-gcm-roundtrip",
    "key-wrap",
    "ecdsa-p256-verify-kat",
    "rsa-2048-pkcs1-verify-kat",
    "rsa-2048-pss-verify-kat",
    "hmac-sha256-kat",
    "hmac-sha384-kat",
    "hmac-sha512-kat",
};

// The device under test: one per TEST_CASE (CTest runs each case in its own process, and a SoftHSM
// fixture is one per process at a time).
struct Device {
#if defined(KMS_TEST_HSM_SOFTHSM)
  explicit Device(bool inject_faults = false) {
    auto made = kms::testing::SoftHsmFixture::Create(
        {.session_pool_size = 2, .inject_faults = inject_faults});
    if (!made) FAIL(made.error().ToString());
    fixture = std::move(*made);
  }
  hal::Hsm& hsm() { return fixture->hsm(); }
  kms::testing::FaultInjector& faults() { return *fixture->faults(); }
  std::unique_ptr<kms::testing::SoftHsmFixture> fixture;
#else
  explicit Device() : fake(kms::testing::NewFakeHsm()) {}
  hal::Hsm& hsm() { return *fake; }
  std::unique_ptr<kms::testing::FakeHsm> fake;
#endif
};

std::vector<std::string> Names(const std::vector<std::string_view>& names) {
  return {names.begin(), names.end()};
}

SelfTestReport RequirePass(hal::Hsm& hsm) {
  StatusOr<SelfTestReport> report = RunPowerOnSelfTests(hsm);
  INFO((report.has_value() ? std::string("ok") : report.error().ToString()));
  REQUIRE(report.has_value());
  return std::move(*report);
}

// The run failed, in test `name`; returns the error for further checks.
Status RequireFailure(const StatusOr<SelfTestReport>& report, std::string_view name) {
  REQUIRE_FALSE(report.has_value());
  const Status& s = report.error();
  INFO(s.ToString());
  CHECK(s.message().starts_with("self-test " + std::string(name) + " failed: "));
  CHECK(s.reason() == Reason::kNone);
  return s;
}

// --- a device that lies -------------------------------------------------------------------------
// Forwards to another Hsm, counts the calls, and optionally gives one kind of wrong answer (the
// output-side analogue of BoringSSL's break-kat.go, which corrupts the KAT inputs in the binary).
enum class Break {
  kNone,
  kRandomRepeats,             // GenerateRandom: all zeros
  kDecryptFlipsPlaintext,     // DecryptAesGcm: one plaintext bit flipped
  kDecryptAcceptsAnything,    // DecryptAesGcm: a failed tag check returns zeros instead
  kEncryptReturnsInput,       // EncryptAesGcm: the "ciphertext" is the plaintext
  kUnwrapGivesAnotherKey,     // UnwrapKey: a fresh key instead of the wrapped one
  kVerifyAcceptsAnything,     // VerifyDigest: always OK
  kVerifyRefusesEverything,   // VerifyDigest: always kInvalidSignature
  kMacFlipped,                // ComputeMac: one bit flipped
  kVerifyMacAcceptsAnything,  // VerifyMac: always OK
};

class LyingHsm final : public hal::Hsm {
 public:
  explicit LyingHsm(hal::Hsm& inner, Break mode = Break::kNone,
                    std::optional<KeyAlgorithm> only_key = std::nullopt,
                    std::optional<SignatureAlgorithm> only_signature = std::nullopt)
      : inner_(inner), mode_(mode), only_key_(only_key), only_signature_(only_signature) {}

  std::size_t calls() const { return calls_; }

  const hal::Capabilities& capabilities() const override { return inner_.capabilities(); }
  StatusOr<KeyHandle> GenerateKey(KeyAlgorithm a, hal::KeyPurpose p) override {
    ++calls_;
    return inner_.GenerateKey(a, p);
  }
  StatusOr<hal::WrappedKey> WrapKey(const KeyHandle& key) override {
    ++calls_;
    return inner_.WrapKey(key);
  }
  StatusOr<KeyHandle> UnwrapKey(const hal::WrappedKey& wrapped) override {
    ++calls_;
    if (mode_ == Break::kUnwrapGivesAnotherKey) {
      return inner_.GenerateKey(wrapped.algorithm, wrapped.purpose);
    }
    return inner_.UnwrapKey(wrapped);
  }
  StatusOr<KeyHandle> ImportKey(KeyAlgorithm a, hal::KeyPurpose p,
                                const SecretBytes& material) override {
    ++calls_;
    return inner_.ImportKey(a, p, material);
  }
  StatusOr<KeyHandle> ImportPublicKey(KeyAlgorithm a, hal::KeyPurpose p, ByteView der) override {
    ++calls_;
    return inner_.ImportPublicKey(a, p, der);
  }
  StatusOr<Bytes> PublicKeyDer(const KeyHandle& key) override {
    ++calls_;
    return inner_.PublicKeyDer(key);
  }
  StatusOr<hal::ExportedKeyPair> GenerateExportableKeyPair(KeyAlgorithm a) override {
    ++calls_;
    return inner_.GenerateExportableKeyPair(a);
  }
  StatusOr<hal::GcmCiphertext> EncryptAesGcm(const KeyHandle& key, ByteView plaintext,
                                             ByteView aad) override {
    ++calls_;
    auto out = inner_.EncryptAesGcm(key, plaintext, aad);
    if (out.has_value() && mode_ == Break::kEncryptReturnsInput) {
      out->ciphertext.assign(plaintext.begin(), plaintext.end());
    }
    return out;
  }
  StatusOr<SecretBytes> DecryptAesGcm(const KeyHandle& key, ByteView iv, ByteView ciphertext,
                                      ByteView tag, ByteView aad) override {
    ++calls_;
    auto out = inner_.DecryptAesGcm(key, iv, ciphertext, tag, aad);
    if (out.has_value() && mode_ == Break::kDecryptFlipsPlaintext && !out->empty()) {
      out->ExposeSecretMutable()[0] ^= 0x80;
    }
    if (!out.has_value() && mode_ == Break::kDecryptAcceptsAnything) {
      return SecretBytes(ciphertext.size());
    }
    return out;
  }
  StatusOr<Bytes> SignDigest(const KeyHandle& key, SignatureAlgorithm a, ByteView digest) override {
    ++calls_;
    return inner_.SignDigest(key, a, digest);
  }
  Status VerifyDigest(const KeyHandle& key, SignatureAlgorithm a, ByteView digest,
                      ByteView signature) override {
    ++calls_;
    if (Targets(key) && (!only_signature_ || *only_signature_ == a)) {
      if (mode_ == Break::kVerifyAcceptsAnything) return Status();
      if (mode_ == Break::kVerifyRefusesEverything) {
        return InvalidArgumentError("invalid signature", Reason::kInvalidSignature);
      }
    }
    return inner_.VerifyDigest(key, a, digest, signature);
  }
  StatusOr<Bytes> ComputeMac(const KeyHandle& key, ByteView message) override {
    ++calls_;
    auto out = inner_.ComputeMac(key, message);
    if (out.has_value() && mode_ == Break::kMacFlipped && Targets(key) && !out->empty()) {
      out->back() ^= 0x01;
    }
    return out;
  }
  Status VerifyMac(const KeyHandle& key, ByteView message, ByteView mac) override {
    ++calls_;
    if (mode_ == Break::kVerifyMacAcceptsAnything && Targets(key)) return Status();
    return inner_.VerifyMac(key, message, mac);
  }
  StatusOr<Bytes> EncryptRsaOaep(const KeyHandle& key, hal::HashAlgorithm h,
                                 ByteView plaintext) override {
    ++calls_;
    return inner_.EncryptRsaOaep(key, h, plaintext);
  }
  StatusOr<SecretBytes> DecryptRsaOaep(const KeyHandle& key, hal::HashAlgorithm h,
                                       ByteView ciphertext) override {
    ++calls_;
    return inner_.DecryptRsaOaep(key, h, ciphertext);
  }
  StatusOr<SecretBytes> GenerateRandom(std::size_t size) override {
    ++calls_;
    auto out = inner_.GenerateRandom(size);
    if (out.has_value() && mode_ == Break::kRandomRepeats) return SecretBytes(size);
    return out;
  }
  Status CheckHealth() override {
    ++calls_;
    return inner_.CheckHealth();
  }
  StatusOr<Bytes> ReadTokenData(std::string_view label) override {
    ++calls_;
    return inner_.ReadTokenData(label);
  }
  Status WriteTokenData(std::string_view label, ByteView value) override {
    ++calls_;
    return inner_.WriteTokenData(label, value);
  }

 private:
  bool Targets(const KeyHandle& key) const {
    return !only_key_ || (key != nullptr && key->algorithm() == *only_key_);
  }

  hal::Hsm& inner_;
  Break mode_;
  std::optional<KeyAlgorithm> only_key_;
  std::optional<SignatureAlgorithm> only_signature_;
  std::size_t calls_ = 0;
};

// --- on every backend ---------------------------------------------------------------------------

TEST_CASE(KMS_SELF_TEST_CASE("the self-tests have stable names, in a fixed order"),
          KMS_SELF_TEST_TAGS) {
  std::vector<std::string> names;
  for (const SelfTest& t : PowerOnSelfTests()) names.emplace_back(t.name);
  CHECK(names == kExpectedOrder);
}

TEST_CASE(KMS_SELF_TEST_CASE("every self-test passes on a working device"), KMS_SELF_TEST_TAGS) {
  Device device;
  SelfTestReport report = RequirePass(device.hsm());
  CHECK(Names(report.passed) == kExpectedOrder);
  CHECK(report.skipped.empty());
  // A second boot on the same device passes too: the tests leave nothing behind that matters.
  SelfTestReport again = RequirePass(device.hsm());
  CHECK(Names(again.passed) == kExpectedOrder);
}

// Timing is measured, never asserted (docs/conventions.md "Tests"): run the binary to see the
// figures.
TEST_CASE(KMS_SELF_TEST_CASE("self-test timing is printed"), KMS_SELF_TEST_TAGS) {
  Device device;
  // The first run is a boot's: a fresh device, an empty session pool.
  const std::int64_t cold_us = RequirePass(device.hsm()).duration.count();
  constexpr int kRuns = 5;
  std::int64_t total_us = 0;
  std::map<std::string_view, std::int64_t> per_test_us;
  for (int i = 0; i < kRuns; ++i) {
    total_us += RequirePass(device.hsm()).duration.count();
    for (const SelfTest& t : PowerOnSelfTests()) {
      const auto start = std::chrono::steady_clock::now();
      Status s = RunSelfTest(device.hsm(), t);
      REQUIRE(s.ok());
      per_test_us[t.name] += std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
    }
  }
  LyingHsm counter(device.hsm());
  (void)RequirePass(counter);
  auto ms = [](std::int64_t us) {
    return std::to_string(static_cast<double>(us) / kRuns / 1000.0);
  };
  std::string line = "self-tests: first run " +
                     std::to_string(static_cast<double>(cold_us) / 1000.0) + " ms, then " +
                     ms(total_us) + " ms per run (" + std::to_string(counter.calls()) +
                     " HSM calls);";
  for (const auto& [name, us] : per_test_us) {
    line += " " + std::string(name) + " " + ms(us) + " ms;";
  }
  WARN(line);
}

TEST_CASE(
    KMS_SELF_TEST_CASE("a device that gives a wrong answer fails the self-test that checks it"),
    KMS_SELF_TEST_TAGS) {
  struct Case {
    Break mode;
    std::optional<KeyAlgorithm> only_key;
    std::optional<SignatureAlgorithm> only_signature;
    std::string_view test;
    std::string_view detail;  // after "self-test <test> failed: "
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {Break::kRandomRepeats,
       {},
       {},
       "rng",
       "wrong answer: two random draws are equal",
       StatusCode::kInternal},
      {Break::kDecryptFlipsPlaintext,
       {},
       {},
       "aes-256-gcm-kat",
       "wrong answer: DecryptAesGcm did not give the vector's plaintext",
       StatusCode::kInternal},
      {Break::kDecryptAcceptsAnything,
       {},
       {},
       "aes-256-gcm-kat",
       "wrong answer: DecryptAesGcm with a flipped tag bit was accepted",
       StatusCode::kInternal},
      {Break::kEncryptReturnsInput,
       {},
       {},
       "aes-256-gcm-roundtrip",
       "wrong answer: EncryptAesGcm returned the plaintext",
       StatusCode::kInternal},
      // The pairwise test catches a key that is not the one wrapped: the device refuses the tag.
      {Break::kUnwrapGivesAnotherKey,
       {},
       {},
       "key-wrap",
       "DecryptAesGcm with the unwrapped key: invalid ciphertext",
       StatusCode::kInvalidArgument},
      {Break::kVerifyAcceptsAnything,
       KeyAlgorithm::kEcP256,
       {},
       "ecdsa-p256-verify-kat",
       "wrong answer: VerifyDigest of a flipped signature bit was accepted",
       StatusCode::kInternal},
      {Break::kVerifyRefusesEverything, KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPkcs1Sha256,
       "rsa-2048-pkcs1-verify-kat", "VerifyDigest: invalid signature",
       StatusCode::kInvalidArgument},
      {Break::kVerifyAcceptsAnything, KeyAlgorithm::kRsa2048, SignatureAlgorithm::kRsaPssSha256,
       "rsa-2048-pss-verify-kat",
       "wrong answer: VerifyDigest of a flipped signature bit was accepted", StatusCode::kInternal},
      {Break::kMacFlipped,
       {},
       {},
       "hmac-sha256-kat",
       "wrong answer: ComputeMac did not give the vector's MAC",
       StatusCode::kInternal},
      {Break::kMacFlipped,
       KeyAlgorithm::kHmacSha384,
       {},
       "hmac-sha384-kat",
       "wrong answer: ComputeMac did not give the vector's MAC",
       StatusCode::kInternal},
      {Break::kVerifyMacAcceptsAnything,
       KeyAlgorithm::kHmacSha512,
       {},
       "hmac-sha512-kat",
       "wrong answer: VerifyMac of a flipped MAC bit was accepted",
       StatusCode::kInternal},
  };
  Device device;
  for (const Case& c : cases) {
    INFO("break " << static_cast<int>(c.mode) << ", expecting " << c.test);
    LyingHsm liar(device.hsm(), c.mode, c.only_key, c.only_signature);
    Status s = RequireFailure(RunPowerOnSelfTests(liar), c.test);
    CHECK(s.message() == "self-test " + std::string(c.test) + " failed: " + std::string(c.detail));
    CHECK(s.code() == c.code);
  }
  // The honest device still passes after all that.
  (void)RequirePass(device.hsm());
}

#if !defined(KMS_TEST_HSM_SOFTHSM)
// --- fake only ----------------------------------------------------------------------------------

TEST_CASE("fake: a device without a mechanism skips the self-tests of that mechanism",
          "[unit][self_test]") {
  kms::testing::FakeHsmOptions options;
  options.capabilities.key_algorithms.erase(KeyAlgorithm::kRsa2048);
  options.capabilities.key_algorithms.erase(KeyAlgorithm::kHmacSha384);
  options.capabilities.signature_algorithms.erase(SignatureAlgorithm::kEcdsaSha256);
  options.capabilities.key_wrap_pad = false;
  auto fake = kms::testing::NewFakeHsm(options);
  SelfTestReport report = RequirePass(*fake);
  CHECK(Names(report.passed) == std::vector<std::string>{"rng", "aes-256-gcm-kat",
                                                         "aes-256-gcm-roundtrip", "hmac-sha256-kat",
                                                         "hmac-sha512-kat"});
  CHECK(Names(report.skipped) ==
        std::vector<std::string>{"key-wrap", "ecdsa-p256-verify-kat", "rsa-2048-pkcs1-verify-kat",
                                 "rsa-2048-pss-verify-kat", "hmac-sha384-kat"});
}

// Every HAL call of a run, failed in turn with the fake's InjectFailure, stops the run with the
// name of the test that made the call, the fault's code, and the fault's text.
TEST_CASE("fake: a device fault at any HSM call names the self-test that made the call",
          "[unit][self_test]") {
  Device device;
  kms::testing::FakeHsm& fake = *device.fake;
  // Which test makes which calls: run each alone and count.
  std::vector<std::string_view> owner;  // owner[i]: the test making call i of a full run
  for (const SelfTest& t : PowerOnSelfTests()) {
    LyingHsm counter(fake);
    REQUIRE(RunSelfTest(counter, t).ok());
    REQUIRE(counter.calls() > 0);
    owner.insert(owner.end(), counter.calls(), t.name);
  }
  LyingHsm whole(fake);
  (void)RequirePass(whole);
  REQUIRE(whole.calls() == owner.size());

  for (std::size_t n = 0; n < owner.size(); ++n) {
    INFO("failing HSM call " << n << " of " << owner.size() << ", made by " << owner[n]);
    fake.InjectFailure(UnavailableError("injected device fault"), n, 1);
    Status s = RequireFailure(RunPowerOnSelfTests(fake), owner[n]);
    CHECK(s.code() == StatusCode::kUnavailable);
    CHECK(s.message().ends_with(": injected device fault"));
    fake.InjectFailure(Status(), 0, 0);
    (void)RequirePass(fake);  // the fault is gone, so is the failure
  }
}
#endif  // !KMS_TEST_HSM_SOFTHSM

#if defined(KMS_TEST_HSM_SOFTHSM)
// --- SoftHSM2 through the FaultInjector ----------------------------------------------------------

// The Cryptoki functions the self-tests' HAL calls make, whose failure the HAL reports (a failed
// C_DestroyObject while a handle is released is logged by nobody and changes no answer, so it is
// not in the list).
const std::vector<std::string> kFunctions = {
    "C_CreateObject", "C_GetAttributeValue", "C_GenerateKey", "C_WrapKey",        "C_UnwrapKey",
    "C_EncryptInit",  "C_Encrypt",           "C_DecryptInit", "C_Decrypt",        "C_SignInit",
    "C_Sign",         "C_VerifyInit",        "C_Verify",      "C_GenerateRandom",
};

using Counts = std::map<std::string, std::uint64_t>;
Counts CountsOf(const kms::testing::FaultInjector& faults) {
  Counts c;
  for (const std::string& f : kFunctions) c[f] = faults.calls(f);
  return c;
}

TEST_CASE("softhsm: an injected fault in each HSM function names the self-test that uses it",
          "[softhsm][self_test]") {
  Device device(/*inject_faults=*/true);
  hal::Hsm& hsm = device.hsm();
  kms::testing::FaultInjector& faults = device.faults();
  (void)RequirePass(hsm);
  struct Case {
    const char* function;
    std::uint64_t n;  // the n-th call of `function` in a run
    CK_RV rv;
    std::string_view test;
  };
  // Only device-class faults: the injector answers without reaching the module, so an injected
  // "bad signature" on C_Verify would leave the module's verify operation active (a real module
  // ends it), and the wrong answers are covered by LyingHsm above.
  // Each verify KAT makes two C_Verify calls (the right signature, then the flipped one), and so
  // does each HMAC KAT (VerifyMac); GenerateRandom is called twice by rng, then once per
  // EncryptAesGcm for the IV.
  const std::vector<Case> cases = {
      {"C_GenerateRandom", 1, CKR_DEVICE_ERROR, "rng"},
      {"C_GenerateRandom", 2, CKR_DEVICE_ERROR, "rng"},
      {"C_GenerateRandom", 3, CKR_DEVICE_ERROR, "aes-256-gcm-roundtrip"},
      {"C_CreateObject", 1, CKR_DEVICE_ERROR, "aes-256-gcm-kat"},
      {"C_DecryptInit", 1, CKR_DEVICE_ERROR, "aes-256-gcm-kat"},
      {"C_Decrypt", 1, CKR_DEVICE_ERROR, "aes-256-gcm-kat"},
      {"C_Decrypt", 2, CKR_DEVICE_ERROR, "aes-256-gcm-kat"},  // the flipped tag
      {"C_Encrypt", 1, CKR_DEVICE_ERROR, "aes-256-gcm-roundtrip"},
      {"C_GenerateKey", 1, CKR_DEVICE_ERROR, "key-wrap"},
      {"C_WrapKey", 1, CKR_DEVICE_ERROR, "key-wrap"},
      {"C_UnwrapKey", 1, CKR_DEVICE_ERROR, "key-wrap"},
      {"C_Verify", 1, CKR_DEVICE_ERROR, "ecdsa-p256-verify-kat"},
      {"C_Verify", 2, CKR_DEVICE_ERROR, "ecdsa-p256-verify-kat"},
      {"C_Verify", 3, CKR_DEVICE_ERROR, "rsa-2048-pkcs1-verify-kat"},
      {"C_Verify", 5, CKR_DEVICE_ERROR, "rsa-2048-pss-verify-kat"},
      {"C_Verify", 7, CKR_DEVICE_ERROR, "hmac-sha256-kat"},
      {"C_SignInit", 1, CKR_DEVICE_ERROR, "hmac-sha256-kat"},
      {"C_Sign", 1, CKR_DEVICE_ERROR, "hmac-sha256-kat"},
      {"C_Sign", 2, CKR_DEVICE_ERROR, "hmac-sha384-kat"},
      {"C_Sign", 3, CKR_DEVICE_ERROR, "hmac-sha512-kat"},
  };
  for (const Case& c : cases) {
    INFO(c.function << " call " << c.n << " fails with " << pkcs11::RvName(c.rv) << ", expecting "
                    << c.test);
    const std::uint64_t injected = faults.injected();
    faults.FailNthCall(c.n, c.rv, c.function);
    Status s = RequireFailure(RunPowerOnSelfTests(hsm), c.test);
    faults.Clear();
    CHECK(faults.injected() == injected + 1);
    CHECK(s.device_code() == c.rv);  // kept for the log, as the HAL keeps it
    if (c.rv == CKR_DEVICE_ERROR) {
      CHECK(s.code() == StatusCode::kUnavailable);
      CHECK(s.message().ends_with(std::string(c.function) + ": CKR_DEVICE_ERROR"));
    }
    (void)RequirePass(hsm);  // the fault is gone: the next boot passes
  }

  // One full message, as the boot log shows it.
  faults.FailNthCall(1, CKR_DEVICE_ERROR, "C_Decrypt");
  Status s = RequireFailure(RunPowerOnSelfTests(hsm), "aes-256-gcm-kat");
  faults.Clear();
  CHECK(
      s.ToString() ==
      "UNAVAILABLE: self-test aes-256-gcm-kat failed: DecryptAesGcm: C_Decrypt: CKR_DEVICE_ERROR");
}

// The break test over every call: each call of each listed function, failed in turn with
// CKR_DEVICE_ERROR, stops the run with the name of the test that made it.
TEST_CASE("softhsm: a device error at any call of a self-test names that self-test",
          "[softhsm][self_test]") {
  Device device(/*inject_faults=*/true);
  hal::Hsm& hsm = device.hsm();
  kms::testing::FaultInjector& faults = device.faults();
  (void)RequirePass(hsm);
  // owner[f][k]: the test making call k (0-based) of function f in a full run.
  std::map<std::string, std::vector<std::string_view>> owner;
  for (const SelfTest& t : PowerOnSelfTests()) {
    const Counts before = CountsOf(faults);
    REQUIRE(RunSelfTest(hsm, t).ok());
    const Counts after = CountsOf(faults);
    for (const std::string& f : kFunctions) {
      owner[f].insert(owner[f].end(), after.at(f) - before.at(f), t.name);
    }
  }
  // A full run makes the same calls as its tests one by one.
  const Counts before = CountsOf(faults);
  (void)RequirePass(hsm);
  const Counts after = CountsOf(faults);
  std::size_t total = 0;
  for (const std::string& f : kFunctions) {
    INFO(f);
    CHECK(after.at(f) - before.at(f) == owner[f].size());
    total += owner[f].size();
  }
  REQUIRE(total > 0);

  const std::uint64_t injected = faults.injected();
  for (const std::string& f : kFunctions) {
    for (std::size_t k = 0; k < owner[f].size(); ++k) {
      INFO(f << " call " << (k + 1) << " of " << owner[f].size() << ", made by " << owner[f][k]);
      faults.FailNthCall(k + 1, CKR_DEVICE_ERROR, f);
      Status s = RequireFailure(RunPowerOnSelfTests(hsm), owner[f][k]);
      faults.Clear();
      CHECK(s.code() == StatusCode::kUnavailable);
      CHECK(s.message().ends_with(f + ": CKR_DEVICE_ERROR"));
      (void)RequirePass(hsm);  // recovers (the HAL re-initialises after a device error)
    }
  }
  CHECK(faults.injected() - injected == total);  // every planned fault fired
}
#endif  // KMS_TEST_HSM_SOFTHSM

}  // namespace
}  // namespace kms::firmware
