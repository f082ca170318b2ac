// Tampering with a written audit log (docs/access-control.md "Audit records"): for a 310-record log
// in several rotated files with a checkpoint every 50 records, EVERY line is changed (one byte of
// each field kind that applies to it), deleted, duplicated, preceded by a forged record with the
// rest of the chain recomputed, and swapped with its neighbour; each tampering must be reported at
// exactly the expected first broken line with exactly the expected reason. For a 10,000-record
// log, ~200 positions per kind are drawn with a fixed seed. A checkpoint re-signed with another
// key is named as such.
//
// The two sweeps sign their checkpoints with RSA-2048 PKCS#1 v1.5 (a key in the fake HSM) rather
// than the appliance's ECDSA P-256: the verifier takes any key mbedTLS verifies with SHA-256, the
// chain logic under test does not depend on the algorithm, and an RSA verification costs ~1/30 of
// an ECDSA one, which keeps ~5,000 full verifications within a unit suite's time. The ECDSA path
// is what the other audit tests (and the re-signing case below) use.
#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "firmware/audit/audit_log.h"
#include "firmware/audit/audit_verify.h"
#include "tests/firmware/audit_test_support.h"

namespace kms::firmware::audit {
namespace {

namespace json = boost::json;
using testing::Lines;
using testing::MakeEvent;
using testing::OpenLog;
using testing::ReadLog;
using testing::SignerFixture;
using testing::TempDir;
using testing::TestClock;

// Checkpoints signed by an RSA-2048 key in the fake HSM (see the file comment for why).
class RsaTestSigner final : public AuditSigner {
 public:
  explicit RsaTestSigner(hal::Hsm& hsm) : hsm_(hsm) {
    auto key = hsm.GenerateKey(hal::KeyAlgorithm::kRsa2048, hal::KeyPurpose::kSignVerify);
    if (!key) FAIL(key.error().ToString());
    key_ = *key;
    auto der = hsm.PublicKeyDer(key_);
    if (!der) FAIL(der.error().ToString());
    public_key_der_ = *der;
  }
  StatusOr<Bytes> SignDigest(ByteView digest) override {
    return hsm_.SignDigest(key_, hal::SignatureAlgorithm::kRsaPkcs1Sha256, digest);
  }
  const Bytes& public_key_der() const override { return public_key_der_; }

 private:
  hal::Hsm& hsm_;
  hal::KeyHandle key_;
  Bytes public_key_der_;
};

// A log as lines per file.
struct Log {
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> lines;
};

struct Pos {
  std::size_t file = 0;
  std::size_t line = 0;  // 0-based
};

// What the verifier must say.
struct Expect {
  bool ok = false;
  std::string file;
  std::uint64_t line = 0;  // 1-based
  std::optional<std::uint64_t> seq;
  std::string reason;
  std::uint64_t unsigned_tail = 0;  // when ok
};

Log BuildLog(const std::string& folder, AuditSigner& signer, int records,
             std::uint64_t checkpoint_every, std::uint64_t max_file_bytes) {
  TestClock clock;
  AuditLogOptions options;
  options.folder = folder;
  options.now_ms = clock.fn();
  options.checkpoint_every = checkpoint_every;
  options.max_file_bytes = max_file_bytes;
  auto log = OpenLog(options, signer);
  for (int i = 0; i < records; ++i) {
    clock.Advance(3);
    KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
  }
  KMS_AUDIT_REQUIRE_OK(log->Close());
  Log out;
  for (const auto& f : ReadLog(folder)) {
    out.names.push_back(f.name);
    out.lines.push_back(Lines(f.contents));
  }
  return out;
}

std::vector<AuditLogFile> Render(const Log& log) {
  std::vector<AuditLogFile> files;
  for (std::size_t f = 0; f < log.names.size(); ++f) {
    std::string text;
    for (const auto& l : log.lines[f]) {
      text += l;
      text += '\n';
    }
    files.push_back(AuditLogFile{log.names[f], std::move(text)});
  }
  return files;
}

std::vector<Pos> Positions(const Log& log) {
  std::vector<Pos> out;
  for (std::size_t f = 0; f < log.lines.size(); ++f) {
    for (std::size_t l = 0; l < log.lines[f].size(); ++l) out.push_back(Pos{f, l});
  }
  return out;
}

bool IsCheckpoint(const std::string& line) {
  return line.find(R"("type":"checkpoint")") != std::string::npos;
}

std::string Field(const std::string& line, const std::string& key) {
  return std::string(json::parse(line).as_object().at(key).is_string()
                         ? json::parse(line).as_object().at(key).as_string()
                         : "");
}

// Index of the first character of `key`'s value (the opening quote for strings).
std::size_t ValueAt(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  // Runs on worker threads, where Catch's macros must not: throw, and RunAll reports it.
  if (at == std::string::npos) throw std::logic_error("no field " + key + " in " + line);
  return at + key.size() + 3;
}

// The last digit of an integer value.
std::size_t LastDigit(const std::string& line, const std::string& key) {
  std::size_t i = ValueAt(line, key);
  while (i + 1 < line.size() && line[i + 1] >= '0' && line[i + 1] <= '9') ++i;
  return i;
}

char NextDigit(char c) { return c == '9' ? '8' : static_cast<char>(c + 1); }
char OtherHex(char c) { return c == '0' ? '1' : '0'; }

// One-byte changes, by the kind of field they hit. `apply` edits the line; `expect` gives the
// verdict from the tampered line and where it sits.
struct ByteKind {
  std::string name;
  bool for_events;
  bool for_checkpoints;
  std::function<void(std::string&)> apply;
};

std::vector<ByteKind> ByteKinds() {
  return {
      {"request_id value", true, false,
       [](std::string& l) { l[ValueAt(l, "request_id") + 1] = 's'; }},  // "req-..." -> "seq-..."
      {"http_status digit", true, false,
       [](std::string& l) {
         const auto i = LastDigit(l, "http_status");
         l[i] = NextDigit(l[i]);
       }},
      {"encryption_context value", true, false,
       [](std::string& l) { l[ValueAt(l, "app") + 1] = 'c'; }},  // "billing" -> "cilling"
      {"field name", true, false, [](std::string& l) { l[l.find("\"door\":") + 4] = 's'; }},
      {"checkpoint field name", false, true,
       [](std::string& l) { l[l.find("\"records\":") + 7] = 't'; }},
      {"seq digit", true, true,
       [](std::string& l) {
         const auto i = LastDigit(l, "seq");
         l[i] = NextDigit(l[i]);
       }},
      {"prev hex", true, true,
       [](std::string& l) {
         const auto i = ValueAt(l, "prev") + 1;
         l[i] = OtherHex(l[i]);
       }},
      {"type", true, true,
       [](std::string& l) {
         // "event" -> "evenu", "checkpoint" -> "checkpoinu"
         const auto i = ValueAt(l, "type") + 1;
         l[l.find('"', i) - 1] = 'u';
       }},
      {"opening brace", true, true, [](std::string& l) { l[0] = '['; }},
      {"checkpoint sig", false, true,
       [](std::string& l) {
         const auto i = ValueAt(l, "sig") + 1;
         l[i] = l[i] == 'A' ? 'B' : 'A';  // still base64, another signature
       }},
      {"checkpoint records", false, true,
       [](std::string& l) {
         const auto i = LastDigit(l, "records");
         l[i] = NextDigit(l[i]);
       }},
      {"checkpoint time_ms", false, true,
       [](std::string& l) {
         const auto i = LastDigit(l, "time_ms");
         l[i] = NextDigit(l[i]);
       }},
      {"checkpoint head", false, true,
       [](std::string& l) {
         const auto i = ValueAt(l, "head") + 1;
         l[i] = OtherHex(l[i]);
       }},
      {"checkpoint key", false, true,
       [](std::string& l) {
         const auto i = ValueAt(l, "key") + 1;
         l[i] = OtherHex(l[i]);
       }},
  };
}

class Tamperer {
 public:
  Tamperer(Log log, Bytes key)
      : log_(std::move(log)), key_(std::move(key)), all_(Positions(log_)) {}

  const std::vector<Pos>& positions() const { return all_; }
  const std::string& LineAt(std::size_t g) const { return log_.lines[all_[g].file][all_[g].line]; }

  // 1-based location of global line g in the untampered log.
  std::string Name(std::size_t g) const { return log_.names[all_[g].file]; }
  std::uint64_t LineNo(std::size_t g) const { return all_[g].line + 1; }
  // How the verifier refers to line g from line h.
  std::string Ref(std::size_t g, std::size_t h) const {
    std::string s = "line " + std::to_string(LineNo(g));
    if (all_[g].file != all_[h].file) s += " of " + Name(g);
    return s;
  }
  std::uint64_t Seq(std::size_t g) const { return g + 1; }
  std::size_t size() const { return all_.size(); }

  // Lines since the checkpoint before g (for a log cut just before g).
  std::uint64_t UnsignedBefore(std::size_t g) const {
    std::uint64_t n = 0;
    while (g > 0 && !IsCheckpoint(LineAt(g - 1))) {
      ++n;
      --g;
    }
    return n;
  }

  // Returns "" when the verifier says what `want` says, else a description of the difference.
  std::string Check(const std::string& what, const Log& tampered, const Expect& want) const {
    auto got = VerifyAuditContents(Render(tampered), key_);
    if (!got.has_value()) return what + ": " + got.error().ToString();
    const auto& r = *got;
    const bool same =
        r.ok == want.ok && (want.ok ? r.unsigned_tail == want.unsigned_tail
                                    : r.broken_file == want.file && r.broken_line == want.line &&
                                          r.broken_seq == want.seq && r.reason == want.reason);
    if (same) return "";
    std::string expected =
        want.ok ? "intact with " + std::to_string(want.unsigned_tail) + " unsigned"
                : want.file + ":" + std::to_string(want.line) + " seq " +
                      (want.seq ? std::to_string(*want.seq) : "-") + " " + want.reason;
    return what + ": expected " + expected + ", got " + r.Verdict() + " (unsigned " +
           std::to_string(r.unsigned_tail) + ")";
  }

  Expect At(std::size_t g, std::optional<std::uint64_t> seq, std::string reason) const {
    return Expect{false, Name(g), LineNo(g), seq, std::move(reason), 0};
  }

  // The untouched log: intact, nothing unsigned.
  std::string Intact() const {
    return Check("intact", log_, Expect{true, "", 0, std::nullopt, "", 0});
  }

  // ---- the tamper kinds ----
  std::string ChangeByte(std::size_t g, const ByteKind& kind) const {
    Log t = log_;
    std::string& line = t.lines[all_[g].file][all_[g].line];
    kind.apply(line);
    const std::string what = kind.name + " of line " + std::to_string(g);
    const bool cp = IsCheckpoint(LineAt(g));
    Expect want;
    if (kind.name == "request_id value" || kind.name == "http_status digit" ||
        kind.name == "encryption_context value") {
      // Still a valid record: the next line's prev gives it away.
      want = At(g + 1, Seq(g + 1), "prev hash does not match " + Ref(g, g + 1));
    } else if (kind.name == "seq digit") {
      const auto changed =
          static_cast<std::uint64_t>(json::parse(line).as_object().at("seq").as_int64());
      want =
          g == 0
              ? At(g, changed, "seq " + std::to_string(changed) + " starts a file named for seq 1")
              : At(g, changed,
                   "seq " + std::to_string(changed) + " follows " + std::to_string(Seq(g - 1)));
    } else if (kind.name == "prev hex") {
      want = g == 0 ? At(g, 1, "a log's first record (seq 1) must have a zero prev")
                    : At(g, Seq(g), "prev hash does not match " + Ref(g - 1, g));
    } else if (kind.name == "type") {
      want = At(g, std::nullopt,
                cp ? R"(unknown record type "checkpoinu")" : R"(unknown record type "evenu")");
    } else if (kind.name == "opening brace") {
      want = At(g, std::nullopt, "not JSON");
    } else if (kind.name == "field name") {
      want = At(g, std::nullopt, R"(unknown field "doos")");
    } else if (kind.name == "checkpoint field name") {
      want = At(g, std::nullopt, R"(unknown field "recordt")");
    } else if (kind.name == "checkpoint head") {
      want = At(g, Seq(g), "checkpoint head does not match its prev");
    } else if (kind.name == "checkpoint key") {
      want = At(g, Seq(g), "checkpoint signed by another key " + Field(line, "key"));
    } else {  // sig, records, time_ms: all under the signature
      want = At(g, Seq(g), "checkpoint signature invalid");
    }
    return Check(what, t, want);
  }

  std::string Delete(std::size_t g) const {
    Log t = log_;
    auto& lines = t.lines[all_[g].file];
    lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(all_[g].line));
    const std::string what = "delete line " + std::to_string(g);
    if (g + 1 == size()) {
      // Cutting the final checkpoint is cutting the tail: only the unsigned records show it.
      return Check(what, t, Expect{true, "", 0, std::nullopt, "", UnsignedBefore(g)});
    }
    Expect want =
        At(g + 1, Seq(g + 1),
           g == 0 ? "seq 2 starts a file named for seq 1"
                  : "seq " + std::to_string(Seq(g + 1)) + " follows " + std::to_string(Seq(g - 1)));
    if (all_[g + 1].file == all_[g].file) want.line -= 1;  // moved up into the deleted line's place
    return Check(what, t, want);
  }

  std::string Duplicate(std::size_t g) const {
    Log t = log_;
    auto& lines = t.lines[all_[g].file];
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(all_[g].line) + 1, LineAt(g));
    Expect want =
        At(g, Seq(g), "seq " + std::to_string(Seq(g)) + " follows " + std::to_string(Seq(g)));
    want.line += 1;
    return Check("duplicate line " + std::to_string(g), t, want);
  }

  // A forged event inserted after line g, and every later line renumbered and re-chained (head
  // too), as a forger who knows the format would: only the signatures and file names are left.
  std::string Forge(std::size_t g) const {
    Log t = log_;
    json::object forged = json::parse(LineAt(0)).as_object();  // seq 1 is always an event
    forged["request_id"] = "forged";
    const Pos at = all_[g];
    t.lines[at.file].insert(t.lines[at.file].begin() + static_cast<std::ptrdiff_t>(at.line) + 1,
                            "");
    // Re-chain from the forged line on.
    std::string prev = LineAt(g);
    std::uint64_t seq = Seq(g);
    bool started = false;
    for (std::size_t f = at.file; f < t.lines.size(); ++f) {
      for (std::size_t l = f == at.file ? at.line + 1 : 0; l < t.lines[f].size(); ++l) {
        json::object o = started ? json::parse(t.lines[f][l]).as_object() : forged;
        started = true;
        o["seq"] = ++seq;
        o["prev"] = HexEncode(AuditLineHash(prev));
        if (o.at("type").as_string() == "checkpoint") o["head"] = o["prev"];
        t.lines[f][l] = json::serialize(o);
        prev = t.lines[f][l];
      }
    }
    const std::string what = "forged record after line " + std::to_string(g);
    for (std::size_t h = g + 1; h < size(); ++h) {
      const bool later_file = all_[h].file != at.file;
      if (later_file && all_[h].line == 0) {
        return Check(what, t,
                     At(h, Seq(h) + 1,
                        "seq " + std::to_string(Seq(h) + 1) + " starts a file named for seq " +
                            std::to_string(Seq(h))));
      }
      if (IsCheckpoint(LineAt(h))) {
        Expect want = At(h, Seq(h) + 1, "checkpoint signature invalid");
        if (!later_file) want.line += 1;
        return Check(what, t, want);
      }
    }
    // Appended after the final checkpoint: indistinguishable from a real record, but unsigned.
    return Check(what, t, Expect{true, "", 0, std::nullopt, "", 1});
  }

  std::string Swap(std::size_t g) const {
    Log t = log_;
    std::swap(t.lines[all_[g].file][all_[g].line], t.lines[all_[g + 1].file][all_[g + 1].line]);
    return Check("swap lines " + std::to_string(g) + " and " + std::to_string(g + 1), t,
                 At(g, Seq(g + 1),
                    g == 0 ? "seq 2 starts a file named for seq 1"
                           : "seq " + std::to_string(Seq(g + 1)) + " follows " +
                                 std::to_string(Seq(g - 1))));
  }

  bool Applies(const ByteKind& kind, std::size_t g) const {
    return IsCheckpoint(LineAt(g)) ? kind.for_checkpoints : kind.for_events;
  }

 private:
  Log log_;
  Bytes key_;
  std::vector<Pos> all_;
};

// Runs the cases on every core (each is a full verification of a tampered copy) and reports the
// ones whose verdict was not the expected one. Catch's macros stay on this thread.
void RunAll(const std::vector<std::function<std::string()>>& cases) {
  std::vector<std::string> failures;
  std::mutex mu;
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < cases.size(); i = next++) {
      std::string f;
      try {
        f = cases[i]();
      } catch (const std::exception& e) {
        f = std::string("case ") + std::to_string(i) + " threw: " + e.what();
      }
      if (!f.empty()) {
        std::lock_guard lock(mu);
        failures.push_back(std::move(f));
      }
    }
  };
  const unsigned n = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  INFO("tampered logs tried: " << cases.size());
  std::string first;
  for (std::size_t i = 0; i < failures.size() && i < 20; ++i) first += failures[i] + "\n";
  INFO(first);
  CHECK(failures.empty());
}

TEST_CASE("audit tamper: every single-record change, deletion, insertion and swap is detected",
          "[unit][audit]") {
  TempDir dir(testing::RamOrTemp());
  auto hsm = kms::testing::NewFakeHsm();
  RsaTestSigner signer(*hsm);
  // 310 records: not a multiple of 50, so Close adds a final checkpoint after an unsigned stretch.
  Log log = BuildLog(dir.File("audit"), signer, 310, 50, 40'000);
  REQUIRE(log.names.size() >= 3);  // at least 2 rotations
  const Tamperer t(std::move(log), signer.public_key_der());
  REQUIRE(t.Intact() == "");
  const auto kinds = ByteKinds();
  std::vector<std::function<std::string()>> cases;
  for (std::size_t g = 0; g < t.size(); ++g) {
    for (const auto& kind : kinds) {
      if (t.Applies(kind, g)) cases.push_back([&t, &kind, g] { return t.ChangeByte(g, kind); });
    }
    cases.push_back([&t, g] { return t.Delete(g); });
    cases.push_back([&t, g] { return t.Duplicate(g); });
    cases.push_back([&t, g] { return t.Forge(g); });
    if (g + 1 < t.size()) cases.push_back([&t, g] { return t.Swap(g); });
  }
  CHECK(cases.size() > 3000);
  RunAll(cases);
}

TEST_CASE("audit tamper: 200 random positions per kind in a 10,000-record log", "[unit][audit]") {
  TempDir dir(testing::RamOrTemp());
  auto hsm = kms::testing::NewFakeHsm();
  RsaTestSigner signer(*hsm);
  Log log = BuildLog(dir.File("audit"), signer, 10'000, 1000, 1 << 20);
  REQUIRE(log.names.size() >= 4);
  const Tamperer t(std::move(log), signer.public_key_der());
  REQUIRE(t.Intact() == "");
  const auto kinds = ByteKinds();
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<std::size_t> any(0, t.size() - 1);
  std::vector<std::function<std::string()>> cases;
  // 200 positions per kind: a one-byte change (of a field kind drawn for the line), a deletion,
  // an insertion (a duplicate or, every other time, a forged record with the chain recomputed)
  // and a swap with the next line.
  for (int i = 0; i < 200; ++i) {
    const std::size_t g = any(rng);
    std::vector<const ByteKind*> applicable;
    for (const auto& k : kinds) {
      if (t.Applies(k, g)) applicable.push_back(&k);
    }
    const ByteKind* kind = applicable[rng() % applicable.size()];
    cases.push_back([&t, kind, g] { return t.ChangeByte(g, *kind); });
    const std::size_t d = any(rng);
    cases.push_back([&t, d] { return t.Delete(d); });
    const std::size_t ins = any(rng);
    if (i % 2 == 0) {
      cases.push_back([&t, ins] { return t.Duplicate(ins); });
    } else {
      cases.push_back([&t, ins] { return t.Forge(ins); });
    }
    const std::size_t sw = any(rng) % (t.size() - 1);
    cases.push_back([&t, sw] { return t.Swap(sw); });
  }
  // The ends, always: the first record and the final checkpoint.
  cases.push_back([&t] { return t.Delete(0); });
  cases.push_back([&t] { return t.Delete(t.size() - 1); });
  cases.push_back([&t] { return t.Swap(t.size() - 2); });
  RunAll(cases);
}

TEST_CASE("audit tamper: a checkpoint re-signed with another key is named", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  SignerFixture other(dir.File("other.db"));  // another appliance: another HSM and key
  Log log = BuildLog(dir.File("audit"), *s.signer, 120, 50, 1 << 20);
  REQUIRE(log.names.size() == 1);
  const std::string real_fp = HexEncode(AuditLineHash(ToString(s.signer->public_key_der())));
  const std::string other_fp = HexEncode(AuditLineHash(ToString(other.signer->public_key_der())));
  // Line 51 is the first checkpoint (after 50 records).
  REQUIRE(IsCheckpoint(log.lines[0][50]));
  json::object cp = json::parse(log.lines[0][50]).as_object();
  auto head = HexDecode(cp.at("head").as_string());
  REQUIRE(head.has_value());
  const auto digest = CheckpointDigest(static_cast<std::uint64_t>(cp.at("seq").as_int64()), *head,
                                       static_cast<std::uint64_t>(cp.at("records").as_int64()),
                                       cp.at("time_ms").as_int64());
  auto sig = other.signer->SignDigest(digest);
  KMS_AUDIT_REQUIRE_OK(sig);

  SECTION("key and signature both replaced") {
    cp["key"] = other_fp;
    cp["sig"] = Base64Encode(*sig);
    log.lines[0][50] = json::serialize(cp);
    const auto r = testing::Verify(Render(log), s.signer->public_key_der());
    CHECK_FALSE(r.ok);
    CHECK(r.broken_line == 51);
    CHECK(r.broken_seq == 51);
    CHECK(r.reason == "checkpoint signed by another key " + other_fp);
    // Even under the other key, the re-signed line no longer chains to the next one.
    const auto with_other = testing::Verify(Render(log), other.signer->public_key_der());
    CHECK_FALSE(with_other.ok);
    CHECK(with_other.broken_line == 52);
    CHECK(with_other.reason == "prev hash does not match line 51");
  }
  SECTION("only the signature replaced") {
    cp["sig"] = Base64Encode(*sig);
    log.lines[0][50] = json::serialize(cp);
    const auto r = testing::Verify(Render(log), s.signer->public_key_der());
    CHECK_FALSE(r.ok);
    CHECK(r.broken_line == 51);
    CHECK(r.reason == "checkpoint signature invalid");
  }
  SECTION("the intact log under the wrong public key") {
    const auto r = testing::Verify(Render(log), other.signer->public_key_der());
    CHECK_FALSE(r.ok);
    CHECK(r.broken_line == 51);
    CHECK(r.reason == "checkpoint signed by another key " + real_fp);
    CHECK(r.Verdict() == "audit log BROKEN at " + log.names[0] +
                             " line 51 (seq 51): checkpoint signed by another key " + real_fp);
  }
}

}  // namespace
}  // namespace kms::firmware::audit
