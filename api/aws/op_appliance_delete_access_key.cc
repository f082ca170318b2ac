// KmsAppliance.DeleteAccessKey: removes a key for good (api/aws/appliance_operations.h).
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult DeleteAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body) {
  RequestReader r(body);
  const std::string id = r.RequiredString("AccessKeyId", 1, 128);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(registry.Delete(id));
  return boost::json::object{};
}

}  // namespace kms::api::aws::internal
