// AWS KMS GenerateRandom: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult GenerateRandom(firmware::KeyService& service, const Authorization& /*authorization*/,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::GenerateRandomRequest req;
  req.number_of_bytes = r.Integer("NumberOfBytes");
  r.Unsupported("CustomKeyStoreId", "Custom key stores are not supported by this appliance.");
  r.Unsupported("Recipient", "Recipient (Nitro Enclaves attestation) is not supported by this "
                             "appliance.");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.GenerateRandom(req));
  boost::json::object out;
  PutBlob(out, "Plaintext", res.plaintext.ExposeSecret());
  return out;
}

}  // namespace kms::api::aws::internal
