// AWS KMS DeleteAlias: JSON 1.1 request <-> firmware::KeyService (AWS KMS reference §2.2 "DeleteAlias").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult DeleteAlias(firmware::KeyService& service, const boost::json::object& body) {
  RequestReader r(body);
  firmware::DeleteAliasRequest req;
  req.alias_name = r.RequiredString("AliasName", 1, 256);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.DeleteAlias(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
