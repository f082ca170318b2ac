// Login: the login state of a token for this process (PKCS#11 v2.40 §5.6 C_Login and its inverse).
//
// Logging in through any session logs in every session of the application on that token;
// CKR_USER_ALREADY_LOGGED_IN means the wanted state already holds and is success. Nothing here logs
// out implicitly: a session closing must not log the others out (Botan's per-session logout is the
// model NOT to follow, docs/conventions.md "Models"). `Logout` is the tree's one call of the
// Cryptoki logout function (tools/lint checks); provisioning uses it to switch from the SO to the
// user, the product never.
//
// Thread-safety: as the Session passed in (one thread at a time per session).
#ifndef KMS_PKCS11_TOKEN_H_
#define KMS_PKCS11_TOKEN_H_

#include "base/secret_bytes.h"
#include "base/status.h"
#include "pkcs11/session.h"

namespace kms::pkcs11 {

class Login {
 public:
  static Status User(Session& session, const SecretBytes& pin);
  static Status SecurityOfficer(Session& session, const SecretBytes& pin);
  // Ends the login of every session of this application on the token and destroys all its private
  // session objects (PKCS#11 v2.40 §5.6).
  static Status Logout(Session& session);
};

}  // namespace kms::pkcs11

#endif  // KMS_PKCS11_TOKEN_H_
