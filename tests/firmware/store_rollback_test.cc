// The store's rollback guard on the fake HSM and a real SQLite file: a fresh token takes the
// store's epoch; a real older copy of the store file, put back after newer commits, is refused
// with both epochs named; the operator may accept it (the watermark follows it down); raising
// never lowers the watermark; an unreadable watermark or a failing HSM is an error, not a pass.
#include "firmware/store_rollback.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace kms::firmware {
namespace {

namespace fs = std::filesystem;

struct StoreFile {
  fs::path dir;
  std::unique_ptr<store::MetadataStore> store;
  StoreFile() {
    std::string pattern = (fs::temp_directory_path() / "kms-rollback-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    Open();
  }
  ~StoreFile() {
    store.reset();
    fs::remove_all(dir);
  }
  fs::path path() const { return dir / "kms.db"; }
  void Open() {
    store::SqliteStoreOptions options;
    options.path = path().string();
    auto opened = store::OpenSqliteStore(options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
  }
  // Closes the store (so the file is whole), copies it aside, reopens it.
  void CopyTo(const fs::path& copy) {
    store.reset();
    REQUIRE_FALSE(fs::exists(dir / "kms.db-wal"));
    fs::copy_file(path(), copy, fs::copy_options::overwrite_existing);
    Open();
  }
  void PutBack(const fs::path& copy) {
    store.reset();
    fs::copy_file(copy, path(), fs::copy_options::overwrite_existing);
    Open();
  }
  void Commit(int n) {
    for (int i = 0; i < n; ++i) {
      auto txn = store->Begin(store::TransactionMode::kReadWrite);
      REQUIRE(txn.has_value());
      REQUIRE((*txn)->PutMeta("test.n", std::to_string(i)).ok());
      REQUIRE((*txn)->Commit().ok());
    }
  }
  std::uint64_t Epoch() {
    auto txn = store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(txn.has_value());
    auto epoch = (*txn)->Epoch();
    REQUIRE(epoch.has_value());
    return *epoch;
  }
};

std::string Watermark(hal::Hsm& hsm) {
  auto value = hsm.ReadTokenData(kStoreWatermarkLabel);
  REQUIRE(value.has_value());
  return ToString(*value);
}

TEST_CASE("rollback: a fresh token takes the store's epoch as its watermark", "[unit]") {
  auto hsm = testing::NewFakeHsm();
  StoreFile f;
  f.Commit(3);
  auto check = CheckStoreEpoch(*hsm, *f.store, false);
  REQUIRE(check.has_value());
  CHECK(check->store_epoch == f.Epoch());
  CHECK_FALSE(check->watermark.has_value());
  CHECK_FALSE(check->rollback_accepted);
  CHECK(Watermark(*hsm) == "v1 epoch=" + std::to_string(f.Epoch()));
  // The same store again: nothing to do, nothing refused.
  auto again = CheckStoreEpoch(*hsm, *f.store, false);
  REQUIRE(again.has_value());
  CHECK(again->watermark == f.Epoch());
}

TEST_CASE("rollback: an older copy of the store file put back is refused with both epochs",
          "[unit]") {
  auto hsm = testing::NewFakeHsm();
  StoreFile f;
  f.Commit(2);
  const fs::path old_copy = f.dir / "old.db";
  f.CopyTo(old_copy);
  const std::uint64_t old_epoch = f.Epoch();
  REQUIRE(CheckStoreEpoch(*hsm, *f.store, false).has_value());
  f.Commit(4);
  auto raised = RaiseWatermark(*hsm, *f.store);
  REQUIRE(raised.has_value());
  const std::uint64_t new_epoch = f.Epoch();
  CHECK(*raised == new_epoch);
  REQUIRE(new_epoch > old_epoch);

  f.PutBack(old_copy);
  REQUIRE(f.Epoch() == old_epoch);
  auto refused = CheckStoreEpoch(*hsm, *f.store, false);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code() == StatusCode::kFailedPrecondition);
  CHECK(refused.error().message() ==
        "the store is older than this HSM has seen: its epoch is " + std::to_string(old_epoch) +
            ", the token's watermark " + std::to_string(new_epoch) +
            ". It was replaced by an older copy, which could bring deleted keys back: put the "
            "newest store back, or start kmsd with --accept-store-rollback to take this one as it "
            "is");
  // Refusing changed nothing: the watermark still names the newest store.
  CHECK(Watermark(*hsm) == "v1 epoch=" + std::to_string(new_epoch));
  // Raising on the old store never lowers it either.
  auto kept = RaiseWatermark(*hsm, *f.store);
  REQUIRE(kept.has_value());
  CHECK(*kept == new_epoch);

  // The operator accepts the old store: the watermark follows it down, and it opens from now on.
  auto accepted = CheckStoreEpoch(*hsm, *f.store, true);
  REQUIRE(accepted.has_value());
  CHECK(accepted->rollback_accepted);
  CHECK(accepted->watermark == new_epoch);
  CHECK(Watermark(*hsm) == "v1 epoch=" + std::to_string(old_epoch));
  CHECK(CheckStoreEpoch(*hsm, *f.store, false).has_value());
}

TEST_CASE("rollback: an unreadable watermark or a failing HSM is an error, never a pass",
          "[unit]") {
  auto hsm = testing::NewFakeHsm();
  StoreFile f;
  REQUIRE(hsm->WriteTokenData(kStoreWatermarkLabel, AsBytes("v1 epoch=12x")).ok());
  auto garbled = CheckStoreEpoch(*hsm, *f.store, true);
  REQUIRE_FALSE(garbled.has_value());
  CHECK(garbled.error().code() == StatusCode::kDataLoss);
  CHECK(garbled.error().message() == "the token's store watermark is unreadable");

  auto fresh = testing::NewFakeHsm();
  fresh->InjectFailure(UnavailableError("device gone"));
  auto failed = CheckStoreEpoch(*fresh, *f.store, false);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code() == StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kms::firmware
