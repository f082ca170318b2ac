#include "api/aws/key_service_operations.h"

#include "api/aws/authorization.h"
#include "api/aws/internal/policy_support.h"

namespace kms::api::aws {

namespace {

void Register(OperationTable& table, firmware::KeyService& service,
              const KeyAuthorizer* authorizer) {
  using Fn = internal::OpResult (*)(firmware::KeyService&, const boost::json::object&);
  struct Entry {
    const char* name;
    Fn fn;
  };
  static constexpr Entry kOperations[] = {
      {"CreateKey", internal::CreateKey},
      {"DescribeKey", internal::DescribeKey},
      {"ListKeys", internal::ListKeys},
      {"UpdateKeyDescription", internal::UpdateKeyDescription},
      {"EnableKey", internal::EnableKey},
      {"DisableKey", internal::DisableKey},
      {"ScheduleKeyDeletion", internal::ScheduleKeyDeletion},
      {"CancelKeyDeletion", internal::CancelKeyDeletion},
      {"Encrypt", internal::Encrypt},
      {"Decrypt", internal::Decrypt},
      {"ReEncrypt", internal::ReEncrypt},
      {"GenerateDataKey", internal::GenerateDataKey},
      {"GenerateDataKeyWithoutPlaintext", internal::GenerateDataKeyWithoutPlaintext},
      {"GenerateDataKeyPair", internal::GenerateDataKeyPair},
      {"GenerateDataKeyPairWithoutPlaintext", internal::GenerateDataKeyPairWithoutPlaintext},
      {"Sign", internal::Sign},
      {"Verify", internal::Verify},
      {"GetPublicKey", internal::GetPublicKey},
      {"GenerateMac", internal::GenerateMac},
      {"VerifyMac", internal::VerifyMac},
      {"GenerateRandom", internal::GenerateRandom},
      {"CreateAlias", internal::CreateAlias},
      {"UpdateAlias", internal::UpdateAlias},
      {"DeleteAlias", internal::DeleteAlias},
      {"ListAliases", internal::ListAliases},
      {"TagResource", internal::TagResource},
      {"UntagResource", internal::UntagResource},
      {"ListResourceTags", internal::ListResourceTags},
      {"EnableKeyRotation", internal::EnableKeyRotation},
      {"DisableKeyRotation", internal::DisableKeyRotation},
      {"GetKeyRotationStatus", internal::GetKeyRotationStatus},
      {"RotateKeyOnDemand", internal::RotateKeyOnDemand},
      {"ListKeyRotations", internal::ListKeyRotations},
  };
  for (const Entry& e : kOperations) {
    if (authorizer == nullptr) {
      table.Add(e.name, [&service, fn = e.fn](const OperationContext&, boost::json::object& body) {
        return fn(service, body);
      });
      continue;
    }
    if (std::string_view(e.name) == "CreateKey") continue;  // with its Policy, below
    table.Add(e.name, [&service, authorizer, name = std::string_view(e.name), fn = e.fn](
                          const OperationContext& ctx, boost::json::object& body) {
      if (auto denied = authorizer->Authorize(name, ctx, body)) return internal::OpResult(
          std::unexpected(std::move(*denied)));
      return fn(service, body);
    });
  }
  if (authorizer == nullptr) {
    RegisterNotImplementedOperations(table);
    return;
  }
  using PolicyFn = internal::OpResult (*)(const internal::PolicyContext&, const boost::json::object&);
  struct PolicyEntry {
    const char* name;
    PolicyFn fn;
  };
  static constexpr PolicyEntry kPolicyOperations[] = {
      {"CreateKey", internal::CreateKeyWithPolicy},
      {"GetKeyPolicy", internal::GetKeyPolicy},
      {"PutKeyPolicy", internal::PutKeyPolicy},
      {"ListKeyPolicies", internal::ListKeyPolicies},
      {"CreateGrant", internal::CreateGrant},
      {"ListGrants", internal::ListGrants},
      {"ListRetirableGrants", internal::ListRetirableGrants},
      {"RetireGrant", internal::RetireGrant},
      {"RevokeGrant", internal::RevokeGrant},
  };
  for (const PolicyEntry& e : kPolicyOperations) {
    table.Add(e.name, [&service, authorizer, name = std::string_view(e.name), fn = e.fn](
                          const OperationContext& ctx, boost::json::object& body) {
      if (auto denied = authorizer->Authorize(name, ctx, body)) return internal::OpResult(
          std::unexpected(std::move(*denied)));
      const firmware::authz::Caller caller = AuthzCaller(ctx.caller);
      return fn(internal::PolicyContext{service, authorizer->access(), caller, ctx.note}, body);
    });
  }
  RegisterNotImplementedOperations(table, /*include_policy_operations=*/false);
}

}  // namespace

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service) {
  Register(table, service, nullptr);
}

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service,
                                  const KeyAuthorizer& authorizer) {
  Register(table, service, &authorizer);
}

}  // namespace kms::api::aws
