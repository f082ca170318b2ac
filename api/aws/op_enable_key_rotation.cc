// AWS KMS EnableKeyRotation: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult EnableKeyRotation(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::EnableKeyRotationRequest req;
  req.key_id = authorization.key().arn;
  req.rotation_period_in_days = r.Integer("RotationPeriodInDays");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.EnableKeyRotation(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
