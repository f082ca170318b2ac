// SoftHsmFixture: a fresh SoftHSM2 dev token in a temporary folder, made by the project's own
// provisioning code (provisioning/dev_token.h), and a hal::Hsm opened on it through the PKCS#11
// backend.
//
//   auto fixture = kms::testing::SoftHsmFixture::Create();
//   REQUIRE(fixture.has_value());
//   kms::hal::Hsm& hsm = (*fixture)->hsm();
//
// The folder is removed when the fixture dies. SOFTHSM2_CONF is process-global (see dev_token.h):
// use one fixture per process at a time; CTest runs each Catch2 test case in its own process, so
// one fixture per TEST_CASE is the pattern. The module is dlopen()ed once by the fixture and the
// Hsm is opened on its function list (optionally through a FaultInjector), so tests can also reach
// the module directly with `real_functions()` to inspect the objects the HAL made (session objects
// are visible to every session of the process). Never log out or finalise through it: the Hsm owns
// the login and initialisation.
//
// Thread-safety: the fixture itself is not; the Hsm it returns is.
#ifndef KMS_TESTS_SUPPORT_SOFTHSM_FIXTURE_H_
#define KMS_TESTS_SUPPORT_SOFTHSM_FIXTURE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "base/status.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/pkcs11.h"
#include "provisioning/dev_token.h"
#include "tests/support/fault_injection.h"

namespace kms::pkcs11 {
class Library;
}

namespace kms::testing {

struct SoftHsmFixtureOptions {
  std::size_t session_pool_size = 2;
  bool inject_faults = false;  // open the Hsm through a FaultInjector (see faults())
  bool open_hsm = true;        // false: only make the token (open it later with OpenHsm())
};

class SoftHsmFixture {
 public:
  static StatusOr<std::unique_ptr<SoftHsmFixture>> Create(SoftHsmFixtureOptions options = {});
  ~SoftHsmFixture();  // closes the Hsm (C_Finalize), unloads the module, removes the folder
  SoftHsmFixture(const SoftHsmFixture&) = delete;
  SoftHsmFixture& operator=(const SoftHsmFixture&) = delete;

  // The open Hsm. Precondition: opened (open_hsm, or OpenHsm() succeeded).
  hal::Hsm& hsm() { return *hsm_; }
  bool hsm_open() const { return hsm_ != nullptr; }
  // Opens the Hsm with `config` (Config() by default) on the fixture's function list.
  Status OpenHsm();
  Status OpenHsm(hal::Pkcs11HsmConfig config);
  // Closes the Hsm (keys it returned must be gone first to free their objects; handles outliving it
  // stay safe to destroy).
  void CloseHsm();

  const provisioning::DevToken& token() const { return token_; }
  // A config for this token: module path, label, serial, a copy of the user PIN, DK label, pool
  // size.
  hal::Pkcs11HsmConfig Config() const;

  // The function list the Hsm is opened on (the injector's when inject_faults).
  CK_FUNCTION_LIST* functions();
  // The real module's list, bypassing fault injection.
  CK_FUNCTION_LIST* real_functions();
  // The injector; null unless inject_faults.
  FaultInjector* faults() { return faults_.get(); }
  // The slot of the token (valid while the Hsm is open).
  StatusOr<CK_SLOT_ID> slot() const;

 private:
  SoftHsmFixture() = default;

  SoftHsmFixtureOptions options_;
  provisioning::DevToken token_;
  std::unique_ptr<pkcs11::Library> library_;
  std::unique_ptr<FaultInjector> faults_;
  std::unique_ptr<hal::Hsm> hsm_;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_SOFTHSM_FIXTURE_H_
