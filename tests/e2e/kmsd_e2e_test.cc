// End-to-end: a real kmsd in dev mode (port 0, fresh state folder) driven by boto3 and aws-cli v2
// (tests/e2e/*.py under /usr/bin/python3), over HTTP and over HTTPS with a certificate made here,
// and across a restart on the same state folder. Each TEST_CASE is its own CTest test (own process,
// own daemon). The scenario scripts print one line per check; their output is shown on failure.
// Every daemon's run ends with the canary search (canary_search.h): no secret a script recorded,
// nor the daemon's own, in its stderr, its audit folder or an error answer.
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/e2e/canary_search.h"
#include "tests/e2e/kmsd_process.h"

namespace kms::e2e {
namespace {

using Catch::Matchers::Contains;

void RequirePasses(const KmsdProcess& kmsd, const std::string& script,
                   const std::vector<std::string>& args = {}) {
  const ScenarioResult result = RunScenario(kmsd, script, args);
  INFO(script << " output:\n" << result.output);
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.output.find("\nPASS") != std::string::npos);
}

// A clean SIGTERM exit, a log of JSON lines without a secret of the run (LogProblems), and no
// secret of the run in its log, audit records or error answers (LeakProblems). The scenarios must
// have recorded secrets: a recorder that silently stopped working would make the search pass
// vacuously.
void RequireCleanStop(KmsdProcess& kmsd) {
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  REQUIRE(kmsd.Stop() == 0);
  REQUIRE(kmsd.LogProblems() == "");
  REQUIRE(kmsd.LeakProblems() == "");
  std::vector<Canary> recorded;
  REQUIRE(ReadRecordedCanaries(kmsd.canary_dir(), recorded) == "");
  CHECK(recorded.size() > 2);  // more than the two dev.env secrets e2e_lib records at import
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

TEST_CASE("e2e: a user without rights cannot take a key, decrypt or squat an alias by any trick",
          "[e2e]") {
  RunAgainstFreshDaemon(false, {"authz_findings.py"});
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

// Vault's seals (docs/vault-door.md, seal "transit" and seal "awskms") against the daemon: the
// Vault door on the same listener as the AWS door, VAULT_ADDR and VAULT_TOKEN from dev.env.
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

TEST_CASE("e2e: server faults in each door's format, HEAD without a body, 100-continue, over HTTP",
          "[e2e]") {
  RunVaultScenarios(false, {"http_framing.py"});
}

TEST_CASE("e2e: server faults in each door's format, HEAD without a body, 100-continue, over HTTPS",
          "[e2e]") {
  RunVaultScenarios(true, {"http_framing.py"});
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

// dev.env holds the dev administrator's secret access key and Vault token: under the most
// permissive umask kmsd --dev still writes it 0600, in a 0700 state folder. (The moment of its
// creation, before a byte is written, is checked in tests/firmware/private_file_test.cc.)
TEST_CASE("e2e: kmsd --dev under umask 000 writes dev.env 0600 in a 0700 state folder", "[e2e]") {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  const mode_t previous = ::umask(0);
  KmsdProcess kmsd(options);
  ::umask(previous);
  struct stat st {};
  REQUIRE(::stat((options.state_dir / "dev.env").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat(options.state_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  INFO("kmsd stderr:\n" << kmsd.Stderr());
  REQUIRE(kmsd.Stop() == 0);
  CHECK(kmsd.LeakProblems() == "");
}

// ---- The canary search itself: it must be able to fail. ----------------------------------------

void Append(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::app) << text;
}

void AppendLine(const fs::path& path, const std::string& line) { Append(path, line + "\n"); }

// An error-body record in e2e_lib.py's format.
std::string ErrorBody(const std::string& what, const std::string& body) {
  return std::to_string(body.size()) + " " + what + "\n" + body + "\n";
}

TEST_CASE("e2e: the canary search finds a secret in every form and place, and ignores short values",
          "[e2e]") {
  TempDir dir("kms-e2e-canary");
  const fs::path log = dir.path() / "stderr";
  const fs::path audit = dir.path() / "audit";
  const fs::path bodies = dir.path() / "error_bodies.txt";
  const std::string clean_line =
      R"({"v":1,"type":"event","seq":1,"prev":"0000","operation":"Encrypt","outcome":"ok"})";
  AppendLine(log, R"({"time":"t","level":"info","msg":"ready"})");
  AppendLine(audit / "audit-00000000000000000001.log", clean_line);
  AppendLine(audit / "audit-00000000000000000001.log", clean_line);
  Append(bodies, ErrorBody("boto3 Decrypt HTTP 400",
                           R"({"__type":"InvalidCiphertextException","message":""})"));
  const std::string text_secret = "canary-plaintext-probe-5e1f0c7a9b3d";
  std::string data_key;  // 32 bytes with every kind of byte, as a data key has
  for (int i = 0; i < 32; ++i) data_key += static_cast<char>(i * 37 + 250);
  const std::vector<Canary> secrets = {{"a printable plaintext", text_secret},
                                       {"a data key", data_key},
                                       {"a 7-byte value", "short-7"},
                                       {"the marker", "canary", /*marker=*/true}};
  const CanaryPlaces places{{log, audit}, {bodies}};
  REQUIRE(FindCanary(secrets, places) == "");

  SECTION("each form of the data key, planted in a copy of an audit line") {
    const std::string b64 = Base64(data_key);
    const std::string url = Base64(data_key, /*url=*/true);
    REQUIRE(b64 != url);  // the key has '+' or '/' in its encoding: both forms are distinct
    const std::string one_before = Base64("x" + data_key);
    const std::string two_before = Base64("xy" + data_key + "z");
    const std::vector<std::pair<std::string, std::string>> plantings = {
        {"(base64)", b64},
        {"(base64url)", url},
        {"(base64 at offset 1)", one_before},
        {"(base64 at offset 2)", two_before},
        {"(hex)", Hex(data_key)},
        {"(uppercase hex)", Hex(data_key, true)}};
    for (const auto& [form, planted] : plantings) {
      INFO(form);
      TempDir copy("kms-e2e-canary-copy");
      fs::copy(audit, copy.path() / "audit");
      AppendLine(copy.path() / "audit" / "audit-00000000000000000001.log",
                 R"({"v":1,"type":"event","error_message":"key )" + planted + R"("})");
      const std::string found = FindCanary(secrets, {{log, copy.path() / "audit"}, {bodies}});
      CHECK_THAT(found, Contains("audit-00000000000000000001.log:3 holds a data key " + form));
    }
  }
  SECTION("the printable plaintext raw and JSON-escaped, in stderr") {
    AppendLine(log, R"({"msg":"request","body":")" + text_secret + R"("})");
    CHECK_THAT(FindCanary(secrets, places), Contains("stderr:2 holds a printable plaintext (raw)"));
    const std::string quoted = "say \"" + text_secret + "\"";
    const std::vector<Canary> with_quotes = {{"a quoted plaintext", quoted}};
    TempDir other("kms-e2e-canary-json");
    AppendLine(other.path() / "stderr", R"({"msg":"say \")" + text_secret + R"(\""})");
    CHECK_THAT(FindCanary(with_quotes, {{other.path() / "stderr"}, {}}),
               Contains("stderr:1 holds a quoted plaintext (JSON-escaped)"));
  }
  SECTION("in the second error body, and the marker alone") {
    Append(bodies, ErrorBody("vault PUT transit/decrypt/k HTTP 400",
                             R"({"errors":[")" + Base64(text_secret) + R"("]})"));
    CHECK_THAT(FindCanary(secrets, places),
               Contains("error body 2 (vault PUT transit/decrypt/k HTTP 400) holds a printable "
                        "plaintext (base64)"));
    TempDir other("kms-e2e-canary-marker");
    AppendLine(other.path() / "stderr", R"({"msg":"a canary"})");
    CHECK_THAT(FindCanary(secrets, {{other.path() / "stderr"}, {}}),
               Contains("the marker (marker)"));
  }
  SECTION("values under 8 bytes are not searched for, in any form") {
    AppendLine(log, "short-7 " + Base64("short-7") + " " + Hex("short-7"));
    CHECK(FindCanary(secrets, places) == "");
  }
  SECTION("a malformed error-body file or a missing place is a problem, not a pass") {
    Append(bodies, "12 truncated\nonly five\n");
    CHECK_THAT(FindCanary(secrets, places), Contains("error body 2: malformed record"));
    CHECK_THAT(FindCanary(secrets, {{dir.path() / "no-such-file"}, {}}),
               Contains("does not exist"));
  }
}

// The whole chain on a real run: the recorder in e2e_lib.py writes the secrets a boto3 and a Vault
// client saw, the harness reads them back, finds nothing in the daemon's files, and finds each
// kind once it is planted into a copy of the audit folder or of the error bodies.
TEST_CASE("e2e: recorded secrets planted in copies of the audit log and error bodies are found",
          "[e2e]") {
  TempDir dir("kms-e2e");
  KmsdOptions options;
  options.state_dir = dir.path() / "state";
  KmsdProcess kmsd(options);
  RequirePasses(kmsd, "canary_probe.py");
  RequireCleanStop(kmsd);
  std::vector<Canary> secrets;
  REQUIRE(kmsd.Canaries(secrets) == "");
  auto recorded = [&](const std::string& what_part) -> const Canary& {
    for (const auto& c : secrets) {
      if (c.what.find(what_part) != std::string::npos) return c;
    }
    FAIL("nothing recorded as " << what_part);
    return secrets.front();
  };
  const Canary& data_key = recorded("boto3 GenerateDataKey response Plaintext");
  const Canary& private_key = recorded("boto3 GenerateDataKeyPair response PrivateKeyPlaintext");
  const Canary& transit_key = recorded("transit/datakey/plaintext/probe-key response plaintext");
  const Canary& plaintext = recorded("canary plaintext probe");
  CHECK(data_key.value.size() == 32);
  CHECK(transit_key.value.size() == 32);
  CHECK(recorded("dev.env AWS_SECRET_ACCESS_KEY").value == kmsd.env().at("AWS_SECRET_ACCESS_KEY"));

  const CanaryPlaces real = kmsd.Places();
  REQUIRE(fs::exists(real.error_bodies.at(0)));  // the two error answers were recorded
  for (const auto& [kind, planted] : std::vector<std::pair<const Canary*, std::string>>{
           {&data_key, Base64(data_key.value)},
           {&private_key, Hex(private_key.value)},
           {&transit_key, Base64(transit_key.value, /*url=*/true)},
           {&plaintext, plaintext.value}}) {
    INFO(kind->what);
    TempDir copy("kms-e2e-canary-copy");
    fs::copy(options.state_dir / "audit", copy.path() / "audit");
    fs::path newest;
    for (const auto& entry : fs::directory_iterator(copy.path() / "audit")) {
      newest = std::max(newest, entry.path());
    }
    REQUIRE_FALSE(newest.empty());
    AppendLine(newest, R"({"v":1,"type":"event","error_message":")" + planted + R"("})");
    CanaryPlaces in_audit = real;
    in_audit.line_files.at(2) = copy.path() / "audit";  // stderr, stdout, audit
    CHECK_THAT(FindCanary(secrets, in_audit), Contains(" holds " + kind->what));

    fs::copy(real.error_bodies.at(0), copy.path() / "error_bodies.txt");
    Append(copy.path() / "error_bodies.txt", ErrorBody("planted", planted));
    CanaryPlaces in_bodies = real;
    in_bodies.error_bodies = {copy.path() / "error_bodies.txt"};
    CHECK_THAT(FindCanary(secrets, in_bodies), Contains("(planted) holds " + kind->what));
  }
}

// The production boot: provisioning with 5 shares and threshold 3, a sealed start that
// refuses every key operation, unseal through kmsctl (a damaged share named, 2 shares not enough),
// serving, seal on command and unseal again with every key intact; tests/e2e/sealed_boot.py.
// The script records the ceremony's shares, SO PIN and secret key, the tokens and plaintexts, and
// leaves copies of its daemons' stderr and audit folder in the canary folder for the search.
TEST_CASE(
    "e2e: provision, start sealed, unseal with 3 of 5 shares through kmsctl, seal and unseal again",
    "[e2e]") {
  TempDir canaries("kms-e2e-canaries");
  const ScenarioResult result =
      RunScript("sealed_boot.py", {std::string("KMS_E2E_KMSD=") + KMS_E2E_KMSD_PATH,
                                   std::string("KMS_E2E_KMSCTL=") + KMS_E2E_KMSCTL_PATH,
                                   std::string("KMS_E2E_PROVISION=") + KMS_E2E_PROVISION_PATH,
                                   "KMS_E2E_CANARY_DIR=" + canaries.path().string()});
  INFO("sealed_boot.py output:\n" << result.output);
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.output.find("\nPASS") != std::string::npos);
  std::vector<Canary> secrets;
  REQUIRE(ReadRecordedCanaries(canaries.path(), secrets) == "");
  CHECK(secrets.size() >= 12);  // 5 shares in two spellings, the SO PIN, the secret key, ...
  secrets.push_back(Canary{"the marker of canary plaintexts", "canary", /*marker=*/true});
  CanaryPlaces places;
  places.line_files = {canaries.path() / "kmsd.stderr", canaries.path() / "audit"};
  places.error_bodies = {canaries.path() / "error_bodies.txt"};
  CHECK(FindCanary(secrets, places) == "");
}

// sys/unseal against a caller who is not a custodian (tests/e2e/unseal_hostile.py): forged shares
// (threshold 1, another split, a number beyond the shares made, their own commitment) refused
// without disturbing the custodians or trying a login; a secret the seal verifier refuses never
// reaches the HSM; auto-unseal through the same gate; a store made before verifiers: three failed
// logins lock the gate, the custodians' unseal writes the verifier, and the forgery is refused
// share by share afterwards. The canary search covers the forged shares too.
TEST_CASE(
    "e2e: forged unseal shares never reach the HSM login, and failed combinations are rate "
    "limited",
    "[e2e]") {
  TempDir canaries("kms-e2e-canaries");
  const ScenarioResult result =
      RunScript("unseal_hostile.py", {std::string("KMS_E2E_KMSD=") + KMS_E2E_KMSD_PATH,
                                      std::string("KMS_E2E_KMSCTL=") + KMS_E2E_KMSCTL_PATH,
                                      std::string("KMS_E2E_PROVISION=") + KMS_E2E_PROVISION_PATH,
                                      "KMS_E2E_CANARY_DIR=" + canaries.path().string()});
  INFO("unseal_hostile.py output:\n" << result.output);
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.output.find("\nPASS") != std::string::npos);
  std::vector<Canary> secrets;
  REQUIRE(ReadRecordedCanaries(canaries.path(), secrets) == "");
  CHECK(secrets.size() >= 20);  // 5 shares in two spellings, the SO PIN, the forged shares, ...
  CanaryPlaces places;
  places.line_files = {canaries.path() / "kmsd.stderr", canaries.path() / "audit"};
  places.error_bodies = {canaries.path() / "error_bodies.txt"};
  CHECK(FindCanary(secrets, places) == "");
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

// Production beyond loopback without TLS would carry tokens, plaintexts, data keys and unseal
// shares in clear: kmsd refuses to start (exit status 2) with one error line naming the settings,
// before it opens anything, whether the address comes from the file or from --listen.
TEST_CASE("e2e: production kmsd refuses to listen beyond loopback without TLS", "[e2e]") {
  TempDir dir("kms-e2e");
  const fs::path config = dir.path() / "kmsd.toml";
  const fs::path store = dir.path() / "kms.db";
  const std::string production =
      "mode = \"production\"\n[hsm]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n"
      "token_label = \"kms\"\n[store]\npath = \"" +
      store.string() + "\"\n";
  const fs::path err = dir.path() / "stderr";
  auto run = [&](const std::string& flags) {
    const int status = std::system((std::string(KMS_E2E_KMSD_PATH) + " --config " +
                                    config.string() + flags + " 2>" + err.string())
                                       .c_str());
    REQUIRE(WIFEXITED(status));
    std::stringstream text;
    text << std::ifstream(err).rdbuf();
    return std::make_pair(WEXITSTATUS(status), text.str());
  };
  auto refusal = [&](const std::string& listen) {
    return "\"level\":\"error\",\"msg\":\"" + config.string() +
           ": server.tls: production mode needs TLS to listen beyond loopback, and server.listen "
           "is '" +
           listen +
           "': set server.tls.cert and server.tls.key (or --tls-cert and --tls-key), or listen on "
           "127.0.0.1 or [::1] behind a TLS proxy; without TLS, tokens, plaintexts, data keys and "
           "unseal shares would cross the network in clear\"";
  };
  std::ofstream(config) << production << "[server]\nlisten = \"0.0.0.0:0\"\n";
  auto [file_code, file] = run("");
  INFO(file);
  CHECK(file_code == 2);
  CHECK(file.find(refusal("0.0.0.0:0")) != std::string::npos);

  std::ofstream(config) << production;  // loopback by default; the flag moves it
  auto [flag_code, flag] = run(" --listen [::]:0");
  INFO(flag);
  CHECK(flag_code == 2);
  CHECK(flag.find(refusal("[::]:0")) != std::string::npos);
  CHECK_FALSE(fs::exists(store));  // refused before the store was opened
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
