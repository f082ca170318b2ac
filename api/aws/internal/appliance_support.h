// Shared pieces of the appliance admin operations (api/aws/op_appliance_*.cc): one function per
// operation and the AccessKeyMetadata writer. Internal to api/aws: the public surface is
// api/aws/appliance_operations.h.
//
// Thread-safety: as firmware::AccessKeyRegistry, firmware::VaultTokenRegistry and
// firmware::KeyService (fully concurrent).
#ifndef KMS_API_AWS_INTERNAL_APPLIANCE_SUPPORT_H_
#define KMS_API_AWS_INTERNAL_APPLIANCE_SUPPORT_H_

#include <boost/json/object.hpp>

#include "api/aws/appliance_operations.h"
#include "api/aws/internal/operation_support.h"
#include "firmware/access_keys.h"
#include "firmware/authz/principals.h"
#include "firmware/key_service.h"
#include "firmware/vault_tokens.h"

namespace kms::api::aws::internal {

// {AccessKeyId, UserName, Status, CreateDate, Administrator} of one key (never its secret).
boost::json::object AccessKeyMetadataJson(const firmware::AccessKeyInfo& info);

OpResult CreateAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body);
OpResult ListAccessKeys(firmware::AccessKeyRegistry& registry, const boost::json::object& body);
OpResult UpdateAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body);
OpResult DeleteAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body);
// {Accessor, DisplayName, KeyPatterns, Operations, Policies, Administrator, Renewable, CreateDate,
// TtlSeconds, ExplicitMaxTtlSeconds, ExpireDate?} of one Vault token (never the token).
boost::json::object VaultTokenJson(const firmware::VaultTokenInfo& info);

OpResult CreateVaultToken(firmware::VaultTokenRegistry& tokens, const boost::json::object& body);
OpResult ListVaultTokens(firmware::VaultTokenRegistry& tokens, const boost::json::object& body);
OpResult RevokeVaultToken(firmware::VaultTokenRegistry& tokens, const boost::json::object& body);
// Users (api/aws/op_appliance_users.cc).
OpResult CreateUser(firmware::authz::PrincipalRegistry& users, const boost::json::object& body);
OpResult GetUser(firmware::authz::PrincipalRegistry& users, const boost::json::object& body);
OpResult ListUsers(firmware::authz::PrincipalRegistry& users, const boost::json::object& body);
OpResult PutUserPolicy(firmware::authz::PrincipalRegistry& users, const boost::json::object& body);
OpResult DeleteUser(firmware::authz::PrincipalRegistry& users,
                    firmware::AccessKeyRegistry& access_keys, const boost::json::object& body);
// CreateAccessKey with users: the user must exist, and only an administrator user gets an
// administrator key. nullopt when the request may go on.
std::optional<AwsError> CheckAccessKeyOwner(firmware::authz::PrincipalRegistry& users,
                                            const boost::json::object& body);
OpResult GetApplianceStatus(firmware::KeyService& service, const ApplianceInfo& info,
                            const boost::json::object& body);

}  // namespace kms::api::aws::internal

#endif  // KMS_API_AWS_INTERNAL_APPLIANCE_SUPPORT_H_
