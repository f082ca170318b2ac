// AWS KMS CreateKey: JSON 1.1 request <-> firmware::KeyService (docs/aws-kms-protocol.md
// "Operations").
#include "api/aws/internal/policy_support.h"

namespace kms::api::aws::internal {

namespace {

// Every member but Policy and BypassPolicyLockoutSafetyCheck.
firmware::CreateKeyRequest ReadCreateKey(RequestReader& r) {
  firmware::CreateKeyRequest req;
  req.description = r.String("Description", 0, 8192);
  req.key_usage = r.Enum<firmware::KeyUsage>("KeyUsage", firmware::ParseKeyUsage);
  req.key_spec = r.Enum<firmware::KeySpec>("KeySpec", firmware::ParseKeySpec);
  // CustomerMasterKeySpec is the deprecated name of KeySpec; AWS still accepts it
  // (docs/aws-kms-protocol.md "Rules per operation").
  auto cmk_spec = r.Enum<firmware::KeySpec>("CustomerMasterKeySpec", [](std::string_view n,
                                                                       std::string_view) {
    return firmware::ParseKeySpec(n, "customerMasterKeySpec");
  });
  if (cmk_spec && req.key_spec && *cmk_spec != *req.key_spec) {
    r.Fail(ValidationError("Value at 'customerMasterKeySpec' failed to satisfy constraint: "
                           "KeySpec and CustomerMasterKeySpec must agree"));
  }
  if (cmk_spec && !req.key_spec) req.key_spec = cmk_spec;
  if (auto origin = r.String("Origin"); origin && *origin != "AWS_KMS" && !r.error()) {
    r.Fail(ClientError("UnsupportedOperationException",
                       "Origin " + *origin + " is not supported by this appliance; only AWS_KMS."));
  }
  r.Unsupported("CustomKeyStoreId", "Custom key stores are not supported by this appliance.");
  r.Unsupported("XksKeyId", "External key stores are not supported by this appliance.");
  if (r.Boolean("MultiRegion")) {
    r.Fail(ClientError("UnsupportedOperationException",
                       "Multi-Region keys are not supported by this appliance."));
  }
  req.tags = ReadTags(r, "Tags", /*required=*/false);
  return req;
}

OpResult Answer(const firmware::CreateKeyResponse& res) {
  boost::json::object out;
  out["KeyMetadata"] = KeyMetadataJson(res.key_metadata);
  return out;
}

}  // namespace

OpResult CreateKeyWithPolicy(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const auto policy = r.String("Policy", 1, 131072);
  const bool bypass = r.Boolean("BypassPolicyLockoutSafetyCheck");
  firmware::CreateKeyRequest req = ReadCreateKey(r);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (policy) {
    // Checked before the key exists (its ARN is not known yet: the lockout check evaluates the
    // policy for "any key", which a statement naming one specific key ARN cannot match).
    const firmware::authz::KeyRef any_key{"", "*"};
    KMS_AWS_RETURN_IF_ERROR(StatusOf(p.access.CheckKeyPolicy(*policy, p.authorization.caller(), any_key, !bypass)));
    req.attach = [&p, &policy](firmware::store::Transaction& tx, std::string_view key_id) {
      return p.access.StoreKeyPolicy(tx, key_id, *policy);
    };
  }
  KMS_AWS_ASSIGN_OR_FAIL(auto res, p.service.CreateKey(req));
  return Answer(res);
}

}  // namespace kms::api::aws::internal
