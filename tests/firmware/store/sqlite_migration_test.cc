// Schema versioning of the SQLite store: creation at the current version, forward migration of an older
// database (with a test-only v2), refusal of a newer one, of a foreign database and of a non-database.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "firmware/store/internal/sqlite_migrations.h"
#include "firmware/store/sqlite_store.h"
#include "tests/firmware/store/store_test_util.h"

namespace kms::firmware::store {
namespace {

using internal::BuiltinSqliteMigrations;
using internal::OpenSqliteStoreWithMigrations;
using internal::SqliteMigration;
using testing::BeginOrDie;
using testing::MakeKey;
using testing::RawExec;
using testing::TempDir;

SqliteStoreOptions Options(const std::string& path) {
  SqliteStoreOptions o;
  o.path = path;
  return o;
}

TEST_CASE("migration: a new database is created at the current schema version", "[unit][store]") {
  TempDir dir;
  auto store = OpenSqliteStore(Options(dir.File("kms.db")));
  REQUIRE(store.has_value());
  CHECK((*store)->SchemaVersion() == kSqliteSchemaVersion);
  REQUIRE(BuiltinSqliteMigrations().size() == static_cast<std::size_t>(kSqliteSchemaVersion));
  auto txn = BeginOrDie(**store, TransactionMode::kReadOnly);
  CHECK(*txn->GetMeta("store.schema_version") == std::to_string(kSqliteSchemaVersion));
}

TEST_CASE("migration: an older database migrates forward and keeps its records", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  {  // A v1 database with data.
    auto store = OpenSqliteStore(Options(path));
    REQUIRE(store.has_value());
    auto txn = BeginOrDie(**store);
    REQUIRE(txn->InsertKey(MakeKey("k1")).ok());
    REQUIRE(txn->Commit().ok());
  }
  // Firmware "v2" adds a table; its migration list is v1's plus one step.
  std::vector<SqliteMigration> v2(BuiltinSqliteMigrations().begin(),
                                  BuiltinSqliteMigrations().end());
  int v2_runs = 0;
  v2.push_back({2, [&v2_runs](sqlite3* db) {
                  ++v2_runs;
                  return internal::ExecSql(db, "CREATE TABLE grants (grant_id TEXT PRIMARY KEY)");
                }});
  {
    auto store = OpenSqliteStoreWithMigrations(Options(path), v2);
    REQUIRE(store.has_value());
    CHECK((*store)->SchemaVersion() == 2);
    CHECK(v2_runs == 1);
    auto txn = BeginOrDie(**store);
    CHECK(*txn->GetMeta("store.schema_version") == "2");
    REQUIRE(txn->GetKey("k1").has_value());
    REQUIRE(txn->InsertKey(MakeKey("k2")).ok());
    REQUIRE(txn->Commit().ok());
    REQUIRE((*store)->CheckIntegrity().ok());
  }
  {  // Reopening at v2 runs nothing again.
    auto store = OpenSqliteStoreWithMigrations(Options(path), v2);
    REQUIRE(store.has_value());
    CHECK(v2_runs == 1);
  }
  // ... and the firmware that only knows v1 now refuses the database.
  auto old = OpenSqliteStore(Options(path));
  REQUIRE_FALSE(old.has_value());
  CHECK(old.error().code() == StatusCode::kFailedPrecondition);
  CHECK(old.error().message() ==
        "metadata store: the database has schema version 2, newer than this firmware supports (1); "
        "run newer firmware or restore a backup made by this version");
}

TEST_CASE("migration: a failing step leaves the last completed version", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  std::vector<SqliteMigration> v2(BuiltinSqliteMigrations().begin(),
                                  BuiltinSqliteMigrations().end());
  v2.push_back({2, [](sqlite3* db) {
                  // Half the work, then a failure: none of it may survive.
                  Status s = internal::ExecSql(db, "CREATE TABLE half_done (x INTEGER)");
                  if (!s.ok()) return s;
                  return internal::ExecSql(db, "THIS IS NOT SQL");
                }});
  auto failed = OpenSqliteStoreWithMigrations(Options(path), v2);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code() == StatusCode::kInternal);
  // v1 completed and committed before v2 failed; v2's partial work was rolled back.
  auto store = OpenSqliteStore(Options(path));
  REQUIRE(store.has_value());
  CHECK((*store)->SchemaVersion() == 1);
  auto txn = BeginOrDie(**store, TransactionMode::kReadOnly);
  CHECK(*txn->GetMeta("store.schema_version") == "1");
  txn.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'", -1,
                             &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(sqlite3_column_int(stmt, 0) == 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_CASE("migration: a stored version newer than the firmware is refused", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  { REQUIRE(OpenSqliteStore(Options(path)).has_value()); }
  RawExec(path, "UPDATE meta SET value = '7' WHERE name = 'store.schema_version'");
  auto store = OpenSqliteStore(Options(path));
  REQUIRE_FALSE(store.has_value());
  CHECK(store.error().code() == StatusCode::kFailedPrecondition);
  CHECK(store.error().message() ==
        "metadata store: the database has schema version 7, newer than this firmware supports (1); "
        "run newer firmware or restore a backup made by this version");
}

TEST_CASE("migration: damaged or foreign databases are refused", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");

  SECTION("garbage schema version") {
    { REQUIRE(OpenSqliteStore(Options(path)).has_value()); }
    RawExec(path, "UPDATE meta SET value = 'one' WHERE name = 'store.schema_version'");
    auto store = OpenSqliteStore(Options(path));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kDataLoss);
    CHECK(store.error().message() ==
          "metadata store: the stored schema version is not a positive number");
  }
  SECTION("missing schema version") {
    { REQUIRE(OpenSqliteStore(Options(path)).has_value()); }
    RawExec(path, "DELETE FROM meta WHERE name = 'store.schema_version'");
    auto store = OpenSqliteStore(Options(path));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kDataLoss);
    CHECK(store.error().message() == "metadata store: the schema version is missing from meta");
  }
  SECTION("another application's database") {
    RawExec(path, "CREATE TABLE photos (id INTEGER)");
    auto store = OpenSqliteStore(Options(path));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kFailedPrecondition);
    CHECK(store.error().message() ==
          "metadata store: the database holds tables but no KMS schema; refusing to use it");
  }
  SECTION("not a database at all") {
    {
      std::ofstream out(path, std::ios::binary);
      out << std::string(8192, 'x');
    }
    auto store = OpenSqliteStore(Options(path));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kDataLoss);
  }
  SECTION("an unreachable path") {
    auto store = OpenSqliteStore(Options(dir.File("no/such/dir/kms.db")));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kUnavailable);
  }
  SECTION("an empty path") {
    auto store = OpenSqliteStore(Options(""));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().code() == StatusCode::kInvalidArgument);
    CHECK(store.error().message() == "metadata store: empty database path");
  }
}


TEST_CASE("store: a full disk is Unavailable and the store stays consistent", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  // A test-only v2 step caps the writer connection's database size (PRAGMA max_page_count is per
  // connection, and migrations run on the writer connection): the disk is "full" a few pages on.
  std::vector<SqliteMigration> capped(BuiltinSqliteMigrations().begin(),
                                      BuiltinSqliteMigrations().end());
  capped.push_back({2, [](sqlite3* db) {
                      return internal::ExecSql(db, "PRAGMA max_page_count = 40");
                    }});
  auto opened = OpenSqliteStoreWithMigrations(Options(path), capped);
  REQUIRE(opened.has_value());
  auto& store = **opened;
  {
    auto txn = BeginOrDie(store);
    REQUIRE(txn->InsertKey(MakeKey("before")).ok());
    REQUIRE(txn->Commit().ok());
  }
  auto txn = BeginOrDie(store);
  Status failure;
  for (int i = 0; i < 1000 && failure.ok(); ++i) {
    KeyRecord k = MakeKey("big-" + std::to_string(i));
    k.set_description(std::string(3000, 'd'));
    failure = txn->InsertKey(k);
  }
  INFO(failure.ToString());
  CHECK(failure.code() == StatusCode::kUnavailable);
  CHECK(failure.message() == "metadata store: step: database or disk is full");
  // SQLite rolled the whole transaction back (sqlite.org/lang_transaction.html, "Response To Errors
  // Within A Transaction": SQLITE_FULL may do so): every further call says so, and nothing commits.
  auto after = txn->GetKey("before");
  REQUIRE_FALSE(after.has_value());
  CHECK(after.error().code() == StatusCode::kAborted);
  CHECK(after.error().message() ==
        "metadata store: the transaction was abandoned after an earlier error");
  const Status commit = txn->Commit();
  CHECK(commit.code() == StatusCode::kAborted);
  CHECK(commit.message() == "metadata store: the transaction was abandoned after an earlier error");
  txn.reset();
  auto check = BeginOrDie(store, TransactionMode::kReadOnly);
  CHECK(*check->CountKeys() == 1);
  check.reset();
  // The store works again once the write fits.
  auto small = BeginOrDie(store);
  REQUIRE(small->InsertKey(MakeKey("after")).ok());
  REQUIRE(small->Commit().ok());
  CHECK(store.CheckIntegrity().ok());
}

}  // namespace
}  // namespace kms::firmware::store
