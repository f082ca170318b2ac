// What every AWS door in a test needs besides its key service: users, access control and the
// KeyAuthorizer every operation passes (there is no door without one). The SigV4 example key
// (AKIDEXAMPLE, tests/api/sign_request.h's default) is an administrator key of user `admin`: an
// administrator's identity policy allows every action under the default key policy, so tests of
// the door's translation and framing call with it; tests of access control add their own users.
// No user record is made (the key's own administrator flag is what counts), so stores stay as the
// tests expect them.
//
// Lifetime: the ServiceFixture outlives this. Thread-safety: as the parts (fully concurrent).
#ifndef KMS_TESTS_API_DOOR_AUTHZ_FIXTURE_H_
#define KMS_TESTS_API_DOOR_AUTHZ_FIXTURE_H_

#include <catch2/catch.hpp>

#include <string>

#include "api/aws/access_key_store.h"
#include "api/aws/authorization.h"
#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::api::testing {

using aws::AccessRule;
using aws::Authorization;
using aws::InMemoryAccessKeyStore;
using aws::KeyAuthorizer;
using aws::KeySource;
using aws::OperationContext;
using aws::OperationSpec;

inline constexpr std::string_view kTestAccount = "111122223333";
inline constexpr std::string_view kExampleAccessKeyId = "AKIDEXAMPLE";
inline constexpr std::string_view kExampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
inline const std::string kExampleAdminArn = "arn:aws:iam::111122223333:user/admin";

struct DoorAuthz {
  explicit DoorAuthz(firmware::testing::ServiceFixture& service,
                     firmware::authz::AccessControlConfig config = {})
      : principals(*service.store, service.clock, std::string(kTestAccount)),
        access(service.Hsm(), *service.store, principals, service.clock, std::move(config)),
        authorizer(service.svc(), access) {}
  // Registers the SigV4 example key as the administrator's.
  void AddExampleKey(InMemoryAccessKeyStore& keys) const {
    keys.Add(std::string(kExampleAccessKeyId), SecretBytes::CopyFrom(AsBytes(kExampleSecret)),
             kExampleAdminArn, /*administrator=*/true);
  }

  firmware::authz::PrincipalRegistry principals;
  firmware::authz::AccessControl access;
  KeyAuthorizer authorizer;
};

// A test operation, decided as an account-level action (kms:<its name> by the caller's identity
// policy: allowed for the administrator key), from a function of the context and the body.
template <typename Fn>
OperationSpec AccountLevel(Fn fn, bool mutating = false) {
  return OperationSpec{AccessRule{KeySource::kAccount, "", "", ""}, mutating,
                       [fn = std::move(fn)](const OperationContext& ctx, const Authorization&,
                                            boost::json::object& body) { return fn(ctx, body); }};
}

}  // namespace kms::api::testing

#endif  // KMS_TESTS_API_DOOR_AUTHZ_FIXTURE_H_
