// AWS KMS ReEncrypt: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ReEncrypt(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ReEncryptRequest req;
  req.ciphertext_blob = r.RequiredBlob("CiphertextBlob", 1, 6144);
  req.source_encryption_context = r.StringMap("SourceEncryptionContext");
  req.source_key_id = authorization.key().arn;
  req.destination_key_id = authorization.second_key().arn;
  req.destination_encryption_context = r.StringMap("DestinationEncryptionContext");
  req.source_encryption_algorithm = r.Enum<firmware::EncryptionAlgorithm>(
      "SourceEncryptionAlgorithm", firmware::ParseEncryptionAlgorithm);
  req.destination_encryption_algorithm = r.Enum<firmware::EncryptionAlgorithm>(
      "DestinationEncryptionAlgorithm", firmware::ParseEncryptionAlgorithm);
  req.dry_run = r.Boolean("DryRun");
  (void)r.StringList("DryRunModifiers");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ReEncrypt(req));
  boost::json::object out;
  PutBlob(out, "CiphertextBlob", res.ciphertext_blob);
  out["SourceKeyId"] = res.source_key_id;
  out["KeyId"] = res.key_id;
  out["SourceEncryptionAlgorithm"] =
      firmware::EncryptionAlgorithmName(res.source_encryption_algorithm);
  out["DestinationEncryptionAlgorithm"] =
      firmware::EncryptionAlgorithmName(res.destination_encryption_algorithm);
  return out;
}

}  // namespace kms::api::aws::internal
