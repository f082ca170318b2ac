// AWS KMS GetPublicKey: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult GetPublicKey(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::GetPublicKeyRequest req;
  req.key_id = authorization.key().arn;
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.GetPublicKey(req));
  boost::json::object out;
  out["KeyId"] = res.key_id;
  PutBlob(out, "PublicKey", res.public_key);
  out["CustomerMasterKeySpec"] = firmware::KeySpecName(res.key_spec);
  out["KeySpec"] = firmware::KeySpecName(res.key_spec);
  out["KeyUsage"] = firmware::KeyUsageName(res.key_usage);
  if (!res.encryption_algorithms.empty()) {
    out["EncryptionAlgorithms"] =
        EnumList(res.encryption_algorithms, firmware::EncryptionAlgorithmName);
  }
  if (!res.signing_algorithms.empty()) {
    out["SigningAlgorithms"] = EnumList(res.signing_algorithms, firmware::SigningAlgorithmName);
  }
  return out;
}

}  // namespace kms::api::aws::internal
