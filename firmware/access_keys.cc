// AccessKeyRegistry implementation. See access_keys.h for the contract.
#include "firmware/access_keys.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "hal/key_types.h"

namespace kms::firmware {
namespace {

using store::AccessKeyRecord;
using store::MetadataStore;
using store::Transaction;
using store::TransactionMode;

// The sealing key new secrets are sealed under. Records name the version that sealed them, so a
// rotation would add version 2 here and keep opening version 1 records.
constexpr std::uint32_t kCurrentSealingKeyVersion = 1;
constexpr std::string_view kSealingKeyMetaPrefix = "access_keys.sealing_key.";
// AAD of a sealed secret: a domain label (this key seals nothing else) plus the access key id.
constexpr std::string_view kSealAadLabel = "kms.access-key-secret.v1:";
// One message for unknown and inactive keys: the door must not be able to tell them apart.
constexpr std::string_view kUnknownAccessKey = "unknown access key";

// AWS secret access keys are 40 characters of base64's alphabet (A-Z a-z 0-9 + /).
constexpr std::string_view kSecretAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
static_assert(kSecretAlphabet.size() == 64);
// Access key ids are upper-case alphanumerics, as AWS's AKIA... ids.
constexpr std::string_view kIdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
static_assert(kIdAlphabet.size() == 36);

std::string MetaName(std::uint32_t version) {
  return std::string(kSealingKeyMetaPrefix) + std::to_string(version);
}

std::string Aad(std::string_view access_key_id) {
  std::string aad(kSealAadLabel);
  aad += access_key_id;
  return aad;
}

std::string Fingerprint(const AccessKeyRecord& r) {
  std::string f = std::to_string(r.sealing_key_version());
  f += ':';
  f += std::to_string(r.sealed_iv().size()) + ':' + r.sealed_iv();
  f += std::to_string(r.sealed_ciphertext().size()) + ':' + r.sealed_ciphertext();
  f += r.sealed_tag();
  return f;
}

bool IsSecretCharacter(std::uint8_t c) {
  return kSecretAlphabet.find(static_cast<char>(c)) != std::string_view::npos;
}

// IAM user names: 1..64 of [\w+=,.@-] (IAM API reference, CreateUser UserName).
Status ValidatePrincipal(std::string_view principal) {
  if (principal.empty() || principal.size() > 64) {
    return InvalidArgumentError(
        "access key principal must be an IAM user name of 1..64 characters");
  }
  for (const char c : principal) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '=' || c == ',' || c == '.' || c == '@' || c == '_' ||
                    c == '-';
    if (!ok) {
      return InvalidArgumentError(
          "access key principal must be an IAM user name (A-Z a-z 0-9 + = , . @ _ -)");
    }
  }
  return Status::Ok();
}

bool IsStale(const Status& s) {
  return s.code() == StatusCode::kUnavailable && s.reason() == Reason::kHandleStale;
}

AccessKeyInfo ToInfo(const AccessKeyRecord& r) {
  return AccessKeyInfo{r.access_key_id(), r.principal(),
                       r.status() == records::ACCESS_KEY_STATUS_ACTIVE, r.administrator(),
                       r.creation_time_ms()};
}

// Parses and checks a stored sealing key (meta values are free-form to the store, so the record
// version checks the store applies to its tables are repeated here).
StatusOr<hal::WrappedKey> ParseSealingKey(std::string_view value, std::uint32_t version) {
  records::SealingKeyRecord record;
  if (value.size() > static_cast<std::size_t>(INT32_MAX) ||
      !record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return DataLossError("access keys: the stored sealing key does not parse");
  }
  if (record.record_version() == 0) {
    return DataLossError("access keys: the stored sealing key has no record_version");
  }
  if (record.record_version() > store::kRecordVersion) {
    return FailedPreconditionError(
        "access keys: the stored sealing key was written by newer firmware");
  }
  if (record.version() != version || record.algorithm() != records::HAL_ALGORITHM_AES_256 ||
      record.purpose() != records::HAL_PURPOSE_ENCRYPT_DECRYPT || record.wrapped().empty()) {
    return DataLossError("access keys: the stored sealing key " + std::to_string(version) +
                         " is malformed");
  }
  hal::WrappedKey wrapped;
  wrapped.algorithm = hal::KeyAlgorithm::kAes256;
  wrapped.purpose = hal::KeyPurpose::kEncryptDecrypt;
  wrapped.wrapped = ToBytes(record.wrapped());
  return wrapped;
}

// Draws `n` characters uniformly from `alphabet` (size <= 256) with the HSM RNG, by rejection
// sampling: a byte is used only below the largest multiple of the alphabet size, so no character is
// likelier than another.
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

// Unwraps a stored sealing key. A blob the device refuses (GCM/KWP authentication) was not wrapped
// by this appliance's domain key or was damaged: stored data is wrong, hence DataLoss.
StatusOr<hal::KeyHandle> UnwrapSealingKey(hal::Hsm& hsm, std::string_view value,
                                          std::uint32_t version) {
  KMS_ASSIGN_OR_RETURN(hal::WrappedKey wrapped, ParseSealingKey(value, version));
  auto key = hsm.UnwrapKey(wrapped);
  if (!key.has_value() && key.error().code() == StatusCode::kInvalidArgument) {
    return DataLossError("access keys: the stored sealing key " + std::to_string(version) +
                         " does not unwrap under this domain key");
  }
  return key;
}

}  // namespace

AccessKeyRegistry::AccessKeyRegistry(hal::Hsm& hsm, MetadataStore& store, const Clock& clock,
                                     AccessKeyRegistryOptions options)
    : hsm_(hsm), store_(store), clock_(clock), options_(options) {}

// ---- sealing key ------------------------------------------------------------------------------

StatusOr<hal::KeyHandle> AccessKeyRegistry::SealingKey(std::uint32_t version) {
  {
    std::lock_guard lock(mu_);
    if (auto it = sealing_keys_.find(version); it != sealing_keys_.end()) return it->second;
  }
  KMS_ASSIGN_OR_RETURN(hal::KeyHandle handle, LoadOrCreateSealingKey(version));
  std::lock_guard lock(mu_);
  sealing_keys_.insert_or_assign(version, handle);
  return handle;
}

StatusOr<hal::KeyHandle> AccessKeyRegistry::LoadOrCreateSealingKey(std::uint32_t version) {
  const std::string name = MetaName(version);
  {
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
    auto value = txn->GetMeta(name);
    if (value.has_value()) return UnwrapSealingKey(hsm_, *value, version);
    if (value.error().code() != StatusCode::kNotFound) return value.error();
  }
  // Only the current version is ever created; an older one that is missing was lost.
  if (version != kCurrentSealingKeyVersion) {
    return DataLossError("access keys: sealing key " + std::to_string(version) + " is missing");
  }
  // Created under the store's write lock, after re-reading: a process that lost the race finds the
  // winner's key here and uses it.
  std::lock_guard creating(sealing_create_mu_);
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  auto value = txn->GetMeta(name);
  if (value.has_value()) return UnwrapSealingKey(hsm_, *value, version);
  if (value.error().code() != StatusCode::kNotFound) return value.error();
  KMS_ASSIGN_OR_RETURN(hal::KeyHandle key, hsm_.GenerateKey(hal::KeyAlgorithm::kAes256,
                                                            hal::KeyPurpose::kEncryptDecrypt));
  KMS_ASSIGN_OR_RETURN(hal::WrappedKey wrapped, hsm_.WrapKey(key));
  records::SealingKeyRecord record;
  record.set_record_version(store::kRecordVersion);
  record.set_version(version);
  record.set_algorithm(records::HAL_ALGORITHM_AES_256);
  record.set_purpose(records::HAL_PURPOSE_ENCRYPT_DECRYPT);
  record.set_wrapped(ToString(wrapped.wrapped));
  record.set_creation_time_ms(clock_.NowMs());
  std::string serialized;
  if (!record.SerializeToString(&serialized)) {
    return InternalError("access keys: sealing key serialization failed");
  }
  KMS_RETURN_IF_ERROR(txn->PutMeta(name, serialized));
  KMS_RETURN_IF_ERROR(txn->Commit());
  return key;
}

void AccessKeyRegistry::ForgetSealingKey(std::uint32_t version) {
  std::lock_guard lock(mu_);
  sealing_keys_.erase(version);
}

// ---- sealing and opening ----------------------------------------------------------------------

StatusOr<AccessKeyRecord> AccessKeyRegistry::NewRecord(std::string_view principal,
                                                       bool administrator,
                                                       SecretBytes& secret_out) {
  KMS_ASSIGN_OR_RETURN(
      SecretBytes id_suffix,
      RandomString(hsm_, kIdAlphabet, kAccessKeyIdLength - kAccessKeyIdPrefix.size()));
  std::string id(kAccessKeyIdPrefix);
  id += AsStringView(id_suffix.ExposeSecret());  // an id is not secret
  KMS_ASSIGN_OR_RETURN(SecretBytes secret,
                       RandomString(hsm_, kSecretAlphabet, kAccessKeySecretLength));
  const std::string aad = Aad(id);
  hal::GcmCiphertext sealed;
  for (int attempt = 0;; ++attempt) {
    KMS_ASSIGN_OR_RETURN(hal::KeyHandle key, SealingKey(kCurrentSealingKeyVersion));
    auto result = hsm_.EncryptAesGcm(key, secret.ExposeSecret(), AsBytes(aad));
    if (result.has_value()) {
      sealed = std::move(*result);
      break;
    }
    // A device re-initialisation left the cached handle stale: unwrap again, once.
    if (attempt == 0 && IsStale(result.error())) {
      ForgetSealingKey(kCurrentSealingKeyVersion);
      continue;
    }
    return result.error();
  }
  AccessKeyRecord record;
  record.set_access_key_id(id);
  record.set_principal(std::string(principal));
  record.set_status(records::ACCESS_KEY_STATUS_ACTIVE);
  record.set_creation_time_ms(clock_.NowMs());
  record.set_administrator(administrator);
  record.set_sealed_iv(ToString(sealed.iv));
  record.set_sealed_ciphertext(ToString(sealed.ciphertext));
  record.set_sealed_tag(ToString(sealed.tag));
  record.set_sealing_key_version(kCurrentSealingKeyVersion);
  secret_out = std::move(secret);
  return record;
}

StatusOr<SecretBytes> AccessKeyRegistry::Open(const AccessKeyRecord& record) {
  const std::string aad = Aad(record.access_key_id());
  for (int attempt = 0;; ++attempt) {
    KMS_ASSIGN_OR_RETURN(hal::KeyHandle key, SealingKey(record.sealing_key_version()));
    auto secret =
        hsm_.DecryptAesGcm(key, AsBytes(record.sealed_iv()), AsBytes(record.sealed_ciphertext()),
                           AsBytes(record.sealed_tag()), AsBytes(aad));
    if (secret.has_value()) {
      if (secret->size() != kAccessKeySecretLength) {
        return DataLossError("access keys: the secret of " + record.access_key_id() +
                             " has the wrong length");
      }
      for (const std::uint8_t c : secret->ExposeSecret()) {
        if (!IsSecretCharacter(c)) {
          return DataLossError("access keys: the secret of " + record.access_key_id() +
                               " is malformed");
        }
      }
      return std::move(*secret);
    }
    if (attempt == 0 && IsStale(secret.error())) {
      ForgetSealingKey(record.sealing_key_version());
      continue;
    }
    // GCM authentication failed (tampered record, secret moved from another key's record, or
    // another sealing key): the stored data is wrong, which is neither the caller's fault nor
    // "unknown key". The HAL's invalid-IV/tag-length answer (InvalidArgument) means the same here.
    if (secret.error().code() == StatusCode::kInvalidArgument) {
      return DataLossError("access keys: the sealed secret of " + record.access_key_id() +
                           " does not open");
    }
    return secret.error();
  }
}

StatusOr<SecretBytes> AccessKeyRegistry::OpenCached(const AccessKeyRecord& record) {
  const std::string fingerprint = Fingerprint(record);
  if (options_.secret_cache_capacity > 0) {
    std::lock_guard lock(mu_);
    auto it = secrets_.find(record.access_key_id());
    if (it != secrets_.end() && it->second.sealed_fingerprint == fingerprint) {
      lru_.splice(lru_.begin(), lru_, it->second.lru_position);
      return it->second.secret.Clone();
    }
  }
  KMS_ASSIGN_OR_RETURN(SecretBytes secret, Open(record));
  if (options_.secret_cache_capacity > 0) {
    std::lock_guard lock(mu_);
    auto it = secrets_.find(record.access_key_id());
    if (it != secrets_.end()) {
      it->second.sealed_fingerprint = fingerprint;
      it->second.secret = secret.Clone();
      lru_.splice(lru_.begin(), lru_, it->second.lru_position);
    } else {
      while (secrets_.size() >= options_.secret_cache_capacity && !lru_.empty()) {
        secrets_.erase(lru_.back());
        lru_.pop_back();
      }
      lru_.push_front(record.access_key_id());
      secrets_.emplace(record.access_key_id(),
                       CachedSecret{fingerprint, secret.Clone(), lru_.begin()});
    }
  }
  return secret;
}

void AccessKeyRegistry::ForgetSecret(std::string_view access_key_id) {
  std::lock_guard lock(mu_);
  auto it = secrets_.find(std::string(access_key_id));
  if (it == secrets_.end()) return;
  lru_.erase(it->second.lru_position);
  secrets_.erase(it);  // SecretBytes wipes itself
}

// ---- operations -------------------------------------------------------------------------------

StatusOr<CreatedAccessKey> AccessKeyRegistry::Create(std::string_view principal,
                                                     bool administrator) {
  KMS_RETURN_IF_ERROR(ValidatePrincipal(principal));
  // 36^16 (about 2^82) ids: a collision is not expected, but an AlreadyExists must never surface.
  for (int attempt = 0; attempt < 3; ++attempt) {
    SecretBytes secret;
    KMS_ASSIGN_OR_RETURN(AccessKeyRecord record, NewRecord(principal, administrator, secret));
    KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
    const Status inserted = txn->InsertAccessKey(record);
    if (inserted.code() == StatusCode::kAlreadyExists) continue;
    KMS_RETURN_IF_ERROR(inserted);
    KMS_RETURN_IF_ERROR(txn->Commit());
    return CreatedAccessKey{record.access_key_id(), std::move(secret)};
  }
  return InternalError("access keys: could not draw an unused access key id");
}

StatusOr<store::Page<AccessKeyInfo>> AccessKeyRegistry::List(std::string_view after,
                                                             std::size_t limit) {
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(store::Page<AccessKeyRecord> records, txn->ListAccessKeys(after, limit));
  store::Page<AccessKeyInfo> page;
  page.items.reserve(records.items.size());
  for (const AccessKeyRecord& r : records.items) page.items.push_back(ToInfo(r));
  page.truncated = records.truncated;
  page.next_marker = std::move(records.next_marker);
  return page;
}

Status AccessKeyRegistry::SetStatus(std::string_view access_key_id, bool active) {
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(AccessKeyRecord record, txn->GetAccessKey(access_key_id));
  const auto status =
      active ? records::ACCESS_KEY_STATUS_ACTIVE : records::ACCESS_KEY_STATUS_INACTIVE;
  if (record.status() != status) {
    record.set_status(status);
    KMS_RETURN_IF_ERROR(txn->UpdateAccessKey(record));
  }
  KMS_RETURN_IF_ERROR(txn->Commit());
  if (!active) ForgetSecret(access_key_id);
  return Status::Ok();
}

Status AccessKeyRegistry::Delete(std::string_view access_key_id) {
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  KMS_RETURN_IF_ERROR(txn->DeleteAccessKey(access_key_id));
  KMS_RETURN_IF_ERROR(txn->Commit());
  ForgetSecret(access_key_id);
  return Status::Ok();
}

StatusOr<AccessKeyRecord> AccessKeyRegistry::ReadActive(std::string_view access_key_id) {
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadOnly));
  auto record = txn->GetAccessKey(access_key_id);
  if (!record.has_value()) {
    if (record.error().code() == StatusCode::kNotFound) {
      return NotFoundError(std::string(kUnknownAccessKey));
    }
    return record.error();
  }
  if (record->status() != records::ACCESS_KEY_STATUS_ACTIVE) {
    ForgetSecret(access_key_id);  // deactivated, perhaps by another process
    return NotFoundError(std::string(kUnknownAccessKey));
  }
  return std::move(*record);
}

StatusOr<ResolvedAccessKey> AccessKeyRegistry::Lookup(std::string_view access_key_id) {
  KMS_ASSIGN_OR_RETURN(AccessKeyRecord record, ReadActive(access_key_id));
  KMS_ASSIGN_OR_RETURN(SecretBytes secret, OpenCached(record));
  return ResolvedAccessKey{std::move(secret), record.principal(), record.administrator()};
}

StatusOr<SecretBytes> AccessKeyRegistry::RevealSecret(std::string_view access_key_id) {
  KMS_ASSIGN_OR_RETURN(AccessKeyRecord record, ReadActive(access_key_id));
  return OpenCached(record);
}

StatusOr<std::string> AccessKeyRegistry::EnsureBootstrapAdmin(std::string_view principal) {
  KMS_RETURN_IF_ERROR(ValidatePrincipal(principal));
  // The sealing key first: it takes its own write transaction, which must not nest in the one
  // below.
  KMS_RETURN_IF_ERROR(StatusOf(SealingKey(kCurrentSealingKeyVersion)));
  KMS_ASSIGN_OR_RETURN(auto txn, store_.Begin(TransactionMode::kReadWrite));
  std::string after;
  for (;;) {
    KMS_ASSIGN_OR_RETURN(store::Page<AccessKeyRecord> page,
                         txn->ListAccessKeys(after, store::kMaxPageLimit));
    for (const AccessKeyRecord& r : page.items) {
      if (r.administrator() && r.status() == records::ACCESS_KEY_STATUS_ACTIVE) {
        return r.access_key_id();
      }
    }
    if (!page.truncated) break;
    after = std::move(page.next_marker);
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    SecretBytes secret;
    KMS_ASSIGN_OR_RETURN(AccessKeyRecord record,
                         NewRecord(principal, /*administrator=*/true, secret));
    const Status inserted = txn->InsertAccessKey(record);
    if (inserted.code() == StatusCode::kAlreadyExists) continue;
    KMS_RETURN_IF_ERROR(inserted);
    KMS_RETURN_IF_ERROR(txn->Commit());
    return record.access_key_id();
  }
  return InternalError("access keys: could not draw an unused access key id");
}

}  // namespace kms::firmware
