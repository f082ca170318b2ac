// AWS KMS EnableKey: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult EnableKey(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::EnableKeyRequest req;
  req.key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.EnableKey(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
