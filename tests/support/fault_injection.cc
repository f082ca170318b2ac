#include "tests/support/fault_injection.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kms::testing {
namespace {

std::atomic<FaultInjector*> g_active{nullptr};

// A compile-time function name, so one template makes every wrapper.
template <std::size_t N>
struct Name {
  constexpr Name(const char (&s)[N]) {  // NOLINT(google-explicit-constructor)
    for (std::size_t i = 0; i < N; ++i) value[i] = s[i];
  }
  char value[N];
};

template <typename Fn>
struct Thunk;

template <typename... Args>
struct Thunk<CK_RV (*)(Args...)> {
  template <CK_RV (*CK_FUNCTION_LIST::*Member)(Args...), Name kName>
  static CK_RV Call(Args... args) {
    FaultInjector* injector = g_active.load(std::memory_order_acquire);
    if (injector == nullptr) return CKR_CRYPTOKI_NOT_INITIALIZED;
    CK_RV injected = injector->Before(kName.value);
    if (injected != CKR_OK) return injected;
    CK_RV rv = (injector->real()->*Member)(args...);
    // After() recognises C_OpenSession by name; any non-invalid value marks success.
    CK_SESSION_HANDLE opened = rv == CKR_OK ? 1 : CK_INVALID_HANDLE;
    injector->After(kName.value, rv, opened);
    return rv;
  }
};

}  // namespace

#define KMS_WRAP(fn) wrapped_.fn = &Thunk<CK_##fn>::Call<&CK_FUNCTION_LIST::fn, Name(#fn)>

FaultInjector::FaultInjector(CK_FUNCTION_LIST* real) : real_(real) {
  FaultInjector* expected = nullptr;
  if (!g_active.compare_exchange_strong(expected, this)) {
    std::fprintf(stderr, "FaultInjector: only one may exist per process\n");
    std::abort();
  }
  // Version, and any entry not wrapped below, come from the real list. The logout entry is left
  // unwrapped on purpose: the tree names that function in one file only (tools/lint), and the HAL's
  // never-log-out rule is tested through session states instead.
  wrapped_ = *real;
  KMS_WRAP(C_Initialize);
  KMS_WRAP(C_Finalize);
  KMS_WRAP(C_GetInfo);
  KMS_WRAP(C_GetSlotList);
  KMS_WRAP(C_GetSlotInfo);
  KMS_WRAP(C_GetTokenInfo);
  KMS_WRAP(C_GetMechanismList);
  KMS_WRAP(C_GetMechanismInfo);
  KMS_WRAP(C_InitToken);
  KMS_WRAP(C_InitPIN);
  KMS_WRAP(C_SetPIN);
  KMS_WRAP(C_OpenSession);
  KMS_WRAP(C_CloseSession);
  KMS_WRAP(C_CloseAllSessions);
  KMS_WRAP(C_GetSessionInfo);
  KMS_WRAP(C_Login);
  KMS_WRAP(C_CreateObject);
  KMS_WRAP(C_CopyObject);
  KMS_WRAP(C_DestroyObject);
  KMS_WRAP(C_GetAttributeValue);
  KMS_WRAP(C_SetAttributeValue);
  KMS_WRAP(C_FindObjectsInit);
  KMS_WRAP(C_FindObjects);
  KMS_WRAP(C_FindObjectsFinal);
  KMS_WRAP(C_EncryptInit);
  KMS_WRAP(C_Encrypt);
  KMS_WRAP(C_EncryptUpdate);
  KMS_WRAP(C_EncryptFinal);
  KMS_WRAP(C_DecryptInit);
  KMS_WRAP(C_Decrypt);
  KMS_WRAP(C_DecryptUpdate);
  KMS_WRAP(C_DecryptFinal);
  KMS_WRAP(C_DigestInit);
  KMS_WRAP(C_Digest);
  KMS_WRAP(C_SignInit);
  KMS_WRAP(C_Sign);
  KMS_WRAP(C_SignUpdate);
  KMS_WRAP(C_SignFinal);
  KMS_WRAP(C_VerifyInit);
  KMS_WRAP(C_Verify);
  KMS_WRAP(C_VerifyUpdate);
  KMS_WRAP(C_VerifyFinal);
  KMS_WRAP(C_GenerateKey);
  KMS_WRAP(C_GenerateKeyPair);
  KMS_WRAP(C_WrapKey);
  KMS_WRAP(C_UnwrapKey);
  KMS_WRAP(C_DeriveKey);
  KMS_WRAP(C_GenerateRandom);
}

#undef KMS_WRAP

FaultInjector::~FaultInjector() { g_active.store(nullptr, std::memory_order_release); }

void FaultInjector::FailNthCall(std::uint64_t n, CK_RV rv, std::string function) {
  std::lock_guard lock(mu_);
  armed_ = n > 0;
  remaining_ = n;
  rv_ = rv;
  function_ = std::move(function);
}

void FaultInjector::FailAlways(CK_RV rv, std::string function) {
  std::lock_guard lock(mu_);
  always_ = true;
  always_rv_ = rv;
  always_function_ = std::move(function);
}

void FaultInjector::Clear() {
  std::lock_guard lock(mu_);
  armed_ = false;
  always_ = false;
}

std::uint64_t FaultInjector::calls() const {
  std::lock_guard lock(mu_);
  return total_;
}

std::uint64_t FaultInjector::calls(std::string_view function) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(function);
  return it == counts_.end() ? 0 : it->second;
}

std::uint64_t FaultInjector::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

std::int64_t FaultInjector::open_sessions() const {
  std::lock_guard lock(mu_);
  return open_sessions_;
}

CK_RV FaultInjector::Before(const char* function) {
  std::lock_guard lock(mu_);
  ++total_;
  ++counts_[function];
  if (always_ && (always_function_.empty() || always_function_ == function)) {
    ++injected_;
    return always_rv_;
  }
  if (armed_ && (function_.empty() || function_ == function)) {
    if (--remaining_ == 0) {
      armed_ = false;
      ++injected_;
      return rv_;
    }
  }
  return CKR_OK;
}

void FaultInjector::After(const char* function, CK_RV rv, CK_SESSION_HANDLE opened) {
  std::lock_guard lock(mu_);
  std::string_view f(function);
  if (f == "C_OpenSession" && opened != CK_INVALID_HANDLE) ++open_sessions_;
  if (f == "C_CloseSession" && rv == CKR_OK) --open_sessions_;
  if ((f == "C_CloseAllSessions" && rv == CKR_OK) || f == "C_Finalize") open_sessions_ = 0;
}

}  // namespace kms::testing
