// The seal: what ties custodian shares (firmware/custodian_shares.h) to the HSM token, for the
// provisioning ceremony that makes them and for kmsd, which boots sealed and waits for them.
//
//  * The unseal secret is 32 bytes from the HSM's RNG, split into shares and never stored. The
//  token's
//    user PIN is derived from it (`TokenPinFromUnsealSecret`: lowercase hex of HMAC-SHA256 keyed by
//    the secret over a fixed label, 64 characters), so the PIN exists only while an unseal is in
//    progress and no file on the appliance can log in to the token.
//  * The seal descriptor is what a sealed appliance knows before any share is entered: the
//  threshold,
//    the number of shares and the split id (all public, shown by seal-status like Vault's t and n).
//    The ceremony writes it once into the store's meta table (`seal.descriptor`); a store without
//    it was never provisioned (or is a dev store).
//
// Thread-safety: plain functions; the store serialises its own transactions.
#ifndef KMS_FIRMWARE_SEAL_H_
#define KMS_FIRMWARE_SEAL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/custodian_shares.h"
#include "firmware/store/metadata_store.h"

namespace kms::firmware {

inline constexpr std::size_t kUnsealSecretSize = 32;
inline constexpr std::string_view kSealDescriptorMeta = "seal.descriptor";

struct SealDescriptor {
  std::uint8_t threshold = 0;
  std::uint8_t shares = 0;
  std::array<std::uint8_t, kSplitIdSize> split_id{};
};

// 64 lowercase hex characters: HMAC-SHA256(key = secret, "kms token user PIN v1").
SecretBytes TokenPinFromUnsealSecret(const SecretBytes& unseal_secret);

// The backup keys (kms-provision backup/restore, docs/provisioning.md), 32 raw bytes each, derived
// like the PIN so that only the custodians' shares can open a backup: the backup KEK, which wraps
// the domain key as a trusted session key, is HMAC-SHA256(key = secret, "kms backup KEK v1"); the
// key of the backup file's MAC is HMAC-SHA256(key = secret, "kms backup MAC v1"). Distinct labels
// keep the three keys independent: knowing the PIN or the MAC key gives nothing of the KEK.
SecretBytes BackupKekFromUnsealSecret(const SecretBytes& unseal_secret);
SecretBytes BackupMacKeyFromUnsealSecret(const SecretBytes& unseal_secret);

// Writes the descriptor; AlreadyExists if the store has one (a store is provisioned once).
Status WriteSealDescriptor(store::MetadataStore& store, const SealDescriptor& descriptor);
// The store's descriptor; nullopt when it has none. DataLoss when it is unreadable.
StatusOr<std::optional<SealDescriptor>> ReadSealDescriptor(store::MetadataStore& store);

// "v1 threshold=3 shares=5 split=<16 hex>", the stored form.
std::string FormatSealDescriptor(const SealDescriptor& descriptor);
StatusOr<SealDescriptor> ParseSealDescriptor(std::string_view text);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_SEAL_H_
