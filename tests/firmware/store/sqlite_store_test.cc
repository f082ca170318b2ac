// Metadata store contract, exercised on the SQLite backend: CRUD of every record type, paging,
// transactions and isolation, exact errors, reopening, corruption, integrity check.
#include "firmware/store/sqlite_store.h"

#include <google/protobuf/util/message_differencer.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "firmware/store/metadata_store.h"
#include "tests/firmware/store/store_test_util.h"

namespace kms::firmware::store {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::BeginOrDie;
using testing::MakeAlias;
using testing::MakeKey;
using testing::MakeTag;
using testing::MakeVersion;
using testing::OpenOrDie;
using testing::RawExec;
using testing::TempDir;

template <typename Record>
Record Stamped(Record r) {
  r.set_record_version(kRecordVersion);
  return r;
}

template <typename T>
StatusCode CodeOf(const StatusOr<T>& r) {
  return r.has_value() ? StatusCode::kOk : r.error().code();
}
StatusCode CodeOf(const Status& s) { return s.code(); }

TEST_CASE("store: key records round-trip, update, delete", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  CHECK(store->SchemaVersion() == kSqliteSchemaVersion);
  auto txn = BeginOrDie(*store);
  KeyRecord key = MakeKey("k1");
  key.set_rotation_enabled(true);
  key.set_rotation_period_days(365);
  key.set_next_rotation_time_ms(1'800'000'000'000);
  KMS_REQUIRE_OK(txn->InsertKey(key));

  auto got = txn->GetKey("k1");
  KMS_REQUIRE_OK(got);
  CHECK(MessageDifferencer::Equals(*got, Stamped(key)));
  CHECK(got->record_version() == kRecordVersion);

  SECTION("duplicate insert is AlreadyExists and changes nothing") {
    KeyRecord other = MakeKey("k1");
    other.set_description("other");
    const Status s = txn->InsertKey(other);
    CHECK(s.code() == StatusCode::kAlreadyExists);
    CHECK(s.message() == "key k1 already exists");
    CHECK(txn->GetKey("k1")->description() == "key k1");
  }
  SECTION("update replaces the record") {
    key.set_description("changed");
    key.set_state(records::KEY_STATE_DISABLED);
    KMS_REQUIRE_OK(txn->UpdateKey(key));
    CHECK(MessageDifferencer::Equals(*txn->GetKey("k1"), Stamped(key)));
  }
  SECTION("update of a missing key is NotFound") {
    const Status s = txn->UpdateKey(MakeKey("nope"));
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.message() == "key nope not found");
  }
  SECTION("get of a missing key is NotFound") {
    auto r = txn->GetKey("nope");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kNotFound);
    CHECK(r.error().message() == "key nope not found");
  }
  SECTION("delete removes the key; a second delete is NotFound") {
    KMS_REQUIRE_OK(txn->DeleteKey("k1"));
    CHECK(CodeOf(txn->GetKey("k1")) == StatusCode::kNotFound);
    CHECK(CodeOf(txn->DeleteKey("k1")) == StatusCode::kNotFound);
  }
  SECTION("invalid records are InvalidArgument") {
    CHECK(txn->InsertKey(MakeKey("")).message() == "key_id is empty");
    CHECK(CodeOf(txn->InsertKey(MakeKey(""))) == StatusCode::kInvalidArgument);
    KeyRecord bad = MakeKey("k2");
    bad.set_description("bad \xff utf-8");
    const Status s = txn->InsertKey(bad);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message() == "description is not valid UTF-8");
    bad.set_description("surrogate \xed\xa0\x80");
    CHECK(CodeOf(txn->InsertKey(bad)) == StatusCode::kInvalidArgument);
    bad.set_description("overlong \xc0\xaf");
    CHECK(CodeOf(txn->InsertKey(bad)) == StatusCode::kInvalidArgument);
    bad.set_description("ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
    KMS_REQUIRE_OK(txn->InsertKey(bad));
  }
  KMS_REQUIRE_OK(txn->Commit());
}

TEST_CASE("store: ListKeys pages in id order", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  // Inserted out of order; listed byte-wise ascending.
  for (const char* id : {"k05", "k01", "k03", "k02", "k04"})
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey(id)));
  CHECK(*txn->CountKeys() == 5);

  auto p1 = txn->ListKeys("", 2);
  KMS_REQUIRE_OK(p1);
  REQUIRE(p1->items.size() == 2);
  CHECK(p1->items[0].key_id() == "k01");
  CHECK(p1->items[1].key_id() == "k02");
  CHECK(p1->truncated);
  CHECK(p1->next_marker == "k02");

  auto p2 = txn->ListKeys(p1->next_marker, 2);
  REQUIRE(p2->items.size() == 2);
  CHECK(p2->items[0].key_id() == "k03");
  CHECK(p2->next_marker == "k04");
  CHECK(p2->truncated);

  auto p3 = txn->ListKeys(p2->next_marker, 2);
  REQUIRE(p3->items.size() == 1);
  CHECK(p3->items[0].key_id() == "k05");
  CHECK_FALSE(p3->truncated);
  CHECK(p3->next_marker.empty());

  // Exactly `limit` items left: not truncated.
  auto exact = txn->ListKeys("k03", 2);
  CHECK(exact->items.size() == 2);
  CHECK_FALSE(exact->truncated);

  // Past the end, and a marker between ids.
  CHECK(txn->ListKeys("zzz", 10)->items.empty());
  CHECK(txn->ListKeys("k025", 1)->items[0].key_id() == "k03");

  SECTION("limits outside 1..kMaxPageLimit are InvalidArgument") {
    auto zero = txn->ListKeys("", 0);
    REQUIRE_FALSE(zero.has_value());
    CHECK(zero.error().code() == StatusCode::kInvalidArgument);
    CHECK(zero.error().message() == "page limit must be 1..10000");
    CHECK(CodeOf(txn->ListKeys("", kMaxPageLimit + 1)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListAliases("", 0)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListAliasesForKey("k01", "", 0)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListKeysDueForRotation(0, 0)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListKeysDueForDeletion(0, 0)) == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("store: due rotations and deletions follow the record fields", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  KeyRecord a = MakeKey("a");  // rotation due at 300
  a.set_rotation_enabled(true);
  a.set_next_rotation_time_ms(300);
  KeyRecord b = MakeKey("b");  // rotation due at 100
  b.set_rotation_enabled(true);
  b.set_next_rotation_time_ms(100);
  KeyRecord c = MakeKey("c");  // a stale next date but rotation disabled: never due
  c.set_rotation_enabled(false);
  c.set_next_rotation_time_ms(50);
  KeyRecord d = MakeKey("d");  // deletion due at 200
  d.set_state(records::KEY_STATE_PENDING_DELETION);
  d.set_deletion_time_ms(200);
  KeyRecord e = MakeKey("e");  // a deletion date but not pending: never due
  e.set_state(records::KEY_STATE_DISABLED);
  e.set_deletion_time_ms(10);
  for (const auto& k : {a, b, c, d, e}) KMS_REQUIRE_OK(txn->InsertKey(k));

  auto due = txn->ListKeysDueForRotation(299, 10);
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].key_id() == "b");
  due = txn->ListKeysDueForRotation(1000, 10);
  REQUIRE(due->size() == 2);
  CHECK((*due)[0].key_id() == "b");  // oldest due first
  CHECK((*due)[1].key_id() == "a");
  CHECK(txn->ListKeysDueForRotation(1000, 1)->size() == 1);

  CHECK(txn->ListKeysDueForDeletion(199, 10)->empty());
  auto del = txn->ListKeysDueForDeletion(200, 10);
  REQUIRE(del->size() == 1);
  CHECK((*del)[0].key_id() == "d");

  // Updating the record moves the indexed columns with it.
  b.set_rotation_enabled(false);
  KMS_REQUIRE_OK(txn->UpdateKey(b));
  d.set_state(records::KEY_STATE_DISABLED);  // CancelKeyDeletion
  KMS_REQUIRE_OK(txn->UpdateKey(d));
  due = txn->ListKeysDueForRotation(1000, 10);
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].key_id() == "a");
  CHECK(txn->ListKeysDueForDeletion(1000, 10)->empty());
  KMS_REQUIRE_OK(txn->Commit());
  KMS_REQUIRE_OK(store->CheckIntegrity());
}

TEST_CASE("store: key versions", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  KMS_REQUIRE_OK(txn->InsertKey(MakeKey("k")));
  KeyVersionRecord v1 = MakeVersion("k", 1);
  KeyVersionRecord v2 = MakeVersion("k", 2);
  v2.set_public_key_der(std::string("\x30\x82\x00\x00", 4));
  KMS_REQUIRE_OK(txn->InsertKeyVersion(v2));
  KMS_REQUIRE_OK(txn->InsertKeyVersion(v1));

  CHECK(MessageDifferencer::Equals(*txn->GetKeyVersion("k", 2), Stamped(v2)));
  auto all = txn->ListKeyVersions("k");
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].version() == 1);
  CHECK((*all)[1].version() == 2);
  CHECK(txn->ListKeyVersions("other")->empty());

  const Status dup = txn->InsertKeyVersion(v1);
  CHECK(dup.code() == StatusCode::kAlreadyExists);
  CHECK(dup.message() == "version 1 of key k already exists");

  const Status no_key = txn->InsertKeyVersion(MakeVersion("missing", 1));
  CHECK(no_key.code() == StatusCode::kNotFound);
  CHECK(no_key.message() == "key missing not found");

  const Status zero = txn->InsertKeyVersion(MakeVersion("k", 0));
  CHECK(zero.code() == StatusCode::kInvalidArgument);
  CHECK(zero.message() == "key version 0 is not a version");

  auto missing = txn->GetKeyVersion("k", 3);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code() == StatusCode::kNotFound);
  CHECK(missing.error().message() == "version 3 of key k not found");

  v1.set_state(records::KEY_VERSION_STATE_NON_CURRENT);
  v1.set_invocation_count(42);
  KMS_REQUIRE_OK(txn->UpdateKeyVersion(v1));
  CHECK(txn->GetKeyVersion("k", 1)->invocation_count() == 42);
  CHECK(CodeOf(txn->UpdateKeyVersion(MakeVersion("k", 9))) == StatusCode::kNotFound);

  KMS_REQUIRE_OK(txn->DeleteKeyVersion("k", 1));
  CHECK(CodeOf(txn->GetKeyVersion("k", 1)) == StatusCode::kNotFound);
  CHECK(CodeOf(txn->DeleteKeyVersion("k", 1)) == StatusCode::kNotFound);
  KMS_REQUIRE_OK(txn->Commit());
}

TEST_CASE("store: aliases", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  KMS_REQUIRE_OK(txn->InsertKey(MakeKey("k1")));
  KMS_REQUIRE_OK(txn->InsertKey(MakeKey("k2")));
  KMS_REQUIRE_OK(txn->InsertAlias(MakeAlias("alias/b", "k1")));
  KMS_REQUIRE_OK(txn->InsertAlias(MakeAlias("alias/a", "k2")));
  KMS_REQUIRE_OK(txn->InsertAlias(MakeAlias("alias/c", "k1")));

  CHECK(MessageDifferencer::Equals(*txn->GetAlias("alias/b"), Stamped(MakeAlias("alias/b", "k1"))));

  SECTION("duplicate alias is AlreadyExists") {
    const Status s = txn->InsertAlias(MakeAlias("alias/a", "k1"));
    CHECK(s.code() == StatusCode::kAlreadyExists);
    CHECK(s.message() == "alias alias/a already exists");
    CHECK(txn->GetAlias("alias/a")->target_key_id() == "k2");  // unchanged
  }
  SECTION("alias to a missing key is NotFound") {
    const Status s = txn->InsertAlias(MakeAlias("alias/x", "nope"));
    CHECK(s.code() == StatusCode::kNotFound);
    CHECK(s.message() == "key nope not found");
    CHECK(CodeOf(txn->GetAlias("alias/x")) == StatusCode::kNotFound);
  }
  SECTION("empty fields are InvalidArgument") {
    CHECK(txn->InsertAlias(MakeAlias("", "k1")).message() == "alias_name is empty");
    CHECK(txn->InsertAlias(MakeAlias("alias/y", "")).message() == "target_key_id is empty");
  }
  SECTION("update retargets; missing alias or target is NotFound") {
    KMS_REQUIRE_OK(txn->UpdateAlias(MakeAlias("alias/b", "k2")));
    CHECK(txn->GetAlias("alias/b")->target_key_id() == "k2");
    const Status no_alias = txn->UpdateAlias(MakeAlias("alias/zz", "k2"));
    CHECK(no_alias.code() == StatusCode::kNotFound);
    CHECK(no_alias.message() == "alias alias/zz not found");
    const Status no_target = txn->UpdateAlias(MakeAlias("alias/b", "nope"));
    CHECK(no_target.code() == StatusCode::kNotFound);
    CHECK(no_target.message() == "key nope not found");
  }
  SECTION("list pages by name; list by key") {
    auto p = txn->ListAliases("", 2);
    REQUIRE(p->items.size() == 2);
    CHECK(p->items[0].alias_name() == "alias/a");
    CHECK(p->items[1].alias_name() == "alias/b");
    CHECK(p->truncated);
    CHECK(p->next_marker == "alias/b");
    auto rest = txn->ListAliases(p->next_marker, 2);
    REQUIRE(rest->items.size() == 1);
    CHECK(rest->items[0].alias_name() == "alias/c");
    CHECK_FALSE(rest->truncated);

    auto k1 = txn->ListAliasesForKey("k1", "", 1);
    REQUIRE(k1->items.size() == 1);
    CHECK(k1->items[0].alias_name() == "alias/b");
    CHECK(k1->truncated);
    auto k1b = txn->ListAliasesForKey("k1", k1->next_marker, 1);
    REQUIRE(k1b->items.size() == 1);
    CHECK(k1b->items[0].alias_name() == "alias/c");
    CHECK_FALSE(k1b->truncated);
    CHECK(txn->ListAliasesForKey("nope", "", 10)->items.empty());
  }
  SECTION("delete") {
    KMS_REQUIRE_OK(txn->DeleteAlias("alias/a"));
    CHECK(CodeOf(txn->GetAlias("alias/a")) == StatusCode::kNotFound);
    const Status again = txn->DeleteAlias("alias/a");
    CHECK(again.code() == StatusCode::kNotFound);
    CHECK(again.message() == "alias alias/a not found");
  }
  KMS_REQUIRE_OK(txn->Commit());
}

TEST_CASE("store: tags", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  KMS_REQUIRE_OK(txn->InsertKey(MakeKey("k")));
  KMS_REQUIRE_OK(txn->PutTag(MakeTag("k", "env", "prod")));
  KMS_REQUIRE_OK(txn->PutTag(MakeTag("k", "app", "")));     // AWS TagValue may be empty
  KMS_REQUIRE_OK(txn->PutTag(MakeTag("k", "env", "dev")));  // overwrite
  auto tags = txn->ListTags("k");
  REQUIRE(tags->size() == 2);
  CHECK((*tags)[0].tag_key() == "app");
  CHECK((*tags)[0].tag_value().empty());
  CHECK((*tags)[1].tag_key() == "env");
  CHECK((*tags)[1].tag_value() == "dev");
  CHECK(txn->ListTags("other")->empty());

  const Status no_key = txn->PutTag(MakeTag("nope", "a", "b"));
  CHECK(no_key.code() == StatusCode::kNotFound);
  CHECK(no_key.message() == "key nope not found");
  CHECK(txn->PutTag(MakeTag("k", "", "v")).message() == "tag_key is empty");
  CHECK(txn->PutTag(MakeTag("k", "t", "\xff")).message() == "tag_value is not valid UTF-8");

  KMS_REQUIRE_OK(txn->DeleteTag("k", "env"));
  const Status again = txn->DeleteTag("k", "env");
  CHECK(again.code() == StatusCode::kNotFound);
  CHECK(again.message() == "tag env of key k not found");
  CHECK(txn->ListTags("k")->size() == 1);
  KMS_REQUIRE_OK(txn->Commit());
}

TEST_CASE("store: deleting a key cascades to its versions, tags and aliases only",
          "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  for (const char* id : {"k1", "k2"}) {
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey(id)));
    KMS_REQUIRE_OK(txn->InsertKeyVersion(MakeVersion(id, 1)));
    KMS_REQUIRE_OK(txn->PutTag(MakeTag(id, "t", "v")));
    KMS_REQUIRE_OK(txn->InsertAlias(MakeAlias(std::string("alias/") + id, id)));
  }
  IntentRecord intent;
  intent.set_intent_id("i1");
  intent.set_kind(records::INTENT_KIND_DELETE_KEY);
  intent.set_key_id("k1");
  KMS_REQUIRE_OK(txn->InsertIntent(intent));

  KMS_REQUIRE_OK(txn->DeleteKey("k1"));
  CHECK(txn->ListKeyVersions("k1")->empty());
  CHECK(txn->ListTags("k1")->empty());
  CHECK(CodeOf(txn->GetAlias("alias/k1")) == StatusCode::kNotFound);
  CHECK(txn->ListIntents()->size() == 1);  // intents are never cascaded
  // The other key is untouched.
  CHECK(txn->ListKeyVersions("k2")->size() == 1);
  CHECK(txn->ListTags("k2")->size() == 1);
  KMS_REQUIRE_OK(txn->GetAlias("alias/k2"));
  KMS_REQUIRE_OK(txn->Commit());
  KMS_REQUIRE_OK(store->CheckIntegrity());
}

TEST_CASE("store: intents", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  auto txn = BeginOrDie(*store);
  auto make = [](const char* id, std::int64_t t, records::IntentKind kind) {
    IntentRecord i;
    i.set_intent_id(id);
    i.set_kind(kind);
    i.set_key_id("k");
    i.set_version(2);
    i.set_created_time_ms(t);
    return i;
  };
  // The key need not exist: a CreateKey intent precedes its key.
  KMS_REQUIRE_OK(txn->InsertIntent(make("b", 20, records::INTENT_KIND_ROTATE_KEY)));
  KMS_REQUIRE_OK(txn->InsertIntent(make("c", 10, records::INTENT_KIND_CREATE_KEY)));
  KMS_REQUIRE_OK(txn->InsertIntent(make("a", 20, records::INTENT_KIND_DELETE_KEY)));
  auto all = txn->ListIntents();
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].intent_id() == "c");  // by time, then id
  CHECK((*all)[1].intent_id() == "a");
  CHECK((*all)[2].intent_id() == "b");
  CHECK(MessageDifferencer::Equals((*all)[2],
                                   Stamped(make("b", 20, records::INTENT_KIND_ROTATE_KEY))));

  const Status dup = txn->InsertIntent(make("a", 1, records::INTENT_KIND_CREATE_KEY));
  CHECK(dup.code() == StatusCode::kAlreadyExists);
  CHECK(dup.message() == "intent a already exists");
  CHECK(txn->InsertIntent(make("", 1, records::INTENT_KIND_CREATE_KEY)).message() ==
        "intent_id is empty");
  KMS_REQUIRE_OK(txn->DeleteIntent("a"));
  const Status again = txn->DeleteIntent("a");
  CHECK(again.code() == StatusCode::kNotFound);
  CHECK(again.message() == "intent a not found");
  CHECK(txn->ListIntents()->size() == 2);
  KMS_REQUIRE_OK(txn->Commit());
}

TEST_CASE("store: counters, epoch and meta", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  std::uint64_t epoch0 = 0;
  {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    epoch0 = *txn->Epoch();
    CHECK(*txn->GetMeta("store.schema_version") == "1");
  }
  {
    auto txn = BeginOrDie(*store);
    CHECK(*txn->GetCounter("gcm") == 0);
    CHECK(*txn->IncrementCounter("gcm", 5) == 5);
    CHECK(*txn->IncrementCounter("gcm", 2) == 7);
    CHECK(*txn->GetCounter("gcm") == 7);
    auto overflow = txn->IncrementCounter("gcm", std::uint64_t{1} << 63);
    REQUIRE_FALSE(overflow.has_value());
    CHECK(overflow.error().code() == StatusCode::kOutOfRange);
    CHECK(overflow.error().message() == "counter gcm would overflow");
    CHECK(*txn->GetCounter("gcm") == 7);
    CHECK(CodeOf(txn->IncrementCounter("store.epoch", 1)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->GetCounter("")) == StatusCode::kInvalidArgument);

    auto missing = txn->GetMeta("region");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code() == StatusCode::kNotFound);
    CHECK(missing.error().message() == "setting region not found");
    KMS_REQUIRE_OK(txn->PutMeta("region", "eu-west-1"));
    KMS_REQUIRE_OK(txn->PutMeta("region", "us-east-1"));
    CHECK(*txn->GetMeta("region") == "us-east-1");
    KMS_REQUIRE_OK(txn->PutMeta("binary", std::string("\0\xff", 2)));
    CHECK(*txn->GetMeta("binary") == std::string("\0\xff", 2));
    const Status reserved = txn->PutMeta("store.schema_version", "9");
    CHECK(reserved.code() == StatusCode::kInvalidArgument);
    CHECK(reserved.message() == "metadata store: store.schema_version is reserved");
    CHECK(CodeOf(txn->DeleteMeta("store.schema_version")) == StatusCode::kInvalidArgument);
    KMS_REQUIRE_OK(txn->DeleteMeta("binary"));
    CHECK(CodeOf(txn->DeleteMeta("binary")) == StatusCode::kNotFound);
    CHECK(*txn->Epoch() == epoch0);  // the bump happens at commit
    KMS_REQUIRE_OK(txn->Commit());
  }
  {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(*txn->Epoch() == epoch0 + 1);
    CHECK(*txn->GetCounter("gcm") == 7);
  }
  {
    // A read-write transaction that wrote nothing does not move the epoch; nor does a rollback.
    auto reader_only = BeginOrDie(*store);
    CHECK(*reader_only->GetCounter("gcm") == 7);
    KMS_REQUIRE_OK(reader_only->Commit());
    auto rolled_back = BeginOrDie(*store);
    KMS_REQUIRE_OK(rolled_back->PutMeta("x", "y"));
    KMS_REQUIRE_OK(rolled_back->Rollback());
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(*txn->Epoch() == epoch0 + 1);
  }
}

TEST_CASE("store: ListMeta pages settings under a prefix", "[unit][store]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  using Entries = std::vector<std::pair<std::string, std::string>>;
  {
    auto txn = BeginOrDie(*store);
    for (const char* name :
         {"vault.token.a", "vault.token.b", "vault.token.c", "vault.token.d", "vault.token.e",
          "vault.tokenx", "vault.token", "vault.transit.k", "vault_token.a", "vaultXtoken.a",
          "pct%.a", "pct%.b", "pctX.a", "und_.a", "undX.a", "undXX.a"}) {
      KMS_REQUIRE_OK(txn->PutMeta(name, std::string("v:") + name));
    }
    KMS_REQUIRE_OK(txn->PutMeta("vault.token.bin", std::string("\0\xff", 2)));
    KMS_REQUIRE_OK(txn->Commit());
  }
  auto names = [](const Entries& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.first);
    return out;
  };

  SECTION("only names starting with the prefix, in order, with their values") {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto page = txn->ListMeta("vault.token.", "", 100);
    KMS_REQUIRE_OK(page);
    CHECK(names(page->items) == std::vector<std::string>{"vault.token.a", "vault.token.b",
                                                         "vault.token.bin", "vault.token.c",
                                                         "vault.token.d", "vault.token.e"});
    CHECK(page->items[0].second == "v:vault.token.a");
    CHECK(page->items[2].second == std::string("\0\xff", 2));
    CHECK_FALSE(page->truncated);
    CHECK(page->next_marker.empty());
    // A prefix equal to a whole name includes that name.
    auto exact = txn->ListMeta("vault.token", "", 100);
    KMS_REQUIRE_OK(exact);
    CHECK(exact->items.size() == 8);
    CHECK(exact->items[0].first == "vault.token");
  }
  SECTION("'%' and '_' in a prefix are plain characters, not LIKE wildcards") {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto pct = txn->ListMeta("pct%", "", 100);
    KMS_REQUIRE_OK(pct);
    CHECK(names(pct->items) == std::vector<std::string>{"pct%.a", "pct%.b"});
    auto und = txn->ListMeta("und_", "", 100);
    KMS_REQUIRE_OK(und);
    CHECK(names(und->items) == std::vector<std::string>{"und_.a"});
    auto dot = txn->ListMeta("vault_", "", 100);
    KMS_REQUIRE_OK(dot);
    CHECK(names(dot->items) == std::vector<std::string>{"vault_token.a"});
    auto none = txn->ListMeta("%", "", 100);
    KMS_REQUIRE_OK(none);
    CHECK(none->items.empty());
  }
  SECTION("pages follow the marker") {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto first = txn->ListMeta("vault.token.", "", 2);
    KMS_REQUIRE_OK(first);
    CHECK(names(first->items) == std::vector<std::string>{"vault.token.a", "vault.token.b"});
    CHECK(first->truncated);
    CHECK(first->next_marker == "vault.token.b");
    auto second = txn->ListMeta("vault.token.", first->next_marker, 2);
    KMS_REQUIRE_OK(second);
    CHECK(names(second->items) == std::vector<std::string>{"vault.token.bin", "vault.token.c"});
    CHECK(second->truncated);
    auto third = txn->ListMeta("vault.token.", second->next_marker, 2);
    KMS_REQUIRE_OK(third);
    CHECK(names(third->items) == std::vector<std::string>{"vault.token.d", "vault.token.e"});
    // Exactly `limit` left: not truncated.
    CHECK_FALSE(third->truncated);
    CHECK(third->next_marker.empty());
    // A marker between names, or before the prefix's range, still bounds the page.
    auto mid = txn->ListMeta("vault.token.", "vault.token.c0", 10);
    KMS_REQUIRE_OK(mid);
    CHECK(names(mid->items) == std::vector<std::string>{"vault.token.d", "vault.token.e"});
    auto before = txn->ListMeta("vault.token.", "a", 1);
    KMS_REQUIRE_OK(before);
    CHECK(names(before->items) == std::vector<std::string>{"vault.token.a"});
    auto past = txn->ListMeta("vault.token.", "vault.token.e", 10);
    KMS_REQUIRE_OK(past);
    CHECK(past->items.empty());
    CHECK_FALSE(past->truncated);
  }
  SECTION("bad arguments") {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(CodeOf(txn->ListMeta("", "", 10)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListMeta("vault.", "", 0)) == StatusCode::kInvalidArgument);
    CHECK(CodeOf(txn->ListMeta("vault.", "", kMaxPageLimit + 1)) == StatusCode::kInvalidArgument);
    KMS_REQUIRE_OK(txn->ListMeta("vault.", "", kMaxPageLimit));
    KMS_REQUIRE_OK(txn->Commit());
    CHECK(CodeOf(txn->ListMeta("vault.", "", 10)) == StatusCode::kFailedPrecondition);
  }
  SECTION("a read-only transaction lists its snapshot; a writer sees its own writes") {
    auto reader = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(reader->ListMeta("pct", "", 10));  // the snapshot starts at the first read
    {
      auto writer = BeginOrDie(*store);
      KMS_REQUIRE_OK(writer->PutMeta("pct%.c", "new"));
      KMS_REQUIRE_OK(writer->DeleteMeta("pct%.a"));
      auto own = writer->ListMeta("pct%", "", 10);
      KMS_REQUIRE_OK(own);
      CHECK(names(own->items) == std::vector<std::string>{"pct%.b", "pct%.c"});
      KMS_REQUIRE_OK(writer->Commit());
    }
    auto old = reader->ListMeta("pct%", "", 10);
    KMS_REQUIRE_OK(old);
    CHECK(names(old->items) == std::vector<std::string>{"pct%.a", "pct%.b"});
    auto fresh = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto now = fresh->ListMeta("pct%", "", 10);
    KMS_REQUIRE_OK(now);
    CHECK(names(now->items) == std::vector<std::string>{"pct%.b", "pct%.c"});
  }
}

TEST_CASE("store: transactions roll back on drop, commit is visible, snapshots isolate",
          "[unit][store][concurrency]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"), std::chrono::milliseconds(200));

  SECTION("dropping an uncommitted transaction rolls it back") {
    {
      auto txn = BeginOrDie(*store);
      KMS_REQUIRE_OK(txn->InsertKey(MakeKey("gone")));
    }
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(CodeOf(txn->GetKey("gone")) == StatusCode::kNotFound);
  }
  SECTION("explicit rollback discards; the transaction is then finished") {
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("gone")));
    KMS_REQUIRE_OK(txn->Rollback());
    const Status after = txn->InsertKey(MakeKey("x"));
    CHECK(after.code() == StatusCode::kFailedPrecondition);
    CHECK(after.message() == "metadata store: the transaction has ended");
    CHECK(CodeOf(txn->Commit()) == StatusCode::kFailedPrecondition);
    auto check = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(CodeOf(check->GetKey("gone")) == StatusCode::kNotFound);
  }
  SECTION("a committed transaction is finished and visible") {
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("kept")));
    KMS_REQUIRE_OK(txn->Commit());
    CHECK(CodeOf(txn->GetKey("kept")) == StatusCode::kFailedPrecondition);
    CHECK(CodeOf(txn->Rollback()) == StatusCode::kFailedPrecondition);
    auto check = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(check->GetKey("kept"));
  }
  SECTION("a failed operation leaves the transaction usable") {
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("a")));
    CHECK(CodeOf(txn->InsertKey(MakeKey("a"))) == StatusCode::kAlreadyExists);
    CHECK(CodeOf(txn->InsertAlias(MakeAlias("alias/x", "missing"))) == StatusCode::kNotFound);
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("b")));
    KMS_REQUIRE_OK(txn->Commit());
    auto check = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(*check->CountKeys() == 2);
  }
  SECTION("writes in a read-only transaction are FailedPrecondition") {
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(txn->mode() == TransactionMode::kReadOnly);
    const Status s = txn->InsertKey(MakeKey("x"));
    CHECK(s.code() == StatusCode::kFailedPrecondition);
    CHECK(s.message() == "metadata store: write in a read-only transaction");
    CHECK(CodeOf(txn->PutMeta("a", "b")) == StatusCode::kFailedPrecondition);
    CHECK(CodeOf(txn->IncrementCounter("a", 1)) == StatusCode::kFailedPrecondition);
    CHECK(CodeOf(txn->DeleteKey("x")) == StatusCode::kFailedPrecondition);
    KMS_REQUIRE_OK(txn->Commit());
  }
  SECTION("uncommitted writes are invisible; a reader keeps its snapshot") {
    auto writer = BeginOrDie(*store);
    KMS_REQUIRE_OK(writer->InsertKey(MakeKey("w")));
    auto reader = BeginOrDie(*store, TransactionMode::kReadOnly);
    CHECK(CodeOf(reader->GetKey("w")) == StatusCode::kNotFound);  // snapshot taken here
    KMS_REQUIRE_OK(writer->Commit());
    CHECK(CodeOf(reader->GetKey("w")) == StatusCode::kNotFound);  // still the old snapshot
    KMS_REQUIRE_OK(reader->Commit());
    auto fresh = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(fresh->GetKey("w"));
  }
  SECTION("a second writer waits for the first, then times out Unavailable") {
    auto first = BeginOrDie(*store);
    std::thread other([&] {
      auto second = store->Begin();
      REQUIRE_FALSE(second.has_value());
      CHECK(second.error().code() == StatusCode::kUnavailable);
      CHECK(second.error().message() ==
            "metadata store: busy: another transaction holds the write lock");
    });
    other.join();
    KMS_REQUIRE_OK(first->Commit());
    KMS_REQUIRE_OK(store->Begin());  // free again
  }
  SECTION("a writer in another connection (as another process) is Unavailable at the timeout") {
    auto other_store = OpenOrDie(dir.File("kms.db"), std::chrono::milliseconds(100));
    auto first = BeginOrDie(*store);
    auto second = other_store->Begin();
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().code() == StatusCode::kUnavailable);
    KMS_REQUIRE_OK(first->Commit());
    auto third = BeginOrDie(*other_store);
    KMS_REQUIRE_OK(third->InsertKey(MakeKey("from-other")));
    KMS_REQUIRE_OK(third->Commit());
    auto check = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(check->GetKey("from-other"));
    CHECK(*check->Epoch() == 1);  // the epoch is shared by every connection
  }
}

TEST_CASE("store: concurrent writers serialise without losing updates",
          "[unit][store][concurrency]") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("kms.db"));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto txn = store->Begin();
        if (!txn.has_value()) {
          ++failures;
          continue;
        }
        const bool ok =
            (*txn)->IncrementCounter("n", 1).has_value() &&
            (*txn)->InsertKey(MakeKey("t" + std::to_string(t) + "-" + std::to_string(i))).ok() &&
            (*txn)->Commit().ok();
        if (!ok) ++failures;
        // Readers run alongside.
        auto r = store->Begin(TransactionMode::kReadOnly);
        if (!r.has_value() || !(*r)->CountKeys().has_value()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
  CHECK(*txn->GetCounter("n") == kThreads * kPerThread);
  CHECK(*txn->CountKeys() == kThreads * kPerThread);
  CHECK(*txn->Epoch() == kThreads * kPerThread);
}

TEST_CASE("store: reopening keeps every record", "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  KeyRecord key = MakeKey("k");
  key.set_state(records::KEY_STATE_PENDING_DELETION);
  key.set_deletion_time_ms(5);
  {
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertKey(key));
    KMS_REQUIRE_OK(txn->InsertKeyVersion(MakeVersion("k", 1)));
    KMS_REQUIRE_OK(txn->InsertAlias(MakeAlias("alias/k", "k")));
    KMS_REQUIRE_OK(txn->PutTag(MakeTag("k", "a", "b")));
    IntentRecord intent;
    intent.set_intent_id("i");
    KMS_REQUIRE_OK(txn->InsertIntent(intent));
    KMS_REQUIRE_OK(txn->PutMeta("setting", "value"));
    KMS_REQUIRE_OK(txn->IncrementCounter("c", 3));
    KMS_REQUIRE_OK(txn->Commit());
  }
  // The file is private to the appliance.
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  {  // SQLite gives the -wal and -shm files the database file's mode.
    auto writer = OpenOrDie(path);
    auto txn = BeginOrDie(*writer);
    KMS_REQUIRE_OK(txn->PutMeta("touch", "1"));
    KMS_REQUIRE_OK(txn->Commit());
    for (const char* suffix : {"-wal", "-shm"}) {
      INFO(suffix);
      REQUIRE(::stat((path + suffix).c_str(), &st) == 0);
      CHECK((st.st_mode & 0777) == 0600);
    }
  }

  auto store = OpenOrDie(path);
  auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
  CHECK(MessageDifferencer::Equals(*txn->GetKey("k"), Stamped(key)));
  CHECK(MessageDifferencer::Equals(*txn->GetKeyVersion("k", 1), Stamped(MakeVersion("k", 1))));
  CHECK(txn->GetAlias("alias/k")->target_key_id() == "k");
  CHECK(txn->ListTags("k")->size() == 1);
  CHECK(txn->ListIntents()->size() == 1);
  CHECK(*txn->GetMeta("setting") == "value");
  CHECK(*txn->GetCounter("c") == 3);
  CHECK(*txn->Epoch() == 2);
  CHECK(txn->ListKeysDueForDeletion(5, 10)->size() == 1);
  KMS_REQUIRE_OK(store->CheckIntegrity());
}

TEST_CASE("store: a corrupt or foreign record is DataLoss, found by reads and CheckIntegrity",
          "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  {
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store);
    for (const char* id : {"a", "b", "c"}) {
      KMS_REQUIRE_OK(txn->InsertKey(MakeKey(id)));
      KMS_REQUIRE_OK(txn->InsertKeyVersion(MakeVersion(id, 1)));
    }
    KMS_REQUIRE_OK(txn->Commit());
    KMS_REQUIRE_OK(store->CheckIntegrity());
  }

  SECTION("unparseable blob") {
    RawExec(path, "UPDATE keys SET record = x'ffffffff' WHERE key_id = 'b'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    KMS_REQUIRE_OK(txn->GetKey("a"));
    auto r = txn->GetKey("b");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() == "metadata store: a record in table keys does not parse");
    CHECK(CodeOf(txn->ListKeys("", 10)) == StatusCode::kDataLoss);
    const Status integrity = store->CheckIntegrity();
    CHECK(integrity.code() == StatusCode::kDataLoss);
    CHECK(integrity.message() == "metadata store: a record in table keys does not parse");
  }
  SECTION("an empty blob has no record_version") {
    RawExec(path, "UPDATE key_versions SET record = x'' WHERE key_id = 'c'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto r = txn->GetKeyVersion("c", 1);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() ==
          "metadata store: a record in table key_versions has no record_version");
    CHECK(store->CheckIntegrity().code() == StatusCode::kDataLoss);
  }
  SECTION("a record swapped under another id disagrees with its column") {
    RawExec(path,
            "UPDATE keys SET record = (SELECT record FROM keys WHERE key_id = 'a') "
            "WHERE key_id = 'c'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto r = txn->GetKey("c");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() ==
          "metadata store: a record in table keys disagrees with its indexed column key_id");
    CHECK(store->CheckIntegrity().code() == StatusCode::kDataLoss);
  }
  SECTION("a record from newer firmware is FailedPrecondition") {
    KeyRecord future = MakeKey("a");
    future.set_record_version(kRecordVersion + 1);
    std::string hex;
    for (char c : future.SerializeAsString()) {
      const auto ch = static_cast<unsigned char>(c);
      static const char* const kDigits = "0123456789abcdef";
      hex += kDigits[ch >> 4];
      hex += kDigits[ch & 15];
    }
    RawExec(path, "UPDATE keys SET record = x'" + hex + "' WHERE key_id = 'a'");
    auto store = OpenOrDie(path);
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    auto r = txn->GetKey("a");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kFailedPrecondition);
    CHECK(r.error().message() ==
          "metadata store: a record in table keys has record_version 2, newer than this firmware "
          "reads (1)");
  }
  SECTION("a dangling reference fails the foreign key check") {
    RawExec(path, "PRAGMA foreign_keys=OFF; DELETE FROM keys WHERE key_id = 'a'");
    auto store = OpenOrDie(path);
    const Status s = store->CheckIntegrity();
    CHECK(s.code() == StatusCode::kDataLoss);
    CHECK(s.message() == "metadata store: a row of table key_versions references a missing key");
  }
  SECTION("a damaged b-tree fails PRAGMA integrity_check") {
    // Drop the primary-key index's entries behind SQLite's back: the table and its index disagree.
    RawExec(path,
            "PRAGMA writable_schema=ON; "
            "UPDATE sqlite_schema SET sql = 'CREATE INDEX keys_by_rotation ON keys (state)' "
            "WHERE name = 'keys_by_rotation'; PRAGMA writable_schema=OFF;");
    auto store = OpenOrDie(path);
    const Status s = store->CheckIntegrity();
    CHECK(s.code() == StatusCode::kDataLoss);
    CHECK(s.message().starts_with("metadata store: integrity_check: "));
  }
}


// Whether `needle` occurs anywhere in the file (absent file: no).
bool FileContains(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str().find(needle) != std::string::npos;
}

TEST_CASE("store: destroyed wrapped material leaves neither the database nor its WAL",
          "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  const std::string marker_a = "WRAPPED-MATERIAL-A-0123456789abcdef0123456789abcdef";
  const std::string marker_b = "WRAPPED-MATERIAL-B-0123456789abcdef0123456789abcdef";
  const std::string marker_c = "WRAPPED-MATERIAL-C-0123456789abcdef0123456789abcdef";
  auto store = OpenOrDie(path);
  {
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("k")));
    KMS_REQUIRE_OK(txn->InsertKey(MakeKey("keep")));
    KeyVersionRecord a = MakeVersion("k", 1);
    a.set_wrapped(marker_a);
    KeyVersionRecord b = MakeVersion("k", 2);
    b.set_wrapped(marker_b);
    KeyVersionRecord c = MakeVersion("keep", 1);
    c.set_wrapped(marker_c);
    KMS_REQUIRE_OK(txn->InsertKeyVersion(a));
    KMS_REQUIRE_OK(txn->InsertKeyVersion(b));
    KMS_REQUIRE_OK(txn->InsertKeyVersion(c));
    KMS_REQUIRE_OK(txn->Commit());
  }
  // The material is on disk (in the WAL, or the database after a checkpoint): the check below is real.
  CHECK((FileContains(path, marker_a) || FileContains(path + "-wal", marker_a)));
  {
    // Version 1 destroyed by erasing its bytes in place, then the whole key deleted.
    auto txn = BeginOrDie(*store);
    KeyVersionRecord a = *txn->GetKeyVersion("k", 1);
    a.clear_wrapped();
    a.set_state(records::KEY_VERSION_STATE_DESTROYED);
    KMS_REQUIRE_OK(txn->UpdateKeyVersion(a));
    KMS_REQUIRE_OK(txn->Commit());
  }
  CHECK_FALSE(FileContains(path, marker_a));
  CHECK_FALSE(FileContains(path + "-wal", marker_a));
  {
    auto txn = BeginOrDie(*store);
    KMS_REQUIRE_OK(txn->DeleteKey("k"));
    KMS_REQUIRE_OK(txn->Commit());
  }
  CHECK_FALSE(FileContains(path, marker_b));
  CHECK_FALSE(FileContains(path + "-wal", marker_b));
  // Other keys' material is untouched.
  auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
  CHECK(txn->GetKeyVersion("keep", 1)->wrapped() == marker_c);
}

}  // namespace
}  // namespace kms::firmware::store
