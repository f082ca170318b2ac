// The seal: what ties custodian shares (firmware/custodian_shares.h) to the HSM token, for the
// provisioning ceremony that makes them and for kmsd, which boots sealed and waits for them.
//
//  * The unseal secret is 32 bytes from the HSM's RNG, split into shares and never stored. The
//    token's user PIN is derived from it (`TokenPinFromUnsealSecret`: lowercase hex of HMAC-SHA256
//    keyed by the secret over a fixed label, 64 characters), so the PIN exists only while an unseal
//    is in progress and no file on the appliance can log in to the token.
//  * The seal descriptor is what a sealed appliance knows before any share is entered: the
//    threshold, the number of shares and the split id (shown by seal-status like Vault's t and n),
//    the shares' commitment, and a verifier of the secret (`UnsealSecretVerifier`: HMAC-SHA256
//    keyed by the secret over its own label). The ceremony writes it once into the store's meta
//    table (`seal.descriptor`); a store without it was never provisioned (or is a dev store).
//  * The descriptor decides an unseal, never the shares: a combiner bound to it
//    (`ExpectedShares`) refuses a share of another threshold, split, count or commitment, and a
//    rebuilt secret is used for nothing (no PIN derived, no login) until `VerifyUnsealSecret`
//    holds. The verifier is safe to store in the clear: the secret has 256 bits of entropy, so
//    neither the verifier nor the commitment can be inverted or searched, and HMAC under distinct
//    labels keeps it independent of the PIN and the backup keys.
//  * Descriptors written before verifiers existed ("v1": threshold, shares, split only) still
//    parse; `CompleteSealDescriptor` adds the commitment and verifier once a secret has been proven
//    some other way (a successful login, a backup's MAC).
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

inline constexpr std::size_t kSealVerifierSize = 32;

struct SealDescriptor {
  std::uint8_t threshold = 0;
  std::uint8_t shares = 0;
  std::array<std::uint8_t, kSplitIdSize> split_id{};
  // Both present in a v2 descriptor, both absent in a v1 one (written before they existed).
  std::optional<std::array<std::uint8_t, 8>> commitment;
  std::optional<std::array<std::uint8_t, kSealVerifierSize>> verifier;
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

// HMAC-SHA256(key = secret, "kms unseal secret verifier v1").
std::array<std::uint8_t, kSealVerifierSize> UnsealSecretVerifier(const SecretBytes& unseal_secret);
// True when the descriptor has a verifier and `unseal_secret` is the secret it was made from
// (compared in constant time). False for a v1 descriptor: it cannot vouch for any secret.
bool VerifyUnsealSecret(const SealDescriptor& descriptor, const SecretBytes& unseal_secret);
// The v2 descriptor of a split of `unseal_secret`: every field, commitment and verifier included.
SealDescriptor MakeSealDescriptor(const std::array<std::uint8_t, kSplitIdSize>& split_id,
                                  std::uint8_t threshold, std::uint8_t shares,
                                  const SecretBytes& unseal_secret);
// What a combiner bound to this appliance accepts (custodian_shares.h): its split, threshold,
// number of shares, a 32-byte secret and, in a v2 descriptor, its commitment.
ShareExpectation ExpectedShares(const SealDescriptor& descriptor);

// Writes the descriptor; AlreadyExists if the store has one (a store is provisioned once).
Status WriteSealDescriptor(store::MetadataStore& store, const SealDescriptor& descriptor);
// The store's descriptor; nullopt when it has none. DataLoss when it is unreadable.
StatusOr<std::optional<SealDescriptor>> ReadSealDescriptor(store::MetadataStore& store);

// Adds the commitment and verifier of `unseal_secret` to the store's v1 descriptor, in one
// transaction: for a secret the caller has proven (the HSM accepted the PIN derived from it, or a
// backup's MAC held), rebuilt from shares of the descriptor's split. OK and unchanged when the
// descriptor already has a verifier of this secret; FailedPrecondition when it has one of another
// secret; NotFound when the store has no descriptor. Returns the descriptor as stored.
StatusOr<SealDescriptor> CompleteSealDescriptor(store::MetadataStore& store,
                                                const SecretBytes& unseal_secret);

// The stored form: "v2 threshold=3 shares=5 split=<16 hex> commitment=<16 hex> verifier=<64 hex>",
// or "v1 threshold=3 shares=5 split=<16 hex>" for a descriptor without commitment and verifier.
std::string FormatSealDescriptor(const SealDescriptor& descriptor);
StatusOr<SealDescriptor> ParseSealDescriptor(std::string_view text);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_SEAL_H_
