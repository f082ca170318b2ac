// AWS KMS Encrypt: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult Encrypt(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::EncryptRequest req;
  req.key_id = authorization.key().arn;
  req.plaintext = r.RequiredSecretBlob("Plaintext", 1, 4096);
  req.encryption_context = r.StringMap("EncryptionContext");
  req.encryption_algorithm =
      r.Enum<firmware::EncryptionAlgorithm>("EncryptionAlgorithm", firmware::ParseEncryptionAlgorithm);
  req.dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.Encrypt(req));
  boost::json::object out;
  PutBlob(out, "CiphertextBlob", res.ciphertext_blob);
  out["KeyId"] = res.key_id;
  out["EncryptionAlgorithm"] = firmware::EncryptionAlgorithmName(res.encryption_algorithm);
  return out;
}

}  // namespace kms::api::aws::internal
