// AWS KMS UpdateAlias: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

// The alias, the key it named and the new target were decided by the authorization step; the
// service moves the alias only if it still names the key that was decided on.
OpResult UpdateAlias(firmware::KeyService& service, const Authorization& authorization,
                     const boost::json::object& /*body*/) {
  firmware::UpdateAliasRequest req;
  req.alias_name = authorization.alias_name();
  req.target_key_id = authorization.second_key().arn;
  req.expected_target_key_id = authorization.key().key_id;
  KMS_AWS_RETURN_IF_ERROR(service.UpdateAlias(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
