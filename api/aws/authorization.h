// The AWS door's authorization step: for one operation and its declared AccessRule
// (api/aws/operation.h), read the members the decision needs, identify the key(s) they name, ask
// firmware::authz::AccessControl, and make the Authorization the operation runs under — or answer
// the error the client sees. There is no third outcome: nothing the authorizer cannot parse or
// resolve is ever waved through for the operation to sort out (docs/access-control.md).
//
// Contract:
//  * What is decided, by rule (AccessRule::source):
//      kAccount      the action on "*" by the caller's identity policy (CreateKey, ListKeys, ...);
//      kAnyForm      the action on the key `key_member` names in any of the four forms;
//      kKeyOnly      the same, key id or key ARN only;
//      kCiphertext   Decrypt: kms:Decrypt on the key KeyId names when given (that key is the one
//                    that decrypts, symmetric or RSA), else on the key the ciphertext blob names;
//                    a blob that is not this appliance's and comes without KeyId, or names no
//                    existing key, is InvalidCiphertextException (empty message, no oracle);
//      kReEncrypt    kms:ReEncryptFrom on the source (as Decrypt, with SourceKeyId) AND
//                    kms:ReEncryptTo on DestinationKeyId;
//      kAliasCreate  kms:CreateAlias on the alias ARN by the identity policy (AWS: "kms:CreateAlias
//                    for the alias" in an IAM policy) AND on TargetKeyId by the key policy;
//      kAliasDelete  kms:DeleteAlias on the alias ARN (identity) AND on the key it names now;
//      kAliasMove    kms:UpdateAlias on the alias ARN (identity), the key it names now AND
//                    TargetKeyId;
//      kRetireGrant  AccessControl::DecideRetireGrant (retiring principal, grantee with
//                    RetireGrant, or kms:RetireGrant by the key policy);
//      kAdministrator the appliance admin API: administrator access keys only.
//    The members read here are validated here, with the exact errors the operation's own reader
//    gives (RequestReader, api/aws/json_codec.h): the key members (missing -> ValidationException,
//    wrong type -> SerializationException, out of bounds), GrantTokens (only for operations a
//    grant can allow: others ignore the member, as AWS ignores members outside an operation's
//    model), the encryption context, the ciphertext blob, AliasName (format and reserved prefix),
//    RetireGrant's GrantToken/KeyId/GrantId. The operation validates the rest after the decision,
//    so a caller without rights learns nothing about a request but that it is refused.
//  * Keys are identified before the decision (KeyService::IdentifyKey): an unknown key is
//    NotFoundException as without authorization; keys in every state are identified (the
//    operation then answers Disabled / pending deletion). The Authorization carries the key ARN
//    decided on, and operations act on that, never on the body's text: an alias that moves after
//    the decision does not move the operation.
//  * Denial: AccessDeniedException (400) "User: <caller ARN> is not authorized to perform:
//    <action> on resource: <key ARN, alias ARN or *> because no resource-based policy allows the
//    <action> action" (or "... with an explicit deny in a resource-based policy", or "identity-based"
//    for decisions made by the identity policy alone): the action and resource, nothing about the
//    policy. RetireGrant's refusal names "this grant".
//  * The decision, the key ARN, the grant used and the encryption context go to the request's
//    RequestNote (ctx.note), for the audit record, denials included.
//  * Thread-safety: immutable; Authorize runs concurrently.
#ifndef KMS_API_AWS_AUTHORIZATION_H_
#define KMS_API_AWS_AUTHORIZATION_H_

#include <boost/json/object.hpp>

#include <string_view>

#include "api/aws/aws_error.h"
#include "api/aws/operation.h"

namespace kms::firmware {
class KeyService;
}  // namespace kms::firmware

namespace kms::api::aws {

// The firmware caller an authenticated SigV4 caller is ("arn:aws:iam::<acct>:user/<name>").
firmware::authz::Caller AuthzCaller(const sigv4::Caller& caller);

class KeyAuthorizer {
 public:
  // `service` and `access` must outlive the authorizer.
  KeyAuthorizer(firmware::KeyService& service, firmware::authz::AccessControl& access);

  // Decides `operation`, declared with `rule`, for the caller in `ctx`: an Authorization only
  // after an explicit Allow, else the error the client sees.
  AwsResult<Authorization> Authorize(std::string_view operation, const AccessRule& rule,
                                     const OperationContext& ctx,
                                     const boost::json::object& body) const;

  firmware::authz::AccessControl& access() const { return access_; }
  firmware::KeyService& service() const { return service_; }

 private:
  firmware::KeyService& service_;
  firmware::authz::AccessControl& access_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_AUTHORIZATION_H_
