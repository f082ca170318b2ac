// AWS KMS Sign: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult Sign(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::SignRequest req;
  req.key_id = authorization.key().arn;
  req.message = r.RequiredSecretBlob("Message", 1, 4096);
  if (auto t = r.Enum<firmware::MessageType>("MessageType", firmware::ParseMessageType)) {
    req.message_type = *t;
  }
  if (auto a = r.Enum<firmware::SigningAlgorithm>("SigningAlgorithm",
                                                  firmware::ParseSigningAlgorithm, true)) {
    req.signing_algorithm = *a;
  }
  req.dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.Sign(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  PutBlob(out, "Signature", res.signature);
  out["SigningAlgorithm"] = firmware::SigningAlgorithmName(res.signing_algorithm);
  return out;
}

}  // namespace kms::api::aws::internal
