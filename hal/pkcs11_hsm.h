// The PKCS#11 backend of hal::Hsm: a real HSM (or SoftHSM2) driven through a Cryptoki module.
//
// `OpenPkcs11Hsm` loads the module, finds the token by label (and serial when given; fails loudly
// when it is missing), logs the user in once on a long-lived anchor session, finds the domain key
// by label and refuses it (FailedPrecondition/kPolicyViolation) unless its attributes match the
// policy of hal/pkcs11_policy.h, then asks the module what it supports (hal::Capabilities).
//
// Runtime shape (see hal/pkcs11_hsm.cc for the why):
//  * The anchor session logs in and creates every session object (generate, unwrap, import), so
//  loaded
//    keys survive the replacement of pool sessions. Operations run on a pool of `session_pool_size`
//    sessions, each checked out by one thread at a time (SoftHSM2 crashes when two threads share
//    one).
//  * A pool session the module reports gone (CKR_SESSION_HANDLE_INVALID, ...) or that failed
//  mid-operation
//    is closed and replaced. A device error (CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT,
//    CKR_CRYPTOKI_NOT_INITIALIZED, ...) makes the backend re-initialise the module, log in again
//    and find the domain key again; the failing call still returns its error, the next one works.
//    Keys loaded before answer Unavailable/kHandleStale.
//  * The user PIN stays in memory (SecretBytes) for those re-logins.
//  * Token data (hal/hsm.h) are private CKO_DATA token objects with CKA_APPLICATION
//    "kms-appliance". A value is replaced by creating the next generation (CKA_OBJECT_ID) and then
//    destroying the old object, because SoftHSM2 will not change a data object's CKA_VALUE: a crash
//    in between leaves two objects, read as the newer one. Any other duplicate is Internal.
//  * SoftHSM2 rewrites its token.object in place on every successful login, so a process killed during
//    OpenPkcs11Hsm (or a re-login) can leave the token unreadable; provisioning/dev_token.h repairs dev
//    tokens, a production SoftHSM2 token directory needs a backup. Real HSMs are not affected.
//
// This header carries no PKCS#11 types so firmware/ may include it; the overload that takes a
// Cryptoki function list (for fault injection) is in hal/pkcs11_hsm_functions.h.
//
// Thread-safety: the returned Hsm is safe for concurrent use (hal/hsm.h).
#ifndef KMS_HAL_PKCS11_HSM_H_
#define KMS_HAL_PKCS11_HSM_H_

#include <cstddef>
#include <memory>
#include <string>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/hsm.h"

namespace kms::hal {

struct Pkcs11HsmConfig {
  std::string module_path;  // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string token_label;
  std::string token_serial;  // optional: when set the token must also have this serial
  SecretBytes user_pin;
  std::string domain_key_label = "kms-domain-key";
  std::size_t session_pool_size = 2;
};

StatusOr<std::unique_ptr<Hsm>> OpenPkcs11Hsm(Pkcs11HsmConfig config);

}  // namespace kms::hal

#endif  // KMS_HAL_PKCS11_HSM_H_
