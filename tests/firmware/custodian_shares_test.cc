// Custodian shares: every threshold-sized subset rebuilds the secret and smaller ones do not; a
// damaged, foreign, duplicate or forged share is refused with a message that names it and loses
// none of the shares already entered; split refuses shapes that would not protect the secret; and
// libgfshare's gfsplit/gfcombine (an independent implementation of the same field) agree with ours
// in both directions.
#include "firmware/custodian_shares.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"
#include "tests/support/test_random.h"

namespace kms::firmware {
namespace {

namespace fs = std::filesystem;

using testing::TestRandom;

SecretBytes RandomSecret(std::size_t size) { return *TestRandom(size); }

std::vector<std::string> Split(const SecretBytes& secret, std::size_t m, std::size_t n) {
  auto shares = SplitSecret(secret, m, n, TestRandom);
  REQUIRE(shares.has_value());
  REQUIRE(shares->size() == n);
  std::vector<std::string> out;
  for (const SecretBytes& s : *shares) out.push_back(ToString(s.ExposeSecret()));
  return out;
}

std::string ErrorOf(const Status& s) {
  REQUIRE_FALSE(s.ok());
  return s.message();
}

TEST_CASE("shares: every 3 of 5 rebuild the secret, in any order", "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  int subsets = 0;
  for (int a = 0; a < 5; ++a) {
    for (int b = a + 1; b < 5; ++b) {
      for (int c = b + 1; c < 5; ++c) {
        std::vector<int> order{a, b, c};
        do {
          std::vector<std::string_view> chosen;
          for (int i : order) chosen.push_back(shares[static_cast<std::size_t>(i)]);
          auto rebuilt = CombineShares(chosen);
          REQUIRE(rebuilt.has_value());
          CHECK(*rebuilt == secret);
        } while (std::next_permutation(order.begin(), order.end()));
        ++subsets;
      }
    }
  }
  CHECK(subsets == 10);
}

TEST_CASE("shares: other shapes round-trip, from 1 of 1 to 2 of 255 and 255 of 255", "[unit]") {
  for (auto [m, n, size] : std::vector<std::tuple<std::size_t, std::size_t, std::size_t>>{
           {1, 1, 32}, {2, 2, 1}, {2, 255, 32}, {255, 255, 16}, {4, 7, kMaxSharedSecretSize}}) {
    INFO("threshold " << m << " of " << n << ", " << size << " bytes");
    const SecretBytes secret = RandomSecret(size);
    const auto shares = Split(secret, m, n);
    std::vector<std::string_view> last(shares.end() - static_cast<std::ptrdiff_t>(m), shares.end());
    auto rebuilt = CombineShares(last);
    REQUIRE(rebuilt.has_value());
    CHECK(*rebuilt == secret);
  }
}

TEST_CASE(
    "shares: a share is kms1- and hex in groups, each share different, none holding the secret",
    "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  const std::string secret_hex = HexEncode(secret.ExposeSecret());
  for (std::size_t i = 0; i < shares.size(); ++i) {
    INFO(i);
    CHECK(shares[i].rfind("kms1-", 0) == 0);
    // 23 header/checksum bytes + 32 y bytes = 110 hex digits in 14 groups.
    CHECK(shares[i].size() == 4 + 110 + 14);
    CHECK(shares[i].find(secret_hex) == std::string::npos);
    auto parsed = ParseShare(shares[i]);
    REQUIRE(parsed.has_value());
    CHECK(parsed->x == i + 1);
    CHECK(parsed->threshold == 3);
    CHECK_FALSE(parsed->y == secret);
    for (std::size_t j = 0; j < i; ++j) CHECK(shares[i] != shares[j]);
  }
}

TEST_CASE("shares: grouping, spacing and case do not matter when typing a share", "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 2, 3);
  std::string typed;
  for (char c : shares[0]) {
    if (c == '-') continue;
    typed += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (typed.size() % 5 == 0) typed += ' ';
  }
  typed = "  \n" + typed + "\n";
  auto rebuilt = CombineShares({typed, shares[2]});
  REQUIRE(rebuilt.has_value());
  CHECK(*rebuilt == secret);
}

TEST_CASE("shares: fewer than the threshold do not rebuild the secret", "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  auto two = CombineShares({shares[0], shares[4]});
  REQUIRE_FALSE(two.has_value());
  CHECK(two.error().message() == "not enough shares: 2 of the 3 needed");

  ShareCombiner combiner;
  REQUIRE(combiner.Add(shares[1]).ok());
  REQUIRE(combiner.Add(shares[3]).ok());
  CHECK(combiner.progress().entered == 2);
  CHECK(combiner.progress().threshold == 3);
  CHECK_FALSE(combiner.secret().has_value());
}

TEST_CASE("shares: every single-character change to a share is caught before it is used",
          "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  const std::string& good = shares[2];
  int caught = 0;
  for (std::size_t pos = 5; pos < good.size(); ++pos) {
    if (good[pos] == '-') continue;
    std::string bad = good;
    bad[pos] = bad[pos] == 'f' ? '0' : static_cast<char>(bad[pos] == '9' ? 'a' : bad[pos] + 1);
    INFO("position " << pos);
    auto parsed = ParseShare(bad);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().message() ==
          "the share is damaged or mistyped: its checksum does not match (compare it with the "
          "printed share character by character)");
    ++caught;
  }
  CHECK(caught == 110);

  std::string dropped = good;
  dropped.erase(20, 1);
  CHECK(ErrorOf(ParseShare(dropped).error()) ==
        "the share is damaged or mistyped: it has the wrong number of digits (check for a missing "
        "or extra character)");
  CHECK(ErrorOf(ParseShare("kms1-0102zz").error()) ==
        "not a custodian share: after 'kms1-' a share holds only hex digits and '-'");
  CHECK(ErrorOf(ParseShare("hvs.CAESIJ").error()) ==
        "not a custodian share: a share starts with 'kms1-'");
  CHECK(ErrorOf(ParseShare("").error()) == "not a custodian share: a share starts with 'kms1-'");
  // The prefix ignores the case of its letters, and nothing else: a control character that differs
  // from '1' by the case bit (0x11) is no '1'.
  CHECK(ParseShare("KMS1" + good.substr(4)).has_value());
  CHECK(ErrorOf(ParseShare("kms\x11" + good.substr(4)).error()) ==
        "not a custodian share: a share starts with 'kms1-'");
}

TEST_CASE("shares: a damaged share entered mid-unseal is named and the good ones are kept",
          "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  ShareCombiner combiner;
  REQUIRE(combiner.Add(shares[0]).ok());
  REQUIRE(combiner.Add(shares[1]).ok());
  std::string bad = shares[2];
  bad[41] = bad[41] == '0' ? '1' : '0';  // a digit (every 9th character from 5 is a dash)
  CHECK(ErrorOf(combiner.Add(bad)).find("checksum does not match") != std::string::npos);
  CHECK(combiner.progress().entered == 2);
  REQUIRE(combiner.Add(shares[3]).ok());
  REQUIRE(combiner.secret().has_value());
  CHECK(*combiner.secret() == secret);
  CHECK(ErrorOf(combiner.Add(shares[4])) ==
        "the threshold is already reached: no more shares are needed");

  // The batch form names the position of the share that failed.
  auto batch = CombineShares({shares[0], bad, shares[1]});
  REQUIRE_FALSE(batch.has_value());
  CHECK(batch.error().message().rfind("share 2 of 3 entered: the share is damaged or mistyped",
                                      0) == 0);
}

TEST_CASE("shares: a duplicate and a share of another split are refused by number", "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  const auto other = Split(secret, 3, 5);  // same secret, another split: must not mix
  ShareCombiner combiner;
  REQUIRE(combiner.Add(shares[1]).ok());
  CHECK(ErrorOf(combiner.Add(shares[1])) == "share 2 was already entered");
  // Named by number, the split ids not echoed (they are the caller's input, not ours to confirm).
  CHECK(ErrorOf(combiner.Add(other[3])) ==
        "share 4 belongs to another split than the shares "
        "entered so far");
  auto changed = ParseShare(shares[2]);
  REQUIRE(changed.has_value());
  changed->threshold = 2;  // the same split, another threshold: one of the two was altered
  CHECK(ErrorOf(combiner.Add(ToString(FormatShare(*changed).ExposeSecret()))) ==
        "share 3 does not match the shares entered so far: one of them was altered (reset and "
        "enter the shares again)");
  CHECK(combiner.progress().entered == 1);
  combiner.Reset();
  CHECK(combiner.progress().entered == 0);
  CHECK(combiner.progress().threshold == 0);
  REQUIRE(combiner.Add(other[3]).ok());  // after a reset, the other split is welcome
}

TEST_CASE("shares: a share altered and re-checksummed is caught when the secret is rebuilt",
          "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  const auto shares = Split(secret, 3, 5);
  auto forged = ParseShare(shares[4]);
  REQUIRE(forged.has_value());
  forged->y.ExposeSecretMutable()[7] ^= 0x01;
  const SecretBytes forged_text = FormatShare(*forged);
  ShareCombiner combiner;
  REQUIRE(combiner.Add(shares[0]).ok());
  REQUIRE(combiner.Add(shares[1]).ok());
  CHECK(ErrorOf(combiner.Add(AsStringView(forged_text.ExposeSecret()))) ==
        "the shares do not rebuild the secret they were split from: one of them was altered; "
        "every share entered was forgotten, start again");
  CHECK(combiner.progress().entered == 0);
  CHECK_FALSE(combiner.secret().has_value());
}

TEST_CASE("shares: split refuses shapes that would not protect the secret", "[unit]") {
  const SecretBytes secret = RandomSecret(32);
  auto error = [&](const SecretBytes& s, std::size_t m, std::size_t n) {
    auto r = SplitSecret(s, m, n, TestRandom);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == StatusCode::kInvalidArgument);
    return r.error().message();
  };
  CHECK(error(secret, 0, 5) == "the threshold must be 1 to the number of shares (5), got 0");
  CHECK(error(secret, 6, 5) == "the threshold must be 1 to the number of shares (5), got 6");
  CHECK(error(secret, 3, 0) == "the number of shares must be 1 to 255, got 0");
  CHECK(error(secret, 3, 256) == "the number of shares must be 1 to 255, got 256");
  CHECK(error(secret, 1, 3).rfind("a threshold of 1 with more than one share", 0) == 0);
  CHECK(error(SecretBytes(), 2, 3) == "the secret to split must be 1 to 1024 bytes, got 0");
  CHECK(error(RandomSecret(1025), 2, 3) == "the secret to split must be 1 to 1024 bytes, got 1025");

  // A failing RNG fails the split instead of producing predictable shares.
  auto failing = [](std::size_t) -> StatusOr<SecretBytes> {
    return UnavailableError("HSM RNG unavailable");
  };
  auto r = SplitSecret(secret, 3, 5, failing);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message() == "HSM RNG unavailable");
}

// --- libgfshare as an oracle
// ----------------------------------------------------------------------

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kms-shares-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { fs::remove_all(path); }
};

void WriteFile(const fs::path& path, ByteView bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

Bytes ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int Run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

TEST_CASE("shares: libgfshare's gfcombine rebuilds our shares and we rebuild gfsplit's", "[unit]") {
  if (!fs::exists("/usr/bin/gfsplit") || !fs::exists("/usr/bin/gfcombine")) {
    WARN(
        "SKIPPED: libgfshare-bin is not installed (tools/setup installs it), the oracle did not "
        "run");
    return;
  }
  TempDir dir;
  const SecretBytes secret = RandomSecret(32);

  // Ours -> gfcombine: each share's y bytes in a file named after its x.
  const auto shares = Split(secret, 3, 5);
  std::string files;
  for (std::size_t i : {4u, 1u, 2u}) {  // shares 5, 2 and 3
    auto parsed = ParseShare(shares[i]);
    REQUIRE(parsed.has_value());
    char name[16];
    std::snprintf(name, sizeof name, "ours.%03d", parsed->x);
    WriteFile(dir.path / name, parsed->y.ExposeSecret());
    files += " " + (dir.path / name).string();
  }
  REQUIRE(Run("gfcombine -o " + (dir.path / "combined").string() + files) == 0);
  CHECK(ReadFile(dir.path / "combined") ==
        Bytes(secret.ExposeSecret().begin(), secret.ExposeSecret().end()));

  // gfsplit -> ours: pack its y values (x from the file suffix) into shares of one split.
  WriteFile(dir.path / "secret", secret.ExposeSecret());
  REQUIRE(Run("gfsplit -n 3 -m 5 " + (dir.path / "secret").string() + " " +
              (dir.path / "theirs").string()) == 0);
  CustodianShare share;
  share.split_id = {1, 2, 3, 4, 5, 6, 7, 8};
  share.threshold = 3;
  share.commitment = ShareCommitment(share.split_id, share.threshold, secret);
  std::vector<std::string> texts;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("theirs.", 0) != 0) continue;
    share.x = static_cast<std::uint8_t>(std::stoi(name.substr(7)));
    Bytes y = ReadFile(entry.path());
    share.y = SecretBytes::CopyFrom(y);
    texts.push_back(ToString(FormatShare(share).ExposeSecret()));
  }
  REQUIRE(texts.size() == 5);
  auto rebuilt = CombineShares({texts[0], texts[2], texts[4]});
  REQUIRE(rebuilt.has_value());
  CHECK(*rebuilt == secret);
}

}  // namespace
}  // namespace kms::firmware
