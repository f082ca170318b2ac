#include "tests/hal/hsm_test_backend.h"

#include <memory>

#if defined(KMS_TEST_HSM_SOFTHSM)
#include "tests/support/softhsm_fixture.h"
#elif defined(KMS_TEST_HSM_FAKE)
#include "tests/support/fake_hsm.h"
#else
#error "define KMS_TEST_HSM_FAKE or KMS_TEST_HSM_SOFTHSM"
#endif

namespace kms::testing {

#if defined(KMS_TEST_HSM_FAKE)
hal::Hsm& TestHsm() {
  static const std::unique_ptr<FakeHsm> hsm = NewFakeHsm();  // thread-safe static init (C++11)
  return *hsm;
}
std::string_view TestHsmName() { return "fake"; }
#endif

}  // namespace kms::testing
