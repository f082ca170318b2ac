#include "api/aws/key_service_operations.h"

#include "api/aws/authorization.h"
#include "api/aws/internal/policy_support.h"

namespace kms::api::aws {

namespace {

constexpr AccessRule Account() { return {KeySource::kAccount, "", "", ""}; }
// A key named in any of the four forms; `grant` = the GrantOperation that can allow it.
constexpr AccessRule AnyForm(std::string_view grant, std::string_view context = "") {
  return {KeySource::kAnyForm, "KeyId", grant, context};
}
// A key named by id or ARN, an action no grant can allow.
constexpr AccessRule KeyOnly(std::string_view member = "KeyId") {
  return {KeySource::kKeyOnly, member, "", ""};
}

using ServiceFn = internal::OpResult (*)(firmware::KeyService&, const Authorization&,
                                         const boost::json::object&);
using PolicyFn = internal::OpResult (*)(const internal::PolicyContext&,
                                        const boost::json::object&);

// Every AWS operation the door serves: its authorization rule, whether it changes stored state,
// and its function. One row per operation; the door refuses anything else.
struct Row {
  const char* name;
  AccessRule rule;
  bool mutating;
  ServiceFn service_fn;
  PolicyFn policy_fn;
};

constexpr Row kRows[] = {
    // name, rule, mutating, function over the key service | function over access control
    {"CreateKey", Account(), true, nullptr, internal::CreateKeyWithPolicy},
    {"ListKeys", Account(), false, internal::ListKeys, nullptr},
    {"ListAliases", Account(), false, internal::ListAliases, nullptr},
    {"GenerateRandom", Account(), false, internal::GenerateRandom, nullptr},
    {"ListRetirableGrants", Account(), false, nullptr, internal::ListRetirableGrants},
    {"DescribeKey", AnyForm("DescribeKey"), false, internal::DescribeKey, nullptr},
    {"Encrypt", AnyForm("Encrypt", "EncryptionContext"), false, internal::Encrypt, nullptr},
    {"Decrypt", {KeySource::kCiphertext, "KeyId", "Decrypt", "EncryptionContext"}, false,
     internal::Decrypt, nullptr},
    // ReEncrypt decides ReEncryptFrom and ReEncryptTo, each with its own context member.
    {"ReEncrypt", {KeySource::kReEncrypt, "DestinationKeyId", "ReEncryptFrom", ""}, false,
     internal::ReEncrypt, nullptr},
    {"GenerateDataKey", AnyForm("GenerateDataKey", "EncryptionContext"), false,
     internal::GenerateDataKey, nullptr},
    {"GenerateDataKeyWithoutPlaintext",
     AnyForm("GenerateDataKeyWithoutPlaintext", "EncryptionContext"), false,
     internal::GenerateDataKeyWithoutPlaintext, nullptr},
    {"GenerateDataKeyPair", AnyForm("GenerateDataKeyPair", "EncryptionContext"), false,
     internal::GenerateDataKeyPair, nullptr},
    {"GenerateDataKeyPairWithoutPlaintext",
     AnyForm("GenerateDataKeyPairWithoutPlaintext", "EncryptionContext"), false,
     internal::GenerateDataKeyPairWithoutPlaintext, nullptr},
    {"Sign", AnyForm("Sign"), false, internal::Sign, nullptr},
    {"Verify", AnyForm("Verify"), false, internal::Verify, nullptr},
    {"GetPublicKey", AnyForm("GetPublicKey"), false, internal::GetPublicKey, nullptr},
    {"GenerateMac", AnyForm("GenerateMac"), false, internal::GenerateMac, nullptr},
    {"VerifyMac", AnyForm("VerifyMac"), false, internal::VerifyMac, nullptr},
    {"UpdateKeyDescription", KeyOnly(), true, internal::UpdateKeyDescription, nullptr},
    {"EnableKey", KeyOnly(), true, internal::EnableKey, nullptr},
    {"DisableKey", KeyOnly(), true, internal::DisableKey, nullptr},
    {"ScheduleKeyDeletion", KeyOnly(), true, internal::ScheduleKeyDeletion, nullptr},
    {"CancelKeyDeletion", KeyOnly(), true, internal::CancelKeyDeletion, nullptr},
    {"CreateAlias", {KeySource::kAliasCreate, "TargetKeyId", "", ""}, true, internal::CreateAlias,
     nullptr},
    {"DeleteAlias", {KeySource::kAliasDelete, "AliasName", "", ""}, true, internal::DeleteAlias,
     nullptr},
    {"UpdateAlias", {KeySource::kAliasMove, "TargetKeyId", "", ""}, true, internal::UpdateAlias,
     nullptr},
    {"TagResource", KeyOnly(), true, internal::TagResource, nullptr},
    {"UntagResource", KeyOnly(), true, internal::UntagResource, nullptr},
    {"ListResourceTags", KeyOnly(), false, internal::ListResourceTags, nullptr},
    {"EnableKeyRotation", KeyOnly(), true, internal::EnableKeyRotation, nullptr},
    {"DisableKeyRotation", KeyOnly(), true, internal::DisableKeyRotation, nullptr},
    {"GetKeyRotationStatus", KeyOnly(), false, internal::GetKeyRotationStatus, nullptr},
    {"RotateKeyOnDemand", KeyOnly(), true, internal::RotateKeyOnDemand, nullptr},
    {"ListKeyRotations", KeyOnly(), false, internal::ListKeyRotations, nullptr},
    {"GetKeyPolicy", KeyOnly(), false, nullptr, internal::GetKeyPolicy},
    {"PutKeyPolicy", KeyOnly(), true, nullptr, internal::PutKeyPolicy},
    {"ListKeyPolicies", KeyOnly(), false, nullptr, internal::ListKeyPolicies},
    {"CreateGrant", {KeySource::kKeyOnly, "KeyId", "CreateGrant", ""}, true, nullptr,
     internal::CreateGrant},
    {"ListGrants", KeyOnly(), false, nullptr, internal::ListGrants},
    {"RevokeGrant", KeyOnly(), true, nullptr, internal::RevokeGrant},
    {"RetireGrant", {KeySource::kRetireGrant, "", "", ""}, true, nullptr, internal::RetireGrant},
};

}  // namespace

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service,
                                  firmware::authz::AccessControl& access) {
  for (const Row& row : kRows) {
    Operation run;
    if (row.service_fn != nullptr) {
      run = [&service, fn = row.service_fn](const OperationContext&, const Authorization& a,
                                            boost::json::object& body) {
        return fn(service, a, body);
      };
    } else {
      run = [&service, &access, fn = row.policy_fn](const OperationContext&,
                                                   const Authorization& a,
                                                   boost::json::object& body) {
        return fn(internal::PolicyContext{service, access, a}, body);
      };
    }
    table.Add(row.name, OperationSpec{row.rule, row.mutating, std::move(run)});
  }
  RegisterNotImplementedOperations(table);
}

}  // namespace kms::api::aws
