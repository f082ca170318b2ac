// AWS KMS Decrypt: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult Decrypt(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::DecryptRequest req;
  req.ciphertext_blob = r.RequiredBlob("CiphertextBlob", 1, 6144);
  req.encryption_context = r.StringMap("EncryptionContext");
  req.key_id = authorization.key().arn;  // the key that decrypts
  req.encryption_algorithm =
      r.Enum<firmware::EncryptionAlgorithm>("EncryptionAlgorithm", firmware::ParseEncryptionAlgorithm);
  r.Unsupported("Recipient", "Recipient (Nitro Enclaves attestation) is not supported by this "
                             "appliance.");
  req.dry_run = r.Boolean("DryRun");
  (void)r.StringList("DryRunModifiers");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.Decrypt(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  PutBlob(out, "Plaintext", res.plaintext.ExposeSecret());
  out["EncryptionAlgorithm"] = firmware::EncryptionAlgorithmName(res.encryption_algorithm);
  if (!res.key_material_id.empty()) out["KeyMaterialId"] = res.key_material_id;
  return out;
}

}  // namespace kms::api::aws::internal
