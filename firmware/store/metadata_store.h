// MetadataStore: the transactional database of the key service: keys, key versions (wrapped material),
// aliases, tags, in-flight intents, access keys of the AWS door (secrets sealed), counters and appliance
// settings. The records are the protobuf storage
// messages of firmware/records/records.proto; nothing here speaks SQL, so a networked backend
// (PostgreSQL, etcd) can implement the same interface without touching the service.
//
// Contract:
//  * Every read and write happens inside a `Transaction` obtained from `MetadataStore::Begin`. A
//    read-write transaction is serializable against every other writer (of this process and of other
//    processes sharing the database). A read-only transaction sees one consistent snapshot taken at its
//    first read and never blocks on writers. Uncommitted writes are invisible outside their transaction.
//  * `Transaction::Commit` returns OK only once the transaction is durable (it survives power loss and
//    SIGKILL). Destroying a transaction that was not committed rolls it back. After `Commit` or
//    `Rollback` (whatever their result) every further call on the transaction is FailedPrecondition.
//  * A failed operation (NotFound, AlreadyExists, InvalidArgument) changes nothing and leaves the
//    transaction usable. After Unavailable, DataLoss or Internal the backend may have abandoned the
//    transaction: further calls may answer Aborted, and the caller rolls back and retries or gives up.
//  * Errors:
//      NotFound           the record (or, for a write that names a key, that key) does not exist
//      AlreadyExists      an Insert* whose primary key exists (e.g. a duplicate alias name)
//      InvalidArgument    a malformed argument (empty id, limit 0 or above kMaxPageLimit, version 0,
//                         a write to a reserved meta name)
//      FailedPrecondition a write in a read-only transaction; a call on a finished transaction; a record
//                         or database written by newer firmware than this one
//      Unavailable        I/O failure, or the database stayed locked by another writer past the busy
//                         timeout: retry later
//      DataLoss           a stored record does not parse, or disagrees with its indexed columns
//      Aborted            the backend abandoned the transaction after an earlier error
//  * Records are stamped with `record_version = kRecordVersion` on every write; callers need not set it.
//    Reading a record stamped newer than kRecordVersion is FailedPrecondition (see records.proto).
//  * Deleting a key deletes its versions, tags and aliases in the same transaction (the key is gone;
//    nothing may point at it). Intents and access keys are independent of keys and are never
//    cascaded.
//  * Paging: lists are ordered by their primary key (byte-wise); `after` is an exclusive lower bound
//    ("" = from the start) and a page holds at most `limit` items. When more follow, `truncated` is true
//    and `next_marker` is the sort key of the last item, to pass as the next `after`. Markers are store
//    keys, not API markers: the service may encode them however its API requires.
//  * Thread-safety: a `MetadataStore` may be used from any number of threads; each `Transaction` belongs
//    to one thread at a time. A thread must not hold two read-write transactions at once (the second
//    `Begin` waits for the first and fails Unavailable at the busy timeout).
#ifndef KMS_FIRMWARE_STORE_METADATA_STORE_H_
#define KMS_FIRMWARE_STORE_METADATA_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "firmware/records/records.pb.h"

namespace kms::firmware::store {

using records::AccessKeyRecord;
using records::AliasRecord;
using records::IntentRecord;
using records::KeyRecord;
using records::KeyVersionRecord;
using records::TagRecord;

// The record format version this firmware writes and the newest it reads (records.proto).
inline constexpr std::uint32_t kRecordVersion = 1;

// The largest `limit` a paged list accepts; the API's own limits (AWS: 1000 for ListKeys) are lower.
inline constexpr std::size_t kMaxPageLimit = 10'000;

// Meta names starting with this prefix belong to the store itself (e.g. "store.schema_version") and
// are read-only to callers.
inline constexpr std::string_view kReservedMetaPrefix = "store.";

template <typename T>
struct Page {
  std::vector<T> items;
  // More items follow this page.
  bool truncated = false;
  // When truncated: the sort key of the last item; pass it as the next `after`.
  std::string next_marker;
};

enum class TransactionMode {
  // Takes the write lock at Begin (SQLite: BEGIN IMMEDIATE), so it never fails mid-way on a lock.
  kReadWrite,
  // A snapshot; writes answer FailedPrecondition.
  kReadOnly,
};

class Transaction {
 public:
  virtual ~Transaction() = default;  // rolls back unless committed
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Makes every write of this transaction durable and visible, then ends it. On error nothing was
  // committed. For a read-only transaction, ends it.
  virtual Status Commit() = 0;
  // Discards every write and ends the transaction. Never needed before destruction; offered for clarity.
  virtual Status Rollback() = 0;

  virtual TransactionMode mode() const = 0;

  // ---- keys ----
  // AlreadyExists if key_id exists.
  virtual Status InsertKey(const KeyRecord& key) = 0;
  // Replaces the record of an existing key; NotFound if it does not exist.
  virtual Status UpdateKey(const KeyRecord& key) = 0;
  virtual StatusOr<KeyRecord> GetKey(std::string_view key_id) = 0;
  // Deletes the key with its versions, tags and aliases. NotFound if it does not exist.
  virtual Status DeleteKey(std::string_view key_id) = 0;
  // Keys ordered by key_id, after the key id `after`.
  virtual StatusOr<Page<KeyRecord>> ListKeys(std::string_view after, std::size_t limit) = 0;
  // Number of keys in every state (for the appliance's key quota).
  virtual StatusOr<std::uint64_t> CountKeys() = 0;
  // Keys with rotation_enabled and 0 < next_rotation_time_ms <= now_ms, whatever their state, oldest due
  // first, at most `limit`. For the rotation scheduler: indexed, cheap with many keys.
  virtual StatusOr<std::vector<KeyRecord>> ListKeysDueForRotation(std::int64_t now_ms,
                                                                  std::size_t limit) = 0;
  // Keys in KEY_STATE_PENDING_DELETION with deletion_time_ms <= now_ms, oldest due first, at most `limit`.
  virtual StatusOr<std::vector<KeyRecord>> ListKeysDueForDeletion(std::int64_t now_ms,
                                                                  std::size_t limit) = 0;

  // ---- key versions ----
  // NotFound if the key does not exist; AlreadyExists if (key_id, version) exists; InvalidArgument if
  // version is 0.
  virtual Status InsertKeyVersion(const KeyVersionRecord& version) = 0;
  // Replaces an existing version (state, invocation_count, erased material); NotFound if missing.
  virtual Status UpdateKeyVersion(const KeyVersionRecord& version) = 0;
  virtual StatusOr<KeyVersionRecord> GetKeyVersion(std::string_view key_id,
                                                   std::uint32_t version) = 0;
  // All versions of the key in ascending version order (empty if the key has none or does not exist:
  // versions per key are few, 25 on demand plus one per rotation period, so this is not paged).
  virtual StatusOr<std::vector<KeyVersionRecord>> ListKeyVersions(std::string_view key_id) = 0;
  // NotFound if missing.
  virtual Status DeleteKeyVersion(std::string_view key_id, std::uint32_t version) = 0;

  // ---- aliases ----
  // AlreadyExists if alias_name exists; NotFound if target_key_id is not a key.
  virtual Status InsertAlias(const AliasRecord& alias) = 0;
  // Replaces an existing alias (retarget); NotFound if the alias or the new target key does not exist.
  virtual Status UpdateAlias(const AliasRecord& alias) = 0;
  virtual StatusOr<AliasRecord> GetAlias(std::string_view alias_name) = 0;
  virtual Status DeleteAlias(std::string_view alias_name) = 0;  // NotFound if missing
  // All aliases ordered by name, after the alias name `after`.
  virtual StatusOr<Page<AliasRecord>> ListAliases(std::string_view after, std::size_t limit) = 0;
  // The aliases whose target is `key_id`, ordered by name, after `after` (empty page for an unknown key).
  virtual StatusOr<Page<AliasRecord>> ListAliasesForKey(std::string_view key_id,
                                                        std::string_view after,
                                                        std::size_t limit) = 0;

  // ---- tags ----
  // Inserts or overwrites the tag (key_id, tag_key) (AWS TagResource overwrites). NotFound if the key
  // does not exist.
  virtual Status PutTag(const TagRecord& tag) = 0;
  // NotFound if missing.
  virtual Status DeleteTag(std::string_view key_id, std::string_view tag_key) = 0;
  // All tags of the key ordered by tag_key (the service bounds them at 50 per key,
  // docs/aws-kms-protocol.md "Limits").
  virtual StatusOr<std::vector<TagRecord>> ListTags(std::string_view key_id) = 0;

  // ---- intents (crash safety of multi-step operations, docs/key-service.md) ----
  virtual Status InsertIntent(const IntentRecord& intent) = 0;  // AlreadyExists if intent_id exists
  virtual Status DeleteIntent(std::string_view intent_id) = 0;  // NotFound if missing
  // Every intent, ordered by (created_time_ms, intent_id).
  virtual StatusOr<std::vector<IntentRecord>> ListIntents() = 0;

  // ---- access keys (AWS door SigV4 keys; the secret is sealed, see firmware/access_keys.h) ----
  // AlreadyExists if access_key_id exists. InvalidArgument if access_key_id is empty or
  // sealing_key_version is 0.
  virtual Status InsertAccessKey(const AccessKeyRecord& access_key) = 0;
  // Replaces an existing access key (status change); NotFound if it does not exist.
  virtual Status UpdateAccessKey(const AccessKeyRecord& access_key) = 0;
  virtual StatusOr<AccessKeyRecord> GetAccessKey(std::string_view access_key_id) = 0;
  virtual Status DeleteAccessKey(std::string_view access_key_id) = 0;  // NotFound if missing
  // Access keys ordered by access_key_id, after the id `after`.
  virtual StatusOr<Page<AccessKeyRecord>> ListAccessKeys(std::string_view after,
                                                         std::size_t limit) = 0;

  // ---- counters and settings ----
  // The store epoch: a counter the store itself increments in every committed read-write transaction
  // that wrote something. Equal epochs mean no writer committed in between, in any process sharing the
  // store: a cache of records may be trusted while the epoch it was filled at is unchanged. A
  // transaction reads the epoch of its snapshot; its own increment happens at Commit.
  virtual StatusOr<std::uint64_t> Epoch() = 0;
  // Named monotonic counters (0 when never incremented). Increment returns the new value.
  virtual StatusOr<std::uint64_t> GetCounter(std::string_view name) = 0;
  virtual StatusOr<std::uint64_t> IncrementCounter(std::string_view name, std::uint64_t delta) = 0;
  // Free-form settings. GetMeta: NotFound if unset. Names under kReservedMetaPrefix are readable but
  // writing or deleting them is InvalidArgument.
  virtual StatusOr<std::string> GetMeta(std::string_view name) = 0;
  virtual Status PutMeta(std::string_view name, std::string_view value) = 0;
  virtual Status DeleteMeta(std::string_view name) = 0;  // NotFound if unset
  // Settings whose names start with `prefix` (non-empty), ordered by name, after the name `after`
  // ("" = from the first), as (name, value) pairs. The marker is the last name. For registries that
  // keep a few hundred records in the meta table (Vault tokens, transit keys), not for bulk data.
  virtual StatusOr<Page<std::pair<std::string, std::string>>> ListMeta(std::string_view prefix,
                                                                       std::string_view after,
                                                                       std::size_t limit) = 0;

 protected:
  Transaction() = default;
};

// Every transaction must end (commit, roll back or be destroyed) before its store is destroyed.
class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  // Starts a transaction. kReadWrite waits up to the backend's busy timeout for other writers, then
  // fails Unavailable.
  virtual StatusOr<std::unique_ptr<Transaction>> Begin(
      TransactionMode mode = TransactionMode::kReadWrite) = 0;

  // Verifies the physical consistency of the database (SQLite: PRAGMA integrity_check) and that every
  // stored record parses and matches its indexed columns. DataLoss describing the first problem found.
  // Reads everything: an operator or startup action, not a per-request one.
  virtual Status CheckIntegrity() = 0;

  // The schema version of the open database (after migration, the version this firmware writes).
  virtual int SchemaVersion() const = 0;

 protected:
  MetadataStore() = default;
};

}  // namespace kms::firmware::store

#endif  // KMS_FIRMWARE_STORE_METADATA_STORE_H_
