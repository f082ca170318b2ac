// The SQLite store's schema migrations, exposed to the store's own tests only (internal/: siblings must not
// include this). A migration takes the database from `to_version - 1` to `to_version`; Open applies the
// missing ones in order, each in its own BEGIN IMMEDIATE transaction together with the version bump.
#ifndef KMS_FIRMWARE_STORE_INTERNAL_SQLITE_MIGRATIONS_H_
#define KMS_FIRMWARE_STORE_INTERNAL_SQLITE_MIGRATIONS_H_

#include <functional>
#include <memory>
#include <span>

#include "base/status.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"

struct sqlite3;

namespace kms::firmware::store::internal {

struct SqliteMigration {
  int to_version;
  // Runs inside the migration's transaction; must not BEGIN/COMMIT itself.
  std::function<Status(sqlite3* db)> apply;
};

// The migrations of this firmware: consecutive, starting at version 1, ending at kSqliteSchemaVersion.
std::span<const SqliteMigration> BuiltinSqliteMigrations();

// OpenSqliteStore with another migration list (tests: prove a v1 database migrates to a later version).
// The newest version known is migrations.back().to_version.
StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteStoreWithMigrations(
    const SqliteStoreOptions& options, std::span<const SqliteMigration> migrations);

// Runs `sql` (one or more statements) on `db`, mapping SQLite errors onto Status codes.
Status ExecSql(sqlite3* db, const char* sql);

}  // namespace kms::firmware::store::internal

#endif  // KMS_FIRMWARE_STORE_INTERNAL_SQLITE_MIGRATIONS_H_
