// VaultTokenRegistry on the fake HSM and a real SQLite store in a temporary folder: the token's
// shape, create/lookup, only SHA-256(token) stored (neither meta values nor the database file hold
// the token), authorization by key pattern and operation, expiry (deleted on first sight), renewal
// (increment 0, capped increments, explicit max ttl, non-renewable), revocation by token and by
// accessor, listing in pages, and every error a caller can see.
#include "firmware/vault_tokens.h"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"
#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace kms::firmware {
namespace {

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t kHourMs = 3'600'000;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kms-vt-XXXXXX").string();
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

struct Fixture {
  Fixture() : clock(kStartMs) {
    hsm = kms::testing::NewFakeHsm();
    store::SqliteStoreOptions options;
    options.path = dir.File("kms.db");
    auto opened = store::OpenSqliteStore(options);
    if (!opened) FAIL(opened.error().ToString());
    store = std::move(*opened);
    registry = std::make_unique<VaultTokenRegistry>(*hsm, *store, clock);
  }
  ~Fixture() {
    registry.reset();
    store.reset();
  }
  CreatedVaultToken Create(VaultTokenSpec spec) {
    auto made = registry->Create(spec);
    if (!made) FAIL(made.error().ToString());
    return std::move(*made);
  }
  CreatedVaultToken Create(std::vector<std::string> patterns = {"*"},
                           std::vector<std::string> operations = {"*"}, std::int64_t ttl_ms = 0) {
    VaultTokenSpec spec;
    spec.display_name = "app";
    spec.key_patterns = std::move(patterns);
    spec.operations = std::move(operations);
    spec.ttl_ms = ttl_ms;
    return Create(spec);
  }
  std::vector<std::pair<std::string, std::string>> Meta(std::string_view prefix) {
    auto txn = store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(txn.has_value());
    auto page = (*txn)->ListMeta(prefix, "", store::kMaxPageLimit);
    if (!page) FAIL(page.error().ToString());
    return page->items;
  }

  TempDir dir;
  ManualClock clock;
  std::unique_ptr<kms::testing::FakeHsm> hsm;
  std::unique_ptr<store::MetadataStore> store;
  std::unique_ptr<VaultTokenRegistry> registry;
};

std::string Text(const SecretBytes& s) { return ToString(s.ExposeSecret()); }

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

template <typename T>
void CheckDenied(const T& result) {
  const Status s = StatusOf(result);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == StatusCode::kPermissionDenied);
  CHECK(s.message() == "permission denied");
}

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

TEST_CASE("vault tokens: created tokens have Vault's shape and look up", "[unit][vault_tokens]") {
  Fixture f;
  VaultTokenSpec spec;
  spec.display_name = "transit seal";
  spec.key_patterns = {"autounseal", "app-*"};
  spec.operations = {"encrypt", "decrypt"};
  spec.ttl_ms = 24 * kHourMs;
  spec.policies = {"seal", "default"};
  CreatedVaultToken made = f.Create(spec);

  const std::string token = Text(made.token);
  REQUIRE(token.size() == 4 + kVaultTokenRandomLength);
  CHECK(token.starts_with("hvs."));
  for (char c : token.substr(4)) CHECK(IsAlnum(c));
  REQUIRE(made.accessor.size() == 4 + 24);
  CHECK(made.accessor.starts_with("acc."));
  for (char c : made.accessor.substr(4)) CHECK(IsAlnum(c));

  auto info = f.registry->Lookup(token);
  KMS_REQUIRE_OK(info);
  CHECK(info->accessor == made.accessor);
  CHECK(info->display_name == "transit seal");
  // Patterns without a mount name the default mount, and are stored saying so.
  CHECK(info->key_patterns == std::vector<std::string>{"transit/autounseal", "transit/app-*"});
  CHECK(info->operations == std::vector<std::string>{"encrypt", "decrypt"});
  CHECK(info->policies == std::vector<std::string>{"seal", "default"});
  CHECK_FALSE(info->administrator);
  CHECK(info->renewable);
  CHECK(info->creation_time_ms == kStartMs);
  CHECK(info->ttl_ms == 24 * kHourMs);
  CHECK(info->explicit_max_ttl_ms == 0);
  CHECK(info->expire_time_ms == kStartMs + 24 * kHourMs);

  auto by_accessor = f.registry->LookupAccessor(made.accessor);
  KMS_REQUIRE_OK(by_accessor);
  CHECK(by_accessor->display_name == "transit seal");

  // Two tokens differ in token and accessor; the default policy list is {"default"}; a token
  // without a ttl never expires and is not renewable even when asked.
  VaultTokenSpec forever;
  forever.display_name = "root";
  forever.key_patterns = {"*"};
  forever.operations = {"*"};
  forever.administrator = true;
  forever.renewable = true;
  CreatedVaultToken other = f.Create(forever);
  CHECK_FALSE(other.token == made.token);
  CHECK(other.accessor != made.accessor);
  auto root = f.registry->Lookup(Text(other.token));
  KMS_REQUIRE_OK(root);
  CHECK(root->administrator);
  CHECK(root->policies == std::vector<std::string>{"default"});
  CHECK(root->expire_time_ms == 0);
  CHECK_FALSE(root->renewable);
  f.clock.AdvanceDays(365 * 10);
  KMS_REQUIRE_OK(f.registry->Lookup(Text(other.token)));
}

TEST_CASE("vault tokens: token characters are spread over the whole alphabet",
          "[unit][vault_tokens]") {
  Fixture f;
  std::set<char> seen;
  for (int i = 0; i < 40; ++i) {
    const std::string token = Text(f.Create().token);
    for (char c : token.substr(4)) seen.insert(c);
  }
  // 1280 draws from 62 characters: every one appears (a bias-free sampler misses one with
  // probability about 62 * (61/62)^1280, below 1e-7).
  CHECK(seen.size() == 62);
}

TEST_CASE("vault tokens: only the hash is stored", "[unit][vault_tokens]") {
  Fixture f;
  CreatedVaultToken made = f.Create();
  const std::string token = Text(made.token);
  const std::string random_part = token.substr(4);

  std::array<std::uint8_t, 32> digest{};
  // The record's name is SHA-256(token) in hex; its accessor entry points at that name.
  auto tokens = f.Meta("vault.token.");
  REQUIRE(tokens.size() == 1);
  const std::string hash_hex = tokens[0].first.substr(std::string("vault.token.").size());
  CHECK(hash_hex.size() == 64);
  records::VaultTokenRecord record;
  REQUIRE(record.ParseFromString(tokens[0].second));
  CHECK(record.token_hash().size() == digest.size());
  CHECK(HexEncode(AsBytes(record.token_hash())) == hash_hex);
  CHECK(record.record_version() == store::kRecordVersion);
  auto accessors = f.Meta("vault.token_accessor.");
  REQUIRE(accessors.size() == 1);
  CHECK(accessors[0].first == "vault.token_accessor." + made.accessor);
  CHECK(accessors[0].second == hash_hex);

  for (const auto& [name, value] : f.Meta("vault.")) {
    CHECK(name.find(random_part) == std::string::npos);
    CHECK(value.find(random_part) == std::string::npos);
  }
  // Nor anywhere in the database files (main file and write-ahead log).
  f.store.reset();
  for (const auto& entry : std::filesystem::directory_iterator(f.dir.File(""))) {
    const std::string bytes = FileBytes(entry.path().string());
    INFO(entry.path().string());
    CHECK(bytes.find(random_part) == std::string::npos);
  }
}

TEST_CASE("vault tokens: unknown and malformed tokens are denied with one message",
          "[unit][vault_tokens]") {
  Fixture f;
  f.Create();
  CheckDenied(f.registry->Lookup("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  CheckDenied(f.registry->Lookup(""));
  CheckDenied(f.registry->Lookup("s.legacy"));
  CheckDenied(f.registry->Lookup("hvs.AAAA!AAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  CheckDenied(
      f.registry->Authorize("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "encrypt", "transit", "k"));
  CheckDenied(f.registry->Renew("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0));
  CheckDenied(f.registry->Revoke("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
}

TEST_CASE("vault tokens: authorization by key pattern and operation", "[unit][vault_tokens]") {
  Fixture f;
  const std::string scoped =
      Text(f.Create({"autounseal", "app-*"}, {"encrypt", "decrypt", "random"}).token);

  KMS_REQUIRE_OK(f.registry->Authorize(scoped, "encrypt", "transit", "autounseal"));
  KMS_REQUIRE_OK(f.registry->Authorize(scoped, "decrypt", "transit", "app-"));
  KMS_REQUIRE_OK(f.registry->Authorize(scoped, "decrypt", "transit", "app-billing"));
  // An operation without a key needs only the operation.
  KMS_REQUIRE_OK(f.registry->Authorize(scoped, "random", "transit", ""));
  CheckDenied(f.registry->Authorize(scoped, "hash", "transit", ""));
  // Exact means exact; a prefix is a prefix.
  CheckDenied(f.registry->Authorize(scoped, "encrypt", "transit", "autounseal2"));
  CheckDenied(f.registry->Authorize(scoped, "encrypt", "transit", "autounsea"));
  CheckDenied(f.registry->Authorize(scoped, "encrypt", "transit", "ap"));
  CheckDenied(f.registry->Authorize(scoped, "encrypt", "transit", "other"));
  // Right key, wrong operation.
  CheckDenied(f.registry->Authorize(scoped, "sign", "transit", "autounseal"));
  CheckDenied(f.registry->Authorize(scoped, "manage", "transit", "app-billing"));

  const std::string every_key = Text(f.Create({"*"}, {"read"}).token);
  KMS_REQUIRE_OK(f.registry->Authorize(every_key, "read", "transit", "anything"));
  CheckDenied(f.registry->Authorize(every_key, "encrypt", "transit", "anything"));

  const std::string every_op = Text(f.Create({"k1"}, {"*"}).token);
  KMS_REQUIRE_OK(f.registry->Authorize(every_op, "manage", "transit", "k1"));
  KMS_REQUIRE_OK(f.registry->Authorize(every_op, "hmac", "transit", "k1"));
  CheckDenied(f.registry->Authorize(every_op, "hmac", "transit", "k2"));

  VaultTokenSpec admin;
  admin.display_name = "admin";
  admin.key_patterns = {"none"};
  admin.operations = {"read"};
  admin.administrator = true;
  const std::string root = Text(f.Create(admin).token);
  KMS_REQUIRE_OK(f.registry->Authorize(root, "manage", "transit", "whatever"));
  KMS_REQUIRE_OK(f.registry->Authorize(root, "hash", "transit", ""));

  CHECK(VaultKeyPatternMatches("transit/*", "transit", ""));
  CHECK(VaultKeyPatternMatches("transit/*", "transit", "x"));
  CHECK(VaultKeyPatternMatches("transit/a*", "transit", "a"));
  CHECK_FALSE(VaultKeyPatternMatches("transit/a*", "transit", "ba"));
  CHECK(VaultKeyPatternMatches("transit/abc", "transit", "abc"));
  CHECK_FALSE(VaultKeyPatternMatches("transit/abc", "transit", "ab"));
}

TEST_CASE("vault tokens: key patterns name their mount", "[unit][vault_tokens]") {
  Fixture f;
  // A pattern without a mount is the default mount's; "<mount>/..." names one mount (nested mounts
  // hold '/'); "*/..." every mount.
  const std::string plain = Text(f.Create({"app-*"}, {"encrypt"}).token);
  KMS_REQUIRE_OK(f.registry->Authorize(plain, "encrypt", "transit", "app-1"));
  CheckDenied(f.registry->Authorize(plain, "encrypt", "apps/transit", "app-1"));
  CheckDenied(f.registry->Authorize(plain, "encrypt", "other", "app-1"));

  const std::string nested = Text(f.Create({"apps/transit/app-*"}, {"encrypt"}).token);
  KMS_REQUIRE_OK(f.registry->Authorize(nested, "encrypt", "apps/transit", "app-1"));
  CheckDenied(f.registry->Authorize(nested, "encrypt", "transit", "app-1"));
  CheckDenied(f.registry->Authorize(nested, "encrypt", "apps", "app-1"));
  CheckDenied(f.registry->Authorize(nested, "encrypt", "transit/app-1", "x"));

  const std::string anywhere = Text(f.Create({"*/app-*"}, {"encrypt"}).token);
  KMS_REQUIRE_OK(f.registry->Authorize(anywhere, "encrypt", "transit", "app-1"));
  KMS_REQUIRE_OK(f.registry->Authorize(anywhere, "encrypt", "apps/transit", "app-2"));
  CheckDenied(f.registry->Authorize(anywhere, "encrypt", "apps/transit", "other"));

  auto info = f.registry->Lookup(nested);
  KMS_REQUIRE_OK(info);
  CHECK(info->key_patterns == std::vector<std::string>{"apps/transit/app-*"});
  auto everywhere = f.registry->Lookup(anywhere);
  KMS_REQUIRE_OK(everywhere);
  CHECK(everywhere->key_patterns == std::vector<std::string>{"*/app-*"});

  CHECK(VaultKeyPatternMatches("*/*", "any/mount", "k"));
  CHECK_FALSE(VaultKeyPatternMatches("transit/*", "transit2", "k"));
  // A stored pattern without a mount (a record not yet bound) reaches the default mount only.
  CHECK(VaultKeyPatternMatches("k", "transit", "k"));
  CHECK_FALSE(VaultKeyPatternMatches("k", "apps/transit", "k"));

  // The one refusal text for a malformed pattern.
  VaultTokenSpec bad;
  bad.display_name = "bad";
  bad.key_patterns = {"apps//transit/k"};
  bad.operations = {"encrypt"};
  auto refused = f.registry->Create(bad);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message() ==
        "key pattern must be [<mount>/]<key>: <mount> a mount path or \"*\" (every mount; without "
        "one, \"transit\"), <key> \"*\", a key name, or a key-name prefix ending in \"*\" (A-Z "
        "a-z 0-9 _ -)");
}

TEST_CASE("vault tokens: stored patterns without a mount are bound to the configured mounts",
          "[unit][vault_tokens]") {
  Fixture f;
  CreatedVaultToken legacy = f.Create({"app-*", "transit/k"}, {"encrypt"}, kHourMs);
  const std::string token = Text(legacy.token);
  CreatedVaultToken current = f.Create({"apps/transit/x"}, {"encrypt"});
  // Rewrite the first record as firmware that ignored mounts wrote it: a pattern without a mount.
  {
    auto txn = f.store->Begin(store::TransactionMode::kReadWrite);
    REQUIRE(txn.has_value());
    auto page = (*txn)->ListMeta("vault.token.", "", store::kMaxPageLimit);
    REQUIRE(page.has_value());
    bool found = false;
    for (const auto& [name, value] : page->items) {
      records::VaultTokenRecord r;
      REQUIRE(r.ParseFromString(value));
      if (r.accessor() != legacy.accessor) continue;
      r.clear_key_patterns();
      r.add_key_patterns("app-*");
      r.add_key_patterns("transit/k");
      KMS_REQUIRE_OK((*txn)->PutMeta(name, r.SerializeAsString()));
      found = true;
    }
    REQUIRE(found);
    KMS_REQUIRE_OK((*txn)->Commit());
  }
  // Not yet bound: the default mount only.
  KMS_REQUIRE_OK(f.registry->Authorize(token, "encrypt", "transit", "app-1"));
  CheckDenied(f.registry->Authorize(token, "encrypt", "apps/transit", "app-1"));

  auto bad = f.registry->BindMountlessPatterns({});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code() == StatusCode::kInvalidArgument);

  auto bound = f.registry->BindMountlessPatterns({"transit", "/apps/transit/"});
  KMS_REQUIRE_OK(bound);
  CHECK(*bound == 1);  // only the record that had a pattern without a mount
  auto info = f.registry->Lookup(token);
  KMS_REQUIRE_OK(info);
  CHECK(info->key_patterns ==
        std::vector<std::string>{"transit/app-*", "apps/transit/app-*", "transit/k"});
  // What it reached before patterns named mounts, on the mounts that exist; the rest unchanged.
  KMS_REQUIRE_OK(f.registry->Authorize(token, "encrypt", "transit", "app-1"));
  KMS_REQUIRE_OK(f.registry->Authorize(token, "encrypt", "apps/transit", "app-1"));
  CheckDenied(f.registry->Authorize(token, "encrypt", "later/mount", "app-1"));
  CheckDenied(f.registry->Authorize(token, "encrypt", "apps/transit", "k"));
  CHECK(info->expire_time_ms == kStartMs + kHourMs);  // nothing else of the record changed
  CHECK(f.registry->Lookup(Text(current.token))->key_patterns ==
        std::vector<std::string>{"apps/transit/x"});
  // Done once: a second run rewrites nothing.
  auto again = f.registry->BindMountlessPatterns({"transit", "apps/transit"});
  KMS_REQUIRE_OK(again);
  CHECK(*again == 0);
}

TEST_CASE("vault tokens: renewal without an explicit max ttl stops at the max ttl",
          "[unit][vault_tokens]") {
  Fixture f;
  // Renewed on time forever, a renewable token without an explicit max would never expire: its
  // lifetime is bounded by the registry's max ttl (Vault's 768 h default).
  const std::string token = Text(f.Create({"*"}, {"*"}, kHourMs).token);
  std::int64_t renewals = 0;
  while (f.clock.NowMs() + kHourMs / 2 < kStartMs + kVaultDefaultMaxTtlMs) {
    f.clock.Advance(kHourMs / 2);
    auto renewed = f.registry->Renew(token, 0);
    KMS_REQUIRE_OK(renewed);
    ++renewals;
  }
  CHECK(renewals > 1000);
  auto last = f.registry->Renew(token, 0);
  KMS_REQUIRE_OK(last);
  CHECK(last->expire_time_ms == kStartMs + kVaultDefaultMaxTtlMs);
  f.clock.Set(kStartMs + kVaultDefaultMaxTtlMs);
  CheckDenied(f.registry->Renew(token, 0));
  CheckDenied(f.registry->Lookup(token));

  // A configured max ttl; an explicit max ttl overrides it (both ways), as in Vault.
  VaultTokenOptions options;
  options.max_ttl_ms = 3 * kHourMs;
  VaultTokenRegistry short_lived(*f.hsm, *f.store, f.clock, options);
  auto made = short_lived.Create([] {
    VaultTokenSpec spec;
    spec.display_name = "short";
    spec.key_patterns = {"*"};
    spec.operations = {"*"};
    spec.ttl_ms = 2 * kHourMs;
    return spec;
  }());
  KMS_REQUIRE_OK(made);
  const std::int64_t created = f.clock.NowMs();
  f.clock.Advance(2 * kHourMs - 1);
  auto capped = short_lived.Renew(Text(made->token), 0);
  KMS_REQUIRE_OK(capped);
  CHECK(capped->expire_time_ms == created + 3 * kHourMs);
  // A lease granted under a larger max ttl is kept (lowering the max takes nothing back), and not
  // extended past it.
  const std::string earlier = Text(f.Create({"*"}, {"*"}, 100 * kHourMs).token);
  const std::int64_t earlier_created = f.clock.NowMs();
  f.clock.Advance(50 * kHourMs);
  auto kept = short_lived.Renew(earlier, 0);
  KMS_REQUIRE_OK(kept);
  CHECK(kept->expire_time_ms == earlier_created + 100 * kHourMs);

  VaultTokenSpec longer;
  longer.display_name = "longer";
  longer.key_patterns = {"*"};
  longer.operations = {"*"};
  longer.ttl_ms = 4 * kHourMs;
  auto refused = short_lived.Create(longer);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code() == StatusCode::kInvalidArgument);
  CHECK(refused.error().message() ==
        "token ttl must not exceed the max ttl (3h) unless the token has an explicit max ttl");
  longer.explicit_max_ttl_ms = 10 * kHourMs;
  auto explicit_max = short_lived.Create(longer);
  KMS_REQUIRE_OK(explicit_max);
  f.clock.Advance(3 * kHourMs);
  auto past_system_max = short_lived.Renew(Text(explicit_max->token), 0);
  KMS_REQUIRE_OK(past_system_max);
  CHECK(past_system_max->expire_time_ms == f.clock.NowMs() + 4 * kHourMs);
}

TEST_CASE("vault tokens: expiry denies and deletes", "[unit][vault_tokens]") {
  Fixture f;
  CreatedVaultToken made = f.Create({"*"}, {"*"}, kHourMs);
  const std::string token = Text(made.token);
  f.clock.Advance(kHourMs - 1);
  KMS_REQUIRE_OK(f.registry->Lookup(token));
  // A listing does not show an expired token even before a lookup deletes it.
  f.clock.Advance(1);
  auto listed = f.registry->List("", 10);
  KMS_REQUIRE_OK(listed);
  CHECK(listed->items.empty());
  CHECK(f.Meta("vault.token").size() == 2);
  CheckDenied(f.registry->Lookup(token));
  // The first lookup that found it expired deleted both entries.
  CHECK(f.Meta("vault.token").empty());
  CheckDenied(f.registry->Lookup(token));
  auto by_accessor = f.registry->LookupAccessor(made.accessor);
  REQUIRE_FALSE(by_accessor.has_value());
  CHECK(by_accessor.error().code() == StatusCode::kNotFound);

  // An expired token found by accessor is deleted as well.
  CreatedVaultToken second = f.Create({"*"}, {"*"}, kHourMs);
  f.clock.Advance(kHourMs);
  CHECK(f.registry->LookupAccessor(second.accessor).error().code() == StatusCode::kNotFound);
  CHECK(f.Meta("vault.token").empty());
  CheckDenied(f.registry->Renew(Text(second.token), 0));
}

TEST_CASE("vault tokens: renewal", "[unit][vault_tokens]") {
  Fixture f;
  const std::string token = Text(f.Create({"*"}, {"*"}, 2 * kHourMs).token);

  SECTION("increment 0 grants the token's own ttl from now") {
    f.clock.Advance(kHourMs);
    auto renewed = f.registry->Renew(token, 0);
    KMS_REQUIRE_OK(renewed);
    CHECK(renewed->expire_time_ms == kStartMs + 3 * kHourMs);
    // Durable: the next lookup sees it, and the token outlives its first expiry.
    f.clock.Advance(kHourMs + kHourMs / 2);
    auto info = f.registry->Lookup(token);
    KMS_REQUIRE_OK(info);
    CHECK(info->expire_time_ms == kStartMs + 3 * kHourMs);
  }
  SECTION("a positive increment asks for that much, capped at the ttl") {
    auto shorter = f.registry->Renew(token, 60'000);
    KMS_REQUIRE_OK(shorter);
    CHECK(shorter->expire_time_ms == kStartMs + 60'000);
    auto capped = f.registry->Renew(token, 10 * kHourMs);
    KMS_REQUIRE_OK(capped);
    CHECK(capped->expire_time_ms == kStartMs + 2 * kHourMs);
  }
  SECTION("a negative increment is invalid") {
    auto bad = f.registry->Renew(token, -1);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("vault tokens: renewal never passes the explicit max ttl", "[unit][vault_tokens]") {
  Fixture f;
  VaultTokenSpec spec;
  spec.display_name = "bounded";
  spec.key_patterns = {"*"};
  spec.operations = {"*"};
  spec.ttl_ms = 2 * kHourMs;
  spec.explicit_max_ttl_ms = 3 * kHourMs;
  const std::string token = Text(f.Create(spec).token);

  f.clock.Advance(kHourMs / 2);
  auto first = f.registry->Renew(token, 0);
  KMS_REQUIRE_OK(first);
  CHECK(first->expire_time_ms == kStartMs + kHourMs / 2 + 2 * kHourMs);
  f.clock.Advance(kHourMs + kHourMs / 2);
  auto second = f.registry->Renew(token, 0);
  KMS_REQUIRE_OK(second);
  CHECK(second->expire_time_ms == kStartMs + 3 * kHourMs);  // capped at creation + max
  CHECK(second->explicit_max_ttl_ms == 3 * kHourMs);
  f.clock.Set(kStartMs + 3 * kHourMs);
  CheckDenied(f.registry->Lookup(token));
}

TEST_CASE("vault tokens: a non-renewable token refuses renewal", "[unit][vault_tokens]") {
  Fixture f;
  VaultTokenSpec spec;
  spec.display_name = "fixed";
  spec.key_patterns = {"*"};
  spec.operations = {"*"};
  spec.ttl_ms = kHourMs;
  spec.renewable = false;
  const std::string token = Text(f.Create(spec).token);
  auto renewed = f.registry->Renew(token, 0);
  REQUIRE_FALSE(renewed.has_value());
  CHECK(renewed.error().code() == StatusCode::kInvalidArgument);
  CHECK(renewed.error().message() == "lease is not renewable");

  // Nor does one that never expires.
  const std::string forever = Text(f.Create().token);
  auto never = f.registry->Renew(forever, 0);
  REQUIRE_FALSE(never.has_value());
  CHECK(never.error().message() == "lease is not renewable");
}

TEST_CASE("vault tokens: revocation by token and by accessor", "[unit][vault_tokens]") {
  Fixture f;
  CreatedVaultToken a = f.Create();
  CreatedVaultToken b = f.Create();
  const std::string token_a = Text(a.token);
  const std::string token_b = Text(b.token);

  KMS_REQUIRE_OK(f.registry->Revoke(token_a));
  CheckDenied(f.registry->Lookup(token_a));
  CheckDenied(f.registry->Revoke(token_a));
  CHECK(f.registry->LookupAccessor(a.accessor).error().code() == StatusCode::kNotFound);

  KMS_REQUIRE_OK(f.registry->RevokeAccessor(b.accessor));
  CheckDenied(f.registry->Lookup(token_b));
  const Status again = f.registry->RevokeAccessor(b.accessor);
  CHECK(again.code() == StatusCode::kNotFound);
  CHECK(again.message() == "unknown token accessor");
  CHECK(f.Meta("vault.token").empty());

  // A revocation made through another store connection (another process) takes effect at once.
  CreatedVaultToken c = f.Create();
  store::SqliteStoreOptions options;
  options.path = f.dir.File("kms.db");
  auto other_store = store::OpenSqliteStore(options);
  KMS_REQUIRE_OK(other_store);
  VaultTokenRegistry other(*f.hsm, **other_store, f.clock);
  KMS_REQUIRE_OK(other.RevokeAccessor(c.accessor));
  CheckDenied(f.registry->Lookup(Text(c.token)));
}

TEST_CASE("vault tokens: unknown accessors are NotFound", "[unit][vault_tokens]") {
  Fixture f;
  for (std::string_view accessor :
       {std::string_view("acc.AAAAAAAAAAAAAAAAAAAAAAAA"), std::string_view(""),
        std::string_view("acc.%"), std::string_view("hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")}) {
    auto looked = f.registry->LookupAccessor(accessor);
    REQUIRE_FALSE(looked.has_value());
    CHECK(looked.error().code() == StatusCode::kNotFound);
    CHECK(looked.error().message() == "unknown token accessor");
    CHECK(f.registry->RevokeAccessor(accessor).code() == StatusCode::kNotFound);
  }
}

TEST_CASE("vault tokens: listing in accessor order, in pages", "[unit][vault_tokens]") {
  Fixture f;
  std::vector<std::string> accessors;
  for (int i = 0; i < 7; ++i) accessors.push_back(f.Create().accessor);
  std::sort(accessors.begin(), accessors.end());

  std::vector<std::string> listed;
  std::string after;
  int pages = 0;
  for (;;) {
    auto page = f.registry->List(after, 3);
    KMS_REQUIRE_OK(page);
    ++pages;
    CHECK(page->items.size() <= 3);
    for (const VaultTokenInfo& info : page->items) {
      listed.push_back(info.accessor);
      CHECK(info.display_name == "app");
    }
    if (!page->truncated) break;
    CHECK(page->next_marker == listed.back());
    after = page->next_marker;
  }
  CHECK(pages == 3);
  CHECK(listed == accessors);

  auto whole = f.registry->List("", 7);
  KMS_REQUIRE_OK(whole);
  CHECK(whole->items.size() == 7);
  CHECK_FALSE(whole->truncated);
  CHECK(whole->next_marker.empty());

  auto tail = f.registry->List(accessors[5], 10);
  KMS_REQUIRE_OK(tail);
  REQUIRE(tail->items.size() == 1);
  CHECK(tail->items[0].accessor == accessors[6]);

  CHECK(f.registry->List("", 0).error().code() == StatusCode::kInvalidArgument);
  CHECK(f.registry->List("", store::kMaxPageLimit + 1).error().code() ==
        StatusCode::kInvalidArgument);

  // Other meta entries under a neighbouring prefix are not tokens.
  {
    auto txn = f.store->Begin();
    REQUIRE(txn.has_value());
    KMS_REQUIRE_OK((*txn)->PutMeta("vault.token_accessorz", "x"));
    KMS_REQUIRE_OK((*txn)->PutMeta("vault.transit.transit.key.k", "y"));
    KMS_REQUIRE_OK((*txn)->Commit());
  }
  auto again = f.registry->List("", 100);
  KMS_REQUIRE_OK(again);
  CHECK(again->items.size() == 7);
}

TEST_CASE("vault tokens: invalid specs", "[unit][vault_tokens]") {
  Fixture f;
  auto valid = [] {
    VaultTokenSpec spec;
    spec.display_name = "ok";
    spec.key_patterns = {"*"};
    spec.operations = {"encrypt"};
    return spec;
  };
  KMS_REQUIRE_OK(f.registry->Create(valid()));

  std::vector<std::pair<std::string, VaultTokenSpec>> cases;
  auto add = [&](std::string what, auto change) {
    VaultTokenSpec spec = valid();
    change(spec);
    cases.emplace_back(std::move(what), std::move(spec));
  };
  add("empty name", [](VaultTokenSpec& s) { s.display_name = ""; });
  add("long name", [](VaultTokenSpec& s) { s.display_name = std::string(129, 'a'); });
  add("control char in name", [](VaultTokenSpec& s) { s.display_name = "a\nb"; });
  add("no patterns", [](VaultTokenSpec& s) { s.key_patterns.clear(); });
  add("empty pattern", [](VaultTokenSpec& s) { s.key_patterns = {""}; });
  add("star inside", [](VaultTokenSpec& s) { s.key_patterns = {"a*b"}; });
  add("double star", [](VaultTokenSpec& s) { s.key_patterns = {"a**"}; });
  add("empty mount", [](VaultTokenSpec& s) { s.key_patterns = {"/b"}; });
  add("empty key after a mount", [](VaultTokenSpec& s) { s.key_patterns = {"transit/"}; });
  add("doubled slash", [](VaultTokenSpec& s) { s.key_patterns = {"apps//transit/k"}; });
  add("star inside a mount", [](VaultTokenSpec& s) { s.key_patterns = {"apps*/k"}; });
  add("bad mount character", [](VaultTokenSpec& s) { s.key_patterns = {"tr.ansit/k"}; });
  add("long mount", [](VaultTokenSpec& s) { s.key_patterns = {std::string(65, 'm') + "/k"}; });
  add("ttl above the max ttl without an explicit max",
      [](VaultTokenSpec& s) { s.ttl_ms = kVaultDefaultMaxTtlMs + 1000; });
  add("long pattern", [](VaultTokenSpec& s) { s.key_patterns = {std::string(129, 'k')}; });
  add("no operations", [](VaultTokenSpec& s) { s.operations.clear(); });
  add("unknown operation", [](VaultTokenSpec& s) { s.operations = {"encrypt", "delete"}; });
  add("negative ttl", [](VaultTokenSpec& s) { s.ttl_ms = -1; });
  add("sub-second ttl", [](VaultTokenSpec& s) { s.ttl_ms = 999; });
  add("huge ttl", [](VaultTokenSpec& s) { s.ttl_ms = INT64_MAX; });
  add("negative max", [](VaultTokenSpec& s) {
    s.ttl_ms = kHourMs;
    s.explicit_max_ttl_ms = -5;
  });
  add("max without ttl", [](VaultTokenSpec& s) { s.explicit_max_ttl_ms = kHourMs; });
  add("ttl above max", [](VaultTokenSpec& s) {
    s.ttl_ms = 2 * kHourMs;
    s.explicit_max_ttl_ms = kHourMs;
  });
  add("empty policy", [](VaultTokenSpec& s) { s.policies = {""}; });
  for (const auto& [what, spec] : cases) {
    INFO(what);
    auto made = f.registry->Create(spec);
    REQUIRE_FALSE(made.has_value());
    CHECK(made.error().code() == StatusCode::kInvalidArgument);
  }
  CHECK(f.registry->List("", 100)->items.size() == 1);

  // The edges that are valid.
  VaultTokenSpec edge = valid();
  edge.display_name = std::string(128, '~');
  edge.key_patterns = {std::string(128, 'k'), "x_-*", "A-Z_09"};
  edge.operations = {"encrypt", "decrypt", "rewrap", "datakey", "hmac", "sign",
                     "verify",  "read",    "manage", "random",  "hash"};
  edge.ttl_ms = 1000;
  edge.explicit_max_ttl_ms = 1000;
  KMS_REQUIRE_OK(f.registry->Create(edge));
}

TEST_CASE("vault tokens: HSM RNG failures pass through", "[unit][vault_tokens]") {
  Fixture f;
  f.hsm->InjectFailure(UnavailableError("device gone"));
  VaultTokenSpec spec;
  spec.display_name = "x";
  spec.key_patterns = {"*"};
  spec.operations = {"*"};
  auto made = f.registry->Create(spec);
  REQUIRE_FALSE(made.has_value());
  CHECK(made.error().code() == StatusCode::kUnavailable);
  CHECK(f.Meta("vault.token").empty());
}

}  // namespace
}  // namespace kms::firmware
