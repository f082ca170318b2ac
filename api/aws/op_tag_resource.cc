// AWS KMS TagResource: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult TagResource(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::TagResourceRequest req;
  req.key_id = authorization.key().arn;
  req.tags = ReadTags(r, "Tags", /*required=*/true);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.TagResource(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
