// Token initialisation with SO rights: the one sequence both the dev token (dev_token.h) and the
// production ceremony (ceremony.h) run to turn an empty token into one the HAL can open.
//
// `FindSlotForNewToken` picks the first slot whose token is not initialised (CKF_TOKEN_INITIALIZED
// clear; SoftHSM2 always offers one) and refuses when a token with the wanted label already exists,
// so nothing is ever initialised over a token that holds keys. `InitTokenWithDomainKey` then, on
// that slot: C_InitToken with a first SO PIN from getrandom(2) (no session can exist on an
// uninitialised token, so the module's RNG is out of reach), logs in as SO and replaces that PIN at
// once with one from the module's RNG (C_SetPIN), sets the user PIN (C_InitPIN) to whatever the
// caller's `UserPinSource` returns (called while the SO is logged in, so it may draw from the
// module RNG), runs the caller's optional SO step, logs out, logs in as the user and creates the
// domain key with the policy template of hal/pkcs11_policy.h (or has the caller's source put one
// there: restore unwraps a backed-up one), checking its attributes back. PINs are lowercase hex of 16 random bytes and
// live only in SecretBytes.
//
// On return every session it opened is closed, which logs the user out (PKCS#11 v2.40 §6.7.1: the
// last session closing ends the login); the module stays initialised and the caller owns it. A
// failure part-way leaves a token that is initialised but not usable: this layer does not try to
// undo C_InitToken (PKCS#11 has no "uninitialise"); callers say so to the operator.
//
// Thread-safety: not thread-safe; the caller must be the only user of the module while it runs.
#ifndef KMS_PROVISIONING_TOKEN_INIT_H_
#define KMS_PROVISIONING_TOKEN_INIT_H_

#include <functional>
#include <string>
#include <string_view>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "pkcs11/module.h"
#include "pkcs11/pkcs11.h"
#include "pkcs11/session.h"

namespace kms::provisioning {

// The user PIN, chosen while the SO is logged in on `so_session` (it may draw from its RNG).
using UserPinSource = std::function<StatusOr<SecretBytes>(pkcs11::Session& so_session)>;

struct TokenInitRequest {
  std::string token_label;  // 1..32 bytes, no leading or trailing blank
  std::string domain_key_label;
  // Null: a random PIN from the module's RNG (16 bytes as 32 hex characters), as dev tokens use.
  UserPinSource user_pin;
  // Null: nothing. Otherwise called on the init session with the SO logged in, after the user PIN
  // is set: the SO's own work before the switch to the user. Restore installs its trusted KEK here
  // (only the SO may set CKA_TRUSTED), as a public session object of this session, which survives
  // the logout (PKCS#11 v2.40 §5.6 destroys only private session objects).
  std::function<Status(pkcs11::Session& so_session)> while_so;
  // Null: a fresh domain key (C_GenerateKey with the policy template). Otherwise called on the same
  // session with the user logged in; it returns the handle of the domain key it put on the token.
  std::function<StatusOr<CK_OBJECT_HANDLE>(pkcs11::Session& user_session)> domain_key;
};

struct InitializedToken {
  CK_SLOT_ID slot = 0;  // the token's slot once initialised (SoftHSM2 gives it a new one)
  std::string serial;
  std::string model;  // CK_TOKEN_INFO.model, e.g. "SoftHSM v2"
  SecretBytes so_pin;
  SecretBytes user_pin;
};

// InvalidArgument unless the label fits PKCS#11's 32-byte blank-padded field and survives the
// trimming every lookup does (no leading or trailing blank).
Status CheckTokenLabel(std::string_view label);

// The first slot with an uninitialised token. AlreadyExists "a token labelled 'X' already exists in
// slot N: refusing to initialise over it" when one has the label; FailedPrecondition when the
// module offers no uninitialised token.
StatusOr<CK_SLOT_ID> FindSlotForNewToken(const pkcs11::Module& module, std::string_view label);

// Initialises the token in `slot` (see the contract above). The label is checked again first.
StatusOr<InitializedToken> InitTokenWithDomainKey(pkcs11::Module& module, CK_SLOT_ID slot,
                                                  const TokenInitRequest& request);

}  // namespace kms::provisioning

#endif  // KMS_PROVISIONING_TOKEN_INIT_H_
