// The appliance admin API: what AWS clients cannot do (manage the door's SigV4 access keys, read
// the appliance's status), served by the AWS door itself so operators use the same endpoint and the
// same SigV4 credentials (the CLI is tools/kmsctl).
//
// Wire: AWS JSON 1.1 exactly as the KMS operations (`POST /`, SigV4 with service `kms`, errors as
// `{"__type", "message"}`), selected by `X-Amz-Target: KmsAppliance.<Op>`. The door admits only
// callers whose access key is an administrator (AccessDeniedException, 400, otherwise;
// api/aws/door.h). Operations (members named in the AWS IAM style, times as epoch seconds):
//   CreateAccessKey  {UserName, Administrator?} -> {AccessKey: {AccessKeyId, SecretAccessKey,
//                    UserName, Status, CreateDate, Administrator}}; the secret is shown this once.
//   ListAccessKeys   {Marker?, Limit? (1-1000, default 100)} -> {AccessKeyMetadata: [{AccessKeyId,
//                    UserName, Status, CreateDate, Administrator}], Truncated, NextMarker?};
//                    ordered by id.
//   UpdateAccessKey  {AccessKeyId, Status: "Active"|"Inactive"} -> {}
//   DeleteAccessKey  {AccessKeyId} -> {}
//   GetApplianceStatus {} -> {Version, Sealed, Mode, Region, AccountId, KeyCount}
// With a VaultTokenRegistry, the tokens of the Vault door (firmware/vault_tokens.h) as well:
//   CreateVaultToken {DisplayName, KeyPatterns[], Operations[], Administrator?, TtlSeconds? (0 =
//                    never expires), ExplicitMaxTtlSeconds?, Renewable? (default true),
//                    Policies?} -> {VaultToken: {Token, Accessor, DisplayName, KeyPatterns,
//                    Operations, Policies, Administrator, Renewable, CreateDate, TtlSeconds,
//                    ExplicitMaxTtlSeconds, ExpireDate?}}; the token is shown this once.
//   ListVaultTokens  {Marker?, Limit? (1-1000, default 100)} -> {VaultTokens: [{... as above
//                    without Token}], Truncated, NextMarker?}; live tokens ordered by accessor.
//   RevokeVaultToken {Accessor} -> {}
// Without one, those targets are unknown operations (UnknownOperationException).
// With a PrincipalRegistry (firmware/authz/principals.h), the users access keys act for:
//   CreateUser    {UserName, Administrator?, Policy? (identity policy JSON)} -> {User: {UserName, Arn,
//                 Administrator, CreateDate, HasPolicy}}
//   GetUser       {UserName} -> {User: {... , Policy?}}
//   ListUsers     {Marker?, Limit? (1-1000, default 100)} -> {Users, Truncated, NextMarker?}
//   PutUserPolicy {UserName, Policy ("" removes it)} -> {}
//   DeleteUser    {UserName} -> {} (DeleteConflictException while it owns access keys; the last
//                 administrator is never deleted)
// and CreateAccessKey then needs an existing user (NotFoundException) and gives administrator keys
// to administrator users only (ValidationException). A malformed identity policy is
// MalformedPolicyDocumentException.
// Errors: a malformed UserName, Limit, Status, DisplayName, key pattern, operation or ttl is
// ValidationException; an unknown AccessKeyId or Accessor is NotFoundException; wrong member types
// are SerializationException (api/aws/json_codec.h).
//
// Lifetime: `registry`, `service` and `vault_tokens` must outlive the table. Thread-safety: as the
// registries and the key service (fully concurrent).
#ifndef KMS_API_AWS_APPLIANCE_OPERATIONS_H_
#define KMS_API_AWS_APPLIANCE_OPERATIONS_H_

#include <string>

#include "api/aws/door.h"

namespace kms::firmware {
class AccessKeyRegistry;
class KeyService;
class VaultTokenRegistry;
namespace authz {
class PrincipalRegistry;
}  // namespace authz
}  // namespace kms::firmware

namespace kms::api::aws {

// What GetApplianceStatus reports besides the live key count.
struct ApplianceInfo {
  std::string version = "0.1.0";
  std::string mode = "dev";  // "dev" or "production"
  std::string region = "us-east-1";
  std::string account_id = "111122223333";
};

// The target prefix of the admin API ("KmsAppliance.CreateAccessKey").
inline constexpr std::string_view kApplianceTargetPrefix = "KmsAppliance.";

void RegisterApplianceOperations(OperationTable& table, firmware::AccessKeyRegistry& registry,
                                 firmware::KeyService& service, ApplianceInfo info,
                                 firmware::VaultTokenRegistry* vault_tokens = nullptr,
                                 firmware::authz::PrincipalRegistry* users = nullptr);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_APPLIANCE_OPERATIONS_H_
