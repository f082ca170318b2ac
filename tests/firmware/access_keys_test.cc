// AccessKeyRegistry on the fake HSM and a real SQLite store in a temporary folder: credentials'
// shape, create/lookup round trip, sealing (no plaintext on disk, AAD bound to the id, tamper
// detected as DataLoss), status and deletion (NotFound indistinguishable from unknown), restart
// with the same sealing key, the bounded secret cache, concurrent first use by two "processes",
// bootstrap admin.
#include "firmware/access_keys.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace kms::firmware {
namespace {

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::string_view kSealingKeyMeta = "access_keys.sealing_key.1";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kms-ak-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

#define KMS_REQUIRE_OK(expr)                                      \
  do {                                                            \
    const ::kms::Status kms_test_status_ = ::kms::StatusOf(expr); \
    INFO(kms_test_status_.ToString());                            \
    REQUIRE(kms_test_status_.ok());                               \
  } while (0)

std::unique_ptr<store::MetadataStore> OpenStore(const std::string& path) {
  store::SqliteStoreOptions options;
  options.path = path;
  auto opened = store::OpenSqliteStore(options);
  if (!opened) FAIL(opened.error().ToString());
  return std::move(*opened);
}

// One appliance process: an HSM session, a store connection and a registry.
struct Fixture {
  explicit Fixture(AccessKeyRegistryOptions options = {}) : clock(kStartMs), options_(options) {
    hsm = kms::testing::NewFakeHsm();
    Open();
  }
  ~Fixture() {
    registry.reset();
    store.reset();
  }
  void Open() {
    store = OpenStore(dir.File("kms.db"));
    registry = std::make_unique<AccessKeyRegistry>(*hsm, *store, clock, options_);
  }
  // A restarted appliance: new HSM session (same domain key, no loaded keys), store and registry.
  void Restart() {
    registry.reset();
    store.reset();
    hsm = hsm->NewSibling();
    Open();
  }
  CreatedAccessKey Create(std::string_view principal = "alice", bool admin = false) {
    auto made = registry->Create(principal, admin);
    if (!made) FAIL(made.error().ToString());
    return std::move(*made);
  }
  store::AccessKeyRecord Record(std::string_view id) {
    auto txn = store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(txn.has_value());
    auto r = (*txn)->GetAccessKey(id);
    if (!r) FAIL(r.error().ToString());
    return *r;
  }
  void Overwrite(const store::AccessKeyRecord& record) {
    auto txn = store->Begin();
    REQUIRE(txn.has_value());
    KMS_REQUIRE_OK((*txn)->UpdateAccessKey(record));
    KMS_REQUIRE_OK((*txn)->Commit());
  }
  std::string Meta(std::string_view name) {
    auto txn = store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(txn.has_value());
    auto v = (*txn)->GetMeta(name);
    if (!v) FAIL(v.error().ToString());
    return *v;
  }

  TempDir dir;
  ManualClock clock;
  AccessKeyRegistryOptions options_;
  std::unique_ptr<kms::testing::FakeHsm> hsm;
  std::unique_ptr<store::MetadataStore> store;
  std::unique_ptr<AccessKeyRegistry> registry;
};

std::string Text(const SecretBytes& s) { return ToString(s.ExposeSecret()); }

bool FileContains(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str().find(needle) != std::string::npos;
}

void CheckUnknown(const StatusOr<ResolvedAccessKey>& r) {
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == StatusCode::kNotFound);
  CHECK(r.error().message() == "unknown access key");
}

TEST_CASE("access keys: created credentials have AWS's shape and look up", "[unit][access_keys]") {
  Fixture f;
  CreatedAccessKey made = f.Create("alice", /*admin=*/false);

  REQUIRE(made.access_key_id.size() == kAccessKeyIdLength);
  CHECK(made.access_key_id.starts_with("AKMS"));
  for (char c : made.access_key_id) CHECK(((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')));
  REQUIRE(made.secret.size() == kAccessKeySecretLength);
  for (std::uint8_t c : made.secret.ExposeSecret()) {
    CHECK(((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '+'));
  }

  auto found = f.registry->Lookup(made.access_key_id);
  KMS_REQUIRE_OK(found);
  CHECK(found->secret == made.secret);
  CHECK(found->principal == "alice");
  CHECK_FALSE(found->administrator);
  // Again, now from the cache.
  auto again = f.registry->Lookup(made.access_key_id);
  KMS_REQUIRE_OK(again);
  CHECK(again->secret == made.secret);

  // Two keys differ in id and secret.
  CreatedAccessKey other = f.Create("bob", /*admin=*/true);
  CHECK(other.access_key_id != made.access_key_id);
  CHECK_FALSE(other.secret == made.secret);
  auto bob = f.registry->Lookup(other.access_key_id);
  KMS_REQUIRE_OK(bob);
  CHECK(bob->principal == "bob");
  CHECK(bob->administrator);

  // The record keeps the principal as a bare user name, and the time of creation.
  const store::AccessKeyRecord record = f.Record(made.access_key_id);
  CHECK(record.principal() == "alice");
  CHECK(record.creation_time_ms() == kStartMs);
  CHECK(record.sealing_key_version() == 1);
  CHECK(record.status() == records::ACCESS_KEY_STATUS_ACTIVE);
}

TEST_CASE("access keys: unknown ids and malformed principals", "[unit][access_keys]") {
  Fixture f;
  CheckUnknown(f.registry->Lookup("AKMSAAAAAAAAAAAAAAAA"));
  CheckUnknown(f.registry->Lookup(""));
  auto reveal = f.registry->RevealSecret("AKMSAAAAAAAAAAAAAAAA");
  REQUIRE_FALSE(reveal.has_value());
  CHECK(reveal.error().code() == StatusCode::kNotFound);

  for (std::string_view bad : {std::string_view(""), std::string_view("arn:aws:iam::1:user/x"),
                               std::string_view("has space"), std::string_view("a/b")}) {
    auto r = f.registry->Create(bad, false);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kInvalidArgument);
  }
  auto empty = f.registry->Create("", false);
  CHECK(empty.error().message() ==
        "access key principal must be an IAM user name of 1..64 characters");
  auto too_long = f.registry->Create(std::string(65, 'a'), false);
  CHECK(too_long.error().code() == StatusCode::kInvalidArgument);
  auto slash = f.registry->Create("a/b", false);
  CHECK(slash.error().message() ==
        "access key principal must be an IAM user name (A-Z a-z 0-9 + = , . @ _ -)");
  KMS_REQUIRE_OK(f.registry->Create(std::string(64, 'a'), false));
  KMS_REQUIRE_OK(f.registry->Create("svc+ci=x,y.z@corp_1-2", false));

  const Status status = f.registry->SetStatus("AKMSAAAAAAAAAAAAAAAA", false);
  CHECK(status.code() == StatusCode::kNotFound);
  CHECK(status.message() == "access key AKMSAAAAAAAAAAAAAAAA not found");
  const Status deleted = f.registry->Delete("AKMSAAAAAAAAAAAAAAAA");
  CHECK(deleted.code() == StatusCode::kNotFound);
  CHECK(deleted.message() == "access key AKMSAAAAAAAAAAAAAAAA not found");
}

TEST_CASE("access keys: secrets are never stored in plaintext", "[unit][access_keys]") {
  Fixture f;
  std::vector<CreatedAccessKey> made;
  for (int i = 0; i < 5; ++i) made.push_back(f.Create("user" + std::to_string(i), i == 0));
  // Lookups fill the cache; status changes rewrite records: still nothing plaintext on disk.
  for (const auto& m : made) KMS_REQUIRE_OK(f.registry->Lookup(m.access_key_id));
  KMS_REQUIRE_OK(f.registry->SetStatus(made[1].access_key_id, false));
  KMS_REQUIRE_OK(f.registry->SetStatus(made[1].access_key_id, true));

  const std::string db = f.dir.File("kms.db");
  const std::string wal = f.dir.File("kms.db-wal");
  // Positive control: the scan does find what is on disk (the ids, in the WAL or the database).
  CHECK((FileContains(db, made[0].access_key_id) || FileContains(wal, made[0].access_key_id)));
  for (const auto& m : made) {
    INFO(m.access_key_id);
    CHECK_FALSE(FileContains(db, Text(m.secret)));
    CHECK_FALSE(FileContains(wal, Text(m.secret)));
  }
  // After the store is closed (checkpointed into the database) too.
  f.registry.reset();
  f.store.reset();
  for (const auto& m : made) CHECK_FALSE(FileContains(db, Text(m.secret)));
  f.Open();

  // What is stored is a GCM ciphertext of the secret's length, a 12-byte IV and a 16-byte tag.
  const store::AccessKeyRecord record = f.Record(made[0].access_key_id);
  CHECK(record.sealed_iv().size() == 12);
  CHECK(record.sealed_tag().size() == 16);
  CHECK(record.sealed_ciphertext().size() == kAccessKeySecretLength);
  CHECK(record.sealed_ciphertext() != Text(made[0].secret));

  // The sealing key is stored only wrapped by the domain key, as a SealingKeyRecord in meta.
  records::SealingKeyRecord sealing;
  REQUIRE(sealing.ParseFromString(f.Meta(kSealingKeyMeta)));
  CHECK(sealing.version() == 1);
  CHECK(sealing.algorithm() == records::HAL_ALGORITHM_AES_256);
  CHECK(sealing.purpose() == records::HAL_PURPOSE_ENCRYPT_DECRYPT);
  CHECK(sealing.wrapped().size() == 40);  // RFC 5649 wrap of a 32-byte key
  CHECK(sealing.record_version() == store::kRecordVersion);
}

TEST_CASE("access keys: a tampered or moved sealed secret is DataLoss, never success or unknown",
          "[unit][access_keys]") {
  Fixture f;
  CreatedAccessKey a = f.Create("alice");
  CreatedAccessKey b = f.Create("bob");
  // Fill the cache: a changed record must not be answered from it.
  KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));
  KMS_REQUIRE_OK(f.registry->Lookup(b.access_key_id));
  const store::AccessKeyRecord ra = f.Record(a.access_key_id);
  store::AccessKeyRecord rb = f.Record(b.access_key_id);

  auto check_dataloss = [&](std::string_view id) {
    auto cached = f.registry->Lookup(id);
    REQUIRE_FALSE(cached.has_value());
    CHECK(cached.error().code() == StatusCode::kDataLoss);
    CHECK(cached.error().message() ==
          "access keys: the sealed secret of " + std::string(id) + " does not open");
    // A fresh process (no cache, no loaded handle) refuses it the same way.
    AccessKeyRegistry fresh(*f.hsm, *f.store, f.clock, {});
    auto r = fresh.Lookup(id);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(fresh.RevealSecret(id).error().code() == StatusCode::kDataLoss);
  };

  SECTION("a's sealed secret copied onto b's record: the AAD binds the id") {
    rb.set_sealed_iv(ra.sealed_iv());
    rb.set_sealed_ciphertext(ra.sealed_ciphertext());
    rb.set_sealed_tag(ra.sealed_tag());
    f.Overwrite(rb);
    check_dataloss(b.access_key_id);
    KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));
  }
  SECTION("a flipped ciphertext bit") {
    std::string ct = rb.sealed_ciphertext();
    ct[3] = static_cast<char>(ct[3] ^ 0x01);
    rb.set_sealed_ciphertext(ct);
    f.Overwrite(rb);
    check_dataloss(b.access_key_id);
  }
  SECTION("a flipped tag bit") {
    std::string tag = rb.sealed_tag();
    tag[0] = static_cast<char>(tag[0] ^ 0x80);
    rb.set_sealed_tag(tag);
    f.Overwrite(rb);
    check_dataloss(b.access_key_id);
  }
  SECTION("a truncated tag") {
    rb.set_sealed_tag(rb.sealed_tag().substr(0, 8));
    f.Overwrite(rb);
    check_dataloss(b.access_key_id);
  }
  SECTION("a record naming a sealing key that does not exist") {
    rb.set_sealing_key_version(2);
    f.Overwrite(rb);
    AccessKeyRegistry fresh(*f.hsm, *f.store, f.clock, {});
    auto r = fresh.Lookup(b.access_key_id);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() == "access keys: sealing key 2 is missing");
  }
  SECTION("a sealing key from another appliance (another domain key) does not unwrap") {
    // Another fake has another domain key: the stored wrapped sealing key is garbage to it.
    auto other_hsm = kms::testing::NewFakeHsm();
    AccessKeyRegistry foreign(*other_hsm, *f.store, f.clock, {});
    auto r = foreign.Lookup(a.access_key_id);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kDataLoss);
    CHECK(r.error().message() ==
          "access keys: the stored sealing key 1 does not unwrap under this domain key");
  }
}

TEST_CASE("access keys: a corrupt stored sealing key is DataLoss", "[unit][access_keys]") {
  Fixture f;
  CreatedAccessKey a = f.Create();
  {
    auto txn = f.store->Begin();
    REQUIRE(txn.has_value());
    KMS_REQUIRE_OK((*txn)->PutMeta(kSealingKeyMeta, std::string("\xff\xff\xff", 3)));
    KMS_REQUIRE_OK((*txn)->Commit());
  }
  AccessKeyRegistry fresh(*f.hsm, *f.store, f.clock, {});
  auto r = fresh.Lookup(a.access_key_id);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == StatusCode::kDataLoss);
  CHECK(r.error().message() == "access keys: the stored sealing key does not parse");
  // Creation refuses too rather than making a second sealing key over it.
  auto made = fresh.Create("bob", false);
  REQUIRE_FALSE(made.has_value());
  CHECK(made.error().code() == StatusCode::kDataLoss);
}

TEST_CASE("access keys: deactivated and deleted keys are NotFound like unknown ones",
          "[unit][access_keys]") {
  Fixture f;
  CreatedAccessKey a = f.Create("alice");
  CreatedAccessKey b = f.Create("bob");
  KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));  // cached

  KMS_REQUIRE_OK(f.registry->SetStatus(a.access_key_id, false));
  CheckUnknown(f.registry->Lookup(a.access_key_id));
  CHECK(f.registry->RevealSecret(a.access_key_id).error().code() == StatusCode::kNotFound);
  KMS_REQUIRE_OK(f.registry->SetStatus(a.access_key_id, false));  // already inactive: OK
  KMS_REQUIRE_OK(f.registry->Lookup(b.access_key_id));            // others unaffected

  // Listed as inactive, still there.
  auto page = f.registry->List("", 10);
  KMS_REQUIRE_OK(page);
  REQUIRE(page->items.size() == 2);
  for (const auto& info : page->items) {
    CHECK(info.active == (info.access_key_id != a.access_key_id));
  }

  KMS_REQUIRE_OK(f.registry->SetStatus(a.access_key_id, true));
  auto back = f.registry->Lookup(a.access_key_id);
  KMS_REQUIRE_OK(back);
  CHECK(back->secret == a.secret);

  KMS_REQUIRE_OK(f.registry->Delete(b.access_key_id));
  CheckUnknown(f.registry->Lookup(b.access_key_id));
  CHECK(f.registry->Delete(b.access_key_id).code() == StatusCode::kNotFound);
  CHECK(f.registry->SetStatus(b.access_key_id, true).code() == StatusCode::kNotFound);

  SECTION("a deactivation by another process takes effect despite this one's cache") {
    KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));  // cached here
    auto other_store = OpenStore(f.dir.File("kms.db"));
    auto other_hsm = f.hsm->NewSibling();
    AccessKeyRegistry other(*other_hsm, *other_store, f.clock, {});
    KMS_REQUIRE_OK(other.SetStatus(a.access_key_id, false));
    CheckUnknown(f.registry->Lookup(a.access_key_id));
    KMS_REQUIRE_OK(other.SetStatus(a.access_key_id, true));
    KMS_REQUIRE_OK(other.Delete(a.access_key_id));
    CheckUnknown(f.registry->Lookup(a.access_key_id));
  }
}

TEST_CASE("access keys: List pages by id and never carries secrets", "[unit][access_keys]") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    f.clock.Advance(1000);
    ids.push_back(f.Create("user" + std::to_string(i), i == 2).access_key_id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<AccessKeyInfo> all;
  std::string after;
  int pages = 0;
  for (;;) {
    auto page = f.registry->List(after, 2);
    KMS_REQUIRE_OK(page);
    ++pages;
    for (auto& info : page->items) all.push_back(info);
    if (!page->truncated) {
      CHECK(page->next_marker.empty());
      break;
    }
    after = page->next_marker;
  }
  CHECK(pages == 3);
  REQUIRE(all.size() == 5);
  int admins = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].access_key_id == ids[i]);
    CHECK(all[i].active);
    CHECK(all[i].principal.starts_with("user"));
    CHECK(all[i].creation_time_ms > kStartMs);
    admins += all[i].administrator ? 1 : 0;
  }
  CHECK(admins == 1);
  auto zero = f.registry->List("", 0);
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.error().code() == StatusCode::kInvalidArgument);
  CHECK(zero.error().message() == "page limit must be 1..10000");
}

TEST_CASE("access keys: a restarted appliance finds its keys and the same sealing key",
          "[unit][access_keys]") {
  Fixture f;
  CreatedAccessKey a = f.Create("alice", true);
  const std::string sealing_before = f.Meta(kSealingKeyMeta);

  f.Restart();
  auto found = f.registry->Lookup(a.access_key_id);
  KMS_REQUIRE_OK(found);
  CHECK(found->secret == a.secret);
  CHECK(found->principal == "alice");
  CHECK(found->administrator);
  // New keys are sealed under the same, stored sealing key: no second one is made.
  CreatedAccessKey b = f.Create("bob");
  CHECK(f.Meta(kSealingKeyMeta) == sealing_before);
  f.Restart();
  CHECK(f.registry->Lookup(b.access_key_id)->secret == b.secret);
  CHECK(f.Meta(kSealingKeyMeta) == sealing_before);
}

TEST_CASE("access keys: a stale sealing-key handle is unwrapped again", "[unit][access_keys]") {
  Fixture f(AccessKeyRegistryOptions{.secret_cache_capacity = 0});
  CreatedAccessKey a = f.Create();
  f.hsm->SimulateReinitialize();
  auto found = f.registry->Lookup(a.access_key_id);
  KMS_REQUIRE_OK(found);
  CHECK(found->secret == a.secret);
  f.hsm->SimulateReinitialize();
  KMS_REQUIRE_OK(f.registry->Create("bob", false));
}

TEST_CASE("access keys: HSM failures pass through, never as unknown key", "[unit][access_keys]") {
  Fixture f(AccessKeyRegistryOptions{.secret_cache_capacity = 0});
  CreatedAccessKey a = f.Create();
  f.hsm->InjectFailure(UnavailableError("device gone"));
  auto r = f.registry->Lookup(a.access_key_id);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == StatusCode::kUnavailable);
  CHECK(r.error().message() == "device gone");
  KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));

  // Creation: a failure in either RNG draw (id, secret) or in the seal.
  for (std::size_t step = 0; step < 3; ++step) {
    f.hsm->InjectFailure(UnavailableError("device gone"), step, 1);
    auto made = f.registry->Create("bob", false);
    REQUIRE_FALSE(made.has_value());
    CHECK(made.error().code() == StatusCode::kUnavailable);
  }
  f.hsm->InjectFailure(Status(), 0, 0);
  auto list = f.registry->List("", 10);
  KMS_REQUIRE_OK(list);
  CHECK(list->items.size() == 1);  // no half-made key
}

TEST_CASE("access keys: the secret cache is bounded and serves repeat lookups",
          "[unit][access_keys]") {
  Fixture f(AccessKeyRegistryOptions{.secret_cache_capacity = 1});
  CreatedAccessKey a = f.Create("alice");
  CreatedAccessKey b = f.Create("bob");
  KMS_REQUIRE_OK(f.registry->Lookup(a.access_key_id));
  KMS_REQUIRE_OK(f.registry->Lookup(b.access_key_id));  // evicts a
  // The next HSM call fails: b comes from the cache without one, a needs one.
  f.hsm->InjectFailure(UnavailableError("device gone"));
  auto cached = f.registry->Lookup(b.access_key_id);
  KMS_REQUIRE_OK(cached);
  CHECK(cached->secret == b.secret);
  auto evicted = f.registry->Lookup(a.access_key_id);
  REQUIRE_FALSE(evicted.has_value());
  CHECK(evicted.error().code() == StatusCode::kUnavailable);
}

TEST_CASE("access keys: concurrent lookups, evictions and status changes in one process",
          "[unit][access_keys][concurrency]") {
  Fixture f(AccessKeyRegistryOptions{.secret_cache_capacity = 2});
  std::vector<CreatedAccessKey> keys;
  for (int i = 0; i < 3; ++i) keys.push_back(f.Create("user" + std::to_string(i)));
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        const auto& k = keys[static_cast<std::size_t>((i + t) % 3)];
        auto r = f.registry->Lookup(k.access_key_id);
        if (r.has_value()) {
          if (!(r->secret == k.secret)) ++wrong;
        } else if (r.error().code() != StatusCode::kNotFound || &k != &keys[0]) {
          ++failed;  // only key 0 is ever inactive
        }
      }
    });
  }
  std::thread toggler([&] {
    for (int i = 0; i < 20; ++i) {
      if (!f.registry->SetStatus(keys[0].access_key_id, i % 2 == 1).ok()) ++failed;
    }
  });
  for (auto& r : readers) r.join();
  toggler.join();
  CHECK(wrong.load() == 0);
  CHECK(failed.load() == 0);
  KMS_REQUIRE_OK(f.registry->Lookup(keys[0].access_key_id));  // the last toggle activated it
}

TEST_CASE("access keys: two processes using a new store at once make one sealing key",
          "[unit][access_keys][concurrency]") {
  TempDir dir;
  ManualClock clock(kStartMs);
  auto hsm1 = kms::testing::NewFakeHsm();
  auto hsm2 = hsm1->NewSibling();
  auto store1 = OpenStore(dir.File("kms.db"));
  auto store2 = OpenStore(dir.File("kms.db"));
  AccessKeyRegistry r1(*hsm1, *store1, clock, {});
  AccessKeyRegistry r2(*hsm2, *store2, clock, {});
  StatusOr<CreatedAccessKey> k1 = InternalError("not run");
  StatusOr<CreatedAccessKey> k2 = InternalError("not run");
  std::thread t1([&] { k1 = r1.Create("one", false); });
  std::thread t2([&] { k2 = r2.Create("two", false); });
  t1.join();
  t2.join();
  KMS_REQUIRE_OK(k1);
  KMS_REQUIRE_OK(k2);
  // Each opens the other's key: both sealed under the one stored sealing key.
  auto cross1 = r1.Lookup(k2->access_key_id);
  KMS_REQUIRE_OK(cross1);
  CHECK(cross1->secret == k2->secret);
  auto cross2 = r2.Lookup(k1->access_key_id);
  KMS_REQUIRE_OK(cross2);
  CHECK(cross2->secret == k1->secret);
}

TEST_CASE("access keys: the bootstrap admin is made once", "[unit][access_keys]") {
  Fixture f;
  // A non-admin and an inactive admin do not count.
  f.Create("alice", false);
  CreatedAccessKey old_admin = f.Create("root", true);
  KMS_REQUIRE_OK(f.registry->SetStatus(old_admin.access_key_id, false));

  auto id = f.registry->EnsureBootstrapAdmin("dev");
  KMS_REQUIRE_OK(id);
  CHECK(*id != old_admin.access_key_id);
  auto again = f.registry->EnsureBootstrapAdmin("dev");
  KMS_REQUIRE_OK(again);
  CHECK(*again == *id);

  auto resolved = f.registry->Lookup(*id);
  KMS_REQUIRE_OK(resolved);
  CHECK(resolved->principal == "dev");
  CHECK(resolved->administrator);
  auto revealed = f.registry->RevealSecret(*id);
  KMS_REQUIRE_OK(revealed);
  CHECK(*revealed == resolved->secret);

  f.Restart();
  auto after_restart = f.registry->EnsureBootstrapAdmin("dev");
  KMS_REQUIRE_OK(after_restart);
  CHECK(*after_restart == *id);
  CHECK(*f.registry->RevealSecret(*id) == resolved->secret);
  auto list = f.registry->List("", 10);
  KMS_REQUIRE_OK(list);
  CHECK(list->items.size() == 3);

  // Deactivating it makes the next bootstrap make another.
  KMS_REQUIRE_OK(f.registry->SetStatus(*id, false));
  auto replacement = f.registry->EnsureBootstrapAdmin("dev");
  KMS_REQUIRE_OK(replacement);
  CHECK(*replacement != *id);
  CHECK(f.registry->EnsureBootstrapAdmin("x/y").error().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("access keys: the bootstrap on a fresh store works from the first call",
          "[unit][access_keys]") {
  Fixture f;
  auto id = f.registry->EnsureBootstrapAdmin("dev");
  KMS_REQUIRE_OK(id);
  CHECK(id->starts_with("AKMS"));
  KMS_REQUIRE_OK(f.registry->Lookup(*id));
}

}  // namespace
}  // namespace kms::firmware
