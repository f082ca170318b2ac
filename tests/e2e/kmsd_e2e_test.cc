// End-to-end: a real kmsd in dev mode (port 0, fresh state folder) driven by boto3 and aws-cli v2
// (tests/e2e/*.py under /usr/bin/python3), over HTTP and over HTTPS with a certificate made here,
// and across a restart on the same state folder. Each TEST_CASE is its own CTest test (own process,
// own daemon). The scenario scripts print one line per check; their output is shown on failure.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/e2e/kmsd_process.h"

namespace kms::e2e {
namespace {

void RequirePasses(const KmsdProcess& kmsd, const std::string& script,
                   const std::vector<std::string>& args = {}) {
  const ScenarioResult result = RunScenario(kmsd, script, args);
  INFO(script << " output:\n" << result.output);
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.output.find("\nPASS") != std::string::npos);
}

// A clean SIGTERM exit, and a log of JSON lines without a secret of the run (LogProblems).
void RequireCleanStop(KmsdProcess& kmsd) {
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  REQUIRE(kmsd.Stop() == 0);
  REQUIRE(kmsd.LogProblems() == "");
}

// Runs `scripts` against a fresh daemon (HTTPS when `tls`), then requires a clean SIGTERM exit.
void RunAgainstFreshDaemon(bool tls, const std::vector<std::string>& scripts) {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  if (tls) options.tls = MakeTestPki(dir.path() / "pki");
  KmsdProcess kmsd(options);
  for (const auto& script : scripts) RequirePasses(kmsd, script);
  RequireCleanStop(kmsd);
}

TEST_CASE("e2e: every operation through boto3 over HTTP", "[e2e]") {
  RunAgainstFreshDaemon(false, {"boto3_scenarios.py"});
}

TEST_CASE("e2e: negative cases through boto3 over HTTP: exact exceptions and SigV4 failures",
          "[e2e]") {
  RunAgainstFreshDaemon(false, {"boto3_negative.py"});
}

TEST_CASE("e2e: key policies, grants and denials through boto3 over HTTP", "[e2e]") {
  RunAgainstFreshDaemon(false, {"authz_boto3.py"});
}

TEST_CASE("e2e: every operation through aws-cli v2 over HTTP", "[e2e]") {
  RunAgainstFreshDaemon(false, {"cli_scenarios.py"});
}

TEST_CASE("e2e: boto3 scenarios and negative cases over HTTPS with a test CA", "[e2e]") {
  RunAgainstFreshDaemon(true, {"boto3_scenarios.py", "boto3_negative.py"});
}

TEST_CASE("e2e: every operation through aws-cli v2 over HTTPS with a test CA", "[e2e]") {
  RunAgainstFreshDaemon(true, {"cli_scenarios.py"});
}

TEST_CASE("e2e: HTTPS clients that do not trust the test CA are refused", "[e2e]") {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  options.tls = MakeTestPki(dir.path() / "pki");
  // The daemon's certificate is signed by this run's CA; trusting another CA must fail the
  // handshake.
  const TestPki other = MakeTestPki(dir.path() / "other-pki");
  KmsdProcess kmsd(options);
  const ScenarioResult trusted = RunScenario(kmsd, "tls_trust_check.py", {"expect-ok"});
  INFO(trusted.output);
  REQUIRE(trusted.exit_code == 0);
  const ScenarioResult refused =
      RunScenario(kmsd, "tls_trust_check.py", {"expect-refused", other.ca_cert.string()});
  INFO(refused.output);
  REQUIRE(refused.exit_code == 0);
  RequireCleanStop(kmsd);
}

// Vault's seals (reference/vault.md §2.2, §2.3) against the daemon: the Vault door on the same
// listener as the AWS door, VAULT_ADDR and VAULT_TOKEN from dev.env.
void RunVaultScenarios(bool tls, const std::vector<std::string>& scripts) {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  if (tls) options.tls = MakeTestPki(dir.path() / "pki");
  KmsdProcess kmsd(options);
  for (const char* name : {"VAULT_ADDR", "VAULT_TOKEN"}) {
    INFO("dev.env member " << name);
    REQUIRE(kmsd.env().contains(name));
  }
  REQUIRE(kmsd.env().at("VAULT_ADDR") == kmsd.endpoint());
  REQUIRE(kmsd.env().at("VAULT_TOKEN").starts_with("hvs."));
  for (const auto& script : scripts) RequirePasses(kmsd, script);
  RequireCleanStop(kmsd);
}

TEST_CASE("e2e: Vault transit seal request sequence over HTTP", "[e2e]") {
  RunVaultScenarios(false, {"vault_transit_seal_contract.py"});
}

TEST_CASE("e2e: Vault transit seal request sequence over HTTPS with a test CA", "[e2e]") {
  RunVaultScenarios(true, {"vault_transit_seal_contract.py"});
}

TEST_CASE("e2e: Vault awskms seal request sequence over HTTP", "[e2e]") {
  RunVaultScenarios(false, {"vault_awskms_seal_contract.py"});
}

TEST_CASE("e2e: Vault transit endpoints through a Vault-style client over HTTP", "[e2e]") {
  RunVaultScenarios(false, {"vault_transit_api.py"});
}

TEST_CASE("e2e: /metrics parses as Prometheus text and counts both doors' requests", "[e2e]") {
  RunVaultScenarios(false, {"metrics_scrape.py"});
}

// The harness itself: a daemon that cannot start must fail the test promptly (with its stderr),
// not hang until the ready timeout. [!shouldfail]: this case passes only if the harness FAILs.
TEST_CASE("e2e: the harness reports a kmsd that exits before it is ready", "[e2e][!shouldfail]") {
  TempDir dir("kms-e2e");
  { std::ofstream(dir.path() / "not-a-folder") << "x"; }
  KmsdOptions options;
  options.state_dir = dir.path() / "not-a-folder";  // a file: kmsd cannot make its state folder
  options.ready_timeout = std::chrono::seconds(20);
  KmsdProcess kmsd(options);
}

TEST_CASE("e2e: a second start on the same state folder keeps every key", "[e2e]") {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  const std::string record = (dir.path() / "before.json").string();
  std::string first_access_key;
  {
    KmsdProcess kmsd(options);
    first_access_key = kmsd.env().at("AWS_ACCESS_KEY_ID");
    RequirePasses(kmsd, "restart_scenario.py", {"before", record});
    RequireCleanStop(kmsd);
  }
  KmsdProcess again(options);
  CHECK(again.env().at("AWS_ACCESS_KEY_ID") == first_access_key);  // same dev admin key
  RequirePasses(again, "restart_scenario.py", {"after", record});
  RequireCleanStop(again);
}

// The production boot (issue 5): provisioning with 5 shares and threshold 3, a sealed start that
// refuses every key operation, unseal through kmsctl (a damaged share named, 2 shares not enough),
// serving, seal on command and unseal again with every key intact; tests/e2e/sealed_boot.py.
TEST_CASE(
    "e2e: provision, start sealed, unseal with 3 of 5 shares through kmsctl, seal and unseal again",
    "[e2e]") {
  const ScenarioResult result =
      RunScript("sealed_boot.py", {std::string("KMS_E2E_KMSD=") + KMS_E2E_KMSD_PATH,
                                   std::string("KMS_E2E_KMSCTL=") + KMS_E2E_KMSCTL_PATH,
                                   std::string("KMS_E2E_PROVISION=") + KMS_E2E_PROVISION_PATH});
  INFO("sealed_boot.py output:\n" << result.output);
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.output.find("\nPASS") != std::string::npos);
}

// The configuration file (docs/configuration.md): its values are used, and a flag given beside it
// wins. The ready line reports what the daemon runs with.
TEST_CASE("e2e: kmsd runs with the settings of its TOML file, and flags override the file",
          "[e2e]") {
  TempDir dir("kms-e2e");
  const fs::path config = dir.path() / "kmsd.toml";
  std::ofstream(config) << "mode = \"dev\"\n[server]\nworkers = 3\n[hsm]\nsessions = 1\n"
                           "[vault]\nmounts = [\"transit\", \"team-a/transit\"]\n";
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  options.extra_args = {"--log-requests", "--config", config.string(), "--hsm-sessions", "3"};
  KmsdProcess kmsd(options);
  const std::string log = kmsd.Stderr();
  INFO(log);
  CHECK(log.find("\"workers\":3,\"hsm_sessions\":3,\"vault_mounts\":2") != std::string::npos);
  RequirePasses(kmsd, "vault_transit_api.py");  // the first mount is still "transit"
  RequireCleanStop(kmsd);
}

// A configuration problem stops the start with exit status 2 and one JSON error line naming the
// file, position and key, before anything is created.
TEST_CASE("e2e: kmsd refuses a bad configuration file and names the key", "[e2e]") {
  TempDir dir("kms-e2e");
  const fs::path config = dir.path() / "kmsd.toml";
  std::ofstream(config) << "[server]\nworker = 2\n";
  const fs::path err = dir.path() / "stderr";
  const std::string command = std::string(KMS_E2E_KMSD_PATH) + " --config " + config.string() +
                              " --state-dir " + (dir.path() / "state").string() + " 2>" +
                              err.string();
  const int status = std::system(command.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  std::stringstream text;
  text << std::ifstream(err).rdbuf();
  INFO(text.str());
  CHECK(text.str().find("\"level\":\"error\",\"msg\":\"" + config.string() +
                        ":2:10: server.worker: unknown key (did you mean 'server.workers'?)\"") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "state"));

  // Without --config or --dev there is nothing to run.
  const int bare = std::system((std::string(KMS_E2E_KMSD_PATH) + " 2>/dev/null").c_str());
  REQUIRE(WIFEXITED(bare));
  CHECK(WEXITSTATUS(bare) == 2);
}

// A production configuration whose store was never provisioned stops the start with exit status 1
// and one JSON error line saying what to do, before anything listens.
TEST_CASE("e2e: kmsd refuses a production store that is missing or was never provisioned",
          "[e2e]") {
  TempDir dir("kms-e2e");
  const fs::path config = dir.path() / "kmsd.toml";
  const fs::path store = dir.path() / "kms.db";
  std::ofstream(config)
      << "mode = \"production\"\n[hsm]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n"
         "token_label = \"kms\"\n[store]\npath = \""
      << store.string() << "\"\n";
  const fs::path err = dir.path() / "stderr";
  auto run = [&] {
    const int status = std::system(
        (std::string(KMS_E2E_KMSD_PATH) + " --config " + config.string() + " 2>" + err.string())
            .c_str());
    REQUIRE(WIFEXITED(status));
    std::stringstream text;
    text << std::ifstream(err).rdbuf();
    return std::make_pair(WEXITSTATUS(status), text.str());
  };
  auto [missing_code, missing] = run();
  INFO(missing);
  CHECK(missing_code == 1);
  CHECK(missing.find("\"level\":\"error\",\"msg\":\"" + config.string() + ": store.path: '" +
                     store.string() +
                     "' does not exist: this appliance was never provisioned (kms-provision "
                     "init)\"") != std::string::npos);
  CHECK_FALSE(fs::exists(store));  // refusing made nothing

  std::ofstream(store).flush();  // an empty file: SQLite makes a fresh store of it
  auto [empty_code, empty] = run();
  INFO(empty);
  CHECK(empty_code == 1);
  CHECK(empty.find("\"msg\":\"store '" + store.string() +
                   "' has no seal descriptor: it was not made by kms-provision init\"") !=
        std::string::npos);
}

}  // namespace
}  // namespace kms::e2e
