// AuditLog and the verifier on real files, signed by HsmAuditSigner on the fake HSM + SQLite: the
// exact record format (and the canary: a record holds only what the test put in it), 10,000
// records across rotated files, checkpoint cadence (count, interval, Tick, Close, reopen),
// fail-closed writes (a file-size limit in a child process, /dev/full, a folder that cannot be
// created, a rotation target that cannot be made) with recovery, 8 concurrent appenders, reopen
// after a torn tail, and the verifier's own negative cases.
#include "firmware/audit/audit_log.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "firmware/audit/audit_verify.h"
#include "tests/firmware/audit_test_support.h"

namespace kms::firmware::audit {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::kStartMs;
using testing::Lines;
using testing::MakeEvent;
using testing::OpenLog;
using testing::ReadLog;
using testing::ReadText;
using testing::SignerFixture;
using testing::TempDir;
using testing::TestClock;
using testing::VerifyFolder;
using testing::WriteText;

const std::string kZero(64, '0');

std::string Hash(const std::string& line) { return HexEncode(AuditLineHash(line)); }

AuditLogOptions Options(const std::string& folder, const TestClock& clock) {
  AuditLogOptions o;
  o.folder = folder;
  o.now_ms = clock.fn();
  return o;
}

std::vector<std::string> AllLines(const std::string& folder) {
  std::vector<std::string> out;
  for (const auto& f : ReadLog(folder)) {
    for (auto& l : Lines(f.contents)) out.push_back(std::move(l));
  }
  return out;
}

std::string TypeOf(const std::string& line) {
  return std::string(json::parse(line).as_object().at("type").as_string());
}

TEST_CASE("audit log: an event is one canonical JSON line holding exactly what was given",
          "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  auto log = OpenLog(Options(folder, clock), *s.signer);

  // Canary values: quotes, backslashes, non-ASCII, a '/' (Boost.JSON does not escape it). Nothing
  // else may appear in the line: the struct has no payload field, and the writer adds only its own
  // five fields.
  AuditEvent e;
  e.time_ms = 1'767'225'600'123;
  e.request_id = "6f1c\"canary-req\"";
  e.door = "aws";
  e.operation = "Encrypt";
  e.principal = "arn:aws:iam::111122223333:user/caf\xc3\xa9";
  e.credential_id = "AKMSCANARYCANARY0001";
  e.source_address = "203.0.113.9";
  e.key_arn = "arn:aws:kms:us-east-1:111122223333:key/k\\1";
  e.outcome = "AccessDeniedException";
  e.error_message = "not authorized";
  e.http_status = 400;
  e.encryption_context = {{"b", "2"}, {"a", "1"}};
  e.grant_id = "grant-canary";
  e.decision = "deny:explicit";
  KMS_AUDIT_REQUIRE_OK(log->Append(e));
  CHECK(log->last_seq() == 1);
  KMS_AUDIT_REQUIRE_OK(log->Close());

  const auto lines = AllLines(folder);
  REQUIRE(lines.size() == 2);  // the event, and Close's checkpoint
  const std::string expected =
      R"({"v":1,"type":"event","seq":1,"prev":")" + kZero +
      R"(","time_ms":1767225600123,"request_id":"6f1c\"canary-req\"","door":"aws",)"
      R"("operation":"Encrypt","principal":"arn:aws:iam::111122223333:user/café",)"
      R"("credential_id":"AKMSCANARYCANARY0001","source_address":"203.0.113.9",)"
      R"("key_arn":"arn:aws:kms:us-east-1:111122223333:key/k\\1",)"
      R"("outcome":"AccessDeniedException","error_message":"not authorized","http_status":400,)"
      R"("encryption_context":{"a":"1","b":"2"},"grant_id":"grant-canary",)"
      R"("decision":"deny:explicit"})";
  CHECK(lines[0] == expected);

  // The checkpoint: covers the event, names the key, signature verifies (checked by the verifier).
  const json::object cp = json::parse(lines[1]).as_object();
  CHECK(cp.at("type").as_string() == "checkpoint");
  CHECK(cp.at("seq").as_int64() == 2);
  CHECK(cp.at("prev").as_string() == Hash(lines[0]));
  CHECK(cp.at("head").as_string() == Hash(lines[0]));
  CHECK(cp.at("records").as_int64() == 1);
  CHECK(cp.at("time_ms").as_int64() == kStartMs);
  CHECK(cp.at("key").as_string() == Hash(ToString(s.signer->public_key_der())));
  std::vector<std::string> keys;
  for (const auto& kv : cp) keys.emplace_back(kv.key());
  CHECK(keys == std::vector<std::string>{"v", "type", "seq", "prev", "head", "records", "time_ms",
                                         "key", "sig"});

  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == 1);
  CHECK(report.checkpoints == 1);
  CHECK(report.unsigned_tail == 0);
  CHECK(report.warnings.empty());
  CHECK(report.Verdict() ==
        "audit log intact: 1 records, 2 lines, seq 1..2 in 1 file, 1 signed checkpoints");
}

TEST_CASE("audit log: control characters and invalid UTF-8 never reach the file", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  auto log = OpenLog(Options(folder, clock), *s.signer);
  AuditEvent e = MakeEvent(1);
  e.request_id = std::string(
      "a\nb\x01"
      "c\xff"
      "d",
      7);
  e.error_message = "line1\r\nline2";
  e.encryption_context = {{std::string("k\x80", 2), "v\t"}};
  KMS_AUDIT_REQUIRE_OK(log->Append(e));
  KMS_AUDIT_REQUIRE_OK(log->Close());
  const auto lines = AllLines(folder);
  const json::object o = json::parse(lines[0]).as_object();
  CHECK(o.at("request_id").as_string() == "a?b?c?d");
  CHECK(o.at("error_message").as_string() == "line1??line2");
  CHECK(o.at("encryption_context").as_object().at("k?").as_string() == "v?");
  CHECK(VerifyFolder(folder, s.signer->public_key_der()).ok);
}

TEST_CASE("audit log: 10,000 records across rotated files verify", "[unit][audit]") {
  TempDir dir(testing::RamOrTemp());  // the subject is the files, not the disk's fsync latency
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("state/audit");  // two levels created
  AuditLogOptions options = Options(folder, clock);
  options.max_file_bytes = 1 << 20;
  auto log = OpenLog(options, *s.signer);
  for (int i = 0; i < 10'000; ++i) {
    KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
  }
  CHECK(log->healthy());
  const std::uint64_t before_close = log->last_seq();
  KMS_AUDIT_REQUIRE_OK(log->Close());
  // A checkpoint 1000 lines after the previous one, one at each rotation, one at Close.
  const auto files = ReadLog(folder);
  REQUIRE(files.size() >= 4);
  CHECK(files[0].name == "audit-00000000000000000001.log");

  struct stat st {};
  REQUIRE(::stat(folder.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  std::uint64_t seq = 1;
  std::uint64_t lines = 0;
  for (const auto& f : files) {
    REQUIRE(::stat((folder + "/" + f.name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(f.name == AuditFileName(seq));  // each file is named for its first seq
    const auto n = Lines(f.contents).size();
    seq += n;
    lines += n;
    // Every file but the last ends with its rotation checkpoint.
    CHECK(TypeOf(Lines(f.contents).back()) == "checkpoint");
  }
  // Close signed the records after the last count or rotation checkpoint.
  CHECK(lines == before_close + 1);
  CHECK(TypeOf(Lines(files.back().contents).back()) == "checkpoint");

  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == 10'000);
  CHECK(report.lines == lines);
  CHECK(report.files == files.size());
  CHECK(report.first_seq == 1);
  CHECK(report.last_seq == lines);
  CHECK(report.from_log_start);
  CHECK(report.checkpoints == lines - 10'000);
  CHECK(report.checkpoints >= 10);
  CHECK(report.unsigned_tail == 0);
  CHECK(report.warnings.empty());

  // The same files given one by one; and the later files alone (older ones archived).
  std::vector<std::string> paths;
  for (const auto& f : files) paths.push_back(folder + "/" + f.name);
  auto explicit_files = VerifyAuditLog(paths, s.signer->public_key_der());
  REQUIRE(explicit_files.has_value());
  CHECK(explicit_files->ok);
  auto tail_files = VerifyAuditLog(std::vector<std::string>(paths.begin() + 1, paths.end()),
                                   s.signer->public_key_der());
  REQUIRE(tail_files.has_value());
  INFO(tail_files->Verdict());
  CHECK(tail_files->ok);
  CHECK_FALSE(tail_files->from_log_start);
  REQUIRE(tail_files->warnings.size() == 1);
  CHECK(tail_files->warnings[0] == "the log starts at seq " +
                                       std::to_string(*ParseAuditFileName(files[1].name)) +
                                       " (earlier files absent): its first prev is not checked");
}

TEST_CASE("audit log: checkpoints by count, by interval, at Tick, at Close and at reopen",
          "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  AuditLogOptions options = Options(folder, clock);
  options.checkpoint_every = 5;
  options.checkpoint_interval = std::chrono::seconds(60);
  auto log = OpenLog(options, *s.signer);

  KMS_AUDIT_REQUIRE_OK(log->Tick());  // nothing to sign: no line
  CHECK(log->last_seq() == 0);
  for (int i = 0; i < 5; ++i) KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
  CHECK(log->last_seq() == 6);  // 5 events + the count checkpoint
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(5)));
  CHECK(log->last_seq() == 7);
  clock.Advance(59'999);
  KMS_AUDIT_REQUIRE_OK(log->Tick());
  CHECK(log->last_seq() == 7);  // not yet due
  clock.Advance(1);
  KMS_AUDIT_REQUIRE_OK(log->Tick());
  CHECK(log->last_seq() == 8);  // interval checkpoint
  KMS_AUDIT_REQUIRE_OK(log->Tick());
  CHECK(log->last_seq() == 8);  // nothing new since
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(6)));
  clock.Advance(60'000);
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(7)));  // Append notices the interval too
  CHECK(log->last_seq() == 11);
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(8)));
  KMS_AUDIT_REQUIRE_OK(log->Close());
  KMS_AUDIT_REQUIRE_OK(log->Close());  // idempotent
  CHECK(log->last_seq() == 13);        // Close signed the last record
  const Status after = log->Append(MakeEvent(9));
  CHECK(after.code() == StatusCode::kFailedPrecondition);
  CHECK(after.message() == "audit log: closed");
  CHECK(log->Tick().code() == StatusCode::kFailedPrecondition);

  auto lines = AllLines(folder);
  std::vector<std::string> types;
  for (const auto& l : lines) types.push_back(TypeOf(l));
  CHECK(types == std::vector<std::string>{"event", "event", "event", "event", "event", "checkpoint",
                                          "event", "checkpoint", "event", "event", "checkpoint",
                                          "event", "checkpoint"});

  // A clean reopen continues the chain without adding anything.
  log = OpenLog(options, *s.signer);
  CHECK(log->last_seq() == 13);
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(10)));
  CHECK(log->last_seq() == 14);
  // Dropped without Close (a crash): the next Open signs the unsigned record first.
  log.reset();  // the destructor closes, so simulate the crash by cutting the checkpoint off
  {
    auto files = ReadLog(folder);
    auto file_lines = Lines(files.back().contents);
    REQUIRE(TypeOf(file_lines.back()) == "checkpoint");
    file_lines.pop_back();
    std::string text;
    for (const auto& l : file_lines) text += l + "\n";
    WriteText(folder + "/" + files.back().name, text);
  }
  const auto unsigned_report = VerifyFolder(folder, s.signer->public_key_der());
  CHECK(unsigned_report.ok);
  CHECK(unsigned_report.unsigned_tail == 1);
  REQUIRE(unsigned_report.warnings.size() == 1);
  CHECK(unsigned_report.warnings[0] ==
        "1 records after the last checkpoint (seq 13) are not signed; removing them (truncating "
        "the tail) could not be detected");
  log = OpenLog(options, *s.signer);
  CHECK(log->last_seq() == 15);  // the reopen checkpoint
  lines = AllLines(folder);
  CHECK(TypeOf(lines.back()) == "checkpoint");
  KMS_AUDIT_REQUIRE_OK(log->Close());
  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == 10);
  CHECK(report.unsigned_tail == 0);
}

TEST_CASE("audit log: one writer per folder, bad options, oversized records", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  auto log = OpenLog(Options(folder, clock), *s.signer);
  auto second = AuditLog::Open(Options(folder, clock), *s.signer);
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().code() == StatusCode::kFailedPrecondition);
  CHECK(second.error().message() == "audit log: " + folder + " is in use by another writer");

  AuditEvent big = MakeEvent(1);
  big.error_message = std::string(kMaxAuditLineBytes, 'x');
  const Status too_big = log->Append(big);
  CHECK(too_big.code() == StatusCode::kInvalidArgument);
  CHECK(too_big.message().starts_with("audit log: a record of "));
  CHECK(log->healthy());
  CHECK(log->last_seq() == 0);
  KMS_AUDIT_REQUIRE_OK(log->Close());
  // Close released the folder.
  auto reopened = AuditLog::Open(Options(folder, clock), *s.signer);
  KMS_AUDIT_REQUIRE_OK(reopened);

  AuditLogOptions bad = Options(dir.File("other"), clock);
  bad.checkpoint_every = 0;
  CHECK(AuditLog::Open(bad, *s.signer).error().message() ==
        "audit log: checkpoint_every must be at least 1");
  bad = Options("", clock);
  CHECK(AuditLog::Open(bad, *s.signer).error().code() == StatusCode::kInvalidArgument);
}

// ---- fail closed -------------------------------------------------------------------------------

// Runs `body` in a forked child (so a resource limit cannot touch the test process); the child's
// findings come back through a file, and its exit status says whether they all held.
void InChild(const TempDir& dir, const std::function<std::string()>& body) {
  const std::string report_path = dir.File("child-report.txt");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::string failures;
    try {
      failures = body();
    } catch (...) {
      failures = "exception in child";
    }
    WriteText(report_path, failures);
    std::_Exit(failures.empty() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(ReadText(report_path));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("audit log: a write past the file-size limit fails every appender, then recovers",
          "[unit][audit]") {
  // RLIMIT_FSIZE binds root too (chmod does not), so this runs the same as root and non-root.
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  AuditLogOptions options = Options(folder, clock);
  options.checkpoint_every = 1000;
  InChild(dir, [&]() -> std::string {
    std::string failures;
    auto expect = [&](bool ok, const std::string& what) {
      if (!ok) failures += what + "\n";
    };
    auto opened = AuditLog::Open(options, *s.signer);
    if (!opened) return "open: " + opened.error().ToString();
    auto& log = **opened;
    for (int i = 0; i < 5; ++i) expect(log.Append(MakeEvent(i)).ok(), "first appends");
    const std::string path = log.current_file();
    const auto good_size = fs::file_size(path);
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    const rlimit saved = limit;
    limit.rlim_cur = good_size + 100;  // room for part of the next line only: a short write
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const Status failed = log.Append(MakeEvent(5));
    expect(failed.code() == StatusCode::kUnavailable, "code " + failed.ToString());
    expect(failed.message() == "audit log: " + path + ": File too large",
           "message " + failed.message());
    expect(!log.healthy(), "healthy after failure");
    expect(fs::file_size(path) == good_size, "partial line truncated back");
    expect(log.last_seq() == 5, "seq unchanged");
    // Still full: Tick's probe fails too, and health stays false.
    expect(log.Tick().code() == StatusCode::kUnavailable, "tick while full");
    expect(!log.healthy(), "healthy while full");
    ::setrlimit(RLIMIT_FSIZE, &saved);  // room again
    const Status probe = log.Tick();    // the probe: a checkpoint, and health is back
    expect(probe.ok(), "probe " + probe.ToString());
    expect(log.healthy(), "healthy after probe");
    expect(log.last_seq() == 6, "probe checkpoint");
    expect(log.Append(MakeEvent(6)).ok(), "append after recovery");
    expect(log.last_seq() == 7, "seq continues");
    expect(log.Close().ok(), "close");
    const auto stats = log.stats();
    expect(stats.failures == 2, "failures " + std::to_string(stats.failures));
    return failures;
  });
  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == 6);  // the failed record never existed
  CHECK(report.unsigned_tail == 0);
  const auto lines = AllLines(folder);
  std::set<std::string> ids;
  for (const auto& l : lines) {
    const auto o = json::parse(l).as_object();
    if (o.at("type").as_string() == "event")
      ids.insert(std::string(o.at("request_id").as_string()));
  }
  CHECK(ids == std::set<std::string>{"req-0", "req-1", "req-2", "req-3", "req-4", "req-6"});
}

TEST_CASE("audit log: a full disk (ENOSPC) fails Append and keeps failing", "[unit][audit]") {
  // The log file is a symlink to /dev/full, whose writes fail ENOSPC: a full disk, as root or not.
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  REQUIRE(::mkdir(folder.c_str(), 0700) == 0);
  const std::string path = folder + "/" + AuditFileName(1);
  REQUIRE(::symlink("/dev/full", path.c_str()) == 0);
  auto log = OpenLog(Options(folder, clock), *s.signer);
  CHECK(log->healthy());
  for (int attempt = 0; attempt < 3; ++attempt) {
    const Status st = log->Append(MakeEvent(attempt));
    CHECK(st.code() == StatusCode::kUnavailable);
    CHECK(st.message() == "audit log: " + path + ": No space left on device");
    CHECK_FALSE(log->healthy());
  }
  CHECK(log->last_seq() == 0);
  KMS_AUDIT_REQUIRE_OK(log->Close());  // nothing was acknowledged, so nothing is left to sign
}

TEST_CASE("audit log: a folder that cannot be created fails Open", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  // A path through a regular file: refused as root and non-root alike.
  WriteText(dir.File("plain-file"), "x");
  auto through_file = AuditLog::Open(Options(dir.File("plain-file/audit"), clock), *s.signer);
  REQUIRE_FALSE(through_file.has_value());
  CHECK(through_file.error().code() == StatusCode::kUnavailable);
  CHECK(through_file.error().message() ==
        "audit log: " + dir.File("plain-file/audit") + ": Not a directory");
  if (::geteuid() != 0) {
    // A read-only parent (chmod does not bind root, hence the branch).
    const std::string ro = dir.File("ro");
    REQUIRE(::mkdir(ro.c_str(), 0500) == 0);
    auto denied = AuditLog::Open(Options(ro + "/audit", clock), *s.signer);
    REQUIRE_FALSE(denied.has_value());
    CHECK(denied.error().message() == "audit log: " + ro + "/audit: Permission denied");
  }
}

TEST_CASE("audit log: a rotation target that cannot be created fails Append until it can",
          "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  AuditLogOptions options = Options(folder, clock);
  options.max_file_bytes = 2000;
  auto log = OpenLog(options, *s.signer);
  int i = 0;
  while (fs::file_size(log->current_file()) < options.max_file_bytes) {
    KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i++)));
  }
  // The next Append rotates: a checkpoint (last_seq + 1), then a file for last_seq + 2. A folder
  // squatting on that name makes the creation fail (EISDIR), as a read-only folder would.
  const std::string next = folder + "/" + AuditFileName(log->last_seq() + 2);
  REQUIRE(::mkdir(next.c_str(), 0700) == 0);
  const Status failed = log->Append(MakeEvent(i));
  CHECK(failed.code() == StatusCode::kUnavailable);
  CHECK(failed.message() == "audit log: " + next + ": Is a directory");
  CHECK_FALSE(log->healthy());
  CHECK(log->Append(MakeEvent(i)).code() == StatusCode::kUnavailable);
  REQUIRE(::rmdir(next.c_str()) == 0);
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i++)));
  CHECK(log->healthy());
  CHECK(log->current_file() == next);
  KMS_AUDIT_REQUIRE_OK(log->Close());
  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == static_cast<std::uint64_t>(i));
  CHECK(report.files == 2);
}

// ---- concurrency -------------------------------------------------------------------------------

TEST_CASE("audit log: 8 concurrent appenders make one valid chain", "[unit][audit][concurrency]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  const std::string folder = dir.File("audit");
  AuditLogOptions options;
  options.folder = folder;
  options.checkpoint_every = 500;
  options.max_file_bytes = 512 * 1024;  // rotations under load
  auto log = OpenLog(options, *s.signer);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        AuditEvent e = MakeEvent(i);
        e.request_id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!log->Append(e).ok()) ++failed;
      }
    });
  }
  std::thread ticker([&] {
    for (int i = 0; i < 50; ++i) {
      (void)log->Tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (auto& th : threads) th.join();
  ticker.join();
  CHECK(failed.load() == 0);
  const auto stats = log->stats();
  KMS_AUDIT_REQUIRE_OK(log->Close());
  INFO("batches " << stats.batches << ", lines " << stats.lines);
  CHECK(stats.batches <= static_cast<std::uint64_t>(kThreads * kPerThread));

  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == kThreads * kPerThread);
  CHECK(report.unsigned_tail == 0);
  CHECK(report.files > 1);
  std::set<std::string> ids;
  for (const auto& l : AllLines(folder)) {
    const auto o = json::parse(l).as_object();
    if (o.at("type").as_string() == "event")
      ids.insert(std::string(o.at("request_id").as_string()));
  }
  CHECK(ids.size() == kThreads * kPerThread);
}

// ---- crash recovery ----------------------------------------------------------------------------

TEST_CASE("audit log: reopening after a torn tail truncates it, records it and continues",
          "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  const std::string crashed = dir.File("crashed");
  AuditLogOptions options = Options(folder, clock);
  options.max_file_bytes = 8 * 1024;
  options.checkpoint_every = 40;
  {
    auto log = OpenLog(options, *s.signer);
    for (int i = 0; i < 100; ++i) KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
    // The disk as a crash right now would leave it, plus half a line being written.
    fs::copy(folder, crashed);
  }
  auto files = ReadLog(crashed);
  const std::string newest = crashed + "/" + files.back().name;
  const std::string torn = R"({"v":1,"type":"event","seq":)";
  WriteText(newest, files.back().contents + torn);
  const auto before = AllLines(crashed);  // includes the torn piece as a line
  const auto torn_report = VerifyFolder(crashed, s.signer->public_key_der());
  CHECK(torn_report.ok);
  CHECK(torn_report.torn_bytes == torn.size());
  CHECK(torn_report.unsigned_tail > 0);

  AuditLogOptions reopen = Options(crashed, clock);
  reopen.max_file_bytes = options.max_file_bytes;
  reopen.checkpoint_every = options.checkpoint_every;
  auto log = OpenLog(reopen, *s.signer);
  const auto after = AllLines(crashed);
  REQUIRE(after.size() == before.size() + 1);  // torn piece gone; recovered + checkpoint added
  const std::string& recovered = after[after.size() - 2];
  const std::string& last_good = before[before.size() - 2];
  const auto seq = json::parse(last_good).as_object().at("seq").as_int64() + 1;
  CHECK(recovered == R"({"v":1,"type":"recovered","seq":)" + std::to_string(seq) + R"(,"prev":")" +
                         Hash(last_good) + R"(","time_ms":)" + std::to_string(kStartMs) +
                         R"(,"truncated_bytes":)" + std::to_string(torn.size()) + "}");
  CHECK(TypeOf(after.back()) == "checkpoint");
  for (int i = 100; i < 110; ++i) KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
  KMS_AUDIT_REQUIRE_OK(log->Close());
  const auto report = VerifyFolder(crashed, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.records == 110);
  CHECK(report.recoveries == 1);
  CHECK(report.unsigned_tail == 0);
  REQUIRE(report.warnings.size() == 1);
  CHECK(report.warnings[0] ==
        "the writer recovered from a crash 1 time(s) (\"recovered\" records)");
}

TEST_CASE("audit log: a torn first line of a fresh rotated file continues from the previous file",
          "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  AuditLogOptions options = Options(folder, clock);
  options.max_file_bytes = 3000;
  std::uint64_t records = 0;
  {
    auto log = OpenLog(options, *s.signer);
    while (ReadLog(folder).size() < 2) {
      KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(static_cast<int>(records++))));
    }
    KMS_AUDIT_REQUIRE_OK(log->Close());
  }
  // Leave the newest file holding only a torn piece of its first line.
  auto files = ReadLog(folder);
  WriteText(folder + "/" + files.back().name, R"({"v":1,"ty)");
  auto log = OpenLog(options, *s.signer);
  KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(1000)));
  KMS_AUDIT_REQUIRE_OK(log->Close());
  const auto report = VerifyFolder(folder, s.signer->public_key_der());
  INFO(report.Verdict());
  CHECK(report.ok);
  CHECK(report.recoveries == 1);
  // The last record of file 2 (torn away) was never acknowledged, so file 2 now starts anew.
  CHECK(report.records == records);
}

TEST_CASE("audit log: Open refuses a log whose last line does not parse", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  {
    auto log = OpenLog(Options(folder, clock), *s.signer);
    KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(1)));
  }
  const std::string path = folder + "/" + AuditFileName(1);
  WriteText(path, ReadText(path) + "garbage\n");
  auto log = AuditLog::Open(Options(folder, clock), *s.signer);
  REQUIRE_FALSE(log.has_value());
  CHECK(log.error().code() == StatusCode::kDataLoss);
  CHECK(log.error().message() ==
        "audit log: " + path +
            ": a record near its end does not parse (not JSON); check the log with kmsctl audit "
            "verify before writing to it");
}

// ---- the verifier's own refusals -------------------------------------------------------------

TEST_CASE("audit verify: malformed lines are named with the exact reason", "[unit][audit]") {
  TempDir dir;
  SignerFixture s(dir.File("kms.db"));
  TestClock clock;
  const std::string folder = dir.File("audit");
  {
    auto log = OpenLog(Options(folder, clock), *s.signer);
    for (int i = 0; i < 3; ++i) KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
  }
  const auto good = ReadLog(folder);
  const auto lines = Lines(good[0].contents);
  REQUIRE(lines.size() == 4);
  const std::string name = good[0].name;
  auto check = [&](const std::string& replacement_of_line2, const std::string& reason) {
    auto l = lines;
    l[1] = replacement_of_line2;
    std::string text;
    for (const auto& x : l) text += x + "\n";
    const auto r = testing::Verify({AuditLogFile{name, text}}, s.signer->public_key_der());
    INFO(replacement_of_line2);
    CHECK_FALSE(r.ok);
    CHECK(r.broken_file == name);
    CHECK(r.broken_line == 2);
    CHECK(r.reason == reason);
  };
  const std::string& l1 = lines[1];
  check("", "not JSON");
  check("[1,2]", "not a JSON object");
  check(" " + l1, "not in canonical form");
  check(R"({"v":1, "type":"event"})", "not in canonical form");
  check(R"({"type":"event"})", "missing field \"v\"");
  check(R"({"v":2,"type":"event"})", "unsupported format version");
  check(R"({"v":1,"type":"note","seq":2})", "unknown record type \"note\"");
  std::string extra = l1;
  extra.insert(extra.size() - 1, R"(,"plaintext":"x")");
  check(extra, "unknown field \"plaintext\"");
  std::string dup = l1;
  dup.insert(dup.size() - 1, R"(,"door":"x")");
  check(dup, "not in canonical form");  // a duplicate key is dropped by the re-serialisation
  auto obj = json::parse(l1).as_object();
  obj.erase("door");
  check(json::serialize(obj), "missing field \"door\"");
  obj = json::parse(l1).as_object();
  obj["http_status"] = "200";
  check(json::serialize(obj), "field \"http_status\" is not an integer");
  obj = json::parse(l1).as_object();
  obj["seq"] = 0;
  check(json::serialize(obj), "field \"seq\" is not a positive integer");
  obj = json::parse(l1).as_object();
  obj["prev"] = "ABC";
  check(json::serialize(obj), "field \"prev\" is not 64 lowercase hex characters");
  obj = json::parse(l1).as_object();
  obj["prev"] = kZero;
  check(json::serialize(obj), "zero prev (a log's start) at seq 2");
  obj = json::parse(l1).as_object();
  obj["encryption_context"].as_object()["n"] = 1;
  check(json::serialize(obj), "encryption_context value \"n\" is not a string");
  // Fields in another order.
  json::object reordered;
  const auto orig = json::parse(l1).as_object();
  reordered["type"] = orig.at("type");
  for (const auto& kv : orig) {
    if (kv.key() != "type") reordered[kv.key()] = kv.value();
  }
  check(json::serialize(reordered), "fields out of order");

  // An incomplete line in a file that is not the last.
  const auto r = testing::Verify(
      {AuditLogFile{name, good[0].contents + "{\"v\""}, AuditLogFile{AuditFileName(5), ""}},
      s.signer->public_key_der());
  CHECK_FALSE(r.ok);
  CHECK(r.broken_line == 5);
  CHECK(r.reason == "incomplete line (no newline) before the next file");

  // No files, a bad key.
  auto empty_folder = VerifyAuditFolder(dir.File("nothing"), s.signer->public_key_der());
  CHECK(empty_folder.error().code() == StatusCode::kNotFound);
  REQUIRE(::mkdir(dir.File("empty").c_str(), 0700) == 0);
  auto no_files = VerifyAuditFolder(dir.File("empty"), s.signer->public_key_der());
  CHECK(no_files.error().message() == "audit verify: no audit-*.log files in " + dir.File("empty"));
  auto bad_key = VerifyAuditContents(good, ToBytes("not a key"));
  CHECK(bad_key.error().message() ==
        "audit verify: the public key is not a DER SubjectPublicKeyInfo");
}

}  // namespace
}  // namespace kms::firmware::audit
