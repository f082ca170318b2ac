// Shared pieces of the audit log suites: a temporary folder, a checkpoint signer on the fake HSM
// and a real SQLite store (HsmAuditSigner, as the appliance runs it), a manual clock, events with
// recognisable fields, and the log read back as files and lines.
#ifndef KMS_TESTS_FIRMWARE_AUDIT_TEST_SUPPORT_H_
#define KMS_TESTS_FIRMWARE_AUDIT_TEST_SUPPORT_H_

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "firmware/audit/audit_log.h"
#include "firmware/audit/audit_verify.h"
#include "firmware/audit/hsm_audit_signer.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace kms::firmware::audit::testing {

#define KMS_AUDIT_REQUIRE_OK(expr)                                \
  do {                                                            \
    const ::kms::Status kms_test_status_ = ::kms::StatusOf(expr); \
    INFO(kms_test_status_.ToString());                            \
    REQUIRE(kms_test_status_.ok());                               \
  } while (0)

inline constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// A folder in RAM when the machine has one (/dev/shm), for tests whose subject is not the disk:
// their many fdatasyncs then cost nothing.
inline std::filesystem::path RamOrTemp() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
  return std::filesystem::temp_directory_path();
}

class TempDir {
 public:
  // Under `base` (default: the system's temporary folder).
  explicit TempDir(std::filesystem::path base = std::filesystem::temp_directory_path()) {
    std::string tmpl = (base / "kms-audit-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// One appliance's signer: a fake HSM (its own domain key) and a store in `dir`.
struct SignerFixture {
  explicit SignerFixture(const std::string& db_path) : hsm(kms::testing::NewFakeHsm()) {
    store::SqliteStoreOptions options;
    options.path = db_path;
    auto opened = store::OpenSqliteStore(options);
    if (!opened) FAIL(opened.error().ToString());
    store = std::move(*opened);
    auto s = HsmAuditSigner::Open(*hsm, *store);
    if (!s) FAIL(s.error().ToString());
    signer = std::move(*s);
  }
  ~SignerFixture() {
    signer.reset();
    store.reset();
  }
  std::unique_ptr<kms::testing::FakeHsm> hsm;
  std::unique_ptr<store::MetadataStore> store;
  std::unique_ptr<HsmAuditSigner> signer;
};

// A clock the test moves.
struct TestClock {
  std::shared_ptr<std::atomic<std::int64_t>> now =
      std::make_shared<std::atomic<std::int64_t>>(kStartMs);
  std::function<std::int64_t()> fn() const {
    auto n = now;
    return [n] { return n->load(); };
  }
  void Advance(std::int64_t ms) const { now->fetch_add(ms); }
};

inline AuditEvent MakeEvent(int i) {
  AuditEvent e;
  e.time_ms = kStartMs + i;
  e.request_id = "req-" + std::to_string(i);
  e.door = i % 3 == 0 ? "aws" : (i % 3 == 1 ? "vault" : "appliance");
  e.operation = i % 2 == 0 ? "Encrypt" : "transit/decrypt";
  e.principal = "arn:aws:iam::111122223333:user/alice";
  e.credential_id = "AKMSAAAAAAAAAAAAAAAA";
  e.source_address = "192.0.2." + std::to_string(i % 250);
  e.key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  if (i % 7 == 3) {
    e.outcome = "AccessDeniedException";
    e.error_message = "User is not authorized to perform: kms:Encrypt";
    e.http_status = 400;
    e.decision = "deny:implicit";
  } else {
    e.outcome = "ok";
    e.http_status = 200;
    e.decision = "allow:key-policy";
  }
  e.encryption_context = {{"app", "billing"}, {"tenant", "t-" + std::to_string(i % 17)}};
  if (i % 5 == 0) e.grant_id = "grant-" + std::to_string(i);
  return e;
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The log's files (name = file name only) in log order.
inline std::vector<AuditLogFile> ReadLog(const std::string& folder) {
  auto paths = ListAuditFiles(folder);
  if (!paths) FAIL(paths.error().ToString());
  std::vector<AuditLogFile> files;
  for (const auto& p : *paths) {
    files.push_back(AuditLogFile{std::filesystem::path(p).filename().string(), ReadText(p)});
  }
  return files;
}

// The lines of a file, without their '\n'.
inline std::vector<std::string> Lines(const std::string& contents) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < contents.size()) {
    const auto nl = contents.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(contents.substr(pos));
      break;
    }
    lines.push_back(contents.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

inline std::unique_ptr<AuditLog> OpenLog(AuditLogOptions options, AuditSigner& signer) {
  auto log = AuditLog::Open(std::move(options), signer);
  if (!log) FAIL(log.error().ToString());
  return std::move(*log);
}

inline AuditVerifyReport Verify(const std::vector<AuditLogFile>& files, const Bytes& key) {
  auto r = VerifyAuditContents(files, key);
  if (!r) FAIL(r.error().ToString());
  return std::move(*r);
}

inline AuditVerifyReport VerifyFolder(const std::string& folder, const Bytes& key) {
  auto r = VerifyAuditFolder(folder, key);
  if (!r) FAIL(r.error().ToString());
  return std::move(*r);
}

}  // namespace kms::firmware::audit::testing

#endif  // KMS_TESTS_FIRMWARE_AUDIT_TEST_SUPPORT_H_
