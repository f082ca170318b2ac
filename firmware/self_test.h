// Power-on self-tests: every algorithm the appliance serves is checked on the device itself,
// through the HAL only, before kmsd serves anything (FIPS 140-3 pre-operational and
// conditional self-tests; docs/self-tests.md). `RunPowerOnSelfTests` runs these
// named tests in this fixed order and stops at the first failure:
//   rng                        continuous RNG test: two GenerateRandom(32) draws differ (first: GCM
//                              IVs and key generation draw from the RNG)
//   aes-256-gcm-kat            DecryptAesGcm of a published vector gives its plaintext; the vector
//                              with one tag bit flipped is refused (kInvalidCiphertext)
//   aes-256-gcm-roundtrip      EncryptAesGcm then DecryptAesGcm (pairwise: encryption draws its IV)
//   key-wrap                   GenerateKey, WrapKey, UnwrapKey under the domain key, then encrypt
//                              with one handle and decrypt with the other (pairwise: the domain key
//                              is unknown by design)
//   ecdsa-p256-verify-kat      VerifyDigest of a fixed signature passes; one bit flipped is
//   rsa-2048-pkcs1-verify-kat  refused (kInvalidSignature)
//   rsa-2048-pss-verify-kat
//   hmac-sha256-kat            ComputeMac gives the RFC 4231 MAC; VerifyMac of it passes, of it
//   hmac-sha384-kat            with one bit flipped is refused (kInvalidMac)
//   hmac-sha512-kat
// A test whose mechanism the device does not offer (`Hsm::capabilities()`) is skipped and listed as
// such: the HAL refuses a mechanism the device lacks (hal/hsm.h), so nothing untested is served.
//
// A failure is a Status whose message starts "self-test <name> failed: ", then either the HAL's
// status for the step that failed (its code and device_code are kept, so a device fault stays
// Unavailable) or "wrong answer: ..." (Internal). Messages carry names and nothing of any key or
// plaintext; the only key material in play is that of the public test vectors in self_test.cc.
//
// Thread-safety: uses only `hsm`, which is thread-safe; meant to run once, alone, before serving.
// Keys it loads are session objects released before it returns. Cost: 34 HSM calls and no key pair
// generation, about 1.5 ms on SoftHSM2 (docs/self-tests.md).
#ifndef KMS_FIRMWARE_SELF_TEST_H_
#define KMS_FIRMWARE_SELF_TEST_H_

#include <chrono>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hal/hsm.h"

namespace kms::firmware {

// One named self-test.
struct SelfTest {
  std::string_view name;  // stable: logs and alerts match on it
  // Whether the device offers what the test exercises; when not, the test is skipped.
  bool (*applies)(const hal::Capabilities& capabilities);
  // The test itself; its error says what went wrong, without the "self-test <name>" prefix.
  Status (*run)(hal::Hsm& hsm);
};

// The tests in run order.
std::span<const SelfTest> PowerOnSelfTests();

// Runs one test (whether or not it applies); a failure carries the "self-test <name> failed: "
// prefix. For break tests and diagnostics.
Status RunSelfTest(hal::Hsm& hsm, const SelfTest& test);

struct SelfTestReport {
  std::vector<std::string_view> passed;   // in run order
  std::vector<std::string_view> skipped;  // the device lacks the mechanism
  std::chrono::microseconds duration{0};  // wall time of the whole run
};

// Runs every test that applies, in order; the first failure stops the run and is returned.
StatusOr<SelfTestReport> RunPowerOnSelfTests(hal::Hsm& hsm);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_SELF_TEST_H_
