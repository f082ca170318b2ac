#include "pkcs11/token.h"

#include "pkcs11/rv.h"

namespace kms::pkcs11 {

namespace {

// SoftHSM2 refuses a NULL pointer even with length 0; an empty PIN points at a dummy byte.
unsigned char* In(ByteView v) {
  static unsigned char empty = 0;
  return v.empty() ? &empty : const_cast<unsigned char*>(v.data());
}

Status DoLogin(Session& session, CK_USER_TYPE user, const SecretBytes& pin) {
  ByteView p = pin.ExposeSecret();
  CK_RV rv = session.module().functions()->C_Login(session.handle(), user, In(p),
                                                   static_cast<CK_ULONG>(p.size()));
  // §5.6: the login is per application and token; already being logged in as this user is the goal.
  if (rv == CKR_USER_ALREADY_LOGGED_IN) return Status();
  return RvToStatus(rv, "C_Login");
}
}  // namespace

Status Login::User(Session& session, const SecretBytes& pin) {
  return DoLogin(session, CKU_USER, pin);
}

Status Login::SecurityOfficer(Session& session, const SecretBytes& pin) {
  return DoLogin(session, CKU_SO, pin);
}

Status Login::Logout(Session& session) {
  return RvToStatus(session.module().functions()->C_Logout(session.handle()), "C_Logout");
}

}  // namespace kms::pkcs11
