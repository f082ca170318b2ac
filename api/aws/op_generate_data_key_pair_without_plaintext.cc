// AWS KMS GenerateDataKeyPairWithoutPlaintext: JSON 1.1 request <-> firmware::KeyService
// (docs/aws-kms-protocol.md "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult GenerateDataKeyPairWithoutPlaintext(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::GenerateDataKeyPairRequest req;
  req.encryption_context = r.StringMap("EncryptionContext");
  req.key_id = authorization.key().arn;
  if (auto spec = r.Enum<firmware::KeySpec>("KeyPairSpec", firmware::ParseDataKeyPairSpec,
                                            /*required=*/true)) {
    req.key_pair_spec = *spec;
  }
  req.dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.GenerateDataKeyPairWithoutPlaintext(req));
  boost::json::object out;
  PutBlob(out, "PrivateKeyCiphertextBlob", res.private_key_ciphertext_blob);
  PutBlob(out, "PublicKey", res.public_key);
  out["KeyId"] = res.key_id;
  out["KeyPairSpec"] = firmware::KeySpecName(res.key_pair_spec);
  return out;
}

}  // namespace kms::api::aws::internal
