// AWS KMS ScheduleKeyDeletion: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ScheduleKeyDeletion(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ScheduleKeyDeletionRequest req;
  req.key_id = authorization.key().arn;
  req.pending_window_in_days = r.Integer("PendingWindowInDays");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ScheduleKeyDeletion(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  PutTimestamp(out, "DeletionDate", res.deletion_date_ms);
  out["KeyState"] = firmware::KeyStateName(res.key_state);
  out["PendingWindowInDays"] = res.pending_window_in_days;
  return out;
}

}  // namespace kms::api::aws::internal
