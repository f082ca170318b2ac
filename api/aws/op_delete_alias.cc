// AWS KMS DeleteAlias: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

// The alias and the key it named were decided by the authorization step; the service deletes the
// alias only if it still names that key.
OpResult DeleteAlias(firmware::KeyService& service, const Authorization& authorization,
                     const boost::json::object& /*body*/) {
  firmware::DeleteAliasRequest req;
  req.alias_name = authorization.alias_name();
  req.expected_target_key_id = authorization.key().key_id;
  KMS_AWS_RETURN_IF_ERROR(service.DeleteAlias(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
