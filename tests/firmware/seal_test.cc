// The seal's glue (firmware/seal.h) on a real SQLite store: the token PIN is derived, not stored;
// the seal descriptor is written once and read back; a damaged one is DataLoss, not a guess. And
// a ShareCombiner bound to the appliance's split refuses another split's share from the first one.
#include "firmware/seal.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
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

TEST_CASE("seal: the descriptor is written once and read back", "[unit]") {
  TempStore t;
  auto none = ReadSealDescriptor(*t.store);
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  SealDescriptor d;
  d.threshold = 3;
  d.shares = 5;
  d.split_id = {1, 2, 3, 4, 5, 6, 7, 0xff};
  REQUIRE(WriteSealDescriptor(*t.store, d).ok());
  auto back = ReadSealDescriptor(*t.store);
  REQUIRE(back.has_value());
  REQUIRE(back->has_value());
  CHECK((*back)->threshold == 3);
  CHECK((*back)->shares == 5);
  CHECK((*back)->split_id == d.split_id);
  CHECK(FormatSealDescriptor(d) == "v1 threshold=3 shares=5 split=01020304050607ff");
  const Status again = WriteSealDescriptor(*t.store, d);
  CHECK(again.code() == StatusCode::kAlreadyExists);
  CHECK(again.message() == "the store already has a seal descriptor");
}

TEST_CASE("seal: a damaged descriptor is data loss, named", "[unit]") {
  for (auto [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"v2 threshold=3 shares=5 split=0102030405060708",
            "seal descriptor has an unknown version"},
           {"v1 shares=5 split=0102030405060708", "seal descriptor lacks threshold"},
           {"v1 threshold=x shares=5 split=0102030405060708",
            "seal descriptor has a malformed threshold"},
           {"v1 threshold=6 shares=5 split=0102030405060708",
            "seal descriptor has an impossible threshold 6 of 5"},
           {"v1 threshold=3 shares=5", "seal descriptor lacks split"},
           {"v1 threshold=3 shares=5 split=01zz", "seal descriptor has a malformed split"}}) {
    auto parsed = ParseSealDescriptor(text);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code() == StatusCode::kDataLoss);
    CHECK(parsed.error().message() == message);
  }
}

TEST_CASE("seal: a combiner bound to the appliance's split refuses another split at once",
          "[unit]") {
  const SecretBytes secret = *TestRandom(kUnsealSecretSize);
  auto ours = SplitSecret(secret, 2, 3, TestRandom);
  auto theirs = SplitSecret(secret, 2, 3, TestRandom);
  REQUIRE(ours.has_value());
  REQUIRE(theirs.has_value());
  auto first = ParseShare(AsStringView((*ours)[0].ExposeSecret()));
  REQUIRE(first.has_value());
  ShareCombiner combiner(first->split_id);
  const Status foreign = combiner.Add(AsStringView((*theirs)[1].ExposeSecret()));
  REQUIRE_FALSE(foreign.ok());
  CHECK(foreign.message().rfind("share 2 belongs to another split (split ", 0) == 0);
  CHECK(foreign.message().find("this appliance's shares are of split " +
                               HexEncode(first->split_id)) != std::string::npos);
  CHECK(combiner.progress().entered == 0);
  REQUIRE(combiner.Add(AsStringView((*ours)[2].ExposeSecret())).ok());
  REQUIRE(combiner.Add(AsStringView((*ours)[0].ExposeSecret())).ok());
  REQUIRE(combiner.secret().has_value());
  CHECK(*combiner.secret() == secret);
}

}  // namespace
}  // namespace kms::firmware
