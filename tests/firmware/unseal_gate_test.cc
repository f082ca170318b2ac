// The unseal gate (firmware/app/unseal_gate.h) on a real SQLite store, with a pinned clock and a
// counting `open` in place of the HSM login: the seal descriptor decides every share and the
// rebuilt secret, and `open` (hence C_Login) is reached only with the PIN of the appliance's own
// secret. Forged shares (threshold 1, another split, a number beyond the shares made, their own
// commitment, another size) are refused without disturbing the shares entered; a secret the
// verifier refuses is never turned into a PIN; failed combinations lock the gate for 60 s,
// doubling up to an hour; a store made before verifiers lets the login decide until it accepts a
// PIN, and then gets its verifier. No message and no log line holds a split id or a share.
#include "firmware/app/unseal_gate.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/test_random.h"

namespace kms::app {
namespace {

namespace fs = std::filesystem;
using firmware::CustodianShare;
using firmware::SealDescriptor;
using testing::TestRandom;

constexpr std::string_view kForeign =
    "the share does not belong to this appliance (a foreign split, or another threshold or number "
    "of shares): it was refused, and the shares entered so far are kept";
constexpr std::string_view kWrongSecret =
    "the shares do not rebuild this appliance's unseal secret: every share entered was forgotten, "
    "start again";
constexpr std::string_view kAltered =
    "the shares do not rebuild the secret they were split from: one of them was altered; every "
    "share entered was forgotten, start again";

std::string Text(const SecretBytes& s) { return ToString(s.ExposeSecret()); }

// `secret` split `threshold` of `shares` under the split id `split` (the forger picks it: the real
// one is printed on every custodian's share and in kms-provision's output).
std::vector<std::string> SplitUnder(const std::array<std::uint8_t, firmware::kSplitIdSize>& split,
                                    const SecretBytes& secret, std::size_t threshold,
                                    std::size_t shares) {
  bool split_drawn = false;
  const firmware::RandomSource random = [&](std::size_t size) -> StatusOr<SecretBytes> {
    if (!split_drawn && size == firmware::kSplitIdSize) {
      split_drawn = true;
      return SecretBytes::CopyFrom(split);
    }
    return TestRandom(size);
  };
  auto made = firmware::SplitSecret(secret, threshold, shares, random);
  REQUIRE(made.has_value());
  std::vector<std::string> out;
  for (const SecretBytes& s : *made) out.push_back(Text(s));
  return out;
}

// One share with every field chosen, and a valid checksum.
std::string Forge(const std::array<std::uint8_t, firmware::kSplitIdSize>& split,
                  std::uint8_t threshold, std::uint8_t x,
                  const std::array<std::uint8_t, 8>& commitment, const SecretBytes& y) {
  CustodianShare share;
  share.split_id = split;
  share.threshold = threshold;
  share.x = x;
  share.commitment = commitment;
  share.y = y.Clone();
  return Text(firmware::FormatShare(share));
}

// A provisioned appliance's store and shares, and a stand-in for the HSM login that records the
// PINs it is handed.
struct Appliance {
  fs::path dir;
  std::unique_ptr<firmware::store::MetadataStore> store;
  std::FILE* log_file = std::tmpfile();
  log::Logger logs{log_file, log::Level::kDebug};
  std::chrono::steady_clock::time_point now{std::chrono::hours(100)};
  SecretBytes secret = *TestRandom(firmware::kUnsealSecretSize);
  std::vector<std::string> shares;
  SealDescriptor descriptor;
  std::vector<SecretBytes> pins_tried;
  OpenOutcome next_open{Status(), true};
  UnsealGate::Open open = [this](SecretBytes pin) {
    pins_tried.push_back(std::move(pin));
    return next_open;
  };

  // `v1`: the descriptor a store made before verifiers has (no commitment, no verifier).
  explicit Appliance(bool v1 = false) {
    std::string pattern = (fs::temp_directory_path() / "kms-unseal-gate-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    firmware::store::SqliteStoreOptions options;
    options.path = (dir / "kms.db").string();
    auto opened = firmware::store::OpenSqliteStore(options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
    auto made = firmware::SplitSecret(secret, 3, 5, TestRandom);
    REQUIRE(made.has_value());
    for (const SecretBytes& s : *made) shares.push_back(Text(s));
    auto first = firmware::ParseShare(shares[0]);
    REQUIRE(first.has_value());
    descriptor = firmware::MakeSealDescriptor(first->split_id, 3, 5, secret);
    if (v1) {
      descriptor.commitment.reset();
      descriptor.verifier.reset();
    }
    REQUIRE(firmware::WriteSealDescriptor(*store, descriptor).ok());
  }
  ~Appliance() {
    store.reset();
    std::fclose(log_file);
    fs::remove_all(dir);
  }

  UnsealGate Gate(UnsealLimits limits = {}) {
    return UnsealGate(
        *store, descriptor, logs, [this] { return now; }, limits);
  }
  std::string Log() const {
    std::fflush(log_file);
    std::rewind(log_file);
    std::string text;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, log_file)) > 0) text.append(buffer, n);
    return text;
  }
  std::string StoredDescriptor() const {
    auto txn = store->Begin(firmware::store::TransactionMode::kReadOnly);
    REQUIRE(txn.has_value());
    auto value = (*txn)->GetMeta(firmware::kSealDescriptorMeta);
    REQUIRE(value.has_value());
    return *value;
  }
  // Nothing the caller sent, and no split id, in a message or in the log.
  void RequireNothingEchoed(const std::vector<std::string>& sent, const std::string& message) {
    const std::string log = Log();
    const std::string split = HexEncode(descriptor.split_id);
    CHECK(message.find(split) == std::string::npos);
    CHECK(log.find(split) == std::string::npos);
    for (const std::string& s : sent) {
      const std::string hex = s.substr(5, 8);  // the first group: version and split id
      CHECK(log.find(s) == std::string::npos);
      CHECK(message.find(hex) == std::string::npos);
      CHECK(log.find(hex) == std::string::npos);
    }
  }
};

std::string Refused(UnsealGate& gate, const std::string& share, const UnsealGate::Open& open,
                    StatusCode code = StatusCode::kInvalidArgument) {
  auto added = gate.Add(share, open);
  REQUIRE_FALSE(added.has_value());
  CHECK(added.error().code() == code);
  return added.error().message();
}

bool Accepted(UnsealGate& gate, const std::string& share, const UnsealGate::Open& open) {
  auto added = gate.Add(share, open);
  INFO((added.has_value() ? std::string("ok") : added.error().ToString()));
  REQUIRE(added.has_value());
  return *added;
}

TEST_CASE(
    "unseal gate: forged shares are refused without disturbing the custodians, and never "
    "reach the login",
    "[unit]") {
  Appliance a;
  UnsealGate gate = a.Gate();
  const auto split = a.descriptor.split_id;
  const SecretBytes chosen = *TestRandom(32);  // the secret (and PIN) the forger wants tried
  const std::string threshold_one =
      Forge(split, 1, 1, firmware::ShareCommitment(split, 1, chosen), chosen);
  std::vector<std::string> forged{threshold_one};
  CHECK(Refused(gate, threshold_one, a.open) == kForeign);  // as the very first share
  CHECK(gate.progress() == 0);

  CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
  CHECK(gate.progress() == 1);
  CHECK(Refused(gate, threshold_one, a.open) == kForeign);
  // Another split, even of the same secret.
  auto other = firmware::SplitSecret(a.secret, 3, 5, TestRandom);
  REQUIRE(other.has_value());
  forged.push_back(Text((*other)[1]));
  // Share 9 of a 5-share appliance, with the appliance's own commitment.
  forged.push_back(Forge(split, 3, 9, *a.descriptor.commitment, *TestRandom(32)));
  // The real split and threshold, the forger's own commitment.
  forged.push_back(SplitUnder(split, chosen, 3, 5)[3]);
  // Another threshold, with the forger's commitment or the appliance's; another secret size.
  forged.push_back(SplitUnder(split, chosen, 2, 5)[3]);
  forged.push_back(Forge(split, 1, 2, *a.descriptor.commitment, chosen));
  forged.push_back(Forge(split, 2, 2, *a.descriptor.commitment, chosen));
  forged.push_back(Forge(split, 3, 4, *a.descriptor.commitment, *TestRandom(31)));
  for (std::size_t i = 1; i < forged.size(); ++i) {
    CAPTURE(i);
    CHECK(Refused(gate, forged[i], a.open) == kForeign);
    CHECK(gate.progress() == 1);
  }
  CHECK(a.pins_tried.empty());
  CHECK(gate.failed_attempts() == 0);  // refused shares never reach the HSM: not counted

  CHECK_FALSE(Accepted(gate, a.shares[3], a.open));
  CHECK(Accepted(gate, a.shares[4], a.open));
  REQUIRE(a.pins_tried.size() == 1);
  CHECK(a.pins_tried[0] == firmware::TokenPinFromUnsealSecret(a.secret));
  a.RequireNothingEchoed(forged, std::string(kForeign));
  CHECK(a.Log().find("\"msg\":\"unseal share refused\"") != std::string::npos);
}

TEST_CASE("unseal gate: a secret the verifier refuses is never turned into a PIN", "[unit]") {
  Appliance a;
  // The store's verifier is of another secret (a tampered store, or shares of another appliance
  // that happen to pass every per-share check).
  a.descriptor.verifier = firmware::UnsealSecretVerifier(*TestRandom(32));
  UnsealGate gate = a.Gate();
  CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
  CHECK(Refused(gate, a.shares[2], a.open) == kWrongSecret);
  CHECK(a.pins_tried.empty());
  CHECK(gate.progress() == 0);
  CHECK(gate.failed_attempts() == 1);
  CHECK(a.Log().find("\"msg\":\"unseal attempt failed\",\"reason\":\"" + std::string(kWrongSecret) +
                     "\",\"failed_attempts\":1,\"locked_for_s\":0") != std::string::npos);
  a.RequireNothingEchoed(a.shares, std::string(kWrongSecret));
}

// Three real shares, one of them altered and re-checksummed: every per-share check passes, the
// combination fails.
void FailOnce(Appliance& a, UnsealGate& gate, const std::string& expected) {
  auto altered = firmware::ParseShare(a.shares[2]);
  REQUIRE(altered.has_value());
  altered->y.ExposeSecretMutable()[5] ^= 0x40;
  CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
  CHECK(Refused(gate, Text(firmware::FormatShare(*altered)), a.open) == expected);
}

TEST_CASE(
    "unseal gate: the third failed combination in a row locks the gate for 60 s, and a success "
    "clears the count",
    "[unit]") {
  Appliance a;
  UnsealGate gate = a.Gate();
  FailOnce(a, gate, std::string(kAltered));
  FailOnce(a, gate, std::string(kAltered));
  FailOnce(a, gate,
           std::string(kAltered) +
               " (3 failed attempts in a row: shares are refused for the next 60 s)");
  CHECK(gate.failed_attempts() == 3);
  const std::string locked =
      "too many failed unseal attempts (3 in a row): shares are refused for ";
  CHECK(Refused(gate, a.shares[0], a.open, StatusCode::kResourceExhausted) ==
        locked + "another 60 s");
  gate.Reset();  // a reset is still taken; it does not lift the lockout
  a.now += std::chrono::milliseconds(59'500);
  CHECK(Refused(gate, a.shares[0], a.open, StatusCode::kResourceExhausted) ==
        locked + "another 1 s");
  CHECK(gate.progress() == 0);
  CHECK(a.pins_tried.empty());
  a.now += std::chrono::milliseconds(500);  // the lockout has run out
  CHECK_FALSE(Accepted(gate, a.shares[4], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[3], a.open));
  CHECK(Accepted(gate, a.shares[1], a.open));
  CHECK(a.pins_tried.size() == 1);
  CHECK(gate.failed_attempts() == 0);
  FailOnce(a, gate, std::string(kAltered));  // counted from one again: no lockout
  CHECK(gate.failed_attempts() == 1);
  CHECK(a.Log().find("\"msg\":\"unseal attempt failed\",\"reason\":\"" + std::string(kAltered) +
                     "\",\"failed_attempts\":3,\"locked_for_s\":60") != std::string::npos);
  a.RequireNothingEchoed(a.shares, locked);
}

TEST_CASE("unseal gate: each further failure doubles the lockout, up to an hour", "[unit]") {
  Appliance a;
  a.descriptor.verifier = firmware::UnsealSecretVerifier(*TestRandom(32));
  UnsealGate gate = a.Gate();
  const std::vector<int> lockouts{0, 0, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600};
  for (std::size_t i = 0; i < lockouts.size(); ++i) {
    CAPTURE(i);
    std::string expected(kWrongSecret);
    if (lockouts[i] > 0) {
      expected += " (" + std::to_string(i + 1) +
                  " failed attempts in a row: shares are refused for the next " +
                  std::to_string(lockouts[i]) + " s)";
    }
    CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
    CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
    CHECK(Refused(gate, a.shares[2], a.open) == expected);
    if (lockouts[i] > 0) {
      a.now += std::chrono::seconds(lockouts[i]) - std::chrono::seconds(1);
      CHECK(Refused(gate, a.shares[0], a.open, StatusCode::kResourceExhausted) ==
            "too many failed unseal attempts (" + std::to_string(i + 1) +
                " in a row): shares are refused for another 1 s");
      a.now += std::chrono::seconds(1);
    }
  }
  CHECK(a.pins_tried.empty());
}

TEST_CASE("unseal gate: a verified secret that fails to open is not a failed combination",
          "[unit]") {
  Appliance a;
  UnsealGate gate = a.Gate();
  const Status rollback = FailedPreconditionError("unseal failed: store: the store is older");
  a.next_open = OpenOutcome{rollback, true};
  for (int i = 0; i < 4; ++i) {
    CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
    CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
    CHECK(Refused(gate, a.shares[2], a.open, StatusCode::kFailedPrecondition) ==
          rollback.message());
  }
  CHECK(gate.failed_attempts() == 0);
  CHECK(a.pins_tried.size() == 4);
  a.next_open = OpenOutcome{Status(), true};
  CHECK_FALSE(Accepted(gate, a.shares[2], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[3], a.open));
  CHECK(Accepted(gate, a.shares[4], a.open));
}

TEST_CASE(
    "unseal gate: a store made before verifiers lets the login decide, then gets its "
    "verifier",
    "[unit]") {
  Appliance a(/*v1=*/true);
  const auto split = a.descriptor.split_id;
  CHECK(a.StoredDescriptor() == "v1 threshold=3 shares=5 split=" + HexEncode(split));
  UnsealGate gate = a.Gate();
  // Without a commitment to compare, the descriptor's threshold still decides: the forged
  // threshold-1 share that would have made the login happen at once is refused.
  const SecretBytes one = *TestRandom(32);
  CHECK(Refused(gate, Forge(split, 1, 1, firmware::ShareCommitment(split, 1, one), one), a.open) ==
        kForeign);
  CHECK(a.pins_tried.empty());
  // The weaker window: a forged full set (the real split id, its own commitment) reaches the
  // login, which refuses its PIN. The refusal counts like any failed combination.
  const SecretBytes chosen = *TestRandom(32);
  const auto forged = SplitUnder(split, chosen, 3, 5);
  const Status refused_login = FailedPreconditionError("unseal failed: the HSM refused the PIN");
  a.next_open = OpenOutcome{refused_login, false};
  CHECK_FALSE(Accepted(gate, forged[0], a.open));
  CHECK_FALSE(Accepted(gate, forged[1], a.open));
  CHECK(Refused(gate, forged[2], a.open, StatusCode::kFailedPrecondition) ==
        refused_login.message());
  REQUIRE(a.pins_tried.size() == 1);
  CHECK(a.pins_tried[0] == firmware::TokenPinFromUnsealSecret(chosen));
  CHECK(gate.failed_attempts() == 1);
  CHECK(a.StoredDescriptor() == "v1 threshold=3 shares=5 split=" + HexEncode(split));
  CHECK(a.Log().find("the seal descriptor has no verifier") != std::string::npos);

  // The custodians: the token takes the PIN, and the descriptor gets commitment and verifier.
  a.next_open = OpenOutcome{Status(), true};
  CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[2], a.open));
  CHECK(Accepted(gate, a.shares[3], a.open));
  CHECK(gate.failed_attempts() == 0);
  const SealDescriptor complete = firmware::MakeSealDescriptor(split, 3, 5, a.secret);
  CHECK(a.StoredDescriptor() == firmware::FormatSealDescriptor(complete));
  CHECK(gate.descriptor().verifier == complete.verifier);
  CHECK(a.Log().find("seal descriptor completed with the unseal secret's verifier") !=
        std::string::npos);

  // From now on the descriptor decides: the same forgery is refused at its first share.
  CHECK(Refused(gate, forged[0], a.open) == kForeign);
  CHECK(a.pins_tried.size() == 2);
  a.RequireNothingEchoed(forged, std::string(kForeign));
}

TEST_CASE(
    "unseal gate: a v1 store whose token took the PIN gets its verifier even if a later "
    "step fails",
    "[unit]") {
  Appliance a(/*v1=*/true);
  UnsealGate gate = a.Gate();
  a.next_open = OpenOutcome{FailedPreconditionError("unseal failed: store: older"), true};
  CHECK_FALSE(Accepted(gate, a.shares[0], a.open));
  CHECK_FALSE(Accepted(gate, a.shares[1], a.open));
  CHECK(Refused(gate, a.shares[2], a.open, StatusCode::kFailedPrecondition) ==
        "unseal failed: store: older");
  CHECK(gate.failed_attempts() == 0);
  CHECK(a.StoredDescriptor() == firmware::FormatSealDescriptor(firmware::MakeSealDescriptor(
                                    a.descriptor.split_id, 3, 5, a.secret)));
}

}  // namespace
}  // namespace kms::app
