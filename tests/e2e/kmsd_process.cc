#include "tests/e2e/kmsd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace kms::e2e {

namespace {

constexpr char kPython[] = "/usr/bin/python3";  // Debian's, with boto3 and cryptography

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Starts argv[0] with `env`, stdout and stderr to `out` and `err` (the same file when equal).
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (err == out) {
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    FAIL("cannot start " << argv[0] << ": " << std::strerror(rc));
  }
  return pid;
}

// Waits for `pid` up to `timeout`; returns its exit code, -1 for a signal death; nullopt on
// timeout.
std::optional<int> WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The dev token's user PIN from <state>/hsm/dev-token.state ("" when there is none).
std::string UserPin(const fs::path& state_dir) {
  std::istringstream state(ReadFile(state_dir / "hsm" / "dev-token.state"));
  for (std::string line; std::getline(state, line);) {
    if (line.starts_with("user_pin=") && line.size() > 9) return line.substr(9);
  }
  return "";
}

std::map<std::string, std::string> ParseEnvFile(const std::string& text) {
  std::map<std::string, std::string> env;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos && eq > 0) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100 && path_.empty(); ++attempt) {
    fs::path candidate = fs::temp_directory_path() /
                         (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(candidate, ec)) path_ = candidate;
  }
  REQUIRE_FALSE(path_.empty());
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

TestPki MakeTestPki(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path log = dir / "make_pki.log";
  const pid_t pid =
      Spawn({kPython, std::string(KMS_E2E_SCRIPTS_DIR) + "/make_pki.py", dir.string()},
            {"PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"}, log, log);
  const auto rc = WaitFor(pid, std::chrono::seconds(60));
  if (!rc) kill(pid, SIGKILL), waitpid(pid, nullptr, 0);
  INFO("make_pki.py: " << ReadFile(log));
  REQUIRE(rc == std::optional<int>(0));
  return TestPki{dir / "ca.pem", dir / "server.pem", dir / "server.key"};
}

std::string ReadRecordedCanaries(const fs::path& canary_dir, std::vector<Canary>& out) {
  const fs::path file = canary_dir / "secrets.jsonl";
  std::istringstream in(ReadFile(file));  // a missing file reads as empty
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    const std::string where = file.string() + ":" + std::to_string(n);
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    const boost::json::object* o = ec ? nullptr : v.if_object();
    if (o == nullptr || !o->contains("what") || !o->at("what").is_string() ||
        !o->contains("value_b64") || !o->at("value_b64").is_string()) {
      return where + ": not {\"what\": string, \"value_b64\": string}";
    }
    const boost::json::string& b64 = o->at("value_b64").as_string();
    std::optional<std::string> value = DecodeBase64(std::string_view(b64.data(), b64.size()));
    if (!value) return where + ": value_b64 is not base64";
    out.push_back(Canary{std::string(o->at("what").as_string()), std::move(*value)});
  }
  return "";
}

KmsdProcess::KmsdProcess(KmsdOptions options) : options_(std::move(options)) {
  log_dir_ = options_.state_dir;
  log_dir_ += ".logs";
  fs::create_directories(log_dir_);
  // An earlier run's secrets would be searched for in this run's files: start empty.
  canary_dir_ = options_.state_dir;
  canary_dir_ += ".canaries";
  std::error_code ignored_removal;
  fs::remove_all(canary_dir_, ignored_removal);
  fs::create_directories(canary_dir_);
  std::vector<std::string> argv = {KMS_E2E_KMSD_PATH,           "--dev",    "--state-dir",
                                   options_.state_dir.string(), "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  if (options_.tls) {
    argv.insert(argv.end(), {"--tls-cert", options_.tls->server_cert.string(), "--tls-key",
                             options_.tls->server_key.string()});
  }
  // A dev.env left by an earlier run names the earlier port: readiness is this run's own line.
  std::error_code ignored;
  fs::remove(options_.state_dir / "dev.env", ignored);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  pid_ = Spawn(argv, env, log_dir_ / "stdout", log_dir_ / "stderr");
  // A failed REQUIRE throws out of this constructor, so no destructor would reap the daemon.
  try {
    WaitUntilReady();
  } catch (...) {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    throw;
  }
}

void KmsdProcess::WaitUntilReady() {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  std::string ready_url;
  while (true) {
    const std::string err = Stderr();
    // base/log.h: {"time":…,"level":"info","msg":"ready","endpoint":"<url>",…}
    constexpr std::string_view kReady = R"("msg":"ready","endpoint":")";
    if (auto at = err.find(kReady); at != std::string::npos) {
      const auto start = at + kReady.size();
      const auto end = err.find('"', start);
      if (end != std::string::npos) {
        ready_url = err.substr(start, end - start);
        break;
      }
    }
    if (auto exited = WaitFor(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      FAIL("kmsd exited with " << *exited << " before it was ready; stderr:\n" << err);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL("kmsd not ready after " << options_.ready_timeout.count() << " s; stderr:\n" << err);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  env_ = ParseEnvFile(ReadFile(options_.state_dir / "dev.env"));
  INFO("kmsd stderr:\n" << Stderr());
  for (const char* name :
       {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "KMS_ENDPOINT"}) {
    INFO("dev.env member " << name);
    REQUIRE(env_.contains(name));
    REQUIRE_FALSE(env_.at(name).empty());
  }
  REQUIRE(env_.at("KMS_ENDPOINT") == ready_url);
  REQUIRE(ready_url.rfind(options_.tls ? "https://127.0.0.1:" : "http://127.0.0.1:", 0) == 0);
  if (options_.tls) {
    env_["AWS_CA_BUNDLE"] = options_.tls->ca_cert.string();
    env_["VAULT_CACERT"] = options_.tls->ca_cert.string();  // what Vault's client reads
  }
}

KmsdProcess::~KmsdProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ignored;
  fs::remove_all(log_dir_, ignored);
  fs::remove_all(canary_dir_, ignored);
}

int KmsdProcess::Stop(std::chrono::seconds timeout) {
  REQUIRE(pid_ > 0);
  kill(pid_, SIGTERM);
  auto rc = WaitFor(pid_, timeout);
  if (!rc) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    rc = -1;
  }
  pid_ = -1;
  return *rc;
}

std::string KmsdProcess::Stderr() const { return ReadFile(log_dir_ / "stderr"); }

std::string KmsdProcess::LogProblems() const {
  std::vector<std::pair<std::string, std::string>> secrets;  // (what, value)
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN"}) {
    if (auto it = env_.find(name); it != env_.end() && !it->second.empty()) {
      secrets.emplace_back(name, it->second);
    }
  }
  if (std::string pin = UserPin(options_.state_dir); !pin.empty()) {
    secrets.emplace_back("the user PIN", std::move(pin));
  }
  secrets.emplace_back("a canary plaintext", "canary");
  std::istringstream log(Stderr());
  std::size_t n = 0;
  for (std::string line; std::getline(log, line);) {
    ++n;
    const std::string where = "stderr line " + std::to_string(n) + " (" + line + ")";
    for (const auto& [what, value] : secrets) {
      if (line.find(value) != std::string::npos) return where + " contains " + what;
    }
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) return where + " is not a JSON object";
    const auto& o = v.as_object();
    for (const char* field : {"time", "level", "msg"}) {
      if (!o.contains(field) || !o.at(field).is_string()) return where + " lacks " + field;
    }
  }
  return "";
}

std::string KmsdProcess::Canaries(std::vector<Canary>& out) const {
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN"}) {
    if (auto it = env_.find(name); it != env_.end() && !it->second.empty()) {
      out.push_back(Canary{std::string("dev.env ") + name, it->second});
    }
  }
  if (std::string pin = UserPin(options_.state_dir); !pin.empty()) {
    out.push_back(Canary{"the dev token's user PIN", std::move(pin)});
  }
  // The scenarios mark plaintexts with this word (e2e_lib.canary), and it names nothing else the
  // daemon could write: found raw anywhere, it is a plaintext.
  out.push_back(Canary{"the marker of canary plaintexts", "canary", /*marker=*/true});
  return ReadRecordedCanaries(canary_dir_, out);
}

CanaryPlaces KmsdProcess::Places() const {
  CanaryPlaces places;
  places.line_files = {log_dir_ / "stderr", log_dir_ / "stdout", options_.state_dir / "audit"};
  places.error_bodies = {canary_dir_ / "error_bodies.txt"};
  return places;
}

std::string KmsdProcess::LeakProblems() const {
  std::vector<Canary> canaries;
  if (std::string problem = Canaries(canaries); !problem.empty()) return problem;
  return FindCanary(canaries, Places());
}

namespace {

ScenarioResult RunPython(const std::string& script, const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {kPython, std::string(KMS_E2E_SCRIPTS_DIR) + "/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  // The caller's environment minus its AWS and Vault settings (profiles, credentials, config
  // files, a VAULT_TOKEN or VAULT_NAMESPACE of the developer's shell), plus the given ones. No
  // byte-code files in the source tree.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "AWS_", 4) != 0 && std::strncmp(*e, "VAULT_", 6) != 0 &&
        std::strncmp(*e, "KMS_ENDPOINT=", 13) != 0 &&
        std::strncmp(*e, "KMS_E2E_CANARY_DIR=", 19) != 0) {
      env.emplace_back(*e);
    }
  }
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  env.emplace_back("PYTHONDONTWRITEBYTECODE=1");
  env.emplace_back("PYTHONUNBUFFERED=1");
  const fs::path log =
      fs::temp_directory_path() / ("kms-e2e-" + std::to_string(::getpid()) + "-" + script + ".log");
  const pid_t pid = Spawn(argv, env, log, log);
  ScenarioResult result;
  auto rc = WaitFor(pid, timeout);
  if (!rc) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  result.exit_code = rc.value_or(-1);
  result.output = ReadFile(log);
  if (!rc) result.output += "\n[killed after " + std::to_string(timeout.count()) + " s]\n";
  std::error_code ignored;
  fs::remove(log, ignored);
  return result;
}

}  // namespace

ScenarioResult RunScenario(const KmsdProcess& kmsd, const std::string& script,
                           const std::vector<std::string>& args, std::chrono::seconds timeout) {
  // Every dev.env variable of the daemon, VAULT_ADDR and VAULT_TOKEN included.
  std::vector<std::string> env;
  for (const auto& [name, value] : kmsd.env()) env.push_back(name + "=" + value);
  env.push_back("KMS_E2E_CANARY_DIR=" + kmsd.canary_dir().string());
  return RunPython(script, args, env, timeout);
}

ScenarioResult RunScript(const std::string& script, const std::vector<std::string>& env,
                         std::chrono::seconds timeout) {
  return RunPython(script, {}, env, timeout);
}

}  // namespace kms::e2e
