// AwsServer (the composition root's entry point) driven by real AWS clients: boto3 over plain HTTP
// and over TLS with a generated certificate (AWS_CA_BUNDLE), and aws-cli v2 once. The key service runs
// on the fake HSM; end-to-end tests against kmsd with SoftHSM2 belong to the e2e suite.
#include "api/aws/aws_server.h"

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <filesystem>

#include "tests/api/door_authz_fixture.h"
#include "tests/api/test_pki.h"
#include "tests/firmware/key_service_fixture.h"
#include "tests/support/shell.h"

namespace kms::api::aws {
namespace {

using Run = kms::testing::ShellRun;
using kms::testing::Shell;

struct ServerFixture {
  firmware::testing::ServiceFixture service;
  testing::DoorAuthz authz{service};
  InMemoryAccessKeyStore keys;
  std::unique_ptr<AwsServer> server;

  explicit ServerFixture(std::optional<tls::TlsOptions> tls = std::nullopt) {
    authz.AddExampleKey(keys);
    AwsServerConfig cfg;
    cfg.server.tls = std::move(tls);
    auto made = AwsServer::Create(cfg, keys, authz.authorizer);
    REQUIRE(made.has_value());
    server = std::move(*made);
    REQUIRE(server->Start().ok());
  }

  std::string Env(const std::string& scheme) const {
    return "env AWS_ACCESS_KEY_ID=AKIDEXAMPLE "
           "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY "
           "AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null "
           "AWS_SHARED_CREDENTIALS_FILE=/dev/null KMS_ENDPOINT=" +
           scheme + "://127.0.0.1:" + std::to_string(server->port()) + " ";
  }
};

bool HaveBoto3() {
  if (Shell("/usr/bin/python3 -c 'import boto3'").exit_code != 0) {
    WARN("boto3 not importable by /usr/bin/python3: skipped");
    return false;
  }
  if (!std::filesystem::exists("tests/api/boto3_smoke.py")) {
    WARN("tests/api/boto3_smoke.py not found (run from the project root): skipped");
    return false;
  }
  return true;
}

TEST_CASE("aws server: boto3 over plain HTTP", "[unit]") {
  if (!HaveBoto3()) return;
  ServerFixture f;
  const auto run = Shell(f.Env("http") + "/usr/bin/python3 tests/api/boto3_smoke.py");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("ALL OK") != std::string::npos);
}

TEST_CASE("aws server: boto3 over TLS with a generated certificate", "[unit]") {
  if (!HaveBoto3()) return;
  const auto& pki = testing::Pki();
  if (!pki.ok) {
    WARN("openssl CLI unavailable: skipped");
    return;
  }
  ServerFixture f(tls::TlsOptions{pki.Path("server.pem"), pki.Path("server.key"), ""});
  const auto run = Shell(f.Env("https") + "AWS_CA_BUNDLE=" + pki.Path("ca.pem") +
                         " /usr/bin/python3 tests/api/boto3_smoke.py");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("ALL OK") != std::string::npos);
}

TEST_CASE("aws server: aws-cli v2 encrypt and decrypt", "[unit]") {
  if (!std::filesystem::exists("/usr/bin/aws")) {
    WARN("/usr/bin/aws absent: skipped");
    return;
  }
  ServerFixture f;
  const std::string endpoint = "--endpoint-url http://127.0.0.1:" + std::to_string(f.server->port());
  const auto created = Shell(f.Env("http") + "/usr/bin/aws " + endpoint +
                             " kms create-key --query KeyMetadata.KeyId --output text");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  std::string id = created.output;
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  const auto encrypted = Shell(f.Env("http") + "/usr/bin/aws " + endpoint + " kms encrypt --key-id " +
                               id + " --plaintext aGVsbG8= --query CiphertextBlob --output text");
  INFO(encrypted.output);
  REQUIRE(encrypted.exit_code == 0);
  std::string blob = encrypted.output;
  while (!blob.empty() && blob.back() == '\n') blob.pop_back();
  const auto decrypted = Shell(f.Env("http") + "/usr/bin/aws " + endpoint +
                               " kms decrypt --ciphertext-blob " + blob +
                               " --query Plaintext --output text");
  INFO(decrypted.output);
  CHECK(decrypted.exit_code == 0);
  CHECK(decrypted.output == "aGVsbG8=\n");
  const auto missing = Shell(f.Env("http") + "/usr/bin/aws " + endpoint +
                             " kms describe-key --key-id alias/missing");
  CHECK(missing.exit_code != 0);
  CHECK(missing.output.find("NotFoundException") != std::string::npos);
}

}  // namespace
}  // namespace kms::api::aws
