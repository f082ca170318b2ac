// SqliteStore implementation. See sqlite_store.h for the contract and the thread/process model.
#include "firmware/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "firmware/store/internal/sqlite_migrations.h"

namespace kms::firmware::store {
namespace {

using internal::ExecSql;
using internal::SqliteMigration;

constexpr std::string_view kSchemaVersionName = "store.schema_version";
constexpr std::string_view kEpochCounter = "store.epoch";

// ---------------------------------------------------------------------------------------------------
// Error mapping: one place where SQLite result codes become Status codes (sqlite.org/rescode.html).

Status SqliteError(int rc, sqlite3* db, std::string_view what) {
  std::string message = "metadata store: ";
  message += what;
  message += ": ";
  message += (db != nullptr) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    // Transient: another writer holds the lock past the busy timeout, or the file system failed.
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return UnavailableError(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(std::move(message));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return AlreadyExistsError(std::move(message));
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return NotFoundError(std::move(message));
      return InternalError(std::move(message));
    case SQLITE_NOMEM:
      return ResourceExhaustedError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

// RFC 3629 well-formedness. proto3 `string` fields must hold valid UTF-8: a record with anything else
// would serialize but then fail to parse, so it is refused at write time rather than found as DataLoss.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlong forms, surrogates, and code points beyond U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

Status CheckText(std::string_view field, std::string_view value) {
  if (!IsValidUtf8(value)) {
    return InvalidArgumentError(std::string(field) + " is not valid UTF-8");
  }
  return Status::Ok();
}

Status CheckId(std::string_view field, std::string_view value) {
  if (value.empty()) return InvalidArgumentError(std::string(field) + " is empty");
  return CheckText(field, value);
}

Status CheckLimit(std::size_t limit) {
  if (limit == 0 || limit > kMaxPageLimit) {
    return InvalidArgumentError("page limit must be 1.." + std::to_string(kMaxPageLimit));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------------
// Connections and statements.

// One SQLite connection with its prepared-statement cache. Used by one thread at a time (the store's
// mutex or the reader pool guarantee it), hence SQLITE_OPEN_NOMUTEX.
class Connection {
 public:
  static StatusOr<std::unique_ptr<Connection>> Open(const std::string& path,
                                                    std::chrono::milliseconds busy_timeout,
                                                    bool reader) {
    sqlite3* db = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<Connection>(new Connection(db));  // closes db on every path
    if (rc != SQLITE_OK) return SqliteError(rc, db, "open " + path);
    sqlite3_extended_result_codes(db, 1);
    const auto busy_ms = busy_timeout.count();
    sqlite3_busy_timeout(db, busy_ms > INT_MAX ? INT_MAX : static_cast<int>(busy_ms));
    // synchronous=FULL: Commit returns after the WAL is fsynced (durable before acknowledging a key).
    // foreign_keys: per connection, off by default in SQLite. secure_delete: destroyed material is
    // overwritten in the file, not merely unlinked from the b-tree. cell_size_check: detect a corrupt
    // page earlier. trusted_schema=OFF: the schema may not call application functions.
    KMS_RETURN_IF_ERROR(ExecSql(db,
                                "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL; "
                                "PRAGMA secure_delete=ON; PRAGMA cell_size_check=ON; "
                                "PRAGMA trusted_schema=OFF;"));
    if (reader) {
      KMS_RETURN_IF_ERROR(ExecSql(db, "PRAGMA query_only=ON;"));
    } else {
      // WAL: readers see snapshots and never block the writer. The mode is persistent in the file, but
      // SQLite may refuse it (e.g. a file system without shared memory): then refuse to run.
      sqlite3_stmt* stmt = nullptr;
      int prc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, nullptr);
      if (prc != SQLITE_OK) return SqliteError(prc, db, "set journal_mode");
      prc = sqlite3_step(stmt);
      std::string mode;
      if (prc == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        if (text != nullptr) mode = reinterpret_cast<const char*>(text);
      }
      sqlite3_finalize(stmt);
      if (prc != SQLITE_ROW) return SqliteError(prc, db, "set journal_mode");
      if (mode != "wal") {
        return UnavailableError("metadata store: the database refused WAL mode (got '" + mode +
                                "')");
      }
    }
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }

  // Runs one statement that returns no rows (BEGIN, COMMIT, ...), prepared once per connection: on the
  // read path of every request, re-parsing "BEGIN" would cost as much as the lookup itself.
  Status Run(const char* sql) {
    KMS_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqliteError(rc, db_, sql);
    return Status::Ok();
  }

  StatusOr<sqlite3_stmt*> Prepare(const char* sql) {
    if (auto it = cache_.find(sql); it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, "prepare");
    cache_.emplace(sql, stmt);
    return stmt;
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Keyed by the SQL text's address: every statement is a string literal of this file.
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// A cached statement in use: binds, steps, and resets itself (and drops its bindings) when it goes out
// of scope, so bound views (SQLITE_STATIC) never outlive the arguments they point at.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Text(int index, std::string_view value) {
    Record(sqlite3_bind_text(stmt_, index, value.empty() ? "" : value.data(), Length(value.size()),
                             SQLITE_STATIC));
    return *this;
  }
  Stmt& Blob(int index, std::string_view value) {
    Record(sqlite3_bind_blob(stmt_, index, value.empty() ? "" : value.data(), Length(value.size()),
                             SQLITE_STATIC));
    return *this;
  }
  Stmt& Int(int index, std::int64_t value) {
    Record(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Stmt& OptionalInt(int index, std::optional<std::int64_t> value) {
    Record(value ? sqlite3_bind_int64(stmt_, index, *value) : sqlite3_bind_null(stmt_, index));
    return *this;
  }

  // true: a row is available; false: done.
  StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(bind_rc_, db_, "bind");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(rc, db_, "step");
  }
  // Runs a statement that returns no rows.
  Status Run() {
    KMS_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return Status::Ok();
  }

  std::string_view ColumnText(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    const int n = sqlite3_column_bytes(stmt_, i);
    if (p == nullptr || n <= 0) return {};
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
  }
  std::string_view ColumnBlob(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    const int n = sqlite3_column_bytes(stmt_, i);
    if (p == nullptr || n <= 0) return {};
    return {static_cast<const char*>(p), static_cast<std::size_t>(n)};
  }
  std::int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  std::optional<std::int64_t> ColumnOptionalInt(int i) const {
    if (sqlite3_column_type(stmt_, i) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(stmt_, i);
  }

 private:
  static int Length(std::size_t n) { return n > INT_MAX ? -1 : static_cast<int>(n); }
  void Record(int rc) {
    if (bind_rc_ == SQLITE_OK && rc != SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// ---------------------------------------------------------------------------------------------------
// Records <-> blobs.

template <typename Record>
StatusOr<std::string> Serialize(Record record) {
  record.set_record_version(kRecordVersion);
  std::string out;
  if (!record.SerializeToString(&out))
    return InternalError("metadata store: record serialization failed");
  return out;
}

template <typename Record>
StatusOr<Record> Parse(std::string_view blob, std::string_view table) {
  Record record;
  if (blob.size() > static_cast<std::size_t>(INT_MAX) ||
      !record.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return DataLossError("metadata store: a record in table " + std::string(table) +
                         " does not parse");
  }
  if (record.record_version() == 0) {
    return DataLossError("metadata store: a record in table " + std::string(table) +
                         " has no record_version");
  }
  if (record.record_version() > kRecordVersion) {
    return FailedPreconditionError(
        "metadata store: a record in table " + std::string(table) + " has record_version " +
        std::to_string(record.record_version()) + ", newer than this firmware reads (" +
        std::to_string(kRecordVersion) + ")");
  }
  return record;
}

Status Mismatch(std::string_view table, std::string_view what) {
  return DataLossError("metadata store: a record in table " + std::string(table) +
                       " disagrees with its indexed column " + std::string(what));
}

// The indexed columns of `keys` are derived from the record, so the scheduler's queries are indexed.
std::optional<std::int64_t> RotationDue(const KeyRecord& k) {
  if (!k.rotation_enabled() || k.next_rotation_time_ms() <= 0) return std::nullopt;
  return k.next_rotation_time_ms();
}
std::optional<std::int64_t> DeletionDue(const KeyRecord& k) {
  if (k.state() != records::KEY_STATE_PENDING_DELETION) return std::nullopt;
  return k.deletion_time_ms();
}

// Row decoders: each takes a statement whose columns are in the order of the matching SELECT below.
StatusOr<KeyRecord> DecodeKey(const Stmt& s) {
  KMS_ASSIGN_OR_RETURN(KeyRecord k, Parse<KeyRecord>(s.ColumnBlob(4), "keys"));
  if (k.key_id() != s.ColumnText(0)) return Mismatch("keys", "key_id");
  if (static_cast<std::int64_t>(k.state()) != s.ColumnInt(1)) return Mismatch("keys", "state");
  if (RotationDue(k) != s.ColumnOptionalInt(2)) return Mismatch("keys", "next_rotation_ms");
  if (DeletionDue(k) != s.ColumnOptionalInt(3)) return Mismatch("keys", "deletion_ms");
  return k;
}
StatusOr<KeyVersionRecord> DecodeVersion(const Stmt& s) {  // key_id, version, record
  KMS_ASSIGN_OR_RETURN(KeyVersionRecord v,
                       Parse<KeyVersionRecord>(s.ColumnBlob(2), "key_versions"));
  if (v.key_id() != s.ColumnText(0)) return Mismatch("key_versions", "key_id");
  if (static_cast<std::int64_t>(v.version()) != s.ColumnInt(1))
    return Mismatch("key_versions", "version");
  return v;
}
StatusOr<AliasRecord> DecodeAlias(const Stmt& s) {  // alias_name, target_key_id, record
  KMS_ASSIGN_OR_RETURN(AliasRecord a, Parse<AliasRecord>(s.ColumnBlob(2), "aliases"));
  if (a.alias_name() != s.ColumnText(0)) return Mismatch("aliases", "alias_name");
  if (a.target_key_id() != s.ColumnText(1)) return Mismatch("aliases", "target_key_id");
  return a;
}
StatusOr<TagRecord> DecodeTag(const Stmt& s) {  // key_id, tag_key, record
  KMS_ASSIGN_OR_RETURN(TagRecord t, Parse<TagRecord>(s.ColumnBlob(2), "tags"));
  if (t.key_id() != s.ColumnText(0)) return Mismatch("tags", "key_id");
  if (t.tag_key() != s.ColumnText(1)) return Mismatch("tags", "tag_key");
  return t;
}
StatusOr<IntentRecord> DecodeIntent(const Stmt& s) {  // intent_id, created_ms, record
  KMS_ASSIGN_OR_RETURN(IntentRecord i, Parse<IntentRecord>(s.ColumnBlob(2), "intents"));
  if (i.intent_id() != s.ColumnText(0)) return Mismatch("intents", "intent_id");
  if (i.created_time_ms() != s.ColumnInt(1)) return Mismatch("intents", "created_ms");
  return i;
}

StatusOr<AccessKeyRecord> DecodeAccessKey(const Stmt& s) {  // access_key_id, status, record
  KMS_ASSIGN_OR_RETURN(AccessKeyRecord a, Parse<AccessKeyRecord>(s.ColumnBlob(2), "access_keys"));
  if (a.access_key_id() != s.ColumnText(0)) return Mismatch("access_keys", "access_key_id");
  if (static_cast<std::int64_t>(a.status()) != s.ColumnInt(1))
    return Mismatch("access_keys", "status");
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Schema v1.

// Schema v1 has never shipped, so it is still amended in place rather than by a v2 migration: the
// access_keys table was added to it directly, as WITHOUT ROWID was. Once a release
// carries v1, every change becomes a new migration.
//
// Every table is WITHOUT ROWID (sqlite.org/withoutrowid.html): rows are clustered on their text
// primary key, which is then stored once instead of in the table and again in an index. Measured with
// 1,000,000 keys + versions: 483 -> 417 MiB, random key+version lookup 40 -> 21 us, inserts 1.5x.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta (
  name  TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE counters (
  name  TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE keys (
  key_id           TEXT PRIMARY KEY NOT NULL,
  state            INTEGER NOT NULL,
  next_rotation_ms INTEGER,  -- record.next_rotation_time_ms while rotation is enabled, else NULL
  deletion_ms      INTEGER,  -- record.deletion_time_ms while PENDING_DELETION, else NULL
  record           BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX keys_by_rotation ON keys (next_rotation_ms, key_id) WHERE next_rotation_ms IS NOT NULL;
CREATE INDEX keys_by_deletion ON keys (deletion_ms, key_id) WHERE deletion_ms IS NOT NULL;
CREATE TABLE key_versions (
  key_id  TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  record  BLOB NOT NULL,
  PRIMARY KEY (key_id, version)
) WITHOUT ROWID;
CREATE TABLE aliases (
  alias_name    TEXT PRIMARY KEY NOT NULL,
  target_key_id TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  record        BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX aliases_by_target ON aliases (target_key_id, alias_name);
CREATE TABLE tags (
  key_id  TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
  tag_key TEXT NOT NULL,
  record  BLOB NOT NULL,
  PRIMARY KEY (key_id, tag_key)
) WITHOUT ROWID;
CREATE TABLE intents (
  intent_id  TEXT PRIMARY KEY NOT NULL,
  created_ms INTEGER NOT NULL,
  record     BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX intents_by_time ON intents (created_ms, intent_id);
CREATE TABLE access_keys (
  access_key_id TEXT PRIMARY KEY NOT NULL,
  status        INTEGER NOT NULL,  -- record.status
  record        BLOB NOT NULL      -- AccessKeyRecord; its secret is sealed, never plaintext
) WITHOUT ROWID;
)sql";

const std::array<SqliteMigration, 1> kBuiltinMigrations = {{
    {1, [](sqlite3* db) { return ExecSql(db, kSchemaV1); }},
}};

// ---------------------------------------------------------------------------------------------------
// Migration at open.

// Inside a transaction: the stored schema version, 0 for an empty database.
StatusOr<int> ReadSchemaVersion(sqlite3* db) {
  auto count = [db](const char* sql) -> StatusOr<std::int64_t> {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db, "read schema");
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    Stmt s(db, raw);
    KMS_ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? s.ColumnInt(0) : 0;
  };
  KMS_ASSIGN_OR_RETURN(
      std::int64_t has_meta,
      count("SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='meta'"));
  if (has_meta == 0) {
    KMS_ASSIGN_OR_RETURN(std::int64_t objects, count("SELECT count(*) FROM sqlite_schema"));
    if (objects == 0) return 0;
    return FailedPreconditionError(
        "metadata store: the database holds tables but no KMS schema; refusing to use it");
  }
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = ?1", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db, "read schema version");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(raw, sqlite3_finalize);
  Stmt s(db, raw);
  s.Text(1, kSchemaVersionName);
  KMS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return DataLossError("metadata store: the schema version is missing from meta");
  const std::string_view text = s.ColumnBlob(0);
  int version = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (ec != std::errc() || end != text.data() + text.size() || version < 1) {
    return DataLossError("metadata store: the stored schema version is not a positive number");
  }
  return version;
}

Status WriteSchemaVersion(sqlite3* db, int version) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(
      db,
      "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2",
      -1, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db, "write schema version");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owner(raw, sqlite3_finalize);
  const std::string text = std::to_string(version);
  Stmt s(db, raw);
  s.Text(1, kSchemaVersionName).Blob(2, text);
  return s.Run();
}

// Rolls back the open transaction of `db` unless dismissed.
class RollbackGuard {
 public:
  explicit RollbackGuard(sqlite3* db) : db_(db) {}
  ~RollbackGuard() {
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  void Dismiss() { db_ = nullptr; }
  RollbackGuard(const RollbackGuard&) = delete;
  RollbackGuard& operator=(const RollbackGuard&) = delete;

 private:
  sqlite3* db_;
};

// Brings the database to the newest version in `migrations`, one committed step at a time. Safe against
// a concurrent opener in another process: each step re-reads the version under the write lock.
StatusOr<int> Migrate(sqlite3* db, std::span<const SqliteMigration> migrations) {
  const int latest = migrations.empty() ? 0 : migrations.back().to_version;
  for (;;) {
    KMS_RETURN_IF_ERROR(ExecSql(db, "BEGIN IMMEDIATE"));
    RollbackGuard guard(db);
    KMS_ASSIGN_OR_RETURN(int version, ReadSchemaVersion(db));
    if (version == latest) {
      KMS_RETURN_IF_ERROR(ExecSql(db, "COMMIT"));
      guard.Dismiss();
      return version;
    }
    if (version > latest) {
      return FailedPreconditionError(
          "metadata store: the database has schema version " + std::to_string(version) +
          ", newer than this firmware supports (" + std::to_string(latest) +
          "); run newer firmware or restore a backup made by this version");
    }
    const SqliteMigration* step = nullptr;
    for (const auto& m : migrations) {
      if (m.to_version == version + 1) step = &m;
    }
    if (step == nullptr) {
      return InternalError("metadata store: no migration from schema version " +
                           std::to_string(version));
    }
    KMS_RETURN_IF_ERROR(step->apply(db));
    KMS_RETURN_IF_ERROR(WriteSchemaVersion(db, step->to_version));
    KMS_RETURN_IF_ERROR(ExecSql(db, "COMMIT"));
    guard.Dismiss();
  }
}

// ---------------------------------------------------------------------------------------------------
// The store and its transactions.

// This process's writers take turns on the one writer connection. A flag under a condition variable
// rather than a std::timed_mutex: the timed mutex's clocklock is invisible to GCC 12's ThreadSanitizer,
// which then reports every unlock as a bug, and the sanitizer builds must stay clean.
class WriterGate {
 public:
  bool Acquire(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!free_.wait_for(lock, timeout, [this] { return !busy_; })) return false;
    busy_ = true;
    return true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
    }
    free_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable free_;
  bool busy_ = false;
};

// A turn at the gate, given back once (at the end of the transaction, or on destruction).
class WriterTurn {
 public:
  WriterTurn() = default;
  explicit WriterTurn(WriterGate* gate) : gate_(gate) {}
  WriterTurn(WriterTurn&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
  WriterTurn& operator=(WriterTurn&&) = delete;
  ~WriterTurn() { Release(); }
  void Release() {
    if (gate_ != nullptr) std::exchange(gate_, nullptr)->Release();
  }

 private:
  WriterGate* gate_ = nullptr;
};

class SqliteStore;

class SqliteTransaction final : public Transaction {
 public:
  // Read-write: runs on the store's writer connection while holding `write_lock`.
  SqliteTransaction(Connection* writer, WriterTurn turn)
      : mode_(TransactionMode::kReadWrite), conn_(writer), turn_(std::move(turn)) {}
  // Read-only: owns a reader connection until it ends, then gives it back to `store`.
  SqliteTransaction(SqliteStore* store, std::unique_ptr<Connection> reader)
      : mode_(TransactionMode::kReadOnly),
        conn_(reader.get()),
        store_(store),
        reader_(std::move(reader)) {}
  ~SqliteTransaction() override {
    if (open_) (void)End("ROLLBACK");
  }

  Status Commit() override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    if (dirty_) {
      // The epoch moves in the same transaction as the writes it announces.
      if (Status st = BumpEpoch(); !st.ok()) return Fail(std::move(st));
    }
    return End("COMMIT");
  }

  Status Rollback() override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    return End("ROLLBACK");
  }

  TransactionMode mode() const override { return mode_; }

  // ---- keys ----
  Status InsertKey(const KeyRecord& key) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateKey(key));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(key));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("INSERT INTO keys (key_id, state, next_rotation_ms, deletion_ms, record) "
                    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"));
    s->Text(1, key.key_id()).Int(2, key.state()).OptionalInt(3, RotationDue(key));
    s->OptionalInt(4, DeletionDue(key)).Blob(5, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return AlreadyExistsError("key " + key.key_id() + " already exists");
    dirty_ = true;
    return Status::Ok();
  }

  Status UpdateKey(const KeyRecord& key) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateKey(key));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(key));
    KMS_ASSIGN_OR_RETURN(auto s, Use("UPDATE keys SET state = ?2, next_rotation_ms = ?3, "
                                     "deletion_ms = ?4, record = ?5 WHERE key_id = ?1"));
    s->Text(1, key.key_id()).Int(2, key.state()).OptionalInt(3, RotationDue(key));
    s->OptionalInt(4, DeletionDue(key)).Blob(5, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return NotFoundError("key " + key.key_id() + " not found");
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<KeyRecord> GetKey(std::string_view key_id) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT key_id, state, next_rotation_ms, deletion_ms, record FROM keys "
                    "WHERE key_id = ?1"));
    s->Text(1, key_id);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFoundError("key " + std::string(key_id) + " not found");
    return DecodeKey(*s);
  }

  Status DeleteKey(std::string_view key_id) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    // ON DELETE CASCADE removes the key's versions, tags and aliases in this same statement.
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM keys WHERE key_id = ?1"));
    s->Text(1, key_id);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return NotFoundError("key " + std::string(key_id) + " not found");
    dirty_ = true;
    erased_material_ = true;
    return Status::Ok();
  }

  StatusOr<Page<KeyRecord>> ListKeys(std::string_view after, std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT key_id, state, next_rotation_ms, deletion_ms, record FROM keys "
                    "WHERE key_id > ?1 ORDER BY key_id LIMIT ?2"));
    s->Text(1, after).Int(2, static_cast<std::int64_t>(limit) + 1);
    return CollectPage<KeyRecord>(*s, limit, DecodeKey,
                                  [](const KeyRecord& k) { return k.key_id(); });
  }

  StatusOr<std::uint64_t> CountKeys() override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT count(*) FROM keys"));
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    return row ? static_cast<std::uint64_t>(s->ColumnInt(0)) : 0;
  }

  StatusOr<std::vector<KeyRecord>> ListKeysDueForRotation(std::int64_t now_ms,
                                                          std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT key_id, state, next_rotation_ms, deletion_ms, record FROM keys "
                    "WHERE next_rotation_ms IS NOT NULL AND next_rotation_ms <= ?1 "
                    "ORDER BY next_rotation_ms, key_id LIMIT ?2"));
    s->Int(1, now_ms).Int(2, static_cast<std::int64_t>(limit));
    return CollectAll<KeyRecord>(*s, DecodeKey);
  }

  StatusOr<std::vector<KeyRecord>> ListKeysDueForDeletion(std::int64_t now_ms,
                                                          std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT key_id, state, next_rotation_ms, deletion_ms, record FROM keys "
                    "WHERE deletion_ms IS NOT NULL AND deletion_ms <= ?1 "
                    "ORDER BY deletion_ms, key_id LIMIT ?2"));
    s->Int(1, now_ms).Int(2, static_cast<std::int64_t>(limit));
    return CollectAll<KeyRecord>(*s, DecodeKey);
  }

  // ---- key versions ----
  Status InsertKeyVersion(const KeyVersionRecord& version) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateVersion(version));
    KMS_RETURN_IF_ERROR(RequireKey(version.key_id()));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(version));
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO key_versions (key_id, version, record) "
                                     "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"));
    s->Text(1, version.key_id()).Int(2, version.version()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) {
      return AlreadyExistsError("version " + std::to_string(version.version()) + " of key " +
                                version.key_id() + " already exists");
    }
    dirty_ = true;
    return Status::Ok();
  }

  Status UpdateKeyVersion(const KeyVersionRecord& version) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateVersion(version));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(version));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("UPDATE key_versions SET record = ?3 WHERE key_id = ?1 AND version = ?2"));
    s->Text(1, version.key_id()).Int(2, version.version()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return VersionNotFound(version.key_id(), version.version());
    dirty_ = true;
    // Replacing a record may drop its wrapped material (KEY_VERSION_STATE_DESTROYED).
    erased_material_ = true;
    return Status::Ok();
  }

  StatusOr<KeyVersionRecord> GetKeyVersion(std::string_view key_id,
                                           std::uint32_t version) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT key_id, version, record FROM key_versions "
                                     "WHERE key_id = ?1 AND version = ?2"));
    s->Text(1, key_id).Int(2, version);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return VersionNotFound(key_id, version);
    return DecodeVersion(*s);
  }

  StatusOr<std::vector<KeyVersionRecord>> ListKeyVersions(std::string_view key_id) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT key_id, version, record FROM key_versions "
                                     "WHERE key_id = ?1 ORDER BY version"));
    s->Text(1, key_id);
    return CollectAll<KeyVersionRecord>(*s, DecodeVersion);
  }

  Status DeleteKeyVersion(std::string_view key_id, std::uint32_t version) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_ASSIGN_OR_RETURN(auto s,
                         Use("DELETE FROM key_versions WHERE key_id = ?1 AND version = ?2"));
    s->Text(1, key_id).Int(2, version);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return VersionNotFound(key_id, version);
    dirty_ = true;
    erased_material_ = true;
    return Status::Ok();
  }

  // ---- aliases ----
  Status InsertAlias(const AliasRecord& alias) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateAlias(alias));
    KMS_ASSIGN_OR_RETURN(bool exists, AliasExists(alias.alias_name()));
    if (exists) return AlreadyExistsError("alias " + alias.alias_name() + " already exists");
    KMS_RETURN_IF_ERROR(RequireKey(alias.target_key_id()));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(alias));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("INSERT INTO aliases (alias_name, target_key_id, record) VALUES (?1, ?2, ?3)"));
    s->Text(1, alias.alias_name()).Text(2, alias.target_key_id()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    dirty_ = true;
    return Status::Ok();
  }

  Status UpdateAlias(const AliasRecord& alias) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateAlias(alias));
    KMS_ASSIGN_OR_RETURN(bool exists, AliasExists(alias.alias_name()));
    if (!exists) return NotFoundError("alias " + alias.alias_name() + " not found");
    KMS_RETURN_IF_ERROR(RequireKey(alias.target_key_id()));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(alias));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("UPDATE aliases SET target_key_id = ?2, record = ?3 WHERE alias_name = ?1"));
    s->Text(1, alias.alias_name()).Text(2, alias.target_key_id()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<AliasRecord> GetAlias(std::string_view alias_name) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT alias_name, target_key_id, record FROM aliases WHERE alias_name = ?1"));
    s->Text(1, alias_name);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFoundError("alias " + std::string(alias_name) + " not found");
    return DecodeAlias(*s);
  }

  Status DeleteAlias(std::string_view alias_name) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM aliases WHERE alias_name = ?1"));
    s->Text(1, alias_name);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return NotFoundError("alias " + std::string(alias_name) + " not found");
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<Page<AliasRecord>> ListAliases(std::string_view after, std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT alias_name, target_key_id, record FROM aliases "
                                     "WHERE alias_name > ?1 ORDER BY alias_name LIMIT ?2"));
    s->Text(1, after).Int(2, static_cast<std::int64_t>(limit) + 1);
    return CollectPage<AliasRecord>(*s, limit, DecodeAlias,
                                    [](const AliasRecord& a) { return a.alias_name(); });
  }

  StatusOr<Page<AliasRecord>> ListAliasesForKey(std::string_view key_id, std::string_view after,
                                                std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT alias_name, target_key_id, record FROM aliases "
                    "WHERE target_key_id = ?1 AND alias_name > ?2 ORDER BY alias_name LIMIT ?3"));
    s->Text(1, key_id).Text(2, after).Int(3, static_cast<std::int64_t>(limit) + 1);
    return CollectPage<AliasRecord>(*s, limit, DecodeAlias,
                                    [](const AliasRecord& a) { return a.alias_name(); });
  }

  // ---- tags ----
  Status PutTag(const TagRecord& tag) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(CheckId("key_id", tag.key_id()));
    KMS_RETURN_IF_ERROR(CheckId("tag_key", tag.tag_key()));
    KMS_RETURN_IF_ERROR(CheckText("tag_value", tag.tag_value()));
    KMS_RETURN_IF_ERROR(RequireKey(tag.key_id()));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(tag));
    KMS_ASSIGN_OR_RETURN(auto s,
                         Use("INSERT INTO tags (key_id, tag_key, record) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT (key_id, tag_key) DO UPDATE SET record = ?3"));
    s->Text(1, tag.key_id()).Text(2, tag.tag_key()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    dirty_ = true;
    return Status::Ok();
  }

  Status DeleteTag(std::string_view key_id, std::string_view tag_key) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM tags WHERE key_id = ?1 AND tag_key = ?2"));
    s->Text(1, key_id).Text(2, tag_key);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) {
      return NotFoundError("tag " + std::string(tag_key) + " of key " + std::string(key_id) +
                           " not found");
    }
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<std::vector<TagRecord>> ListTags(std::string_view key_id) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT key_id, tag_key, record FROM tags WHERE key_id = ?1 ORDER BY tag_key"));
    s->Text(1, key_id);
    return CollectAll<TagRecord>(*s, DecodeTag);
  }

  // ---- intents ----
  Status InsertIntent(const IntentRecord& intent) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(CheckId("intent_id", intent.intent_id()));
    KMS_RETURN_IF_ERROR(CheckText("key_id", intent.key_id()));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(intent));
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO intents (intent_id, created_ms, record) "
                                     "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"));
    s->Text(1, intent.intent_id()).Int(2, intent.created_time_ms()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0)
      return AlreadyExistsError("intent " + intent.intent_id() + " already exists");
    dirty_ = true;
    return Status::Ok();
  }

  Status DeleteIntent(std::string_view intent_id) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM intents WHERE intent_id = ?1"));
    s->Text(1, intent_id);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return NotFoundError("intent " + std::string(intent_id) + " not found");
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<std::vector<IntentRecord>> ListIntents() override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT intent_id, created_ms, record FROM intents "
                                     "ORDER BY created_ms, intent_id"));
    return CollectAll<IntentRecord>(*s, DecodeIntent);
  }

  // ---- access keys ----
  Status InsertAccessKey(const AccessKeyRecord& access_key) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateAccessKey(access_key));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(access_key));
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO access_keys (access_key_id, status, record) "
                                     "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"));
    s->Text(1, access_key.access_key_id()).Int(2, access_key.status()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) {
      return AlreadyExistsError("access key " + access_key.access_key_id() + " already exists");
    }
    dirty_ = true;
    return Status::Ok();
  }

  Status UpdateAccessKey(const AccessKeyRecord& access_key) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(ValidateAccessKey(access_key));
    KMS_ASSIGN_OR_RETURN(std::string blob, Serialize(access_key));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("UPDATE access_keys SET status = ?2, record = ?3 WHERE access_key_id = ?1"));
    s->Text(1, access_key.access_key_id()).Int(2, access_key.status()).Blob(3, blob);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) {
      return NotFoundError("access key " + access_key.access_key_id() + " not found");
    }
    dirty_ = true;
    // The replaced record may have held another sealed secret (a re-seal): purge it from the WAL too.
    erased_material_ = true;
    return Status::Ok();
  }

  StatusOr<AccessKeyRecord> GetAccessKey(std::string_view access_key_id) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT access_key_id, status, record FROM access_keys "
                                     "WHERE access_key_id = ?1"));
    s->Text(1, access_key_id);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFoundError("access key " + std::string(access_key_id) + " not found");
    return DecodeAccessKey(*s);
  }

  Status DeleteAccessKey(std::string_view access_key_id) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM access_keys WHERE access_key_id = ?1"));
    s->Text(1, access_key_id);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) {
      return NotFoundError("access key " + std::string(access_key_id) + " not found");
    }
    dirty_ = true;
    // Sealed, but still a secret's ciphertext: leave no copy in the WAL (as for key material).
    erased_material_ = true;
    return Status::Ok();
  }

  StatusOr<Page<AccessKeyRecord>> ListAccessKeys(std::string_view after,
                                                 std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    KMS_ASSIGN_OR_RETURN(
        auto s, Use("SELECT access_key_id, status, record FROM access_keys "
                    "WHERE access_key_id > ?1 ORDER BY access_key_id LIMIT ?2"));
    s->Text(1, after).Int(2, static_cast<std::int64_t>(limit) + 1);
    return CollectPage<AccessKeyRecord>(
        *s, limit, DecodeAccessKey, [](const AccessKeyRecord& a) { return a.access_key_id(); });
  }

  // ---- counters and settings ----
  StatusOr<std::uint64_t> Epoch() override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    return ReadCounter(kEpochCounter);
  }

  StatusOr<std::uint64_t> GetCounter(std::string_view name) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_RETURN_IF_ERROR(CheckId("counter name", name));
    return ReadCounter(name);
  }

  StatusOr<std::uint64_t> IncrementCounter(std::string_view name, std::uint64_t delta) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(CheckId("counter name", name));
    KMS_RETURN_IF_ERROR(CheckNotReserved(name));
    KMS_ASSIGN_OR_RETURN(std::uint64_t current, ReadCounter(name));
    // SQLite integers are signed 64-bit; the counter saturates there rather than wrapping.
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (delta > kMax - current) {
      return OutOfRangeError("counter " + std::string(name) + " would overflow");
    }
    const std::uint64_t next = current + delta;
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO counters (name, value) VALUES (?1, ?2) "
                                     "ON CONFLICT (name) DO UPDATE SET value = ?2"));
    s->Text(1, name).Int(2, static_cast<std::int64_t>(next));
    KMS_RETURN_IF_ERROR(s->Run());
    dirty_ = true;
    return next;
  }

  StatusOr<std::string> GetMeta(std::string_view name) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT value FROM meta WHERE name = ?1"));
    s->Text(1, name);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFoundError("setting " + std::string(name) + " not found");
    return std::string(s->ColumnBlob(0));
  }

  Status PutMeta(std::string_view name, std::string_view value) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(CheckId("setting name", name));
    KMS_RETURN_IF_ERROR(CheckNotReserved(name));
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO meta (name, value) VALUES (?1, ?2) "
                                     "ON CONFLICT (name) DO UPDATE SET value = ?2"));
    s->Text(1, name).Blob(2, value);
    KMS_RETURN_IF_ERROR(s->Run());
    dirty_ = true;
    return Status::Ok();
  }

  Status DeleteMeta(std::string_view name) override {
    KMS_RETURN_IF_ERROR(CheckWritable());
    KMS_RETURN_IF_ERROR(CheckNotReserved(name));
    KMS_ASSIGN_OR_RETURN(auto s, Use("DELETE FROM meta WHERE name = ?1"));
    s->Text(1, name);
    KMS_RETURN_IF_ERROR(s->Run());
    if (Changes() == 0) return NotFoundError("setting " + std::string(name) + " not found");
    dirty_ = true;
    return Status::Ok();
  }

  StatusOr<Page<std::pair<std::string, std::string>>> ListMeta(std::string_view prefix,
                                                               std::string_view after,
                                                               std::size_t limit) override {
    KMS_RETURN_IF_ERROR(CheckOpen());
    if (prefix.empty()) return InvalidArgumentError("setting prefix must not be empty");
    KMS_RETURN_IF_ERROR(CheckLimit(limit));
    // substr(name, 1, n) = prefix rather than LIKE: a prefix may hold '%' or '_'.
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT name, value FROM meta WHERE substr(name, 1, ?1) = ?2 "
                                     "AND name > ?3 ORDER BY name LIMIT ?4"));
    s->Int(1, static_cast<std::int64_t>(prefix.size())).Text(2, prefix).Text(3, after)
        .Int(4, static_cast<std::int64_t>(limit) + 1);
    Page<std::pair<std::string, std::string>> page;
    while (true) {
      KMS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      if (page.items.size() == limit) {
        page.truncated = true;
        page.next_marker = page.items.back().first;
        break;
      }
      page.items.emplace_back(std::string(s->ColumnText(0)), std::string(s->ColumnBlob(1)));
    }
    return page;
  }

  // The body of MetadataStore::CheckIntegrity, run in a read-only transaction (one snapshot).
  Status CheckIntegrity() {
    KMS_RETURN_IF_ERROR(CheckOpen());
    {
      KMS_ASSIGN_OR_RETURN(auto s, Use("PRAGMA integrity_check"));
      std::string problems;
      for (;;) {
        KMS_ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        const std::string_view line = s->ColumnText(0);
        if (line == "ok") continue;
        if (!problems.empty()) problems += "; ";
        problems += line;
      }
      if (!problems.empty()) return DataLossError("metadata store: integrity_check: " + problems);
    }
    {
      KMS_ASSIGN_OR_RETURN(auto s, Use("PRAGMA foreign_key_check"));
      KMS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (row) {
        return DataLossError("metadata store: a row of table " + std::string(s->ColumnText(0)) +
                             " references a missing key");
      }
    }
    // Every record must parse and agree with its columns.
    KMS_RETURN_IF_ERROR(CheckTable<KeyRecord>(
        "SELECT key_id, state, next_rotation_ms, deletion_ms, record FROM keys", DecodeKey));
    KMS_RETURN_IF_ERROR(CheckTable<KeyVersionRecord>(
        "SELECT key_id, version, record FROM key_versions", DecodeVersion));
    KMS_RETURN_IF_ERROR(CheckTable<AliasRecord>(
        "SELECT alias_name, target_key_id, record FROM aliases", DecodeAlias));
    KMS_RETURN_IF_ERROR(
        CheckTable<TagRecord>("SELECT key_id, tag_key, record FROM tags", DecodeTag));
    KMS_RETURN_IF_ERROR(CheckTable<IntentRecord>(
        "SELECT intent_id, created_ms, record FROM intents", DecodeIntent));
    KMS_RETURN_IF_ERROR(CheckTable<AccessKeyRecord>(
        "SELECT access_key_id, status, record FROM access_keys", DecodeAccessKey));
    return Status::Ok();
  }

 private:
  // A cached prepared statement for one use; resets itself when the returned pointer dies.
  StatusOr<std::unique_ptr<Stmt>> Use(const char* sql) {
    KMS_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, conn_->Prepare(sql));
    return std::make_unique<Stmt>(conn_->db(), stmt);
  }
  Status BumpEpoch() {
    KMS_ASSIGN_OR_RETURN(auto s, Use("INSERT INTO counters (name, value) VALUES (?1, 1) "
                                     "ON CONFLICT (name) DO UPDATE SET value = value + 1"));
    s->Text(1, kEpochCounter);
    return s->Run();
  }

  Status CheckOpen() const {
    if (!open_) return FailedPreconditionError("metadata store: the transaction has ended");
    // SQLite ends a transaction by itself after some errors (I/O, disk full, corruption); nothing
    // written so far will commit.
    if (sqlite3_get_autocommit(conn_->db()) != 0) {
      return Status(StatusCode::kAborted,
                    "metadata store: the transaction was abandoned after an earlier error");
    }
    return Status::Ok();
  }
  Status CheckWritable() const {
    KMS_RETURN_IF_ERROR(CheckOpen());
    if (mode_ != TransactionMode::kReadWrite) {
      return FailedPreconditionError("metadata store: write in a read-only transaction");
    }
    return Status::Ok();
  }
  static Status CheckNotReserved(std::string_view name) {
    if (name.starts_with(kReservedMetaPrefix)) {
      return InvalidArgumentError("metadata store: " + std::string(name) + " is reserved");
    }
    return Status::Ok();
  }

  static Status ValidateKey(const KeyRecord& key) {
    KMS_RETURN_IF_ERROR(CheckId("key_id", key.key_id()));
    return CheckText("description", key.description());
  }
  static Status ValidateVersion(const KeyVersionRecord& v) {
    KMS_RETURN_IF_ERROR(CheckId("key_id", v.key_id()));
    if (v.version() == 0) return InvalidArgumentError("key version 0 is not a version");
    return CheckText("key_material_id", v.key_material_id());
  }
  static Status ValidateAlias(const AliasRecord& a) {
    KMS_RETURN_IF_ERROR(CheckId("alias_name", a.alias_name()));
    return CheckId("target_key_id", a.target_key_id());
  }
  static Status ValidateAccessKey(const AccessKeyRecord& a) {
    KMS_RETURN_IF_ERROR(CheckId("access_key_id", a.access_key_id()));
    KMS_RETURN_IF_ERROR(CheckText("principal", a.principal()));
    if (a.sealing_key_version() == 0) {
      return InvalidArgumentError("access key sealing_key_version 0 is not a version");
    }
    return Status::Ok();
  }
  static Status VersionNotFound(std::string_view key_id, std::uint32_t version) {
    return NotFoundError("version " + std::to_string(version) + " of key " + std::string(key_id) +
                         " not found");
  }

  int Changes() const { return sqlite3_changes(conn_->db()); }

  Status RequireKey(std::string_view key_id) {
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT 1 FROM keys WHERE key_id = ?1"));
    s->Text(1, key_id);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NotFoundError("key " + std::string(key_id) + " not found");
    return Status::Ok();
  }
  StatusOr<bool> AliasExists(std::string_view alias_name) {
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT 1 FROM aliases WHERE alias_name = ?1"));
    s->Text(1, alias_name);
    return s->Step();
  }
  StatusOr<std::uint64_t> ReadCounter(std::string_view name) {
    KMS_ASSIGN_OR_RETURN(auto s, Use("SELECT value FROM counters WHERE name = ?1"));
    s->Text(1, name);
    KMS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return std::uint64_t{0};
    const std::int64_t v = s->ColumnInt(0);
    if (v < 0)
      return DataLossError("metadata store: counter " + std::string(name) + " is negative");
    return static_cast<std::uint64_t>(v);
  }

  template <typename Record, typename Decode>
  static StatusOr<std::vector<Record>> CollectAll(Stmt& s, Decode decode) {
    std::vector<Record> out;
    for (;;) {
      KMS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return out;
      KMS_ASSIGN_OR_RETURN(Record r, decode(s));
      out.push_back(std::move(r));
    }
  }
  // The statement was run with LIMIT limit+1: a row beyond `limit` means the page is truncated.
  template <typename Record, typename Decode, typename SortKey>
  static StatusOr<Page<Record>> CollectPage(Stmt& s, std::size_t limit, Decode decode,
                                            SortKey sort_key) {
    KMS_ASSIGN_OR_RETURN(std::vector<Record> items, CollectAll<Record>(s, decode));
    Page<Record> page;
    if (items.size() > limit) {
      items.resize(limit);
      page.truncated = true;
      page.next_marker = sort_key(items.back());
    }
    page.items = std::move(items);
    return page;
  }
  template <typename Record, typename Decode>
  Status CheckTable(const char* sql, Decode decode) {
    KMS_ASSIGN_OR_RETURN(auto s, Use(sql));
    for (;;) {
      KMS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) return Status::Ok();
      KMS_RETURN_IF_ERROR(StatusOf(decode(*s)));
    }
  }

  Status Fail(Status error) {
    (void)End("ROLLBACK");
    return error;
  }
  // Ends the transaction with `sql` (COMMIT or ROLLBACK) and releases its lock or connection.
  Status End(const char* sql);

  const TransactionMode mode_;
  Connection* conn_;
  bool open_ = true;
  bool dirty_ = false;
  bool erased_material_ = false;  // deleted or replaced a key version: purge the WAL after commit
  WriterTurn turn_;  // read-write transactions
  SqliteStore* store_ = nullptr;                   // read-only transactions: the pool to return to
  std::unique_ptr<Connection> reader_;
};

class SqliteStore final : public MetadataStore {
 public:
  SqliteStore(SqliteStoreOptions options, std::unique_ptr<Connection> writer, int schema_version)
      : options_(std::move(options)), writer_(std::move(writer)), schema_version_(schema_version) {}

  StatusOr<std::unique_ptr<Transaction>> Begin(TransactionMode mode) override {
    if (mode == TransactionMode::kReadWrite) {
      // First this process's writers (the mutex), then other processes' (SQLite's lock, with the busy
      // timeout). BEGIN IMMEDIATE takes the write lock now, so no statement of the transaction can fail
      // later with SQLITE_BUSY.
      if (!writer_gate_.Acquire(options_.busy_timeout)) {
        return UnavailableError("metadata store: busy: another transaction holds the write lock");
      }
      WriterTurn turn(&writer_gate_);
      KMS_RETURN_IF_ERROR(writer_->Run("BEGIN IMMEDIATE"));
      return std::unique_ptr<Transaction>(new SqliteTransaction(writer_.get(), std::move(turn)));
    }
    KMS_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader, TakeReader());
    // DEFERRED: the WAL snapshot is taken at the first read and held until the end.
    KMS_RETURN_IF_ERROR(reader->Run("BEGIN DEFERRED"));
    return std::unique_ptr<Transaction>(new SqliteTransaction(this, std::move(reader)));
  }

  Status CheckIntegrity() override {
    KMS_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader, TakeReader());
    KMS_RETURN_IF_ERROR(reader->Run("BEGIN DEFERRED"));
    SqliteTransaction txn(this, std::move(reader));
    return txn.CheckIntegrity();
  }

  int SchemaVersion() const override { return schema_version_; }

  void ReturnReader(std::unique_ptr<Connection> reader) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (idle_readers_.size() < options_.max_idle_readers)
      idle_readers_.push_back(std::move(reader));
  }

 private:
  StatusOr<std::unique_ptr<Connection>> TakeReader() {
    {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      if (!idle_readers_.empty()) {
        auto reader = std::move(idle_readers_.back());
        idle_readers_.pop_back();
        return reader;
      }
    }
    return Connection::Open(options_.path, options_.busy_timeout, /*reader=*/true);
  }

  const SqliteStoreOptions options_;
  std::unique_ptr<Connection> writer_;
  const int schema_version_;
  WriterGate writer_gate_;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;
};

Status SqliteTransaction::End(const char* sql) {
  open_ = false;
  Status result;
  if (sqlite3_get_autocommit(conn_->db()) == 0) {
    result = conn_->Run(sql);
    // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY): roll it back so the
    // connection is clean for the next user.
    if (!result.ok() && sqlite3_get_autocommit(conn_->db()) == 0) {
      (void)conn_->Run("ROLLBACK");
    }
  } else if (std::string_view(sql) == "COMMIT") {
    result = Status(StatusCode::kAborted,
                    "metadata store: the transaction was abandoned after an earlier error");
  }
  if (result.ok() && erased_material_ && std::string_view(sql) == "COMMIT") {
    // Destruction of wrapped material (a deleted key's material is actually destroyed when its
    // waiting period ends): secure_delete zeroes the freed cells in the pages this commit wrote,
    // but older page images still holding the material stay in the WAL until a checkpoint. TRUNCATE
    // copies the zeroed pages into the database and truncates the WAL to zero bytes. Best effort: a
    // reader in another process that still holds an old snapshot makes it stop short (after the
    // busy timeout); the next erasing commit or SQLite's automatic checkpoints finish the job. The
    // commit itself is already durable, so the outcome does not change `result`.
    (void)sqlite3_wal_checkpoint_v2(conn_->db(), "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                    nullptr);
  }
  turn_.Release();
  if (reader_ != nullptr && store_ != nullptr) store_->ReturnReader(std::move(reader_));
  return result;
}

// Creates the file with mode 0600 if missing (SQLite would create it 0644 minus umask); the -wal and
// -shm files take the main file's permissions. A new file's directory entry is fsynced, so the first
// commit cannot survive a power loss that the file itself does not (SQLite fsyncs the directory for the
// -wal it creates, not for a main file created by someone else).
Status CreateFilePrivately(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return Status::Ok();
  if (fd < 0) return UnavailableError("metadata store: cannot create " + path);
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool dir_synced = dir_fd >= 0 && ::fsync(dir_fd) == 0;
  if (dir_fd >= 0) ::close(dir_fd);
  if (!synced || !dir_synced) return UnavailableError("metadata store: cannot sync new " + path);
  return Status::Ok();
}

}  // namespace

namespace internal {

Status ExecSql(sqlite3* db, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  sqlite3_free(error);  // the same text is in sqlite3_errmsg(db)
  if (rc != SQLITE_OK) return SqliteError(sqlite3_extended_errcode(db), db, "exec");
  return Status::Ok();
}

std::span<const SqliteMigration> BuiltinSqliteMigrations() { return kBuiltinMigrations; }

StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteStoreWithMigrations(
    const SqliteStoreOptions& options, std::span<const SqliteMigration> migrations) {
  if (options.path.empty()) return InvalidArgumentError("metadata store: empty database path");
  // Connections are opened SQLITE_OPEN_NOMUTEX (one thread at a time each), which needs a library
  // built thread-safe (sqlite.org/threadsafe.html); Debian's is.
  if (sqlite3_threadsafe() == 0) {
    return FailedPreconditionError("metadata store: SQLite was built without thread support");
  }
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].to_version != static_cast<int>(i) + 1) {
      return InternalError("metadata store: migrations must be consecutive from version 1");
    }
  }
  KMS_RETURN_IF_ERROR(CreateFilePrivately(options.path));
  KMS_ASSIGN_OR_RETURN(auto writer,
                       Connection::Open(options.path, options.busy_timeout, /*reader=*/false));
  KMS_ASSIGN_OR_RETURN(int version, Migrate(writer->db(), migrations));
  return std::unique_ptr<MetadataStore>(new SqliteStore(options, std::move(writer), version));
}

}  // namespace internal

StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteStore(const SqliteStoreOptions& options) {
  return internal::OpenSqliteStoreWithMigrations(options, internal::BuiltinSqliteMigrations());
}

}  // namespace kms::firmware::store
