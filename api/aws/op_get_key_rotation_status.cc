// AWS KMS GetKeyRotationStatus: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult GetKeyRotationStatus(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::GetKeyRotationStatusRequest req;
  req.key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.GetKeyRotationStatus(req));
  boost::json::object out;
  out["KeyRotationEnabled"] = res.key_rotation_enabled;
  out["KeyId"] = res.key_id;
  if (res.rotation_period_in_days) out["RotationPeriodInDays"] = *res.rotation_period_in_days;
  if (res.next_rotation_date_ms) PutTimestamp(out, "NextRotationDate", *res.next_rotation_date_ms);
  if (res.on_demand_rotation_start_date_ms) {
    PutTimestamp(out, "OnDemandRotationStartDate", *res.on_demand_rotation_start_date_ms);
  }
  return out;
}

}  // namespace kms::api::aws::internal
