// AWS KMS ListAliases: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ListAliases(firmware::KeyService& service, const Authorization& /*authorization*/,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ListAliasesRequest req;
  req.key_id = r.String("KeyId", 1, 2048);
  req.limit = r.Integer("Limit");
  req.marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ListAliases(req));
  boost::json::array aliases;
  for (const auto& a : res.aliases) {
    boost::json::object e;
    e["AliasName"] = a.alias_name;
    e["AliasArn"] = a.alias_arn;
    e["TargetKeyId"] = a.target_key_id;
    PutTimestamp(e, "CreationDate", a.creation_date_ms);
    PutTimestamp(e, "LastUpdatedDate", a.last_updated_date_ms);
    aliases.emplace_back(std::move(e));
  }
  boost::json::object out;
  out["Aliases"] = std::move(aliases);
  out["Truncated"] = res.truncated;
  if (res.next_marker) out["NextMarker"] = *res.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
