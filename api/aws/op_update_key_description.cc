// AWS KMS UpdateKeyDescription: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult UpdateKeyDescription(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::UpdateKeyDescriptionRequest req;
  req.key_id = authorization.key().arn;
  req.description = r.RequiredString("Description", 0, 8192);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.UpdateKeyDescription(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
