// AWS KMS UntagResource: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult UntagResource(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::UntagResourceRequest req;
  req.key_id = authorization.key().arn;
  req.tag_keys = r.StringList("TagKeys", /*required=*/true);
  for (const auto& k : req.tag_keys) {
    if (k.empty() || k.size() > 128) {
      r.Fail(ValidationError("Value at 'tagKeys' failed to satisfy constraint: Member must satisfy "
                             "constraint: [Member must have length less than or equal to 128, "
                             "Member must have length greater than or equal to 1]"));
    }
  }
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.UntagResource(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
