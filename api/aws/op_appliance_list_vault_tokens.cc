// KmsAppliance.ListVaultTokens: the live Vault tokens by accessor, paged
// (api/aws/appliance_operations.h). Never shows a token: the registry does not have them.
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult ListVaultTokens(firmware::VaultTokenRegistry& tokens, const boost::json::object& body) {
  RequestReader r(body);
  const auto limit = r.Integer("Limit");
  const auto marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  // Same range and texts as ListAccessKeys and KMS ListKeys: 1-1000, default 100.
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
      auto page, tokens.List(marker.value_or(""), static_cast<std::size_t>(limit.value_or(100))));
  boost::json::array items;
  for (const auto& t : page.items) items.emplace_back(VaultTokenJson(t));
  boost::json::object out;
  out["VaultTokens"] = std::move(items);
  out["Truncated"] = page.truncated;
  if (page.truncated) out["NextMarker"] = page.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
