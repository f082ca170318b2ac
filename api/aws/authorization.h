// The AWS door's authorization step (issue 7 item 4): before an operation touches a key, find the
// key the request names, ask firmware::authz::AccessControl whether the caller may perform the
// operation's action on it, and answer AccessDeniedException when not.
//
// Contract:
//  * Every operation of the table `RegisterKeyServiceOperations` builds with an authorizer is
//    decided here, by one table (authorization.cc kRules) that maps the operation to its action
//    ("kms:Encrypt"; ReEncrypt is kms:ReEncryptFrom on the source key AND kms:ReEncryptTo on the
//    destination), where its key comes from (KeyId in any of the four forms, a key id/ARN only, the
//    ciphertext blob for Decrypt and ReEncrypt, the alias for DeleteAlias/UpdateAlias), the
//    GrantOperation that can allow it, and the condition keys it supplies (kms:EncryptionContext:*,
//    kms:EncryptionAlgorithm, kms:SigningAlgorithm, kms:MacAlgorithm, kms:MessageType,
//    kms:KeySpec, kms:KeyUsage, kms:DataKeyPairSpec, kms:RequestAlias, kms:GrantOperations,
//    kms:GranteePrincipal, kms:RetiringPrincipal, kms:KeyOrigin). RetireGrant is decided by
//    AccessControl::RetireGrant itself (its rules depend on the grant).
//  * The key is identified before the decision (KeyService::IdentifyKey), so an unknown key is
//    NotFoundException as without authorization, and an alias in the request is replaced by the key
//    ARN that was authorized: the operation runs on the key that was decided, even if the alias
//    moves in between.
//  * A request whose members are malformed (a KeyId that is not a string, an EncryptionContext that
//    is not a map of strings, grant tokens out of bounds) is left to the operation, which refuses it
//    with its exact ValidationException/SerializationException before touching anything.
//  * Denial: AccessDeniedException (400) "User: <caller ARN> is not authorized to perform:
//    <action> on resource: <key ARN or *> because no resource-based policy allows the <action>
//    action" (or "... with an explicit deny in a resource-based policy", or "no identity-based
//    policy" for account-level actions): the action and resource, nothing about the policy.
//  * The decision, the key ARN, the grant used and the encryption context go to the request's
//    RequestNote, for the audit record.
//  * Thread-safety: immutable; Authorize runs concurrently.
#ifndef KMS_API_AWS_AUTHORIZATION_H_
#define KMS_API_AWS_AUTHORIZATION_H_

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "api/aws/aws_error.h"
#include "api/aws/door.h"

namespace kms::firmware {
class KeyService;
namespace authz {
class AccessControl;
struct Caller;
}  // namespace authz
}  // namespace kms::firmware

namespace kms::api::aws {

// The firmware caller an authenticated SigV4 caller is ("arn:aws:iam::<acct>:user/<name>").
firmware::authz::Caller AuthzCaller(const sigv4::Caller& caller);

class KeyAuthorizer {
 public:
  KeyAuthorizer(firmware::KeyService& service, firmware::authz::AccessControl& access);

  // Decides `operation` for the caller in `ctx`. nullopt: go ahead (with `body`'s alias KeyIds
  // replaced by key ARNs); an error: answer it.
  std::optional<AwsError> Authorize(std::string_view operation, const OperationContext& ctx,
                                    boost::json::object& body) const;

  firmware::authz::AccessControl& access() const { return access_; }
  firmware::KeyService& service() const { return service_; }

 private:
  firmware::KeyService& service_;
  firmware::authz::AccessControl& access_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_AUTHORIZATION_H_
