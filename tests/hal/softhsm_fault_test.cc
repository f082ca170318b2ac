// Fault injection between the PKCS#11 HAL and SoftHSM2: a failure at any call of an operation
// returns an error, leaks no session, and the next operation succeeds.
#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <thread>

#include "hal/hsm.h"
#include "tests/hal/softhsm_test_util.h"

namespace kms::testing {
namespace {

using hal::KeyAlgorithm;
using hal::KeyPurpose;
using hal::SignatureAlgorithm;

constexpr std::size_t kPool = 2;

// Keys an operation returned, kept until the check is over: their destruction (C_DestroyObject) is
// not part of the operation whose calls are being failed.
std::vector<hal::KeyHandle> g_keep;

Status Keep(StatusOr<hal::KeyHandle> key) {
  if (!key.has_value()) return key.error();
  g_keep.push_back(std::move(*key));
  return Status();
}

struct Op {
  const char* name;
  // Prepares what the operation needs (keys), without faults; returns the operation itself.
  std::function<std::function<Status()>(hal::Hsm&)> setup;
};

std::vector<Op> Operations() {
  return {
      {"GenerateKey(AES)",
       [](hal::Hsm& hsm) {
         return std::function<Status()>([&hsm] {
           return Keep(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
         });
       }},
      {"GenerateKey(P-256)",
       [](hal::Hsm& hsm) {
         return std::function<Status()>([&hsm] {
           return Keep(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
         });
       }},
      {"WrapKey",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
         return std::function<Status()>([&hsm, k] { return StatusOf(hsm.WrapKey(k)); });
       }},
      {"UnwrapKey(P-256)",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
         hal::WrappedKey w = Must(hsm.WrapKey(k));
         return std::function<Status()>([&hsm, w] { return Keep(hsm.UnwrapKey(w)); });
       }},
      {"EncryptAesGcm",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
         return std::function<Status()>(
             [&hsm, k] { return StatusOf(hsm.EncryptAesGcm(k, AsBytes("pt"), AsBytes("aad"))); });
       }},
      {"DecryptAesGcm",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
         auto c = Must(hsm.EncryptAesGcm(k, AsBytes("pt"), AsBytes("aad")));
         return std::function<Status()>([&hsm, k, c] {
           return StatusOf(hsm.DecryptAesGcm(k, c.iv, c.ciphertext, c.tag, AsBytes("aad")));
         });
       }},
      {"SignDigest(ECDSA)",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
         return std::function<Status()>([&hsm, k] {
           return StatusOf(hsm.SignDigest(k, SignatureAlgorithm::kEcdsaSha256, Bytes(32, 7)));
         });
       }},
      {"VerifyMac",
       [](hal::Hsm& hsm) {
         auto k = Must(hsm.GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac));
         Bytes mac = Must(hsm.ComputeMac(k, AsBytes("m")));
         return std::function<Status()>(
             [&hsm, k, mac] { return hsm.VerifyMac(k, AsBytes("m"), mac); });
       }},
      {"GenerateRandom",
       [](hal::Hsm& hsm) {
         return std::function<Status()>([&hsm] { return StatusOf(hsm.GenerateRandom(32)); });
       }},
      {"CheckHealth",
       [](hal::Hsm& hsm) { return std::function<Status()>([&hsm] { return hsm.CheckHealth(); }); }},
      {"ReadTokenData",
       [](hal::Hsm& hsm) {
         MustOk(hsm.WriteTokenData("fault-probe", AsBytes("v1 epoch=1")));
         return std::function<Status()>(
             [&hsm] { return StatusOf(hsm.ReadTokenData("fault-probe")); });
       }},
      {"ReadTokenData(absent)",
       [](hal::Hsm& hsm) {
         // NotFound is the answer, so the operation "succeeds" when it says exactly that.
         return std::function<Status()>([&hsm] {
           StatusOr<Bytes> r = hsm.ReadTokenData("fault-absent");
           if (!r.has_value() && r.error().code() == StatusCode::kNotFound) return Status();
           return r.has_value() ? InternalError("absent label was found") : r.error();
         });
       }},
      {"WriteTokenData(new)",
       [](hal::Hsm& hsm) {
         // A label per run, so every run takes the create path.
         return std::function<Status()>([&hsm] {
           static int run = 0;
           return hsm.WriteTokenData("fault-new-" + std::to_string(++run), AsBytes("v1 epoch=1"));
         });
       }},
      {"WriteTokenData(replace)",
       [](hal::Hsm& hsm) {
         MustOk(hsm.WriteTokenData("fault-probe", AsBytes("v1 epoch=1")));
         return std::function<Status()>(
             [&hsm] { return hsm.WriteTokenData("fault-probe", AsBytes("v1 epoch=2")); });
       }},
  };
}

// For every call position n of the operation: fail call n with `rv`, check that an error comes back
// and that no session leaked, then check that the operation (with fresh keys) works again.
void FailEveryCall(CK_RV rv) {
  auto fx = MakeFixture({.session_pool_size = kPool, .inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  FaultInjector& faults = *fx->faults();
  for (const Op& op : Operations()) {
    // Count the calls of one clean run.
    std::function<Status()> run = op.setup(hsm);
    const std::uint64_t before = faults.calls();
    MustOk(run());
    const std::uint64_t calls = faults.calls() - before;
    g_keep.clear();
    REQUIRE(calls > 0);
    for (std::uint64_t n = 1; n <= calls; ++n) {
      INFO(op.name << ": failing call " << n << " of " << calls << " with " << pkcs11::RvName(rv));
      run = op.setup(hsm);
      const std::uint64_t injected = faults.injected();
      faults.FailNthCall(n, rv);
      Status s = run();
      faults.Clear();
      g_keep.clear();
      if (faults.injected() == injected) continue;  // this run took a shorter path (idle session)
      CHECK_FALSE(s.ok());
      // No leak: at most the anchor and the pool are open.
      CHECK(faults.open_sessions() <= static_cast<std::int64_t>(kPool + 1));
      // The next operation works (new keys: old ones may be stale after a re-initialisation).
      std::function<Status()> next = op.setup(hsm);
      MustOk(next());
      g_keep.clear();
    }
  }
  // After everything, the module has exactly what the HAL holds open.
  CHECK(faults.open_sessions() <= static_cast<std::int64_t>(kPool + 1));
}

TEST_CASE("CKR_DEVICE_ERROR at any call", "[softhsm][faults]") { FailEveryCall(CKR_DEVICE_ERROR); }
TEST_CASE("CKR_SESSION_HANDLE_INVALID at any call", "[softhsm][faults]") {
  FailEveryCall(CKR_SESSION_HANDLE_INVALID);
}
TEST_CASE("CKR_TOKEN_NOT_PRESENT at any call", "[softhsm][faults]") {
  FailEveryCall(CKR_TOKEN_NOT_PRESENT);
}
TEST_CASE("CKR_GENERAL_ERROR at any call", "[softhsm][faults]") {
  FailEveryCall(CKR_GENERAL_ERROR);
}
TEST_CASE("CKR_USER_NOT_LOGGED_IN at any call", "[softhsm][faults]") {
  FailEveryCall(CKR_USER_NOT_LOGGED_IN);
}

TEST_CASE(
    "a device error re-initialises: the error is returned / old keys are stale / new work works",
    "[softhsm][faults]") {
  auto fx = MakeFixture({.session_pool_size = kPool, .inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  FaultInjector& faults = *fx->faults();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  hal::WrappedKey wrapped = Must(hsm.WrapKey(key));
  const std::uint64_t inits = faults.calls("C_Initialize");
  faults.FailNthCall(1, CKR_DEVICE_ERROR, "C_Encrypt");
  StatusOr<hal::GcmCiphertext> failed = hsm.EncryptAesGcm(key, AsBytes("x"), {});
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error() == Status(StatusCode::kUnavailable, "C_Encrypt: CKR_DEVICE_ERROR"));
  CHECK(failed.error().device_code() == CKR_DEVICE_ERROR);
  CHECK(faults.calls("C_Initialize") == inits + 1);  // re-initialised once
  CHECK(faults.open_sessions() == 1);                // just the new anchor
  CHECK(hsm.EncryptAesGcm(key, AsBytes("x"), {}).error() ==
        UnavailableError("key handle outlived an HSM re-initialisation; load it again",
                         Reason::kHandleStale));
  // Unwrapping again gives a working key; the stale handle can be dropped safely.
  auto reloaded = Must(hsm.UnwrapKey(wrapped));
  auto c = Must(hsm.EncryptAesGcm(reloaded, AsBytes("x"), {}));
  key.reset();
  CHECK(Must(hsm.DecryptAesGcm(reloaded, c.iv, c.ciphertext, c.tag, {})).size() == 1);
  MustOk(hsm.CheckHealth());
}

TEST_CASE("a lost pool session is replaced without touching loaded keys", "[softhsm][faults]") {
  auto fx = MakeFixture({.session_pool_size = 1, .inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  FaultInjector& faults = *fx->faults();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac));
  MustOk(StatusOf(hsm.ComputeMac(key, AsBytes("m"))));
  REQUIRE(faults.open_sessions() == 2);
  const std::uint64_t opens = faults.calls("C_OpenSession");
  faults.FailNthCall(1, CKR_SESSION_HANDLE_INVALID, "C_Sign");
  CHECK(hsm.ComputeMac(key, AsBytes("m")).error() ==
        Status(StatusCode::kUnavailable, "C_Sign: CKR_SESSION_HANDLE_INVALID"));
  CHECK(faults.open_sessions() == 1);        // the pool session was closed, the anchor stays
  CHECK(faults.calls("C_Initialize") == 1);  // no re-initialisation for a lost pool session
  Must(hsm.ComputeMac(key, AsBytes("m")));   // same key, still valid
  CHECK(faults.calls("C_OpenSession") == opens + 1);
  CHECK(faults.open_sessions() == 2);
}

TEST_CASE("a module that stays down reports Unavailable until it comes back", "[softhsm][faults]") {
  auto fx = MakeFixture({.inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  FaultInjector& faults = *fx->faults();
  faults.FailAlways(CKR_DEVICE_REMOVED, "C_GetSlotList");
  faults.FailNthCall(1, CKR_DEVICE_REMOVED, "C_GenerateRandom");
  CHECK(hsm.GenerateRandom(8).error().code() == StatusCode::kUnavailable);
  // Reconnection keeps failing while the token is away.
  CHECK(hsm.CheckHealth().code() == StatusCode::kUnavailable);
  CHECK(hsm.GenerateRandom(8).error().code() == StatusCode::kUnavailable);
  faults.Clear();
  MustOk(hsm.CheckHealth());
  CHECK(Must(hsm.GenerateRandom(8)).size() == 8);
  CHECK(faults.open_sessions() <= 2);
}

TEST_CASE("device errors while several threads work: errors are Unavailable and work resumes",
          "[softhsm][faults][concurrency]") {
  auto fx = MakeFixture({.session_pool_size = kPool, .inject_faults = true});
  hal::Hsm& hsm = fx->hsm();
  FaultInjector& faults = *fx->faults();
  auto seed = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  const hal::WrappedKey wrapped = Must(hsm.WrapKey(seed));
  seed.reset();
  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0}, unavailable{0}, ok_after{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      StatusOr<hal::KeyHandle> key = hsm.UnwrapKey(wrapped);
      while (!stop.load()) {
        if (!key.has_value()) {
          key = hsm.UnwrapKey(wrapped);
          if (!key.has_value() && key.error().code() != StatusCode::kUnavailable) ++unexpected;
          continue;
        }
        auto c = hsm.EncryptAesGcm(*key, AsBytes("p"), {});
        if (c.has_value()) continue;
        if (c.error().code() != StatusCode::kUnavailable) {
          ++unexpected;
        } else {
          ++unavailable;
        }
        if (c.error().reason() == Reason::kHandleStale) key = hsm.UnwrapKey(wrapped);
      }
      // After the storm, this thread's work goes through. A recovery still running for a fault that
      // landed just before the end may make a key loaded meanwhile stale, hence a few tries.
      for (int attempt = 0; attempt < 5; ++attempt) {
        key = hsm.UnwrapKey(wrapped);
        if (key.has_value() && hsm.EncryptAesGcm(*key, AsBytes("p"), {}).has_value()) {
          ++ok_after;
          break;
        }
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    faults.FailNthCall(5 + static_cast<std::uint64_t>(round) * 3, CKR_DEVICE_ERROR);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  faults.Clear();
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(unexpected == 0);
  CHECK(unavailable > 0);  // the faults did land
  CHECK(ok_after == 4);
  CHECK(faults.open_sessions() <= static_cast<std::int64_t>(kPool + 1));
  MustOk(hsm.CheckHealth());
}

}  // namespace
}  // namespace kms::testing
