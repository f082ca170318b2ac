// Helpers for the metadata store tests: a temporary directory removed afterwards, record builders, and
// raw SQLite access for corrupting a database on purpose.
#ifndef KMS_TESTS_FIRMWARE_STORE_STORE_TEST_UTIL_H_
#define KMS_TESTS_FIRMWARE_STORE_STORE_TEST_UTIL_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "base/status.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"

namespace kms::firmware::store::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kms-store-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::unique_ptr<MetadataStore> OpenOrDie(
    const std::string& path, std::chrono::milliseconds busy = std::chrono::milliseconds(5000)) {
  SqliteStoreOptions options;
  options.path = path;
  options.busy_timeout = busy;
  auto store = OpenSqliteStore(options);
  if (!store.has_value()) FAIL("open: " << store.error().ToString());
  return std::move(*store);
}

inline std::unique_ptr<Transaction> BeginOrDie(MetadataStore& store,
                                               TransactionMode mode = TransactionMode::kReadWrite) {
  auto txn = store.Begin(mode);
  if (!txn.has_value()) FAIL("begin: " << txn.error().ToString());
  return std::move(*txn);
}

#define KMS_REQUIRE_OK(expr)                                      \
  do {                                                            \
    const ::kms::Status kms_test_status_ = ::kms::StatusOf(expr); \
    INFO(kms_test_status_.ToString());                            \
    REQUIRE(kms_test_status_.ok());                               \
  } while (0)

inline KeyRecord MakeKey(const std::string& id) {
  KeyRecord k;
  k.set_key_id(id);
  k.set_key_spec(records::KEY_SPEC_SYMMETRIC_DEFAULT);
  k.set_key_usage(records::KEY_USAGE_ENCRYPT_DECRYPT);
  k.set_description("key " + id);
  k.set_state(records::KEY_STATE_ENABLED);
  k.set_creation_time_ms(1'700'000'000'000);
  k.set_current_version(1);
  k.set_origin(records::ORIGIN_AWS_KMS);
  return k;
}

inline KeyVersionRecord MakeVersion(const std::string& key_id, std::uint32_t version) {
  KeyVersionRecord v;
  v.set_key_id(key_id);
  v.set_version(version);
  v.set_key_material_id(std::string(64, static_cast<char>('a' + static_cast<char>(version % 6))));
  v.set_algorithm(records::HAL_ALGORITHM_AES_256);
  v.set_purpose(records::HAL_PURPOSE_ENCRYPT_DECRYPT);
  v.set_wrapped(std::string(40, '\x5a'));
  v.set_creation_time_ms(1'700'000'000'000 + version);
  v.set_rotation_type(version == 1 ? records::ROTATION_TYPE_INITIAL
                                   : records::ROTATION_TYPE_ON_DEMAND);
  v.set_state(records::KEY_VERSION_STATE_CURRENT);
  return v;
}

inline AliasRecord MakeAlias(const std::string& name, const std::string& target) {
  AliasRecord a;
  a.set_alias_name(name);
  a.set_target_key_id(target);
  a.set_creation_time_ms(1'700'000'000'000);
  a.set_last_updated_time_ms(1'700'000'000'000);
  return a;
}

inline TagRecord MakeTag(const std::string& key_id, const std::string& tag_key,
                         const std::string& value) {
  TagRecord t;
  t.set_key_id(key_id);
  t.set_tag_key(tag_key);
  t.set_tag_value(value);
  return t;
}

// Runs SQL straight on the database file, bypassing the store (to corrupt or age it on purpose).
inline void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace kms::firmware::store::testing

#endif  // KMS_TESTS_FIRMWARE_STORE_STORE_TEST_UTIL_H_
