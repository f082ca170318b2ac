// Key service tests that need a real SoftHSM2 token (label softhsm): the HSM object count under 10,000
// keys and 100 rotations, counted through PKCS#11; and the SIGKILL crash test with a child process
// (tests/firmware/crash_child.cc).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/encoding.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "pkcs11/pkcs11.h"
#include "tests/firmware/key_service_fixture.h"
#include "tests/support/softhsm_fixture.h"

#ifndef KMS_CRASH_CHILD_PATH
#error "KMS_CRASH_CHILD_PATH must name the firmware_crash_child binary"
#endif

namespace kms::firmware {
namespace {

using testing::TempDir;

// Objects of the token visible to this (logged-in) process: token objects only, or every object
// (token + session objects of this process).
std::size_t CountObjects(kms::testing::SoftHsmFixture& fx, bool token_only) {
  CK_FUNCTION_LIST* f = fx.real_functions();
  auto slot = fx.slot();
  REQUIRE(slot.has_value());
  CK_SESSION_HANDLE session = 0;
  REQUIRE(f->C_OpenSession(*slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session) == CKR_OK);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE token_attr{CKA_TOKEN, &yes, sizeof yes};
  REQUIRE(f->C_FindObjectsInit(session, token_only ? &token_attr : nullptr, token_only ? 1 : 0) ==
          CKR_OK);
  std::size_t count = 0;
  for (;;) {
    CK_OBJECT_HANDLE handles[256];
    CK_ULONG n = 0;
    REQUIRE(f->C_FindObjects(session, handles, 256, &n) == CKR_OK);
    if (n == 0) break;
    count += n;
  }
  REQUIRE(f->C_FindObjectsFinal(session) == CKR_OK);
  REQUIRE(f->C_CloseSession(session) == CKR_OK);
  return count;
}

TEST_CASE("10,000 keys and 100 rotations leave the HSM token's object count unchanged", "[softhsm]") {
  auto fx = kms::testing::SoftHsmFixture::Create();
  if (!fx) FAIL(fx.error().ToString());
  // The store is on tmpfs when there is one: this test is about the HSM, and 30,000 fsyncs would
  // only measure the disk.
  TempDir dir;
  std::string db_path = (dir.path() / "kms.db").string();
  if (std::filesystem::is_directory("/dev/shm")) {
    db_path = "/dev/shm/kms-10k-" + std::to_string(getpid()) + ".db";
  }
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
  } cleanup{db_path};
  store::SqliteStoreOptions options;
  options.path = db_path;
  auto db = store::OpenSqliteStore(options);
  REQUIRE(db.has_value());
  ManualClock clock(testing::kStartMs);
  KeyServiceConfig config;
  config.cache_capacity = 64;
  auto service = KeyService::Open((*fx)->hsm(), **db, clock, config);
  REQUIRE(service.has_value());

  const std::size_t token_before = CountObjects(**fx, true);
  const std::size_t all_before = CountObjects(**fx, false);
  CHECK(token_before >= 1);  // the domain key
  std::vector<std::string> ids;
  ids.reserve(10'000);
  for (int i = 0; i < 10'000; ++i) {
    auto made = (*service)->CreateKey({});
    if (!made) FAIL(made.error().ToString());
    ids.push_back(made->key_metadata.key_id);
  }
  for (int i = 0; i < 100; ++i) {
    auto r = (*service)->RotateKeyOnDemand({ids[static_cast<std::size_t>(i) * 97]});
    if (!r) FAIL(r.error().ToString());
  }
  // Use a spread of keys so the cache fills and evicts.
  for (std::size_t i = 0; i < ids.size(); i += 50) {
    EncryptRequest e;
    e.key_id = ids[i];
    e.plaintext = SecretBytes::CopyFrom(AsBytes("x"));
    REQUIRE((*service)->Encrypt(e).has_value());
  }
  CHECK(CountObjects(**fx, true) == token_before);
  // Session objects are bounded by the cache, not by the number of keys.
  CHECK(CountObjects(**fx, false) <= all_before + config.cache_capacity);
  auto listed = (*service)->ListKeys({1000, {}});
  REQUIRE(listed.has_value());
  CHECK(listed->truncated);
  service->reset();
  CHECK(CountObjects(**fx, false) == all_before);  // every session object gone with the cache
}

TEST_CASE("after a device error the service reloads its stale cached keys by itself", "[softhsm]") {
  kms::testing::SoftHsmFixtureOptions fo;
  fo.inject_faults = true;
  auto fx = kms::testing::SoftHsmFixture::Create(fo);
  if (!fx) FAIL(fx.error().ToString());
  TempDir dir;
  store::SqliteStoreOptions options;
  options.path = (dir.path() / "kms.db").string();
  auto db = store::OpenSqliteStore(options);
  REQUIRE(db.has_value());
  ManualClock clock(testing::kStartMs);
  auto service = KeyService::Open((*fx)->hsm(), **db, clock);
  REQUIRE(service.has_value());
  KeyService& svc = **service;
  auto key = svc.CreateKey({});
  REQUIRE(key.has_value());
  EncryptRequest e;
  e.key_id = key->key_metadata.key_id;
  e.plaintext = SecretBytes::CopyFrom(AsBytes("before the fault"));
  auto before = svc.Encrypt(e);
  REQUIRE(before.has_value());  // the key's handle is now cached
  // The device fails mid-operation: that call fails, the HAL re-initialises the module, and every
  // handle loaded before (the cached one) answers Unavailable/kHandleStale.
  (*fx)->faults()->FailNthCall(1, CKR_DEVICE_ERROR, "C_Encrypt");
  const std::uint64_t misses = svc.cache().misses();
  auto failed = svc.Encrypt(e);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code() == StatusCode::kUnavailable);
  // The next calls work without any help: the stale handle is evicted and the key unwrapped again.
  auto after = svc.Encrypt(e);
  if (!after) FAIL(after.error().ToString());
  CHECK(svc.cache().misses() == misses + 1);  // exactly one reload of the stale key
  for (const Bytes& blob : {before->ciphertext_blob, after->ciphertext_blob}) {
    DecryptRequest d;
    d.ciphertext_blob = blob;
    auto plain = svc.Decrypt(d);
    if (!plain) FAIL(plain.error().ToString());
    CHECK(plain->plaintext == SecretBytes::CopyFrom(AsBytes("before the fault")));
  }
}

// ---------------------------------------------------------------------------------------------------
struct Reported {
  std::set<std::string> keys;
  struct Ciphertext {
    std::string key_id;
    Bytes blob;
    Bytes plaintext;
  };
  std::vector<Ciphertext> ciphertexts;
  std::map<std::string, std::set<std::string>> rotations;  // key -> material ids made current
};

// Lines may be torn only at the very end (a kill during write(2) of one line is not possible for
// regular files on Linux, but a last line without its newline is skipped to be safe).
Reported ReadReport(const std::string& path) {
  Reported r;
  std::string content;
  if (FILE* in = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) content.append(buf, n);
    std::fclose(in);
  }
  std::size_t start = 0;
  for (;;) {
    std::size_t nl = content.find('\n', start);
    if (nl == std::string::npos) break;
    std::istringstream line(content.substr(start, nl - start));
    start = nl + 1;
    std::string kind, key;
    line >> kind >> key;
    if (kind == "KEY") {
      r.keys.insert(key);
    } else if (kind == "CT") {
      std::string blob, text;
      line >> blob >> text;
      r.ciphertexts.push_back({key, *HexDecode(blob), *HexDecode(text)});
    } else if (kind == "ROT") {
      std::string material;
      line >> material;
      r.rotations[key].insert(material);
    } else {
      FAIL("bad report line: " + kind);
    }
  }
  return r;
}

TEST_CASE("crash test: SIGKILLed child creating and rotating keys leaves only whole keys", "[softhsm]") {
  TempDir dir;
  const std::string token_dir = (dir.path() / "token").string();
  const std::string db_path = (dir.path() / "kms.db").string();
  const std::string report_path = (dir.path() / "report.txt").string();
  {
    auto token = provisioning::CreateDevToken(token_dir);
    if (!token) FAIL(token.error().ToString());
  }
  const std::uint64_t seed = static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr int kRuns = 30;
  for (int run = 0; run < kRuns; ++run) {
    const std::string child_seed = std::to_string(rng());
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl(KMS_CRASH_CHILD_PATH, KMS_CRASH_CHILD_PATH, token_dir.c_str(), db_path.c_str(),
            report_path.c_str(), child_seed.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Anywhere from during start-up (token open, reconciliation) to well into the loop.
    const auto delay = std::chrono::milliseconds(20 + rng() % 600);
    std::this_thread::sleep_for(delay);
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == 0) {
      REQUIRE(kill(pid, SIGKILL) == 0);
      REQUIRE(waitpid(pid, &status, 0) == pid);
      CHECK(WIFSIGNALED(status));
    } else {
      // The child must never stop on its own.
      FAIL("crash child exited early with status " << status);
    }
  }

  // Verify with a fresh service, as a restarted appliance would: open reconciles.
  auto token = provisioning::OpenDevToken(token_dir);
  REQUIRE(token.has_value());
  hal::Pkcs11HsmConfig config;
  config.module_path = token->module_path;
  config.token_label = token->token_label;
  config.token_serial = token->token_serial;
  config.user_pin = token->user_pin.Clone();
  config.domain_key_label = token->domain_key_label;
  auto hsm = hal::OpenPkcs11Hsm(std::move(config));
  REQUIRE(hsm.has_value());
  store::SqliteStoreOptions options;
  options.path = db_path;
  auto db = store::OpenSqliteStore(options);
  REQUIRE(db.has_value());
  CHECK((*db)->CheckIntegrity().ok());
  SystemClock clock;
  auto service = KeyService::Open(**hsm, **db, clock);
  if (!service) FAIL(service.error().ToString());
  KeyService& svc = **service;

  Reported reported = ReadReport(report_path);
  INFO("reported keys " << reported.keys.size() << ", ciphertexts " << reported.ciphertexts.size());
  std::printf("crash test: %d runs, %zu keys, %zu ciphertexts, %zu rotated keys reported\n", kRuns,
              reported.keys.size(), reported.ciphertexts.size(), reported.rotations.size());
  CHECK(reported.keys.size() >= 10);  // the children did real work
  for (const std::string& id : reported.keys) {
    auto d = svc.DescribeKey({id});
    if (!d) FAIL("reported key " << id << ": " << d.error().ToString());
    CHECK(d->key_metadata.key_state == KeyState::kEnabled);
    EncryptRequest e;
    e.key_id = id;
    e.plaintext = SecretBytes::CopyFrom(AsBytes("still works"));
    auto ct = svc.Encrypt(e);
    REQUIRE(ct.has_value());
    DecryptRequest dr;
    dr.ciphertext_blob = ct->ciphertext_blob;
    CHECK(svc.Decrypt(dr).has_value());
  }
  for (const auto& c : reported.ciphertexts) {
    DecryptRequest dr;
    dr.ciphertext_blob = c.blob;
    auto plain = svc.Decrypt(dr);
    if (!plain) FAIL("reported ciphertext of " << c.key_id << ": " << plain.error().ToString());
    CHECK(plain->plaintext == SecretBytes::CopyFrom(c.plaintext));
    CHECK(plain->key_id == svc.KeyArn(c.key_id));
  }
  for (const auto& [id, materials] : reported.rotations) {
    auto rotations = svc.ListKeyRotations({id, 1000, {}});
    REQUIRE(rotations.has_value());
    std::set<std::string> stored;
    for (const auto& r : rotations->rotations) stored.insert(r.key_material_id);
    for (const auto& m : materials) CHECK(stored.contains(m));
  }
  // No half-made key is visible: every listed key is whole (describable, with its current version),
  // and no intent or PENDING_CREATION record survives reconciliation.
  std::optional<std::string> marker;
  std::size_t listed = 0;
  do {
    auto page = svc.ListKeys({1000, marker});
    REQUIRE(page.has_value());
    for (const auto& k : page->keys) {
      ++listed;
      auto d = svc.DescribeKey({k.key_id});
      REQUIRE(d.has_value());
      CHECK(d->key_metadata.current_key_material_id.size() == 64);
    }
    marker = page->next_marker;
  } while (marker);
  CHECK(listed >= reported.keys.size());
  auto tx = (*db)->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  CHECK((*tx)->ListIntents()->empty());
  auto page = (*tx)->ListKeys("", store::kMaxPageLimit);
  REQUIRE(page.has_value());
  for (const auto& k : page->items) {
    CHECK(k.state() != records::KEY_STATE_PENDING_CREATION);
    auto v = (*tx)->GetKeyVersion(k.key_id(), k.current_version());
    CHECK(v.has_value());
  }
  tx->reset();
  CHECK((*db)->CheckIntegrity().ok());
}

}  // namespace
}  // namespace kms::firmware
