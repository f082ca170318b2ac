// kmsctl end to end: a real kmsd in dev mode (own SoftHSM2 token and SQLite store in a temporary
// folder, loopback, port 0) driven by the kmsctl binary as an operator would: access keys created,
// listed, used, disabled, enabled and deleted; a non-administrator refused the admin API; an
// encrypt/decrypt round trip with an encryption context; Vault door tokens created, listed, used at
// /v1/ and revoked; the helpful errors (exception name and
// message, exit status, "is kmsd running?"). Each daemon ends with the canary search
// (tests/e2e/canary_search.h): no secret the test handled in its stderr, its audit folder or
// kmsctl's error output. Binary paths come from tests/CMakeLists.txt (KMS_KMSCTL_PATH,
// KMS_KMSD_PATH).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/api/test_pki.h"
#include "tests/e2e/canary_search.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

using Run = kms::testing::ShellRun;
using kms::e2e::Canary;
using kms::testing::Shell;

std::map<std::string, std::string> ParseEnv(const std::string& text) {
  std::map<std::string, std::string> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos && line[0] != '#') v[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return v;
}

// kmsd --dev on a fresh state folder; SIGTERM on destruction.
class DevKmsd {
 public:
  explicit DevKmsd(const std::vector<std::string>& extra_args = {}) {
    std::string tmpl = (fs::temp_directory_path() / "kms-kmsctl-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    const std::string state = (dir_ / "state").string();
    const std::string log = (dir_ / "kmsd.log").string();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      std::FILE* f = std::freopen(log.c_str(), "w", stderr);
      std::FILE* g = std::freopen("/dev/null", "w", stdout);
      (void)f;
      (void)g;
      std::vector<std::string> args = {KMS_KMSD_PATH, "--dev",    "--state-dir",
                                       state,         "--listen", "127.0.0.1:0"};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(KMS_KMSD_PATH, argv.data());
      std::_Exit(127);
    }
    env_file_ = (dir_ / "state" / "dev.env").string();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(env_file_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("kmsd exited before it was ready: " << Shell("cat " + log).output);
      }
      if (std::chrono::steady_clock::now() > deadline) FAIL("kmsd not ready within 60 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::ifstream in(env_file_);
    std::stringstream s;
    s << in.rdbuf();
    env_ = ParseEnv(s.str());
  }
  ~DevKmsd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& env_file() const { return env_file_; }
  std::string endpoint() const { return env_.at("KMS_ENDPOINT"); }

  // The canary search over this daemon's stderr and audit folder, and over `errors` (kmsctl's
  // output of failed calls, which carries the server's error messages): for `secrets`, dev.env's
  // secret access key and Vault token and the dev token's user PIN. "" when none is found.
  std::string LeakProblems(std::vector<Canary> secrets, const std::vector<Run>& errors) const {
    for (const char* name : {"AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN"}) {
      if (env_.contains(name)) {
        secrets.push_back(Canary{std::string("dev.env ") + name, env_.at(name)});
      }
    }
    std::ifstream state(dir_ / "state" / "hsm" / "dev-token.state");
    for (std::string line; std::getline(state, line);) {
      if (line.starts_with("user_pin=")) secrets.push_back(Canary{"the user PIN", line.substr(9)});
    }
    const fs::path bodies = dir_ / "error_bodies.txt";  // tests/e2e/e2e_lib.py's format
    {
      std::ofstream out(bodies, std::ios::binary | std::ios::trunc);
      for (const Run& r : errors) {
        out << r.output.size() << " kmsctl exit " << r.exit_code << "\n" << r.output << "\n";
      }
    }
    return kms::e2e::FindCanary(secrets, {{dir_ / "kmsd.log", dir_ / "state" / "audit"}, {bodies}});
  }

 private:
  fs::path dir_;
  std::string env_file_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
};

// kmsctl with the dev administrator (dev.env).
Run Admin(const DevKmsd& d, const std::string& args) {
  return Shell(std::string(KMS_KMSCTL_PATH) + " --env-file " + d.env_file() + " " + args);
}
// kmsctl with other credentials, from the environment only.
Run As(const DevKmsd& d, const std::string& id, const std::string& secret,
       const std::string& args) {
  return Shell("env -u AWS_SESSION_TOKEN KMS_ENDPOINT=" + d.endpoint() +
               " AWS_ACCESS_KEY_ID=" + id + " AWS_SECRET_ACCESS_KEY='" + secret +
               "' AWS_DEFAULT_REGION=us-east-1 " + KMS_KMSCTL_PATH + " " + args);
}

std::string KeyIdOf(const std::string& json) {
  const auto at = json.find("\"KeyId\":\"");
  REQUIRE(at != std::string::npos);
  return json.substr(at + 9, 36);
}

TEST_CASE("kmsctl: access keys, admin API, data plane against a dev kmsd", "[e2e]") {
  DevKmsd kmsd;

  const Run status = Admin(kmsd, "status");
  INFO(status.output);
  REQUIRE(status.exit_code == 0);
  CHECK(status.output.find("Sealed: false") != std::string::npos);
  CHECK(status.output.find("Mode: dev") != std::string::npos);

  // A user bob whose identity policy lets him create keys and encrypt (the default key policy
  // delegates to it), and a new, non-administrator key for him. An unknown user gets no key.
  CHECK(Admin(kmsd, "access-key create --user nobody").output.find(
            "kmsctl: NotFoundException: The user with name nobody cannot be found.") !=
        std::string::npos);
  const std::string policy_file =
      (std::filesystem::temp_directory_path() / ("kmsctl-bob-" + std::to_string(getpid()) + ".json"))
          .string();
  {
    std::ofstream out(policy_file);
    out << R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":)"
        << R"(["kms:CreateKey","kms:Encrypt","kms:DescribeKey"],"Resource":"*"}]})";
  }
  const Run user = Admin(kmsd, "user create bob --policy-file " + policy_file);
  std::filesystem::remove(policy_file);
  INFO(user.output);
  REQUIRE(user.exit_code == 0);
  CHECK(user.output == "arn:aws:iam::111122223333:user/bob\n");
  CHECK(Admin(kmsd, "user list").output.find("bob") != std::string::npos);
  const Run created = Admin(kmsd, "access-key create --user bob");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  const auto bob = ParseEnv(created.output);
  const std::string bob_id = bob.at("AWS_ACCESS_KEY_ID");
  const std::string bob_secret = bob.at("AWS_SECRET_ACCESS_KEY");
  CHECK(bob_id.size() == 20);
  CHECK(bob_secret.size() == 40);

  const Run listed = Admin(kmsd, "access-key list");
  INFO(listed.output);
  REQUIRE(listed.exit_code == 0);
  CHECK(listed.output.find(bob_id) != std::string::npos);
  CHECK(listed.output.find("bob") != std::string::npos);
  CHECK(listed.output.find("dev-admin") != std::string::npos);
  CHECK(listed.output.find(bob_secret) == std::string::npos);

  // Bob uses his new key on the data plane: create a key, round trip with a context.
  const Run key = As(kmsd, bob_id, bob_secret, "key create --description from-bob");
  INFO(key.output);
  REQUIRE(key.exit_code == 0);
  const std::string key_id = KeyIdOf(key.output);
  const std::string plaintext = "canary-plaintext-kmsctl-5b0e9d";  // found raw if it leaks
  const Run enc =
      As(kmsd, bob_id, bob_secret,
         "encrypt --key " + key_id + " --plaintext '" + plaintext + "' --context app=test");
  INFO(enc.output);
  REQUIRE(enc.exit_code == 0);
  std::string blob = enc.output;
  while (!blob.empty() && (blob.back() == '\n')) blob.pop_back();
  // Decrypt is not in bob's policy: refused naming the action and the key, nothing else.
  const Run bob_dec = As(kmsd, bob_id, bob_secret, "decrypt --blob " + blob + " --context app=test");
  CHECK(bob_dec.exit_code == 1);
  CHECK(bob_dec.output.find("kmsctl: AccessDeniedException: User: "
                            "arn:aws:iam::111122223333:user/bob is not authorized to perform: "
                            "kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/" +
                            key_id) != std::string::npos);
  const Run dec = Admin(kmsd, "decrypt --blob " + blob + " --context app=test");
  CHECK(dec.exit_code == 0);
  CHECK(dec.output == plaintext);
  const Run wrong_ctx = Admin(kmsd, "decrypt --blob " + blob + " --context app=other");
  CHECK(wrong_ctx.exit_code == 1);
  CHECK(wrong_ctx.output.find("kmsctl: InvalidCiphertextException") != std::string::npos);
  CHECK(Admin(kmsd, "key describe " + key_id).output.find("from-bob") != std::string::npos);
  CHECK(Admin(kmsd, "key list").output.find(key_id) != std::string::npos);
  const Run data_key = Admin(kmsd, "data-key --key " + key_id);
  CHECK(data_key.output.find("\"CiphertextBlob\"") != std::string::npos);
  const auto dk_at = data_key.output.find("\"Plaintext\":\"");
  REQUIRE(dk_at != std::string::npos);
  const auto dk_end = data_key.output.find('"', dk_at + 13);
  const auto data_key_plaintext =
      kms::e2e::DecodeBase64(data_key.output.substr(dk_at + 13, dk_end - dk_at - 13));
  REQUIRE(data_key_plaintext.has_value());
  CHECK(data_key_plaintext->size() == 32);
  CHECK(Admin(kmsd, "rotate " + key_id).exit_code == 0);
  CHECK(Admin(kmsd, "decrypt --blob " + blob + " --context app=test").output == plaintext);

  // Bob is not an administrator.
  for (const std::string& args :
       std::vector<std::string>{"status", "access-key list", "access-key create --user eve",
                                "access-key disable " + bob_id}) {
    const Run denied = As(kmsd, bob_id, bob_secret, args);
    INFO(args << " -> " << denied.output);
    CHECK(denied.exit_code == 1);
    CHECK(denied.output.find("kmsctl: AccessDeniedException: ") != std::string::npos);
  }

  // Disabled: bob's key is refused as unknown; enabled again, it works; deleted, refused for good.
  REQUIRE(Admin(kmsd, "access-key disable " + bob_id).exit_code == 0);
  CHECK(Admin(kmsd, "access-key list").output.find("Inactive") != std::string::npos);
  const Run disabled = As(kmsd, bob_id, bob_secret, "encrypt --key " + key_id + " --plaintext x");
  INFO(disabled.output);
  CHECK(disabled.exit_code == 1);
  CHECK(disabled.output.find("kmsctl: UnrecognizedClientException: The security token included in "
                             "the request is invalid.") != std::string::npos);
  REQUIRE(Admin(kmsd, "access-key enable " + bob_id).exit_code == 0);
  CHECK(As(kmsd, bob_id, bob_secret, "encrypt --key " + key_id + " --plaintext x").exit_code == 0);
  REQUIRE(Admin(kmsd, "access-key delete " + bob_id).exit_code == 0);
  CHECK(As(kmsd, bob_id, bob_secret, "key list").output.find("UnrecognizedClientException") !=
        std::string::npos);
  const Run again = Admin(kmsd, "access-key delete " + bob_id);
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("kmsctl: NotFoundException") != std::string::npos);

  // A bad signature and a service error name their exceptions.
  const Run bad_secret = As(kmsd, "AKMSAAAAAAAAAAAAAAAA", std::string(40, 'x'), "key list");
  CHECK(bad_secret.exit_code == 1);
  CHECK(bad_secret.output.find("UnrecognizedClientException") != std::string::npos);
  const Run unknown_key = Admin(kmsd, "key describe alias/nope");
  CHECK(unknown_key.exit_code == 1);
  CHECK(unknown_key.output.find("kmsctl: NotFoundException: ") != std::string::npos);

  CHECK(kmsd.LeakProblems({{"bob's secret access key", bob_secret},
                           {"the plaintext", plaintext},
                           {"the data key", *data_key_plaintext},
                           {"a wrong secret access key", std::string(40, 'x')}},
                          {bob_dec, wrong_ctx, disabled, again, bad_secret, unknown_key}) == "");
}

TEST_CASE("kmsctl: Vault tokens created, listed, used and revoked", "[e2e]") {
  DevKmsd kmsd;

  const Run created =
      Admin(kmsd,
            "vault-token create --name seal --key autounseal --key 'app-*' "
            "--operation encrypt --operation decrypt --ttl 24h --explicit-max-ttl 7d");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  const auto vars = ParseEnv(created.output);
  REQUIRE(vars.count("VAULT_TOKEN") == 1);
  const std::string token = vars.at("VAULT_TOKEN");
  CHECK(token.size() == 36);
  CHECK(token.starts_with("hvs."));
  const auto at = created.output.find("# accessor acc.");
  REQUIRE(at != std::string::npos);
  const std::string accessor = created.output.substr(at + 11, 28);
  // Patterns without a mount name the default mount, and are shown so.
  CHECK(created.output.find("keys transit/autounseal,transit/app-*; operations encrypt,decrypt") !=
        std::string::npos);
  CHECK(created.output.find("shown only this once") != std::string::npos);

  // The token works at the Vault door on the same endpoint.
  const std::string lookup = "curl -s -o /dev/null -w '%{http_code}' -H 'X-Vault-Token: " + token +
                             "' " + kmsd.endpoint() + "/v1/auth/token/lookup-self";
  CHECK(Shell(lookup).output == "200");

  const Run listed = Admin(kmsd, "vault-token list");
  INFO(listed.output);
  REQUIRE(listed.exit_code == 0);
  CHECK(listed.output.find("ACCESSOR") != std::string::npos);
  CHECK(listed.output.find(accessor) != std::string::npos);
  CHECK(listed.output.find("seal") != std::string::npos);
  CHECK(listed.output.find("transit/autounseal,transit/app-* / encrypt,decrypt") !=
        std::string::npos);
  CHECK(listed.output.find(token.substr(4)) == std::string::npos);

  const Run revoked = Admin(kmsd, "vault-token revoke " + accessor);
  INFO(revoked.output);
  REQUIRE(revoked.exit_code == 0);
  CHECK(revoked.output == accessor + " revoked\n");
  CHECK(Shell(lookup).output == "403");
  CHECK(Admin(kmsd, "vault-token list").output.find(accessor) == std::string::npos);
  const Run again = Admin(kmsd, "vault-token revoke " + accessor);
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("kmsctl: NotFoundException: unknown token accessor") !=
        std::string::npos);

  // Local input errors exit 2 before any call; service validation errors exit 1.
  const Run bad_ttl = Admin(kmsd, "vault-token create --name x --ttl 1y");
  CHECK(bad_ttl.exit_code == 2);
  CHECK(bad_ttl.output.find("--ttl takes a duration") != std::string::npos);
  const Run bad_op = Admin(kmsd, "vault-token create --name x --operation delete");
  CHECK(bad_op.exit_code == 1);
  CHECK(bad_op.output.find("kmsctl: ValidationException: unknown token operation") !=
        std::string::npos);

  CHECK(kmsd.LeakProblems({{"the created Vault token", token}}, {again, bad_ttl, bad_op}) == "");
}

TEST_CASE("kmsctl: helpful errors without a server or credentials", "[e2e]") {
  const std::string kmsctl = KMS_KMSCTL_PATH;
  const Run refused = Shell("env AWS_ACCESS_KEY_ID=AKMSAAAAAAAAAAAAAAAA AWS_SECRET_ACCESS_KEY=x " +
                            kmsctl + " --endpoint http://127.0.0.1:1 status");
  INFO(refused.output);
  CHECK(refused.exit_code == 3);
  CHECK(refused.output.find("cannot reach http://127.0.0.1:1: Connection refused") !=
        std::string::npos);
  CHECK(refused.output.find("Is kmsd running?") != std::string::npos);

  const Run no_endpoint = Shell("env -u KMS_ENDPOINT " + kmsctl + " status");
  CHECK(no_endpoint.exit_code == 2);
  CHECK(no_endpoint.output.find("no endpoint") != std::string::npos);
  const Run no_creds = Shell("env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY " + kmsctl +
                             " --endpoint http://127.0.0.1:1 status");
  CHECK(no_creds.exit_code == 2);
  CHECK(no_creds.output.find("no credentials") != std::string::npos);
  const Run bad_url = Shell(kmsctl + " --endpoint ftp://x status");
  CHECK(bad_url.exit_code == 2);
  CHECK(bad_url.output.find("http:// or https://") != std::string::npos);
  const Run usage = Shell(kmsctl + " encrypt --key k");
  CHECK(usage.exit_code == 2);
}

// seal-status, unseal and seal need no SigV4 credentials (a sealed appliance has none to check):
// a dev appliance is always unsealed and cannot be sealed, and says so.
TEST_CASE("kmsctl: seal-status, unseal and seal against a dev kmsd, and their usage errors",
          "[e2e]") {
  DevKmsd kmsd;
  const std::string kmsctl = KMS_KMSCTL_PATH;
  const std::string bare = "env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u VAULT_TOKEN " +
                           kmsctl + " --endpoint " + kmsd.endpoint();
  const Run status = Shell(bare + " seal-status");
  INFO(status.output);
  REQUIRE(status.exit_code == 0);
  CHECK(status.output.find("\"type\":\"pkcs11\"") != std::string::npos);
  CHECK(status.output.find("\"sealed\":false") != std::string::npos);
  // An unsealed appliance answers a share with its state, as Vault does.
  const Run unseal = Shell("echo kms1-00 | " + bare + " unseal");
  CHECK(unseal.exit_code == 0);
  CHECK(unseal.output.find("\"sealed\":false") != std::string::npos);
  const Run sealed = Admin(kmsd, "seal");
  CHECK(sealed.exit_code == 1);
  CHECK(sealed.output.find("HTTP 400: this appliance cannot be sealed: dev mode unseals itself at "
                           "start") != std::string::npos);
  const Run no_token = Shell(bare + " seal");
  CHECK(no_token.exit_code == 2);
  CHECK(no_token.output.find("no token: pass --vault-token or set VAULT_TOKEN") !=
        std::string::npos);
  const Run wrong_token = Shell(bare + " seal --vault-token hvs.not-a-token");
  CHECK(wrong_token.exit_code == 1);
  CHECK(wrong_token.output.find("HTTP 403: permission denied") != std::string::npos);
  const Run empty = Shell("echo | " + bare + " unseal");
  CHECK(empty.exit_code == 2);
  CHECK(empty.output.find("no share given (argument or stdin)") != std::string::npos);
  const Run unreachable = Shell(kmsctl + " --endpoint http://127.0.0.1:1 seal-status");
  CHECK(unreachable.exit_code == 3);
  CHECK(unreachable.output.find("cannot reach http://127.0.0.1:1") != std::string::npos);
  const Run no_endpoint = Shell("env -u KMS_ENDPOINT -u VAULT_ADDR " + kmsctl + " seal-status");
  CHECK(no_endpoint.exit_code == 2);
  CHECK(no_endpoint.output.find("no endpoint: set KMS_ENDPOINT, or pass --endpoint") !=
        std::string::npos);

  CHECK(kmsd.LeakProblems({{"a wrong Vault token", "hvs.not-a-token"}}, {sealed, wrong_token}) ==
        "");
}

TEST_CASE("kmsctl: HTTPS with --ca-bundle, and the certificate checks", "[e2e]") {
  const auto& pki = kms::api::testing::Pki();
  if (!pki.ok) {
    WARN("openssl CLI unavailable: skipped");
    return;
  }
  {
    // The server certificate names 127.0.0.1 only as an iPAddress subjectAltName.
    DevKmsd kmsd({"--tls-cert", pki.Path("server.pem"), "--tls-key", pki.Path("server.key")});
    REQUIRE(kmsd.endpoint().starts_with("https://127.0.0.1:"));
    const Run ok = Admin(kmsd, "--ca-bundle " + pki.Path("ca.pem") + " status");
    INFO(ok.output);
    CHECK(ok.exit_code == 0);
    CHECK(ok.output.find("Sealed: false") != std::string::npos);
    const Run round = Admin(kmsd, "--ca-bundle " + pki.Path("ca.pem") + " key create");
    CHECK(round.exit_code == 0);
    const Run untrusted = Admin(kmsd, "--ca-bundle " + pki.Path("other.pem") + " status");
    INFO(untrusted.output);
    CHECK(untrusted.exit_code == 3);
    CHECK(untrusted.output.find("The certificate is not correctly signed by the trusted CA") !=
          std::string::npos);
  }
  {
    // A trusted certificate that does not name the address is refused.
    DevKmsd kmsd({"--tls-cert", pki.Path("other.pem"), "--tls-key", pki.Path("other.key")});
    const Run wrong = Admin(kmsd, "--ca-bundle " + pki.Path("other.pem") + " status");
    INFO(wrong.output);
    CHECK(wrong.exit_code == 3);
    CHECK(wrong.output.find("the server certificate does not name IP address 127.0.0.1") !=
          std::string::npos);
  }
}

}  // namespace
