// Backup and restore (provisioning/backup.h) on a real SoftHSM2 module: the restore drill
// (docs/provisioning.md "The drill": provision, make keys through the real stack, back up, destroy
// the token and the store, restore onto a new token, every ciphertext decrypts and the signing key
// signs with the same public key), and every refusal with its exact message: a backup with any byte
// changed, too few shares, shares of another split, an existing token or store. The backup file
// holds none of the secrets that could open it.
#include "provisioning/backup.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "firmware/app/appliance_config.h"
#include "firmware/clock.h"
#include "firmware/custodian_shares.h"
#include "firmware/key_service.h"
#include "firmware/seal.h"
#include "firmware/store/sqlite_store.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "provisioning/ceremony.h"
#include "provisioning/dev_token.h"
#include "tests/provisioning/provisioning_test_util.h"

namespace kms::provisioning {
namespace {

using test::FiveOfThree;
using test::Must;
using test::ReadAll;
using test::WriteFile;

namespace fs = std::filesystem;
namespace store = firmware::store;

using test::kDomainKeyLabel;
using test::kLabel;

// A folder with its own SoftHSM2 configuration (SOFTHSM2_CONF, process-global: one world per test
// case), a token directory that can be switched for a new one (the restore's fresh token) and a
// production kmsd.toml.
class BackupWorld {
 public:
  BackupWorld() {
    dir_ = test::MakeTempDir("kms-backup");
    UseTokenDir("tokens");
  }
  ~BackupWorld() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  BackupWorld(const BackupWorld&) = delete;
  BackupWorld& operator=(const BackupWorld&) = delete;

  // Points SoftHSM2 at <dir>/<name> (read by the module at its next C_Initialize).
  void UseTokenDir(const std::string& name) { test::UseSoftHsmTokenDir(dir_, dir_ / name); }
  const fs::path& dir() const { return dir_; }
  std::string StorePath() const { return (dir_ / "kms.db").string(); }
  std::string BackupPath() const { return (dir_ / "kms.backup").string(); }

  app::ApplianceConfig Config(const std::string& label = kLabel) const {
    const fs::path path = dir_ / "kmsd.toml";
    WriteFile(path, "mode = \"production\"\n[hsm]\nmodule = \"" + std::string(kSoftHsmModulePath) +
                        "\"\ntoken_label = \"" + label + "\"\ndomain_key_label = \"" +
                        kDomainKeyLabel + "\"\n[store]\npath = \"" + StorePath() + "\"\n");
    return Must(app::LoadConfigFile(path.string()));
  }

 private:
  fs::path dir_;
};

std::vector<SecretBytes> Pick(const std::vector<SecretBytes>& shares,
                              std::initializer_list<std::size_t> indexes) {
  std::vector<SecretBytes> out;
  for (std::size_t i : indexes) out.push_back(shares.at(i).Clone());
  return out;
}

// The HAL and the key service over the token and store of `config`, with the PIN the shares
// derive, as kmsd builds them at unseal.
struct Stack {
  std::unique_ptr<hal::Hsm> hsm;
  std::unique_ptr<store::MetadataStore> metadata;
  firmware::SystemClock clock;
  std::unique_ptr<firmware::KeyService> keys;
};
std::unique_ptr<Stack> OpenStack(const app::ApplianceConfig& config,
                                 const std::vector<SecretBytes>& shares) {
  std::vector<std::string_view> texts;
  for (const auto& s : shares) texts.push_back(AsStringView(s.ExposeSecret()));
  const SecretBytes secret = Must(firmware::CombineShares(texts));
  auto stack = std::make_unique<Stack>();
  hal::Pkcs11HsmConfig hsm_config;
  hsm_config.module_path = config.hsm_module;
  hsm_config.token_label = config.token_label;
  hsm_config.user_pin = firmware::TokenPinFromUnsealSecret(secret);
  hsm_config.domain_key_label = config.domain_key_label;
  stack->hsm = Must(hal::OpenPkcs11Hsm(std::move(hsm_config)));
  store::SqliteStoreOptions options;
  options.path = config.store_path;
  stack->metadata = Must(store::OpenSqliteStore(options));
  stack->keys = Must(firmware::KeyService::Open(*stack->hsm, *stack->metadata, stack->clock));
  return stack;
}

// What the drill checks after the restore.
struct Sample {
  std::string aes_key;
  std::vector<std::pair<std::string, Bytes>> ciphertexts;  // plaintext, blob
  std::string signing_key;
  Bytes public_key;
};

// init, then keys and ciphertexts through the real stack, then a backup with shares 1, 3, 5.
struct Provisioned {
  CeremonyResult ceremony;
  Sample sample;
  BackupResult backup;
};
Provisioned ProvisionAndBackUp(BackupWorld& world) {
  Provisioned p;
  const app::ApplianceConfig config = world.Config();
  p.ceremony = Must(RunInitCeremony(config, FiveOfThree()));
  {
    auto stack = OpenStack(config, Pick(p.ceremony.shares, {0, 1, 2}));
    firmware::KeyService& svc = *stack->keys;
    p.sample.aes_key = Must(svc.CreateKey({})).key_metadata.key_id;
    for (const char* text : {"first secret", "second secret", "third secret"}) {
      firmware::EncryptRequest e;
      e.key_id = p.sample.aes_key;
      e.plaintext = SecretBytes::CopyFrom(AsBytes(std::string_view(text)));
      p.sample.ciphertexts.emplace_back(text, Must(svc.Encrypt(e)).ciphertext_blob);
    }
    firmware::CreateKeyRequest ec;
    ec.key_spec = firmware::KeySpec::kEccNistP256;
    ec.key_usage = firmware::KeyUsage::kSignVerify;
    p.sample.signing_key = Must(svc.CreateKey(ec)).key_metadata.key_id;
    p.sample.public_key = Must(svc.GetPublicKey({p.sample.signing_key})).public_key;
  }
  BackupOptions options;
  options.shares = Pick(p.ceremony.shares, {0, 2, 4});
  options.so_pin = p.ceremony.so_pin.Clone();
  options.out_path = world.BackupPath();
  p.backup = Must(RunBackup(config, options));
  return p;
}

// The token and the store are gone: the disaster a restore is for.
void DestroyTokenAndStore(BackupWorld& world) {
  fs::remove_all(world.dir() / "tokens");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(world.StorePath() + suffix);
  world.UseTokenDir("tokens-new");
}

RestoreOptions RestoreWith(const BackupWorld& world, std::vector<SecretBytes> shares) {
  RestoreOptions options;
  options.shares = std::move(shares);
  options.backup_path = world.BackupPath();
  return options;
}

// The store's seal descriptor, as stored.
std::string ReadDescriptor(const std::string& store_path) {
  store::SqliteStoreOptions options;
  options.path = store_path;
  auto metadata = Must(store::OpenSqliteStore(options));
  auto descriptor = Must(firmware::ReadSealDescriptor(*metadata));
  REQUIRE(descriptor.has_value());
  return firmware::FormatSealDescriptor(*descriptor);
}

// Puts `text` in place of the store's seal descriptor (an older or a tampered store).
void WriteDescriptor(const std::string& store_path, const std::string& text) {
  store::SqliteStoreOptions options;
  options.path = store_path;
  auto metadata = Must(store::OpenSqliteStore(options));
  auto txn = Must(metadata->Begin(store::TransactionMode::kReadWrite));
  REQUIRE(txn->PutMeta(firmware::kSealDescriptorMeta, text).ok());
  REQUIRE(txn->Commit().ok());
}

// The v2 descriptor of the ceremony's split: threshold 3 of 5, commitment and verifier.
std::string CompleteDescriptor(const std::vector<SecretBytes>& shares) {
  std::vector<std::string_view> texts;
  for (const auto& s : shares) texts.push_back(AsStringView(s.ExposeSecret()));
  const SecretBytes secret = Must(firmware::CombineShares(texts));
  const auto first = Must(firmware::ParseShare(texts.front()));
  return firmware::FormatSealDescriptor(firmware::MakeSealDescriptor(first.split_id, 3, 5, secret));
}

bool Contains(const std::string& haystack, ByteView needle) {
  return haystack.find(AsStringView(needle)) != std::string::npos;
}

// The restore drill: keys and ciphertexts made, backed up, token and store destroyed, restored
// onto a new token, and everything works as before. (SoftHSM2 leaves CKA_VALUE_LEN at 0 on the
// unwrapped domain key; hal/pkcs11_policy.cc accepts that for the DK as for customer keys.)
TEST_CASE("backup: the restore drill brings back every key onto a new token",
          "[softhsm][provisioning]") {
  BackupWorld world;
  const auto started = std::chrono::steady_clock::now();
  Provisioned p = ProvisionAndBackUp(world);
  const auto backed_up = std::chrono::steady_clock::now();
  CHECK(p.backup.header.token_label == kLabel);
  CHECK(HexEncode(p.backup.header.split_id) == p.ceremony.split_id);
  CHECK(p.backup.header.threshold == 3);
  CHECK(p.backup.header.shares == 5);
  CHECK(p.backup.header.store_epoch > 0);
  CHECK((fs::status(world.BackupPath()).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));

  DestroyTokenAndStore(world);
  const auto restore_started = std::chrono::steady_clock::now();
  RestoreResult restored =
      Must(RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {1, 3, 4}))));
  const auto restored_at = std::chrono::steady_clock::now();
  using ms = std::chrono::milliseconds;
  WARN("backup (init + keys + backup) "
       << std::chrono::duration_cast<ms>(backed_up - started).count() << " ms, restore "
       << std::chrono::duration_cast<ms>(restored_at - restore_started).count() << " ms, file "
       << p.backup.file_size << " bytes");
  CHECK(restored.token_label == kLabel);
  CHECK(restored.so_pin.size() == 32);
  CHECK_FALSE(restored.so_pin == p.ceremony.so_pin);
  CHECK(restored.keys == 2);
  CHECK(restored.header.store_epoch == p.backup.header.store_epoch);
  CHECK(ReadDescriptor(world.StorePath()) == CompleteDescriptor(p.ceremony.shares));

  // The same shares (any three) unseal the new token; the old ciphertexts decrypt; the signing key
  // is the same key.
  auto stack = OpenStack(world.Config(), Pick(p.ceremony.shares, {0, 3, 4}));
  for (const auto& [plaintext, blob] : p.sample.ciphertexts) {
    firmware::DecryptRequest d;
    d.ciphertext_blob = blob;
    auto out = Must(stack->keys->Decrypt(d));
    CHECK(ToString(out.plaintext.ExposeSecret()) == plaintext);
  }
  CHECK(Must(stack->keys->GetPublicKey({p.sample.signing_key})).public_key == p.sample.public_key);
  firmware::SignRequest s;
  s.key_id = p.sample.signing_key;
  s.message = SecretBytes::CopyFrom(AsBytes(std::string_view("signed after the restore")));
  Bytes signature = Must(stack->keys->Sign(s)).signature;
  firmware::VerifyRequest v;
  v.key_id = p.sample.signing_key;
  v.message = SecretBytes::CopyFrom(AsBytes(std::string_view("signed after the restore")));
  v.signature = signature;
  CHECK(Must(stack->keys->Verify(v)).signature_valid);
}

// A store provisioned before verifiers existed (a v1 descriptor) is backed up as it is (the user
// login judges its shares), and the restore, whose MAC proves the shares' secret, writes the
// verifier into the restored descriptor.
TEST_CASE("backup: a restore gives a store made before verifiers its verifier",
          "[softhsm][provisioning]") {
  BackupWorld world;
  const app::ApplianceConfig config = world.Config();
  CeremonyResult ceremony = Must(RunInitCeremony(config, FiveOfThree()));
  const std::string complete = CompleteDescriptor(ceremony.shares);
  CHECK(ReadDescriptor(world.StorePath()) == complete);
  const std::string v1 = "v1 threshold=3 shares=5 split=" + ceremony.split_id;
  WriteDescriptor(world.StorePath(), v1);
  BackupOptions options;
  options.shares = Pick(ceremony.shares, {0, 2, 4});
  options.so_pin = ceremony.so_pin.Clone();
  options.out_path = world.BackupPath();
  Must(RunBackup(config, options));
  CHECK(ReadDescriptor(world.StorePath()) == v1);  // a backup changes nothing in the store
  DestroyTokenAndStore(world);
  Must(RunRestore(world.Config(), RestoreWith(world, Pick(ceremony.shares, {1, 2, 3}))));
  CHECK(ReadDescriptor(world.StorePath()) == complete);
}

// The store's verifier decides before the backup's user login: shares whose secret it refuses
// (here the store's verifier was changed) never log in, and no file is written.
TEST_CASE("backup: shares whose secret the store's verifier refuses are refused before any login",
          "[softhsm][provisioning]") {
  BackupWorld world;
  const app::ApplianceConfig config = world.Config();
  CeremonyResult ceremony = Must(RunInitCeremony(config, FiveOfThree()));
  const std::string complete = CompleteDescriptor(ceremony.shares);
  WriteDescriptor(world.StorePath(), complete.substr(0, complete.find("verifier=")) +
                                         "verifier=" + std::string(64, '0'));
  BackupOptions options;
  options.shares = Pick(ceremony.shares, {0, 2, 4});
  // A wrong SO PIN too: the refusal must come before the SO login would have failed.
  options.so_pin = SecretBytes::CopyFrom(AsBytes(std::string_view("00000000")));
  options.out_path = world.BackupPath();
  auto b = RunBackup(config, options);
  REQUIRE_FALSE(b.has_value());
  CHECK(b.error().code() == StatusCode::kInvalidArgument);
  CHECK(b.error().message() == "the shares do not rebuild this appliance's unseal secret");
  CHECK_FALSE(fs::exists(world.BackupPath()));
}

TEST_CASE(
    "backup: a damaged backup, too few or foreign shares, an existing token or store are "
    "refused",
    "[softhsm][provisioning]") {
  BackupWorld world;
  Provisioned p = ProvisionAndBackUp(world);
  const std::string original = ReadAll(world.BackupPath());
  REQUIRE(original.size() == p.backup.file_size);

  SECTION("the backup holds none of the secrets that open it") {
    std::vector<std::string_view> texts;
    for (const auto& s : p.ceremony.shares) texts.push_back(AsStringView(s.ExposeSecret()));
    const SecretBytes secret = Must(firmware::CombineShares(texts));
    CHECK_FALSE(Contains(original, secret.ExposeSecret()));
    CHECK_FALSE(Contains(original, AsBytes(HexEncode(secret.ExposeSecret()))));
    CHECK_FALSE(Contains(original, firmware::BackupKekFromUnsealSecret(secret).ExposeSecret()));
    CHECK_FALSE(Contains(original, firmware::BackupMacKeyFromUnsealSecret(secret).ExposeSecret()));
    CHECK_FALSE(Contains(original, firmware::TokenPinFromUnsealSecret(secret).ExposeSecret()));
    CHECK_FALSE(Contains(original, p.ceremony.so_pin.ExposeSecret()));
    for (const auto& share : p.ceremony.shares) {
      CHECK_FALSE(Contains(original, share.ExposeSecret()));
      const auto parsed = Must(firmware::ParseShare(AsStringView(share.ExposeSecret())));
      CHECK_FALSE(Contains(original, parsed.y.ExposeSecret()));
    }
    CHECK(original.starts_with("KMSBACKUP1"));
  }

  SECTION("one byte changed anywhere: header, wrapped domain key, store, MAC") {
    DestroyTokenAndStore(world);
    const std::size_t header_at = 14;  // after the magic and the header length
    const std::size_t dk_at = original.find("created=") + 30;
    const std::size_t store_at = original.find("SQLite format 3");
    REQUIRE(store_at != std::string::npos);
    for (std::size_t at : {std::size_t{0}, header_at, dk_at, store_at, store_at + 5000,
                           original.size() - 40, original.size() - 1}) {
      INFO("byte " << at);
      std::string damaged = original;
      damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
      WriteFile(world.BackupPath(), damaged);
      auto r = RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {0, 1, 2})));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().message() == std::string(kBackupMacMismatch));
    }
    // A truncated file too.
    WriteFile(world.BackupPath(), original.substr(0, original.size() - 1));
    auto r = RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {0, 1, 2})));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == std::string(kBackupMacMismatch));
    CHECK_FALSE(fs::exists(world.StorePath()));
  }

  SECTION("two shares of a threshold of three") {
    BackupOptions options;
    options.shares = Pick(p.ceremony.shares, {1, 2});
    options.so_pin = p.ceremony.so_pin.Clone();
    options.out_path = (world.dir() / "other.backup").string();
    CHECK(RunBackup(world.Config(), options).error().message() ==
          "not enough shares: 2 of the 3 needed");
    DestroyTokenAndStore(world);
    auto r = RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {0, 4})));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == "not enough shares: 2 of the 3 needed");
  }

  SECTION("shares of another split") {
    // Another appliance's shares: a second ceremony in a world of its own.
    std::vector<SecretBytes> foreign;
    {
      BackupWorld other;
      foreign = Must(RunInitCeremony(other.Config(), FiveOfThree())).shares;
    }
    world.UseTokenDir("tokens");  // back to this world's token for the backup attempt
    BackupOptions options;
    options.shares = Pick(foreign, {0, 1, 2});
    options.so_pin = p.ceremony.so_pin.Clone();
    options.out_path = (world.dir() / "other.backup").string();
    auto b = RunBackup(world.Config(), options);
    REQUIRE_FALSE(b.has_value());
    CHECK(b.error().message() ==
          "share 1 of 3 entered: the share does not belong to this appliance (a foreign split, or "
          "another threshold or number of shares): it was refused, and the shares entered so far "
          "are kept");
    CHECK_FALSE(fs::exists(options.out_path));
    DestroyTokenAndStore(world);
    auto r = RunRestore(world.Config(), RestoreWith(world, Pick(foreign, {0, 1, 2})));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == std::string(kBackupMacMismatch));
  }

  SECTION("an existing token label or an existing store") {
    // The token of the ceremony still exists, and so does the store.
    auto r = RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {0, 1, 2})));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == "store " + world.StorePath() +
                                     " exists: restore writes a new store, refusing to replace it");
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(world.StorePath() + suffix);
    r = RunRestore(world.Config(), RestoreWith(world, Pick(p.ceremony.shares, {0, 1, 2})));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().starts_with("a token labelled 'kms-prod' already exists in slot "));
    CHECK_FALSE(fs::exists(world.StorePath()));
  }

  SECTION("a wrong SO PIN makes no backup, and an existing file is not overwritten") {
    BackupOptions options;
    options.shares = Pick(p.ceremony.shares, {0, 1, 2});
    options.so_pin = SecretBytes::CopyFrom(AsBytes(std::string_view("00000000")));
    options.out_path = (world.dir() / "other.backup").string();
    auto b = RunBackup(world.Config(), options);
    REQUIRE_FALSE(b.has_value());
    CHECK(b.error().message().starts_with("SO login: "));
    CHECK_FALSE(fs::exists(options.out_path));
    options.so_pin = p.ceremony.so_pin.Clone();
    options.out_path = world.BackupPath();
    CHECK(RunBackup(world.Config(), options).error().message() ==
          world.BackupPath() + " exists: refusing to overwrite it");
  }
}

}  // namespace
}  // namespace kms::provisioning
