// Fail closed, end to end: a kmsd whose audit log cannot be written answers both doors
// with a server error instead of answering unaudited. The state folder is prepared before the
// first start with the first audit file a symlink to /dev/full (writes fail ENOSPC, as root too:
// a full disk), then tests/e2e/audit_fail_closed.py drives boto3 and a Vault-style client.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/e2e/kmsd_process.h"

namespace kms::e2e {
namespace {

TEST_CASE("e2e: an audit log on a full disk makes both doors refuse with a server error",
          "[e2e]") {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  const fs::path audit = options.state_dir / "audit";
  fs::create_directories(audit);
  // firmware/audit AuditFileName(1): the file the log opens first in an empty folder.
  REQUIRE(::symlink("/dev/full", (audit / "audit-00000000000000000001.log").c_str()) == 0);
  KmsdProcess kmsd(options);

  const ScenarioResult result = RunScenario(kmsd, "audit_fail_closed.py");
  INFO("audit_fail_closed.py output:\n" << result.output);
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  CHECK(result.exit_code == 0);
  CHECK(result.output.find("\nPASS") != std::string::npos);
  // The daemon says why, with the request id, and never the plaintext.
  CHECK(kmsd.Stderr().find("audit record not written; request answered with a server error") !=
        std::string::npos);
  CHECK(kmsd.Stderr().find("No space left on device") != std::string::npos);
  CHECK(kmsd.Stop() == 0);
  CHECK(kmsd.LogProblems() == "");
  CHECK(kmsd.LeakProblems() == "");
}

}  // namespace
}  // namespace kms::e2e
