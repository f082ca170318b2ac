// DoorStack: the appliance's request path for the door fuzz targets (aws_door, admin_api,
// vault_door), wired as kmsd wires it (firmware/app/appliance.cc) but over the fake HSM: a SQLite
// store in a temporary folder, the key service, users, key policies and grants (AccessControl and
// its KeyAuthorizer), access keys (AccessKeyRegistry behind RegistryAccessKeyStore), Vault tokens,
// one transit keyring ("transit"), the AWS door with the admin API and the Vault door, both
// reporting to an auditor that keeps the last request's decision.
//
// Every input starts from the same state: a store made once per process (users `admin`, `alice`
// and `bob`, their access keys, keys of four kinds with aliases, a grant, Vault tokens, a transit key,
// and ciphertexts of a canary plaintext), copied back (and everything above the HSM reopened)
// after any input that changed it. A change is seen through SQLite's `PRAGMA data_version` on a
// connection of our own, which moves whenever another connection commits.
//
// Placeholders in a request body (`$SYM`, `$BLOB`, ...) are replaced by the state's real values
// (random ids a fuzzer cannot guess), listed in `Substitute`.
//
// Thread-safety: one input at a time. Lifetime: one per process, never destroyed (`Get`).
#ifndef KMS_TESTS_FUZZ_DOOR_STACK_H_
#define KMS_TESTS_FUZZ_DOOR_STACK_H_

#include <sqlite3.h>
#include <stdlib.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/aws/appliance_operations.h"
#include "api/aws/authorization.h"
#include "api/aws/door.h"
#include "api/aws/key_service_operations.h"
#include "api/aws/registry_access_key_store.h"
#include "api/http/request_audit.h"
#include "api/vault/vault_door.h"
#include "base/encoding.h"
#include "firmware/access_keys.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "tests/api/sign_request.h"
#include "tests/support/fake_hsm.h"

namespace kms::fuzz {

[[noreturn]] inline void Violated(const char* target, const char* invariant,
                                  std::string_view detail = {}) {
  std::fprintf(stderr, "%s invariant violated: %s %.*s\n", target, invariant,
               static_cast<int>(std::min<std::size_t>(detail.size(), 300)), detail.data());
  std::abort();
}

// Setup failures are not findings: say what failed and stop.
template <typename T>
T Must(StatusOr<T> v, const char* what) {
  if (!v) {
    std::fprintf(stderr, "door stack setup failed: %s: %s\n", what, v.error().ToString().c_str());
    std::abort();
  }
  return std::move(*v);
}
inline void Must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "door stack setup failed: %s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}

inline constexpr std::string_view kAccount = "111122223333";
inline constexpr std::string_view kCanary = "door-fuzz-canary-plaintext-7f3a";
// 2026-01-01T00:00:00Z, the clock of every part.
inline constexpr std::int64_t kNowMs = 1'767'225'600'000;

// Keeps the decision of the last answered request (the door's audit record) and every intent.
struct LastDecision final : api::http::RequestAuditor {
  std::string decision;
  std::string outcome;
  std::size_t intents = 0;
  bool Ready() const override { return true; }
  Status Record(const api::http::AuditedRequest& r) override {
    if (r.outcome == api::http::kAuditOutcomeStarted) {
      ++intents;
    } else {
      decision = std::string(r.decision);
      outcome = std::string(r.outcome);
    }
    return Status::Ok();
  }
  void Clear() {
    decision.clear();
    outcome.clear();
    intents = 0;
  }
};

class DoorStack {
 public:
  struct Credentials {
    std::string id;
    std::string secret;
  };

  static DoorStack& Get() {
    static DoorStack* stack = new DoorStack();  // never destroyed: libFuzzer exits without unwinding
    return *stack;
  }

  // The state every input starts from (see the header comment).
  void BeginInput() {
    if (changed_) Reset();
    auditor_.Clear();
    version_before_ = DataVersion();
  }
  // Whether the store changed since BeginInput; remembers to restore it.
  bool EndInput() {
    const bool changed = DataVersion() != version_before_;
    changed_ = changed_ || changed;
    return changed;
  }

  api::http::HttpResponse CallAws(const Credentials& who, std::string_view target,
                                  std::string body, bool corrupt_signature = false) {
    auto req = api::testing::KmsRequest(std::string(target), std::move(body));
    api::testing::SigningParams p;
    p.access_key_id = who.id;
    p.secret = who.secret;
    p.when = Now();
    api::testing::SignRequest(req, p);
    if (corrupt_signature) {
      std::string& auth = req.headers.back().second;
      auth.back() = auth.back() == '0' ? '1' : '0';
    }
    return aws_door_->Handle(req);
  }
  api::http::HttpResponse CallVault(api::http::HttpRequest req) { return vault_door_->Handle(req); }

  // `$NAME` placeholders in `text` replaced by this state's values.
  std::string Substitute(std::string_view text) const {
    std::string out;
    out.reserve(text.size() + 64);
    for (std::size_t i = 0; i < text.size();) {
      bool replaced = false;
      if (text[i] == '$') {
        for (const auto& [name, value] : placeholders_) {
          if (text.substr(i + 1).starts_with(name)) {
            out += value;
            i += 1 + name.size();
            replaced = true;
            break;
          }
        }
      }
      if (!replaced) out += text[i++];
    }
    return out;
  }

  const Credentials& admin() const { return admin_; }
  const Credentials& alice() const { return alice_; }
  const std::vector<std::string>& aws_operations() const { return aws_operations_; }
  const std::vector<std::string>& appliance_operations() const { return appliance_operations_; }
  const LastDecision& auditor() const { return auditor_; }
  // Whether the AWS door writes an intent record before running `operation` (its
  // OperationSpec::mutating): an operation that is not may still write bookkeeping (the durable
  // reservation of GCM invocations, docs/gcm-bound.md), but changes no state a client asked for.
  bool Mutating(const std::string& operation) const { return mutating_.contains(operation); }
  // Vault tokens: an administrator, one scoped to transit/app-* for encrypt and decrypt, one whose
  // pattern matches no key.
  const std::string& admin_token() const { return admin_token_; }
  const std::string& scoped_token() const { return scoped_token_; }
  const std::string& powerless_token() const { return powerless_token_; }

  // Texts no answer may carry (unless the request itself did, or the answer's purpose is to
  // return them; see each target): the canary plaintext and its base64, every access key's secret
  // and every Vault token of the state.
  const std::vector<std::string>& secrets() const { return secrets_; }
  static std::string CanaryBase64() { return Base64Encode(AsBytes(kCanary)); }

 private:
  static std::chrono::system_clock::time_point Now() {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(kNowMs));
  }

  DoorStack() {
    char tmpl[] = "/tmp/kms-door-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir_ = tmpl;
    hsm_ = testing::NewFakeHsm();
    Open();
    MakeState();
    Close();
    std::filesystem::copy_file(dir_ / "kms.db", dir_ / "pristine.db",
                               std::filesystem::copy_options::overwrite_existing);
    Open();
    std::atexit([] { std::filesystem::remove_all(Get().dir_); });
  }

  void Open() {
    firmware::store::SqliteStoreOptions options;
    options.path = (dir_ / "kms.db").string();
    store_ = Must(firmware::store::OpenSqliteStore(options), "store");
    firmware::KeyServiceConfig service_config;
    service_config.on_destroy = &firmware::authz::AccessControl::DeleteKeyRecords;
    service_ = Must(firmware::KeyService::Open(*hsm_, *store_, clock_, service_config), "service");
    principals_ = std::make_unique<firmware::authz::PrincipalRegistry>(*store_, clock_,
                                                                       std::string(kAccount));
    access_ = std::make_unique<firmware::authz::AccessControl>(*hsm_, *store_, *principals_, clock_);
    authorizer_ = std::make_unique<api::aws::KeyAuthorizer>(*service_, *access_);
    access_keys_ = std::make_unique<firmware::AccessKeyRegistry>(*hsm_, *store_, clock_);
    access_key_store_ =
        std::make_unique<api::aws::RegistryAccessKeyStore>(*access_keys_, std::string(kAccount));
    tokens_ = std::make_unique<firmware::VaultTokenRegistry>(*hsm_, *store_, clock_);
    transit_ = std::make_unique<firmware::transit::TransitKeyring>(*service_, *store_, clock_,
                                                                   "transit");
    api::aws::OperationTable operations, appliance;
    api::aws::RegisterKeyServiceOperations(operations, *service_, *access_);
    api::aws::RegisterApplianceOperations(
        appliance, *access_keys_, *service_,
        api::aws::ApplianceInfo{"1.0.0", "dev", "us-east-1", std::string(kAccount)}, tokens_.get(),
        principals_.get());
    // The same tables on every reopen: the names stay valid for the whole process.
    if (aws_operations_.empty()) {
      aws_operations_ = operations.Names();
      appliance_operations_ = appliance.Names();
      for (const auto* table : {&operations, &appliance}) {
        for (const std::string& op : table->Names()) {
          if (table->Find(op)->mutating) mutating_.insert(op);
        }
      }
    }
    api::aws::AwsDoorConfig aws;
    aws.clock = [] { return Now(); };
    aws.observers.audit = &auditor_;
    aws_door_ = std::make_unique<api::aws::AwsDoor>(aws, *access_key_store_, *authorizer_,
                                                    std::move(operations), std::move(appliance));
    api::vault::VaultDoorConfig vault;
    vault.clock = &clock_;
    vault.access = access_.get();
    vault.observers.audit = &auditor_;
    vault_door_ = std::make_unique<api::vault::VaultDoor>(
        vault, *tokens_, std::vector<firmware::transit::TransitKeyring*>{transit_.get()});
    if (sqlite3_open_v2(options.path.c_str(), &watch_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "door stack setup failed: watch connection\n");
      std::abort();
    }
  }

  void Close() {
    sqlite3_close(watch_);
    watch_ = nullptr;
    vault_door_.reset();
    aws_door_.reset();
    transit_.reset();
    tokens_.reset();
    access_key_store_.reset();
    access_keys_.reset();
    authorizer_.reset();
    access_.reset();
    principals_.reset();
    service_.reset();
    store_.reset();
  }

  void Reset() {
    Close();
    for (const char* suffix : {"-wal", "-shm"}) {
      std::error_code ignored;
      std::filesystem::remove(dir_ / (std::string("kms.db") + suffix), ignored);
    }
    std::filesystem::copy_file(dir_ / "pristine.db", dir_ / "kms.db",
                               std::filesystem::copy_options::overwrite_existing);
    Open();
    changed_ = false;
  }

  std::int64_t DataVersion() {
    sqlite3_stmt* st = nullptr;
    std::int64_t v = -1;
    if (sqlite3_prepare_v2(watch_, "PRAGMA data_version", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
  }

  // An administrator call during setup that must succeed; its JSON answer.
  boost::json::object Setup(std::string_view target, const boost::json::object& body) {
    const auto r = CallAws(admin_, target, boost::json::serialize(body));
    if (r.status != 200) {
      std::fprintf(stderr, "door stack setup failed: %.*s: %u %s\n",
                   static_cast<int>(target.size()), target.data(), r.status, r.body.c_str());
      std::abort();
    }
    return boost::json::parse(r.body).as_object();
  }
  static std::string Str(const boost::json::value& v) { return std::string(v.as_string()); }

  void MakeState() {
    Must(principals_->CreateUser("admin", true, ""), "user admin");
    Must(principals_->CreateUser("alice", false, ""), "user alice");
    Must(principals_->CreateUser("bob", false, ""), "user bob");
    auto admin_key = Must(access_keys_->Create("admin", true), "admin key");
    auto alice_key = Must(access_keys_->Create("alice", false), "alice key");
    auto bob_key = Must(access_keys_->Create("bob", false), "bob key");
    admin_ = {admin_key.access_key_id, ToString(admin_key.secret.ExposeSecret())};
    alice_ = {alice_key.access_key_id, ToString(alice_key.secret.ExposeSecret())};
    secrets_ = {admin_.secret, alice_.secret, ToString(bob_key.secret.ExposeSecret()),
                std::string(kCanary), CanaryBase64()};

    // Keys of each kind, each behind an alias.
    auto key = [&](std::string_view spec, std::string_view usage, std::string_view alias) {
      boost::json::object body{{"KeySpec", spec}, {"KeyUsage", usage}, {"Description", alias}};
      const std::string id = Str(Setup("CreateKey", body).at("KeyMetadata").at("KeyId"));
      Setup("CreateAlias", {{"AliasName", std::string("alias/") + std::string(alias)},
                            {"TargetKeyId", id}});
      return id;
    };
    const std::string sym = key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "fuzz-sym");
    const std::string ecc = key("ECC_NIST_P256", "SIGN_VERIFY", "fuzz-ecc");
    const std::string hmac = key("HMAC_256", "GENERATE_VERIFY_MAC", "fuzz-hmac");
    const std::string rsa = key("RSA_2048", "ENCRYPT_DECRYPT", "fuzz-rsa");
    const std::string blob = Str(Setup("Encrypt", {{"KeyId", sym},
                                                   {"Plaintext", CanaryBase64()},
                                                   {"EncryptionContext", {{"app", "fuzz"}}}})
                                     .at("CiphertextBlob"));
    const std::string message = Base64Encode(AsBytes("fuzz message"));
    const std::string sig = Str(Setup("Sign", {{"KeyId", ecc},
                                               {"Message", message},
                                               {"SigningAlgorithm", "ECDSA_SHA_256"}})
                                    .at("Signature"));
    const std::string mac = Str(
        Setup("GenerateMac", {{"KeyId", hmac}, {"Message", message}, {"MacAlgorithm", "HMAC_SHA_256"}})
            .at("Mac"));
    // A grant for bob (alice must have no right at all: the targets' oracles rely on it).
    const auto grant = Setup("CreateGrant", {{"KeyId", sym},
                                             {"GranteePrincipal", "arn:aws:iam::111122223333:user/bob"},
                                             {"RetiringPrincipal", "arn:aws:iam::111122223333:user/bob"},
                                             {"Operations", boost::json::array{"Encrypt", "Decrypt"}}});

    // Vault: three tokens and a transit key with a canary ciphertext.
    auto token = [&](std::vector<std::string> patterns, std::vector<std::string> ops, bool admin) {
      firmware::VaultTokenSpec spec;
      spec.display_name = "fuzz";
      spec.key_patterns = std::move(patterns);
      spec.operations = std::move(ops);
      spec.administrator = admin;
      return Must(tokens_->Create(spec), "vault token");
    };
    auto root = token({"*"}, {"*"}, true);
    auto scoped = token({"transit/app-*"}, {"encrypt", "decrypt"}, false);
    auto none = token({"transit/none-*"}, {"encrypt"}, false);
    admin_token_ = ToString(root.token.ExposeSecret());
    scoped_token_ = ToString(scoped.token.ExposeSecret());
    powerless_token_ = ToString(none.token.ExposeSecret());
    for (const auto* t : {&admin_token_, &scoped_token_, &powerless_token_}) secrets_.push_back(*t);
    Must(transit_->CreateKey("app-key", {}), "transit key");
    firmware::transit::EncryptInput in;
    in.plaintext = SecretBytes::CopyFrom(AsBytes(kCanary));
    const auto vblob = Must(transit_->Encrypt("app-key", in), "transit encrypt");

    placeholders_ = {
        {"SYMARN", "arn:aws:kms:us-east-1:111122223333:key/" + sym},
        {"SYM", sym},
        {"ECC", ecc},
        {"HMAC", hmac},
        {"RSA", rsa},
        {"BLOB", blob},
        {"MSG", message},
        {"SIG", sig},
        {"MAC", mac},
        {"GRANTID", Str(grant.at("GrantId"))},
        {"GRANTTOKEN", Str(grant.at("GrantToken"))},
        {"AKID", alice_.id},
        {"BOBKEY", bob_key.access_key_id},
        {"ACCESSOR", scoped.accessor},
        {"VBLOB", vblob.ciphertext},
    };
  }

  std::filesystem::path dir_;
  std::unique_ptr<testing::FakeHsm> hsm_;
  firmware::ManualClock clock_{kNowMs};
  LastDecision auditor_;
  std::unique_ptr<firmware::store::MetadataStore> store_;
  std::unique_ptr<firmware::KeyService> service_;
  std::unique_ptr<firmware::authz::PrincipalRegistry> principals_;
  std::unique_ptr<firmware::authz::AccessControl> access_;
  std::unique_ptr<api::aws::KeyAuthorizer> authorizer_;
  std::unique_ptr<firmware::AccessKeyRegistry> access_keys_;
  std::unique_ptr<api::aws::RegistryAccessKeyStore> access_key_store_;
  std::unique_ptr<firmware::VaultTokenRegistry> tokens_;
  std::unique_ptr<firmware::transit::TransitKeyring> transit_;
  std::unique_ptr<api::aws::AwsDoor> aws_door_;
  std::unique_ptr<api::vault::VaultDoor> vault_door_;
  sqlite3* watch_ = nullptr;
  std::int64_t version_before_ = 0;
  bool changed_ = false;

  Credentials admin_, alice_;
  std::string admin_token_, scoped_token_, powerless_token_;
  std::vector<std::string> aws_operations_, appliance_operations_;
  std::set<std::string> mutating_;
  std::vector<std::pair<std::string, std::string>> placeholders_;  // longest names first
  std::vector<std::string> secrets_;
};

}  // namespace kms::fuzz

#endif  // KMS_TESTS_FUZZ_DOOR_STACK_H_
