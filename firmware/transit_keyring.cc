#include "firmware/transit_keyring.h"

#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>

#include <algorithm>
#include <utility>

#include "base/encoding.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/transit_wire.h"

namespace kms::firmware::transit {

namespace {

using records::TransitKeyRecord;

constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::size_t kMaxCryptoInput = 4096;  // KeyService's plaintext / MAC message bound
// KeyService's bound on a signature or MAC to verify: a longer one cannot verify.
constexpr std::size_t kMaxSignatureOrMac = 6144;
// What the key service's 8192-byte encryption context holds of context and associated_data
// (base64, with their labels): 6000 bytes together fit whatever their split.
constexpr std::size_t kMaxBoundBytes = 6000;
constexpr std::int64_t kMaxRandomBytes = 131072;
constexpr std::size_t kRandomChunk = 1024;  // KeyService::GenerateRandom's per-call bound
constexpr std::int64_t kDeletionWindowDays = 7;
constexpr std::string_view kAuthFailed = "cipher: message authentication failed";
constexpr std::string_view kTooOld =
    "ciphertext or signature version is disallowed by policy (too old)";
constexpr std::string_view kMissingContext =
    "missing 'context' for key derivation; the key was created using a derived key, which means "
    "additional, per-request information must be included in order to perform operations with the "
    "key";

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

Status CheckName(std::string_view name) {
  if (name.empty() || name.size() > 128 || !std::all_of(name.begin(), name.end(), NameChar)) {
    return InvalidArgumentError("invalid key name");
  }
  return Status();
}

Status CheckMount(std::string_view mount) {
  bool ok = !mount.empty() && mount.size() <= 64 && mount.front() != '/' && mount.back() != '/' &&
            mount.find("//") == std::string_view::npos &&
            std::all_of(mount.begin(), mount.end(), [](char c) { return NameChar(c) || c == '/'; });
  if (!ok) return InvalidArgumentError("invalid mount");
  return Status();
}

bool IsEcdsa(TransitKeyType t) {
  return t == TransitKeyType::kEcdsaP256 || t == TransitKeyType::kEcdsaP384 ||
         t == TransitKeyType::kEcdsaP521;
}
bool IsRsa(TransitKeyType t) {
  return t == TransitKeyType::kRsa2048 || t == TransitKeyType::kRsa3072 ||
         t == TransitKeyType::kRsa4096;
}

KeySpec SpecOf(TransitKeyType t) {
  switch (t) {
    case TransitKeyType::kAes256Gcm96:
      return KeySpec::kSymmetricDefault;
    case TransitKeyType::kEcdsaP256:
      return KeySpec::kEccNistP256;
    case TransitKeyType::kEcdsaP384:
      return KeySpec::kEccNistP384;
    case TransitKeyType::kEcdsaP521:
      return KeySpec::kEccNistP521;
    case TransitKeyType::kRsa2048:
      return KeySpec::kRsa2048;
    case TransitKeyType::kRsa3072:
      return KeySpec::kRsa3072;
    case TransitKeyType::kRsa4096:
      return KeySpec::kRsa4096;
    case TransitKeyType::kHmac:
      return KeySpec::kHmac256;
  }
  return KeySpec::kSymmetricDefault;
}

KeyUsage UsageOf(TransitKeyType t) {
  if (t == TransitKeyType::kAes256Gcm96) return KeyUsage::kEncryptDecrypt;
  if (t == TransitKeyType::kHmac) return KeyUsage::kGenerateVerifyMac;
  // RSA keys sign only: encryption would need RSAES_OAEP_SHA_256, which SoftHSM2 lacks (header).
  return KeyUsage::kSignVerify;
}

std::string TypeName(TransitKeyType t) { return std::string(TransitKeyTypeName(t)); }

Status RsaEncryptionRefused(TransitKeyType t) {
  return InvalidArgumentError(
      "RSA encryption is not supported by this appliance: its HSM has no RSA-OAEP with SHA-256, so "
      "keys of type " +
      TypeName(t) + " sign and verify only");
}

// Version window checks shared by decrypt and verify.
Status CheckReadableVersion(std::int64_t version, std::uint32_t latest,
                            const TransitKeyRecord& record, std::string_view what) {
  if (version > std::int64_t{latest}) {
    return InvalidArgumentError("invalid " + std::string(what) + ": version is too new");
  }
  if (version < std::int64_t{std::max<std::uint32_t>(record.min_decryption_version(), 1)}) {
    return InvalidArgumentError(std::string(kTooOld));
  }
  return Status();
}

// ECDSA signature encodings: DER SEQUENCE { r INTEGER, s INTEGER } (what the key service returns,
// SEC 1 §C.8) and JWS's fixed-width r||s (RFC 7518 §3.4).
std::size_t EcdsaFieldSize(TransitKeyType t) {
  switch (t) {
    case TransitKeyType::kEcdsaP256:
      return 32;
    case TransitKeyType::kEcdsaP384:
      return 48;
    default:
      return 66;
  }
}

// Vault hash names the key service signs with.
std::optional<hal::HashAlgorithm> Sha2Of(std::string_view name) {
  if (name == "sha2-256") return hal::HashAlgorithm::kSha256;
  if (name == "sha2-384") return hal::HashAlgorithm::kSha384;
  if (name == "sha2-512") return hal::HashAlgorithm::kSha512;
  return std::nullopt;
}

Bytes Sha2(hal::HashAlgorithm h, ByteView input) {
  Bytes out(64);
  switch (h) {
    case hal::HashAlgorithm::kSha224:
      mbedtls_sha256_ret(input.data(), input.size(), out.data(), 1);
      out.resize(28);
      break;
    case hal::HashAlgorithm::kSha256:
      mbedtls_sha256_ret(input.data(), input.size(), out.data(), 0);
      out.resize(32);
      break;
    case hal::HashAlgorithm::kSha384:
      mbedtls_sha512_ret(input.data(), input.size(), out.data(), 1);
      out.resize(48);
      break;
    default:
      mbedtls_sha512_ret(input.data(), input.size(), out.data(), 0);
      break;
  }
  return out;
}

StatusOr<SigningAlgorithm> SigningAlgorithmFor(TransitKeyType type, hal::HashAlgorithm h,
                                               SignatureScheme scheme) {
  if (IsEcdsa(type)) {
    // AWS's ECC_NIST_* specs each sign with one hash (docs/aws-kms-protocol.md "Key specs and
    // algorithms").
    const hal::HashAlgorithm own = type == TransitKeyType::kEcdsaP256 ? hal::HashAlgorithm::kSha256
                                   : type == TransitKeyType::kEcdsaP384
                                       ? hal::HashAlgorithm::kSha384
                                       : hal::HashAlgorithm::kSha512;
    if (h != own) {
      const char* name = own == hal::HashAlgorithm::kSha256   ? "sha2-256"
                         : own == hal::HashAlgorithm::kSha384 ? "sha2-384"
                                                              : "sha2-512";
      return InvalidArgumentError("keys of type " + TypeName(type) + " sign with " + name +
                                  " only on this appliance");
    }
    return own == hal::HashAlgorithm::kSha256   ? SigningAlgorithm::kEcdsaSha256
           : own == hal::HashAlgorithm::kSha384 ? SigningAlgorithm::kEcdsaSha384
                                                : SigningAlgorithm::kEcdsaSha512;
  }
  const bool pss = scheme == SignatureScheme::kPss;
  switch (h) {
    case hal::HashAlgorithm::kSha256:
      return pss ? SigningAlgorithm::kRsassaPssSha256 : SigningAlgorithm::kRsassaPkcs1V15Sha256;
    case hal::HashAlgorithm::kSha384:
      return pss ? SigningAlgorithm::kRsassaPssSha384 : SigningAlgorithm::kRsassaPkcs1V15Sha384;
    default:
      return pss ? SigningAlgorithm::kRsassaPssSha512 : SigningAlgorithm::kRsassaPkcs1V15Sha512;
  }
}

// What Sign and Verify share: the checked algorithm, the digest to sign, the marshaling.
struct SigningPlan {
  SigningAlgorithm algorithm = SigningAlgorithm::kEcdsaSha256;
  SecretBytes digest;
  bool jws = false;
};

StatusOr<SigningPlan> PlanSignature(TransitKeyType type, const SecretBytes& input,
                                    const SignOptions& options) {
  if (!IsEcdsa(type) && !IsRsa(type)) {
    return InvalidArgumentError("message signing not supported for key type " + TypeName(type));
  }
  const std::string_view hash_name =
      options.hash_algorithm.empty() ? std::string_view("sha2-256") : options.hash_algorithm;
  auto hash = Sha2Of(hash_name);
  if (!hash) {
    if (hash_name == "sha1" || hash_name == "sha2-224" || hash_name == "none" ||
        hash_name.starts_with("sha3-")) {
      return InvalidArgumentError("hash algorithm " + std::string(hash_name) +
                                  " is not supported by this appliance");
    }
    return InvalidArgumentError("unsupported hash algorithm " + std::string(hash_name));
  }
  SigningPlan plan;
  if (options.marshaling_algorithm == "jws") {
    plan.jws = true;
  } else if (!options.marshaling_algorithm.empty() && options.marshaling_algorithm != "asn1") {
    return InvalidArgumentError("unsupported marshaling algorithm \"" +
                                options.marshaling_algorithm + "\"");
  }
  KMS_ASSIGN_OR_RETURN(plan.algorithm,
                       SigningAlgorithmFor(type, *hash, options.signature_algorithm));
  // The digest is computed here (hashing guards no key) and signed as DIGEST, so a RAW input is not
  // bound by the key service's 4096-byte message limit.
  if (options.prehashed) {
    if (input.size() != hal::DigestSize(*hash)) {
      return InvalidArgumentError("prehashed input must be the " +
                                  std::to_string(hal::DigestSize(*hash)) + "-byte " +
                                  std::string(hash_name) + " digest");
    }
    plan.digest = input.Clone();
  } else {
    // The digest of a secret input is as sensitive as a MAC of it: keep it in wiped storage.
    Bytes d = Sha2(*hash, input.ExposeSecret());
    plan.digest = SecretBytes::CopyFrom(d);
    SecureWipe(d.data(), d.size());
  }
  return plan;
}

EncryptionContext ContextOf(const TransitKeyRecord& record, const Bytes& context,
                            const Bytes& associated_data) {
  EncryptionContext ec;
  if (record.derived()) ec["vault:context"] = Base64Encode(context);
  if (!associated_data.empty()) ec["vault:associated_data"] = Base64Encode(associated_data);
  return ec;
}

// The bytes ContextOf binds must fit the key service's encryption context; said here in the
// request's own terms, never in the key service's (an AWS validation text).
Status CheckBoundSize(const TransitKeyRecord& record, const Bytes& context,
                      const Bytes& associated_data) {
  const std::size_t bound = (record.derived() ? context.size() : 0) + associated_data.size();
  if (bound > kMaxBoundBytes) {
    return InvalidArgumentError("context and associated_data must be at most " +
                                std::to_string(kMaxBoundBytes) +
                                " bytes together on this appliance");
  }
  return Status();
}

Status CheckAutoRotatePeriod(std::int64_t period_ms) {
  if (period_ms != 0 && period_ms < kHourMs) {
    return InvalidArgumentError("auto rotate period must be 0 to disable or at least an hour");
  }
  return Status();
}

}  // namespace

std::string_view TransitKeyTypeName(TransitKeyType type) {
  switch (type) {
    case TransitKeyType::kAes256Gcm96:
      return "aes256-gcm96";
    case TransitKeyType::kEcdsaP256:
      return "ecdsa-p256";
    case TransitKeyType::kEcdsaP384:
      return "ecdsa-p384";
    case TransitKeyType::kEcdsaP521:
      return "ecdsa-p521";
    case TransitKeyType::kRsa2048:
      return "rsa-2048";
    case TransitKeyType::kRsa3072:
      return "rsa-3072";
    case TransitKeyType::kRsa4096:
      return "rsa-4096";
    case TransitKeyType::kHmac:
      return "hmac";
  }
  return "unknown";
}

StatusOr<TransitKeyType> ParseTransitKeyType(std::string_view name) {
  for (std::uint32_t code = 1; code <= 8; ++code) {
    const auto type = static_cast<TransitKeyType>(code);
    if (TransitKeyTypeName(type) == name) return type;
  }
  // Vault and OpenBao types (docs/vault-door.md "Transit keys") this appliance does not implement.
  constexpr std::string_view kVaultTypes[] = {
      "aes128-gcm96", "chacha20-poly1305", "xchacha20-poly1305", "ed25519",
      "managed_key",  "aes128-cmac",       "aes256-cmac",        "ml-dsa",
      "hybrid",       "external-key"};
  if (std::find(std::begin(kVaultTypes), std::end(kVaultTypes), name) != std::end(kVaultTypes)) {
    return InvalidArgumentError("key type " + std::string(name) +
                                " is not supported by this appliance");
  }
  return InvalidArgumentError("unknown key type " + std::string(name));
}

TransitKeyring::TransitKeyring(KeyService& service, store::MetadataStore& store, const Clock& clock,
                               std::string mount)
    : service_(service), store_(store), clock_(clock), mount_(std::move(mount)) {}

// ---- records ----------------------------------------------------------------------------------
namespace {

std::string KeyPrefix(std::string_view mount) {
  return "vault.transit." + std::string(mount) + ".key.";
}

StatusOr<TransitKeyRecord> ParseRecord(const std::string& value) {
  TransitKeyRecord r;
  if (!r.ParseFromString(value)) return DataLossError("transit key record does not parse");
  if (r.record_version() > store::kRecordVersion) {
    return FailedPreconditionError("transit key record written by newer firmware");
  }
  return r;
}

Status Rebound(std::string_view name) {
  return FailedPreconditionError("the key name \"" + std::string(name) +
                                 "\" was bound to another key while this request ran; retry the "
                                 "request");
}

// Whether `key_id`, the key-service key the name is bound to now, is the one `key` acts on (the
// header's "Bindings"): any key by name, else exactly the decided one.
Status CheckBinding(const KeyBinding& key, std::string_view key_id) {
  const auto& decided = key.decided_key_id();
  if (decided && *decided != key_id) return Rebound(key.name());
  return Status();
}

// The record `key` acts on, read in `tx`; NotFound carries `not_found` (Vault's text differs per
// path).
StatusOr<TransitKeyRecord> ReadRecordIn(store::Transaction& tx, std::string_view mount,
                                        const KeyBinding& key, std::string_view not_found) {
  auto value = tx.GetMeta(KeyPrefix(mount) + std::string(key.name()));
  if (!value) {
    if (value.error().code() == StatusCode::kNotFound) return NotFoundError(std::string(not_found));
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r, ParseRecord(*value));
  KMS_RETURN_IF_ERROR(CheckBinding(key, r.key_id()));
  return r;
}

// The record `key` acts on, in a transaction of its own.
StatusOr<TransitKeyRecord> ReadRecord(store::MetadataStore& store, std::string_view mount,
                                      const KeyBinding& key, std::string_view not_found) {
  KMS_RETURN_IF_ERROR(CheckMount(mount));
  KMS_RETURN_IF_ERROR(CheckName(key.name()));
  KMS_ASSIGN_OR_RETURN(auto tx, store.Begin(store::TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r, ReadRecordIn(*tx, mount, key, not_found));
  KMS_RETURN_IF_ERROR(tx->Commit());
  return r;
}

TransitKeyType TypeOf(const TransitKeyRecord& r) {
  return static_cast<TransitKeyType>(r.key_type());
}

// The transit versions of a record's key: the key service's versions (one numbering, header).
StatusOr<std::vector<KeyVersionInfo>> VersionsOf(KeyService& service, const TransitKeyRecord& r) {
  auto versions = service.ListKeyVersions(r.key_id());
  if (!versions && versions.error().code() == StatusCode::kNotFound) {
    return FailedPreconditionError("the appliance key " + r.key_id() +
                                   " behind this transit key no longer exists");
  }
  return versions;
}

StatusOr<std::uint32_t> LatestVersion(KeyService& service, const TransitKeyRecord& r) {
  KMS_ASSIGN_OR_RETURN(auto versions, VersionsOf(service, r));
  if (versions.empty()) return InternalError("appliance key without versions");
  return versions.back().version;
}

// Vault's encrypt-side key_version rule; nullopt: the latest (KeyService picks the current version,
// rotating past the GCM bound if it must).
StatusOr<std::optional<std::uint32_t>> EncryptionVersion(KeyService& service,
                                                         const TransitKeyRecord& r,
                                                         std::optional<std::int64_t> requested,
                                                         std::string_view what) {
  if (!requested || *requested == 0) return std::optional<std::uint32_t>();
  if (*requested < 0) return InvalidArgumentError("invalid key version");
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service, r));
  if (*requested > std::int64_t{latest}) {
    return InvalidArgumentError("requested version for " + std::string(what) +
                                " is higher than the latest key version");
  }
  if (*requested < std::int64_t{r.min_encryption_version()}) {
    return InvalidArgumentError("requested version for " + std::string(what) +
                                " is less than the minimum encryption key version");
  }
  return std::optional<std::uint32_t>(static_cast<std::uint32_t>(*requested));
}

Status CheckContext(const TransitKeyRecord& r, const Bytes& context) {
  if (r.derived() && context.empty()) return InvalidArgumentError(std::string(kMissingContext));
  return Status();
}

Status CheckEncryptionType(const TransitKeyRecord& r, std::string_view operation) {
  const TransitKeyType t = TypeOf(r);
  if (t == TransitKeyType::kAes256Gcm96) return Status();
  if (IsRsa(t)) return RsaEncryptionRefused(t);
  return InvalidArgumentError("message " + std::string(operation) + " not supported for key type " +
                              TypeName(t));
}

std::uint32_t BlobVersion(const Bytes& blob) {
  auto parsed = ParseCiphertextBlob(blob);
  return parsed ? parsed->key_version : 0;
}

}  // namespace

namespace {
StatusOr<TransitKeyInfo> Info(KeyService& service, const TransitKeyRecord& r) {
  KMS_ASSIGN_OR_RETURN(auto versions, VersionsOf(service, r));
  TransitKeyInfo info;
  info.name = r.name();
  info.type = TypeOf(r);
  info.derived = r.derived();
  info.deletion_allowed = r.deletion_allowed();
  info.min_decryption_version = std::max<std::uint32_t>(r.min_decryption_version(), 1);
  info.min_encryption_version = r.min_encryption_version();
  info.min_available_version = 0;  // no trim: every version stays
  info.auto_rotate_period_ms = r.auto_rotate_period_ms();
  info.key_id = r.key_id();
  info.arn = service.KeyArn(r.key_id());
  const bool asymmetric = IsEcdsa(info.type) || IsRsa(info.type);
  for (const KeyVersionInfo& v : versions) {
    info.latest_version = std::max(info.latest_version, v.version);
    if (v.destroyed) continue;
    TransitKeyVersion tv;
    tv.version = v.version;
    tv.creation_time_ms = v.creation_date_ms;
    if (asymmetric && !v.public_key.empty()) tv.public_key_pem = PublicKeyPem(v.public_key);
    info.versions.push_back(std::move(tv));
  }
  info.supports_encryption = info.type == TransitKeyType::kAes256Gcm96;
  info.supports_decryption = info.supports_encryption;
  info.supports_derivation = info.supports_encryption;
  info.supports_signing = asymmetric;
  return info;
}
}  // namespace

// ---- keys -------------------------------------------------------------------------------------
StatusOr<TransitKeyInfo> TransitKeyring::CreateKey(const KeyBinding& key,
                                                   const CreateTransitKeyOptions& options) {
  const std::string_view name = key.name();
  KMS_RETURN_IF_ERROR(CheckMount(mount_));
  KMS_RETURN_IF_ERROR(CheckName(name));
  const std::string type = TypeName(options.type);
  if (static_cast<std::uint32_t>(options.type) < 1 ||
      static_cast<std::uint32_t>(options.type) > 8) {
    return InvalidArgumentError("unknown key type");
  }
  if (options.convergent_encryption) {
    return InvalidArgumentError("convergent encryption is not supported by this appliance");
  }
  if (options.exportable) {
    return InvalidArgumentError(
        "exportable keys are not supported by this appliance: key material never leaves the HSM");
  }
  if (options.allow_plaintext_backup) {
    return InvalidArgumentError(
        "plaintext backup is not supported by this appliance: key material never leaves the HSM");
  }
  if (options.derived && options.type != TransitKeyType::kAes256Gcm96) {
    return InvalidArgumentError("key derivation is not supported for keys of type " + type);
  }
  if (options.key_size && options.type != TransitKeyType::kHmac) {
    return InvalidArgumentError("key_size is not valid for algorithm " + type);
  }
  if (options.key_size && *options.key_size != 32) {
    return InvalidArgumentError("key_size " + std::to_string(*options.key_size) +
                                " is not supported by this appliance: hmac keys are 32 bytes");
  }
  KMS_RETURN_IF_ERROR(CheckAutoRotatePeriod(options.auto_rotate_period_ms));
  if (options.auto_rotate_period_ms != 0 && options.type != TransitKeyType::kAes256Gcm96) {
    return InvalidArgumentError("auto rotation is not supported for keys of type " + type +
                                ": only aes256-gcm96 keys rotate on this appliance");
  }
  // Vault answers an existing name with the existing key, whatever the options (decided: only the
  // key that was decided; another one is the binding error).
  auto existing = ReadRecord(store_, mount_, key, "key not found");
  if (existing) return Info(service_, *existing);
  if (existing.error().code() != StatusCode::kNotFound) return existing.error();

  const std::string alias = "alias/vault/" + mount_ + "/" + std::string(name);
  CreateKeyRequest create;
  create.description = "Vault transit key " + mount_ + "/" + std::string(name);
  create.key_spec = SpecOf(options.type);
  create.key_usage = UsageOf(options.type);
  KMS_ASSIGN_OR_RETURN(CreateKeyResponse made, service_.CreateKey(create));
  const std::string key_id = made.key_metadata.key_id;
  // AlreadyExists: a racer's alias or one a crash left behind; EnsureAlias below settles it.
  Status aliased = service_.CreateAlias(CreateAliasRequest{alias, key_id});
  if (!aliased.ok() && aliased.code() != StatusCode::kAlreadyExists) return aliased;

  const std::int64_t now = clock_.NowMs();
  TransitKeyRecord record;
  record.set_record_version(store::kRecordVersion);
  record.set_mount(mount_);
  record.set_name(std::string(name));
  record.set_key_id(key_id);
  record.set_key_type(static_cast<std::uint32_t>(options.type));
  record.set_derived(options.derived);
  record.set_min_decryption_version(1);
  record.set_auto_rotate_period_ms(options.auto_rotate_period_ms);
  record.set_creation_time_ms(now);
  record.set_last_rotation_time_ms(now);
  bool won = false;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadWrite));
    const std::string meta = KeyPrefix(mount_) + std::string(name);
    auto raced = tx->GetMeta(meta);
    if (raced) {
      KMS_ASSIGN_OR_RETURN(record, ParseRecord(*raced));
    } else if (raced.error().code() == StatusCode::kNotFound) {
      KMS_RETURN_IF_ERROR(tx->PutMeta(meta, record.SerializeAsString()));
      won = true;
    } else {
      return raced.error();
    }
    KMS_RETURN_IF_ERROR(tx->Commit());
  }
  // Winner and loser both point the alias at the record's key, so concurrent creators converge on
  // it (and an alias a crash left pointing elsewhere is repaired).
  auto target = service_.DescribeKey(DescribeKeyRequest{alias});
  if (!target) {
    (void)service_.CreateAlias(CreateAliasRequest{alias, record.key_id()});
  } else if (target->key_metadata.key_id != record.key_id()) {
    (void)service_.UpdateAlias(UpdateAliasRequest{alias, record.key_id()});
  }
  if (!won) {
    ScheduleKeyDeletionRequest del;
    del.key_id = key_id;
    del.pending_window_in_days = kDeletionWindowDays;
    (void)service_.ScheduleKeyDeletion(del);
    // Decided: the winner's key is not the one this request was decided on.
    KMS_RETURN_IF_ERROR(CheckBinding(key, record.key_id()));
  }
  return Info(service_, record);
}

StatusOr<TransitKeyInfo> TransitKeyring::ReadKey(const KeyBinding& key) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r, ReadRecord(store_, mount_, key, "key not found"));
  return Info(service_, r);
}

StatusOr<TransitKeyRef> TransitKeyring::Locate(std::string_view name) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r, ReadRecord(store_, mount_, name, "key not found"));
  TransitKeyRef ref;
  ref.key_id = r.key_id();
  ref.arn = service_.KeyArn(r.key_id());
  ref.type = TypeOf(r);
  ref.key_spec = SpecOf(ref.type);
  ref.key_usage = UsageOf(ref.type);
  ref.alias = "alias/vault/" + mount_ + "/" + std::string(name);
  return ref;
}

StatusOr<std::vector<std::string>> TransitKeyring::ListKeys() {
  KMS_RETURN_IF_ERROR(CheckMount(mount_));
  const std::string prefix = KeyPrefix(mount_);
  std::vector<std::string> names;
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadOnly));
  std::string after;
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(prefix, after, 1000));
    for (const auto& [meta, value] : page.items) names.push_back(meta.substr(prefix.size()));
    if (!page.truncated) break;
    after = page.next_marker;
  }
  KMS_RETURN_IF_ERROR(tx->Commit());
  return names;
}

Status TransitKeyring::DeleteKey(const KeyBinding& key) {
  const std::string_view name = key.name();
  KMS_RETURN_IF_ERROR(CheckMount(mount_));
  KMS_RETURN_IF_ERROR(CheckName(name));
  TransitKeyRecord record;
  {
    // Checked and unbound in one transaction, so a concurrent config change or re-creation cannot
    // slip between.
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadWrite));
    const std::string meta = KeyPrefix(mount_) + std::string(name);
    KMS_ASSIGN_OR_RETURN(record,
                         ReadRecordIn(*tx, mount_, key, "could not delete key; not found"));
    if (!record.deletion_allowed()) {
      return FailedPreconditionError("deletion is not allowed for this key");
    }
    KMS_RETURN_IF_ERROR(tx->DeleteMeta(meta));
    KMS_RETURN_IF_ERROR(tx->Commit());
  }
  // The name is free now; the rest only tidies the AWS side (a crash here leaves a live unbound
  // key).
  const std::string alias = "alias/vault/" + mount_ + "/" + std::string(name);
  auto target = service_.DescribeKey(DescribeKeyRequest{alias});
  if (target && target->key_metadata.key_id == record.key_id()) {
    (void)service_.DeleteAlias(DeleteAliasRequest{alias});
  }
  ScheduleKeyDeletionRequest del;
  del.key_id = record.key_id();
  del.pending_window_in_days = kDeletionWindowDays;
  auto scheduled = service_.ScheduleKeyDeletion(del);
  // Already pending deletion (scheduled through the AWS door): nothing more to do.
  if (!scheduled && scheduled.error().code() != StatusCode::kFailedPrecondition) {
    return scheduled.error();
  }
  return Status();
}

StatusOr<TransitKeyInfo> TransitKeyring::UpdateConfig(const KeyBinding& key,
                                                      const TransitKeyConfigUpdate& update) {
  const std::string_view name = key.name();
  const std::string not_found = "no existing key named " + std::string(name) + " could be found";
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord before, ReadRecord(store_, mount_, key, not_found));
  if (update.exportable.value_or(false)) {
    return InvalidArgumentError(
        "exportable keys are not supported by this appliance: key material never leaves the HSM");
  }
  if (update.allow_plaintext_backup.value_or(false)) {
    return InvalidArgumentError(
        "plaintext backup is not supported by this appliance: key material never leaves the HSM");
  }
  if (update.auto_rotate_period_ms) {
    KMS_RETURN_IF_ERROR(CheckAutoRotatePeriod(*update.auto_rotate_period_ms));
    if (*update.auto_rotate_period_ms != 0 && TypeOf(before) != TransitKeyType::kAes256Gcm96) {
      return InvalidArgumentError("auto rotation is not supported for keys of type " +
                                  TypeName(TypeOf(before)) +
                                  ": only aes256-gcm96 keys rotate on this appliance");
    }
  }
  // Versions only grow, so a latest read before the transaction is a safe bound.
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, before));
  TransitKeyRecord r;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadWrite));
    const std::string meta = KeyPrefix(mount_) + std::string(name);
    // The key checked above (its `latest`), whichever way `key` binds.
    KMS_ASSIGN_OR_RETURN(
        r, ReadRecordIn(*tx, mount_, KeyBinding::Decided(name, before.key_id()), not_found));
    // Vault's path_config.go, in its order and with its texts.
    if (update.min_decryption_version) {
      std::int64_t v = *update.min_decryption_version;
      if (v < 0) return InvalidArgumentError("min decryption version cannot be negative");
      if (v == 0) v = 1;  // Vault: numbering starts at 1, forcing the minimum to 1
      if (v != std::int64_t{r.min_decryption_version()}) {
        if (v > std::int64_t{latest}) {
          return InvalidArgumentError("cannot set min decryption version of " + std::to_string(v) +
                                      ", latest key version is " + std::to_string(latest));
        }
        r.set_min_decryption_version(static_cast<std::uint32_t>(v));
      }
    }
    if (update.min_encryption_version) {
      const std::int64_t v = *update.min_encryption_version;
      if (v < 0) return InvalidArgumentError("min encryption version cannot be negative");
      if (v > std::int64_t{latest}) {
        return InvalidArgumentError("cannot set min encryption version of " + std::to_string(v) +
                                    ", latest key version is " + std::to_string(latest));
      }
      r.set_min_encryption_version(static_cast<std::uint32_t>(v));
    }
    if (r.min_encryption_version() > 0 && r.min_encryption_version() < r.min_decryption_version()) {
      return InvalidArgumentError(
          "cannot set min encryption/decryption values; min encryption version of " +
          std::to_string(r.min_encryption_version()) +
          " must be greater than or equal to min decryption version of " +
          std::to_string(r.min_decryption_version()));
    }
    if (update.deletion_allowed) r.set_deletion_allowed(*update.deletion_allowed);
    if (update.auto_rotate_period_ms) r.set_auto_rotate_period_ms(*update.auto_rotate_period_ms);
    r.set_record_version(store::kRecordVersion);
    KMS_RETURN_IF_ERROR(tx->PutMeta(meta, r.SerializeAsString()));
    KMS_RETURN_IF_ERROR(tx->Commit());
  }
  return Info(service_, r);
}

StatusOr<TransitKeyInfo> TransitKeyring::Rotate(const KeyBinding& key) {
  const std::string_view name = key.name();
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r, ReadRecord(store_, mount_, key, "key not found"));
  if (TypeOf(r) != TransitKeyType::kAes256Gcm96) {
    return InvalidArgumentError("rotation is not supported for keys of type " +
                                TypeName(TypeOf(r)) +
                                " on this appliance: only aes256-gcm96 keys rotate");
  }
  KMS_RETURN_IF_ERROR(StatusOf(service_.RotateKeyUnbounded(r.key_id())));
  const std::int64_t now = clock_.NowMs();
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadWrite));
    const std::string meta = KeyPrefix(mount_) + std::string(name);
    // The record of the key just rotated: deleted meanwhile is "key not found", and a name bound
    // to another key since keeps that key's record untouched.
    KMS_ASSIGN_OR_RETURN(
        r, ReadRecordIn(*tx, mount_, KeyBinding::Decided(name, r.key_id()), "key not found"));
    r.set_last_rotation_time_ms(std::max(r.last_rotation_time_ms(), now));
    r.set_record_version(store::kRecordVersion);
    KMS_RETURN_IF_ERROR(tx->PutMeta(meta, r.SerializeAsString()));
    KMS_RETURN_IF_ERROR(tx->Commit());
  }
  return Info(service_, r);
}

// ---- cryptography ---------------------------------------------------------------------------
Status CheckEncryptPlaintext(const SecretBytes& plaintext) {
  if (plaintext.empty() || plaintext.size() > kMaxCryptoInput) {
    return InvalidArgumentError("plaintext must be 1 to 4096 bytes on this appliance");
  }
  return Status::Ok();
}

StatusOr<TransitCiphertext> TransitKeyring::Encrypt(const KeyBinding& key,
                                                    const EncryptInput& input) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "encryption key not found"));
  KMS_RETURN_IF_ERROR(CheckEncryptionType(r, "encryption"));
  KMS_RETURN_IF_ERROR(CheckContext(r, input.context));
  KMS_RETURN_IF_ERROR(CheckBoundSize(r, input.context, input.associated_data));
  KMS_RETURN_IF_ERROR(CheckEncryptPlaintext(input.plaintext));
  KMS_ASSIGN_OR_RETURN(auto version,
                       EncryptionVersion(service_, r, input.key_version, "encryption"));
  EncryptRequest req;
  req.key_id = r.key_id();
  req.plaintext = input.plaintext.Clone();
  req.encryption_context = ContextOf(r, input.context, input.associated_data);
  req.key_version = version;
  KMS_ASSIGN_OR_RETURN(EncryptResponse out, service_.Encrypt(req));
  // The blob names the version that sealed it (a GCM-bound rotation may have moved the current
  // one).
  const std::uint32_t used = BlobVersion(out.ciphertext_blob);
  return TransitCiphertext{VersionPrefix(used) + Base64Encode(out.ciphertext_blob), used};
}

StatusOr<SecretBytes> TransitKeyring::Decrypt(const KeyBinding& key, const DecryptInput& input) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "encryption key not found"));
  KMS_RETURN_IF_ERROR(CheckEncryptionType(r, "decryption"));
  KMS_RETURN_IF_ERROR(CheckContext(r, input.context));
  KMS_RETURN_IF_ERROR(CheckBoundSize(r, input.context, input.associated_data));
  KMS_ASSIGN_OR_RETURN(VersionedValue value, ParseVersioned(input.ciphertext, "ciphertext"));
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, r));
  KMS_RETURN_IF_ERROR(CheckReadableVersion(value.version, latest, r, "ciphertext"));
  auto blob = Base64Decode(value.payload);
  if (!blob) return InvalidArgumentError("invalid ciphertext: could not decode base64");
  // The blob must be this key's, at the version the string names: anything else is the one
  // authentication failure (no oracle on which check failed).
  auto parsed = ParseCiphertextBlob(*blob);
  if (!parsed || FormatKeyId(parsed->key_id) != r.key_id() ||
      std::int64_t{parsed->key_version} != value.version) {
    return InvalidArgumentError(std::string(kAuthFailed));
  }
  DecryptRequest req;
  req.ciphertext_blob = std::move(*blob);
  req.encryption_context = ContextOf(r, input.context, input.associated_data);
  req.key_id = r.key_id();
  auto out = service_.Decrypt(req);
  if (!out) {
    if (out.error().code() == StatusCode::kInvalidArgument) {
      return InvalidArgumentError(std::string(kAuthFailed));
    }
    return out.error();
  }
  return std::move(out->plaintext);
}

StatusOr<TransitCiphertext> TransitKeyring::Rewrap(const KeyBinding& key, const DecryptInput& input,
                                                   std::optional<std::int64_t> key_version) {
  KMS_ASSIGN_OR_RETURN(SecretBytes plaintext, Decrypt(key, input));
  EncryptInput again;
  again.plaintext = std::move(plaintext);
  again.context = input.context;
  again.associated_data = input.associated_data;
  again.key_version = key_version;
  return Encrypt(key, again);
}

StatusOr<TransitDataKey> TransitKeyring::GenerateDataKey(const KeyBinding& key, std::int64_t bits,
                                                         const Bytes& context,
                                                         const Bytes& associated_data,
                                                         std::optional<std::int64_t> key_version,
                                                         bool with_plaintext) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "encryption key not found"));
  if (bits != 128 && bits != 256 && bits != 512) return InvalidArgumentError("invalid bits value");
  KMS_RETURN_IF_ERROR(CheckEncryptionType(r, "encryption"));
  KMS_RETURN_IF_ERROR(CheckContext(r, context));
  KMS_RETURN_IF_ERROR(CheckBoundSize(r, context, associated_data));
  KMS_ASSIGN_OR_RETURN(auto version, EncryptionVersion(service_, r, key_version, "encryption"));
  GenerateDataKeyRequest req;
  req.key_id = r.key_id();
  req.encryption_context = ContextOf(r, context, associated_data);
  req.number_of_bytes = bits / 8;
  req.key_version = version;
  TransitDataKey out;
  Bytes blob;
  if (with_plaintext) {
    KMS_ASSIGN_OR_RETURN(GenerateDataKeyResponse made, service_.GenerateDataKey(req));
    blob = std::move(made.ciphertext_blob);
    out.plaintext = std::move(made.plaintext);
  } else {
    KMS_ASSIGN_OR_RETURN(GenerateDataKeyWithoutPlaintextResponse made,
                         service_.GenerateDataKeyWithoutPlaintext(req));
    blob = std::move(made.ciphertext_blob);
  }
  out.key_version = BlobVersion(blob);
  out.ciphertext = VersionPrefix(out.key_version) + Base64Encode(blob);
  return out;
}

namespace {
Status CheckHmacRequest(const TransitKeyRecord& r, std::string_view name, const SecretBytes& input,
                        std::string_view algorithm) {
  if (TypeOf(r) != TransitKeyType::kHmac) {
    return InvalidArgumentError("HMAC is not supported for keys of type " + TypeName(TypeOf(r)) +
                                " on this appliance; create a key of type hmac");
  }
  if (!algorithm.empty() && algorithm != "sha2-256") {
    if (algorithm == "sha2-224" || algorithm == "sha2-384" || algorithm == "sha2-512" ||
        algorithm == "sha1" || algorithm.starts_with("sha3-")) {
      return InvalidArgumentError("hmac algorithm " + std::string(algorithm) +
                                  " is not supported by key " + std::string(name) +
                                  ": its key is HMAC_256 (sha2-256)");
    }
    return InvalidArgumentError("unsupported algorithm " + std::string(algorithm));
  }
  if (input.empty() || input.size() > kMaxCryptoInput) {
    return InvalidArgumentError("input must be 1 to 4096 bytes for hmac on this appliance");
  }
  return Status();
}
}  // namespace

StatusOr<std::string> TransitKeyring::Hmac(const KeyBinding& key, const SecretBytes& input,
                                           std::string_view algorithm,
                                           std::optional<std::int64_t> key_version) {
  const std::string_view name = key.name();
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "encryption key not found"));
  KMS_RETURN_IF_ERROR(CheckHmacRequest(r, name, input, algorithm));
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, r));
  // hmac keys never rotate here, and the key service MACs with the current version only.
  if (key_version && *key_version != 0 && *key_version != std::int64_t{latest}) {
    return InvalidArgumentError("invalid key version");
  }
  GenerateMacRequest req;
  req.key_id = r.key_id();
  req.message = input.Clone();
  req.mac_algorithm = MacAlgorithm::kHmacSha256;
  KMS_ASSIGN_OR_RETURN(GenerateMacResponse out, service_.GenerateMac(req));
  return VersionPrefix(latest) + Base64Encode(out.mac);
}

StatusOr<bool> TransitKeyring::VerifyHmac(const KeyBinding& key, const SecretBytes& input,
                                          std::string_view hmac, std::string_view algorithm) {
  const std::string_view name = key.name();
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "encryption key not found"));
  KMS_RETURN_IF_ERROR(CheckHmacRequest(r, name, input, algorithm));
  KMS_ASSIGN_OR_RETURN(VersionedValue value, ParseVersioned(hmac, "HMAC"));
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, r));
  KMS_RETURN_IF_ERROR(CheckReadableVersion(value.version, latest, r, "HMAC"));
  auto mac = Base64Decode(value.payload);
  if (!mac) return InvalidArgumentError("invalid HMAC: could not decode base64");
  if (mac->empty() || mac->size() > kMaxSignatureOrMac) return false;
  VerifyMacRequest req;
  req.key_id = r.key_id();
  req.message = input.Clone();
  req.mac_algorithm = MacAlgorithm::kHmacSha256;
  req.mac = std::move(*mac);
  auto out = service_.VerifyMac(req);
  if (!out) {
    if (out.error().code() == StatusCode::kInvalidArgument &&
        out.error().reason() == Reason::kInvalidMac) {
      return false;
    }
    return out.error();
  }
  return true;
}

StatusOr<TransitSignature> TransitKeyring::Sign(const KeyBinding& key, const SecretBytes& input,
                                                const SignOptions& options) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "signing key not found"));
  const TransitKeyType type = TypeOf(r);
  KMS_ASSIGN_OR_RETURN(SigningPlan plan, PlanSignature(type, input, options));
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, r));
  if (options.key_version && *options.key_version != 0) {
    // Asymmetric keys never rotate here: the one version is the latest.
    if (*options.key_version < 0) return InvalidArgumentError("invalid key version");
    if (*options.key_version > std::int64_t{latest}) {
      return InvalidArgumentError(
          "requested version for signing is higher than the latest key version");
    }
    if (*options.key_version < std::int64_t{r.min_encryption_version()}) {
      return InvalidArgumentError(
          "requested version for signing is less than the minimum encryption key version");
    }
  }
  SignRequest req;
  req.key_id = r.key_id();
  req.message = std::move(plan.digest);
  req.message_type = MessageType::kDigest;
  req.signing_algorithm = plan.algorithm;
  KMS_ASSIGN_OR_RETURN(SignResponse out, service_.Sign(req));
  std::string encoded;
  if (plan.jws) {
    if (IsEcdsa(type)) {
      KMS_ASSIGN_OR_RETURN(Bytes raw, DerToRaw(out.signature, EcdsaFieldSize(type)));
      encoded = Base64UrlEncode(raw);
    } else {
      encoded = Base64UrlEncode(out.signature);  // Vault: jws changes only the encoding for RSA
    }
  } else {
    encoded = Base64Encode(out.signature);
  }
  return TransitSignature{VersionPrefix(latest) + encoded, latest};
}

StatusOr<bool> TransitKeyring::Verify(const KeyBinding& key, const SecretBytes& input,
                                      std::string_view signature, const SignOptions& options) {
  KMS_ASSIGN_OR_RETURN(TransitKeyRecord r,
                       ReadRecord(store_, mount_, key, "signature verification key not found"));
  const TransitKeyType type = TypeOf(r);
  KMS_ASSIGN_OR_RETURN(SigningPlan plan, PlanSignature(type, input, options));
  KMS_ASSIGN_OR_RETURN(VersionedValue value, ParseVersioned(signature, "signature"));
  KMS_ASSIGN_OR_RETURN(std::uint32_t latest, LatestVersion(service_, r));
  KMS_RETURN_IF_ERROR(CheckReadableVersion(value.version, latest, r, "signature"));
  auto decoded = plan.jws ? Base64UrlDecode(value.payload) : Base64Decode(value.payload);
  if (!decoded) return InvalidArgumentError("invalid base64 signature value");
  Bytes sig = std::move(*decoded);
  if (plan.jws && IsEcdsa(type)) {
    auto der = RawToDer(sig, EcdsaFieldSize(type));
    if (!der) return false;
    sig = std::move(*der);
  }
  if (sig.empty() || sig.size() > kMaxSignatureOrMac) return false;
  VerifyRequest req;
  req.key_id = r.key_id();
  req.message = std::move(plan.digest);
  req.message_type = MessageType::kDigest;
  req.signature = std::move(sig);
  req.signing_algorithm = plan.algorithm;
  auto out = service_.Verify(req);
  if (!out) {
    if (out.error().code() == StatusCode::kInvalidArgument &&
        out.error().reason() == Reason::kInvalidSignature) {
      return false;
    }
    return out.error();
  }
  return true;
}

StatusOr<SecretBytes> TransitKeyring::Random(std::int64_t bytes) {
  if (bytes < 1) return InvalidArgumentError("\"bytes\" cannot be less than 1");
  if (bytes > kMaxRandomBytes) {
    return InvalidArgumentError("\"bytes\" cannot be greater than " +
                                std::to_string(kMaxRandomBytes));
  }
  SecretBytes out;
  std::size_t left = static_cast<std::size_t>(bytes);
  while (left > 0) {
    const std::size_t n = std::min(left, kRandomChunk);
    GenerateRandomRequest req;
    req.number_of_bytes = static_cast<std::int64_t>(n);
    KMS_ASSIGN_OR_RETURN(GenerateRandomResponse chunk, service_.GenerateRandom(req));
    out.Append(chunk.plaintext.ExposeSecret());
    left -= n;
  }
  return out;
}

StatusOr<Bytes> TransitKeyring::Hash(std::string_view algorithm, ByteView input) {
  if (algorithm.empty() || algorithm == "sha2-256") return Sha2(hal::HashAlgorithm::kSha256, input);
  if (algorithm == "sha2-224") return Sha2(hal::HashAlgorithm::kSha224, input);
  if (algorithm == "sha2-384") return Sha2(hal::HashAlgorithm::kSha384, input);
  if (algorithm == "sha2-512") return Sha2(hal::HashAlgorithm::kSha512, input);
  if (algorithm.starts_with("sha3-")) {
    return InvalidArgumentError("hash algorithm " + std::string(algorithm) +
                                " is not supported by this appliance");
  }
  return InvalidArgumentError("unsupported algorithm " + std::string(algorithm));
}

StatusOr<std::size_t> TransitKeyring::RotateDue(std::int64_t now_ms) {
  KMS_RETURN_IF_ERROR(CheckMount(mount_));
  const std::string prefix = KeyPrefix(mount_);
  std::vector<std::string> due;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(store::TransactionMode::kReadOnly));
    std::string after;
    for (;;) {
      KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(prefix, after, 1000));
      for (const auto& [meta, value] : page.items) {
        auto r = ParseRecord(value);
        if (!r || r->auto_rotate_period_ms() <= 0) continue;
        const std::int64_t last = std::max(r->last_rotation_time_ms(), r->creation_time_ms());
        if (last + r->auto_rotate_period_ms() <= now_ms) due.push_back(r->name());
      }
      if (!page.truncated) break;
      after = page.next_marker;
    }
    KMS_RETURN_IF_ERROR(tx->Commit());
  }
  std::size_t rotated = 0;
  for (const std::string& name : due) {
    if (Rotate(name).has_value()) ++rotated;  // a failure is retried on the next pass
  }
  return rotated;
}

}  // namespace kms::firmware::transit
