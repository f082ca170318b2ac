// VaultTokenRegistry: the tokens of the Vault door, the `X-Vault-Token` credentials that Vault's
// transit seal and apps written for Vault transit present. Operators create them (admin API,
// kmsctl); the door looks one up on every request and answers `auth/token/lookup-self`,
// `renew-self` and `revoke-self` with it.
//
// Contract:
//  * A token is "hvs." followed by 32 characters of [A-Za-z0-9] drawn from the HSM RNG (about 190
//    bits), shaped like Vault's service tokens so Vault clients accept it. It is returned once, by
//    `Create`, and never stored: the registry keeps only SHA-256(token). A plain hash is enough here,
//    unlike for passwords: the secret is uniformly random and too long to guess, so a slow or keyed
//    hash would add no strength, and a stolen database yields no usable token.
//  * Each token also has an accessor ("acc." + 24 characters), a public handle operators use to list,
//    look up and revoke tokens without holding them. Accessors are not credentials.
//  * Records (records::VaultTokenRecord) live in the meta table: "vault.token.<sha256 hex>" and
//    "vault.token_accessor.<accessor>" -> the hash hex, both written in one transaction.
//  * Scope: a token carries key patterns and operation names from kVaultOperations (or "*").
//    A key pattern is "<mount>/<key>": <mount> is a mount path exactly as configured ("transit",
//    "apps/transit") or "*" for every mount; <key> is an exact key name, "*" for every key, or a
//    prefix ending in "*" ("app-*"). A pattern written without a mount ("app-*") names the default
//    mount, kVaultDefaultMount, and is stored that way ("transit/app-*"), so what a lookup shows is
//    what the token may reach. `Permits` answers PermissionDenied unless the operation and a
//    pattern (mount and key) both match; administrator tokens match everything. Records written
//    before patterns named their mount hold patterns without one, which then meant every mount:
//    `BindMountlessPatterns` (run by the composition root at start) rewrites each such pattern
//    into one per configured mount, which keeps every existing token working on the mounts that
//    exist and no others; until then such a pattern names the default mount only.
//  * Lifetime: a token with ttl 0 never expires (and is not renewable). Otherwise it expires at
//    creation + ttl; `Renew` moves the expiry to now + ttl (Vault's `increment` 0 means "the token's
//    own ttl"; a positive increment asks for that many seconds, capped at the ttl), never past the
//    token's maximum lifetime: creation + explicit_max_ttl when that is set, else creation + the
//    registry's max ttl (VaultTokenOptions::max_ttl_ms, Vault's max_lease_ttl, 768 h = 32 days by
//    default); a lease already granted past that bound (under a larger max ttl) is the bound
//    instead, so lowering the max ttl takes nothing back. A ttl above the max ttl is refused at
//    creation unless an explicit max ttl is set (an explicit max ttl overrides the system's, as in
//    Vault). An expired token is deleted on the first lookup that finds it expired.
//  * `Lookup` reads the store every call, so a revocation by any process sharing the store takes
//    effect at once. Unknown, revoked and expired tokens all give PermissionDenied with the one
//    message "permission denied" (Vault's 403 body), so a caller cannot tell them apart.
//  * Errors: InvalidArgument for a malformed display name, pattern, operation or ttl (ttls are 0 or
//    1 s .. 100 years; an explicit max ttl needs a ttl and may not be below it); NotFound for an
//    unknown (or expired) accessor; PermissionDenied as above; store and HSM failures pass through.
//  * Lifetime: the Hsm, MetadataStore and Clock must outlive the registry. Thread-safety: every method
//    may be called concurrently from any thread.
#ifndef KMS_FIRMWARE_VAULT_TOKENS_H_
#define KMS_FIRMWARE_VAULT_TOKENS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"
#include "hal/hsm.h"

namespace kms::firmware {

inline constexpr std::string_view kVaultTokenPrefix = "hvs.";
inline constexpr std::size_t kVaultTokenRandomLength = 32;
// The mount a key pattern without one names (Vault's default transit mount path).
inline constexpr std::string_view kVaultDefaultMount = "transit";
// Vault's default max_lease_ttl: 768 h (32 days).
inline constexpr std::int64_t kVaultDefaultMaxTtlMs = 768LL * 3'600'000;

// The operations a token can be scoped to. "read" covers reading and listing keys; "manage" covers
// creating, configuring, rotating and deleting them; the others name the transit endpoints.
inline constexpr std::string_view kVaultOperations[] = {
    "encrypt", "decrypt", "rewrap", "datakey", "hmac",   "sign",
    "verify",  "read",    "manage", "random",  "hash",
};

struct VaultTokenSpec {
  std::string display_name;               // 1..128 printable ASCII characters
  std::vector<std::string> key_patterns;  // at least one; "[<mount>/]<key>" (see the contract)
  std::vector<std::string> operations;    // at least one; each in kVaultOperations, or "*"
  bool administrator = false;
  std::int64_t ttl_ms = 0;  // 0 = never expires; else 1 s .. the max ttl (or the explicit max)
  std::int64_t explicit_max_ttl_ms = 0;  // 0 = the registry's max ttl
  bool renewable = true;                 // ignored (false) when ttl_ms is 0
  std::vector<std::string> policies;     // echoed in lookup answers; default {"default"}
};

// What `Create` returns: the only time the token leaves the registry.
struct CreatedVaultToken {
  SecretBytes token;  // "hvs...." ASCII
  std::string accessor;
};

// A token as the door and operators see it. Never carries the token itself.
struct VaultTokenInfo {
  std::string accessor;
  std::string display_name;
  std::vector<std::string> key_patterns;  // "<mount>/<key>"
  std::vector<std::string> operations;
  std::vector<std::string> policies;
  bool administrator = false;
  bool renewable = false;
  std::int64_t creation_time_ms = 0;
  std::int64_t ttl_ms = 0;
  std::int64_t explicit_max_ttl_ms = 0;
  std::int64_t expire_time_ms = 0;  // 0 = never
};

struct VaultTokenOptions {
  // The longest a renewable token lives without an explicit max ttl, from its creation.
  std::int64_t max_ttl_ms = kVaultDefaultMaxTtlMs;
};

class VaultTokenRegistry {
 public:
  VaultTokenRegistry(hal::Hsm& hsm, store::MetadataStore& store, const Clock& clock,
                     VaultTokenOptions options = {});
  VaultTokenRegistry(const VaultTokenRegistry&) = delete;
  VaultTokenRegistry& operator=(const VaultTokenRegistry&) = delete;

  // Makes a new token. Durable before it returns.
  StatusOr<CreatedVaultToken> Create(const VaultTokenSpec& spec);
  // The live token `token` (PermissionDenied "permission denied" for unknown, revoked or expired).
  StatusOr<VaultTokenInfo> Lookup(std::string_view token);
  // Lookup, then checks that the token may perform `operation` on transit key `key_name` of mount
  // `mount` (key_name empty for operations without a key: random, hash, listing).
  // PermissionDenied "permission denied" otherwise.
  StatusOr<VaultTokenInfo> Authorize(std::string_view token, std::string_view operation,
                                     std::string_view mount, std::string_view key_name);
  // The scope check of Authorize on a token already looked up: OK, or PermissionDenied
  // "permission denied". Reads nothing.
  static Status Permits(const VaultTokenInfo& info, std::string_view operation,
                        std::string_view mount, std::string_view key_name);
  // Extends a live token (see the contract); `increment_ms` 0 asks for the token's own ttl. A token
  // that is not renewable: InvalidArgument "lease is not renewable".
  StatusOr<VaultTokenInfo> Renew(std::string_view token, std::int64_t increment_ms);
  // Revokes the live token `token` (revoke-self).
  Status Revoke(std::string_view token);
  // Operators: by accessor.
  StatusOr<VaultTokenInfo> LookupAccessor(std::string_view accessor);
  Status RevokeAccessor(std::string_view accessor);
  // Live tokens ordered by accessor, after `after`; limit 1..store::kMaxPageLimit.
  StatusOr<store::Page<VaultTokenInfo>> List(std::string_view after, std::size_t limit);

  // The migration of records written before key patterns named their mount (see the contract):
  // every pattern without a mount becomes one pattern per mount of `mounts` (the configured
  // mounts, at least one). Returns how many token records were rewritten; 0 once done. Each
  // record is rewritten in its own transaction, so an interrupted run is finished by the next.
  StatusOr<std::size_t> BindMountlessPatterns(const std::vector<std::string>& mounts);

  const VaultTokenOptions& options() const { return options_; }

 private:
  hal::Hsm& hsm_;
  store::MetadataStore& store_;
  const Clock& clock_;
  const VaultTokenOptions options_;
};

// True when `pattern` ("<mount>/<key>", see the contract) matches key `key_name` of mount `mount`
// (as configured, without leading or trailing '/'). A pattern without a mount matches the default
// mount only.
bool VaultKeyPatternMatches(std::string_view pattern, std::string_view mount,
                            std::string_view key_name);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_VAULT_TOKENS_H_
