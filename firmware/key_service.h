// KeyService: the product core that the AWS and Vault doors adapt. Everything an AWS KMS customer key can
// do (docs/aws-kms-protocol.md), on key material that exists only in the HSM or wrapped under
// its domain key (docs/architecture.md "Key hierarchy").
//
// Contract:
//  * Requests and responses are domain structs, not JSON. Enum fields use firmware/key_spec.h; a door
//    parses the AWS strings with its Parse* functions. Times are Unix epoch milliseconds (the AWS door
//    divides by 1000 for its epoch-seconds timestamps). Integer request fields that AWS range-checks are
//    std::optional<std::int64_t> so that out-of-range values reach the service and get AWS's
//    ValidationException text.
//  * KeyId arguments take the four AWS forms (docs/aws-kms-protocol.md "Key identifiers"): key id,
//    key ARN, alias name, alias ARN, wherever AWS accepts them (cryptographic operations,
//    DescribeKey, GetPublicKey); management operations (enable, disable, deletion, rotation, tags,
//    description) take a key id or key ARN only. ARNs are `arn:aws:kms:<region>:<account>:key/<id>`
//    built from KeyServiceConfig. Cryptographic responses carry the key ARN in `key_id`, as AWS
//    does.
//  * Errors are kms::Status (base/status.h). The AWS door maps them with one table:
//      NotFound                                   NotFoundException ("Key '<arn>' does not exist",
//                                                 "Invalid keyId '<id>'", "Alias <arn> is not found.")
//      AlreadyExists                              AlreadyExistsException
//      InvalidArgument, Reason::kNone             ValidationException (AWS's "1 validation error ..." text)
//      InvalidArgument, kInvalidCiphertext        InvalidCiphertextException, message always EMPTY
//      InvalidArgument, kIncorrectKey             IncorrectKeyException
//      InvalidArgument, kInvalidKeyUsage          InvalidKeyUsageException
//      InvalidArgument, kInvalidSignature / kInvalidMac   KMSInvalidSignatureException / KMSInvalidMacException
//      InvalidArgument, kInvalidMarker            InvalidMarkerException
//      InvalidArgument, kTag                      TagException
//      FailedPrecondition, kKeyDisabled           DisabledException ("<arn> is disabled.")
//      FailedPrecondition, kKeyInvalidState       KMSInvalidStateException ("<arn> is pending deletion.")
//      FailedPrecondition, kDryRunOperation       DryRunOperationException
//      Unimplemented, kUnsupportedOperation       UnsupportedOperationException
//      ResourceExhausted, kLimitExceeded          LimitExceededException
//      Unavailable / Internal / other             KMSInternalException (or KeyUnavailable), retried by SDKs
//  * Key states follow AWS's table exactly (docs/aws-kms-protocol.md "Key states"); cryptographic
//    calls on a PendingDeletion key answer KMSInvalidStateException (one of the two answers AWS's
//    table allows).
//  * Durability: a key, version, alias, tag or ciphertext is returned only after the metadata it depends
//    on is committed (MetadataStore::Commit is durable). CreateKey and rotation write an intent record
//    first; Open() reconciles intents a crash left behind, so no half-made key is ever visible.
//  * GCM bound (NIST SP 800-38D §8.3, docs/gcm-bound.md): every symmetric key version counts its AES-GCM
//    invocations, reserved durably in batches; a version reaching `gcm_invocation_limit` is rotated
//    automatically before it is used again.
//  * Caches: a key's records read for a cryptographic call are reused for `record_cache_ttl_ms` and
//    dropped on every write this service commits (so within one process state changes take effect at
//    once; across processes sharing a store within the TTL, an eventual consistency AWS also documents).
//    Unwrapped versions live in a bounded LRU of HSM session objects (KeyHandleCache). A handle
//    the HAL reports stale (Unavailable/kHandleStale) is evicted, unwrapped again and the call retried
//    once.
//  * Lifetime: the Hsm, MetadataStore and Clock passed to Open must outlive the service.
//  * Thread-safety: every method may be called concurrently from any thread. Several processes may share
//    one store (each with its own service); the store's transactions serialise their writers.
#ifndef KMS_FIRMWARE_KEY_SERVICE_H_
#define KMS_FIRMWARE_KEY_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/clock.h"
#include "firmware/key_handle_cache.h"
#include "firmware/key_spec.h"
#include "hal/hsm.h"

namespace kms::firmware {

namespace store {
class MetadataStore;
class Transaction;
}  // namespace store

struct KeyServiceConfig {
  std::string region = "us-east-1";
  std::string account_id = "111122223333";
  // Unwrapped key versions kept loaded in the HSM as session objects.
  std::size_t cache_capacity = 1024;
  // The appliance's key quota (AWS: 100,000 per account and Region, docs/aws-kms-protocol.md
  // "Limits"); CreateKey beyond it is LimitExceededException.
  std::uint64_t max_keys = 100'000;
  // SP 800-38D §8.3: at most 2^32 invocations with random IVs; rotate at 0.9 * 2^32 as Vault does.
  std::uint64_t gcm_invocation_limit = 3'865'470'566;
  // Invocations reserved per durable counter write. A crash loses at most this many (overcounting,
  // never undercounting).
  std::uint64_t gcm_reservation_batch = 65536;
  // How long a key's records read for a cryptographic call may be reused (0: read the store every call).
  // Writes by this service drop the cache at once; a change committed by ANOTHER process sharing the
  // store (a disable, a deletion, a rotation) is seen within this time.
  std::int64_t record_cache_ttl_ms = 500;
  // Deletes the records other parts of the firmware keep about a key (its key policy and grants),
  // inside the transaction that destroys the key, so nothing of a destroyed key outlives it.
  // Unset: nothing else is deleted.
  std::function<Status(store::Transaction&, std::string_view key_id)> on_destroy;
};

struct Tag {
  std::string tag_key;
  std::string tag_value;
  friend bool operator==(const Tag&, const Tag&) = default;
};

// AWS KeyMetadata (docs/aws-kms-protocol.md "Operations"). Origin is always AWS_KMS, KeyManager
// CUSTOMER, MultiRegion false: the door writes those constants.
struct KeyMetadata {
  std::string aws_account_id;
  std::string key_id;  // bare id
  std::string arn;
  std::int64_t creation_date_ms = 0;
  bool enabled = false;
  std::string description;
  KeyUsage key_usage = KeyUsage::kEncryptDecrypt;
  KeyState key_state = KeyState::kEnabled;
  std::optional<std::int64_t> deletion_date_ms;                  // PendingDeletion only
  std::optional<std::uint32_t> pending_deletion_window_in_days;  // PendingDeletion only
  KeySpec key_spec = KeySpec::kSymmetricDefault;
  std::vector<EncryptionAlgorithm> encryption_algorithms;
  std::vector<SigningAlgorithm> signing_algorithms;
  std::vector<MacAlgorithm> mac_algorithms;
  std::string current_key_material_id;  // 64 hex characters
};

// ---- keys ------------------------------------------------------------------------------------------
struct KeyIdentity {
  std::string key_id;  // bare id
  std::string arn;
  KeySpec key_spec = KeySpec::kSymmetricDefault;
  KeyUsage key_usage = KeyUsage::kEncryptDecrypt;
  KeyState key_state = KeyState::kEnabled;
};
struct CreateKeyRequest {
  std::optional<std::string> description;  // 0-8192 characters
  std::optional<KeySpec> key_spec;         // default SYMMETRIC_DEFAULT
  std::optional<KeyUsage> key_usage;       // required for every spec but SYMMETRIC_DEFAULT
  std::vector<Tag> tags;
  // Runs inside the transaction that activates the new key, to store records that belong to it (its
  // key policy); an error aborts the creation (the key never becomes visible).
  std::function<Status(store::Transaction&, std::string_view key_id)> attach;
};
struct CreateKeyResponse {
  KeyMetadata key_metadata;
};

struct DescribeKeyRequest {
  std::string key_id;
};
struct DescribeKeyResponse {
  KeyMetadata key_metadata;
};

struct ListKeysRequest {
  std::optional<std::int64_t> limit;  // 1-1000, default 100
  std::optional<std::string> marker;
};
struct KeyListEntry {
  std::string key_id;
  std::string key_arn;
};
struct ListKeysResponse {
  std::vector<KeyListEntry> keys;
  std::optional<std::string> next_marker;  // set when truncated
  bool truncated = false;
};

struct UpdateKeyDescriptionRequest {
  std::string key_id;
  std::string description;
};
struct EnableKeyRequest {
  std::string key_id;
};
struct DisableKeyRequest {
  std::string key_id;
};

struct ScheduleKeyDeletionRequest {
  std::string key_id;
  std::optional<std::int64_t> pending_window_in_days;  // 7-30, default 30
};
struct ScheduleKeyDeletionResponse {
  std::string key_id;  // ARN
  std::int64_t deletion_date_ms = 0;
  KeyState key_state = KeyState::kPendingDeletion;
  std::uint32_t pending_window_in_days = 0;
};
struct CancelKeyDeletionRequest {
  std::string key_id;
};
struct CancelKeyDeletionResponse {
  std::string key_id;  // ARN
};

// ---- symmetric and RSA encryption --------------------------------------------------------------------
struct EncryptRequest {
  std::string key_id;
  SecretBytes plaintext;  // 1-4096 bytes (RSA: the OAEP limit, docs/aws-kms-protocol.md "Limits")
  EncryptionContext encryption_context;  // symmetric keys only
  std::optional<EncryptionAlgorithm> encryption_algorithm;  // default SYMMETRIC_DEFAULT
  bool dry_run = false;
  // Symmetric keys: seal under this existing, non-destroyed version instead of the current one (the
  // Vault door's key_version). The GCM bound still counts it; a pinned version that reached the bound
  // is FailedPrecondition rather than a silent switch to another version. Absent: the current version.
  std::optional<std::uint32_t> key_version;
};
struct EncryptResponse {
  Bytes ciphertext_blob;
  std::string key_id;  // ARN
  EncryptionAlgorithm encryption_algorithm = EncryptionAlgorithm::kSymmetricDefault;
};

struct DecryptRequest {
  Bytes ciphertext_blob;
  EncryptionContext encryption_context;
  std::optional<std::string> key_id;  // required for RSA keys; must match the blob's key otherwise
  std::optional<EncryptionAlgorithm> encryption_algorithm;
  bool dry_run = false;
};
struct DecryptResponse {
  std::string key_id;  // ARN
  SecretBytes plaintext;
  EncryptionAlgorithm encryption_algorithm = EncryptionAlgorithm::kSymmetricDefault;
  std::string key_material_id;  // the version that decrypted
};

struct ReEncryptRequest {
  Bytes ciphertext_blob;
  EncryptionContext source_encryption_context;
  std::optional<std::string> source_key_id;
  std::string destination_key_id;
  EncryptionContext destination_encryption_context;
  std::optional<EncryptionAlgorithm> source_encryption_algorithm;
  std::optional<EncryptionAlgorithm> destination_encryption_algorithm;
  bool dry_run = false;
};
struct ReEncryptResponse {
  Bytes ciphertext_blob;
  std::string source_key_id;  // ARN
  std::string key_id;         // ARN of the destination
  EncryptionAlgorithm source_encryption_algorithm = EncryptionAlgorithm::kSymmetricDefault;
  EncryptionAlgorithm destination_encryption_algorithm = EncryptionAlgorithm::kSymmetricDefault;
};

// ---- data keys ------------------------------------------------------------------------------------------
struct GenerateDataKeyRequest {
  std::string key_id;
  EncryptionContext encryption_context;
  std::optional<std::int64_t> number_of_bytes;  // 1-1024; exactly one of number_of_bytes / key_spec
  std::optional<DataKeySpec> key_spec;
  bool dry_run = false;
  std::optional<std::uint32_t> key_version;  // as EncryptRequest::key_version
};
struct GenerateDataKeyResponse {
  Bytes ciphertext_blob;
  SecretBytes plaintext;
  std::string key_id;  // ARN
  std::string key_material_id;
};
struct GenerateDataKeyWithoutPlaintextResponse {
  Bytes ciphertext_blob;
  std::string key_id;  // ARN
  std::string key_material_id;
};

struct GenerateDataKeyPairRequest {
  std::string key_id;
  EncryptionContext encryption_context;
  KeySpec key_pair_spec = KeySpec::kEccNistP256;  // an asymmetric spec (ParseDataKeyPairSpec)
  bool dry_run = false;
};
struct GenerateDataKeyPairResponse {
  Bytes private_key_ciphertext_blob;  // PKCS#8 DER, encrypted like Encrypt would
  SecretBytes private_key_plaintext;  // PKCS#8 DER
  Bytes public_key;                   // DER SubjectPublicKeyInfo
  std::string key_id;                 // ARN
  KeySpec key_pair_spec = KeySpec::kEccNistP256;
};
struct GenerateDataKeyPairWithoutPlaintextResponse {
  Bytes private_key_ciphertext_blob;
  Bytes public_key;
  std::string key_id;  // ARN
  KeySpec key_pair_spec = KeySpec::kEccNistP256;
};

// ---- signatures and MACs ---------------------------------------------------------------------------------
struct SignRequest {
  std::string key_id;
  SecretBytes message;  // RAW: 1-4096 bytes; DIGEST: exactly the algorithm's digest length
  MessageType message_type = MessageType::kRaw;
  SigningAlgorithm signing_algorithm = SigningAlgorithm::kEcdsaSha256;
  bool dry_run = false;
};
struct SignResponse {
  std::string key_id;  // ARN
  Bytes signature;
  SigningAlgorithm signing_algorithm = SigningAlgorithm::kEcdsaSha256;
};

struct VerifyRequest {
  std::string key_id;
  SecretBytes message;
  MessageType message_type = MessageType::kRaw;
  Bytes signature;  // 1-6144 bytes
  SigningAlgorithm signing_algorithm = SigningAlgorithm::kEcdsaSha256;
  bool dry_run = false;
};
// A wrong signature is KMSInvalidSignatureException; signature_valid is therefore always true.
struct VerifyResponse {
  std::string key_id;  // ARN
  bool signature_valid = true;
  SigningAlgorithm signing_algorithm = SigningAlgorithm::kEcdsaSha256;
};

struct GetPublicKeyRequest {
  std::string key_id;
};
struct GetPublicKeyResponse {
  std::string key_id;  // ARN
  Bytes public_key;    // DER SubjectPublicKeyInfo
  KeySpec key_spec = KeySpec::kRsa2048;
  KeyUsage key_usage = KeyUsage::kSignVerify;
  std::vector<EncryptionAlgorithm> encryption_algorithms;
  std::vector<SigningAlgorithm> signing_algorithms;
};

struct GenerateMacRequest {
  std::string key_id;
  SecretBytes message;  // 1-4096 bytes
  MacAlgorithm mac_algorithm = MacAlgorithm::kHmacSha256;
  bool dry_run = false;
};
struct GenerateMacResponse {
  Bytes mac;
  MacAlgorithm mac_algorithm = MacAlgorithm::kHmacSha256;
  std::string key_id;  // ARN
};
struct VerifyMacRequest {
  std::string key_id;
  SecretBytes message;
  MacAlgorithm mac_algorithm = MacAlgorithm::kHmacSha256;
  Bytes mac;  // 1-6144 bytes
  bool dry_run = false;
};
// A wrong MAC is KMSInvalidMacException; mac_valid is therefore always true.
struct VerifyMacResponse {
  std::string key_id;  // ARN
  bool mac_valid = true;
  MacAlgorithm mac_algorithm = MacAlgorithm::kHmacSha256;
};

struct GenerateRandomRequest {
  std::optional<std::int64_t> number_of_bytes;  // required, 1-1024
};
struct GenerateRandomResponse {
  SecretBytes plaintext;
};

// ---- aliases -----------------------------------------------------------------------------------------------
struct CreateAliasRequest {
  std::string alias_name;     // "alias/..." ; ^alias/[a-zA-Z0-9/_-]+$, <= 256, not "alias/aws/..."
  std::string target_key_id;  // key id or key ARN
};
struct UpdateAliasRequest {
  std::string alias_name;
  std::string target_key_id;
  // When set: the bare id of the key the caller was authorized on as the alias's current target.
  // If the alias names another key by the time the change commits (it moved in between), the
  // update is refused with Aborted (retryable) rather than moving an alias nobody authorized.
  std::string expected_target_key_id = {};
};
struct DeleteAliasRequest {
  std::string alias_name;
  std::string expected_target_key_id = {};  // as UpdateAliasRequest's
};
struct ListAliasesRequest {
  std::optional<std::string> key_id;  // key id or key ARN: only that key's aliases
  std::optional<std::int64_t> limit;  // 1-100, default 50
  std::optional<std::string> marker;
};
struct AliasListEntry {
  std::string alias_name;
  std::string alias_arn;
  std::string target_key_id;  // bare id
  std::int64_t creation_date_ms = 0;
  std::int64_t last_updated_date_ms = 0;
};
struct ListAliasesResponse {
  std::vector<AliasListEntry> aliases;
  std::optional<std::string> next_marker;
  bool truncated = false;
};

// ---- tags -----------------------------------------------------------------------------------------------
struct TagResourceRequest {
  std::string key_id;
  std::vector<Tag> tags;
};
struct UntagResourceRequest {
  std::string key_id;
  std::vector<std::string> tag_keys;
};
struct ListResourceTagsRequest {
  std::string key_id;
  std::optional<std::int64_t> limit;  // 1-50, default 50
  std::optional<std::string> marker;
};
struct ListResourceTagsResponse {
  std::vector<Tag> tags;
  std::optional<std::string> next_marker;
  bool truncated = false;
};

// ---- rotation -------------------------------------------------------------------------------------------
struct EnableKeyRotationRequest {
  std::string key_id;
  std::optional<std::int64_t> rotation_period_in_days;  // 90-2560, default 365
};
struct DisableKeyRotationRequest {
  std::string key_id;
};
struct GetKeyRotationStatusRequest {
  std::string key_id;
};
struct GetKeyRotationStatusResponse {
  bool key_rotation_enabled = false;
  std::string key_id;  // ARN
  std::optional<std::uint32_t> rotation_period_in_days;     // while enabled
  std::optional<std::int64_t> next_rotation_date_ms;        // while enabled
  std::optional<std::int64_t> on_demand_rotation_start_date_ms;
};
struct RotateKeyOnDemandRequest {
  std::string key_id;
};
struct RotateKeyOnDemandResponse {
  std::string key_id;  // bare id
};
// One version of a key, for the Vault door's keys/<name> reads (AWS has no such listing).
struct KeyVersionInfo {
  std::uint32_t version = 0;
  std::int64_t creation_date_ms = 0;
  Bytes public_key;  // DER SubjectPublicKeyInfo; asymmetric keys only
  bool destroyed = false;
};
struct ListKeyRotationsRequest {
  std::string key_id;
  std::optional<std::int64_t> limit;  // 1-1000, default 100
  std::optional<std::string> marker;
};
struct RotationsListEntry {
  std::string key_id;  // bare id
  std::string key_material_id;
  std::int64_t rotation_date_ms = 0;
  RotationType rotation_type = RotationType::kAutomatic;
};
struct ListKeyRotationsResponse {
  std::vector<RotationsListEntry> rotations;  // completed rotations, oldest first
  std::optional<std::string> next_marker;
  bool truncated = false;
};

// What one scheduler pass did (KeyService::RunDue).
struct ScheduledWorkReport {
  std::size_t keys_rotated = 0;
  std::size_t keys_deleted = 0;
  std::size_t failures = 0;  // left for the next pass
};

class KeyService {
 public:
  // Opens the service over a logged-in HSM and an open store: reconciles the intents a crash left
  // behind (half-made keys and versions are removed, interrupted deletions completed) before returning.
  static StatusOr<std::unique_ptr<KeyService>> Open(hal::Hsm& hsm, store::MetadataStore& store,
                                                    const Clock& clock, KeyServiceConfig config = {});
  ~KeyService();
  KeyService(const KeyService&) = delete;
  KeyService& operator=(const KeyService&) = delete;

  // ---- keys ----
  StatusOr<CreateKeyResponse> CreateKey(const CreateKeyRequest& request);
  // The key a KeyId argument names, for a door to authorize a call before making it: any
  // of the four forms when `allow_alias`, else a key id or key ARN only, with the errors the
  // operation itself gives for that argument (ValidationException, NotFoundException, ...). Keys in
  // every state are identified (the operation then answers Disabled / pending deletion). Served
  // from the record cache as cryptographic calls are.
  StatusOr<KeyIdentity> IdentifyKey(std::string_view key_id, bool allow_alias);
  StatusOr<DescribeKeyResponse> DescribeKey(const DescribeKeyRequest& request);
  StatusOr<ListKeysResponse> ListKeys(const ListKeysRequest& request);
  Status UpdateKeyDescription(const UpdateKeyDescriptionRequest& request);
  Status EnableKey(const EnableKeyRequest& request);
  Status DisableKey(const DisableKeyRequest& request);
  StatusOr<ScheduleKeyDeletionResponse> ScheduleKeyDeletion(const ScheduleKeyDeletionRequest& request);
  StatusOr<CancelKeyDeletionResponse> CancelKeyDeletion(const CancelKeyDeletionRequest& request);

  // ---- cryptography ----
  StatusOr<EncryptResponse> Encrypt(const EncryptRequest& request);
  StatusOr<DecryptResponse> Decrypt(const DecryptRequest& request);
  StatusOr<ReEncryptResponse> ReEncrypt(const ReEncryptRequest& request);
  StatusOr<GenerateDataKeyResponse> GenerateDataKey(const GenerateDataKeyRequest& request);
  StatusOr<GenerateDataKeyWithoutPlaintextResponse> GenerateDataKeyWithoutPlaintext(
      const GenerateDataKeyRequest& request);
  StatusOr<GenerateDataKeyPairResponse> GenerateDataKeyPair(const GenerateDataKeyPairRequest& request);
  StatusOr<GenerateDataKeyPairWithoutPlaintextResponse> GenerateDataKeyPairWithoutPlaintext(
      const GenerateDataKeyPairRequest& request);
  StatusOr<SignResponse> Sign(const SignRequest& request);
  StatusOr<VerifyResponse> Verify(const VerifyRequest& request);
  StatusOr<GetPublicKeyResponse> GetPublicKey(const GetPublicKeyRequest& request);
  StatusOr<GenerateMacResponse> GenerateMac(const GenerateMacRequest& request);
  StatusOr<VerifyMacResponse> VerifyMac(const VerifyMacRequest& request);
  StatusOr<GenerateRandomResponse> GenerateRandom(const GenerateRandomRequest& request);

  // ---- aliases ----
  // The checks CreateAlias/UpdateAlias (`writable`) and DeleteAlias apply to an alias name before
  // anything else (format, "alias/" prefix, the reserved "alias/aws/"), with the same errors, so
  // a door can validate a name before deciding on it.
  static Status CheckAliasName(std::string_view alias_name, bool writable);
  Status CreateAlias(const CreateAliasRequest& request);
  Status UpdateAlias(const UpdateAliasRequest& request);
  Status DeleteAlias(const DeleteAliasRequest& request);
  StatusOr<ListAliasesResponse> ListAliases(const ListAliasesRequest& request);

  // ---- tags ----
  Status TagResource(const TagResourceRequest& request);
  Status UntagResource(const UntagResourceRequest& request);
  StatusOr<ListResourceTagsResponse> ListResourceTags(const ListResourceTagsRequest& request);

  // ---- rotation ----
  Status EnableKeyRotation(const EnableKeyRotationRequest& request);
  Status DisableKeyRotation(const DisableKeyRotationRequest& request);
  StatusOr<GetKeyRotationStatusResponse> GetKeyRotationStatus(
      const GetKeyRotationStatusRequest& request);
  StatusOr<RotateKeyOnDemandResponse> RotateKeyOnDemand(const RotateKeyOnDemandRequest& request);
  StatusOr<ListKeyRotationsResponse> ListKeyRotations(const ListKeyRotationsRequest& request);
  // For the Vault door (transit rotate): a rotation like RotateKeyOnDemand (symmetric keys only, same
  // intent records and errors) that neither counts against nor is limited by AWS's on-demand quota,
  // since Vault has none. Returns the key's current version after the rotation (when a concurrent
  // rotation won, that one's).
  StatusOr<std::uint32_t> RotateKeyUnbounded(std::string_view key_id);
  // Every version of the key (any KeyId form), ascending. Any key state but pending creation.
  StatusOr<std::vector<KeyVersionInfo>> ListKeyVersions(std::string_view key_id);

  // ---- scheduled work ----
  // Performs every automatic rotation and every deletion due at `now_ms` (deletion destroys the key's
  // wrapped material: its version records are deleted with it). Idempotent; safe to run in several
  // processes at once. KeyLifecycleScheduler (firmware/key_scheduler.h) calls it periodically.
  StatusOr<ScheduledWorkReport> RunDue(std::int64_t now_ms);

  // ---- helpers for doors and tools ----
  std::string KeyArn(std::string_view key_id) const;
  std::string AliasArn(std::string_view alias_name) const;
  const KeyServiceConfig& config() const { return config_; }
  const KeyHandleCache& cache() const { return cache_; }

  class Impl;  // operations' shared machinery, in key_service.cc

 private:
  KeyService(hal::Hsm& hsm, store::MetadataStore& store, const Clock& clock, KeyServiceConfig config);
  // The work of both GenerateDataKey operations; `operation` names the caller in error messages.
  StatusOr<GenerateDataKeyResponse> MakeDataKey(const GenerateDataKeyRequest& request,
                                                std::string_view operation);

  hal::Hsm& hsm_;
  store::MetadataStore& store_;
  const Clock& clock_;
  const KeyServiceConfig config_;
  KeyHandleCache cache_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_KEY_SERVICE_H_
