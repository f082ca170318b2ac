// KmsAppliance.RevokeVaultToken: revokes a Vault token by its accessor, at once for every process
// sharing the store (api/aws/appliance_operations.h).
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult RevokeVaultToken(firmware::VaultTokenRegistry& tokens, const boost::json::object& body) {
  RequestReader r(body);
  const std::string accessor = r.RequiredString("Accessor", 1, 128);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(tokens.RevokeAccessor(accessor));
  return boost::json::object{};
}

}  // namespace kms::api::aws::internal
