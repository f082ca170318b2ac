// AWS KMS CreateAlias: JSON 1.1 request <-> firmware::KeyService (AWS KMS reference §2.2 "CreateAlias").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult CreateAlias(firmware::KeyService& service, const boost::json::object& body) {
  RequestReader r(body);
  firmware::CreateAliasRequest req;
  req.alias_name = r.RequiredString("AliasName", 1, 256);
  req.target_key_id = r.RequiredString("TargetKeyId", 1, 2048);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_RETURN_IF_ERROR(service.CreateAlias(req));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
