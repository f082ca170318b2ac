// KmsAppliance.CreateAccessKey: a new ACTIVE access key for a user
// (api/aws/appliance_operations.h). The secret leaves the appliance in this one response; the door
// wipes the JSON copy once sent.
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult CreateAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body) {
  RequestReader r(body);
  // IAM user names: 1-64 characters; the registry checks the alphabet (InvalidArgument ->
  // ValidationException).
  const std::string user = r.RequiredString("UserName", 1, 64);
  const bool administrator = r.Boolean("Administrator");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(firmware::CreatedAccessKey made, registry.Create(user, administrator));
  // Creation time as the registry recorded it: read back the record. The first id after the new id
  // less its last character is the new id itself (another key would have to share 19 random
  // characters to come first; then CreateDate stays 0 rather than showing the wrong time).
  std::int64_t created_ms = 0;
  if (auto page = registry.List(
          std::string_view(made.access_key_id).substr(0, made.access_key_id.size() - 1), 2);
      page.has_value()) {
    for (const auto& k : page->items) {
      if (k.access_key_id == made.access_key_id) created_ms = k.creation_time_ms;
    }
  }
  boost::json::object key;
  key["AccessKeyId"] = made.access_key_id;
  key["SecretAccessKey"] = boost::json::string(AsStringView(made.secret.ExposeSecret()));
  key["UserName"] = user;
  key["Status"] = "Active";
  PutTimestamp(key, "CreateDate", created_ms);
  key["Administrator"] = administrator;
  boost::json::object out;
  out["AccessKey"] = std::move(key);
  return out;
}

}  // namespace kms::api::aws::internal
