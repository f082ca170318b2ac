#include "api/aws/key_service_operations.h"

#include "api/aws/internal/operation_support.h"

namespace kms::api::aws {

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service) {
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
    table.Add(e.name, [&service, fn = e.fn](const OperationContext&, const boost::json::object& body) {
      return fn(service, body);
    });
  }
  RegisterNotImplementedOperations(table);
}

}  // namespace kms::api::aws
