#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

namespace json = boost::json;

std::vector<std::string> ReadGrantTokens(RequestReader& reader) {
  auto tokens = reader.StringList("GrantTokens");
  if (tokens.size() > 10) {
    reader.Fail(ValidationError("Value at 'grantTokens' failed to satisfy constraint: Member must "
                                "have length less than or equal to 10"));
    return {};
  }
  for (const auto& t : tokens) {
    if (t.empty() || t.size() > 8192) {
      reader.Fail(ValidationError("Value at 'grantTokens' failed to satisfy constraint: Member must "
                                  "satisfy constraint: [Member must have length less than or equal "
                                  "to 8192, Member must have length greater than or equal to 1]"));
      return {};
    }
  }
  return tokens;
}

std::vector<firmware::Tag> ReadTags(RequestReader& reader, std::string_view name, bool required) {
  std::vector<firmware::Tag> tags;
  for (const json::object* o : reader.ObjectList(name, required)) {
    RequestReader tag_reader(*o);
    firmware::Tag tag;
    tag.tag_key = tag_reader.RequiredString("TagKey", 1, 128);
    tag.tag_value = tag_reader.RequiredString("TagValue", 0, 256);
    if (tag_reader.error()) {
      reader.Fail(*tag_reader.error());
      return {};
    }
    tags.push_back(std::move(tag));
  }
  return tags;
}

json::object KeyMetadataJson(const firmware::KeyMetadata& m) {
  json::object o;
  o["AWSAccountId"] = m.aws_account_id;
  o["KeyId"] = m.key_id;
  o["Arn"] = m.arn;
  PutTimestamp(o, "CreationDate", m.creation_date_ms);
  o["Enabled"] = m.enabled;
  o["Description"] = m.description;
  o["KeyUsage"] = firmware::KeyUsageName(m.key_usage);
  o["KeyState"] = firmware::KeyStateName(m.key_state);
  if (m.deletion_date_ms) PutTimestamp(o, "DeletionDate", *m.deletion_date_ms);
  if (m.pending_deletion_window_in_days) {
    o["PendingDeletionWindowInDays"] = *m.pending_deletion_window_in_days;
  }
  // Constants of this appliance (firmware/key_service.h KeyMetadata): material generated here, keys
  // managed by the customer, single-Region.
  o["Origin"] = "AWS_KMS";
  o["KeyManager"] = "CUSTOMER";
  o["CustomerMasterKeySpec"] = firmware::KeySpecName(m.key_spec);  // deprecated twin of KeySpec
  o["KeySpec"] = firmware::KeySpecName(m.key_spec);
  if (!m.encryption_algorithms.empty()) {
    o["EncryptionAlgorithms"] = EnumList(m.encryption_algorithms, firmware::EncryptionAlgorithmName);
  }
  if (!m.signing_algorithms.empty()) {
    o["SigningAlgorithms"] = EnumList(m.signing_algorithms, firmware::SigningAlgorithmName);
  }
  if (!m.mac_algorithms.empty()) {
    o["MacAlgorithms"] = EnumList(m.mac_algorithms, firmware::MacAlgorithmName);
  }
  o["MultiRegion"] = false;
  if (!m.current_key_material_id.empty()) o["CurrentKeyMaterialId"] = m.current_key_material_id;
  return o;
}

}  // namespace kms::api::aws::internal
