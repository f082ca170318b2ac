// The HSM a HAL suite runs against, chosen when the suite is compiled: the in-memory fake
// (KMS_TEST_HSM_FAKE, label `unit`) or a SoftHSM2 dev token in a temp folder (KMS_TEST_HSM_SOFTHSM,
// label `softhsm`), or the fake seen through hal::MeteredHsm (KMS_TEST_HSM_METERED_FAKE, label
// `unit`: the decorator must change nothing). The same test sources compile once per backend, so
// one contract holds for all.
//
// Contract: `TestHsm()` opens the backend on first use and keeps it for the life of the process (a
// SoftHSM token costs a PIN derivation and a domain-key ceremony; one per process is plenty).
// Thread-safety: TestHsm() may be called from any thread; the Hsm itself is thread-safe.
#ifndef KMS_TESTS_HAL_HSM_TEST_BACKEND_H_
#define KMS_TESTS_HAL_HSM_TEST_BACKEND_H_

#include <string_view>

#include "hal/hsm.h"

// Test case names carry the backend, so the two builds of a suite register distinct CTest names.
#if defined(KMS_TEST_HSM_SOFTHSM)
#define KMS_HSM_CASE(name) "softhsm: " name
#elif defined(KMS_TEST_HSM_METERED_FAKE)
#define KMS_HSM_CASE(name) "metered fake: " name
#else
#define KMS_HSM_CASE(name) "fake: " name
#endif

namespace kms::testing {

hal::Hsm& TestHsm();
std::string_view TestHsmName();  // "fake", "metered fake" or "softhsm"

}  // namespace kms::testing

#endif  // KMS_TESTS_HAL_HSM_TEST_BACKEND_H_
