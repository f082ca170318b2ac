// AWS KMS GenerateDataKeyWithoutPlaintext: JSON 1.1 request <-> firmware::KeyService
// (docs/aws-kms-protocol.md "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult GenerateDataKeyWithoutPlaintext(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::GenerateDataKeyRequest req;
  req.key_id = authorization.key().arn;
  req.encryption_context = r.StringMap("EncryptionContext");
  req.number_of_bytes = r.Integer("NumberOfBytes");
  req.key_spec = r.Enum<firmware::DataKeySpec>("KeySpec", firmware::ParseDataKeySpec);
  req.dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.GenerateDataKeyWithoutPlaintext(req));
  boost::json::object out;
  PutBlob(out, "CiphertextBlob", res.ciphertext_blob);
  out["KeyId"] = res.key_id;
  if (!res.key_material_id.empty()) out["KeyMaterialId"] = res.key_material_id;
  return out;
}

}  // namespace kms::api::aws::internal
