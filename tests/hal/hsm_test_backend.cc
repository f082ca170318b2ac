#include "tests/hal/hsm_test_backend.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#if defined(KMS_TEST_HSM_SOFTHSM)
#include "tests/support/softhsm_fixture.h"
#elif defined(KMS_TEST_HSM_FAKE)
#include "tests/support/fake_hsm.h"
#elif defined(KMS_TEST_HSM_METERED_FAKE)
#include "base/metrics.h"
#include "hal/metered_hsm.h"
#include "tests/support/fake_hsm.h"
#else
#error "define KMS_TEST_HSM_FAKE, KMS_TEST_HSM_METERED_FAKE or KMS_TEST_HSM_SOFTHSM"
#endif

namespace kms::testing {

#if defined(KMS_TEST_HSM_SOFTHSM)
hal::Hsm& TestHsm() {
  // One token per process (SOFTHSM2_CONF is process-global; CTest runs each case in its own
  // process).
  static const std::unique_ptr<SoftHsmFixture> fixture = [] {
    auto f = SoftHsmFixture::Create();
    if (!f.has_value()) {
      std::fprintf(stderr, "cannot make a SoftHSM2 dev token: %s\n", f.error().ToString().c_str());
      std::abort();  // every case needs it; failing loudly beats a cascade of null dereferences
    }
    return std::move(*f);
  }();
  return fixture->hsm();
}
std::string_view TestHsmName() { return "softhsm"; }
#endif

#if defined(KMS_TEST_HSM_FAKE)
hal::Hsm& TestHsm() {
  static const std::unique_ptr<FakeHsm> hsm = NewFakeHsm();  // thread-safe static init (C++11)
  return *hsm;
}
std::string_view TestHsmName() { return "fake"; }
#endif

#if defined(KMS_TEST_HSM_METERED_FAKE)
hal::Hsm& TestHsm() {
  static const std::unique_ptr<FakeHsm> inner = NewFakeHsm();
  static metrics::MetricsRegistry registry;
  static hal::MeteredHsm hsm(*inner, registry);
  return hsm;
}
std::string_view TestHsmName() { return "metered fake"; }
#endif

}  // namespace kms::testing
