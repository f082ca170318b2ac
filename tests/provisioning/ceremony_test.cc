// The provisioning ceremony (provisioning/ceremony.h) on a real SoftHSM2 module, each test in a
// token directory and SoftHSM2 configuration of its own: the shares rebuild the PIN that opens the
// new token, the store is sealed with the shares' descriptor, the bootstrap administrator key
// works, wrong PINs do not log in, every refusal comes with its exact message and before anything
// is touched, and the real `kms-provision` binary prints the ceremony as JSON on stdout and nowhere
// else.
#include "provisioning/ceremony.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "firmware/access_keys.h"
#include "firmware/app/appliance_config.h"
#include "firmware/clock.h"
#include "firmware/custodian_shares.h"
#include "firmware/seal.h"
#include "firmware/store/sqlite_store.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/module.h"
#include "provisioning/dev_token.h"
#include "tests/provisioning/provisioning_test_util.h"

extern char** environ;

namespace kms::provisioning {
namespace {

using test::FiveOfThree;
using test::MakeTempDir;
using test::Must;
using test::MustOk;
using test::ReadAll;
using test::WriteFile;

namespace fs = std::filesystem;
namespace store = firmware::store;

using test::kDomainKeyLabel;
using test::kLabel;

// A folder with a SoftHSM2 configuration and token directory of its own (SOFTHSM2_CONF points at
// it: process-global, so one world per test case) and production kmsd.toml files pointing into it.
class CeremonyWorld {
 public:
  CeremonyWorld() : dir_(MakeTempDir("kms-ceremony")) {
    test::UseSoftHsmTokenDir(dir_, dir_ / "tokens");
  }
  ~CeremonyWorld() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  CeremonyWorld(const CeremonyWorld&) = delete;
  CeremonyWorld& operator=(const CeremonyWorld&) = delete;

  const fs::path& dir() const { return dir_; }
  std::string StorePath(const std::string& name = "kms.db") const { return (dir_ / name).string(); }

  // Writes <name> and returns its path.
  std::string WriteConfig(const std::string& label = kLabel, const std::string& store = "kms.db",
                          const std::string& name = "kmsd.toml") const {
    const fs::path path = dir_ / name;
    WriteFile(path,
              "mode = \"production\"\n"
              "[account]\nregion = \"eu-west-3\"\nid = \"444455556666\"\n"
              "[hsm]\nmodule = \"" +
                  std::string(kSoftHsmModulePath) + "\"\ntoken_label = \"" + label +
                  "\"\ndomain_key_label = \"" + kDomainKeyLabel + "\"\n[store]\npath = \"" +
                  StorePath(store) + "\"\n");
    return path.string();
  }
  app::ApplianceConfig Config(const std::string& label = kLabel,
                              const std::string& store = "kms.db") const {
    return Must(app::LoadConfigFile(WriteConfig(label, store)));
  }

 private:
  fs::path dir_;
};

std::vector<std::string_view> Views(const std::vector<SecretBytes>& shares,
                                    std::initializer_list<std::size_t> indexes) {
  std::vector<std::string_view> out;
  for (std::size_t i : indexes) out.push_back(AsStringView(shares.at(i).ExposeSecret()));
  return out;
}

StatusOr<std::unique_ptr<hal::Hsm>> OpenWithPin(const std::string& label, const std::string& serial,
                                                SecretBytes pin) {
  hal::Pkcs11HsmConfig config;
  config.module_path = kSoftHsmModulePath;
  config.token_label = label;
  config.token_serial = serial;
  config.user_pin = std::move(pin);
  config.domain_key_label = kDomainKeyLabel;
  return hal::OpenPkcs11Hsm(std::move(config));
}

std::unique_ptr<store::MetadataStore> OpenStore(const std::string& path) {
  store::SqliteStoreOptions options;
  options.path = path;
  return Must(store::OpenSqliteStore(options));
}

// Initialised tokens the module sees, by label (loads and finalises the module: call it only while
// nothing else in the process has the module open).
std::vector<std::string> TokenLabels() {
  auto module = Must(pkcs11::Module::Load(kSoftHsmModulePath));
  std::vector<std::string> labels;
  for (CK_SLOT_ID slot : Must(module->SlotList(true))) {
    auto info = Must(module->TokenInfo(slot));
    if ((info.flags & CKF_TOKEN_INITIALIZED) != 0) {
      labels.push_back(pkcs11::TrimPadded(info.label, sizeof(info.label)));
    }
  }
  return labels;
}

TEST_CASE("ceremony: any 3 of 5 shares rebuild the PIN that opens the new token",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  CeremonyResult result = Must(RunInitCeremony(world.Config(), FiveOfThree()));
  CHECK(result.token_label == kLabel);
  CHECK_FALSE(result.token_serial.empty());
  CHECK(result.so_pin.size() == 32);
  CHECK(result.threshold == 3);
  REQUIRE(result.shares.size() == 5);
  CHECK(result.region == "eu-west-3");
  CHECK(result.account_id == "444455556666");
  REQUIRE(result.warnings.size() == 1);  // SoftHSM2: back up the token directory
  CHECK(result.warnings[0].find((world.dir() / "tokens").string()) != std::string::npos);

  // Every subset of three, and more than three, rebuilds one and the same secret.
  std::optional<SecretBytes> secret;
  for (std::size_t a = 0; a < 5; ++a) {
    for (std::size_t b = a + 1; b < 5; ++b) {
      for (std::size_t c = b + 1; c < 5; ++c) {
        SecretBytes rebuilt = Must(firmware::CombineShares(Views(result.shares, {a, b, c})));
        CHECK(rebuilt.size() == firmware::kUnsealSecretSize);
        if (!secret) secret = rebuilt.Clone();
        CHECK(rebuilt == *secret);
      }
    }
  }
  CHECK(Must(firmware::CombineShares(Views(result.shares, {4, 0, 2, 1}))) == *secret);
  CHECK(Must(firmware::CombineShares(Views(result.shares, {0, 1, 2, 3, 4}))) == *secret);

  // Its PIN logs in; the domain key is there (the HAL finds it and checks its policy on open, and
  // wraps under it) and the token works.
  auto hsm = Must(OpenWithPin(result.token_label, result.token_serial,
                              firmware::TokenPinFromUnsealSecret(*secret)));
  auto key = Must(hsm->GenerateKey(hal::KeyAlgorithm::kAes256, hal::KeyPurpose::kEncryptDecrypt));
  auto sealed = Must(hsm->EncryptAesGcm(key, AsBytes("provisioned"), AsBytes("aad")));
  auto opened =
      Must(hsm->DecryptAesGcm(key, sealed.iv, sealed.ciphertext, sealed.tag, AsBytes("aad")));
  CHECK(AsStringView(opened.ExposeSecret()) == "provisioned");
  auto wrapped = Must(hsm->WrapKey(key));
  auto unwrapped = Must(hsm->UnwrapKey(wrapped));
  CHECK(AsStringView(Must(hsm->DecryptAesGcm(unwrapped, sealed.iv, sealed.ciphertext, sealed.tag,
                                             AsBytes("aad")))
                         .ExposeSecret()) == "provisioned");
}

TEST_CASE("ceremony: the store holds the seal descriptor of the shares",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  CeremonyResult result = Must(RunInitCeremony(world.Config(), FiveOfThree()));
  auto metadata = OpenStore(world.StorePath());
  auto descriptor = Must(firmware::ReadSealDescriptor(*metadata));
  REQUIRE(descriptor.has_value());
  CHECK(descriptor->threshold == 3);
  CHECK(descriptor->shares == 5);
  CHECK(HexEncode(descriptor->split_id) == result.split_id);
  for (const SecretBytes& share : result.shares) {
    firmware::CustodianShare parsed =
        Must(firmware::ParseShare(AsStringView(share.ExposeSecret())));
    CHECK(parsed.split_id == descriptor->split_id);
    CHECK(parsed.threshold == 3);
  }
  // A combiner bound to the descriptor (as the sealed boot uses it) accepts the shares, and the
  // descriptor's verifier vouches for the secret they rebuild, and for no other.
  firmware::ShareCombiner combiner(firmware::ExpectedShares(*descriptor));
  for (std::size_t i : {std::size_t{3}, std::size_t{1}, std::size_t{0}})
    MustOk(combiner.Add(AsStringView(result.shares[i].ExposeSecret())));
  REQUIRE(combiner.secret().has_value());
  REQUIRE(descriptor->verifier.has_value());
  CHECK(firmware::VerifyUnsealSecret(*descriptor, *combiner.secret()));
  CHECK_FALSE(firmware::VerifyUnsealSecret(*descriptor, SecretBytes(firmware::kUnsealSecretSize)));
  CHECK(*descriptor->commitment ==
        firmware::ShareCommitment(descriptor->split_id, 3, *combiner.secret()));
}

TEST_CASE("ceremony: the bootstrap administrator access key exists and opens",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  CeremonyResult result = Must(RunInitCeremony(world.Config(), FiveOfThree()));
  CHECK(result.access_key_id.starts_with("AKMS"));
  CHECK(result.access_key_id.size() == firmware::kAccessKeyIdLength);
  CHECK(result.secret_access_key.size() == firmware::kAccessKeySecretLength);

  SecretBytes secret = Must(firmware::CombineShares(Views(result.shares, {0, 2, 4})));
  auto hsm = Must(OpenWithPin(result.token_label, result.token_serial,
                              firmware::TokenPinFromUnsealSecret(secret)));
  auto metadata = OpenStore(world.StorePath());
  firmware::SystemClock clock;
  firmware::AccessKeyRegistry registry(*hsm, *metadata, clock);
  auto listed = Must(registry.List("", 10));
  REQUIRE(listed.items.size() == 1);
  CHECK(listed.items[0].access_key_id == result.access_key_id);
  CHECK(listed.items[0].principal == "admin");
  CHECK(listed.items[0].administrator);
  CHECK(listed.items[0].active);
  firmware::ResolvedAccessKey resolved = Must(registry.Lookup(result.access_key_id));
  CHECK(resolved.administrator);
  CHECK(resolved.secret == result.secret_access_key);
  // kmsd's bootstrap finds this key instead of making another.
  CHECK(Must(registry.EnsureBootstrapAdmin("admin")) == result.access_key_id);
}

TEST_CASE("ceremony: a wrong PIN does not log in", "[softhsm][provisioning]") {
  CeremonyWorld world;
  CeremonyResult result = Must(RunInitCeremony(world.Config(), FiveOfThree()));
  // Two shares are not enough to rebuild anything.
  auto two = firmware::CombineShares(Views(result.shares, {0, 1}));
  REQUIRE_FALSE(two.has_value());
  CHECK(two.error().message() == "not enough shares: 2 of the 3 needed");
  // The PIN of any other secret is refused by the token.
  const Status refused(StatusCode::kUnauthenticated, "C_Login: CKR_PIN_INCORRECT");
  SecretBytes other(firmware::kUnsealSecretSize);
  other.ExposeSecretMutable()[0] = 1;
  CHECK(OpenWithPin(result.token_label, result.token_serial,
                    firmware::TokenPinFromUnsealSecret(other))
            .error() == refused);
  // Neither the SO PIN nor the secret itself (rather than its PIN) is the user PIN.
  CHECK(OpenWithPin(result.token_label, result.token_serial, result.so_pin.Clone()).error() ==
        refused);
  SecretBytes secret = Must(firmware::CombineShares(Views(result.shares, {1, 2, 3})));
  CHECK(OpenWithPin(result.token_label, result.token_serial, secret.Clone()).error() == refused);
  // The right one does.
  MustOk(Must(OpenWithPin(result.token_label, result.token_serial,
                          firmware::TokenPinFromUnsealSecret(secret)))
             ->CheckHealth());
}

TEST_CASE("ceremony: a second ceremony on the same label is refused", "[softhsm][provisioning]") {
  CeremonyWorld world;
  CeremonyResult first = Must(RunInitCeremony(world.Config(), FiveOfThree()));
  CK_SLOT_ID slot = 0;
  {
    auto module = Must(pkcs11::Module::Load(kSoftHsmModulePath));
    slot = Must(module->FindToken(kLabel));
  }
  // A new store, so only the token can be the reason.
  auto second = RunInitCeremony(world.Config(kLabel, "other.db"), FiveOfThree());
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error() ==
        AlreadyExistsError("a token labelled 'kms-prod' already exists in slot " +
                           std::to_string(slot) + ": refusing to initialise over it"));
  CHECK(TokenLabels() == std::vector<std::string>{kLabel});
  CHECK_FALSE(fs::exists(world.StorePath("other.db")));  // refused before the store was opened
  // The first token is untouched: its shares still open it.
  SecretBytes secret = Must(firmware::CombineShares(Views(first.shares, {0, 1, 2})));
  MustOk(Must(OpenWithPin(kLabel, first.token_serial, firmware::TokenPinFromUnsealSecret(secret)))
             ->CheckHealth());
}

TEST_CASE("ceremony: a store already provisioned is refused before any token is made",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  Must(RunInitCeremony(world.Config(), FiveOfThree()));
  auto again = RunInitCeremony(world.Config("kms-other"), FiveOfThree());
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error() ==
        AlreadyExistsError("store " + world.StorePath() + " is already provisioned"));
  CHECK(TokenLabels() == std::vector<std::string>{kLabel});
}

TEST_CASE("ceremony: a store that is not empty is refused before any token is made",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  {
    auto metadata = OpenStore(world.StorePath());
    auto txn = Must(metadata->Begin());
    MustOk(txn->PutMeta("vault.token.0123", "a token of another appliance"));
    MustOk(txn->Commit());
  }
  auto refused = RunInitCeremony(world.Config(), FiveOfThree());
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() ==
        FailedPreconditionError("store " + world.StorePath() +
                                " is not empty (it holds keys, access keys or Vault records): the "
                                "ceremony needs a new or empty store"));
  CHECK(TokenLabels().empty());
  // A store that exists but is empty (opened once, nothing written) is fine.
  OpenStore(world.StorePath("empty.db"));
  Must(RunInitCeremony(world.Config(kLabel, "empty.db"), FiveOfThree()));
}

TEST_CASE("ceremony: threshold and shares out of range are refused with SplitSecret's message",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  const app::ApplianceConfig config = world.Config();
  struct Case {
    std::size_t threshold, shares;
    std::string message;
  };
  const std::vector<Case> cases = {
      {0, 5, "the threshold must be 1 to the number of shares (5), got 0"},
      {6, 5, "the threshold must be 1 to the number of shares (5), got 6"},
      {3, 0, "the number of shares must be 1 to 255, got 0"},
      {3, 256, "the number of shares must be 1 to 255, got 256"},
      {1, 5,
       "a threshold of 1 with more than one share hands every custodian the whole secret: use a "
       "threshold of at least 2, or a single share"},
  };
  for (const Case& c : cases) {
    CeremonyOptions options;
    options.threshold = c.threshold;
    options.shares = c.shares;
    INFO("threshold " << c.threshold << " of " << c.shares);
    auto refused = RunInitCeremony(config, options);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == InvalidArgumentError(c.message));
    // Exactly what SplitSecret itself says.
    auto split = firmware::SplitSecret(
        SecretBytes(32), c.threshold, c.shares,
        [](std::size_t n) -> StatusOr<SecretBytes> { return SecretBytes(n); });
    REQUIRE_FALSE(split.has_value());
    CHECK(refused.error() == split.error());
    CHECK(CheckCeremonyRequest(config, options) == refused.error());
  }
  // Nothing was touched.
  CHECK(TokenLabels().empty());
  CHECK_FALSE(fs::exists(world.StorePath()));
  // The edges that are allowed: one share of threshold 1, and 255 of 255.
  CeremonyOptions single;
  single.threshold = 1;
  single.shares = 1;
  CHECK(CheckCeremonyRequest(config, single).ok());
  CeremonyOptions most;
  most.threshold = 255;
  most.shares = 255;
  CHECK(CheckCeremonyRequest(config, most).ok());
}

TEST_CASE("ceremony: a non-production configuration is refused", "[softhsm][provisioning]") {
  CeremonyWorld world;
  const fs::path path = world.dir() / "dev.toml";
  WriteFile(path, "mode = \"dev\"\n");
  const app::ApplianceConfig dev = Must(app::LoadConfigFile(path.string()));
  auto refused = RunInitCeremony(dev, FiveOfThree());
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() ==
        InvalidArgumentError(path.string() +
                             ": the provisioning ceremony is for production configurations "
                             "(mode = \"production\"); this one is in dev mode"));
  // A production file that names a serial (the module picks it) or no label is refused too.
  app::ApplianceConfig serial = world.Config();
  serial.token_serial = "0123456789abcdef";
  CHECK(CheckCeremonyRequest(serial, FiveOfThree()).code() == StatusCode::kInvalidArgument);
  app::ApplianceConfig no_label = world.Config();
  no_label.token_label.clear();
  no_label.token_serial = "0123456789abcdef";
  CHECK(CheckCeremonyRequest(no_label, FiveOfThree()) ==
        InvalidArgumentError(no_label.source +
                             ": hsm.token_label: the ceremony needs the label of the token it "
                             "makes"));
  CHECK(TokenLabels().empty());
}

TEST_CASE("ceremony output: text numbers every share and JSON escapes what it must",
          "[softhsm][provisioning]") {
  CeremonyResult r;
  r.token_label = "a \"quoted\\label\"\n";
  r.token_serial = "0123456789abcdef";
  r.so_pin = SecretBytes::CopyFrom(AsBytes("00112233445566778899aabbccddeeff"));
  r.threshold = 2;
  r.shares.push_back(SecretBytes::CopyFrom(AsBytes("kms1-first")));
  r.shares.push_back(SecretBytes::CopyFrom(AsBytes("kms1-second")));
  r.shares.push_back(SecretBytes::CopyFrom(AsBytes("kms1-third")));
  r.split_id = "0011223344556677";
  r.access_key_id = "AKMSABCDEFGHIJKLMNOP";
  r.secret_access_key = SecretBytes::CopyFrom(AsBytes("abc/def+ghi"));
  r.region = "eu-west-3";
  r.account_id = "444455556666";

  const std::string text(AsStringView(FormatCeremonyText(r).ExposeSecret()));
  CHECK(text.find("  share 1: kms1-first\n") != std::string::npos);
  CHECK(text.find("  share 2: kms1-second\n") != std::string::npos);
  CHECK(text.find("  share 3: kms1-third\n") != std::string::npos);
  CHECK(text.find("any 2 of these 3") != std::string::npos);
  CHECK(text.find("SO PIN:  00112233445566778899aabbccddeeff\n") != std::string::npos);
  CHECK(text.find("AWS_ACCESS_KEY_ID=AKMSABCDEFGHIJKLMNOP\n") != std::string::npos);
  CHECK(text.find("AWS_SECRET_ACCESS_KEY=abc/def+ghi\n") != std::string::npos);
  CHECK(text.find("WARNING: nothing of this is stored") != std::string::npos);

  const std::string json(AsStringView(FormatCeremonyJson(r).ExposeSecret()));
  CHECK(json.back() == '\n');
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(json, ec);
  REQUIRE_FALSE(ec);
  const boost::json::object& o = parsed.as_object();
  CHECK(o.size() == 10);
  CHECK(o.at("token_label").as_string() == "a \"quoted\\label\"\n");
  CHECK(o.at("threshold").as_int64() == 2);
  REQUIRE(o.at("shares").as_array().size() == 3);
  CHECK(o.at("shares").as_array()[2].as_string() == "kms1-third");
  CHECK(o.at("secret_access_key").as_string() == "abc/def+ghi");
}

// ---- the real binary --------------------------------------------------------------------------

struct ToolRun {
  int exit_status = -1;
  std::string out;
  std::string err;
};

// Runs kms-provision with `args`, stdout and stderr captured into files of `capture` (a folder
// apart from the world's, which is searched for secrets afterwards).
ToolRun RunTool(const std::vector<std::string>& args, const fs::path& capture) {
  const fs::path out = capture / "stdout";
  const fs::path err = capture / "stderr";
  posix_spawn_file_actions_t actions;
  REQUIRE(posix_spawn_file_actions_init(&actions) == 0);
  REQUIRE(posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
                                           O_WRONLY | O_CREAT | O_TRUNC, 0600) == 0);
  REQUIRE(posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(),
                                           O_WRONLY | O_CREAT | O_TRUNC, 0600) == 0);
  std::vector<std::string> argv_strings = {KMS_PROVISION_PATH};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, KMS_PROVISION_PATH, &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  ToolRun run;
  run.exit_status = WEXITSTATUS(status);
  run.out = ReadAll(out);
  run.err = ReadAll(err);
  return run;
}

TEST_CASE("kms-provision init --format json prints the ceremony on stdout and nowhere else",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  const fs::path capture = MakeTempDir("kms-ceremony-capture");
  const std::string config = world.WriteConfig();
  ToolRun run =
      RunTool({"init", "--config", config, "--shares", "5", "--threshold", "3", "--format", "json"},
              capture);
  INFO(run.err);
  REQUIRE(run.exit_status == 0);

  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(run.out, ec);
  REQUIRE_FALSE(ec);
  const boost::json::object& o = parsed.as_object();
  CHECK(o.size() == 10);
  CHECK(o.at("token_label").as_string() == kLabel);
  const std::string serial(o.at("token_serial").as_string());
  CHECK_FALSE(serial.empty());
  const std::string so_pin(o.at("so_pin").as_string());
  CHECK(so_pin.size() == 32);
  CHECK(o.at("threshold").as_int64() == 3);
  std::vector<std::string> shares;
  for (const auto& s : o.at("shares").as_array()) shares.emplace_back(s.as_string());
  REQUIRE(shares.size() == 5);
  const std::string split_id(o.at("split_id").as_string());
  const std::string access_key_id(o.at("access_key_id").as_string());
  const std::string secret_access_key(o.at("secret_access_key").as_string());
  CHECK(access_key_id.starts_with("AKMS"));
  CHECK(secret_access_key.size() == firmware::kAccessKeySecretLength);
  CHECK(o.at("region").as_string() == "eu-west-3");
  CHECK(o.at("account_id").as_string() == "444455556666");
  // stderr carries the SoftHSM2 backup warning and nothing secret.
  CHECK(run.err.find("warning: the token is a SoftHSM2 token") != std::string::npos);

  // The shares work: they rebuild the PIN, and the store's descriptor names their split.
  std::vector<std::string_view> three = {shares[4], shares[2], shares[0]};
  SecretBytes secret = Must(firmware::CombineShares(three));
  SecretBytes user_pin = firmware::TokenPinFromUnsealSecret(secret);
  {
    auto hsm = Must(OpenWithPin(kLabel, serial, user_pin.Clone()));
    auto metadata = OpenStore(world.StorePath());
    auto descriptor = Must(firmware::ReadSealDescriptor(*metadata));
    REQUIRE(descriptor.has_value());
    CHECK(HexEncode(descriptor->split_id) == split_id);
    firmware::SystemClock clock;
    firmware::AccessKeyRegistry registry(*hsm, *metadata, clock);
    CHECK(AsStringView(Must(registry.Lookup(access_key_id)).secret.ExposeSecret()) ==
          secret_access_key);
  }

  // stdout was the only place: no file under the world (token directory, store and its -wal/-shm,
  // configurations), nor stderr, holds a share (as text, as bare hex or as raw bytes), the SO PIN,
  // the administrator's secret, the unseal secret or the user PIN.
  std::vector<std::string> needles = {so_pin, secret_access_key,
                                      std::string(AsStringView(secret.ExposeSecret())),
                                      std::string(AsStringView(user_pin.ExposeSecret()))};
  for (const std::string& share : shares) {
    needles.push_back(share);
    std::string hex;
    for (char ch : share.substr(5)) {
      if (ch != '-') hex.push_back(ch);
    }
    needles.push_back(hex);
    needles.push_back(ToString(Must(HexDecode(hex))));
  }
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(world.dir())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string content = ReadAll(entry.path());
    for (const std::string& needle : needles) {
      INFO(entry.path().string());
      CHECK(content.find(needle) == std::string::npos);
    }
  }
  CHECK(files >= 4);  // softhsm2.conf, kmsd.toml, the store, the token's files
  for (const std::string& needle : needles) CHECK(run.err.find(needle) == std::string::npos);

  std::error_code remove_ec;
  fs::remove_all(capture, remove_ec);
}

TEST_CASE("kms-provision exits 2 on usage and configuration errors and 1 on a refused ceremony",
          "[softhsm][provisioning]") {
  CeremonyWorld world;
  const fs::path capture = MakeTempDir("kms-ceremony-capture");
  const std::string config = world.WriteConfig();

  ToolRun no_threshold = RunTool({"init", "--config", config, "--shares", "5"}, capture);
  CHECK(no_threshold.exit_status == 2);
  CHECK(no_threshold.out.empty());
  CHECK(no_threshold.err.starts_with("kms-provision: "));
  CHECK(std::count(no_threshold.err.begin(), no_threshold.err.end(), '\n') == 1);

  ToolRun bad_format =
      RunTool({"init", "--config", config, "--shares", "5", "--threshold", "3", "--format", "xml"},
              capture);
  CHECK(bad_format.exit_status == 2);

  ToolRun bad_shape =
      RunTool({"init", "--config", config, "--shares", "5", "--threshold", "1"}, capture);
  CHECK(bad_shape.exit_status == 2);
  CHECK(bad_shape.err ==
        "kms-provision: a threshold of 1 with more than one share hands every custodian the whole "
        "secret: use a threshold of at least 2, or a single share\n");

  const fs::path dev = world.dir() / "dev.toml";
  WriteFile(dev, "mode = \"dev\"\n");
  ToolRun not_production =
      RunTool({"init", "--config", dev.string(), "--shares", "5", "--threshold", "3"}, capture);
  CHECK(not_production.exit_status == 2);
  CHECK(not_production.err == "kms-provision: " + dev.string() +
                                  ": the provisioning ceremony is for production configurations "
                                  "(mode = \"production\"); this one is in dev mode\n");
  CHECK(TokenLabels().empty());

  ToolRun made =
      RunTool({"init", "--config", config, "--shares", "3", "--threshold", "2"}, capture);
  INFO(made.err);
  REQUIRE(made.exit_status == 0);
  CHECK(made.out.find("  share 3: kms1-") != std::string::npos);
  CHECK(made.out.find("WARNING: nothing of this is stored") != std::string::npos);
  CK_SLOT_ID slot = 0;
  {
    auto module = Must(pkcs11::Module::Load(kSoftHsmModulePath));
    slot = Must(module->FindToken(kLabel));
  }
  ToolRun again =
      RunTool({"init", "--config", config, "--shares", "3", "--threshold", "2"}, capture);
  CHECK(again.exit_status == 1);
  CHECK(again.out.empty());
  CHECK(again.err == "kms-provision: a token labelled 'kms-prod' already exists in slot " +
                         std::to_string(slot) + ": refusing to initialise over it\n");

  std::error_code remove_ec;
  fs::remove_all(capture, remove_ec);
}

}  // namespace
}  // namespace kms::provisioning
