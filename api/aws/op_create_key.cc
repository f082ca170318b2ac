// AWS KMS CreateKey: JSON 1.1 request <-> firmware::KeyService (AWS KMS reference §2.2 "CreateKey").
#include "api/aws/internal/operation_support.h"

namespace kms::api::aws::internal {

OpResult CreateKey(firmware::KeyService& service, const boost::json::object& body) {
  RequestReader r(body);
  firmware::CreateKeyRequest req;
  // Key policies are not implemented yet: a policy we would not enforce must not be accepted.
  r.Unsupported("Policy", "Key policies are not implemented by this appliance yet; omit Policy.");
  req.description = r.String("Description", 0, 8192);
  req.key_usage = r.Enum<firmware::KeyUsage>("KeyUsage", firmware::ParseKeyUsage);
  req.key_spec = r.Enum<firmware::KeySpec>("KeySpec", firmware::ParseKeySpec);
  // CustomerMasterKeySpec is the deprecated name of KeySpec; AWS still accepts it (§2.3).
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
  (void)r.Boolean("BypassPolicyLockoutSafetyCheck");  // only meaningful with a policy
  req.tags = ReadTags(r, "Tags", /*required=*/false);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto res, service.CreateKey(req));
  boost::json::object out;
  out["KeyMetadata"] = KeyMetadataJson(res.key_metadata);
  return out;
}

}  // namespace kms::api::aws::internal
