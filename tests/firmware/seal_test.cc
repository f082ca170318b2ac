// The seal's glue (firmware/seal.h) on a real SQLite store: the token PIN and the verifier are
// derived, not stored; the seal descriptor (v2 with commitment and verifier, v1 without) is
// written once and read back; a damaged one is DataLoss, not a guess; a v1 descriptor is completed
// with the verifier of a proven secret, once. And a ShareCombiner bound to the descriptor refuses,
// from the first share on and without naming a split, a share of another split, threshold, count,
// size or commitment.
#include "firmware/seal.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "base/encoding.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/test_random.h"

namespace kms::firmware {
namespace {

namespace fs = std::filesystem;

using testing::TestRandom;

struct TempStore {
  fs::path dir;
  std::unique_ptr<store::MetadataStore> store;
  TempStore() {
    std::string pattern = (fs::temp_directory_path() / "kms-seal-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    store::SqliteStoreOptions options;
    options.path = (dir / "kms.db").string();
    auto opened = store::OpenSqliteStore(options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
  }
  ~TempStore() {
    store.reset();
    fs::remove_all(dir);
  }
};

TEST_CASE("seal: the backup KEK and MAC key are HMACs of the secret under their own labels",
          "[unit]") {
  SecretBytes secret(kUnsealSecretSize);
  for (std::size_t i = 0; i < secret.size(); ++i) {
    secret.ExposeSecretMutable()[i] = static_cast<std::uint8_t>(i);
  }
  // Known answers: HMAC-SHA256(key = bytes 0..31, label), computed with /usr/bin/python3 hmac.
  CHECK(HexEncode(BackupKekFromUnsealSecret(secret).ExposeSecret()) ==
        "a53b5c3dfab53c97fe28ceadceee94a63765e389de3b129e13683ebd4dac96b1");
  CHECK(HexEncode(BackupMacKeyFromUnsealSecret(secret).ExposeSecret()) ==
        "931d27b68dc9dd949f69c9e9d6ed8d6eed84ab761498437f8928b8f5767d319f");
  // Three independent keys from one secret: none is another, nor the secret itself.
  const SecretBytes kek = BackupKekFromUnsealSecret(secret);
  const SecretBytes mac = BackupMacKeyFromUnsealSecret(secret);
  CHECK(kek.size() == 32);
  CHECK_FALSE(kek == mac);
  CHECK_FALSE(kek == secret);
  CHECK(HexEncode(kek.ExposeSecret()) != ToString(TokenPinFromUnsealSecret(secret).ExposeSecret()));
  CHECK_FALSE(BackupKekFromUnsealSecret(*TestRandom(kUnsealSecretSize)) == kek);
}

TEST_CASE("seal: the token PIN is 64 hex digits of an HMAC of the secret, one per secret",
          "[unit]") {
  const SecretBytes secret = *TestRandom(kUnsealSecretSize);
  const SecretBytes pin = TokenPinFromUnsealSecret(secret);
  REQUIRE(pin.size() == 64);
  for (std::uint8_t c : pin.ExposeSecret())
    CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
  CHECK(TokenPinFromUnsealSecret(secret) == pin);
  CHECK_FALSE(TokenPinFromUnsealSecret(*TestRandom(kUnsealSecretSize)) == pin);
  // The PIN is not the secret in hex: a leaked PIN gives no share-free way to the secret.
  CHECK(ToString(pin.ExposeSecret()) != HexEncode(secret.ExposeSecret()));
  // HMAC-SHA256(key = 32 zero bytes, "kms token user PIN v1"), computed with Python's hmac.
  CHECK(ToString(TokenPinFromUnsealSecret(SecretBytes(32)).ExposeSecret()) ==
        "7a8f352beb228b77f82fa8ac149736acfa85c7f23bc0d132aa5ce1cb169856da");
}

TEST_CASE("seal: the verifier is an HMAC of the secret under its own label, checked in full",
          "[unit]") {
  SecretBytes secret(kUnsealSecretSize);
  for (std::size_t i = 0; i < secret.size(); ++i) {
    secret.ExposeSecretMutable()[i] = static_cast<std::uint8_t>(i);
  }
  // HMAC-SHA256(key = bytes 0..31, "kms unseal secret verifier v1"), computed with Python's hmac.
  CHECK(HexEncode(UnsealSecretVerifier(secret)) ==
        "a69019c819a00fc8ceb27bd915edef065dd6f7247da1213aa331fc6272ff39e0");
  CHECK(HexEncode(UnsealSecretVerifier(SecretBytes(32))) ==
        "4e0201e56534ca2dfd5e1a849671479e59637351ae6a7ee2baec67f499b9366f");
  // Independent of the PIN and the backup keys derived from the same secret.
  CHECK(HexEncode(UnsealSecretVerifier(secret)) !=
        HexEncode(BackupKekFromUnsealSecret(secret).ExposeSecret()));
  CHECK(HexEncode(UnsealSecretVerifier(secret)) !=
        HexEncode(BackupMacKeyFromUnsealSecret(secret).ExposeSecret()));

  const SealDescriptor d = MakeSealDescriptor({1, 2, 3, 4, 5, 6, 7, 0xff}, 3, 5, secret);
  CHECK(VerifyUnsealSecret(d, secret));
  // Any change of the secret, in any byte, is refused.
  for (std::size_t i = 0; i < secret.size(); ++i) {
    SecretBytes other = secret.Clone();
    other.ExposeSecretMutable()[i] ^= 0x01;
    CHECK_FALSE(VerifyUnsealSecret(d, other));
  }
  SealDescriptor v1 = d;
  v1.verifier.reset();
  CHECK_FALSE(VerifyUnsealSecret(v1, secret));  // no verifier vouches for nothing
  // The commitment is the shares' own (custodian_shares.h), over the split and threshold.
  CHECK(HexEncode(*d.commitment) == "bc4385b8303439e7");
  CHECK(*d.commitment == ShareCommitment(d.split_id, 3, secret));
}

TEST_CASE("seal: the descriptor is written once and read back", "[unit]") {
  TempStore t;
  auto none = ReadSealDescriptor(*t.store);
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  SecretBytes secret(kUnsealSecretSize);
  for (std::size_t i = 0; i < secret.size(); ++i) {
    secret.ExposeSecretMutable()[i] = static_cast<std::uint8_t>(i);
  }
  const SealDescriptor d = MakeSealDescriptor({1, 2, 3, 4, 5, 6, 7, 0xff}, 3, 5, secret);
  REQUIRE(WriteSealDescriptor(*t.store, d).ok());
  auto back = ReadSealDescriptor(*t.store);
  REQUIRE(back.has_value());
  REQUIRE(back->has_value());
  CHECK((*back)->threshold == 3);
  CHECK((*back)->shares == 5);
  CHECK((*back)->split_id == d.split_id);
  CHECK((*back)->commitment == d.commitment);
  CHECK((*back)->verifier == d.verifier);
  CHECK(FormatSealDescriptor(d) ==
        "v2 threshold=3 shares=5 split=01020304050607ff commitment=bc4385b8303439e7 "
        "verifier=a69019c819a00fc8ceb27bd915edef065dd6f7247da1213aa331fc6272ff39e0");
  const Status again = WriteSealDescriptor(*t.store, d);
  CHECK(again.code() == StatusCode::kAlreadyExists);
  CHECK(again.message() == "the store already has a seal descriptor");

  // A descriptor written before verifiers existed still reads, without them.
  auto v1 = ParseSealDescriptor("v1 threshold=2 shares=3 split=0102030405060708");
  REQUIRE(v1.has_value());
  CHECK(v1->threshold == 2);
  CHECK(v1->shares == 3);
  CHECK_FALSE(v1->commitment.has_value());
  CHECK_FALSE(v1->verifier.has_value());
  CHECK(FormatSealDescriptor(*v1) == "v1 threshold=2 shares=3 split=0102030405060708");
}

TEST_CASE("seal: a damaged descriptor is data loss, named", "[unit]") {
  const std::string verifier(64, 'a');
  for (auto [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"v3 threshold=3 shares=5 split=0102030405060708",
            "seal descriptor has an unknown version"},
           {"v1 shares=5 split=0102030405060708", "seal descriptor lacks threshold"},
           {"v1 threshold=x shares=5 split=0102030405060708",
            "seal descriptor has a malformed threshold"},
           {"v1 threshold=6 shares=5 split=0102030405060708",
            "seal descriptor has an impossible threshold 6 of 5"},
           {"v1 threshold=3 shares=5", "seal descriptor lacks split"},
           {"v1 threshold=3 shares=5 split=01zz", "seal descriptor has a malformed split"},
           {"v1 threshold=3 shares=5 split=010203040506070809",
            "seal descriptor has a malformed split"},
           {"v2 threshold=3 shares=5 split=0102030405060708", "seal descriptor lacks commitment"},
           {"v2 threshold=3 shares=5 split=0102030405060708 commitment=0102030405060708",
            "seal descriptor lacks verifier"},
           {"v2 threshold=3 shares=5 split=0102030405060708 commitment=01020304 verifier=" +
                verifier,
            "seal descriptor has a malformed commitment"},
           {"v2 threshold=3 shares=5 split=0102030405060708 commitment=0102030405060708 "
            "verifier=" +
                verifier.substr(2),
            "seal descriptor has a malformed verifier"},
           {"v2 threshold=3 shares=5 split=0102030405060708 commitment=0102030405060708 "
            "verifier=" +
                verifier.substr(2) + "zz",
            "seal descriptor has a malformed verifier"}}) {
    CAPTURE(text);
    auto parsed = ParseSealDescriptor(text);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code() == StatusCode::kDataLoss);
    CHECK(parsed.error().message() == message);
  }
}

TEST_CASE("seal: a v1 descriptor is completed with the verifier of a proven secret, once",
          "[unit]") {
  TempStore t;
  const SecretBytes secret = *TestRandom(kUnsealSecretSize);
  const std::array<std::uint8_t, kSplitIdSize> split{8, 7, 6, 5, 4, 3, 2, 1};
  auto missing = CompleteSealDescriptor(*t.store, secret);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code() == StatusCode::kNotFound);
  CHECK(missing.error().message() == "the store has no seal descriptor");

  SealDescriptor v1;
  v1.threshold = 3;
  v1.shares = 5;
  v1.split_id = split;
  REQUIRE(WriteSealDescriptor(*t.store, v1).ok());
  auto completed = CompleteSealDescriptor(*t.store, secret);
  REQUIRE(completed.has_value());
  const SealDescriptor expected = MakeSealDescriptor(split, 3, 5, secret);
  CHECK(FormatSealDescriptor(*completed) == FormatSealDescriptor(expected));
  auto stored = ReadSealDescriptor(*t.store);
  REQUIRE(stored.has_value());
  CHECK(FormatSealDescriptor(**stored) == FormatSealDescriptor(expected));
  // Again with the same secret: nothing to do. With another: refused, the store unchanged.
  CHECK(CompleteSealDescriptor(*t.store, secret).has_value());
  auto other = CompleteSealDescriptor(*t.store, *TestRandom(kUnsealSecretSize));
  REQUIRE_FALSE(other.has_value());
  CHECK(other.error().code() == StatusCode::kFailedPrecondition);
  CHECK(other.error().message() ==
        "the store's seal descriptor has a verifier of another unseal secret");
  stored = ReadSealDescriptor(*t.store);
  REQUIRE(stored.has_value());
  CHECK(FormatSealDescriptor(**stored) == FormatSealDescriptor(expected));
}

TEST_CASE(
    "seal: a combiner bound to the descriptor refuses a foreign share at once, keeping the "
    "shares entered",
    "[unit]") {
  const std::string foreign =
      "the share does not belong to this appliance (a foreign split, or another threshold or "
      "number of shares): it was refused, and the shares entered so far are kept";
  const SecretBytes secret = *TestRandom(kUnsealSecretSize);
  auto ours = SplitSecret(secret, 2, 3, TestRandom);
  auto theirs = SplitSecret(secret, 2, 3, TestRandom);
  REQUIRE(ours.has_value());
  REQUIRE(theirs.has_value());
  auto first = ParseShare(AsStringView((*ours)[0].ExposeSecret()));
  REQUIRE(first.has_value());
  for (const bool v1 : {false, true}) {
    CAPTURE(v1);
    SealDescriptor d = MakeSealDescriptor(first->split_id, 2, 3, secret);
    if (v1) {
      d.commitment.reset();
      d.verifier.reset();
    }
    ShareCombiner combiner(ExpectedShares(d));
    CHECK(combiner.progress().threshold == 2);  // the descriptor's, before any share
    const Status other_split = combiner.Add(AsStringView((*theirs)[1].ExposeSecret()));
    CHECK(other_split.code() == StatusCode::kInvalidArgument);
    CHECK(other_split.message() == foreign);
    CHECK(other_split.message().find(HexEncode(first->split_id)) == std::string::npos);
    CHECK(combiner.progress().entered == 0);
    REQUIRE(combiner.Add(AsStringView((*ours)[2].ExposeSecret())).ok());
    // The real split with another threshold, number or size: refused, share 3 kept.
    CustodianShare forged = ParseShare(AsStringView((*ours)[1].ExposeSecret())).value();
    for (auto change : std::vector<std::function<void(CustodianShare&)>>{
             [](CustodianShare& s) { s.threshold = 1; }, [](CustodianShare& s) { s.threshold = 3; },
             [](CustodianShare& s) { s.x = 4; },
             [](CustodianShare& s) { s.y = SecretBytes(31); }}) {
      CustodianShare changed;
      changed.split_id = forged.split_id;
      changed.threshold = forged.threshold;
      changed.x = forged.x;
      changed.commitment = forged.commitment;
      changed.y = forged.y.Clone();
      change(changed);
      CHECK(combiner.Add(AsStringView(FormatShare(changed).ExposeSecret())).message() == foreign);
      CHECK(combiner.progress().entered == 1);
    }
    REQUIRE(combiner.Add(AsStringView((*ours)[0].ExposeSecret())).ok());
    REQUIRE(combiner.secret().has_value());
    CHECK(*combiner.secret() == secret);
  }
}

}  // namespace
}  // namespace kms::firmware
