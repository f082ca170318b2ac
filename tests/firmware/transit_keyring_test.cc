// TransitKeyring over a KeyService on the fake HSM (unit) or SoftHSM2 (KMS_TEST_HSM_SOFTHSM) and a
// real SQLite store: every method, every Vault error text a client sees.
#include "firmware/transit_keyring.h"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "tests/firmware/key_service_fixture.h"
#include "tests/support/hooked_store.h"

namespace kms::firmware::transit {
namespace {

using testing::Secret;
using testing::ServiceFixture;

struct Transit : ServiceFixture {
  Transit() : keyring(*service, *store, clock, "transit") {}
  TransitKeyInfo Create(std::string_view name, TransitKeyType type = TransitKeyType::kAes256Gcm96,
                        bool derived = false) {
    CreateTransitKeyOptions o;
    o.type = type;
    o.derived = derived;
    auto made = keyring.CreateKey(name, o);
    if (!made) FAIL(made.error().ToString());
    return *made;
  }
  std::string Seal(std::string_view name, std::string_view plaintext, Bytes context = {},
                   Bytes aad = {}, std::optional<std::int64_t> version = std::nullopt) {
    EncryptInput in;
    in.plaintext = Secret(plaintext);
    in.context = std::move(context);
    in.associated_data = std::move(aad);
    in.key_version = version;
    auto out = keyring.Encrypt(name, in);
    if (!out) FAIL(out.error().ToString());
    return out->ciphertext;
  }
  StatusOr<SecretBytes> Open(std::string_view name, std::string ciphertext, Bytes context = {},
                             Bytes aad = {}) {
    DecryptInput in;
    in.ciphertext = std::move(ciphertext);
    in.context = std::move(context);
    in.associated_data = std::move(aad);
    return keyring.Decrypt(name, in);
  }
  TransitKeyring keyring;
};

std::string Text(const SecretBytes& s) { return ToString(s.ExposeSecret()); }

void RequireError(const Status& s, StatusCode code, std::string_view message) {
  INFO(s.ToString());
  CHECK(s.code() == code);
  CHECK(s.message() == message);
}
template <typename T>
void RequireError(const StatusOr<T>& r, StatusCode code, std::string_view message) {
  REQUIRE_FALSE(r.has_value());
  RequireError(r.error(), code, message);
}

TEST_CASE("transit: key types parse with Vault's names and refuse what the appliance lacks") {
  CHECK(*ParseTransitKeyType("aes256-gcm96") == TransitKeyType::kAes256Gcm96);
  CHECK(*ParseTransitKeyType("ecdsa-p521") == TransitKeyType::kEcdsaP521);
  CHECK(*ParseTransitKeyType("rsa-3072") == TransitKeyType::kRsa3072);
  CHECK(*ParseTransitKeyType("hmac") == TransitKeyType::kHmac);
  RequireError(ParseTransitKeyType("aes128-gcm96"), StatusCode::kInvalidArgument,
               "key type aes128-gcm96 is not supported by this appliance");
  RequireError(ParseTransitKeyType("ed25519"), StatusCode::kInvalidArgument,
               "key type ed25519 is not supported by this appliance");
  RequireError(ParseTransitKeyType("des"), StatusCode::kInvalidArgument, "unknown key type des");
  for (std::uint32_t c = 1; c <= 8; ++c) {
    auto t = static_cast<TransitKeyType>(c);
    CHECK(*ParseTransitKeyType(TransitKeyTypeName(t)) == t);
  }
}

TEST_CASE("transit: create every type, read it back, list, and the AWS side sees the key") {
  Transit f;
  const std::pair<const char*, TransitKeyType> types[] = {
      {"aes", TransitKeyType::kAes256Gcm96}, {"p256", TransitKeyType::kEcdsaP256},
      {"p384", TransitKeyType::kEcdsaP384},  {"p521", TransitKeyType::kEcdsaP521},
      {"r2048", TransitKeyType::kRsa2048},   {"r3072", TransitKeyType::kRsa3072},
      {"r4096", TransitKeyType::kRsa4096},   {"mac", TransitKeyType::kHmac}};
  for (const auto& [name, type] : types) {
    TransitKeyInfo info = f.Create(name, type);
    CHECK(info.name == name);
    CHECK(info.type == type);
    CHECK(info.latest_version == 1);
    CHECK(info.min_decryption_version == 1);
    CHECK(info.min_encryption_version == 0);
    CHECK_FALSE(info.deletion_allowed);
    REQUIRE(info.versions.size() == 1);
    CHECK(info.versions[0].version == 1);
    CHECK(info.versions[0].creation_time_ms == testing::kStartMs);
    const bool asymmetric = type != TransitKeyType::kAes256Gcm96 && type != TransitKeyType::kHmac;
    CHECK(info.supports_signing == asymmetric);
    CHECK(info.supports_encryption == (type == TransitKeyType::kAes256Gcm96));
    CHECK(info.versions[0].public_key_pem.empty() == !asymmetric);
    if (asymmetric) {
      const std::string& pem = info.versions[0].public_key_pem;
      CHECK(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
      CHECK(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
      CHECK(pem.find('\n', 27) - 27 == 64);  // 64-character lines
    }
    auto described =
        f.svc().DescribeKey(DescribeKeyRequest{"alias/vault/transit/" + std::string(name)});
    REQUIRE(described.has_value());
    CHECK(described->key_metadata.key_id == info.key_id);
    CHECK(described->key_metadata.description == "Vault transit key transit/" + std::string(name));
    CHECK(info.arn == described->key_metadata.arn);
  }
  auto again = f.keyring.ReadKey("p384");
  REQUIRE(again.has_value());
  CHECK(again->type == TransitKeyType::kEcdsaP384);
  auto names = f.keyring.ListKeys();
  REQUIRE(names.has_value());
  CHECK(*names ==
        std::vector<std::string>{"aes", "mac", "p256", "p384", "p521", "r2048", "r3072", "r4096"});
  // Creating an existing name changes nothing and answers the existing key.
  TransitKeyInfo first = *f.keyring.ReadKey("aes");
  CreateTransitKeyOptions other;
  other.type = TransitKeyType::kHmac;
  auto same = f.keyring.CreateKey("aes", other);
  REQUIRE(same.has_value());
  CHECK(same->key_id == first.key_id);
  CHECK(same->type == TransitKeyType::kAes256Gcm96);
  // Another mount over the same store is a separate namespace.
  TransitKeyring other_mount(f.svc(), *f.store, f.clock, "team/a");
  CHECK(other_mount.ListKeys()->empty());
  RequireError(other_mount.ReadKey("aes"), StatusCode::kNotFound, "key not found");
  CHECK(other_mount.CreateKey("aes", {}).has_value());
  CHECK(f.svc().DescribeKey(DescribeKeyRequest{"alias/vault/team/a/aes"}).has_value());
}

TEST_CASE("transit: Locate names the key-service key behind a transit key") {
  Transit f;
  const std::pair<const char*, TransitKeyType> types[] = {{"aes", TransitKeyType::kAes256Gcm96},
                                                          {"p256", TransitKeyType::kEcdsaP256},
                                                          {"r2048", TransitKeyType::kRsa2048},
                                                          {"mac", TransitKeyType::kHmac}};
  for (const auto& [name, type] : types) {
    const TransitKeyInfo info = f.Create(name, type);
    auto ref = f.keyring.Locate(name);
    REQUIRE(ref.has_value());
    CHECK(ref->key_id == info.key_id);
    CHECK(ref->arn == info.arn);
    CHECK(ref->type == type);
    CHECK(ref->alias == "alias/vault/transit/" + std::string(name));
    auto described = f.svc().DescribeKey(DescribeKeyRequest{ref->alias});
    REQUIRE(described.has_value());
    CHECK(described->key_metadata.arn == ref->arn);
    CHECK(described->key_metadata.key_spec == ref->key_spec);
    CHECK(described->key_metadata.key_usage == ref->key_usage);
  }
  RequireError(f.keyring.Locate("missing"), StatusCode::kNotFound, "key not found");
  RequireError(f.keyring.Locate("bad.name"), StatusCode::kInvalidArgument, "invalid key name");
  // The name is rebound after a delete and a create: Locate follows the binding.
  TransitKeyConfigUpdate u;
  u.deletion_allowed = true;
  REQUIRE(f.keyring.UpdateConfig("aes", u).has_value());
  const std::string before = f.keyring.Locate("aes")->key_id;
  REQUIRE(f.keyring.DeleteKey("aes").ok());
  RequireError(f.keyring.Locate("aes"), StatusCode::kNotFound, "key not found");
  f.Create("aes");
  CHECK(f.keyring.Locate("aes")->key_id != before);
}

TEST_CASE("transit: names, mounts and unsupported options are refused with Vault-style messages") {
  Transit f;
  RequireError(f.keyring.CreateKey("bad.name", {}), StatusCode::kInvalidArgument,
               "invalid key name");
  RequireError(f.keyring.CreateKey("", {}), StatusCode::kInvalidArgument, "invalid key name");
  RequireError(f.keyring.CreateKey(std::string(129, 'a'), {}), StatusCode::kInvalidArgument,
               "invalid key name");
  TransitKeyring bad_mount(f.svc(), *f.store, f.clock, "a//b");
  RequireError(bad_mount.CreateKey("k", {}), StatusCode::kInvalidArgument, "invalid mount");
  CreateTransitKeyOptions o;
  o.convergent_encryption = true;
  o.derived = true;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "convergent encryption is not supported by this appliance");
  o = {};
  o.exportable = true;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "exportable keys are not supported by this appliance: key material never leaves "
               "the HSM");
  o = {};
  o.allow_plaintext_backup = true;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "plaintext backup is not supported by this appliance: key material never leaves "
               "the HSM");
  o = {};
  o.type = TransitKeyType::kEcdsaP256;
  o.derived = true;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "key derivation is not supported for keys of type ecdsa-p256");
  o = {};
  o.key_size = 64;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "key_size is not valid for algorithm aes256-gcm96");
  o.type = TransitKeyType::kHmac;
  RequireError(f.keyring.CreateKey("k", o), StatusCode::kInvalidArgument,
               "key_size 64 is not supported by this appliance: hmac keys are 32 bytes");
  o.key_size = 32;
  CHECK(f.keyring.CreateKey("k", o).has_value());
  o = {};
  o.auto_rotate_period_ms = 60'000;
  RequireError(f.keyring.CreateKey("k2", o), StatusCode::kInvalidArgument,
               "auto rotate period must be 0 to disable or at least an hour");
  o.auto_rotate_period_ms = 3'600'000;
  o.type = TransitKeyType::kEcdsaP256;
  RequireError(f.keyring.CreateKey("k2", o), StatusCode::kInvalidArgument,
               "auto rotation is not supported for keys of type ecdsa-p256: only aes256-gcm96 "
               "keys rotate on this appliance");
  CHECK(f.keyring.ListKeys()->size() == 1);  // nothing but "k" was made
}

TEST_CASE("transit: delete needs deletion_allowed, frees the name, schedules the KMS key") {
  Transit f;
  TransitKeyInfo info = f.Create("gone");
  RequireError(f.keyring.DeleteKey("gone"), StatusCode::kFailedPrecondition,
               "deletion is not allowed for this key");
  RequireError(f.keyring.DeleteKey("never"), StatusCode::kNotFound,
               "could not delete key; not found");
  TransitKeyConfigUpdate u;
  u.deletion_allowed = true;
  auto updated = f.keyring.UpdateConfig("gone", u);
  REQUIRE(updated.has_value());
  CHECK(updated->deletion_allowed);
  REQUIRE(f.keyring.DeleteKey("gone").ok());
  RequireError(f.keyring.ReadKey("gone"), StatusCode::kNotFound, "key not found");
  CHECK(f.keyring.ListKeys()->empty());
  auto old_key = f.svc().DescribeKey(DescribeKeyRequest{info.key_id});
  REQUIRE(old_key.has_value());
  CHECK(old_key->key_metadata.key_state == KeyState::kPendingDeletion);
  CHECK(*old_key->key_metadata.pending_deletion_window_in_days == 7);
  // The name is free: a new key, a new KMS key, the alias moved to it.
  TransitKeyInfo fresh = f.Create("gone");
  CHECK(fresh.key_id != info.key_id);
  auto aliased = f.svc().DescribeKey(DescribeKeyRequest{"alias/vault/transit/gone"});
  REQUIRE(aliased.has_value());
  CHECK(aliased->key_metadata.key_id == fresh.key_id);
}

TEST_CASE("transit: config bounds follow Vault") {
  Transit f;
  f.Create("k");
  REQUIRE(f.keyring.Rotate("k").has_value());
  REQUIRE(f.keyring.Rotate("k").has_value());  // latest 3
  TransitKeyConfigUpdate u;
  u.min_decryption_version = 4;
  RequireError(f.keyring.UpdateConfig("k", u), StatusCode::kInvalidArgument,
               "cannot set min decryption version of 4, latest key version is 3");
  u.min_decryption_version = -1;
  RequireError(f.keyring.UpdateConfig("k", u), StatusCode::kInvalidArgument,
               "min decryption version cannot be negative");
  u = {};
  u.min_decryption_version = 2;
  auto info = f.keyring.UpdateConfig("k", u);
  REQUIRE(info.has_value());
  CHECK(info->min_decryption_version == 2);
  u = {};
  u.min_encryption_version = 1;
  RequireError(f.keyring.UpdateConfig("k", u), StatusCode::kInvalidArgument,
               "cannot set min encryption/decryption values; min encryption version of 1 must be "
               "greater than or equal to min decryption version of 2");
  u.min_encryption_version = 9;
  RequireError(f.keyring.UpdateConfig("k", u), StatusCode::kInvalidArgument,
               "cannot set min encryption version of 9, latest key version is 3");
  u.min_encryption_version = 3;
  info = f.keyring.UpdateConfig("k", u);
  REQUIRE(info.has_value());
  CHECK(info->min_encryption_version == 3);
  u = {};
  u.exportable = true;
  CHECK(f.keyring.UpdateConfig("k", u).error().code() == StatusCode::kInvalidArgument);
  u = {};
  u.auto_rotate_period_ms = 1000;
  RequireError(f.keyring.UpdateConfig("k", u), StatusCode::kInvalidArgument,
               "auto rotate period must be 0 to disable or at least an hour");
  u.auto_rotate_period_ms = 7'200'000;
  CHECK(f.keyring.UpdateConfig("k", u)->auto_rotate_period_ms == 7'200'000);
  RequireError(f.keyring.UpdateConfig("nope", u), StatusCode::kNotFound,
               "no existing key named nope could be found");
}

TEST_CASE("transit: rotate, old ciphertexts still open, rewrap moves to the latest") {
  Transit f;
  f.Create("k");
  const std::string v1 = f.Seal("k", "secret");
  CHECK(v1.starts_with("vault:v1:"));
  auto rotated = f.keyring.Rotate("k");
  REQUIRE(rotated.has_value());
  CHECK(rotated->latest_version == 2);
  CHECK(rotated->versions.size() == 2);
  const std::string v2 = f.Seal("k", "secret");
  CHECK(v2.starts_with("vault:v2:"));
  CHECK(Text(*f.Open("k", v1)) == "secret");
  CHECK(Text(*f.Open("k", v2)) == "secret");
  DecryptInput in;
  in.ciphertext = v1;
  auto rewrapped = f.keyring.Rewrap("k", in, std::nullopt);
  REQUIRE(rewrapped.has_value());
  CHECK(rewrapped->key_version == 2);
  CHECK(rewrapped->ciphertext.starts_with("vault:v2:"));
  CHECK(Text(*f.Open("k", rewrapped->ciphertext)) == "secret");
  // Beyond AWS's 25 on-demand rotations: Vault has no quota.
  for (int i = 0; i < 26; ++i) REQUIRE(f.keyring.Rotate("k").has_value());
  CHECK(f.keyring.ReadKey("k")->latest_version == 28);
  // Only aes keys rotate.
  f.Create("sig", TransitKeyType::kEcdsaP256);
  RequireError(f.keyring.Rotate("sig"), StatusCode::kInvalidArgument,
               "rotation is not supported for keys of type ecdsa-p256 on this appliance: only "
               "aes256-gcm96 keys rotate");
  RequireError(f.keyring.Rotate("none"), StatusCode::kNotFound, "key not found");
}

TEST_CASE("transit: encrypt key_version older, too new, below min_encryption_version") {
  Transit f;
  f.Create("k");
  REQUIRE(f.keyring.Rotate("k").has_value());
  REQUIRE(f.keyring.Rotate("k").has_value());
  const std::string old = f.Seal("k", "p", {}, {}, 1);
  CHECK(old.starts_with("vault:v1:"));
  CHECK(Text(*f.Open("k", old)) == "p");
  CHECK(f.Seal("k", "p", {}, {}, 0).starts_with("vault:v3:"));
  EncryptInput in;
  in.plaintext = Secret("p");
  in.key_version = 4;
  RequireError(f.keyring.Encrypt("k", in), StatusCode::kInvalidArgument,
               "requested version for encryption is higher than the latest key version");
  TransitKeyConfigUpdate u;
  u.min_decryption_version = 2;
  u.min_encryption_version = 2;
  REQUIRE(f.keyring.UpdateConfig("k", u).has_value());
  in.key_version = 1;
  RequireError(f.keyring.Encrypt("k", in), StatusCode::kInvalidArgument,
               "requested version for encryption is less than the minimum encryption key version");
  in.key_version = 2;
  auto v2 = f.keyring.Encrypt("k", in);
  REQUIRE(v2.has_value());
  CHECK(v2->key_version == 2);
  // v1 is below min_decryption_version now.
  RequireError(f.Open("k", old), StatusCode::kInvalidArgument,
               "ciphertext or signature version is disallowed by policy (too old)");
  in.plaintext = SecretBytes();
  RequireError(f.keyring.Encrypt("k", in), StatusCode::kInvalidArgument,
               "plaintext must be 1 to 4096 bytes on this appliance");
  in.plaintext = Secret("p");
  RequireError(f.keyring.Encrypt("missing", in), StatusCode::kNotFound, "encryption key not found");
}

TEST_CASE("transit: every decrypt format error, exactly") {
  Transit f;
  f.Create("k");
  f.Create("other");
  const std::string good = f.Seal("k", "hello");
  const std::string payload = good.substr(std::string("vault:v1:").size());
  RequireError(f.Open("k", "v1:" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: no prefix");
  RequireError(f.Open("k", "vault:v1" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: wrong number of fields");
  RequireError(f.Open("k", "vault:vx:" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: version number could not be decoded");
  // Go's Atoi takes one sign: "+1" is 1, "+-1" is no number (not version -1, "too old").
  CHECK(Text(*f.Open("k", "vault:v+1:" + payload)) == "hello");
  RequireError(f.Open("k", "vault:v+-1:" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: version number could not be decoded");
  RequireError(f.Open("k", "vault:v++1:" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: version number could not be decoded");
  RequireError(f.Open("k", "vault:v2:" + payload), StatusCode::kInvalidArgument,
               "invalid ciphertext: version is too new");
  RequireError(f.Open("k", "vault:v1:%%%"), StatusCode::kInvalidArgument,
               "invalid ciphertext: could not decode base64");
  // v0 is read as v1 (Vault's legacy rule).
  CHECK(Text(*f.Open("k", "vault:v0:" + payload)) == "hello");
  // Tampered: one payload byte flipped.
  Bytes blob = *Base64Decode(payload);
  blob.back() ^= 1;
  RequireError(f.Open("k", "vault:v1:" + Base64Encode(blob)), StatusCode::kInvalidArgument,
               "cipher: message authentication failed");
  RequireError(f.Open("k", "vault:v1:" + Base64Encode(Bytes{1, 2, 3})),
               StatusCode::kInvalidArgument, "cipher: message authentication failed");
  // Another transit key's ciphertext, same version.
  const std::string foreign = f.Seal("other", "hello");
  RequireError(f.Open("k", foreign), StatusCode::kInvalidArgument,
               "cipher: message authentication failed");
  // Too old via min_decryption_version.
  REQUIRE(f.keyring.Rotate("k").has_value());
  TransitKeyConfigUpdate u;
  u.min_decryption_version = 2;
  REQUIRE(f.keyring.UpdateConfig("k", u).has_value());
  RequireError(f.Open("k", good), StatusCode::kInvalidArgument,
               "ciphertext or signature version is disallowed by policy (too old)");
  RequireError(f.Open("missing", good), StatusCode::kNotFound, "encryption key not found");
}

TEST_CASE("transit: derived keys need and bind the context, associated_data binds") {
  Transit f;
  f.Create("d", TransitKeyType::kAes256Gcm96, /*derived=*/true);
  CHECK(f.keyring.ReadKey("d")->derived);
  EncryptInput in;
  in.plaintext = Secret("x");
  const std::string missing =
      "missing 'context' for key derivation; the key was created using a derived key, which means "
      "additional, per-request information must be included in order to perform operations with "
      "the key";
  RequireError(f.keyring.Encrypt("d", in), StatusCode::kInvalidArgument, missing);
  const std::string c = f.Seal("d", "x", ToBytes("tenant-1"));
  CHECK(Text(*f.Open("d", c, ToBytes("tenant-1"))) == "x");
  RequireError(f.Open("d", c, ToBytes("tenant-2")), StatusCode::kInvalidArgument,
               "cipher: message authentication failed");
  RequireError(f.Open("d", c), StatusCode::kInvalidArgument, missing);
  // A non-derived key ignores the context (as Vault does).
  f.Create("plain");
  const std::string p = f.Seal("plain", "y", ToBytes("ignored"));
  CHECK(Text(*f.Open("plain", p)) == "y");
  // associated_data binds.
  const std::string a = f.Seal("plain", "z", {}, ToBytes("aad"));
  CHECK(Text(*f.Open("plain", a, {}, ToBytes("aad"))) == "z");
  RequireError(f.Open("plain", a), StatusCode::kInvalidArgument,
               "cipher: message authentication failed");
  RequireError(f.Open("plain", a, {}, ToBytes("other")), StatusCode::kInvalidArgument,
               "cipher: message authentication failed");
}

TEST_CASE("transit: encryption refused on signing and hmac keys") {
  Transit f;
  f.Create("rsa", TransitKeyType::kRsa2048);
  f.Create("ec", TransitKeyType::kEcdsaP256);
  f.Create("mac", TransitKeyType::kHmac);
  EncryptInput in;
  in.plaintext = Secret("x");
  RequireError(f.keyring.Encrypt("rsa", in), StatusCode::kInvalidArgument,
               "RSA encryption is not supported by this appliance: its HSM has no RSA-OAEP with "
               "SHA-256, so keys of type rsa-2048 sign and verify only");
  RequireError(f.keyring.Encrypt("ec", in), StatusCode::kInvalidArgument,
               "message encryption not supported for key type ecdsa-p256");
  RequireError(f.Open("mac", "vault:v1:AAAA"), StatusCode::kInvalidArgument,
               "message decryption not supported for key type hmac");
}

TEST_CASE("transit: datakey plaintext and wrapped, 128/256/512 bits") {
  Transit f;
  f.Create("k");
  for (std::int64_t bits : {128, 256, 512}) {
    auto dk = f.keyring.GenerateDataKey("k", bits, {}, {}, std::nullopt, true);
    REQUIRE(dk.has_value());
    CHECK(dk->plaintext.size() == static_cast<std::size_t>(bits / 8));
    CHECK(dk->key_version == 1);
    auto opened = f.Open("k", dk->ciphertext);
    REQUIRE(opened.has_value());
    CHECK(opened->ExposeSecret().size() == dk->plaintext.size());
    CHECK(ConstantTimeEquals(opened->ExposeSecret(), dk->plaintext.ExposeSecret()));
    auto wrapped = f.keyring.GenerateDataKey("k", bits, {}, {}, std::nullopt, false);
    REQUIRE(wrapped.has_value());
    CHECK(wrapped->plaintext.empty());
    CHECK(f.Open("k", wrapped->ciphertext)->size() == static_cast<std::size_t>(bits / 8));
  }
  RequireError(f.keyring.GenerateDataKey("k", 64, {}, {}, std::nullopt, true),
               StatusCode::kInvalidArgument, "invalid bits value");
  REQUIRE(f.keyring.Rotate("k").has_value());
  auto pinned = f.keyring.GenerateDataKey("k", 256, {}, {}, 1, false);
  REQUIRE(pinned.has_value());
  CHECK(pinned->key_version == 1);
  CHECK(pinned->ciphertext.starts_with("vault:v1:"));
  f.Create("d", TransitKeyType::kAes256Gcm96, true);
  auto derived = f.keyring.GenerateDataKey("d", 256, ToBytes("c"), {}, std::nullopt, false);
  REQUIRE(derived.has_value());
  CHECK(f.Open("d", derived->ciphertext, ToBytes("c")).has_value());
  CHECK_FALSE(f.Open("d", derived->ciphertext, ToBytes("x")).has_value());
}

TEST_CASE("transit: hmac and verify") {
  Transit f;
  f.Create("mac", TransitKeyType::kHmac);
  auto mac = f.keyring.Hmac("mac", Secret("message"), "sha2-256", std::nullopt);
  REQUIRE(mac.has_value());
  CHECK(mac->starts_with("vault:v1:"));
  CHECK(Base64Decode(mac->substr(9))->size() == 32);
  CHECK(*f.keyring.Hmac("mac", Secret("message"), "", std::nullopt) == *mac);
  CHECK(*f.keyring.VerifyHmac("mac", Secret("message"), *mac, "sha2-256") == true);
  CHECK(*f.keyring.VerifyHmac("mac", Secret("massage"), *mac, "sha2-256") == false);
  Bytes wrong = *Base64Decode(mac->substr(9));
  wrong[0] ^= 1;
  CHECK(*f.keyring.VerifyHmac("mac", Secret("message"), "vault:v1:" + Base64Encode(wrong), "") ==
        false);
  RequireError(f.keyring.VerifyHmac("mac", Secret("message"), "v1:abc", ""),
               StatusCode::kInvalidArgument, "invalid HMAC: no prefix");
  RequireError(f.keyring.VerifyHmac("mac", Secret("message"), "vault:v2:" + mac->substr(9), ""),
               StatusCode::kInvalidArgument, "invalid HMAC: version is too new");
  RequireError(f.keyring.Hmac("mac", Secret("message"), "sha2-512", std::nullopt),
               StatusCode::kInvalidArgument,
               "hmac algorithm sha2-512 is not supported by key mac: its key is HMAC_256 "
               "(sha2-256)");
  RequireError(f.keyring.Hmac("mac", Secret("message"), "md5", std::nullopt),
               StatusCode::kInvalidArgument, "unsupported algorithm md5");
  RequireError(f.keyring.Hmac("mac", Secret("message"), "", 2), StatusCode::kInvalidArgument,
               "invalid key version");
  f.Create("aes");
  RequireError(f.keyring.Hmac("aes", Secret("message"), "", std::nullopt),
               StatusCode::kInvalidArgument,
               "HMAC is not supported for keys of type aes256-gcm96 on this appliance; create a "
               "key of type hmac");
}

TEST_CASE("transit: sign and verify, every ecdsa and rsa type") {
  Transit f;
  struct Case {
    const char* name;
    TransitKeyType type;
    const char* hash;
  };
  const Case cases[] = {{"p256", TransitKeyType::kEcdsaP256, "sha2-256"},
                        {"p384", TransitKeyType::kEcdsaP384, "sha2-384"},
                        {"p521", TransitKeyType::kEcdsaP521, "sha2-512"},
                        {"r2048", TransitKeyType::kRsa2048, "sha2-256"},
                        {"r3072", TransitKeyType::kRsa3072, "sha2-384"},
                        {"r4096", TransitKeyType::kRsa4096, "sha2-512"}};
  for (const Case& c : cases) {
    INFO(c.name);
    f.Create(c.name, c.type);
    const bool rsa = std::string_view(c.name).starts_with("r");
    for (SignatureScheme scheme : {SignatureScheme::kPss, SignatureScheme::kPkcs1v15}) {
      for (const char* marshaling : {"asn1", "jws"}) {
        for (bool prehashed : {false, true}) {
          SignOptions o;
          o.hash_algorithm = c.hash;
          o.signature_algorithm = scheme;
          o.marshaling_algorithm = marshaling;
          o.prehashed = prehashed;
          SecretBytes input = Secret("a message to sign");
          if (prehashed) {
            input = SecretBytes::CopyFrom(*TransitKeyring::Hash(c.hash, input.ExposeSecret()));
          }
          auto sig = f.keyring.Sign(c.name, input, o);
          REQUIRE(sig.has_value());
          CHECK(sig->key_version == 1);
          CHECK(sig->signature.starts_with("vault:v1:"));
          CHECK(*f.keyring.Verify(c.name, input, sig->signature, o) == true);
          SecretBytes other = Secret("another message!!");
          if (prehashed) {
            other = SecretBytes::CopyFrom(*TransitKeyring::Hash(c.hash, other.ExposeSecret()));
          }
          CHECK(*f.keyring.Verify(c.name, other, sig->signature, o) == false);
          if (std::string_view(marshaling) == "jws" && !rsa) {
            // Raw r||s, URL-safe, no padding.
            const std::string body = sig->signature.substr(9);
            CHECK(body.find_first_of("+/=") == std::string::npos);
          }
        }
      }
      if (!rsa) break;  // ECDSA ignores the RSA scheme
    }
  }
  SignOptions o;
  o.hash_algorithm = "sha2-256";
  RequireError(f.keyring.Sign("p384", Secret("m"), o), StatusCode::kInvalidArgument,
               "keys of type ecdsa-p384 sign with sha2-384 only on this appliance");
  o.hash_algorithm = "sha3-256";
  RequireError(f.keyring.Sign("r2048", Secret("m"), o), StatusCode::kInvalidArgument,
               "hash algorithm sha3-256 is not supported by this appliance");
  o.hash_algorithm = "sha2-256";
  o.marshaling_algorithm = "der";
  RequireError(f.keyring.Sign("p256", Secret("m"), o), StatusCode::kInvalidArgument,
               "unsupported marshaling algorithm \"der\"");
  o.marshaling_algorithm = "asn1";
  o.prehashed = true;
  RequireError(f.keyring.Sign("p256", Secret("short"), o), StatusCode::kInvalidArgument,
               "prehashed input must be the 32-byte sha2-256 digest");
  o.prehashed = false;
  o.key_version = 2;
  RequireError(f.keyring.Sign("p256", Secret("m"), o), StatusCode::kInvalidArgument,
               "requested version for signing is higher than the latest key version");
  o.key_version.reset();
  // Default PSS vs PKCS#1 v1.5: a PSS signature does not verify as v1.5.
  auto pss = f.keyring.Sign("r2048", Secret("m"), o);
  REQUIRE(pss.has_value());
  SignOptions v15 = o;
  v15.signature_algorithm = SignatureScheme::kPkcs1v15;
  CHECK(*f.keyring.Verify("r2048", Secret("m"), pss->signature, v15) == false);
  RequireError(f.keyring.Verify("r2048", Secret("m"), "vault:v2:" + pss->signature.substr(9), o),
               StatusCode::kInvalidArgument, "invalid signature: version is too new");
  RequireError(f.keyring.Verify("r2048", Secret("m"), "vault:v1:***", o),
               StatusCode::kInvalidArgument, "invalid base64 signature value");
  f.Create("aes");
  RequireError(f.keyring.Sign("aes", Secret("m"), o), StatusCode::kInvalidArgument,
               "message signing not supported for key type aes256-gcm96");
  RequireError(f.keyring.Sign("nope", Secret("m"), o), StatusCode::kNotFound,
               "signing key not found");
}

TEST_CASE("transit: random sizes and bounds") {
  Transit f;
  for (std::int64_t n : {1, 32, 1024, 1025, 131072}) {
    auto r = f.keyring.Random(n);
    REQUIRE(r.has_value());
    CHECK(r->size() == static_cast<std::size_t>(n));
  }
  RequireError(f.keyring.Random(0), StatusCode::kInvalidArgument,
               "\"bytes\" cannot be less than 1");
  RequireError(f.keyring.Random(131073), StatusCode::kInvalidArgument,
               "\"bytes\" cannot be greater than 131072");
}

TEST_CASE("transit: hash vectors (FIPS 180-4 examples)") {
  const ByteView abc = AsBytes("abc");
  CHECK(HexEncode(*TransitKeyring::Hash("sha2-224", abc)) ==
        "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7");
  CHECK(HexEncode(*TransitKeyring::Hash("sha2-256", abc)) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(HexEncode(*TransitKeyring::Hash("", abc)) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(HexEncode(*TransitKeyring::Hash("sha2-384", abc)) ==
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca1"
        "34c825a7");
  CHECK(HexEncode(*TransitKeyring::Hash("sha2-512", abc)) ==
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23"
        "a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  RequireError(TransitKeyring::Hash("sha3-256", abc), StatusCode::kInvalidArgument,
               "hash algorithm sha3-256 is not supported by this appliance");
  RequireError(TransitKeyring::Hash("md5", abc), StatusCode::kInvalidArgument,
               "unsupported algorithm md5");
}

TEST_CASE("transit: RotateDue rotates keys whose period passed, with a manual clock") {
  Transit f;
  CreateTransitKeyOptions o;
  o.auto_rotate_period_ms = 2 * 3'600'000;
  REQUIRE(f.keyring.CreateKey("auto", o).has_value());
  f.Create("manual");
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 0);
  f.clock.Advance(3'600'000);
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 0);
  f.clock.Advance(3'600'000);
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 1);
  CHECK(f.keyring.ReadKey("auto")->latest_version == 2);
  CHECK(f.keyring.ReadKey("manual")->latest_version == 1);
  // The period restarts at that rotation.
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 0);
  f.clock.Advance(2 * 3'600'000);
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 1);
  CHECK(f.keyring.ReadKey("auto")->latest_version == 3);
  // A manual rotation also restarts it.
  f.clock.Advance(3'600'000);
  REQUIRE(f.keyring.Rotate("auto").has_value());
  f.clock.Advance(3'600'000);
  CHECK(*f.keyring.RotateDue(f.clock.NowMs()) == 0);
}

TEST_CASE("transit: the GCM bound rotates the latest version but refuses a spent pinned one") {
  KeyServiceConfig config;
  config.gcm_invocation_limit = 2;
  config.gcm_reservation_batch = 1;
  ServiceFixture base(config);
  TransitKeyring keyring(base.svc(), *base.store, base.clock, "transit");
  REQUIRE(keyring.CreateKey("k", {}).has_value());
  EncryptInput in;
  in.plaintext = Secret("x");
  CHECK(keyring.Encrypt("k", in)->key_version == 1);
  CHECK(keyring.Encrypt("k", in)->key_version == 1);
  auto third = keyring.Encrypt("k", in);  // v1 spent: the key service rotates first
  REQUIRE(third.has_value());
  CHECK(third->key_version == 2);
  CHECK(third->ciphertext.starts_with("vault:v2:"));
  CHECK(keyring.ReadKey("k")->latest_version == 2);
  in.key_version = 1;
  auto pinned = keyring.Encrypt("k", in);
  REQUIRE_FALSE(pinned.has_value());
  CHECK(pinned.error().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("transit: concurrent creators of one name converge on one key", "[concurrency]") {
  Transit f;
  constexpr int kThreads = 4;
  std::vector<std::string> ids(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto made = f.keyring.CreateKey("race", {});
      if (made) ids[static_cast<std::size_t>(i)] = made->key_id;
    });
  }
  for (auto& t : threads) t.join();
  const std::string winner = f.keyring.ReadKey("race")->key_id;
  for (const std::string& id : ids) CHECK(id == winner);
  auto aliased = f.svc().DescribeKey(DescribeKeyRequest{"alias/vault/transit/race"});
  REQUIRE(aliased.has_value());
  CHECK(aliased->key_metadata.key_id == winner);
  // Every other key made by a loser is pending deletion.
  auto keys = f.svc().ListKeys(ListKeysRequest{});
  REQUIRE(keys.has_value());
  int live = 0;
  for (const auto& k : keys->keys) {
    auto d = f.svc().DescribeKey(DescribeKeyRequest{k.key_id});
    REQUIRE(d.has_value());
    if (d->key_metadata.key_state != KeyState::kPendingDeletion) ++live;
  }
  CHECK(live == 1);
}

TEST_CASE("transit: bound bytes and signatures past the key service's bounds, in transit's words") {
  Transit f;
  f.Create("d", TransitKeyType::kAes256Gcm96, /*derived=*/true);
  f.Create("plain");
  const std::string too_large =
      "context and associated_data must be at most 6000 bytes together on this appliance";
  const Bytes half(3000, 0x61);
  const Bytes over(3001, 0x62);
  // 6000 bytes together fit (the largest split a derived key binds), one more does not; a
  // non-derived key binds no context, so only its associated_data counts.
  const std::string sealed = f.Seal("d", "x", half, half);
  CHECK(Text(*f.Open("d", sealed, half, half)) == "x");
  EncryptInput in;
  in.plaintext = Secret("x");
  in.context = half;
  in.associated_data = over;
  RequireError(f.keyring.Encrypt("d", in), StatusCode::kInvalidArgument, too_large);
  RequireError(f.Open("d", sealed, half, over), StatusCode::kInvalidArgument, too_large);
  RequireError(f.keyring.GenerateDataKey("d", 256, half, over, std::nullopt, false),
               StatusCode::kInvalidArgument, too_large);
  CHECK(f.keyring.Encrypt("plain", in).has_value());
  in.associated_data = Bytes(6001, 0x63);
  RequireError(f.keyring.Encrypt("plain", in), StatusCode::kInvalidArgument, too_large);
  // A signature or HMAC longer than the key service verifies does not verify.
  f.Create("ec", TransitKeyType::kEcdsaP256);
  f.Create("mac", TransitKeyType::kHmac);
  const std::string long_value = "vault:v1:" + Base64Encode(Bytes(6145, 0x30));
  CHECK(*f.keyring.Verify("ec", Secret("m"), long_value, {}) == false);
  CHECK(*f.keyring.VerifyHmac("mac", Secret("m"), long_value, "") == false);
}

TEST_CASE("transit: an operation decided on a key acts on that key only") {
  Transit f;
  const std::string rebound =
      "the key name \"k\" was bound to another key while this request ran; retry the request";
  // k was decided on as `a`; then deleted and created again as `b` (a new key-service key).
  const std::string a = f.Create("k").key_id;
  const std::string sealed = f.Seal("k", "decided");
  TransitKeyConfigUpdate allow;
  allow.deletion_allowed = true;
  REQUIRE(f.keyring.UpdateConfig("k", allow).has_value());
  REQUIRE(f.keyring.DeleteKey("k").ok());
  const std::string b = f.Create("k").key_id;
  REQUIRE(f.keyring.UpdateConfig("k", allow).has_value());
  const KeyBinding stale = KeyBinding::Decided("k", a);
  const KeyBinding unbound = KeyBinding::Decided("k", "");
  EncryptInput in;
  in.plaintext = Secret("x");
  DecryptInput ct;
  ct.ciphertext = sealed;
  TransitKeyConfigUpdate update;
  update.min_encryption_version = 1;
  for (const KeyBinding* key : {&stale, &unbound}) {
    INFO((key->decided_key_id()->empty() ? "decided unbound" : "decided on the old key"));
    RequireError(f.keyring.ReadKey(*key), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.CreateKey(*key, {}), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.UpdateConfig(*key, update), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Rotate(*key), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.DeleteKey(*key), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Encrypt(*key, in), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Decrypt(*key, ct), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Rewrap(*key, ct, std::nullopt), StatusCode::kFailedPrecondition,
                 rebound);
    RequireError(f.keyring.GenerateDataKey(*key, 256, {}, {}, std::nullopt, true),
                 StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Hmac(*key, Secret("x"), "", std::nullopt),
                 StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.VerifyHmac(*key, Secret("x"), "vault:v1:AA==", ""),
                 StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Sign(*key, Secret("x"), {}), StatusCode::kFailedPrecondition, rebound);
    RequireError(f.keyring.Verify(*key, Secret("x"), "vault:v1:AA==", {}),
                 StatusCode::kFailedPrecondition, rebound);
  }
  // `b` is untouched, and decided on `b` the same calls act.
  TransitKeyInfo now = *f.keyring.ReadKey("k");
  CHECK(now.key_id == b);
  CHECK(now.latest_version == 1);
  CHECK(now.min_encryption_version == 0);
  const KeyBinding current = KeyBinding::Decided("k", b);
  CHECK(f.keyring.CreateKey(current, {})->key_id == b);
  CHECK(f.keyring.Encrypt(current, in).has_value());
  CHECK(f.keyring.Rotate(current)->latest_version == 2);

  // Decided on a key whose name is unbound now: the path's own "not found", as if the request had
  // come after the delete; a create then creates.
  REQUIRE(f.keyring.DeleteKey(current).ok());
  RequireError(f.keyring.Encrypt(current, in), StatusCode::kNotFound, "encryption key not found");
  RequireError(f.keyring.ReadKey(current), StatusCode::kNotFound, "key not found");
  RequireError(f.keyring.DeleteKey(current), StatusCode::kNotFound,
               "could not delete key; not found");
  RequireError(f.keyring.Sign(current, Secret("x"), {}), StatusCode::kNotFound,
               "signing key not found");
  auto made = f.keyring.CreateKey(current, {});
  REQUIRE(made.has_value());
  CHECK(made->key_id != b);
}

TEST_CASE("transit: a create decided on an unbound name does not take over a racer's key") {
  Transit f;
  kms::testing::HookedStore hooked(*f.store);
  TransitKeyring decided(f.svc(), hooked, f.clock, "transit");
  TransitKeyring racer(f.svc(), *f.store, f.clock, "transit");
  // The racer creates the name inside the create's own transaction window: after its check that
  // the name is unbound (the first transaction) and before its write (the second).
  std::string winner;
  auto race = [&](std::string_view name) {
    hooked.ArmOnce([&, name] {
      hooked.ArmOnce([&, name] { winner = racer.CreateKey(name, {})->key_id; });
    });
  };
  race("one");
  RequireError(decided.CreateKey(KeyBinding::Decided("one", ""), {}),
               StatusCode::kFailedPrecondition,
               "the key name \"one\" was bound to another key while this request ran; retry the "
               "request");
  CHECK(f.keyring.ReadKey("one")->key_id == winner);
  // By name, racers converge on the winner, as before.
  race("two");
  auto converged = decided.CreateKey("two", {});
  REQUIRE(converged.has_value());
  CHECK(converged->key_id == winner);
  // Either way the loser's own key-service key is scheduled for deletion: one live key per name.
  auto keys = f.svc().ListKeys(ListKeysRequest{});
  REQUIRE(keys.has_value());
  int live = 0;
  for (const auto& k : keys->keys) {
    auto d = f.svc().DescribeKey(DescribeKeyRequest{k.key_id});
    REQUIRE(d.has_value());
    if (d->key_metadata.key_state != KeyState::kPendingDeletion) ++live;
  }
  CHECK(live == 2);
}

TEST_CASE("transit: a disabled KMS key refuses transit operations with the key service's state") {
  Transit f;
  TransitKeyInfo info = f.Create("k");
  REQUIRE(f.svc().DisableKey(DisableKeyRequest{info.key_id}).ok());
  EncryptInput in;
  in.plaintext = Secret("x");
  auto out = f.keyring.Encrypt("k", in);
  REQUIRE_FALSE(out.has_value());
  CHECK(out.error().code() == StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kms::firmware::transit
