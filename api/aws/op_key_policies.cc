// AWS KMS GetKeyPolicy, PutKeyPolicy, ListKeyPolicies (docs/aws-kms-protocol.md "Rules per
// operation"): one policy per key, named "default", in firmware::authz::AccessControl.
#include "api/aws/internal/policy_support.h"

namespace kms::api::aws::internal {

namespace {

// AWS: PolicyName is [\w]+ of 1..128; the only policy a key has is "default".
std::optional<AwsError> CheckPolicyName(const std::optional<std::string>& name) {
  if (name && *name != firmware::authz::kDefaultPolicyName) {
    return ClientError("NotFoundException", "Policy " + *name + " does not exist.");
  }
  return std::nullopt;
}

}  // namespace

OpResult GetKeyPolicy(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const auto name = r.String("PolicyName", 1, 128);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (auto e = CheckPolicyName(name)) return std::unexpected(*e);
  KMS_AWS_ASSIGN_OR_FAIL(std::string policy, p.access.GetKeyPolicy(p.authorization.key()));
  boost::json::object out;
  out["Policy"] = policy;
  out["PolicyName"] = firmware::authz::kDefaultPolicyName;
  return out;
}

OpResult PutKeyPolicy(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const auto name = r.String("PolicyName", 1, 128);
  const std::string policy = r.RequiredString("Policy", 1, 131072);
  const bool bypass = r.Boolean("BypassPolicyLockoutSafetyCheck");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (name && *name != firmware::authz::kDefaultPolicyName) {
    return std::unexpected(ValidationError("PolicyName must be \"default\"."));
  }
  KMS_AWS_RETURN_IF_ERROR(
      p.access.PutKeyPolicy(p.authorization.caller(), p.authorization.key(), policy, bypass));
  return boost::json::object();
}

OpResult ListKeyPolicies(const PolicyContext& /*p*/, const boost::json::object& body) {
  RequestReader r(body);
  const auto limit = r.Integer("Limit");
  const auto marker = r.String("Marker", 1, 1024);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (limit && (*limit < 1 || *limit > 1000)) {
    return std::unexpected(ValidationError(
        "Value '" + std::to_string(*limit) +
        "' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000"));
  }
  // One policy: any marker is past the end of the list.
  if (marker) return std::unexpected(ClientError("InvalidMarkerException", "Invalid marker."));
  boost::json::object out;
  out["PolicyNames"] = boost::json::array{firmware::authz::kDefaultPolicyName};
  out["Truncated"] = false;
  return out;
}

}  // namespace kms::api::aws::internal
