// AWS KMS ListResourceTags: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ListResourceTags(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ListResourceTagsRequest req;
  req.key_id = authorization.key().arn;
  req.limit = r.Integer("Limit");
  req.marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ListResourceTags(req));
  boost::json::array tags;
  for (const auto& t : res.tags) {
    boost::json::object e;
    e["TagKey"] = t.tag_key;
    e["TagValue"] = t.tag_value;
    tags.emplace_back(std::move(e));
  }
  boost::json::object out;
  out["Tags"] = std::move(tags);
  out["Truncated"] = res.truncated;
  if (res.next_marker) out["NextMarker"] = *res.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
