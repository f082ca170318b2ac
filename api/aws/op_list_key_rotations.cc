// AWS KMS ListKeyRotations: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult ListKeyRotations(firmware::KeyService& service, const Authorization& authorization,
                  const boost::json::object& body) {
  RequestReader r(body);
  firmware::ListKeyRotationsRequest req;
  req.key_id = authorization.key().arn;
  // IncludeKeyMaterial (ALL_KEY_MATERIAL / ROTATIONS_ONLY) only differs for imported material, which
  // this appliance does not have; both list the same rotations.
  if (auto include = r.String("IncludeKeyMaterial");
      include && *include != "ALL_KEY_MATERIAL" && *include != "ROTATIONS_ONLY") {
    r.Fail(ValidationError("Value '" + *include + "' at 'includeKeyMaterial' failed to satisfy "
                           "constraint: Member must satisfy enum value set: [ALL_KEY_MATERIAL, "
                           "ROTATIONS_ONLY]"));
  }
  req.limit = r.Integer("Limit");
  req.marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.ListKeyRotations(req));
  boost::json::array rotations;
  for (const auto& e : res.rotations) {
    boost::json::object o;
    o["KeyId"] = e.key_id;
    o["KeyMaterialId"] = e.key_material_id;
    PutTimestamp(o, "RotationDate", e.rotation_date_ms);
    o["RotationType"] = firmware::RotationTypeName(e.rotation_type);
    rotations.emplace_back(std::move(o));
  }
  boost::json::object out;
  out["Rotations"] = std::move(rotations);
  out["Truncated"] = res.truncated;
  if (res.next_marker) out["NextMarker"] = *res.next_marker;
  return out;
}

}  // namespace kms::api::aws::internal
