#include "firmware/key_service.h"

#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <utility>

#include "base/encoding.h"
#include "firmware/store/metadata_store.h"

namespace kms::firmware {
namespace {

using records::AliasRecord;
using records::IntentRecord;
using records::KeyRecord;
using records::KeyVersionRecord;
using records::TagRecord;
using store::TransactionMode;

// ---- AWS limits (docs/aws-kms-protocol.md "Limits") ---------------------------------------------
constexpr std::size_t kMaxPlaintext = 4096;
constexpr std::size_t kMaxMessage = 4096;
constexpr std::size_t kMaxSignatureOrMac = 6144;
constexpr std::int64_t kMaxNumberOfBytes = 1024;
constexpr std::size_t kMaxDescription = 8192;
constexpr std::size_t kMaxKeyIdArg = 2048;
constexpr std::size_t kMaxAliasName = 256;
constexpr std::size_t kMaxTagKey = 128;
constexpr std::size_t kMaxTagValue = 256;
constexpr std::size_t kMaxTagsPerKey = 50;
constexpr std::size_t kMaxAliasesPerKey = 50;
constexpr std::uint32_t kMaxOnDemandRotations = 25;
// The appliance's own bound on an encryption context: the canonical encoding of keys and values.
// (AWS does not publish one in the model; 8192 matches its other string limits.)
constexpr std::size_t kMaxEncryptionContextBytes = 8192;
constexpr std::size_t kScheduledBatch = 100;

constexpr std::string_view kDryRunMessage =
    "The request would have succeeded, but the DryRun option is set.";

// ---- validation messages ----------------------------------------------------------------------
Status Validation(std::string what) { return InvalidArgumentError(std::move(what)); }

Status ValueTooSmall(std::string_view field, std::int64_t value, std::int64_t min) {
  return Validation("1 validation error detected: Value '" + std::to_string(value) + "' at '" +
                    std::string(field) +
                    "' failed to satisfy constraint: Member must have value greater than or equal to " +
                    std::to_string(min));
}
Status ValueTooLarge(std::string_view field, std::int64_t value, std::int64_t max) {
  return Validation("1 validation error detected: Value '" + std::to_string(value) + "' at '" +
                    std::string(field) +
                    "' failed to satisfy constraint: Member must have value less than or equal to " +
                    std::to_string(max));
}
Status CheckRange(std::string_view field, std::int64_t value, std::int64_t min, std::int64_t max) {
  if (value < min) return ValueTooSmall(field, value, min);
  if (value > max) return ValueTooLarge(field, value, max);
  return Status();
}
// Sensitive members: AWS omits the value from the message.
Status CheckBlobLength(std::string_view field, std::size_t size, std::size_t min, std::size_t max) {
  if (size < min) {
    return Validation("1 validation error detected: Value at '" + std::string(field) +
                      "' failed to satisfy constraint: Member must have length greater than or equal to " +
                      std::to_string(min));
  }
  if (size > max) {
    return Validation("1 validation error detected: Value at '" + std::string(field) +
                      "' failed to satisfy constraint: Member must have length less than or equal to " +
                      std::to_string(max));
  }
  return Status();
}
Status CheckStringLength(std::string_view field, std::string_view value, std::size_t min,
                         std::size_t max) {
  // Lengths are in characters: count UTF-8 code points (bytes that are not continuation bytes).
  std::size_t chars = 0;
  for (char c : value) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  }
  if (chars < min) {
    return Validation("1 validation error detected: Value '" + std::string(value) + "' at '" +
                      std::string(field) +
                      "' failed to satisfy constraint: Member must have length greater than or equal to " +
                      std::to_string(min));
  }
  if (chars > max) {
    return Validation("1 validation error detected: Value at '" + std::string(field) +
                      "' failed to satisfy constraint: Member must have length less than or equal to " +
                      std::to_string(max));
  }
  return Status();
}

Status CheckEncryptionContext(const EncryptionContext& context, std::string_view field) {
  std::size_t total = 0;
  for (const auto& [k, v] : context) {
    if (k.empty()) {
      return Validation("1 validation error detected: Value at '" + std::string(field) +
                        "' failed to satisfy constraint: Map keys must have length greater than or "
                        "equal to 1");
    }
    total += k.size() + v.size();
  }
  if (total > kMaxEncryptionContextBytes) {
    return Validation("1 validation error detected: Value at '" + std::string(field) +
                      "' failed to satisfy constraint: Member must have total length less than or "
                      "equal to " +
                      std::to_string(kMaxEncryptionContextBytes));
  }
  return Status();
}

Status DryRunError() {
  return FailedPreconditionError(std::string(kDryRunMessage), Reason::kDryRunOperation);
}

Status TagError(std::string m) { return InvalidArgumentError(std::move(m), Reason::kTag); }

Status Unsupported(std::string m) {
  return UnimplementedError(std::move(m), Reason::kUnsupportedOperation);
}

// A HAL "mechanism unsupported" is, to a client, an operation this appliance does not support.
Status MapHalError(Status s) {
  if (s.reason() == Reason::kMechanismUnsupported) {
    return Unsupported("The operation is not supported by this key store.");
  }
  return s;
}

// ---- record <-> domain conversions (records.proto enums are the domain enums + 1) -------------------
records::KeySpec ToRecord(KeySpec s) { return static_cast<records::KeySpec>(static_cast<int>(s) + 1); }
records::KeyUsage ToRecord(KeyUsage u) {
  return static_cast<records::KeyUsage>(static_cast<int>(u) + 1);
}
records::HalAlgorithm ToRecord(hal::KeyAlgorithm a) {
  return static_cast<records::HalAlgorithm>(static_cast<int>(a) + 1);
}
records::HalPurpose ToRecord(hal::KeyPurpose p) {
  return static_cast<records::HalPurpose>(static_cast<int>(p) + 1);
}
KeySpec FromRecord(records::KeySpec s) { return static_cast<KeySpec>(static_cast<int>(s) - 1); }
KeyUsage FromRecord(records::KeyUsage u) { return static_cast<KeyUsage>(static_cast<int>(u) - 1); }
hal::KeyAlgorithm FromRecord(records::HalAlgorithm a) {
  return static_cast<hal::KeyAlgorithm>(static_cast<int>(a) - 1);
}
hal::KeyPurpose FromRecord(records::HalPurpose p) {
  return static_cast<hal::KeyPurpose>(static_cast<int>(p) - 1);
}

Status CheckRecord(const KeyRecord& k) {
  if (k.key_spec() < records::KEY_SPEC_SYMMETRIC_DEFAULT || k.key_spec() > records::KEY_SPEC_HMAC_512 ||
      k.key_usage() < records::KEY_USAGE_ENCRYPT_DECRYPT ||
      k.key_usage() > records::KEY_USAGE_GENERATE_VERIFY_MAC || k.current_version() == 0) {
    return DataLossError("key record " + k.key_id() + " is malformed");
  }
  return Status();
}
Status CheckRecord(const KeyVersionRecord& v) {
  if (v.algorithm() < records::HAL_ALGORITHM_AES_256 ||
      v.algorithm() > records::HAL_ALGORITHM_EC_SECP256K1 ||
      v.purpose() < records::HAL_PURPOSE_ENCRYPT_DECRYPT || v.purpose() > records::HAL_PURPOSE_MAC) {
    return DataLossError("key version record " + v.key_id() + " is malformed");
  }
  return Status();
}

// A state this firmware does not know (unset, pending creation, or one a newer firmware wrote) is
// Unavailable: nothing may use or change such a key. Failing closed matters here: reading an
// unknown state as Enabled would hand out a key its writer meant to keep unusable.
KeyState StateOf(const KeyRecord& k) {
  switch (k.state()) {
    case records::KEY_STATE_ENABLED: return KeyState::kEnabled;
    case records::KEY_STATE_DISABLED: return KeyState::kDisabled;
    case records::KEY_STATE_PENDING_DELETION: return KeyState::kPendingDeletion;
    default: return KeyState::kUnavailable;
  }
}

std::string Sha256Hex(ByteView data) {
  std::uint8_t digest[32];
  mbedtls_sha256_ret(data.data(), data.size(), digest, 0);
  return HexEncode(ByteView(digest, sizeof digest));
}

// KeyMaterialId: 64 hex characters naming one backing key version. SHA-256 over the key id, the version
// and the wrapped blob: stable, unique per version, and derived from nothing secret.
std::string KeyMaterialId(std::string_view key_id, std::uint32_t version, ByteView wrapped) {
  Bytes in = ToBytes(key_id);
  in.push_back(static_cast<std::uint8_t>(version >> 24));
  in.push_back(static_cast<std::uint8_t>(version >> 16));
  in.push_back(static_cast<std::uint8_t>(version >> 8));
  in.push_back(static_cast<std::uint8_t>(version));
  in.insert(in.end(), wrapped.begin(), wrapped.end());
  return Sha256Hex(in);
}

// The message digest RAW Sign/Verify computes (mbedTLS: the appliance's one software crypto library,
// docs/architecture.md "Software cryptography"; hashing guards no key).
Bytes Digest(hal::HashAlgorithm h, ByteView message) {
  switch (h) {
    case hal::HashAlgorithm::kSha256: {
      Bytes out(32);
      mbedtls_sha256_ret(message.data(), message.size(), out.data(), 0);
      return out;
    }
    case hal::HashAlgorithm::kSha384: {
      Bytes out(64);
      mbedtls_sha512_ret(message.data(), message.size(), out.data(), 1);
      out.resize(48);
      return out;
    }
    case hal::HashAlgorithm::kSha512: {
      Bytes out(64);
      mbedtls_sha512_ret(message.data(), message.size(), out.data(), 0);
      return out;
    }
    case hal::HashAlgorithm::kSha224: {
      Bytes out(32);
      mbedtls_sha256_ret(message.data(), message.size(), out.data(), 1);
      out.resize(28);
      return out;
    }
    case hal::HashAlgorithm::kSha1:
      break;
  }
  return {};
}

// Markers: the store's sort key, hex-encoded behind a version prefix, so that a marker this service did
// not make is recognisably invalid (InvalidMarkerException).
constexpr std::string_view kMarkerPrefix = "m1.";
std::string EncodeMarker(std::string_view store_key) {
  return std::string(kMarkerPrefix) + HexEncode(AsBytes(store_key));
}
StatusOr<std::string> DecodeMarker(const std::optional<std::string>& marker) {
  if (!marker) return std::string();
  Status invalid = InvalidArgumentError("Invalid marker", Reason::kInvalidMarker);
  if (marker->size() < 1 || marker->size() > 1024) return invalid;
  if (!marker->starts_with(kMarkerPrefix)) return invalid;
  auto decoded = HexDecode(std::string_view(*marker).substr(kMarkerPrefix.size()));
  if (!decoded || decoded->empty()) return invalid;
  return ToString(*decoded);
}

StatusOr<std::size_t> PageLimit(const std::optional<std::int64_t>& limit, std::int64_t max,
                                std::int64_t dflt) {
  if (!limit) return static_cast<std::size_t>(dflt);
  KMS_RETURN_IF_ERROR(CheckRange("limit", *limit, 1, max));
  return static_cast<std::size_t>(*limit);
}

bool IsStale(const Status& s) {
  return s.code() == StatusCode::kUnavailable && s.reason() == Reason::kHandleStale;
}

// Alias names: the model pattern ^[a-zA-Z0-9:/_-]+$ and length 1-256, then AWS's own rules
// (docs/aws-kms-protocol.md "Rules per operation").
Status CheckAliasNameFormat(std::string_view name) {
  KMS_RETURN_IF_ERROR(CheckStringLength("aliasName", name, 1, kMaxAliasName));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
              c == '/' || c == '_' || c == '-';
    if (!ok) {
      return Validation("1 validation error detected: Value '" + std::string(name) +
                        "' at 'aliasName' failed to satisfy constraint: Member must satisfy regular "
                        "expression pattern: ^[a-zA-Z0-9:/_-]+$");
    }
  }
  if (!name.starts_with("alias/") || name.size() == 6 ||
      name.find(':') != std::string_view::npos) {
    return Validation(
        "Alias must start with the prefix \"alias/\". Please see "
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html");
  }
  return Status();
}

Status CheckTags(const std::vector<Tag>& tags) {
  std::vector<std::string_view> seen;
  for (std::size_t i = 0; i < tags.size(); ++i) {
    const Tag& t = tags[i];
    std::string at = "tags." + std::to_string(i + 1) + ".member.";
    KMS_RETURN_IF_ERROR(CheckStringLength(at + "tagKey", t.tag_key, 1, kMaxTagKey));
    KMS_RETURN_IF_ERROR(CheckStringLength(at + "tagValue", t.tag_value, 0, kMaxTagValue));
    if (t.tag_key.starts_with("aws:")) return TagError("Tags beginning with aws: are reserved");
    if (std::find(seen.begin(), seen.end(), t.tag_key) != seen.end()) {
      return TagError("Duplicate tag keys");
    }
    seen.push_back(t.tag_key);
  }
  if (tags.size() > kMaxTagsPerKey) return TagError("Too many tags");
  return Status();
}

// Which KeyId forms an operation accepts (docs/aws-kms-protocol.md "Key identifiers").
enum class IdForms { kAny, kKeyOnly };

struct ParsedArn {
  std::string region;
  std::string account;
  std::string resource;  // "key/<id>" or "alias/<name>"
};
std::optional<ParsedArn> ParseArn(std::string_view arn) {
  // arn:<partition>:kms:<region>:<account>:<resource>
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    std::size_t colon = arn.find(':', start);
    if (colon == std::string_view::npos) return std::nullopt;
    parts.push_back(arn.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(arn.substr(start));
  if (parts[0] != "arn" || parts[1].empty() || parts[2] != "kms") return std::nullopt;
  return ParsedArn{std::string(parts[3]), std::string(parts[4]), std::string(parts[5])};
}

// The encryption algorithms a key advertises (CreateKey, DescribeKey, GetPublicKey) and accepts
// (Encrypt, Decrypt, ReEncrypt): AWS's key spec table less the RSA-OAEP hashes the HSM cannot
// perform (SoftHSM2 2.6 has OAEP with SHA-1 only, docs/softhsm2.md "Mechanisms"). Advertising only
// what works lets a client pick from the list; an algorithm not listed is refused like any other
// incompatible one.
std::vector<EncryptionAlgorithm> SupportedEncryptionAlgorithms(const hal::Capabilities& caps,
                                                               KeySpec spec, KeyUsage usage) {
  std::vector<EncryptionAlgorithm> out = EncryptionAlgorithmsFor(spec, usage);
  std::erase_if(out, [&](EncryptionAlgorithm a) {
    std::optional<hal::HashAlgorithm> hash = OaepHashOf(a);
    return hash && !caps.oaep_hashes.contains(*hash);
  });
  return out;
}

bool AdvertisesEncryptionAlgorithm(const hal::Capabilities& caps, KeySpec spec, KeyUsage usage,
                                   EncryptionAlgorithm algorithm) {
  const std::vector<EncryptionAlgorithm> supported = SupportedEncryptionAlgorithms(caps, spec, usage);
  return std::ranges::find(supported, algorithm) != supported.end();
}

}  // namespace

// ================================================================================================
// Impl: the machinery the operations share.
// ================================================================================================
class KeyService::Impl {
 public:
  explicit Impl(KeyService& s) : s_(s) {}

  // A resolved customer key: its record and its ARN.
  struct Key {
    KeyRecord record;
    std::string arn;
    KeySpec spec() const { return FromRecord(record.key_spec()); }
    KeyUsage usage() const { return FromRecord(record.key_usage()); }
    const std::string& id() const { return record.key_id(); }
  };

  std::string Arn(std::string_view id) const { return s_.KeyArn(id); }

  // Commits `tx`; after a read-write commit every cached key record is dropped, so this process never
  // reads its own writes stale.
  Status CommitWrite(store::Transaction& tx) {
    const bool writes = tx.mode() == TransactionMode::kReadWrite;
    Status s = tx.Commit();
    if (writes) InvalidateRecords();
    return s;
  }

  static Status KeyNotFound(std::string_view arn) {
    return NotFoundError("Key '" + std::string(arn) + "' does not exist");
  }
  static Status InvalidKeyId(std::string_view given) {
    return NotFoundError("Invalid keyId '" + std::string(given) + "'");
  }

  // Looks a key up by bare id; PENDING_CREATION keys do not exist for clients.
  StatusOr<Key> GetById(store::Transaction& tx, const std::string& id) {
    auto rec = tx.GetKey(id);
    if (!rec) {
      if (rec.error().code() == StatusCode::kNotFound) return KeyNotFound(Arn(id));
      return rec.error();
    }
    if (rec->state() == records::KEY_STATE_PENDING_CREATION) return KeyNotFound(Arn(id));
    KMS_RETURN_IF_ERROR(CheckRecord(*rec));
    Key k{std::move(*rec), Arn(id)};
    return k;
  }

  // Resolves any of the four KeyId forms (or only id/ARN) to a key.
  StatusOr<Key> Resolve(store::Transaction& tx, std::string_view given, IdForms forms) {
    if (given.empty()) {
      return Validation(
          "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member must "
          "have length greater than or equal to 1");
    }
    if (given.size() > kMaxKeyIdArg) {
      return Validation(
          "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must "
          "have length less than or equal to 2048");
    }
    std::string alias_name;
    if (given.starts_with("arn:")) {
      auto arn = ParseArn(given);
      if (!arn) return InvalidKeyId(given);
      if (arn->region != s_.config_.region || arn->account != s_.config_.account_id) {
        // Another Region or account: no such key here.
        return NotFoundError("Key '" + std::string(given) + "' does not exist");
      }
      if (arn->resource.starts_with("key/")) {
        std::string id = arn->resource.substr(4);
        auto parsed = ParseKeyId(id);
        if (!parsed) return InvalidKeyId(given);
        return GetById(tx, FormatKeyId(*parsed));
      }
      if (!arn->resource.starts_with("alias/")) return InvalidKeyId(given);
      alias_name = arn->resource;
    } else if (given.starts_with("alias/")) {
      alias_name = std::string(given);
    } else {
      auto parsed = ParseKeyId(given);
      if (!parsed) return InvalidKeyId(given);
      return GetById(tx, FormatKeyId(*parsed));
    }
    if (forms == IdForms::kKeyOnly) return InvalidKeyId(given);
    auto alias = tx.GetAlias(alias_name);
    if (!alias) {
      if (alias.error().code() == StatusCode::kNotFound) {
        return NotFoundError("Alias " + s_.AliasArn(alias_name) + " is not found.");
      }
      return alias.error();
    }
    return GetById(tx, alias->target_key_id());
  }

  // Cryptographic operations by key state (docs/aws-kms-protocol.md "Key states"): Disabled ->
  // DisabledException, PendingDeletion -> KMSInvalidStateException.
  static Status CheckUsable(const Key& k) {
    switch (StateOf(k.record)) {
      case KeyState::kEnabled: return Status();
      case KeyState::kDisabled:
        return FailedPreconditionError(k.arn + " is disabled.", Reason::kKeyDisabled);
      case KeyState::kPendingDeletion: return PendingDeletion(k);
      case KeyState::kUnavailable: return Unavailable(k);
    }
    return Unavailable(k);
  }
  static Status PendingDeletion(const Key& k) {
    return FailedPreconditionError(k.arn + " is pending deletion.", Reason::kKeyInvalidState);
  }
  static Status Unavailable(const Key& k) {
    return FailedPreconditionError(k.arn + " is unavailable.", Reason::kKeyInvalidState);
  }
  // For every change to a key: not while it is pending deletion, never in a state this firmware
  // does not know.
  static Status CheckNotPendingDeletion(const Key& k) {
    switch (StateOf(k.record)) {
      case KeyState::kPendingDeletion: return PendingDeletion(k);
      case KeyState::kUnavailable: return Unavailable(k);
      default: return Status();
    }
  }
  static Status WrongUsage(const Key& k, std::string_view operation) {
    return InvalidArgumentError(k.arn + " key usage is " + std::string(KeyUsageName(k.usage())) +
                                    " which is not valid for " + std::string(operation) + ".",
                                Reason::kInvalidKeyUsage);
  }
  static Status IncompatibleAlgorithm(std::string_view algorithm, const Key& k) {
    return InvalidArgumentError("Algorithm " + std::string(algorithm) +
                                    " is incompatible with key spec " +
                                    std::string(KeySpecName(k.spec())) + ".",
                                Reason::kInvalidKeyUsage);
  }

  // A usable key with the given usage, for a cryptographic operation, resolved in its own snapshot
  // together with its current version.
  struct KeyAndVersion {
    Key key;
    KeyVersionRecord version;
  };
  // A key and its current version, in any state, through the record cache.
  StatusOr<KeyAndVersion> LoadRecords(std::string_view key_id, IdForms forms) {
    // Key-only lookups refuse aliases, so they share the cache only when the argument is no alias.
    const std::string cache_key = (forms == IdForms::kAny ? "k:" : "o:") + std::string(key_id);
    std::optional<KeyAndVersion> kv = CachedRecords(cache_key);
    if (!kv) {
      const std::uint64_t generation = RecordGeneration();
      KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadOnly));
      KMS_ASSIGN_OR_RETURN(Key key, Resolve(*tx, key_id, forms));
      KMS_ASSIGN_OR_RETURN(KeyVersionRecord v,
                           tx->GetKeyVersion(key.id(), key.record.current_version()));
      KMS_RETURN_IF_ERROR(CheckRecord(v));
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
      kv = KeyAndVersion{std::move(key), std::move(v)};
      CacheRecords(cache_key, *kv, generation);
    }
    return std::move(*kv);
  }

  StatusOr<KeyAndVersion> LoadForCrypto(std::string_view key_id, KeyUsage usage,
                                        std::string_view operation) {
    KMS_ASSIGN_OR_RETURN(auto loaded, LoadRecords(key_id, IdForms::kAny));
    std::optional<KeyAndVersion> kv(std::move(loaded));
    KMS_RETURN_IF_ERROR(CheckUsable(kv->key));
    if (kv->key.usage() != usage) return WrongUsage(kv->key, operation);
    return std::move(*kv);
  }

  // ---- key record cache ----
  // Cryptographic calls would otherwise pay a store snapshot per request (two record reads), which
  // costs more than the HSM operation itself (docs/performance.md). Entries live at most
  // `record_cache_ttl_ms` and are dropped on every write this service commits; a change committed by
  // another process sharing the store is seen within the TTL. Errors are never cached.
  std::optional<KeyAndVersion> CachedRecords(const std::string& cache_key) {
    if (s_.config_.record_cache_ttl_ms <= 0) return std::nullopt;
    std::lock_guard lock(records_mu_);
    auto it = records_.find(cache_key);
    if (it == records_.end()) return std::nullopt;
    if (std::chrono::steady_clock::now() - it->second.loaded >
        std::chrono::milliseconds(s_.config_.record_cache_ttl_ms)) {
      records_.erase(it);
      return std::nullopt;
    }
    return it->second.records;
  }
  std::uint64_t RecordGeneration() {
    std::lock_guard lock(records_mu_);
    return record_generation_;
  }
  void CacheRecords(const std::string& cache_key, const KeyAndVersion& kv, std::uint64_t generation) {
    if (s_.config_.record_cache_ttl_ms <= 0) return;
    std::lock_guard lock(records_mu_);
    // Filled from a snapshot older than a write of ours: it may be stale, do not keep it.
    if (generation != record_generation_) return;
    if (records_.size() >= kMaxCachedRecords) records_.clear();
    records_[cache_key] = CachedKey{kv, std::chrono::steady_clock::now()};
  }
  void InvalidateRecords() {
    std::lock_guard lock(records_mu_);
    ++record_generation_;
    records_.clear();
  }

  // ---- HSM handles, through the cache ----
  // Public-key handles share the cache under the version number with the top bit set.
  static constexpr std::uint32_t kPublicSlot = 0x8000'0000u;

  StatusOr<hal::KeyHandle> Handle(const KeyVersionRecord& v, bool public_only) {
    std::uint32_t slot = public_only ? (v.version() | kPublicSlot) : v.version();
    if (auto h = s_.cache_.Get(v.key_id(), slot)) return h;
    hal::KeyHandle h;
    if (public_only) {
      auto r = s_.hsm_.ImportPublicKey(FromRecord(v.algorithm()), FromRecord(v.purpose()),
                                       AsBytes(v.public_key_der()));
      if (!r) return MapHalError(r.error());
      h = std::move(*r);
    } else {
      hal::WrappedKey w;
      w.algorithm = FromRecord(v.algorithm());
      w.purpose = FromRecord(v.purpose());
      w.wrapped = ToBytes(v.wrapped());
      w.public_key_der = ToBytes(v.public_key_der());
      auto r = s_.hsm_.UnwrapKey(w);
      if (!r) return MapHalError(r.error());
      h = std::move(*r);
    }
    s_.cache_.Put(v.key_id(), slot, h);
    return h;
  }

  // Runs `fn(handle)`; a stale handle (device re-initialised) is evicted, reloaded and retried once.
  template <typename F>
  auto WithKey(const KeyVersionRecord& v, bool public_only, F&& fn) -> decltype(fn(hal::KeyHandle{})) {
    std::uint32_t slot = public_only ? (v.version() | kPublicSlot) : v.version();
    KMS_ASSIGN_OR_RETURN(hal::KeyHandle h, Handle(v, public_only));
    auto result = fn(h);
    if (IsStale(StatusOf(result))) {
      s_.cache_.Erase(v.key_id(), slot);
      KMS_ASSIGN_OR_RETURN(h, Handle(v, public_only));
      result = fn(h);
    }
    return result;
  }

  // ---- the GCM invocation bound (docs/gcm-bound.md) ----
  // Takes one invocation of version `v` from this process's durable reservation, reserving a new batch
  // when it is used up. Returns false when the version has reached the bound and must be rotated.
  StatusOr<bool> TakeInvocation(const std::string& key_id, std::uint32_t version) {
    const auto id = std::make_pair(key_id, version);
    {
      std::lock_guard lock(mu_);
      auto it = reservations_.find(id);
      if (it != reservations_.end() && it->second.next <= it->second.end) {
        ++it->second.next;
        return true;
      }
    }
    KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(KeyVersionRecord v, tx->GetKeyVersion(key_id, version));
    const std::uint64_t used = v.invocation_count();
    const std::uint64_t limit = s_.config_.gcm_invocation_limit;
    if (used >= limit) return false;
    const std::uint64_t batch = std::min(std::max<std::uint64_t>(s_.config_.gcm_reservation_batch, 1),
                                         limit - used);
    v.set_invocation_count(used + batch);
    KMS_RETURN_IF_ERROR(tx->UpdateKeyVersion(v));
    KMS_RETURN_IF_ERROR(CommitWrite(*tx));  // durable before any of the batch is used
    std::lock_guard lock(mu_);
    BoundReservations();
    // Invocations used..used+batch-1 (0-based) are now ours; this call takes the first.
    reservations_[id] = Reservation{used + 2, used + batch};
    return true;
  }

  // Keeps the reservation map bounded with many keys. Forgetting a reservation only wastes the rest of
  // its batch (the stored count stays an over-estimate), so clearing is always safe. Caller holds mu_.
  void BoundReservations() {
    if (reservations_.size() >= kMaxReservations) reservations_.clear();
  }

  // A new symmetric version is stored with its first batch already reserved (counted in the same
  // transaction that makes it durable), so its first encryptions cost no extra store write.
  std::uint64_t FirstBatch() const {
    return std::min(std::max<std::uint64_t>(s_.config_.gcm_reservation_batch, 1),
                    s_.config_.gcm_invocation_limit);
  }
  void AdoptFirstBatch(const std::string& key_id, std::uint32_t version, std::uint64_t reserved) {
    std::lock_guard lock(mu_);
    BoundReservations();
    reservations_[std::make_pair(key_id, version)] = Reservation{1, reserved};
  }

  // Replaces the current version in `kv` by `version` (EncryptRequest::key_version), which must exist
  // and not be destroyed.
  Status PinVersion(KeyAndVersion& kv, std::uint32_t version) {
    const std::string cache_key = "v:" + kv.key.id() + ":" + std::to_string(version);
    std::optional<KeyAndVersion> pinned = CachedRecords(cache_key);
    if (!pinned) {
      const std::uint64_t generation = RecordGeneration();
      KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadOnly));
      auto v = tx->GetKeyVersion(kv.key.id(), version);
      if (!v) {
        if (v.error().code() == StatusCode::kNotFound) {
          return Validation("Key version " + std::to_string(version) + " of " + kv.key.arn +
                            " does not exist.");
        }
        return v.error();
      }
      KMS_RETURN_IF_ERROR(CheckRecord(*v));
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
      pinned = KeyAndVersion{kv.key, std::move(*v)};
      CacheRecords(cache_key, *pinned, generation);
    }
    if (pinned->version.state() == records::KEY_VERSION_STATE_DESTROYED) {
      return Validation("Key version " + std::to_string(version) + " of " + kv.key.arn +
                        " is destroyed.");
    }
    kv.version = std::move(pinned->version);
    return Status();
  }

  // AES-GCM under the key's current version, rotating first when the version reached the bound. A
  // `pinned` version (the caller chose it) is never swapped for another: when spent it is refused.
  StatusOr<Bytes> SealSymmetric(KeyAndVersion& kv, ByteView plaintext,
                                const EncryptionContext& context, bool pinned = false) {
    // Each failed attempt means the version was spent and a newer one exists (made by this call or a
    // concurrent one), so every round makes progress; the bound only stops a pathological livelock
    // when a tiny configured limit is shared by many concurrent callers.
    for (int attempt = 0; attempt < 64; ++attempt) {
      KMS_ASSIGN_OR_RETURN(bool ok, TakeInvocation(kv.key.id(), kv.version.version()));
      if (ok) {
        CiphertextBlob blob;
        blob.key_id = *ParseKeyId(kv.key.id());
        blob.key_version = kv.version.version();
        Bytes aad = blob.Aad(context);
        auto sealed = WithKey(kv.version, false, [&](const hal::KeyHandle& h) {
          return s_.hsm_.EncryptAesGcm(h, plaintext, aad);
        });
        if (!sealed) return MapHalError(sealed.error());
        if (sealed->iv.size() != kCiphertextIvSize || sealed->tag.size() != kCiphertextTagSize) {
          return InternalError("HSM returned a malformed GCM result");
        }
        blob.iv = std::move(sealed->iv);
        blob.ciphertext = std::move(sealed->ciphertext);
        blob.tag = std::move(sealed->tag);
        return blob.Serialize();
      }
      if (pinned) {
        return FailedPreconditionError("Key version " + std::to_string(kv.version.version()) +
                                       " of " + kv.key.arn +
                                       " has reached the GCM invocation bound; encrypt with the "
                                       "current version.");
      }
      // SP 800-38D §8.3: this version is spent. Rotate (unless another thread or process already did)
      // and continue with the new current version.
      KMS_RETURN_IF_ERROR(
          Rotate(kv.key.id(), records::ROTATION_TYPE_AUTOMATIC, RotateTrigger::kGcmBound,
                 kv.version.version(), s_.clock_.NowMs()));
      KMS_ASSIGN_OR_RETURN(kv, LoadForCrypto(kv.key.id(), KeyUsage::kEncryptDecrypt, "Encrypt"));
    }
    return UnavailableError("the key could not be rotated past the GCM invocation bound");
  }

  // Decrypts a symmetric blob. Every authentication failure, and every blob that names no existing
  // key version, is the one InvalidCiphertextException status.
  struct Opened {
    Key key;
    std::string key_material_id;
    SecretBytes plaintext;
  };
  StatusOr<Opened> OpenSymmetric(ByteView blob_bytes, const EncryptionContext& context,
                                 const std::optional<Key>& expected) {
    KMS_ASSIGN_OR_RETURN(CiphertextBlob blob, ParseCiphertextBlob(blob_bytes));
    const std::string id = FormatKeyId(blob.key_id);
    if (expected && expected->id() != id) {
      return InvalidArgumentError(
          "The key ID in the request does not identify a CMK that can perform this operation.",
          Reason::kIncorrectKey);
    }
    const std::string cache_key = "v:" + id + ":" + std::to_string(blob.key_version);
    std::optional<KeyAndVersion> kv = CachedRecords(cache_key);
    if (!kv) {
      const std::uint64_t generation = RecordGeneration();
      KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadOnly));
      auto key = GetById(*tx, id);
      if (!key) {
        if (key.error().code() == StatusCode::kNotFound) return InvalidCiphertextError();
        return key.error();
      }
      auto v = tx->GetKeyVersion(id, blob.key_version);
      if (!v) {
        if (v.error().code() == StatusCode::kNotFound) return InvalidCiphertextError();
        return v.error();
      }
      KMS_RETURN_IF_ERROR(CheckRecord(*v));
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
      kv = KeyAndVersion{std::move(*key), std::move(*v)};
      CacheRecords(cache_key, *kv, generation);
    }
    KMS_RETURN_IF_ERROR(CheckUsable(kv->key));
    if (kv->key.spec() != KeySpec::kSymmetricDefault) return InvalidCiphertextError();
    if (kv->version.state() == records::KEY_VERSION_STATE_DESTROYED) return InvalidCiphertextError();
    Bytes aad = blob.Aad(context);
    auto plain = WithKey(kv->version, false, [&](const hal::KeyHandle& h) {
      return s_.hsm_.DecryptAesGcm(h, blob.iv, blob.ciphertext, blob.tag, aad);
    });
    if (!plain) {
      if (plain.error().code() == StatusCode::kInvalidArgument) return InvalidCiphertextError();
      return MapHalError(plain.error());
    }
    return Opened{std::move(kv->key), kv->version.key_material_id(), std::move(*plain)};
  }

  // ---- key material ----
  // Generates a key version inside the HSM and wraps it under the domain key. The session object dies
  // with the handle; nothing persists in the device.
  StatusOr<KeyVersionRecord> MakeVersion(const std::string& key_id, std::uint32_t version, KeySpec spec,
                                         KeyUsage usage, records::RotationType type,
                                         std::int64_t now_ms) {
    auto handle = s_.hsm_.GenerateKey(ToHalAlgorithm(spec), ToHalPurpose(usage));
    if (!handle) return MapHalError(handle.error());
    auto wrapped = s_.hsm_.WrapKey(*handle);
    if (!wrapped) return MapHalError(wrapped.error());
    KeyVersionRecord v;
    v.set_key_id(key_id);
    v.set_version(version);
    v.set_key_material_id(KeyMaterialId(key_id, version, wrapped->wrapped));
    v.set_algorithm(ToRecord(wrapped->algorithm));
    v.set_purpose(ToRecord(wrapped->purpose));
    v.set_wrapped(ToString(wrapped->wrapped));
    v.set_public_key_der(ToString(wrapped->public_key_der));
    v.set_creation_time_ms(now_ms);
    v.set_rotation_type(type);
    v.set_state(records::KEY_VERSION_STATE_CURRENT);
    return v;
  }

  StatusOr<std::string> NewIntentId() {
    auto random = s_.hsm_.GenerateRandom(16);
    if (!random) return MapHalError(random.error());
    return FormatKeyId(KeyIdFromRandom(random->ExposeSecret()));
  }

  // kUnbounded: the Vault door's rotate, outside AWS's on-demand quota.
  enum class RotateTrigger { kOnDemand, kSchedule, kGcmBound, kUnbounded };

  // Adds a version to a key, crash-safely: intent (durable) -> HSM generate + wrap -> one transaction
  // inserting the version, moving `current_version` and deleting the intent. A crash before that
  // transaction leaves only the intent, which Open() removes. `expected_current` (0 = any) guards
  // against double rotation by concurrent schedulers or GCM-bound rotations.
  Status Rotate(const std::string& key_id, records::RotationType type, RotateTrigger trigger,
                std::uint32_t expected_current, std::int64_t now) {
    KMS_ASSIGN_OR_RETURN(std::string intent_id, NewIntentId());
    KeyRecord key;
    {
      KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
      KMS_ASSIGN_OR_RETURN(key, tx->GetKey(key_id));
      if (expected_current != 0 && key.current_version() != expected_current) {
        // Another rotation got there first, and the caller's view of the key is stale: drop the
        // record cache, or a caller that reloads through it (SealSymmetric's GCM-bound loop) gets
        // the spent version back until the entry expires. A stale entry is normal: cached before
        // another process rotated, or by a reader of this one between a rotation's commit and its
        // thread dropping the cache.
        InvalidateRecords();
        return Status();
      }
      IntentRecord intent;
      intent.set_intent_id(intent_id);
      intent.set_kind(records::INTENT_KIND_ROTATE_KEY);
      intent.set_key_id(key_id);
      intent.set_version(key.current_version() + 1);
      intent.set_created_time_ms(now);
      KMS_RETURN_IF_ERROR(tx->InsertIntent(intent));
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
    }
    auto made = MakeVersion(key_id, key.current_version() + 1, FromRecord(key.key_spec()),
                            FromRecord(key.key_usage()), type, now);
    KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
    if (!made) {
      (void)tx->DeleteIntent(intent_id);
      (void)CommitWrite(*tx);
      return made.error();
    }
    auto current = tx->GetKey(key_id);
    if (!current) {
      // Deleted meanwhile: drop the intent, nothing else exists.
      (void)tx->DeleteIntent(intent_id);
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
      return current.error();
    }
    bool superseded = (expected_current != 0 && current->current_version() != expected_current) ||
                      (trigger == RotateTrigger::kSchedule &&
                       (!current->rotation_enabled() || current->next_rotation_time_ms() > now));
    if (superseded) {
      (void)tx->DeleteIntent(intent_id);
      return CommitWrite(*tx);
    }
    const std::uint32_t version = current->current_version() + 1;
    if (version != made->version()) {
      // Another rotation won the race for this number: the material is still fresh, renumber it.
      made->set_version(version);
      made->set_key_material_id(KeyMaterialId(key_id, version, AsBytes(made->wrapped())));
    }
    auto previous = tx->GetKeyVersion(key_id, current->current_version());
    if (previous) {
      previous->set_state(records::KEY_VERSION_STATE_NON_CURRENT);
      KMS_RETURN_IF_ERROR(tx->UpdateKeyVersion(*previous));
    }
    const bool symmetric = current->key_spec() == records::KEY_SPEC_SYMMETRIC_DEFAULT;
    if (symmetric) made->set_invocation_count(FirstBatch());
    KMS_RETURN_IF_ERROR(tx->InsertKeyVersion(*made));
    current->set_current_version(version);
    if (trigger == RotateTrigger::kOnDemand) {
      current->set_on_demand_rotation_count(current->on_demand_rotation_count() + 1);
      current->set_on_demand_rotation_start_time_ms(now);
    }
    if (trigger == RotateTrigger::kSchedule) {
      current->set_next_rotation_time_ms(now + std::int64_t{current->rotation_period_days()} * kMsPerDay);
    }
    KMS_RETURN_IF_ERROR(tx->UpdateKey(*current));
    auto deleted = tx->DeleteIntent(intent_id);
    if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
    KMS_RETURN_IF_ERROR(CommitWrite(*tx));
    if (symmetric) AdoptFirstBatch(key_id, version, made->invocation_count());
    return Status();
  }

  // Destroys a key whose deletion is due: intent -> one transaction deleting the key with every
  // version (the wrapped material), tag and alias. The HSM holds nothing of it but cached session
  // objects, which are dropped.
  Status DestroyKey(const std::string& key_id, std::int64_t now_ms) {
    KMS_ASSIGN_OR_RETURN(std::string intent_id, NewIntentId());
    {
      KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
      KMS_ASSIGN_OR_RETURN(KeyRecord key, tx->GetKey(key_id));
      if (key.state() != records::KEY_STATE_PENDING_DELETION || key.deletion_time_ms() > now_ms) {
        return Status();  // cancelled or rescheduled meanwhile
      }
      IntentRecord intent;
      intent.set_intent_id(intent_id);
      intent.set_kind(records::INTENT_KIND_DELETE_KEY);
      intent.set_key_id(key_id);
      intent.set_created_time_ms(now_ms);
      KMS_RETURN_IF_ERROR(tx->InsertIntent(intent));
      KMS_RETURN_IF_ERROR(CommitWrite(*tx));
    }
    s_.cache_.EraseKey(key_id);
    KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
    Status del = DestroyKeyRecords(*tx, key_id);
    if (!del.ok() && del.code() != StatusCode::kNotFound) return del;
    auto di = tx->DeleteIntent(intent_id);
    if (!di.ok() && di.code() != StatusCode::kNotFound) return di;
    KMS_RETURN_IF_ERROR(CommitWrite(*tx));
    s_.cache_.EraseKey(key_id);
    std::lock_guard lock(mu_);
    std::erase_if(reservations_, [&](const auto& e) { return e.first.first == key_id; });
    return Status();
  }

  // The key quota counts keys with two monotonic store counters (the store has no decrement): keys
  // ever reserved by CreateKey and keys ever deleted, each moved in the transaction that inserts or
  // deletes the key, so `created - deleted` is exact and costs two point reads (a COUNT(*) over the key
  // table would grow with the number of keys).
  static constexpr std::string_view kKeysCreated = "key_service.keys_created";
  static constexpr std::string_view kKeysDeleted = "key_service.keys_deleted";
  static StatusOr<std::uint64_t> LiveKeys(store::Transaction& tx) {
    KMS_ASSIGN_OR_RETURN(std::uint64_t created, tx.GetCounter(kKeysCreated));
    KMS_ASSIGN_OR_RETURN(std::uint64_t deleted, tx.GetCounter(kKeysDeleted));
    return created >= deleted ? created - deleted : 0;
  }
  // Deletes a key and counts it.
  static Status DeleteKeyCounted(store::Transaction& tx, const std::string& key_id) {
    KMS_RETURN_IF_ERROR(tx.DeleteKey(key_id));
    return StatusOf(tx.IncrementCounter(kKeysDeleted, 1));
  }
  // Destroys a key that existed: with it go the records others keep about it (on_destroy).
  Status DestroyKeyRecords(store::Transaction& tx, const std::string& key_id) {
    KMS_RETURN_IF_ERROR(DeleteKeyCounted(tx, key_id));
    if (s_.config_.on_destroy) KMS_RETURN_IF_ERROR(s_.config_.on_destroy(tx, key_id));
    return Status();
  }

  // Startup: finish or undo what a crash interrupted (docs/key-service.md "Crash safety").
  Status Reconcile() {
    KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(auto intents, tx->ListIntents());
    for (const IntentRecord& intent : intents) {
      switch (intent.kind()) {
        case records::INTENT_KIND_CREATE_KEY: {
          // The key was reserved in PENDING_CREATION; its completing transaction (which deletes this
          // intent) never committed. Remove the half-made key.
          auto key = tx->GetKey(intent.key_id());
          if (key && key->state() == records::KEY_STATE_PENDING_CREATION) {
            KMS_RETURN_IF_ERROR(DeleteKeyCounted(*tx, intent.key_id()));
          }
          break;
        }
        case records::INTENT_KIND_ROTATE_KEY:
          // The new version was never inserted (insertion and intent deletion are one transaction):
          // the material existed only in the HSM session, now gone. Nothing to undo.
          break;
        case records::INTENT_KIND_DELETE_KEY: {
          // The deletion was decided durably: complete it.
          auto key = tx->GetKey(intent.key_id());
          if (key && key->state() == records::KEY_STATE_PENDING_DELETION) {
            KMS_RETURN_IF_ERROR(DestroyKeyRecords(*tx, intent.key_id()));
          }
          break;
        }
        default:
          break;
      }
      KMS_RETURN_IF_ERROR(tx->DeleteIntent(intent.intent_id()));
    }
    // A PENDING_CREATION key never exists without its intent (both are written in one transaction), so
    // the intents are all there is to look at: start-up cost does not grow with the number of keys.
    return CommitWrite(*tx);
  }

  KeyMetadata Metadata(const Key& k, const std::string& current_material_id) const {
    KeyMetadata m;
    m.aws_account_id = s_.config_.account_id;
    m.key_id = k.id();
    m.arn = k.arn;
    m.creation_date_ms = k.record.creation_time_ms();
    m.key_state = StateOf(k.record);
    m.enabled = m.key_state == KeyState::kEnabled;
    m.description = k.record.description();
    m.key_usage = k.usage();
    m.key_spec = k.spec();
    if (m.key_state == KeyState::kPendingDeletion) {
      m.deletion_date_ms = k.record.deletion_time_ms();
      m.pending_deletion_window_in_days = k.record.pending_window_days();
    }
    m.encryption_algorithms =
        SupportedEncryptionAlgorithms(s_.hsm_.capabilities(), m.key_spec, m.key_usage);
    m.signing_algorithms = SigningAlgorithmsFor(m.key_spec, m.key_usage);
    m.mac_algorithms = MacAlgorithmsFor(m.key_spec, m.key_usage);
    m.current_key_material_id = current_material_id;
    return m;
  }

  StatusOr<KeyMetadata> MetadataOf(store::Transaction& tx, const Key& k) {
    KMS_ASSIGN_OR_RETURN(KeyVersionRecord v, tx.GetKeyVersion(k.id(), k.record.current_version()));
    return Metadata(k, v.key_material_id());
  }

  // A management write on one key: resolve (id or ARN), let `fn` check and change the record, commit.
  template <typename F>
  Status MutateKey(std::string_view key_id, F&& fn) {
    KMS_ASSIGN_OR_RETURN(auto tx, s_.store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(Key key, Resolve(*tx, key_id, IdForms::kKeyOnly));
    KMS_RETURN_IF_ERROR(fn(key));
    KMS_RETURN_IF_ERROR(tx->UpdateKey(key.record));
    return CommitWrite(*tx);
  }

 private:
  static constexpr std::size_t kMaxCachedRecords = 16384;
  static constexpr std::size_t kMaxReservations = 65536;
  struct CachedKey {
    KeyAndVersion records;
    std::chrono::steady_clock::time_point loaded;
  };
  std::mutex records_mu_;
  std::uint64_t record_generation_ = 0;
  std::map<std::string, CachedKey> records_;

  struct Reservation {
    std::uint64_t next = 0;  // 1-based number of the next invocation to hand out
    std::uint64_t end = 0;   // last 1-based invocation reserved
  };
  KeyService& s_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::uint32_t>, Reservation> reservations_;
};

// ================================================================================================
// KeyService
// ================================================================================================
KeyService::KeyService(hal::Hsm& hsm, store::MetadataStore& store, const Clock& clock,
                       KeyServiceConfig config)
    : hsm_(hsm),
      store_(store),
      clock_(clock),
      config_(std::move(config)),
      cache_(config_.cache_capacity),
      impl_(std::make_unique<Impl>(*this)) {}

KeyService::~KeyService() = default;

StatusOr<std::unique_ptr<KeyService>> KeyService::Open(hal::Hsm& hsm, store::MetadataStore& store,
                                                       const Clock& clock, KeyServiceConfig config) {
  if (config.region.empty() || config.account_id.empty()) {
    return InvalidArgumentError("region and account id must be configured");
  }
  if (config.gcm_invocation_limit == 0 || config.gcm_invocation_limit > (std::uint64_t{1} << 32)) {
    return InvalidArgumentError("gcm_invocation_limit must be in 1..2^32 (NIST SP 800-38D §8.3)");
  }
  std::unique_ptr<KeyService> service(new KeyService(hsm, store, clock, std::move(config)));
  KMS_RETURN_IF_ERROR(service->impl_->Reconcile());
  return service;
}

std::string KeyService::KeyArn(std::string_view key_id) const {
  return "arn:aws:kms:" + config_.region + ":" + config_.account_id + ":key/" + std::string(key_id);
}
std::string KeyService::AliasArn(std::string_view alias_name) const {
  return "arn:aws:kms:" + config_.region + ":" + config_.account_id + ":" + std::string(alias_name);
}

// ---- keys ---------------------------------------------------------------------------------------------
StatusOr<CreateKeyResponse> KeyService::CreateKey(const CreateKeyRequest& request) {
  const KeySpec spec = request.key_spec.value_or(KeySpec::kSymmetricDefault);
  if (!request.key_usage && spec != KeySpec::kSymmetricDefault) {
    return Validation(
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.");
  }
  const KeyUsage usage = request.key_usage.value_or(KeyUsage::kEncryptDecrypt);
  if (!UsageAllowed(spec, usage)) {
    return Validation("KeyUsage " + std::string(KeyUsageName(usage)) +
                      " is not compatible with KeySpec " + std::string(KeySpecName(spec)));
  }
  const std::string description = request.description.value_or("");
  KMS_RETURN_IF_ERROR(CheckStringLength("description", description, 0, kMaxDescription));
  KMS_RETURN_IF_ERROR(CheckTags(request.tags));
  if (!hsm_.capabilities().key_algorithms.contains(ToHalAlgorithm(spec))) {
    return Unsupported("KeySpec " + std::string(KeySpecName(spec)) +
                       " is not supported by this key store.");
  }

  const std::int64_t now = clock_.NowMs();
  auto random = hsm_.GenerateRandom(16);
  if (!random) return MapHalError(random.error());
  const std::string key_id = FormatKeyId(KeyIdFromRandom(random->ExposeSecret()));
  KMS_ASSIGN_OR_RETURN(std::string intent_id, impl_->NewIntentId());

  KeyRecord key;
  key.set_key_id(key_id);
  key.set_key_spec(ToRecord(spec));
  key.set_key_usage(ToRecord(usage));
  key.set_description(description);
  key.set_state(records::KEY_STATE_PENDING_CREATION);
  key.set_creation_time_ms(now);
  key.set_current_version(1);
  key.set_origin(records::ORIGIN_AWS_KMS);

  // 1. Intent and reserved id, durably, before any HSM work.
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
    KMS_ASSIGN_OR_RETURN(std::uint64_t count, Impl::LiveKeys(*tx));
    if (count >= config_.max_keys) {
      return ResourceExhaustedError("The request was rejected because a quota was exceeded: at most " +
                                        std::to_string(config_.max_keys) + " keys.",
                                    Reason::kLimitExceeded);
    }
    IntentRecord intent;
    intent.set_intent_id(intent_id);
    intent.set_kind(records::INTENT_KIND_CREATE_KEY);
    intent.set_key_id(key_id);
    intent.set_version(1);
    intent.set_created_time_ms(now);
    KMS_RETURN_IF_ERROR(tx->InsertIntent(intent));
    KMS_RETURN_IF_ERROR(tx->InsertKey(key));
    KMS_RETURN_IF_ERROR(StatusOf(tx->IncrementCounter(Impl::kKeysCreated, 1)));
    KMS_RETURN_IF_ERROR(impl_->CommitWrite(*tx));
  }
  // 2. HSM work: generate and wrap version 1.
  auto version = impl_->MakeVersion(key_id, 1, spec, usage, records::ROTATION_TYPE_INITIAL, now);
  if (!version) {
    auto tx = store_.Begin(TransactionMode::kReadWrite);
    if (tx) {
      (void)Impl::DeleteKeyCounted(**tx, key_id);
      (void)(*tx)->DeleteIntent(intent_id);
      (void)impl_->CommitWrite(**tx);
    }
    return version.error();
  }
  // 3. Activate: version, tags, state and intent removal in one durable transaction.
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
    if (spec == KeySpec::kSymmetricDefault) version->set_invocation_count(impl_->FirstBatch());
    KMS_RETURN_IF_ERROR(tx->InsertKeyVersion(*version));
    if (request.attach) KMS_RETURN_IF_ERROR(request.attach(*tx, key_id));
    for (const Tag& t : request.tags) {
      TagRecord tag;
      tag.set_key_id(key_id);
      tag.set_tag_key(t.tag_key);
      tag.set_tag_value(t.tag_value);
      KMS_RETURN_IF_ERROR(tx->PutTag(tag));
    }
    key.set_state(records::KEY_STATE_ENABLED);
    KMS_RETURN_IF_ERROR(tx->UpdateKey(key));
    KMS_RETURN_IF_ERROR(tx->DeleteIntent(intent_id));
    KMS_RETURN_IF_ERROR(impl_->CommitWrite(*tx));
  }
  if (spec == KeySpec::kSymmetricDefault) {
    impl_->AdoptFirstBatch(key_id, 1, version->invocation_count());
  }
  Impl::Key k{key, KeyArn(key_id)};
  return CreateKeyResponse{impl_->Metadata(k, version->key_material_id())};
}

StatusOr<KeyIdentity> KeyService::IdentifyKey(std::string_view key_id, bool allow_alias) {
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadRecords(key_id, allow_alias ? IdForms::kAny
                                                                       : IdForms::kKeyOnly));
  return KeyIdentity{kv.key.id(), kv.key.arn, kv.key.spec(), kv.key.usage(), StateOf(kv.key.record)};
}

StatusOr<DescribeKeyResponse> KeyService::DescribeKey(const DescribeKeyRequest& request) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kAny));
  KMS_ASSIGN_OR_RETURN(KeyMetadata m, impl_->MetadataOf(*tx, key));
  return DescribeKeyResponse{std::move(m)};
}

StatusOr<ListKeysResponse> KeyService::ListKeys(const ListKeysRequest& request) {
  KMS_ASSIGN_OR_RETURN(std::size_t limit, PageLimit(request.limit, 1000, 100));
  KMS_ASSIGN_OR_RETURN(std::string after, DecodeMarker(request.marker));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(auto page, tx->ListKeys(after, limit));
  ListKeysResponse out;
  for (const KeyRecord& k : page.items) {
    if (k.state() == records::KEY_STATE_PENDING_CREATION) continue;
    out.keys.push_back(KeyListEntry{k.key_id(), KeyArn(k.key_id())});
  }
  out.truncated = page.truncated;
  if (page.truncated) out.next_marker = EncodeMarker(page.next_marker);
  return out;
}

Status KeyService::UpdateKeyDescription(const UpdateKeyDescriptionRequest& request) {
  KMS_RETURN_IF_ERROR(CheckStringLength("description", request.description, 0, kMaxDescription));
  return impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
    key.record.set_description(request.description);
    return Status();
  });
}

Status KeyService::EnableKey(const EnableKeyRequest& request) {
  return impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
    key.record.set_state(records::KEY_STATE_ENABLED);
    return Status();
  });
}

Status KeyService::DisableKey(const DisableKeyRequest& request) {
  return impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
    key.record.set_state(records::KEY_STATE_DISABLED);
    return Status();
  });
}

StatusOr<ScheduleKeyDeletionResponse> KeyService::ScheduleKeyDeletion(
    const ScheduleKeyDeletionRequest& request) {
  const std::int64_t days = request.pending_window_in_days.value_or(30);
  // The model allows 1-365; AWS enforces 7-30 (docs/aws-kms-protocol.md "Limits").
  KMS_RETURN_IF_ERROR(CheckRange("pendingWindowInDays", days, 7, 30));
  ScheduleKeyDeletionResponse out;
  Status mutated = impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
    const std::int64_t when = clock_.NowMs() + days * kMsPerDay;
    key.record.set_state(records::KEY_STATE_PENDING_DELETION);
    key.record.set_deletion_time_ms(when);
    key.record.set_pending_window_days(static_cast<std::uint32_t>(days));
    out.key_id = key.arn;
    out.deletion_date_ms = when;
    out.key_state = KeyState::kPendingDeletion;
    out.pending_window_in_days = static_cast<std::uint32_t>(days);
    return Status();
  });
  KMS_RETURN_IF_ERROR(mutated);
  return out;
}

StatusOr<CancelKeyDeletionResponse> KeyService::CancelKeyDeletion(
    const CancelKeyDeletionRequest& request) {
  CancelKeyDeletionResponse out;
  Status mutated = impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    if (StateOf(key.record) != KeyState::kPendingDeletion) {
      return FailedPreconditionError(key.arn + " is not pending deletion.", Reason::kKeyInvalidState);
    }
    // As AWS: a cancelled deletion leaves the key Disabled, never straight back to Enabled.
    key.record.set_state(records::KEY_STATE_DISABLED);
    key.record.set_deletion_time_ms(0);
    key.record.set_pending_window_days(0);
    out.key_id = key.arn;
    return Status();
  });
  KMS_RETURN_IF_ERROR(mutated);
  return out;
}

// ---- encryption ---------------------------------------------------------------------------------------
StatusOr<EncryptResponse> KeyService::Encrypt(const EncryptRequest& request) {
  KMS_RETURN_IF_ERROR(CheckBlobLength("plaintext", request.plaintext.size(), 1, kMaxPlaintext));
  KMS_RETURN_IF_ERROR(CheckEncryptionContext(request.encryption_context, "encryptionContext"));
  const EncryptionAlgorithm algorithm =
      request.encryption_algorithm.value_or(EncryptionAlgorithm::kSymmetricDefault);
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kEncryptDecrypt,
                                                     "Encrypt"));
  EncryptResponse out;
  out.key_id = kv.key.arn;
  out.encryption_algorithm = algorithm;
  if (kv.key.spec() == KeySpec::kSymmetricDefault) {
    if (algorithm != EncryptionAlgorithm::kSymmetricDefault) {
      return Impl::IncompatibleAlgorithm(EncryptionAlgorithmName(algorithm), kv.key);
    }
    if (request.key_version) KMS_RETURN_IF_ERROR(impl_->PinVersion(kv, *request.key_version));
    if (request.dry_run) return DryRunError();
    KMS_ASSIGN_OR_RETURN(out.ciphertext_blob,
                         impl_->SealSymmetric(kv, request.plaintext.ExposeSecret(),
                                              request.encryption_context,
                                              request.key_version.has_value()));
    out.key_id = kv.key.arn;
    return out;
  }
  // RSA-OAEP (docs/aws-kms-protocol.md "Rules per operation"): the algorithm is required, no
  // encryption context, size bounded. RSA keys never rotate, so a pinned version can only be the
  // current one.
  if (request.key_version && *request.key_version != kv.version.version()) {
    return Validation("Key version " + std::to_string(*request.key_version) + " of " + kv.key.arn +
                      " does not exist.");
  }
  auto hash = OaepHashOf(algorithm);
  if (!hash || !AdvertisesEncryptionAlgorithm(hsm_.capabilities(), kv.key.spec(), kv.key.usage(),
                                              algorithm)) {
    return Impl::IncompatibleAlgorithm(EncryptionAlgorithmName(algorithm), kv.key);
  }
  if (!request.encryption_context.empty()) {
    return Validation("EncryptionContext is not supported with asymmetric KMS keys.");
  }
  const std::size_t max = MaxRsaOaepPlaintext(kv.key.spec(), algorithm);
  if (request.plaintext.size() > max) {
    return Validation("Algorithm " + std::string(EncryptionAlgorithmName(algorithm)) + " and key spec " +
                      std::string(KeySpecName(kv.key.spec())) + " cannot encrypt data larger than " +
                      std::to_string(max) + " bytes.");
  }
  if (request.dry_run) return DryRunError();
  auto ct = impl_->WithKey(kv.version, true, [&](const hal::KeyHandle& h) {
    return hsm_.EncryptRsaOaep(h, *hash, request.plaintext.ExposeSecret());
  });
  if (!ct) return MapHalError(ct.error());
  out.ciphertext_blob = std::move(*ct);
  return out;
}

StatusOr<DecryptResponse> KeyService::Decrypt(const DecryptRequest& request) {
  KMS_RETURN_IF_ERROR(
      CheckBlobLength("ciphertextBlob", request.ciphertext_blob.size(), 1, kMaxCiphertextBlobSize));
  KMS_RETURN_IF_ERROR(CheckEncryptionContext(request.encryption_context, "encryptionContext"));
  std::optional<Impl::Key> named;
  if (request.key_id) {
    // Through the record cache, as every other cryptographic call: the AWS door names the key it
    // authorized on every Decrypt, so a store snapshot here would be paid on every request
    // (docs/performance.md), and would read newer records than the decision did.
    KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadRecords(*request.key_id, IdForms::kAny));
    named = std::move(kv.key);
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(*named));
    if (named->usage() != KeyUsage::kEncryptDecrypt) return Impl::WrongUsage(*named, "Decrypt");
    if (named->spec() != KeySpec::kSymmetricDefault) {
      // RSA-OAEP ciphertext: KeyId and EncryptionAlgorithm are required (docs/aws-kms-protocol.md
      // "Rules per operation").
      const EncryptionAlgorithm algorithm =
          request.encryption_algorithm.value_or(EncryptionAlgorithm::kSymmetricDefault);
      auto hash = OaepHashOf(algorithm);
      if (!hash || !AdvertisesEncryptionAlgorithm(hsm_.capabilities(), named->spec(),
                                                  named->usage(), algorithm)) {
        return Impl::IncompatibleAlgorithm(EncryptionAlgorithmName(algorithm), *named);
      }
      if (!request.encryption_context.empty()) {
        return Validation("EncryptionContext is not supported with asymmetric KMS keys.");
      }
      const KeyVersionRecord& v = kv.version;  // the current version, checked by LoadRecords
      if (request.dry_run) return DryRunError();
      auto plain = impl_->WithKey(v, false, [&](const hal::KeyHandle& h) {
        return hsm_.DecryptRsaOaep(h, *hash, request.ciphertext_blob);
      });
      if (!plain) {
        if (plain.error().code() == StatusCode::kInvalidArgument) return InvalidCiphertextError();
        return MapHalError(plain.error());
      }
      DecryptResponse out;
      out.key_id = named->arn;
      out.plaintext = std::move(*plain);
      out.encryption_algorithm = algorithm;
      out.key_material_id = v.key_material_id();
      return out;
    }
  }
  if (request.encryption_algorithm &&
      *request.encryption_algorithm != EncryptionAlgorithm::kSymmetricDefault) {
    return InvalidCiphertextError();
  }
  KMS_ASSIGN_OR_RETURN(auto opened, impl_->OpenSymmetric(request.ciphertext_blob,
                                                         request.encryption_context, named));
  if (request.dry_run) return DryRunError();
  DecryptResponse out;
  out.key_id = opened.key.arn;
  out.plaintext = std::move(opened.plaintext);
  out.encryption_algorithm = EncryptionAlgorithm::kSymmetricDefault;
  out.key_material_id = opened.key_material_id;
  return out;
}

StatusOr<ReEncryptResponse> KeyService::ReEncrypt(const ReEncryptRequest& request) {
  KMS_RETURN_IF_ERROR(CheckEncryptionContext(request.destination_encryption_context,
                                             "destinationEncryptionContext"));
  // Decrypt with the source (every Decrypt rule applies), then Encrypt under the destination.
  DecryptRequest source;
  source.ciphertext_blob = request.ciphertext_blob;
  source.encryption_context = request.source_encryption_context;
  source.key_id = request.source_key_id;
  source.encryption_algorithm = request.source_encryption_algorithm;
  // The destination is checked before any decryption so that a bad destination costs no HSM work.
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(Impl::Key dest, impl_->Resolve(*tx, request.destination_key_id, IdForms::kAny));
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(dest));
    if (dest.usage() != KeyUsage::kEncryptDecrypt) return Impl::WrongUsage(dest, "ReEncrypt");
  }
  KMS_ASSIGN_OR_RETURN(DecryptResponse plain, Decrypt(source));
  EncryptRequest dest;
  dest.key_id = request.destination_key_id;
  dest.plaintext = std::move(plain.plaintext);
  dest.encryption_context = request.destination_encryption_context;
  dest.encryption_algorithm = request.destination_encryption_algorithm;
  dest.dry_run = request.dry_run;
  KMS_ASSIGN_OR_RETURN(EncryptResponse enc, Encrypt(dest));
  ReEncryptResponse out;
  out.ciphertext_blob = std::move(enc.ciphertext_blob);
  out.source_key_id = plain.key_id;
  out.key_id = enc.key_id;
  out.source_encryption_algorithm = plain.encryption_algorithm;
  out.destination_encryption_algorithm = enc.encryption_algorithm;
  return out;
}

// ---- data keys ----------------------------------------------------------------------------------------
namespace {
StatusOr<std::size_t> DataKeySize(const GenerateDataKeyRequest& request) {
  if (request.number_of_bytes.has_value() == request.key_spec.has_value()) {
    return Validation("Please specify either number of bytes or key spec.");
  }
  if (request.key_spec) return DataKeySpecBytes(*request.key_spec);
  KMS_RETURN_IF_ERROR(CheckRange("numberOfBytes", *request.number_of_bytes, 1, kMaxNumberOfBytes));
  return static_cast<std::size_t>(*request.number_of_bytes);
}
}  // namespace

StatusOr<GenerateDataKeyResponse> KeyService::MakeDataKey(const GenerateDataKeyRequest& request,
                                                          std::string_view operation) {
  KMS_ASSIGN_OR_RETURN(std::size_t size, DataKeySize(request));
  KMS_RETURN_IF_ERROR(CheckEncryptionContext(request.encryption_context, "encryptionContext"));
  KMS_ASSIGN_OR_RETURN(auto kv,
                       impl_->LoadForCrypto(request.key_id, KeyUsage::kEncryptDecrypt, operation));
  if (kv.key.spec() != KeySpec::kSymmetricDefault) return Impl::WrongUsage(kv.key, operation);
  if (request.key_version) KMS_RETURN_IF_ERROR(impl_->PinVersion(kv, *request.key_version));
  if (request.dry_run) return DryRunError();
  auto data_key = hsm_.GenerateRandom(size);
  if (!data_key) return MapHalError(data_key.error());
  GenerateDataKeyResponse out;
  KMS_ASSIGN_OR_RETURN(out.ciphertext_blob,
                       impl_->SealSymmetric(kv, data_key->ExposeSecret(), request.encryption_context,
                                            request.key_version.has_value()));
  out.plaintext = std::move(*data_key);
  out.key_id = kv.key.arn;
  out.key_material_id = kv.version.key_material_id();
  return out;
}

StatusOr<GenerateDataKeyResponse> KeyService::GenerateDataKey(const GenerateDataKeyRequest& request) {
  return MakeDataKey(request, "GenerateDataKey");
}

StatusOr<GenerateDataKeyWithoutPlaintextResponse> KeyService::GenerateDataKeyWithoutPlaintext(
    const GenerateDataKeyRequest& request) {
  // The plaintext key never leaves: SecretBytes wipes it when `made` goes out of scope.
  KMS_ASSIGN_OR_RETURN(GenerateDataKeyResponse made,
                       MakeDataKey(request, "GenerateDataKeyWithoutPlaintext"));
  GenerateDataKeyWithoutPlaintextResponse out;
  out.ciphertext_blob = std::move(made.ciphertext_blob);
  out.key_id = std::move(made.key_id);
  out.key_material_id = std::move(made.key_material_id);
  return out;
}

namespace {
struct PairResult {
  Bytes private_key_ciphertext_blob;
  SecretBytes private_key_plaintext;
  Bytes public_key;
  std::string key_id;
};
}  // namespace

StatusOr<GenerateDataKeyPairResponse> KeyService::GenerateDataKeyPair(
    const GenerateDataKeyPairRequest& request) {
  KMS_RETURN_IF_ERROR(CheckEncryptionContext(request.encryption_context, "encryptionContext"));
  if (!IsAsymmetric(request.key_pair_spec)) {
    return Validation("1 validation error detected: Value '" +
                      std::string(KeySpecName(request.key_pair_spec)) +
                      "' at 'keyPairSpec' failed to satisfy constraint: Member must satisfy enum "
                      "value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, "
                      "ECC_NIST_P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, SM2]");
  }
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kEncryptDecrypt,
                                                     "GenerateDataKeyPair"));
  if (kv.key.spec() != KeySpec::kSymmetricDefault) {
    return Impl::WrongUsage(kv.key, "GenerateDataKeyPair");
  }
  if (request.dry_run) return DryRunError();
  auto pair = hsm_.GenerateExportableKeyPair(ToHalAlgorithm(request.key_pair_spec));
  if (!pair) return MapHalError(pair.error());
  GenerateDataKeyPairResponse out;
  KMS_ASSIGN_OR_RETURN(out.private_key_ciphertext_blob,
                       impl_->SealSymmetric(kv, pair->private_key_pkcs8.ExposeSecret(),
                                            request.encryption_context));
  out.private_key_plaintext = std::move(pair->private_key_pkcs8);
  out.public_key = std::move(pair->public_key_der);
  out.key_id = kv.key.arn;
  out.key_pair_spec = request.key_pair_spec;
  return out;
}

StatusOr<GenerateDataKeyPairWithoutPlaintextResponse> KeyService::GenerateDataKeyPairWithoutPlaintext(
    const GenerateDataKeyPairRequest& request) {
  KMS_ASSIGN_OR_RETURN(GenerateDataKeyPairResponse full, GenerateDataKeyPair(request));
  GenerateDataKeyPairWithoutPlaintextResponse out;
  out.private_key_ciphertext_blob = std::move(full.private_key_ciphertext_blob);
  out.public_key = std::move(full.public_key);
  out.key_id = std::move(full.key_id);
  out.key_pair_spec = full.key_pair_spec;
  return out;  // full.private_key_plaintext wipes itself here
}

// ---- signatures ------------------------------------------------------------------------------------------
namespace {
// The digest a Sign/Verify request signs: RAW is hashed here, DIGEST must be exactly the hash's size.
StatusOr<Bytes> SigningDigest(const SecretBytes& message, MessageType type,
                              SigningAlgorithm algorithm) {
  const hal::HashAlgorithm hash = hal::DigestOf(ToHalSignature(algorithm));
  if (type == MessageType::kDigest) {
    if (message.size() != hal::DigestSize(hash)) {
      return Validation("Digest is invalid length for algorithm " +
                        std::string(SigningAlgorithmName(algorithm)) + ".");
    }
    return Bytes(message.ExposeSecret().begin(), message.ExposeSecret().end());
  }
  return Digest(hash, message.ExposeSecret());
}
}  // namespace

StatusOr<SignResponse> KeyService::Sign(const SignRequest& request) {
  KMS_RETURN_IF_ERROR(CheckBlobLength("message", request.message.size(), 1, kMaxMessage));
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kSignVerify, "Sign"));
  auto allowed = SigningAlgorithmsFor(kv.key.spec(), kv.key.usage());
  if (std::find(allowed.begin(), allowed.end(), request.signing_algorithm) == allowed.end()) {
    return Impl::IncompatibleAlgorithm(SigningAlgorithmName(request.signing_algorithm), kv.key);
  }
  KMS_ASSIGN_OR_RETURN(Bytes digest,
                       SigningDigest(request.message, request.message_type, request.signing_algorithm));
  if (request.dry_run) return DryRunError();
  auto sig = impl_->WithKey(kv.version, false, [&](const hal::KeyHandle& h) {
    return hsm_.SignDigest(h, ToHalSignature(request.signing_algorithm), digest);
  });
  if (!sig) return MapHalError(sig.error());
  return SignResponse{kv.key.arn, std::move(*sig), request.signing_algorithm};
}

StatusOr<VerifyResponse> KeyService::Verify(const VerifyRequest& request) {
  KMS_RETURN_IF_ERROR(CheckBlobLength("message", request.message.size(), 1, kMaxMessage));
  KMS_RETURN_IF_ERROR(CheckBlobLength("signature", request.signature.size(), 1, kMaxSignatureOrMac));
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kSignVerify, "Verify"));
  auto allowed = SigningAlgorithmsFor(kv.key.spec(), kv.key.usage());
  if (std::find(allowed.begin(), allowed.end(), request.signing_algorithm) == allowed.end()) {
    return Impl::IncompatibleAlgorithm(SigningAlgorithmName(request.signing_algorithm), kv.key);
  }
  KMS_ASSIGN_OR_RETURN(Bytes digest,
                       SigningDigest(request.message, request.message_type, request.signing_algorithm));
  if (request.dry_run) return DryRunError();
  Status st = impl_->WithKey(kv.version, true, [&](const hal::KeyHandle& h) {
    return hsm_.VerifyDigest(h, ToHalSignature(request.signing_algorithm), digest, request.signature);
  });
  if (!st.ok()) {
    // As AWS: a wrong signature is KMSInvalidSignatureException with an empty message.
    if (st.code() == StatusCode::kInvalidArgument) {
      return InvalidArgumentError("", Reason::kInvalidSignature);
    }
    return MapHalError(st);
  }
  return VerifyResponse{kv.key.arn, true, request.signing_algorithm};
}

StatusOr<GetPublicKeyResponse> KeyService::GetPublicKey(const GetPublicKeyRequest& request) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kAny));
  KMS_RETURN_IF_ERROR(Impl::CheckUsable(key));
  if (!IsAsymmetric(key.spec())) {
    return Unsupported(key.arn + " key spec " + std::string(KeySpecName(key.spec())) +
                       " has no public key.");
  }
  KMS_ASSIGN_OR_RETURN(KeyVersionRecord v, tx->GetKeyVersion(key.id(), key.record.current_version()));
  GetPublicKeyResponse out;
  out.key_id = key.arn;
  out.public_key = ToBytes(v.public_key_der());
  out.key_spec = key.spec();
  out.key_usage = key.usage();
  out.encryption_algorithms =
      SupportedEncryptionAlgorithms(hsm_.capabilities(), key.spec(), key.usage());
  out.signing_algorithms = SigningAlgorithmsFor(key.spec(), key.usage());
  return out;
}

// ---- MACs ----------------------------------------------------------------------------------------------------
StatusOr<GenerateMacResponse> KeyService::GenerateMac(const GenerateMacRequest& request) {
  KMS_RETURN_IF_ERROR(CheckBlobLength("message", request.message.size(), 1, kMaxMessage));
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kGenerateVerifyMac,
                                                     "GenerateMac"));
  if (MacAlgorithmOf(kv.key.spec()) != request.mac_algorithm) {
    return Impl::IncompatibleAlgorithm(MacAlgorithmName(request.mac_algorithm), kv.key);
  }
  if (request.dry_run) return DryRunError();
  auto mac = impl_->WithKey(kv.version, false, [&](const hal::KeyHandle& h) {
    return hsm_.ComputeMac(h, request.message.ExposeSecret());
  });
  if (!mac) return MapHalError(mac.error());
  return GenerateMacResponse{std::move(*mac), request.mac_algorithm, kv.key.arn};
}

StatusOr<VerifyMacResponse> KeyService::VerifyMac(const VerifyMacRequest& request) {
  KMS_RETURN_IF_ERROR(CheckBlobLength("message", request.message.size(), 1, kMaxMessage));
  KMS_RETURN_IF_ERROR(CheckBlobLength("mac", request.mac.size(), 1, kMaxSignatureOrMac));
  KMS_ASSIGN_OR_RETURN(auto kv, impl_->LoadForCrypto(request.key_id, KeyUsage::kGenerateVerifyMac,
                                                     "VerifyMac"));
  if (MacAlgorithmOf(kv.key.spec()) != request.mac_algorithm) {
    return Impl::IncompatibleAlgorithm(MacAlgorithmName(request.mac_algorithm), kv.key);
  }
  if (request.dry_run) return DryRunError();
  Status st = impl_->WithKey(kv.version, false, [&](const hal::KeyHandle& h) {
    return hsm_.VerifyMac(h, request.message.ExposeSecret(), request.mac);
  });
  if (!st.ok()) {
    if (st.code() == StatusCode::kInvalidArgument) return InvalidArgumentError("", Reason::kInvalidMac);
    return MapHalError(st);
  }
  return VerifyMacResponse{kv.key.arn, true, request.mac_algorithm};
}

StatusOr<GenerateRandomResponse> KeyService::GenerateRandom(const GenerateRandomRequest& request) {
  if (!request.number_of_bytes) return Validation("NumberOfBytes is required.");
  KMS_RETURN_IF_ERROR(CheckRange("numberOfBytes", *request.number_of_bytes, 1, kMaxNumberOfBytes));
  auto random = hsm_.GenerateRandom(static_cast<std::size_t>(*request.number_of_bytes));
  if (!random) return MapHalError(random.error());
  return GenerateRandomResponse{std::move(*random)};
}

// ---- aliases ---------------------------------------------------------------------------------------------------
namespace {
// Alias targets are key ids or key ARNs, never aliases (docs/aws-kms-protocol.md "Rules per
// operation").
Status CheckAliasTarget(std::string_view target) {
  if (target.starts_with("alias/") ||
      (target.starts_with("arn:") && target.find(":alias/") != std::string_view::npos)) {
    return Validation("Aliases must refer to keys. Not aliases");
  }
  return Status();
}
Status CheckAliasWritable(std::string_view name) {
  // alias/aws/ is reserved for AWS managed keys.
  if (name.starts_with("alias/aws/")) {
    return Validation("Cannot create or modify an alias with the reserved prefix alias/aws/");
  }
  return Status();
}
}  // namespace

Status KeyService::CheckAliasName(std::string_view alias_name, bool writable) {
  KMS_RETURN_IF_ERROR(CheckAliasNameFormat(alias_name));
  if (writable) KMS_RETURN_IF_ERROR(CheckAliasWritable(alias_name));
  return Status();
}

namespace {
// The alias moved between the caller's authorization and this write.
Status AliasMoved(std::string_view alias_arn) {
  return AbortedError("Alias " + std::string(alias_arn) +
                      " changed while the request was being authorized; retry the request.");
}
}  // namespace

Status KeyService::CreateAlias(const CreateAliasRequest& request) {
  KMS_RETURN_IF_ERROR(CheckAliasName(request.alias_name, /*writable=*/true));
  KMS_RETURN_IF_ERROR(CheckAliasTarget(request.target_key_id));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.target_key_id, IdForms::kKeyOnly));
  KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
  auto existing = tx->GetAlias(request.alias_name);
  if (existing) {
    return AlreadyExistsError("An alias with the name " + AliasArn(request.alias_name) +
                              " already exists");
  }
  if (existing.error().code() != StatusCode::kNotFound) return existing.error();
  KMS_ASSIGN_OR_RETURN(auto mine, tx->ListAliasesForKey(key.id(), "", kMaxAliasesPerKey));
  if (mine.items.size() >= kMaxAliasesPerKey) {
    return ResourceExhaustedError("The request was rejected because a quota was exceeded: at most 50 "
                                  "aliases per key.",
                                  Reason::kLimitExceeded);
  }
  const std::int64_t now = clock_.NowMs();
  AliasRecord alias;
  alias.set_alias_name(request.alias_name);
  alias.set_target_key_id(key.id());
  alias.set_creation_time_ms(now);
  alias.set_last_updated_time_ms(now);
  Status inserted = tx->InsertAlias(alias);
  if (inserted.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("An alias with the name " + AliasArn(request.alias_name) +
                              " already exists");
  }
  KMS_RETURN_IF_ERROR(inserted);
  return impl_->CommitWrite(*tx);
}

Status KeyService::UpdateAlias(const UpdateAliasRequest& request) {
  KMS_RETURN_IF_ERROR(CheckAliasName(request.alias_name, /*writable=*/true));
  KMS_RETURN_IF_ERROR(CheckAliasTarget(request.target_key_id));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  auto alias = tx->GetAlias(request.alias_name);
  if (!alias) {
    if (alias.error().code() == StatusCode::kNotFound) {
      return NotFoundError("Alias " + AliasArn(request.alias_name) + " is not found.");
    }
    return alias.error();
  }
  if (!request.expected_target_key_id.empty() &&
      alias->target_key_id() != request.expected_target_key_id) {
    return AliasMoved(AliasArn(request.alias_name));
  }
  KMS_ASSIGN_OR_RETURN(Impl::Key target, impl_->Resolve(*tx, request.target_key_id, IdForms::kKeyOnly));
  // docs/aws-kms-protocol.md "Key states": fails when the destination is pending deletion (the
  // source may be).
  KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(target));
  auto source = tx->GetKey(alias->target_key_id());
  if (source && (source->key_spec() != target.record.key_spec() ||
                 source->key_usage() != target.record.key_usage())) {
    // As AWS: the new target must have the same key type and usage.
    return Validation("Alias " + AliasArn(request.alias_name) +
                      " cannot be changed to a key of a different key spec or key usage.");
  }
  KMS_ASSIGN_OR_RETURN(auto mine, tx->ListAliasesForKey(target.id(), "", kMaxAliasesPerKey));
  if (target.id() != alias->target_key_id() && mine.items.size() >= kMaxAliasesPerKey) {
    return ResourceExhaustedError("The request was rejected because a quota was exceeded: at most 50 "
                                  "aliases per key.",
                                  Reason::kLimitExceeded);
  }
  alias->set_target_key_id(target.id());
  alias->set_last_updated_time_ms(clock_.NowMs());
  KMS_RETURN_IF_ERROR(tx->UpdateAlias(*alias));
  return impl_->CommitWrite(*tx);
}

Status KeyService::DeleteAlias(const DeleteAliasRequest& request) {
  KMS_RETURN_IF_ERROR(CheckAliasName(request.alias_name, /*writable=*/false));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  if (!request.expected_target_key_id.empty()) {
    auto alias = tx->GetAlias(request.alias_name);
    if (!alias) {
      if (alias.error().code() == StatusCode::kNotFound) {
        return NotFoundError("Alias " + AliasArn(request.alias_name) + " is not found.");
      }
      return alias.error();
    }
    if (alias->target_key_id() != request.expected_target_key_id) {
      return AliasMoved(AliasArn(request.alias_name));
    }
  }
  Status st = tx->DeleteAlias(request.alias_name);
  if (st.code() == StatusCode::kNotFound) {
    return NotFoundError("Alias " + AliasArn(request.alias_name) + " is not found.");
  }
  KMS_RETURN_IF_ERROR(st);
  return impl_->CommitWrite(*tx);
}

StatusOr<ListAliasesResponse> KeyService::ListAliases(const ListAliasesRequest& request) {
  KMS_ASSIGN_OR_RETURN(std::size_t limit, PageLimit(request.limit, 100, 50));
  KMS_ASSIGN_OR_RETURN(std::string after, DecodeMarker(request.marker));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  store::Page<AliasRecord> page;
  if (request.key_id) {
    KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, *request.key_id, IdForms::kKeyOnly));
    KMS_ASSIGN_OR_RETURN(page, tx->ListAliasesForKey(key.id(), after, limit));
  } else {
    KMS_ASSIGN_OR_RETURN(page, tx->ListAliases(after, limit));
  }
  ListAliasesResponse out;
  for (const AliasRecord& a : page.items) {
    out.aliases.push_back(AliasListEntry{a.alias_name(), AliasArn(a.alias_name()), a.target_key_id(),
                                         a.creation_time_ms(), a.last_updated_time_ms()});
  }
  out.truncated = page.truncated;
  if (page.truncated) out.next_marker = EncodeMarker(page.next_marker);
  return out;
}

// ---- tags ------------------------------------------------------------------------------------------------------
Status KeyService::TagResource(const TagResourceRequest& request) {
  KMS_RETURN_IF_ERROR(CheckTags(request.tags));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
  KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
  KMS_ASSIGN_OR_RETURN(auto existing, tx->ListTags(key.id()));
  std::size_t total = existing.size();
  for (const Tag& t : request.tags) {
    bool present = std::any_of(existing.begin(), existing.end(),
                               [&](const TagRecord& r) { return r.tag_key() == t.tag_key; });
    if (!present) ++total;
  }
  if (total > kMaxTagsPerKey) return TagError("Too many tags");
  for (const Tag& t : request.tags) {
    TagRecord tag;
    tag.set_key_id(key.id());
    tag.set_tag_key(t.tag_key);
    tag.set_tag_value(t.tag_value);
    KMS_RETURN_IF_ERROR(tx->PutTag(tag));
  }
  return impl_->CommitWrite(*tx);
}

Status KeyService::UntagResource(const UntagResourceRequest& request) {
  for (std::size_t i = 0; i < request.tag_keys.size(); ++i) {
    KMS_RETURN_IF_ERROR(CheckStringLength("tagKeys." + std::to_string(i + 1) + ".member",
                                          request.tag_keys[i], 1, kMaxTagKey));
    if (request.tag_keys[i].starts_with("aws:")) {
      return TagError("Tags beginning with aws: are reserved");
    }
  }
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
  KMS_RETURN_IF_ERROR(Impl::CheckNotPendingDeletion(key));
  for (const std::string& k : request.tag_keys) {
    Status st = tx->DeleteTag(key.id(), k);
    if (!st.ok() && st.code() != StatusCode::kNotFound) return st;  // absent tags: nothing to do
  }
  return impl_->CommitWrite(*tx);
}

StatusOr<ListResourceTagsResponse> KeyService::ListResourceTags(
    const ListResourceTagsRequest& request) {
  KMS_ASSIGN_OR_RETURN(std::size_t limit, PageLimit(request.limit, 50, 50));
  KMS_ASSIGN_OR_RETURN(std::string after, DecodeMarker(request.marker));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
  KMS_ASSIGN_OR_RETURN(auto tags, tx->ListTags(key.id()));
  ListResourceTagsResponse out;
  for (const TagRecord& t : tags) {
    if (!after.empty() && t.tag_key() <= after) continue;
    if (out.tags.size() == limit) {
      out.truncated = true;
      out.next_marker = EncodeMarker(out.tags.back().tag_key);
      break;
    }
    out.tags.push_back(Tag{t.tag_key(), t.tag_value()});
  }
  return out;
}

// ---- rotation --------------------------------------------------------------------------------------------------
namespace {
// docs/aws-kms-protocol.md "Rules per operation": only symmetric encryption keys rotate.
Status CheckRotatable(const KeyService::Impl::Key& key) {
  if (key.spec() != KeySpec::kSymmetricDefault) {
    return Unsupported(key.arn + " key spec " + std::string(KeySpecName(key.spec())) +
                       " does not support key rotation.");
  }
  return Status();
}
}  // namespace

Status KeyService::EnableKeyRotation(const EnableKeyRotationRequest& request) {
  const std::int64_t days = request.rotation_period_in_days.value_or(365);
  KMS_RETURN_IF_ERROR(CheckRange("rotationPeriodInDays", days, 90, 2560));
  return impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(key));  // Disabled, PendingDeletion refused
    KMS_RETURN_IF_ERROR(CheckRotatable(key));
    key.record.set_rotation_enabled(true);
    key.record.set_rotation_period_days(static_cast<std::uint32_t>(days));
    key.record.set_next_rotation_time_ms(clock_.NowMs() + days * kMsPerDay);
    return Status();
  });
}

Status KeyService::DisableKeyRotation(const DisableKeyRotationRequest& request) {
  return impl_->MutateKey(request.key_id, [&](Impl::Key& key) -> Status {
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(key));
    KMS_RETURN_IF_ERROR(CheckRotatable(key));
    key.record.set_rotation_enabled(false);
    key.record.set_next_rotation_time_ms(0);
    return Status();
  });
}

StatusOr<GetKeyRotationStatusResponse> KeyService::GetKeyRotationStatus(
    const GetKeyRotationStatusRequest& request) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
  KMS_RETURN_IF_ERROR(CheckRotatable(key));
  GetKeyRotationStatusResponse out;
  out.key_id = key.arn;
  out.key_rotation_enabled = key.record.rotation_enabled();
  if (key.record.rotation_enabled()) {
    out.rotation_period_in_days = key.record.rotation_period_days();
    out.next_rotation_date_ms = key.record.next_rotation_time_ms();
  }
  if (key.record.on_demand_rotation_start_time_ms() != 0) {
    out.on_demand_rotation_start_date_ms = key.record.on_demand_rotation_start_time_ms();
  }
  return out;
}

StatusOr<RotateKeyOnDemandResponse> KeyService::RotateKeyOnDemand(
    const RotateKeyOnDemandRequest& request) {
  std::string key_id;
  std::uint32_t current = 0;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
    KMS_RETURN_IF_ERROR(CheckRotatable(key));
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(key));
    if (key.record.on_demand_rotation_count() >= kMaxOnDemandRotations) {
      return ResourceExhaustedError(
          "The on-demand rotations limit has been reached for the given keyId. No more on-demand "
          "rotations can be performed for this key: " +
              key.arn,
          Reason::kLimitExceeded);
    }
    key_id = key.id();
    current = key.record.current_version();
  }
  KMS_RETURN_IF_ERROR(
      impl_->Rotate(key_id, records::ROTATION_TYPE_ON_DEMAND, Impl::RotateTrigger::kOnDemand, current,
                    clock_.NowMs()));
  return RotateKeyOnDemandResponse{key_id};
}

StatusOr<std::uint32_t> KeyService::RotateKeyUnbounded(std::string_view key_id) {
  std::string id;
  std::uint32_t current = 0;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, key_id, IdForms::kKeyOnly));
    KMS_RETURN_IF_ERROR(CheckRotatable(key));
    KMS_RETURN_IF_ERROR(Impl::CheckUsable(key));
    id = key.id();
    current = key.record.current_version();
  }
  KMS_RETURN_IF_ERROR(impl_->Rotate(id, records::ROTATION_TYPE_ON_DEMAND,
                                    Impl::RotateTrigger::kUnbounded, current, clock_.NowMs()));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->GetById(*tx, id));
  return key.record.current_version();
}

StatusOr<std::vector<KeyVersionInfo>> KeyService::ListKeyVersions(std::string_view key_id) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, key_id, IdForms::kAny));
  KMS_ASSIGN_OR_RETURN(auto versions, tx->ListKeyVersions(key.id()));
  std::vector<KeyVersionInfo> out;
  out.reserve(versions.size());
  for (const KeyVersionRecord& v : versions) {
    out.push_back(KeyVersionInfo{v.version(), v.creation_time_ms(), ToBytes(v.public_key_der()),
                                 v.state() == records::KEY_VERSION_STATE_DESTROYED});
  }
  std::sort(out.begin(), out.end(),
            [](const KeyVersionInfo& a, const KeyVersionInfo& b) { return a.version < b.version; });
  return out;
}

StatusOr<ListKeyRotationsResponse> KeyService::ListKeyRotations(const ListKeyRotationsRequest& request) {
  KMS_ASSIGN_OR_RETURN(std::size_t limit, PageLimit(request.limit, 1000, 100));
  KMS_ASSIGN_OR_RETURN(std::string after, DecodeMarker(request.marker));
  std::uint32_t after_version = 0;
  if (!after.empty()) {
    if (after.size() != 4) return InvalidArgumentError("Invalid marker", Reason::kInvalidMarker);
    for (char c : after) after_version = (after_version << 8) | static_cast<std::uint8_t>(c);
  }
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(Impl::Key key, impl_->Resolve(*tx, request.key_id, IdForms::kKeyOnly));
  KMS_RETURN_IF_ERROR(CheckRotatable(key));
  KMS_ASSIGN_OR_RETURN(auto versions, tx->ListKeyVersions(key.id()));
  ListKeyRotationsResponse out;
  for (const KeyVersionRecord& v : versions) {
    if (v.rotation_type() == records::ROTATION_TYPE_INITIAL || v.version() <= after_version) continue;
    if (out.rotations.size() == limit) {
      out.truncated = true;  // after_version is the last listed version
      break;
    }
    out.rotations.push_back(RotationsListEntry{
        key.id(), v.key_material_id(), v.creation_time_ms(),
        v.rotation_type() == records::ROTATION_TYPE_ON_DEMAND ? RotationType::kOnDemand
                                                              : RotationType::kAutomatic});
    after_version = v.version();
  }
  if (out.truncated) {
    std::string m(4, '\0');
    for (int i = 0; i < 4; ++i) m[static_cast<std::size_t>(i)] = static_cast<char>(after_version >> (24 - 8 * i));
    out.next_marker = EncodeMarker(m);
  }
  return out;
}

// ---- scheduled work ------------------------------------------------------------------------------------------------
StatusOr<ScheduledWorkReport> KeyService::RunDue(std::int64_t now_ms) {
  ScheduledWorkReport report;
  // Deletions first: a key due for both is deleted, not rotated.
  for (;;) {
    std::vector<KeyRecord> due;
    {
      KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
      KMS_ASSIGN_OR_RETURN(due, tx->ListKeysDueForDeletion(now_ms, kScheduledBatch));
    }
    std::size_t done = 0;
    for (const KeyRecord& k : due) {
      if (impl_->DestroyKey(k.key_id(), now_ms).ok()) {
        ++report.keys_deleted;
        ++done;
      } else {
        ++report.failures;
      }
    }
    if (due.size() < kScheduledBatch || done == 0) break;
  }
  for (;;) {
    std::vector<KeyRecord> due;
    {
      KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
      KMS_ASSIGN_OR_RETURN(due, tx->ListKeysDueForRotation(now_ms, kScheduledBatch));
    }
    std::size_t done = 0;
    for (const KeyRecord& k : due) {
      if (k.state() != records::KEY_STATE_ENABLED) {
        // AWS does not rotate disabled or pending-deletion keys; move the schedule on so these keys
        // do not hold the head of the due list.
        auto tx = store_.Begin(TransactionMode::kReadWrite);
        if (!tx) return tx.error();
        auto fresh = (*tx)->GetKey(k.key_id());
        if (fresh && fresh->rotation_enabled() && fresh->next_rotation_time_ms() <= now_ms &&
            fresh->state() != records::KEY_STATE_ENABLED) {
          fresh->set_next_rotation_time_ms(now_ms +
                                           std::int64_t{fresh->rotation_period_days()} * kMsPerDay);
          KMS_RETURN_IF_ERROR((*tx)->UpdateKey(*fresh));
        }
        KMS_RETURN_IF_ERROR(impl_->CommitWrite(**tx));
        ++done;
        continue;
      }
      Status st = impl_->Rotate(k.key_id(), records::ROTATION_TYPE_AUTOMATIC,
                                Impl::RotateTrigger::kSchedule, 0, now_ms);
      if (st.ok()) {
        ++report.keys_rotated;
        ++done;
      } else {
        ++report.failures;
      }
    }
    if (due.size() < kScheduledBatch || done == 0) break;
  }
  return report;
}

}  // namespace kms::firmware
