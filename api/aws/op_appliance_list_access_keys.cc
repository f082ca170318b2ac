// KmsAppliance.ListAccessKeys: every access key, by id, paged (api/aws/appliance_operations.h).
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult ListAccessKeys(firmware::AccessKeyRegistry& registry, const boost::json::object& body) {
  RequestReader r(body);
  const auto limit = r.Integer("Limit");
  const auto marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  // Same range and texts as KMS ListKeys (docs/aws-kms-protocol.md "Limits"): 1-1000, default 100.
  if (limit && *limit < 1) {
    return std::unexpected(ValidationError("Value '" + std::to_string(*limit) +
                                           "' at 'limit' failed to satisfy constraint: Member must "
                                           "have value greater than or equal to 1"));
  }
  if (limit && *limit > 1000) {
    return std::unexpected(ValidationError("Value '" + std::to_string(*limit) +
                                           "' at 'limit' failed to satisfy constraint: Member must "
                                           "have value less than or equal to 1000"));
  }
  KMS_AWS_ASSIGN_OR_FAIL(
      auto page, registry.List(marker.value_or(""), static_cast<std::size_t>(limit.value_or(100))));
  boost::json::array keys;
  for (const auto& k : page.items) keys.emplace_back(AccessKeyMetadataJson(k));
  boost::json::object out;
  out["AccessKeyMetadata"] = std::move(keys);
  out["Truncated"] = page.truncated;
  if (page.truncated) out["NextMarker"] = page.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
