// AWS KMS DescribeKey: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult DescribeKey(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::DescribeKeyRequest req;
  req.key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.DescribeKey(req));
  boost::json::object out;
  out["KeyMetadata"] = KeyMetadataJson(res.key_metadata);
  return out;
}

}  // namespace kms::api::aws::internal
