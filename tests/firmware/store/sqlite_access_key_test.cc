// Metadata store: access-key records (AWS door SigV4 keys) on the SQLite backend: CRUD, paging,
// exact errors, validation, corruption found as DataLoss by reads and CheckIntegrity, reopening.
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <string>

#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "tests/firmware/store/store_test_util.h"

namespace kms::firmware::store {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::BeginOrDie;
using testing::MakeKey;
using testing::OpenOrDie;
using testing::RawExec;
using testing::TempDir;

AccessKeyRecord MakeAccessKey(const std::string& id) {
  AccessKeyRecord a;
  a.set_access_key_id(id);
  a.set_principal("user-" + id);
  a.set_status(records::ACCESS_KEY_STATUS_ACTIVE);
  a.set_creation_time_ms(1'700'000'000'000);
  a.set_administrator(false);
  a.set_sealed_iv(std::string(12, '\x01'));
  a.set_sealed_ciphertext(std::string(40, '\x02'));
  a.set_sealed_tag(std::string(16, '\x03'));
  a.set_sealing_key_version(1);
  return a;
}

AccessKeyRecord Stamped(AccessKeyRecord r) {
  r.set_record_version(kRecordVersion);
  return r;
}

template <typename T>
StatusCode CodeOf(const StatusOr<T>& r) {
  return r.has_value() ? StatusCode::kOk : r.error().code();
}

TEST_CASE("store: access key records round-trip, update, delete", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  AccessKeyRecord key = MakeAccessKey("AKMS1");
  key.set_administrator(true);
  KMS_REQUIRE_OK(txn->InsertAccessKey(key));

  auto got = txn->GetAccessKey("AKMS1");
  KMS_REQUIRE_OK(got);
  CHECK(MessageDifferencer::Equals(*got, Stamped(key)));

  SECTION("duplicate insert is AlreadyExists and changes nothing") {
    AccessKeyRecord other = MakeAccessKey("AKMS1");
    other.set_principal("someone-else");
    const Status s = txn->InsertAccessKey(other);
    CHECK(s.code() == StatusCode::kAlreadyExists);
    CHECK(s.message() == "access key AKMS1 already exists");
    CHECK(txn->GetAccessKey("AKMS1")->principal() == "user-AKMS1");
  }
  SECTION("update replaces the record") {
    key.set_status(records::ACCESS_KEY_STATUS_INACTIVE);
    KMS_REQUIRE_OK(txn->UpdateAccessKey(key));
    CHECK(MessageDifferencer::Equals(*txn->GetAccessKey("AKMS1"), Stamped(key)));
  }
  SECTION("update of a missing access key is NotFound") {
    const Status s = txn->UpdateAccessKey(MakeAccessKey("AKMSX"));
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.message() == "access key AKMSX not found");
  }
  SECTION("get of a missing access key is NotFound") {
    auto r = txn->GetAccessKey("AKMSX");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kNotFound);
    CHECK(r.error().message() == "access key AKMSX not found");
  }
  SECTION("delete removes it; a second delete is NotFound") {
    KMS_REQUIRE_OK(txn->DeleteAccessKey("AKMS1"));
    CHECK(CodeOf(txn->GetAccessKey("AKMS1")) == StatusCode::kNotFound);
    const Status s = txn->DeleteAccessKey("AKMS1");
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.message() == "access key AKMS1 not found");
  }
  SECTION("malformed records are InvalidArgument") {
    AccessKeyRecord empty_id = MakeAccessKey("");
    Status s = txn->InsertAccessKey(empty_id);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message() == "access_key_id is empty");
    CHECK(txn->UpdateAccessKey(empty_id).code() == StatusCode::kInvalidArgument);

    AccessKeyRecord no_sealing_key = MakeAccessKey("AKMS2");
    no_sealing_key.set_sealing_key_version(0);
    s = txn->InsertAccessKey(no_sealing_key);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message() == "access key sealing_key_version 0 is not a version");

    AccessKeyRecord bad_principal = MakeAccessKey("AKMS3");
    bad_principal.set_principal(std::string("\xff\xfe", 2));
    s = txn->InsertAccessKey(bad_principal);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message() == "principal is not valid UTF-8");
    CHECK(CodeOf(txn->GetAccessKey("AKMS2")) == StatusCode::kNotFound);
    CHECK(CodeOf(txn->GetAccessKey("AKMS3")) == StatusCode::kNotFound);
  }
  SECTION("writes in a read-only transaction are FailedPrecondition") {
    KMS_REQUIRE_OK(txn->Commit());
    auto ro = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(ro->InsertAccessKey(MakeAccessKey("AKMS9")).code() == StatusCode::kFailedPrecondition);
    CHECK(ro->UpdateAccessKey(key).code() == StatusCode::kFailedPrecondition);
    CHECK(ro->DeleteAccessKey("AKMS1").code() == StatusCode::kFailedPrecondition);
    KMS_REQUIRE_OK(ro->GetAccessKey("AKMS1"));
  }
}

TEST_CASE("store: access keys are independent of customer keys", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  KMS_REQUIRE_OK(txn->InsertKey(MakeKey("AKMS1")));
  KMS_REQUIRE_OK(txn->InsertAccessKey(MakeAccessKey("AKMS1")));
  KMS_REQUIRE_OK(txn->DeleteKey("AKMS1"));
  KMS_REQUIRE_OK(txn->GetAccessKey("AKMS1"));
  KMS_REQUIRE_OK(txn->Commit());
  KMS_REQUIRE_OK(store->CheckIntegrity());
}

TEST_CASE("store: ListAccessKeys pages in id order", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  for (const char* id : {"AK05", "AK01", "AK03", "AK02", "AK04"})
    KMS_REQUIRE_OK(txn->InsertAccessKey(MakeAccessKey(id)));

  auto p1 = txn->ListAccessKeys("", 2);
  KMS_REQUIRE_OK(p1);
  REQUIRE(p1->items.size() == 2);
  CHECK(p1->items[0].access_key_id() == "AK01");
  CHECK(p1->items[1].access_key_id() == "AK02");
  CHECK(p1->truncated);
  CHECK(p1->next_marker == "AK02");

  auto p2 = txn->ListAccessKeys(p1->next_marker, 2);
  KMS_REQUIRE_OK(p2);
  REQUIRE(p2->items.size() == 2);
  CHECK(p2->items[0].access_key_id() == "AK03");
  CHECK(p2->truncated);
  CHECK(p2->next_marker == "AK04");

  auto p3 = txn->ListAccessKeys(p2->next_marker, 2);
  KMS_REQUIRE_OK(p3);
  REQUIRE(p3->items.size() == 1);
  CHECK(p3->items[0].access_key_id() == "AK05");
  CHECK_FALSE(p3->truncated);
  CHECK(p3->next_marker.empty());

  auto exact = txn->ListAccessKeys("AK03", 2);
  CHECK(exact->items.size() == 2);
  CHECK_FALSE(exact->truncated);
  CHECK(txn->ListAccessKeys("AK99", 10)->items.empty());
  CHECK(txn->ListAccessKeys("AK025", 1)->items[0].access_key_id() == "AK03");

  auto zero = txn->ListAccessKeys("", 0);
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.error().code() == StatusCode::kInvalidArgument);
  CHECK(zero.error().message() == "page limit must be 1..10000");
  CHECK(CodeOf(txn->ListAccessKeys("", kMaxPageLimit + 1)) == StatusCode::kInvalidArgument);
}

TEST_CASE("store: access keys survive reopening", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  AccessKeyRecord key = MakeAccessKey("AKMS1");
  {
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertAccessKey(key));
    KMS_REQUIRE_OK(txn->Commit());
  }
  auto store = OpenOrDie(path);
  auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
  auto got = txn->GetAccessKey("AKMS1");
  KMS_REQUIRE_OK(got);
  CHECK(MessageDifferencer::Equals(*got, Stamped(key)));
}

TEST_CASE("store: a corrupt access key record is DataLoss, found by reads and CheckIntegrity",
          "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  {
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store);
    for (const char* id : {"AKa", "AKb", "AKc"})
      KMS_REQUIRE_OK(txn->InsertAccessKey(MakeAccessKey(id)));
    KMS_REQUIRE_OK(txn->Commit());
    KMS_REQUIRE_OK(store->CheckIntegrity());
  }

  SECTION("unparseable blob") {
    RawExec(path, "UPDATE access_keys SET record = x'ffffffff' WHERE access_key_id = 'AKb'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(txn->GetAccessKey("AKa"));
    auto r = txn->GetAccessKey("AKb");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() == "metadata store: a record in table access_keys does not parse");
    CHECK(CodeOf(txn->ListAccessKeys("", 10)) == StatusCode::kDataLoss);
    const Status integrity = store->CheckIntegrity();
    CHECK(integrity.code() == StatusCode::kDataLoss);
    CHECK(integrity.message() == "metadata store: a record in table access_keys does not parse");
  }
  SECTION("a record swapped under another id disagrees with its column") {
    RawExec(path,
            "UPDATE access_keys SET record = (SELECT record FROM access_keys "
            "WHERE access_key_id = 'AKa') WHERE access_key_id = 'AKc'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto r = txn->GetAccessKey("AKc");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() ==
          "metadata store: a record in table access_keys disagrees with its indexed column "
          "access_key_id");
    CHECK(store->CheckIntegrity().code() == StatusCode::kDataLoss);
  }
  SECTION("a status column that disagrees with the record") {
    RawExec(path, "UPDATE access_keys SET status = 2 WHERE access_key_id = 'AKa'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto r = txn->GetAccessKey("AKa");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() ==
          "metadata store: a record in table access_keys disagrees with its indexed column status");
    const Status integrity = store->CheckIntegrity();
    CHECK(integrity.code() == StatusCode::kDataLoss);
    CHECK(integrity.message() == r.error().message());
  }
  SECTION("an empty blob has no record_version") {
    RawExec(path, "UPDATE access_keys SET record = x'' WHERE access_key_id = 'AKc'");
    auto store = OpenOrDie(path);
    const Status integrity = store->CheckIntegrity();
    CHECK(integrity.code() == StatusCode::kDataLoss);
    CHECK(integrity.message() ==
          "metadata store: a record in table access_keys has no record_version");
  }
}

}  // namespace
}  // namespace kms::firmware::store
