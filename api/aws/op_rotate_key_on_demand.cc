// AWS KMS RotateKeyOnDemand: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult RotateKeyOnDemand(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::RotateKeyOnDemandRequest req;
  req.key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.RotateKeyOnDemand(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  return out;
}

}  // namespace kms::api::aws::internal
