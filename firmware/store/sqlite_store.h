// SqliteStore: the embedded default MetadataStore, one SQLite database file (plus its -wal and -shm).
//
// Contract (beyond metadata_store.h):
//  * Durability: WAL journal with synchronous=FULL, so Commit returns only after the WAL is fsynced
//    (sqlite.org/pragma.html#pragma_synchronous: "FULL ... ensures that an operating system crash or
//    power failure will not corrupt the database"; in WAL mode FULL also makes each commit durable).
//  * Destruction: secure_delete=ON overwrites deleted content (destroyed wrapped material) in the
//    database pages, and a commit that deleted or replaced a key version ends with a TRUNCATE
//    checkpoint, so no stale page image holding the material stays in the -wal file either (best
//    effort while another process holds an old read snapshot).
//  * Schema: the version lives in the `meta` row "store.schema_version". Open migrates an older database
//    forward one step at a time, each step in its own transaction together with its version bump, so a
//    crash mid-migration leaves the last completed version. A database newer than this firmware is
//    refused with FailedPrecondition; a file holding another application's tables likewise; a file that
//    is not a SQLite database is DataLoss.
//  * Records are serialized kms.records messages in a `record` BLOB, beside the few indexed columns the
//    lookups need (ids, the rotation and deletion due times). Reads check that the blob parses and that
//    it agrees with its columns; a mismatch is DataLoss.
//  * Thread and process model: one writer connection, which this process's threads take in turns
//    (waiting up to `busy_timeout`); on it read-write transactions run as BEGIN IMMEDIATE (the SQLite
//    write lock is taken at Begin, so a transaction never fails later on a lock). Read-only
//    transactions run on a small pool of reader connections, each a WAL snapshot that neither blocks
//    nor is blocked by the writer. Other processes may open the same file: SQLite's file locks
//    serialise writers across processes, again waiting up to `busy_timeout`. Every connection is used
//    by one thread at a time (SQLITE_OPEN_NOMUTEX).
//  * The database file is created with mode 0600 (it holds wrapped keys and key metadata).
#ifndef KMS_FIRMWARE_STORE_SQLITE_STORE_H_
#define KMS_FIRMWARE_STORE_SQLITE_STORE_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "base/status.h"
#include "firmware/store/metadata_store.h"

namespace kms::firmware::store {

// The schema version this firmware creates and migrates to.
inline constexpr int kSqliteSchemaVersion = 1;

struct SqliteStoreOptions {
  std::string path;  // the database file; created (with its tables) if missing
  // How long a writer waits for another writer (this process or another) before Unavailable.
  std::chrono::milliseconds busy_timeout{5000};
  // Reader connections kept open between read-only transactions.
  std::size_t max_idle_readers = 4;
};

// Opens (creating or migrating as needed) the store at options.path. Every transaction must end before
// the returned store is destroyed.
StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteStore(const SqliteStoreOptions& options);

}  // namespace kms::firmware::store

#endif  // KMS_FIRMWARE_STORE_SQLITE_STORE_H_
