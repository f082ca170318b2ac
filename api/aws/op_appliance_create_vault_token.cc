// KmsAppliance.CreateVaultToken: a new X-Vault-Token for the Vault door
// (api/aws/appliance_operations.h, firmware/vault_tokens.h). The token leaves the appliance in this
// one response; the door wipes the JSON copy once sent, and the registry keeps only its hash.
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

namespace {

// Seconds as the API carries them; the registry takes milliseconds (and range-checks them:
// InvalidArgument -> ValidationException).
std::int64_t SecondsToMs(std::optional<std::int64_t> seconds) { return seconds.value_or(0) * 1000; }

}  // namespace

OpResult CreateVaultToken(firmware::VaultTokenRegistry& tokens, const boost::json::object& body) {
  RequestReader r(body);
  firmware::VaultTokenSpec spec;
  spec.display_name = r.RequiredString("DisplayName", 1, 128);
  spec.key_patterns = r.StringList("KeyPatterns", /*required=*/true);
  spec.operations = r.StringList("Operations", /*required=*/true);
  spec.administrator = r.Boolean("Administrator");
  const auto ttl_seconds = r.Integer("TtlSeconds");
  const auto max_ttl_seconds = r.Integer("ExplicitMaxTtlSeconds");
  // Renewable defaults to true (Vault's default for service tokens), so absence must be told
  // apart from false.
  if (body.contains("Renewable")) spec.renewable = r.Boolean("Renewable");
  spec.policies = r.StringList("Policies");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  spec.ttl_ms = SecondsToMs(ttl_seconds);
  spec.explicit_max_ttl_ms = SecondsToMs(max_ttl_seconds);
  KMS_AWS_ASSIGN_OR_FAIL(firmware::CreatedVaultToken made, tokens.Create(spec));
  // The stored view (creation time, default policies, effective renewability), read back by the
  // public accessor.
  KMS_AWS_ASSIGN_OR_FAIL(firmware::VaultTokenInfo info, tokens.LookupAccessor(made.accessor));
  boost::json::object token = VaultTokenJson(info);
  token["Token"] = boost::json::string(AsStringView(made.token.ExposeSecret()));
  boost::json::object out;
  out["VaultToken"] = std::move(token);
  return out;
}

}  // namespace kms::api::aws::internal
