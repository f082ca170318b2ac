// AWS KMS ListKeys: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ListKeys(firmware::KeyService& service, const Authorization& /*authorization*/,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ListKeysRequest req;
  req.limit = r.Integer("Limit");
  req.marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ListKeys(req));
  boost::json::array keys;
  for (const auto& k : res.keys) {
    boost::json::object e;
    e["KeyId"] = k.key_id;
    e["KeyArn"] = k.key_arn;
    keys.emplace_back(std::move(e));
  }
  boost::json::object out;
  out["Keys"] = std::move(keys);
  out["Truncated"] = res.truncated;
  if (res.next_marker) out["NextMarker"] = *res.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
