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

}  // namespace

Reply PathKeysList(const Call& call, const Decision& d) {
  // The door decided "read" on no key; the names are filtered by the token's key patterns on this
  // mount, so a scoped token lists only the keys it could read (a decision per name would cost a
  // key-policy read per key, and listing is not reading: the AWS door's ListKeys has no key).
  auto names = call.keyring->ListKeys();
  if (!names) return StatusReply(names.error());
  json::array keys;
  for (const auto& name : *names) {
    if (d.Covers(name)) keys.emplace_back(name);
  }
  // Vault: a LIST with no results is 404 {"errors":[]}.
  if (keys.empty()) return EmptyErrorReply(404);
  return DataReply(json::object{{"keys", std::move(keys)}});
}

Reply PathKeysRead(const Call& call, const Decision& d) {
  auto info = call.keyring->ReadKey(d.key());
  if (!info) {
    // Vault answers a read of a missing key with a bare 404.
    if (info.error().code() == StatusCode::kNotFound) return EmptyErrorReply(404);
    return StatusReply(info.error());
  }
  return DataReply(KeyInfoData(*info));
}

Reply PathKeysCreate(const Call& call, const Decision& d) {
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
  auto info = call.keyring->CreateKey(d.key(), options);
  if (!info) return StatusReply(info.error());
  return DataReply(KeyInfoData(*info));
}

Reply PathKeysDelete(const Call& call, const Decision& d) {
  Status deleted = call.keyring->DeleteKey(d.key());
  if (!deleted.ok()) return StatusReply(deleted);
  return NoContent();
}

}  // namespace kms::api::vault::internal
