// FaultInjector: a CK_FUNCTION_LIST that wraps a real one, counts every call and fails chosen calls
// with a chosen CK_RV, in the spirit of Beast's fail_count. Test support only, never linked into a
// product.
//
// Slot it between the HAL and the module with hal::OpenPkcs11Hsm(config, injector.functions()). A
// call picked for failure returns the injected CK_RV WITHOUT reaching the real module (so the
// module state is as if the call never happened, which is what a device failing mid-operation looks
// like from above). C_Initialize/C_Finalize/C_OpenSession/C_CloseSession/C_CloseAllSessions that do
// reach the module are tracked so `open_sessions()` tells how many sessions the code under test
// holds open.
//
// Only one FaultInjector may exist per process at a time: a C function table cannot carry a context
// pointer, so the wrappers find the injector through a process-wide pointer.
//
// Thread-safety: counters and the fault plan are guarded; any thread may call through
// `functions()`.
#ifndef KMS_TESTS_SUPPORT_FAULT_INJECTION_H_
#define KMS_TESTS_SUPPORT_FAULT_INJECTION_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "pkcs11/pkcs11.h"

namespace kms::testing {

class FaultInjector {
 public:
  explicit FaultInjector(CK_FUNCTION_LIST* real);
  ~FaultInjector();
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // The wrapped list to hand to the code under test.
  CK_FUNCTION_LIST* functions() { return &wrapped_; }
  CK_FUNCTION_LIST* real() const { return real_; }

  // Fails the n-th call from now (n = 1: the next one) of `function` ("C_Encrypt"; any function
  // when empty) with `rv`, once.
  void FailNthCall(std::uint64_t n, CK_RV rv, std::string function = {});
  // Fails every call of `function` with `rv` until Clear().
  void FailAlways(CK_RV rv, std::string function);
  // Removes every planned fault.
  void Clear();

  std::uint64_t calls() const;                           // all functions
  std::uint64_t calls(std::string_view function) const;  // one function
  std::uint64_t injected() const;                        // faults injected so far
  // Sessions opened through this list and not yet closed (C_CloseAllSessions, C_Finalize reset it).
  std::int64_t open_sessions() const;

  // Called by the wrappers: counts the call, and returns the CK_RV to inject or CKR_OK to go ahead.
  CK_RV Before(const char* function);
  void After(const char* function, CK_RV rv, CK_SESSION_HANDLE opened);

 private:
  CK_FUNCTION_LIST* real_;
  CK_FUNCTION_LIST wrapped_{};
  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t, std::less<>> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t injected_ = 0;
  std::int64_t open_sessions_ = 0;
  // One-shot plan.
  bool armed_ = false;
  std::uint64_t remaining_ = 0;
  CK_RV rv_ = CKR_OK;
  std::string function_;
  // Persistent plan.
  bool always_ = false;
  CK_RV always_rv_ = CKR_OK;
  std::string always_function_;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_FAULT_INJECTION_H_
