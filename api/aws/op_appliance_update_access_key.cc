// KmsAppliance.UpdateAccessKey: activates or deactivates a key (api/aws/appliance_operations.h). An
// inactive key stays listed; the door refuses it as an unknown key (UnrecognizedClientException).
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult UpdateAccessKey(firmware::AccessKeyRegistry& registry, const boost::json::object& body) {
  RequestReader r(body);
  const std::string id = r.RequiredString("AccessKeyId", 1, 128);
  const std::string status = r.RequiredString("Status", 1, 16);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (status != "Active" && status != "Inactive") {
    return std::unexpected(ValidationError("Value '" + status +
                                           "' at 'status' failed to satisfy constraint: Member "
                                           "must satisfy enum value set: [Active, Inactive]"));
  }
  KMS_AWS_RETURN_IF_ERROR(registry.SetStatus(id, status == "Active"));
  return boost::json::object{};
}

}  // namespace kms::api::aws::internal
