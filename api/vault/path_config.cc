// keys/<name>/config (write): Vault's path_config.go.
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

Reply PathConfig(const Call& call, const Decision& d) {
  FieldReader f(call.body);
  firmware::transit::TransitKeyConfigUpdate update;
  update.min_decryption_version = f.Int("min_decryption_version");
  update.min_encryption_version = f.Int("min_encryption_version");
  update.deletion_allowed = f.Bool("deletion_allowed");
  update.exportable = f.Bool("exportable");
  update.allow_plaintext_backup = f.Bool("allow_plaintext_backup");
  update.auto_rotate_period_ms = f.DurationMs("auto_rotate_period");
  if (f.error()) return ErrorReply(400, *f.error());
  auto info = call.keyring->UpdateConfig(d.key(), update);
  if (!info) return StatusReply(info.error());
  // Current Vault answers the key as keys/<name> reads it (older releases: 204).
  return DataReply(KeyInfoData(*info));
}

}  // namespace kms::api::vault::internal
