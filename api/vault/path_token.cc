// auth/token/lookup-self (GET, write), renew-self (write, `increment`) and revoke-self (write):
// the token endpoints Vault's transit seal and the Go client's LifetimeWatcher call
// (docs/vault-door.md). Tokens are created by operators, not here. The door has looked the token up
// (the Decision's token) before any of them runs.
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

namespace {

json::array Strings(const std::vector<std::string>& v) {
  json::array out;
  for (const auto& s : v) out.emplace_back(s);
  return out;
}

std::int64_t RemainingSeconds(const firmware::VaultTokenInfo& info, std::int64_t now_ms) {
  if (info.expire_time_ms == 0) return 0;  // never expires: Vault reports 0, as for root tokens
  return info.expire_time_ms > now_ms ? (info.expire_time_ms - now_ms) / 1000 : 0;
}

// Vault's `auth` block (sdk/logical/translate_response.go). `client_token` is the presented token:
// the LifetimeWatcher renews with whatever comes back, and an empty one stops it.
json::object AuthBlock(const firmware::VaultTokenInfo& info, std::string_view token,
                       std::int64_t now_ms) {
  return json::object{
      {"client_token", token},
      {"accessor", info.accessor},
      {"policies", Strings(info.policies)},
      {"token_policies", Strings(info.policies)},
      {"metadata", nullptr},
      {"lease_duration", RemainingSeconds(info, now_ms)},
      {"renewable", info.renewable},
      {"entity_id", ""},
      {"token_type", "service"},
      {"orphan", true},
      {"mfa_requirement", nullptr},
      {"num_uses", 0},
  };
}

Reply AuthReply(json::object auth) {
  Reply r;
  r.auth = std::move(auth);
  r.mount_type = "token";
  return r;
}

}  // namespace

Reply PathTokenLookupSelf(const Call& call, const Decision& decision) {
  const firmware::VaultTokenInfo* info = decision.token();
  if (info == nullptr) return ErrorReply(403, "permission denied");
  json::object d{
      {"accessor", info->accessor},
      {"creation_time", info->creation_time_ms / 1000},
      {"creation_ttl", info->ttl_ms / 1000},
      {"display_name", info->display_name},
      {"entity_id", ""},
      {"expire_time", info->expire_time_ms == 0 ? json::value(nullptr)
                                                : json::value(Rfc3339(info->expire_time_ms))},
      {"explicit_max_ttl", info->explicit_max_ttl_ms / 1000},
      {"id", call.token},  // wiped by the door after serialising
      {"issue_time", Rfc3339(info->creation_time_ms)},
      {"meta", nullptr},
      {"num_uses", 0},
      {"orphan", true},
      {"path", "auth/token/create"},
      {"policies", Strings(info->policies)},
      {"renewable", info->renewable},
      {"ttl", RemainingSeconds(*info, call.now_ms)},
      {"type", "service"},
  };
  Reply r = DataReply(std::move(d));
  r.mount_type = "token";
  return r;
}

Reply PathTokenRenewSelf(const Call& call, const Decision&) {
  FieldReader f(call.body);
  const std::int64_t increment_ms = f.DurationMs("increment").value_or(0);
  if (f.error()) return ErrorReply(400, *f.error());
  auto info = call.tokens->Renew(call.token, increment_ms);
  if (!info) return StatusReply(info.error());
  return AuthReply(AuthBlock(*info, call.token, call.now_ms));
}

Reply PathTokenRevokeSelf(const Call& call, const Decision&) {
  // The door looked the token up first, so the audit record names the token it revoked.
  Status revoked = call.tokens->Revoke(call.token);
  if (!revoked.ok()) return StatusReply(revoked);
  return NoContent();
}

}  // namespace kms::api::vault::internal
