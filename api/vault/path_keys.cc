// keys (LIST) and keys/<name> (GET, write, DELETE): Vault's path_keys.go.
#include <algorithm>

#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

namespace {

// Vault parameters of keys/<name> that belong to features the appliance lacks (managed keys, PQC,
// OpenBao external keys): refused by name rather than ignored, so no caller gets a different key
// than it asked for.
constexpr std::string_view kUnsupportedCreateFields[] = {
    "managed_key_name",    "managed_key_id",     "parameter_set",
    "hybrid_key_type_pqc", "hybrid_key_type_ec", "external_key_ref",
};

Reply List(const Call& call) {
  // One token lookup, then the names filtered by the token's key patterns: a scoped token lists
  // only the keys it could read (Authorize per name would cost a store read per key).
  auto token = LookupToken(call);
  if (!token) return StatusReply(token.error());
  const auto& ops = token->operations;
  const bool may_read = token->administrator ||
                        std::find(ops.begin(), ops.end(), "read") != ops.end() ||
                        std::find(ops.begin(), ops.end(), "*") != ops.end();
  if (!may_read) return ErrorReply(403, "permission denied");
  auto names = call.keyring->ListKeys();
  if (!names) return StatusReply(names.error());
  json::array keys;
  for (const auto& name : *names) {
    const bool visible =
        token->administrator ||
        std::any_of(token->key_patterns.begin(), token->key_patterns.end(),
                    [&](const auto& p) {
                      return firmware::VaultKeyPatternMatches(p, MountOf(call), name);
                    });
    if (visible) keys.emplace_back(name);
  }
  // Vault: a LIST with no results is 404 {"errors":[]}.
  if (keys.empty()) return EmptyErrorReply(404);
  return DataReply(json::object{{"keys", std::move(keys)}});
}

Reply Read(const Call& call) {
  if (auto denied = Authorize(call, "read", call.name)) return std::move(*denied);
  auto info = call.keyring->ReadKey(call.name);
  if (!info) {
    // Vault answers a read of a missing key with a bare 404.
    if (info.error().code() == StatusCode::kNotFound) return EmptyErrorReply(404);
    return StatusReply(info.error());
  }
  return DataReply(KeyInfoData(*info));
}

Reply Create(const Call& call) {
  if (auto denied = Authorize(call, "manage", call.name)) return std::move(*denied);
  FieldReader f(call.body);
  for (const auto field : kUnsupportedCreateFields) {
    if (f.Has(field)) {
      return ErrorReply(400, std::string(field) + " is not supported by this appliance");
    }
  }
  firmware::transit::CreateTransitKeyOptions options;
  if (auto type = f.String("type"); type && !type->empty()) {
    auto parsed = firmware::transit::ParseTransitKeyType(*type);
    if (!parsed) return StatusReply(parsed.error());
    options.type = *parsed;
  }
  options.derived = f.Bool("derived").value_or(false);
  options.convergent_encryption = f.Bool("convergent_encryption").value_or(false);
  options.exportable = f.Bool("exportable").value_or(false);
  options.allow_plaintext_backup = f.Bool("allow_plaintext_backup").value_or(false);
  options.auto_rotate_period_ms = f.DurationMs("auto_rotate_period").value_or(0);
  options.key_size = f.Int("key_size");
  if (f.error()) return ErrorReply(400, *f.error());
  auto info = call.keyring->CreateKey(call.name, options);
  if (!info) return StatusReply(info.error());
  return DataReply(KeyInfoData(*info));
}

Reply Delete(const Call& call) {
  if (auto denied = Authorize(call, "manage", call.name)) return std::move(*denied);
  Status deleted = call.keyring->DeleteKey(call.name);
  if (!deleted.ok()) return StatusReply(deleted);
  return NoContent();
}

}  // namespace

Reply PathKeys(const Call& call) {
  if (call.name.empty()) {
    if (auto bad = RequireVerb(call, {Verb::kList})) return std::move(*bad);
    return List(call);
  }
  if (auto bad = RequireVerb(call, {Verb::kRead, Verb::kWrite, Verb::kDelete})) {
    return std::move(*bad);
  }
  switch (call.verb) {
    case Verb::kRead:
      return Read(call);
    case Verb::kWrite:
      return Create(call);
    default:
      return Delete(call);
  }
}

}  // namespace kms::api::vault::internal
