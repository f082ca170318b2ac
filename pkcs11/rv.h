// The one place where a Cryptoki return value (CK_RV) is interpreted.
//
// Every CK_RV of PKCS#11 v2.40 §11.1 (plus anything unknown or vendor-defined) has a name
// ("CKR_..."), a class that says what the caller should do about it, and the kms::Status it
// becomes. The Status keeps the CK_RV in `device_code()` so upper layers can classify a failure
// again (`ClassOf`) without parsing text. Messages carry the function and the CKR name, never data.
//
// Thread-safety: pure functions.
#ifndef KMS_PKCS11_RV_H_
#define KMS_PKCS11_RV_H_

#include <string>
#include <string_view>

#include "base/status.h"
#include "pkcs11/pkcs11.h"

namespace kms::pkcs11 {

// What a failure means for the caller.
enum class RvClass {
  kNone,         // CKR_OK, or a Status that did not come from a module
  kRetry,        // transient (memory, session count, cancelled): the same call may succeed later
  kSessionLost,  // the session is gone (CKR_SESSION_HANDLE_INVALID/CLOSED): drop it, open another
  kDevice,       // the module or token is gone or broken: finalize, initialize, log in again
  kObjectLost,   // an object handle is no longer valid: reload the key
  kAuth,         // PIN or login state (CKR_PIN_INCORRECT, CKR_USER_NOT_LOGGED_IN, ...)
  kInvalidData,  // the data is at fault: bad ciphertext, bad signature, wrong length
  kRefused,      // the token's policy refused: sensitive, not wrappable, read-only, prohibited
  kUnsupported,  // mechanism, function or curve not offered by the module
  kCallerBug,    // a bad call: arguments, templates, operation state; a bug on our side
  kFatal,        // a module failure with no recovery known (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED)
};

// "CKR_DEVICE_ERROR"; "CKR_VENDOR_DEFINED+0x..." or "CKR_UNKNOWN(0x...)" for codes outside the
// spec.
std::string RvName(CK_RV rv);
RvClass ClassOfRv(CK_RV rv);
std::string_view RvClassName(RvClass c);

// The Status for `rv` returned by `function` (e.g. "C_Encrypt"). OK for CKR_OK. The code follows
// the class: kRetry/kSessionLost/kDevice -> Unavailable; kObjectLost -> Unavailable/kHandleStale;
// kAuth -> Unauthenticated; kInvalidData -> InvalidArgument; kRefused -> FailedPrecondition/
// kPolicyViolation; kUnsupported -> Unimplemented/kMechanismUnsupported; kCallerBug/kFatal ->
// Internal.
Status RvToStatus(CK_RV rv, std::string_view function);

// The class of a Status made by RvToStatus (from its device_code); kNone for any other Status.
RvClass ClassOf(const Status& status);
// The CK_RV kept in a Status made by RvToStatus, CKR_OK otherwise.
CK_RV RvOf(const Status& status);

}  // namespace kms::pkcs11

#endif  // KMS_PKCS11_RV_H_
