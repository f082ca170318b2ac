// Scale sanity of the SQLite store: 100,000 keys (the AWS per-account quota,
// docs/aws-kms-protocol.md "Limits") inserted in batches of 1,000 per transaction, then listed,
// counted and looked up. Timing is printed, never asserted (docs/conventions.md "Tests"). It takes
// about 2 s on the dev VM, so it runs with the unit suite; label it [slow] if that ever exceeds
// 10 s.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "firmware/store/sqlite_store.h"
#include "tests/firmware/store/store_test_util.h"

namespace kms::firmware::store {
namespace {

using testing::BeginOrDie;
using testing::MakeKey;
using testing::MakeVersion;
using testing::OpenOrDie;
using testing::TempDir;

std::string KeyId(int i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012x", i, i);
  return buf;
}

TEST_CASE("scale: 100,000 keys in batches", "[unit][store][scale]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  auto store = OpenOrDie(path);
  constexpr int kKeys = 100'000;
  constexpr int kBatch = 1'000;
  const auto start = std::chrono::steady_clock::now();
  for (int b = 0; b < kKeys / kBatch; ++b) {
    auto txn = BeginOrDie(*store);
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      const std::string id = KeyId(i);
      REQUIRE(txn->InsertKey(MakeKey(id)).ok());
      REQUIRE(txn->InsertKeyVersion(MakeVersion(id, 1)).ok());
    }
    KMS_REQUIRE_OK(txn->Commit());
  }
  const auto inserted = std::chrono::steady_clock::now();

  auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
  CHECK(*txn->CountKeys() == kKeys);
  std::size_t listed = 0;
  std::string after;
  for (;;) {
    auto page = txn->ListKeys(after, 1000);
    KMS_REQUIRE_OK(page);
    listed += page->items.size();
    if (!page->truncated) break;
    after = page->next_marker;
  }
  CHECK(listed == static_cast<std::size_t>(kKeys));
  for (int i = 0; i < kKeys; i += 997) {
    KMS_REQUIRE_OK(txn->GetKey(KeyId(i)));
    KMS_REQUIRE_OK(txn->GetKeyVersion(KeyId(i), 1));
  }
  CHECK(txn->ListKeysDueForRotation(INT64_MAX, 10)->empty());
  txn.reset();
  const auto done = std::chrono::steady_clock::now();
  KMS_REQUIRE_OK(store->CheckIntegrity());
  const auto checked = std::chrono::steady_clock::now();

  using ms = std::chrono::milliseconds;
  std::error_code ec;
  const auto db_size = std::filesystem::file_size(path, ec);
  const auto wal_size = std::filesystem::file_size(path + "-wal", ec);
  WARN("insert " << kKeys
                 << " keys+versions: " << std::chrono::duration_cast<ms>(inserted - start).count()
                 << " ms; list+lookups: " << std::chrono::duration_cast<ms>(done - inserted).count()
                 << " ms; integrity check: "
                 << std::chrono::duration_cast<ms>(checked - done).count() << " ms; db "
                 << db_size / 1024 << " KiB, wal " << wal_size / 1024 << " KiB");
}

}  // namespace
}  // namespace kms::firmware::store
