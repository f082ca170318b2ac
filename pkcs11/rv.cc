#include "pkcs11/rv.h"

#include <cstdio>

namespace kms::pkcs11 {
namespace {

struct RvInfo {
  CK_RV rv;
  const char* name;
  RvClass cls;
};

// Every CK_RV of PKCS#11 v2.40 §11.1 (the CKR_ list of p11-kit's pkcs11.h), each with its class.
// Notes on the less obvious rows:
//  * CKR_GENERAL_ERROR is kFatal, but SoftHSM2 also returns it for a failed GCM tag and a bad
//  wrapped
//    blob; the HAL maps it to "invalid ciphertext" for those calls only (docs/softhsm2.md
//    "GCM and unwrap").
//  * CKR_SLOT_ID_INVALID is kDevice: a token that vanished from its slot needs the module
//  re-initialised.
//  * CKR_KEY_SIZE_RANGE is kInvalidData: imported material of the wrong length.
//  * CKR_BUFFER_TOO_SMALL is kCallerBug: the binding itself retries with the size the module asked
//  for.
constexpr RvInfo kRvTable[] = {
    {CKR_OK, "CKR_OK", RvClass::kNone},
    {CKR_CANCEL, "CKR_CANCEL", RvClass::kRetry},
    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY", RvClass::kRetry},
    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", RvClass::kDevice},
    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", RvClass::kFatal},
    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", RvClass::kFatal},
    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", RvClass::kCallerBug},
    {CKR_NO_EVENT, "CKR_NO_EVENT", RvClass::kCallerBug},
    {CKR_NEED_TO_CREATE_THREADS, "CKR_NEED_TO_CREATE_THREADS", RvClass::kFatal},
    {CKR_CANT_LOCK, "CKR_CANT_LOCK", RvClass::kFatal},
    {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY", RvClass::kRefused},
    {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE", RvClass::kRefused},
    {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID", RvClass::kCallerBug},
    {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID", RvClass::kCallerBug},
    {CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED", RvClass::kRefused},
    {CKR_DATA_INVALID, "CKR_DATA_INVALID", RvClass::kInvalidData},
    {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE", RvClass::kInvalidData},
    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", RvClass::kDevice},
    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY", RvClass::kRetry},
    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", RvClass::kDevice},
    {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID", RvClass::kInvalidData},
    {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE", RvClass::kInvalidData},
    {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED", RvClass::kRetry},
    {CKR_FUNCTION_NOT_PARALLEL, "CKR_FUNCTION_NOT_PARALLEL", RvClass::kCallerBug},
    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED", RvClass::kUnsupported},
    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID", RvClass::kObjectLost},
    {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE", RvClass::kInvalidData},
    {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT", RvClass::kCallerBug},
    {CKR_KEY_NOT_NEEDED, "CKR_KEY_NOT_NEEDED", RvClass::kCallerBug},
    {CKR_KEY_CHANGED, "CKR_KEY_CHANGED", RvClass::kCallerBug},
    {CKR_KEY_NEEDED, "CKR_KEY_NEEDED", RvClass::kCallerBug},
    {CKR_KEY_INDIGESTIBLE, "CKR_KEY_INDIGESTIBLE", RvClass::kCallerBug},
    {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED", RvClass::kRefused},
    {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE", RvClass::kRefused},
    {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE", RvClass::kRefused},
    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID", RvClass::kUnsupported},
    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID", RvClass::kCallerBug},
    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", RvClass::kObjectLost},
    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", RvClass::kCallerBug},
    {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED", RvClass::kCallerBug},
    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", RvClass::kAuth},
    {CKR_PIN_INVALID, "CKR_PIN_INVALID", RvClass::kAuth},
    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", RvClass::kAuth},
    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", RvClass::kAuth},
    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED", RvClass::kAuth},
    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", RvClass::kSessionLost},
    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT", RvClass::kRetry},
    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", RvClass::kSessionLost},
    {CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKR_SESSION_PARALLEL_NOT_SUPPORTED", RvClass::kCallerBug},
    {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY", RvClass::kRefused},
    {CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS", RvClass::kCallerBug},
    {CKR_SESSION_READ_ONLY_EXISTS, "CKR_SESSION_READ_ONLY_EXISTS", RvClass::kAuth},
    {CKR_SESSION_READ_WRITE_SO_EXISTS, "CKR_SESSION_READ_WRITE_SO_EXISTS", RvClass::kAuth},
    {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID", RvClass::kInvalidData},
    {CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE", RvClass::kInvalidData},
    {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE", RvClass::kCallerBug},
    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT", RvClass::kCallerBug},
    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT", RvClass::kDevice},
    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED", RvClass::kDevice},
    {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", RvClass::kRefused},
    {CKR_UNWRAPPING_KEY_HANDLE_INVALID, "CKR_UNWRAPPING_KEY_HANDLE_INVALID", RvClass::kObjectLost},
    {CKR_UNWRAPPING_KEY_SIZE_RANGE, "CKR_UNWRAPPING_KEY_SIZE_RANGE", RvClass::kCallerBug},
    {CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
     RvClass::kCallerBug},
    {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN", RvClass::kAuth},
    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", RvClass::kAuth},
    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED", RvClass::kAuth},
    {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID", RvClass::kAuth},
    {CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", RvClass::kAuth},
    {CKR_USER_TOO_MANY_TYPES, "CKR_USER_TOO_MANY_TYPES", RvClass::kAuth},
    {CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID", RvClass::kInvalidData},
    {CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE", RvClass::kInvalidData},
    {CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID", RvClass::kObjectLost},
    {CKR_WRAPPING_KEY_SIZE_RANGE, "CKR_WRAPPING_KEY_SIZE_RANGE", RvClass::kCallerBug},
    {CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT", RvClass::kCallerBug},
    {CKR_RANDOM_SEED_NOT_SUPPORTED, "CKR_RANDOM_SEED_NOT_SUPPORTED", RvClass::kUnsupported},
    {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG", RvClass::kUnsupported},
    {CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID", RvClass::kInvalidData},
    {CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED", RvClass::kUnsupported},
    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", RvClass::kCallerBug},
    {CKR_SAVED_STATE_INVALID, "CKR_SAVED_STATE_INVALID", RvClass::kCallerBug},
    {CKR_INFORMATION_SENSITIVE, "CKR_INFORMATION_SENSITIVE", RvClass::kRefused},
    {CKR_STATE_UNSAVEABLE, "CKR_STATE_UNSAVEABLE", RvClass::kUnsupported},
    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED", RvClass::kDevice},
    {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED", RvClass::kCallerBug},
    {CKR_MUTEX_BAD, "CKR_MUTEX_BAD", RvClass::kFatal},
    {CKR_MUTEX_NOT_LOCKED, "CKR_MUTEX_NOT_LOCKED", RvClass::kFatal},
    {CKR_NEW_PIN_MODE, "CKR_NEW_PIN_MODE", RvClass::kCallerBug},
    {CKR_NEXT_OTP, "CKR_NEXT_OTP", RvClass::kCallerBug},
    {CKR_EXCEEDED_MAX_ITERATIONS, "CKR_EXCEEDED_MAX_ITERATIONS", RvClass::kCallerBug},
    {CKR_FIPS_SELF_TEST_FAILED, "CKR_FIPS_SELF_TEST_FAILED", RvClass::kFatal},
    {CKR_LIBRARY_LOAD_FAILED, "CKR_LIBRARY_LOAD_FAILED", RvClass::kFatal},
    {CKR_PIN_TOO_WEAK, "CKR_PIN_TOO_WEAK", RvClass::kAuth},
    {CKR_PUBLIC_KEY_INVALID, "CKR_PUBLIC_KEY_INVALID", RvClass::kInvalidData},
    {CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED", RvClass::kRefused},
};

const RvInfo* Find(CK_RV rv) {
  for (const RvInfo& info : kRvTable) {
    if (info.rv == rv) return &info;
  }
  return nullptr;
}

std::string Hex(CK_RV rv) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%lX", rv);
  return buf;
}

}  // namespace

std::string RvName(CK_RV rv) {
  if (const RvInfo* info = Find(rv)) return info->name;
  if (rv >= CKR_VENDOR_DEFINED) return "CKR_VENDOR_DEFINED+" + Hex(rv - CKR_VENDOR_DEFINED);
  return "CKR_UNKNOWN(" + Hex(rv) + ")";
}

RvClass ClassOfRv(CK_RV rv) {
  if (const RvInfo* info = Find(rv)) return info->cls;
  // Unknown and vendor codes: nothing is known about them, so nothing is retried.
  return RvClass::kFatal;
}

std::string_view RvClassName(RvClass c) {
  switch (c) {
    case RvClass::kNone:
      return "none";
    case RvClass::kRetry:
      return "retry";
    case RvClass::kSessionLost:
      return "session lost";
    case RvClass::kDevice:
      return "device";
    case RvClass::kObjectLost:
      return "object lost";
    case RvClass::kAuth:
      return "auth";
    case RvClass::kInvalidData:
      return "invalid data";
    case RvClass::kRefused:
      return "refused";
    case RvClass::kUnsupported:
      return "unsupported";
    case RvClass::kCallerBug:
      return "caller bug";
    case RvClass::kFatal:
      return "fatal";
  }
  return "unknown";
}

Status RvToStatus(CK_RV rv, std::string_view function) {
  if (rv == CKR_OK) return Status();
  std::string message = std::string(function) + ": " + RvName(rv);
  switch (ClassOfRv(rv)) {
    case RvClass::kNone:
      return Status();
    case RvClass::kRetry:
    case RvClass::kSessionLost:
    case RvClass::kDevice:
      return Status(StatusCode::kUnavailable, std::move(message), Reason::kNone, rv);
    case RvClass::kObjectLost:
      return Status(StatusCode::kUnavailable, std::move(message), Reason::kHandleStale, rv);
    case RvClass::kAuth:
      return Status(StatusCode::kUnauthenticated, std::move(message), Reason::kNone, rv);
    case RvClass::kInvalidData:
      return Status(StatusCode::kInvalidArgument, std::move(message), Reason::kNone, rv);
    case RvClass::kRefused:
      return Status(StatusCode::kFailedPrecondition, std::move(message), Reason::kPolicyViolation,
                    rv);
    case RvClass::kUnsupported:
      return Status(StatusCode::kUnimplemented, std::move(message), Reason::kMechanismUnsupported,
                    rv);
    case RvClass::kCallerBug:
    case RvClass::kFatal:
      return Status(StatusCode::kInternal, std::move(message), Reason::kNone, rv);
  }
  return Status(StatusCode::kInternal, std::move(message), Reason::kNone, rv);
}

RvClass ClassOf(const Status& status) {
  if (status.ok() || status.device_code() == 0) return RvClass::kNone;
  return ClassOfRv(static_cast<CK_RV>(status.device_code()));
}

CK_RV RvOf(const Status& status) {
  if (status.ok()) return CKR_OK;
  return static_cast<CK_RV>(status.device_code());
}

}  // namespace kms::pkcs11
