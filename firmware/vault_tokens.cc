// VaultTokenRegistry implementation. See vault_tokens.h for the contract.
//
// Storage (meta table, both entries written and deleted in one transaction):
//   "vault.token.<64 lower-case hex of SHA-256(token)>"  -> records::VaultTokenRecord (serialized)
//   "vault.token_accessor.<accessor>"                    -> the same 64 hex characters
#include "firmware/vault_tokens.h"

#include <mbedtls/sha256.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"

namespace kms::firmware {
namespace {

using records::VaultTokenRecord;
using store::Transaction;
using store::TransactionMode;

constexpr std::string_view kTokenMetaPrefix = "vault.token.";
constexpr std::string_view kAccessorMetaPrefix = "vault.token_accessor.";
constexpr std::string_view kAccessorPrefix = "acc.";
constexpr std::size_t kAccessorRandomLength = 24;
// Vault's 403 body. One message for unknown, revoked and expired tokens: no oracle.
constexpr std::string_view kPermissionDenied = "permission denied";
constexpr std::string_view kUnknownAccessor = "unknown token accessor";

constexpr std::size_t kMaxDisplayNameLength = 128;
constexpr std::size_t kMaxKeyNameLength = 128;  // transit key names (firmware/transit_keyring.h)
constexpr std::size_t kMaxPolicyNameLength = 128;
constexpr std::size_t kMaxPatterns = 64;
constexpr std::size_t kMaxPolicies = 64;
constexpr std::int64_t kMinTtlMs = 1000;
// A bound far above any lease an operator means (Vault's own default maximum is 32 days), chosen
// so creation + ttl can never overflow int64 milliseconds.
constexpr std::int64_t kMaxTtlMs = 100LL * 366 * kMsPerDay;

constexpr std::string_view kTokenAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static_assert(kTokenAlphabet.size() == 62);

bool IsTokenCharacter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool IsKeyNameCharacter(char c) { return IsTokenCharacter(c) || c == '_' || c == '-'; }

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// Draws `n` characters uniformly from `alphabet` (size <= 256) with the HSM RNG, by rejection
// sampling: a byte is used only below the largest multiple of the alphabet size, so no character is
// likelier than another (a plain `b % 62` would favour the first 8 characters by 1/4).
StatusOr<SecretBytes> RandomString(hal::Hsm& hsm, std::string_view alphabet, std::size_t n) {
  const std::size_t size = alphabet.size();
  const std::size_t bound = 256 - (256 % size);
  SecretBytes out;
  while (out.size() < n) {
    KMS_ASSIGN_OR_RETURN(SecretBytes random, hsm.GenerateRandom(n + 8));
    for (const std::uint8_t b : random.ExposeSecret()) {
      if (out.size() == n) break;
      if (b >= bound) continue;
      const auto c = static_cast<std::uint8_t>(alphabet[b % size]);
      out.Append(ByteView(&c, 1));
    }
  }
  return out;
}

// SHA-256 of the token string: the only form of a token that is ever stored.
std::string TokenHash(std::string_view token) {
  std::array<std::uint8_t, 32> digest{};
  (void)mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
                           digest.data(), /*is224=*/0);
  return ToString(ByteView(digest.data(), digest.size()));
}

// The name part of the token's meta entry: the hash in lower-case hex.
std::string TokenHashHex(std::string_view token) { return HexEncode(AsBytes(TokenHash(token))); }

std::string TokenMetaName(std::string_view hash_hex) {
  return std::string(kTokenMetaPrefix) + std::string(hash_hex);
}

std::string AccessorMetaName(std::string_view accessor) {
  return std::string(kAccessorMetaPrefix) + std::string(accessor);
}

// A token's shape is public (the header states it); checking it first spares the store a read for
// garbage and cannot tell a caller anything it did not know.
bool HasTokenShape(std::string_view token) {
  return token.size() == kVaultTokenPrefix.size() + kVaultTokenRandomLength &&
         token.starts_with(kVaultTokenPrefix) &&
         std::all_of(token.begin() + static_cast<std::ptrdiff_t>(kVaultTokenPrefix.size()),
                     token.end(), IsTokenCharacter);
}

bool HasAccessorShape(std::string_view accessor) {
  return accessor.size() == kAccessorPrefix.size() + kAccessorRandomLength &&
         accessor.starts_with(kAccessorPrefix) &&
         std::all_of(accessor.begin() + static_cast<std::ptrdiff_t>(kAccessorPrefix.size()),
                     accessor.end(), IsTokenCharacter);
}

// A mount path as the keyring accepts one (firmware/transit_keyring.h): 1..64 characters of
// [A-Za-z0-9_-/], no leading, trailing or doubled '/'.
bool IsMountPath(std::string_view mount) {
  return !mount.empty() && mount.size() <= 64 && mount.front() != '/' && mount.back() != '/' &&
         mount.find("//") == std::string_view::npos &&
         std::all_of(mount.begin(), mount.end(),
                     [](char c) { return IsKeyNameCharacter(c) || c == '/'; });
}

bool IsKeyPattern(std::string_view pattern) {
  const bool wildcard = pattern.ends_with('*');
  const std::string_view stem = wildcard ? pattern.substr(0, pattern.size() - 1) : pattern;
  return !pattern.empty() && stem.size() <= kMaxKeyNameLength &&
         std::all_of(stem.begin(), stem.end(), IsKeyNameCharacter);
}

// A pattern's mount and key parts. Key names never hold '/', so the last '/' separates them; a
// pattern without one names the default mount.
std::pair<std::string_view, std::string_view> SplitPattern(std::string_view pattern) {
  const auto slash = pattern.rfind('/');
  if (slash == std::string_view::npos) return {kVaultDefaultMount, pattern};
  return {pattern.substr(0, slash), pattern.substr(slash + 1)};
}

// The stored form of a pattern: "<mount>/<key>", the default mount made explicit.
StatusOr<std::string> NormalizePattern(std::string_view pattern) {
  const auto [mount, key] = SplitPattern(pattern);
  if (!(mount == "*" || IsMountPath(mount)) || !IsKeyPattern(key)) {
    return InvalidArgumentError(
        "key pattern must be [<mount>/]<key>: <mount> a mount path or \"*\" (every mount; "
        "without one, \"" +
        std::string(kVaultDefaultMount) +
        "\"), <key> \"*\", a key name, or a key-name prefix ending in \"*\" (A-Z a-z 0-9 _ -)");
  }
  return std::string(mount) + "/" + std::string(key);
}

// "768h" for whole hours, else seconds: the max ttl as an operator configured it.
std::string DurationText(std::int64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  return std::to_string(ms / 1000) + "s";
}

bool IsVaultOperation(std::string_view operation) {
  return operation == "*" || std::find(std::begin(kVaultOperations), std::end(kVaultOperations),
                                       operation) != std::end(kVaultOperations);
}

Status ValidateSpec(const VaultTokenSpec& spec, const VaultTokenOptions& options) {
  if (spec.display_name.empty() || spec.display_name.size() > kMaxDisplayNameLength ||
      !IsPrintableAscii(spec.display_name)) {
    return InvalidArgumentError("token display name must be 1..128 printable ASCII characters");
  }
  if (spec.key_patterns.empty() || spec.key_patterns.size() > kMaxPatterns) {
    return InvalidArgumentError("a token needs 1..64 key patterns");
  }
  for (const std::string& p : spec.key_patterns) {
    KMS_RETURN_IF_ERROR(StatusOf(NormalizePattern(p)));
  }
  if (spec.operations.empty() || spec.operations.size() > kMaxPatterns) {
    return InvalidArgumentError("a token needs 1..64 operations");
  }
  for (const std::string& op : spec.operations) {
    if (!IsVaultOperation(op)) {
      return InvalidArgumentError("unknown token operation \"" + op +
                                  "\" (expected one of encrypt, decrypt, rewrap, datakey, hmac, "
                                  "sign, verify, read, manage, random, hash, or *)");
    }
  }
  if (spec.ttl_ms < 0 || (spec.ttl_ms > 0 && spec.ttl_ms < kMinTtlMs) || spec.ttl_ms > kMaxTtlMs) {
    return InvalidArgumentError("token ttl must be 0 (never expires) or 1 s .. 100 years");
  }
  if (spec.explicit_max_ttl_ms < 0 ||
      (spec.explicit_max_ttl_ms > 0 && spec.explicit_max_ttl_ms < kMinTtlMs) ||
      spec.explicit_max_ttl_ms > kMaxTtlMs) {
    return InvalidArgumentError("token explicit max ttl must be 0 (unbounded) or 1 s .. 100 years");
  }
  // A token without a ttl never expires (the contract), so a maximum for it would be a lie; and
  // an initial lease longer than the maximum could never have been granted.
  if (spec.explicit_max_ttl_ms > 0 && spec.ttl_ms == 0) {
    return InvalidArgumentError("token explicit max ttl needs a ttl");
  }
  if (spec.explicit_max_ttl_ms > 0 && spec.ttl_ms > spec.explicit_max_ttl_ms) {
    return InvalidArgumentError("token ttl must not exceed its explicit max ttl");
  }
  // Without an explicit max, renewals stop at creation + the system's max ttl: a longer first
  // lease could never have been granted (Vault caps it; refusing says so instead).
  if (spec.explicit_max_ttl_ms == 0 && spec.ttl_ms > options.max_ttl_ms) {
    return InvalidArgumentError("token ttl must not exceed the max ttl (" +
                                DurationText(options.max_ttl_ms) +
                                ") unless the token has an explicit max ttl");
  }
  if (spec.policies.size() > kMaxPolicies) {
    return InvalidArgumentError("a token has at most 64 policies");
  }
  for (const std::string& p : spec.policies) {
    if (p.empty() || p.size() > kMaxPolicyNameLength || !IsPrintableAscii(p)) {
      return InvalidArgumentError("token policy names must be 1..128 printable ASCII characters");
    }
  }
  return Status::Ok();
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& field) {
  return std::vector<std::string>(field.begin(), field.end());
}

VaultTokenInfo ToInfo(const VaultTokenRecord& r) {
  VaultTokenInfo info;
  info.accessor = r.accessor();
  info.display_name = r.display_name();
  info.key_patterns = Strings(r.key_patterns());
  info.operations = Strings(r.operations());
  info.policies = Strings(r.policies());
  info.administrator = r.administrator();
  info.renewable = r.renewable();
  info.creation_time_ms = r.creation_time_ms();
  info.ttl_ms = r.ttl_ms();
  info.explicit_max_ttl_ms = r.explicit_max_ttl_ms();
  info.expire_time_ms = r.expire_time_ms();
  return info;
}

bool IsExpired(const VaultTokenRecord& r, std::int64_t now_ms) {
  return r.expire_time_ms() != 0 && now_ms >= r.expire_time_ms();
}

// Meta values are free-form to the store, so the record checks it applies to its own tables are
// repeated here. `hash_hex` is the name the record was found under: a record whose hash disagrees
// was moved or damaged.
StatusOr<VaultTokenRecord> ParseRecord(std::string_view value, std::string_view hash_hex) {
  VaultTokenRecord record;
  if (value.size() > static_cast<std::size_t>(INT_MAX) ||
      !record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return DataLossError("vault tokens: a stored token record does not parse");
  }
  if (record.record_version() == 0) {
    return DataLossError("vault tokens: a stored token record has no record_version");
  }
  if (record.record_version() > store::kRecordVersion) {
    return FailedPreconditionError(
        "vault tokens: a stored token record was written by newer firmware");
  }
  if (HexEncode(AsBytes(record.token_hash())) != hash_hex || record.accessor().empty()) {
    return DataLossError("vault tokens: the token record " + record.accessor() +
                         " does not match its name");
  }
  return record;
}

// Reads the record stored under `hash_hex`; nullopt when there is none.
StatusOr<std::optional<VaultTokenRecord>> ReadRecord(Transaction& txn, std::string_view hash_hex) {
  auto value = txn.GetMeta(TokenMetaName(hash_hex));
  if (!value.has_value()) {
    if (value.error().code() == StatusCode::kNotFound) return std::optional<VaultTokenRecord>();
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(VaultTokenRecord record, ParseRecord(*value, hash_hex));
  return std::optional<VaultTokenRecord>(std::move(record));
}

// The hash hex the accessor points at; nullopt when the accessor is unknown.
StatusOr<std::optional<std::string>> ReadAccessor(Transaction& txn, std::string_view accessor) {
  auto value = txn.GetMeta(AccessorMetaName(accessor));
  if (!value.has_value()) {
    if (value.error().code() == StatusCode::kNotFound) return std::optional<std::string>();
    return value.error();
  }
  return std::optional<std::string>(std::move(*value));
}

// The accessor's token record. An accessor entry whose record is gone cannot come from this code
// (both are written and deleted together), so it is DataLoss, not "unknown".
StatusOr<std::optional<VaultTokenRecord>> ReadByAccessor(Transaction& txn,
                                                         std::string_view accessor) {
  KMS_ASSIGN_OR_RETURN(std::optional<std::string> hash_hex, ReadAccessor(txn, accessor));
  if (!hash_hex) return std::optional<VaultTokenRecord>();
  KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadRecord(txn, *hash_hex));
  if (!record || record->accessor() != accessor) {
    return DataLossError("vault tokens: the accessor " + std::string(accessor) +
                         " names no token record");
  }
  return record;
}

Status DeleteRecord(Transaction& txn, const VaultTokenRecord& record) {
  KMS_RETURN_IF_ERROR(txn.DeleteMeta(TokenMetaName(HexEncode(AsBytes(record.token_hash())))));
  const Status accessor = txn.DeleteMeta(AccessorMetaName(record.accessor()));
  // A missing accessor entry is tolerated on delete: the token goes either way.
  if (!accessor.ok() && accessor.code() != StatusCode::kNotFound) return accessor;
  return Status::Ok();
}

Status WriteRecord(Transaction& txn, const VaultTokenRecord& record) {
  std::string serialized;
  if (!record.SerializeToString(&serialized)) {
    return InternalError("vault tokens: token record serialization failed");
  }
  return txn.PutMeta(TokenMetaName(HexEncode(AsBytes(record.token_hash()))), serialized);
}

Status Denied() { return PermissionDeniedError(std::string(kPermissionDenied)); }

}  // namespace

bool VaultKeyPatternMatches(std::string_view pattern, std::string_view mount,
                            std::string_view key_name) {
  const auto [pattern_mount, key] = SplitPattern(pattern);
  if (pattern_mount != "*" && pattern_mount != mount) return false;
  if (key.ends_with('*')) return key_name.starts_with(key.substr(0, key.size() - 1));
  return key == key_name;
}

VaultTokenRegistry::VaultTokenRegistry(hal::Hsm& hsm, store::MetadataStore& store,
                                       const Clock& clock, VaultTokenOptions options)
    : hsm_(hsm), store_(store), clock_(clock), options_(options) {}

StatusOr<CreatedVaultToken> VaultTokenRegistry::Create(const VaultTokenSpec& spec) {
  KMS_RETURN_IF_ERROR(ValidateSpec(spec, options_));
  // 62^32 tokens and 62^24 accessors: a collision is not expected, but must never overwrite a
  // live token or surface as an error.
  for (int attempt = 0; attempt < 3; ++attempt) {
    KMS_ASSIGN_OR_RETURN(SecretBytes random,
                         RandomString(hsm_, kTokenAlphabet, kVaultTokenRandomLength));
    SecretBytes token = SecretBytes::CopyFrom(AsBytes(kVaultTokenPrefix));
    token.Append(random.ExposeSecret());
    KMS_ASSIGN_OR_RETURN(SecretBytes accessor_random,
                         RandomString(hsm_, kTokenAlphabet, kAccessorRandomLength));
    std::string accessor(kAccessorPrefix);
    accessor += AsStringView(accessor_random.ExposeSecret());  // an accessor is not secret

    const std::string hash = TokenHash(AsStringView(token.ExposeSecret()));
    const std::string hash_hex = HexEncode(AsBytes(hash));
    const std::int64_t now_ms = clock_.NowMs();
    VaultTokenRecord record;
    record.set_record_version(store::kRecordVersion);
    record.set_token_hash(hash);
    record.set_accessor(accessor);
    record.set_display_name(spec.display_name);
    for (const auto& p : spec.key_patterns) {
      KMS_ASSIGN_OR_RETURN(std::string normalized, NormalizePattern(p));
      record.add_key_patterns(std::move(normalized));
    }
    for (const auto& op : spec.operations) record.add_operations(op);
    record.set_administrator(spec.administrator);
    record.set_creation_time_ms(now_ms);
    record.set_ttl_ms(spec.ttl_ms);
    record.set_explicit_max_ttl_ms(spec.explicit_max_ttl_ms);
    record.set_expire_time_ms(spec.ttl_ms == 0 ? 0 : now_ms + spec.ttl_ms);
    record.set_renewable(spec.ttl_ms != 0 && spec.renewable);
    if (spec.policies.empty()) {
      record.add_policies("default");
    } else {
      for (const auto& p : spec.policies) record.add_policies(p);
    }

    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(std::optional<std::string> taken_accessor, ReadAccessor(*txn, accessor));
    auto taken_token = txn->GetMeta(TokenMetaName(hash_hex));
    if (!taken_token.has_value() && taken_token.error().code() != StatusCode::kNotFound) {
      return taken_token.error();
    }
    if (taken_accessor || taken_token.has_value()) continue;
    KMS_RETURN_IF_ERROR(WriteRecord(*txn, record));
    KMS_RETURN_IF_ERROR(txn->PutMeta(AccessorMetaName(accessor), hash_hex));
    KMS_RETURN_IF_ERROR(txn->Commit());
    return CreatedVaultToken{std::move(token), std::move(accessor)};
  }
  return InternalError("vault tokens: could not draw an unused token");
}

StatusOr<VaultTokenInfo> VaultTokenRegistry::Lookup(std::string_view token) {
  if (!HasTokenShape(token)) return Denied();
  const std::string hash_hex = TokenHashHex(token);
  std::optional<VaultTokenRecord> record;
  {
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(record, ReadRecord(*txn, hash_hex));
  }
  if (!record) return Denied();
  const std::int64_t now_ms = clock_.NowMs();
  if (!IsExpired(*record, now_ms)) return ToInfo(*record);
  // Expired: delete it now, re-reading under the write lock (a renewal may have won meanwhile).
  // A failed delete changes nothing for the caller; the next lookup tries again.
  auto txn = store_.Begin(TransactionMode::kReadWrite);
  if (txn.has_value()) {
    auto current = ReadRecord(**txn, hash_hex);
    if (current.has_value() && *current && IsExpired(**current, now_ms)) {
      if (DeleteRecord(**txn, **current).ok()) (void)(*txn)->Commit();
    } else if (current.has_value() && *current) {
      return ToInfo(**current);  // renewed by another writer in between
    }
  }
  return Denied();
}

StatusOr<VaultTokenInfo> VaultTokenRegistry::Authorize(std::string_view token,
                                                       std::string_view operation,
                                                       std::string_view mount,
                                                       std::string_view key_name) {
  KMS_ASSIGN_OR_RETURN(VaultTokenInfo info, Lookup(token));
  KMS_RETURN_IF_ERROR(Permits(info, operation, mount, key_name));
  return info;
}

Status VaultTokenRegistry::Permits(const VaultTokenInfo& info, std::string_view operation,
                                   std::string_view mount, std::string_view key_name) {
  if (info.administrator) return Status::Ok();
  const bool operation_ok =
      std::any_of(info.operations.begin(), info.operations.end(),
                  [&](const std::string& op) { return op == "*" || op == operation; });
  if (!operation_ok) return Denied();
  // Operations without a key (random, hash) need only the operation.
  if (key_name.empty()) return Status::Ok();
  const bool key_ok = std::any_of(
      info.key_patterns.begin(), info.key_patterns.end(),
      [&](const std::string& pattern) { return VaultKeyPatternMatches(pattern, mount, key_name); });
  if (!key_ok) return Denied();
  return Status::Ok();
}

StatusOr<VaultTokenInfo> VaultTokenRegistry::Renew(std::string_view token,
                                                   std::int64_t increment_ms) {
  if (increment_ms < 0) return InvalidArgumentError("renewal increment must not be negative");
  if (!HasTokenShape(token)) return Denied();
  const std::string hash_hex = TokenHashHex(token);
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadRecord(*txn, hash_hex));
  if (!record) return Denied();
  const std::int64_t now_ms = clock_.NowMs();
  if (IsExpired(*record, now_ms)) {
    if (DeleteRecord(*txn, *record).ok()) (void)txn->Commit();
    return Denied();
  }
  if (!record->renewable() || record->ttl_ms() == 0) {
    return InvalidArgumentError("lease is not renewable");
  }
  // Vault: increment 0 asks for the token's own ttl; a larger request is capped at the ttl.
  const std::int64_t grant_ms =
      increment_ms == 0 ? record->ttl_ms() : std::min(increment_ms, record->ttl_ms());
  // The token's maximum lifetime: its explicit max ttl, else the system's max ttl (Vault's
  // max_lease_ttl). Without that bound a renewable token renewed on time would live forever.
  const std::int64_t max_ttl_ms =
      record->explicit_max_ttl_ms() > 0 ? record->explicit_max_ttl_ms() : options_.max_ttl_ms;
  // The bound never takes back what was granted: a token whose lease already runs past it (made
  // under a larger max ttl) may renew up to that lease, and no further.
  const std::int64_t bound_ms =
      std::max(record->creation_time_ms() + max_ttl_ms, record->expire_time_ms());
  const std::int64_t expire_ms = std::min(now_ms + grant_ms, bound_ms);
  record->set_record_version(store::kRecordVersion);
  record->set_expire_time_ms(expire_ms);
  KMS_RETURN_IF_ERROR(WriteRecord(*txn, *record));
  KMS_RETURN_IF_ERROR(txn->Commit());
  return ToInfo(*record);
}

Status VaultTokenRegistry::Revoke(std::string_view token) {
  if (!HasTokenShape(token)) return Denied();
  const std::string hash_hex = TokenHashHex(token);
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadRecord(*txn, hash_hex));
  if (!record) return Denied();
  KMS_RETURN_IF_ERROR(DeleteRecord(*txn, *record));
  KMS_RETURN_IF_ERROR(txn->Commit());
  // An expired token is deleted as well, but answers like an unknown one.
  if (IsExpired(*record, clock_.NowMs())) return Denied();
  return Status::Ok();
}

StatusOr<VaultTokenInfo> VaultTokenRegistry::LookupAccessor(std::string_view accessor) {
  if (!HasAccessorShape(accessor)) return NotFoundError(std::string(kUnknownAccessor));
  std::optional<VaultTokenRecord> record;
  {
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(record, ReadByAccessor(*txn, accessor));
  }
  if (!record) return NotFoundError(std::string(kUnknownAccessor));
  const std::int64_t now_ms = clock_.NowMs();
  if (!IsExpired(*record, now_ms)) return ToInfo(*record);
  auto txn = store_.Begin(TransactionMode::kReadWrite);
  if (txn.has_value()) {
    auto current = ReadByAccessor(**txn, accessor);
    if (current.has_value() && *current && IsExpired(**current, now_ms)) {
      if (DeleteRecord(**txn, **current).ok()) (void)(*txn)->Commit();
    } else if (current.has_value() && *current) {
      return ToInfo(**current);
    }
  }
  return NotFoundError(std::string(kUnknownAccessor));
}

Status VaultTokenRegistry::RevokeAccessor(std::string_view accessor) {
  if (!HasAccessorShape(accessor)) return NotFoundError(std::string(kUnknownAccessor));
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadByAccessor(*txn, accessor));
  if (!record) return NotFoundError(std::string(kUnknownAccessor));
  // An expired token is revoked too (deleted, OK): the operator's intent is met either way.
  KMS_RETURN_IF_ERROR(DeleteRecord(*txn, *record));
  return txn->Commit();
}

StatusOr<store::Page<VaultTokenInfo>> VaultTokenRegistry::List(std::string_view after,
                                                               std::size_t limit) {
  if (limit == 0 || limit > store::kMaxPageLimit) {
    return InvalidArgumentError("token page limit must be 1.." +
                                std::to_string(store::kMaxPageLimit));
  }
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
  const std::string after_name = after.empty() ? std::string() : AccessorMetaName(after);
  KMS_ASSIGN_OR_RETURN(auto entries, txn->ListMeta(kAccessorMetaPrefix, after_name, limit));
  const std::int64_t now_ms = clock_.NowMs();
  store::Page<VaultTokenInfo> page;
  page.items.reserve(entries.items.size());
  for (const auto& [name, hash_hex] : entries.items) {
    const std::string_view accessor = std::string_view(name).substr(kAccessorMetaPrefix.size());
    KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadRecord(*txn, hash_hex));
    if (!record || record->accessor() != accessor) {
      return DataLossError("vault tokens: the accessor " + std::string(accessor) +
                           " names no token record");
    }
    // Expired tokens are not live; a listing (read-only) leaves their deletion to the next lookup.
    if (IsExpired(*record, now_ms)) continue;
    page.items.push_back(ToInfo(*record));
  }
  page.truncated = entries.truncated;
  if (entries.truncated) {
    page.next_marker = entries.next_marker.substr(kAccessorMetaPrefix.size());
  }
  return page;
}

StatusOr<std::size_t> VaultTokenRegistry::BindMountlessPatterns(
    const std::vector<std::string>& mounts) {
  std::vector<std::string> bound;
  for (const std::string& m : mounts) {
    std::string_view mount = m;
    while (!mount.empty() && mount.front() == '/') mount.remove_prefix(1);
    while (!mount.empty() && mount.back() == '/') mount.remove_suffix(1);
    if (!IsMountPath(mount)) return InvalidArgumentError("invalid mount \"" + m + "\"");
    bound.emplace_back(mount);
  }
  if (bound.empty()) return InvalidArgumentError("binding key patterns needs at least one mount");
  auto mountless = [](const VaultTokenRecord& r) {
    return std::any_of(r.key_patterns().begin(), r.key_patterns().end(),
                       [](const std::string& p) { return p.find('/') == std::string::npos; });
  };
  // First the names of the records to rewrite (read-only), then each in its own transaction that
  // reads it again, so a concurrent renewal or revocation is never undone.
  std::vector<std::string> pending;
  std::string after;
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(auto entries,
                         txn->ListMeta(kTokenMetaPrefix, after, store::kMaxPageLimit));
    for (const auto& [name, value] : entries.items) {
      const std::string_view hash_hex = std::string_view(name).substr(kTokenMetaPrefix.size());
      KMS_ASSIGN_OR_RETURN(VaultTokenRecord record, ParseRecord(value, hash_hex));
      if (mountless(record)) pending.emplace_back(hash_hex);
    }
    if (!entries.truncated) break;
    after = entries.next_marker;
  }
  std::size_t rewritten = 0;
  for (const std::string& hash_hex : pending) {
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(std::optional<VaultTokenRecord> record, ReadRecord(*txn, hash_hex));
    if (!record || !mountless(*record)) continue;
    std::vector<std::string> patterns;
    for (const std::string& p : record->key_patterns()) {
      if (p.find('/') != std::string::npos) {
        patterns.push_back(p);
        continue;
      }
      // What the pattern reached when patterns ignored the mount: the same keys on every mount.
      for (const std::string& mount : bound) patterns.push_back(mount + "/" + p);
    }
    record->clear_key_patterns();
    for (auto& p : patterns) record->add_key_patterns(std::move(p));
    record->set_record_version(store::kRecordVersion);
    KMS_RETURN_IF_ERROR(WriteRecord(*txn, *record));
    KMS_RETURN_IF_ERROR(txn->Commit());
    ++rewritten;
  }
  return rewritten;
}

}  // namespace kms::firmware
