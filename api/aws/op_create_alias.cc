// AWS KMS CreateAlias: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

// The alias and target were read, validated and decided by the authorization step.
OpResult CreateAlias(firmware::KeyService& service, const Authorization& authorization,
                     const boost::json::object& /*body*/) {
  firmware::CreateAliasRequest req;
  req.alias_name = authorization.alias_name();
  req.target_key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_ERROR(service.CreateAlias(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
