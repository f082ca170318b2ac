// End-to-end test harness: a real kmsd process in dev mode, and the Python scenario scripts that
// drive it. KmsdProcess starts `kmsd --dev --listen 127.0.0.1:0` on a state folder (plain HTTP, or
// HTTPS with a certificate the test made), waits a bounded time until the daemon says it is ready
// and has written <state>/dev.env, and offers that environment; Stop() sends SIGTERM and returns
// the exit status. Failures are reported through Catch2 (FAIL with the daemon's stderr), so these
// helpers are only for use inside a TEST_CASE. Paths come from compile definitions set by
// tests/CMakeLists.txt: KMS_E2E_KMSD_PATH ($<TARGET_FILE:kmsd>) and KMS_E2E_SCRIPTS_DIR.
// The canary search (canary_search.h): every scenario run against a KmsdProcess gets
// KMS_E2E_CANARY_DIR, a folder beside the state folder where e2e_lib.py records each secret the
// script sent or received (secrets.jsonl) and each error answer (error_bodies.txt); LeakProblems()
// then searches the daemon's stderr, its audit folder and those error bodies for all of them.
// Not thread-safe: one test case owns its processes.
#ifndef KMS_TESTS_E2E_KMSD_PROCESS_H_
#define KMS_TESTS_E2E_KMSD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/canary_search.h"

namespace kms::e2e {

namespace fs = std::filesystem;

// A fresh folder under the system temp directory, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A CA and a server certificate for 127.0.0.1/localhost (tests/e2e/make_pki.py).
struct TestPki {
  fs::path ca_cert;
  fs::path server_cert;
  fs::path server_key;
};
// Writes a new test PKI into `dir`; FAILs the test if it cannot.
TestPki MakeTestPki(const fs::path& dir);

// Appends to `out` the secrets e2e_lib.py recorded in `canary_dir`/secrets.jsonl (nothing when the
// file does not exist: no script recorded anything). Returns what is wrong with a malformed line,
// "" otherwise.
std::string ReadRecordedCanaries(const fs::path& canary_dir, std::vector<Canary>& out);

struct KmsdOptions {
  fs::path state_dir;
  std::optional<TestPki> tls;  // serve HTTPS with these files
  std::chrono::seconds ready_timeout{60};
  // Every daemon of the suite logs every request (--log-requests), so LogProblems() sees them all.
  std::vector<std::string> extra_args = {"--log-requests"};
};

class KmsdProcess {
 public:
  // Starts kmsd and waits until it is ready; REQUIREs success (the test stops on failure, with the
  // daemon's stderr in the message).
  explicit KmsdProcess(KmsdOptions options);
  // Kills the daemon (SIGKILL) if the test ended before Stop().
  ~KmsdProcess();
  KmsdProcess(const KmsdProcess&) = delete;
  KmsdProcess& operator=(const KmsdProcess&) = delete;

  // SIGTERM, then waits (bounded) for the exit. Returns the exit status, or -1 when it died by a
  // signal or had to be killed after the timeout.
  int Stop(std::chrono::seconds timeout = std::chrono::seconds(30));

  // dev.env of this run: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
  // KMS_ENDPOINT, VAULT_ADDR, VAULT_TOKEN, plus AWS_CA_BUNDLE and VAULT_CACERT when serving HTTPS.
  const std::map<std::string, std::string>& env() const { return env_; }
  const std::string& endpoint() const { return env_.at("KMS_ENDPOINT"); }
  std::string Stderr() const;  // everything the daemon wrote to stderr so far

  // What is wrong with the daemon's log so far, or "" when nothing is: every stderr line must be
  // one base/log.h JSON object (time, level, msg), and no line may contain a secret this run
  // handed out or used: dev.env's secret access key and Vault token, the dev token's user PIN, or
  // any plaintext the scenarios marked with "canary".
  std::string LogProblems() const;

  // The folder the scenarios record their secrets and error answers in (KMS_E2E_CANARY_DIR):
  // <state folder>.canaries, emptied at start and removed with the process object.
  const fs::path& canary_dir() const { return canary_dir_; }
  // Every secret of this run the canary search looks for, appended to `out`: dev.env's secret
  // access key and Vault token, the dev token's user PIN, the "canary" marker, and everything the
  // scenarios recorded. Returns what is wrong with secrets.jsonl, "" otherwise.
  std::string Canaries(std::vector<Canary>& out) const;
  // Where it looks, in this order: the daemon's stderr and stdout, every file of its audit folder
  // (<state>/audit), and the error bodies the scenarios recorded. Neither secrets.jsonl nor the
  // scripts' output is searched.
  CanaryPlaces Places() const;
  // The canary search: the first place that holds a secret of the run in any form (raw, base64,
  // base64url, hex; canary_search.h), or a problem that kept it from searching; "" when clean.
  std::string LeakProblems() const;

 private:
  void WaitUntilReady();

  KmsdOptions options_;
  fs::path log_dir_;
  fs::path canary_dir_;
  pid_t pid_ = -1;
  std::map<std::string, std::string> env_;
};

struct ScenarioResult {
  int exit_code = -1;  // -1: killed by a signal or after the timeout
  std::string output;  // stdout and stderr, interleaved
};

// Runs `/usr/bin/python3 <KMS_E2E_SCRIPTS_DIR>/<script> args...` with the daemon's environment
// and KMS_E2E_CANARY_DIR = kmsd.canary_dir() (and no other AWS_* or VAULT_* variables of the
// caller), bounded by `timeout`.
ScenarioResult RunScenario(const KmsdProcess& kmsd, const std::string& script,
                           const std::vector<std::string>& args = {},
                           std::chrono::seconds timeout = std::chrono::seconds(300));

// Runs a script that manages its own daemons (the production boot), with the caller's environment
// minus its AWS and Vault settings (and any KMS_E2E_CANARY_DIR), plus `env` ("NAME=value").
ScenarioResult RunScript(const std::string& script, const std::vector<std::string>& env,
                         std::chrono::seconds timeout = std::chrono::seconds(300));

}  // namespace kms::e2e

#endif  // KMS_TESTS_E2E_KMSD_PROCESS_H_
