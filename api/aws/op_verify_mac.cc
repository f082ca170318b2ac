// AWS KMS VerifyMac: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult VerifyMac(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::VerifyMacRequest req;
  req.message = r.RequiredSecretBlob("Message", 1, 4096);
  req.key_id = authorization.key().arn;
  if (auto a = r.Enum<firmware::MacAlgorithm>("MacAlgorithm", firmware::ParseMacAlgorithm, true)) {
    req.mac_algorithm = *a;
  }
  req.mac = r.RequiredBlob("Mac", 1, 6144);
  req.dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.VerifyMac(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  out["MacValid"] = res.mac_valid;
  out["MacAlgorithm"] = firmware::MacAlgorithmName(res.mac_algorithm);
  return out;
}

}  // namespace kms::api::aws::internal
