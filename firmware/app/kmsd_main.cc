// kmsd: the appliance daemon, and the composition root of the tree. This is the one place that
// knows every layer: it opens the HSM (hal/ over pkcs11/), the metadata store, the key service, and
// mounts the AWS door at "/" and the Vault door under "/v1/" (api/) on one HTTP(S) server. Nothing
// below it knows the others exist.
//
// Dev mode (`--dev`) is a complete appliance from an empty state folder, the way `vault server
// -dev` is: its own SoftHSM2 token and SQLite store under the folder, unsealed at start (the dev
// token's PIN is kept in the folder), listening on loopback, and one administrator access key whose
// credentials it writes to `<state>/dev.env` (0600 from its creation, firmware/app/private_file.h)
// and prints, with a Vault token for the same operator (VAULT_ADDR, VAULT_TOKEN), made anew on
// every start. A second start on the same folder keeps every key. Production (`mode =
// "production"`) starts sealed over a provisioned store and token, and unseals when the custodians'
// shares pass the unseal gate (firmware/app/unseal_gate.h). Settings come from a TOML file
// (`--config`, firmware/app/appliance_config.h) with flags over it; `--dev` alone is dev mode with
// the defaults.
//
// Signals: SIGTERM and SIGINT stop the server gracefully (stop accepting, drain in-flight requests)
// and the daemon exits 0.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "api/aws/aws_server.h"
#include "api/health/health_page.h"
#include "api/http/message.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "api/vault/vault_door.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/status.h"
#include "firmware/app/appliance.h"
#include "firmware/app/appliance_config.h"
#include "firmware/app/private_file.h"
#include "firmware/app/unseal_gate.h"
#include "firmware/custodian_shares.h"
#include "firmware/seal.h"
#include "firmware/store/sqlite_store.h"
#include "firmware/vault_tokens.h"
#include "provisioning/dev_token.h"

namespace {

namespace fs = std::filesystem;
using kms::Status;
using kms::StatusOr;

// The Vault token dev mode hands its operator (dev.env's VAULT_TOKEN), like `vault server -dev`'s
// root token.
constexpr std::string_view kDevTokenName = "dev-operator";

// The daemon's one logger: JSON lines on stderr (base/log.h). Its level is set in main before the
// first line and before any thread starts.
kms::log::Level g_log_level = kms::log::Level::kInfo;
const kms::log::Logger& Logs() {
  static const kms::log::Logger logger(stderr, g_log_level);
  return logger;
}

// A failure that stops the start (or a step of it), as one error line.
void Log(const std::string& line) { Logs().Error(line); }

// A fresh administrator token for the dev operator. Tokens are stored hashed, so the previous run's
// token cannot be shown again: it is revoked and a new one made on every start (dev.env is
// rewritten with it), which also keeps dev tokens from piling up.
StatusOr<kms::SecretBytes> FreshDevToken(kms::firmware::VaultTokenRegistry& tokens) {
  std::string after;
  while (true) {
    KMS_ASSIGN_OR_RETURN(auto page, tokens.List(after, 1000));
    for (const auto& token : page.items) {
      if (token.display_name == kDevTokenName)
        KMS_RETURN_IF_ERROR(tokens.RevokeAccessor(token.accessor));
    }
    if (!page.truncated) break;
    after = page.next_marker;
  }
  kms::firmware::VaultTokenSpec spec;
  spec.display_name = std::string(kDevTokenName);
  spec.key_patterns = {"*/*"};  // every key of every mount (an administrator matches all anyway)
  spec.operations = {"*"};
  spec.administrator = true;
  spec.ttl_ms = 0;  // never expires, as Vault's dev root token
  spec.policies = {"root"};
  KMS_ASSIGN_OR_RETURN(auto made, tokens.Create(spec));
  return std::move(made.token);
}

// The router the server hands every request to. A sealed production appliance serves one router,
// then, once unsealed, the Appliance's. Routers and what their handlers use live until the server
// has stopped, so swapping never pulls anything from under a request in flight.
class RouterSwitch {
 public:
  // Release/acquire: a request that sees the new router sees it fully built.
  void Set(const kms::api::http::Router* router) { router_.store(router, std::memory_order_release); }
  kms::api::http::HttpResponse operator()(const kms::api::http::HttpRequest& request) const {
    return (*router_.load(std::memory_order_acquire))(request);
  }
  kms::api::http::Lane LaneOf(const kms::api::http::HttpRequest& request) const {
    return router_.load(std::memory_order_acquire)->LaneOf(request);
  }

 private:
  // Read on every request: an atomic pointer, not a lock.
  std::atomic<const kms::api::http::Router*> router_{nullptr};
};

// What stops the daemon's wait: a signal, or (production) a seal request.
class StopEvents {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread and every thread started after (call first in
  // main's thread), and waits for them on a thread of its own.
  StopEvents() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    waiter_ = std::thread([this] {
      int number = 0;
      sigwait(&signals_, &number);
      std::lock_guard lock(mu_);
      signal_ = number;
      cv_.notify_all();
    });
  }
  ~StopEvents() {
    if (waiter_.joinable()) {
      if (signal_ == 0) pthread_kill(waiter_.native_handle(), SIGTERM);
      waiter_.join();
    }
  }
  void RequestSeal() {
    std::lock_guard lock(mu_);
    seal_ = true;
    cv_.notify_all();
  }
  // Waits for either; true when a seal was asked for, false on a signal.
  bool WaitForSealOrSignal() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return seal_ || signal_ != 0; });
    if (signal_ != 0) {
      Logs().Info("stopping: draining in-flight requests",
                  {{"signal", signal_ == SIGTERM ? "SIGTERM" : "SIGINT"}});
      return false;
    }
    return true;
  }

 private:
  sigset_t signals_;
  std::mutex mu_;
  std::condition_variable cv_;
  int signal_ = 0;
  bool seal_ = false;
  std::thread waiter_;
};

std::string EndpointOf(const kms::app::ApplianceConfig& config, std::uint16_t port) {
  auto listen = kms::app::ParseListenAddress(config.listen, "server.listen");
  const std::string host =
      listen->first.find(':') != std::string::npos ? "[" + listen->first + "]" : listen->first;
  return (config.tls.has_value() ? "https://" : "http://") + host + ":" + std::to_string(port);
}

// Creates the server over `routes` and starts it (it listens once this returns OK).
StatusOr<std::unique_ptr<kms::api::http::Server>> StartServer(
    const kms::app::ApplianceConfig& config, const RouterSwitch& routes,
    kms::metrics::MetricsRegistry& metrics) {
  KMS_ASSIGN_OR_RETURN(auto server_config, kms::app::ServerConfigFrom(config));
  server_config.logs = &Logs();
  // Faults speak the format of the door the request was for (Vault's under /v1/); the routers
  // put the probes outside max_in_flight and /livez on the network thread.
  KMS_ASSIGN_OR_RETURN(
      auto server,
      kms::api::http::Server::Create(
          std::move(server_config),
          [&routes](const kms::api::http::HttpRequest& request) { return routes(request); },
          kms::app::DoorFaultResponse,
          [&routes](const kms::api::http::HttpRequest& request) {
            return routes.LaneOf(request);
          }));
  kms::api::http::Server* s = server.get();
  metrics.AddGauge("kms_http_connections", "Open client connections.",
                   [s] { return static_cast<double>(s->connection_count()); });
  KMS_RETURN_IF_ERROR(server->Start());
  return server;
}

int RunDev(const kms::app::ApplianceConfig& config, bool accept_store_rollback) {
  StopEvents events;
  std::error_code ec;
  fs::create_directories(config.state_dir, ec);
  if (ec) {
    Log("cannot create state folder " + config.state_dir + ": " + ec.message());
    return 1;
  }
  // The folder holds the dev token's PIN and dev.env: its owner's alone.
  fs::permissions(config.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    Log("cannot restrict state folder " + config.state_dir + " to its owner: " + ec.message());
    return 1;
  }
  const fs::path state = fs::absolute(config.state_dir);

  // 1. The folder's own SoftHSM2 token (made on first start) and store.
  auto token = kms::provisioning::OpenOrCreateDevToken((state / "hsm").string());
  if (!token.has_value()) {
    Log("dev token: " + token.error().ToString());
    return 1;
  }
  kms::firmware::store::SqliteStoreOptions store_options;
  store_options.path = (state / "kms.db").string();
  auto store = kms::firmware::store::OpenSqliteStore(store_options);
  if (!store.has_value()) {
    Log("store: " + store.error().ToString());
    return 1;
  }

  // 2. The appliance, unsealed from the start with the dev token's PIN.
  kms::metrics::MetricsRegistry metrics;
  kms::app::ApplianceOptions options;
  options.config = &config;
  options.mode = "dev";
  options.hsm.module_path = token->module_path;
  options.hsm.token_label = token->token_label;
  options.hsm.token_serial = token->token_serial;
  options.hsm.user_pin = token->user_pin.Clone();
  options.hsm.domain_key_label = token->domain_key_label;
  options.hsm.session_pool_size = config.hsm_sessions;
  options.store = store->get();
  options.audit_dir = config.audit_dir.empty() ? (state / "audit").string() : config.audit_dir;
  options.metrics = &metrics;
  options.logs = &Logs();
  options.vault_health.version = std::string(kms::app::kApplianceVersion);
  options.accept_store_rollback = accept_store_rollback;
  auto appliance = kms::app::Appliance::Open(std::move(options));
  if (!appliance.has_value()) {
    Log(appliance.error().ToString());
    return 1;
  }

  // 3. The dev operator's credentials: one administrator access key (made on first start) and a
  // fresh Vault token.
  if (Status s = (*appliance)->principals().EnsureAdministrator("dev-admin"); !s.ok()) {
    Log("principals: " + s.ToString());
    return 1;
  }
  auto admin_id = (*appliance)->access_keys().EnsureBootstrapAdmin("dev-admin");
  if (!admin_id.has_value()) {
    Log("access keys: " + admin_id.error().ToString());
    return 1;
  }
  auto admin_secret = (*appliance)->access_keys().RevealSecret(*admin_id);  // dev.env carries it
  if (!admin_secret.has_value()) {
    Log("access keys: " + admin_secret.error().ToString());
    return 1;
  }
  auto dev_token = FreshDevToken((*appliance)->vault_tokens());
  if (!dev_token.has_value()) {
    Log("vault tokens: " + dev_token.error().ToString());
    return 1;
  }

  // 4. Serve.
  RouterSwitch routes;
  routes.Set(&(*appliance)->router());
  auto server = StartServer(config, routes, metrics);
  if (!server.has_value()) {
    Log("server: " + server.error().ToString());
    return 1;
  }
  (*appliance)->StartScheduler();

  const std::string endpoint = EndpointOf(config, (*server)->port());
  std::string env;
  env += "AWS_ACCESS_KEY_ID=" + *admin_id + "\n";
  env += "AWS_SECRET_ACCESS_KEY=" + std::string(kms::AsStringView(admin_secret->ExposeSecret())) +
         "\n";
  env += "AWS_DEFAULT_REGION=" + config.region + "\n";
  env += "KMS_ENDPOINT=" + endpoint + "\n";
  env += "VAULT_ADDR=" + endpoint + "\n";
  env += "VAULT_TOKEN=" + std::string(kms::AsStringView(dev_token->ExposeSecret())) + "\n";
  // 0600 from its creation, whatever the umask (firmware/app/private_file.h).
  if (Status written = kms::app::WritePrivateFile((state / "dev.env").string(), env);
      !written.ok()) {
    Log("dev.env: " + written.ToString());
    return 1;
  }
  kms::WipeString(env);
  std::printf(
      "kmsd dev mode: DEVELOPMENT ONLY. The HSM PIN and an administrator credential are kept in\n"
      "%s; never use dev mode for real keys.\n\n"
      "  endpoint:  %s\n  region:    %s\n  access key %s (secret in %s)\n\n"
      "  vault:     %s/v1/%s/ (VAULT_ADDR, VAULT_TOKEN in %s)\n\n"
      "Use it:\n  set -a; . %s; set +a\n  aws kms create-key --endpoint-url \"$KMS_ENDPOINT\"\n"
      "  curl -H \"X-Vault-Token: $VAULT_TOKEN\" -X PUT \"$VAULT_ADDR/v1/%s/keys/demo\"\n\n",
      state.string().c_str(), endpoint.c_str(), config.region.c_str(), admin_id->c_str(),
      (state / "dev.env").string().c_str(), endpoint.c_str(), config.vault_mounts.front().c_str(),
      (state / "dev.env").string().c_str(), (state / "dev.env").string().c_str(),
      config.vault_mounts.front().c_str());
  std::fflush(stdout);
  Logs().Info("ready", {{"endpoint", endpoint},
                        {"workers", config.workers},
                        {"hsm_sessions", config.hsm_sessions},
                        {"vault_mounts", config.vault_mounts.size()}});

  events.WaitForSealOrSignal();  // dev mode has no seal: only a signal ends the wait
  (*server)->Stop();
  appliance->reset();
  Logs().Info("stopped");
  return 0;
}

// Production: the store and its seal descriptor, then a sealed server until the custodians'
// shares rebuild the unseal secret, then the Appliance. Sealing (sys/seal) restarts the daemon
// into the sealed state (execv of itself): nothing of the unsealed process, PIN and unwrapped keys
// included, survives, and the metrics start anew.
class ProductionBoot {
 public:
  ProductionBoot(const kms::app::ApplianceConfig& config,
                 kms::firmware::store::MetadataStore& store,
                 const kms::firmware::SealDescriptor& descriptor, StopEvents& events,
                 bool accept_store_rollback)
      : accept_store_rollback_(accept_store_rollback),
        config_(config),
        store_(store),
        descriptor_(descriptor),
        events_(events),
        gate_(store, descriptor, Logs()) {}

  // The Vault door's view of the seal.
  kms::api::vault::VaultHealth Health() const {
    std::lock_guard lock(mu_);
    return HealthLocked();
  }

  // sys/unseal: one share, or a reset. The share that reaches the threshold opens the appliance
  // before the answer, so "sealed": false means it serves. The gate decides every share and the
  // rebuilt secret from the seal descriptor (firmware/app/unseal_gate.h) before any login.
  StatusOr<kms::api::vault::VaultHealth> Unseal(std::string_view share, bool reset) {
    std::lock_guard lock(mu_);
    if (appliance_ != nullptr) return HealthLocked();
    if (reset) {
      gate_.Reset();
      Logs().Info("unseal progress reset");
      return HealthLocked();
    }
    auto unsealed = gate_.Add(share, [this](kms::SecretBytes pin) { return Open(std::move(pin)); });
    if (!unsealed.has_value()) return unsealed.error();
    return HealthLocked();
  }

  // Serves sealed until a signal or a seal request; 0 on a signal, 3 to restart sealed.
  int Run() {
    kms::api::vault::VaultDoorConfig vault;
    vault.mounts = config_.vault_mounts;
    vault.health = [this] { return Health(); };
    vault.unseal = [this](std::string_view s, bool r) { return Unseal(s, r); };
    sealed_vault_ = std::make_unique<kms::api::vault::VaultDoor>(vault);
    const kms::api::vault::VaultDoor* door = sealed_vault_.get();
    sealed_routes_.Exact("/", kms::api::aws::SealedAwsResponse);
    sealed_routes_.NotFound(kms::api::aws::SealedAwsResponse);
    auto vault_door = [door](const kms::api::http::HttpRequest& r) { return door->Handle(r); };
    sealed_routes_.Prefix("/v1/", vault_door);
    // The lanes of the unsealed routes (firmware/app/appliance.h). Sealed, /health and /readyz
    // touch no HSM, but sys/health waits for an unseal in progress (mu_): workers all the same.
    using kms::api::http::Lane;
    sealed_routes_.Exact("/v1/sys/health", vault_door, Lane::kProbe);
    const kms::api::health::ApplianceState sealed{
        true, true, "production", std::string(kms::app::kApplianceVersion), {}};
    sealed_routes_.Exact(
        "/health",
        [sealed](const kms::api::http::HttpRequest& r) {
          return kms::api::health::HealthPage(nullptr, sealed, r);
        },
        Lane::kProbe);
    sealed_routes_.Exact(
        "/readyz",
        [sealed](const kms::api::http::HttpRequest& r) {
          return kms::api::health::ReadinessPage(nullptr, sealed, r);
        },
        Lane::kProbe);
    sealed_routes_.Exact("/livez", kms::api::health::LivenessPage, Lane::kInline);
    sealed_routes_.Exact("/metrics", [this](const kms::api::http::HttpRequest& r) {
      return kms::app::MetricsPage(metrics_, r);
    });
    routes_.Set(&sealed_routes_);

    auto server = StartServer(config_, routes_, metrics_);
    if (!server.has_value()) {
      Log("server: " + server.error().ToString());
      return 1;
    }
    endpoint_ = EndpointOf(config_, (*server)->port());
    Logs().Info("sealed: waiting for custodian shares (kmsctl unseal)",
                {{"endpoint", endpoint_},
                 {"threshold", static_cast<std::int64_t>(descriptor_.threshold)},
                 {"shares", static_cast<std::int64_t>(descriptor_.shares)}});
    if (!config_.auto_unseal_file.empty()) AutoUnseal();
    const bool seal = events_.WaitForSealOrSignal();
    (*server)->Stop();
    std::lock_guard lock(mu_);
    appliance_.reset();  // logs out of the token
    return seal ? 3 : 0;
  }

 private:
  // Logs in with `pin` and opens the appliance; only the gate calls it, with the PIN of a secret
  // it verified (or, for a store without a verifier, one the token is about to judge).
  kms::app::OpenOutcome Open(kms::SecretBytes pin) {
    kms::app::OpenOutcome outcome;
    kms::app::ApplianceOptions options;
    options.config = &config_;
    options.mode = "production";
    options.hsm.module_path = config_.hsm_module;
    options.hsm.token_label = config_.token_label;
    options.hsm.token_serial = config_.token_serial;
    options.hsm.user_pin = std::move(pin);
    options.hsm.domain_key_label = config_.domain_key_label;
    options.hsm.session_pool_size = config_.hsm_sessions;
    // The HAL is open once the token took the PIN (and the domain key checked out). The flag is
    // shared, not a reference to this frame: the Appliance keeps its options.
    const auto pin_accepted = std::make_shared<bool>(false);
    options.open_hsm = [pin_accepted](kms::hal::Pkcs11HsmConfig hsm) {
      auto opened = kms::hal::OpenPkcs11Hsm(std::move(hsm));
      *pin_accepted = opened.has_value();
      return opened;
    };
    options.store = &store_;
    options.audit_dir = config_.audit_dir.empty()
                            ? (fs::absolute(config_.store_path).parent_path() / "audit").string()
                            : config_.audit_dir;
    options.metrics = &metrics_;
    options.logs = &Logs();
    options.vault_health = UnsealedHealth();
    options.unseal = [this](std::string_view s, bool r) { return Unseal(s, r); };
    options.accept_store_rollback = accept_store_rollback_;
    options.seal = [this] {
      Logs().Info("seal requested: restarting sealed");
      events_.RequestSeal();
      return Status();
    };
    auto appliance = kms::app::Appliance::Open(std::move(options));
    outcome.pin_accepted = *pin_accepted;
    if (!appliance.has_value()) {
      Logs().Error("unseal failed", {{"status", appliance.error().ToString()}});
      // A store older than the token is the custodians' business: they decide what to do next.
      if (appliance.error().code() == kms::StatusCode::kFailedPrecondition &&
          appliance.error().message().starts_with("store: ")) {
        outcome.status =
            kms::FailedPreconditionError("unseal failed: " + appliance.error().message());
        return outcome;
      }
      outcome.status = kms::FailedPreconditionError(
          "unseal failed: the shares rebuilt the secret, but the appliance could not open the HSM "
          "with it (the appliance log says why); enter the shares again");
      return outcome;
    }
    appliance_ = std::move(*appliance);
    appliance_->StartScheduler();
    routes_.Set(&appliance_->router());
    Logs().Info("unsealed", {{"endpoint", endpoint_}});
    return outcome;
  }

  // [seal] auto_unseal_file: the shares kmsd enters itself, one per line. A failure leaves the
  // appliance sealed for the custodians; the shares never reach the log.
  void AutoUnseal() {
    Logs().Warn(
        "auto-unseal from a file: whoever can read it can unseal this appliance (custodian shares "
        "are the strong way)",
        {{"file", config_.auto_unseal_file}});
    std::ifstream in(config_.auto_unseal_file);
    std::string line;
    std::size_t entered = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto state = Unseal(line, false);
      kms::WipeString(line);
      if (!state.has_value()) {
        Logs().Error("auto-unseal failed: staying sealed",
                     {{"line", static_cast<std::int64_t>(entered + 1)},
                      {"reason", state.error().message()}});
        return;
      }
      ++entered;
      if (!state->sealed) return;
    }
    Logs().Error("auto-unseal failed: staying sealed",
                 {{"reason", "the file holds fewer shares than the threshold"},
                  {"shares", static_cast<std::int64_t>(entered)}});
  }

  kms::api::vault::VaultHealth UnsealedHealth() const {
    kms::api::vault::VaultHealth h;
    h.sealed = false;
    h.version = std::string(kms::app::kApplianceVersion);
    h.seal_type = "shamir";
    h.threshold = descriptor_.threshold;
    h.shares = descriptor_.shares;
    h.recovery_seal = false;
    return h;
  }
  kms::api::vault::VaultHealth HealthLocked() const {
    kms::api::vault::VaultHealth h = UnsealedHealth();
    h.sealed = appliance_ == nullptr;
    h.progress = static_cast<unsigned>(gate_.progress());
    return h;
  }

  const bool accept_store_rollback_;
  const kms::app::ApplianceConfig& config_;
  kms::firmware::store::MetadataStore& store_;
  const kms::firmware::SealDescriptor descriptor_;
  StopEvents& events_;
  kms::metrics::MetricsRegistry metrics_;
  RouterSwitch routes_;
  kms::api::http::Router sealed_routes_;
  std::unique_ptr<kms::api::vault::VaultDoor> sealed_vault_;
  std::string endpoint_;
  // Guards the gate and the appliance: unseal calls are serialised, as Vault's are.
  mutable std::mutex mu_;
  kms::app::UnsealGate gate_;
  std::unique_ptr<kms::app::Appliance> appliance_;
};

int RunProduction(const kms::app::ApplianceConfig& config, char** argv,
                  bool accept_store_rollback) {
  StopEvents events;
  std::error_code exists_error;  // a path the system refuses is as absent as a missing one
  if (!fs::exists(config.store_path, exists_error)) {
    Log(config.source + ": store.path: '" + config.store_path +
        "' does not exist: this appliance was never provisioned (kms-provision init)");
    return 1;
  }
  kms::firmware::store::SqliteStoreOptions store_options;
  store_options.path = config.store_path;
  auto store = kms::firmware::store::OpenSqliteStore(store_options);
  if (!store.has_value()) {
    Log("store: " + store.error().ToString());
    return 1;
  }
  auto descriptor = kms::firmware::ReadSealDescriptor(**store);
  if (!descriptor.has_value()) {
    Log("store: " + descriptor.error().ToString());
    return 1;
  }
  if (!descriptor->has_value()) {
    Log("store '" + config.store_path +
        "' has no seal descriptor: it was not made by kms-provision init");
    return 1;
  }
  int outcome = 0;
  {
    ProductionBoot boot(config, **store, **descriptor, events, accept_store_rollback);
    outcome = boot.Run();
  }
  if (outcome != 3) {
    if (outcome == 0) Logs().Info("stopped");
    return outcome;
  }
  // Sealed on request: start again from nothing, sealed. The store closes first.
  store->reset();
  Logs().Info("sealed: restarting");
  // The same command line, except that an accepted rollback is not accepted again.
  std::vector<char*> again;
  for (char** a = argv; *a != nullptr; ++a) {
    if (std::string_view(*a) != "--accept-store-rollback") again.push_back(*a);
  }
  again.push_back(nullptr);
  execv("/proc/self/exe", again.data());
  Log(std::string("cannot restart sealed: execv: ") + std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Flags override the configuration file; each is applied only when given, so the file's value
  // (or the default, which is dev mode's) stands otherwise.
  std::string config_path;
  bool dev = false;
  std::string state_dir, listen, region, account_id, tls_cert, tls_key, tls_client_ca, log_level;
  std::size_t workers = 0, hsm_sessions = 0;
  std::vector<std::string> vault_mounts;
  bool log_requests = false;
  bool accept_store_rollback = false;
  CLI::App app{"kmsd: the KMS appliance daemon"};
  app.add_option("--config", config_path, "TOML configuration file (docs/configuration.md)");
  app.add_flag("--dev", dev,
               "dev mode: own SoftHSM2 token and store under --state-dir, loopback only");
  auto* state_dir_flag = app.add_option("--state-dir", state_dir, "state folder (dev.state_dir)")
                             ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  auto* listen_flag =
      app.add_option("--listen", listen, "HOST:PORT to listen on, port 0 picks one (server.listen)")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // overrides tools/dev's default
  auto* region_flag = app.add_option("--region", region, "region in ARNs and SigV4 scopes");
  auto* account_flag =
      app.add_option("--account-id", account_id, "account id in ARNs (account.id)");
  auto* cert_flag = app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve HTTPS");
  auto* key_flag = app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  auto* ca_flag = app.add_option("--tls-client-ca", tls_client_ca,
                                 "PEM CA bundle: require client certificates");
  auto* workers_flag =
      app.add_option("--workers", workers, "request worker threads (server.workers)");
  auto* mounts_flag = app.add_option("--vault-mount", vault_mounts,
                                     "Vault transit mount path(s) served under /v1/ (repeatable)");
  auto* sessions_flag = app.add_option("--hsm-sessions", hsm_sessions, "HSM operation sessions");
  auto* level_flag =
      app.add_option("--log-level", log_level, "debug, info, warn or error (JSON lines on stderr)");
  auto* requests_flag = app.add_flag(
      "--log-requests", log_requests,
      "log every request (request id, door, operation, outcome, status, duration, peer); 5xx "
      "answers are logged always");
  app.add_flag("--accept-store-rollback", accept_store_rollback,
               "take a store older than the HSM's watermark as it is (after restoring an old copy "
               "on purpose); logged as a warning");
  CLI11_PARSE(app, argc, argv);

  kms::app::ApplianceConfig config;
  if (!config_path.empty()) {
    auto loaded = kms::app::LoadConfigFile(config_path);
    if (!loaded.has_value()) {
      Log(loaded.error().message());
      return 2;
    }
    config = std::move(*loaded);
  } else if (!dev) {
    Log("kmsd needs --config FILE (docs/configuration.md) or --dev");
    return 2;
  } else {
    config.source = "command line";
  }
  if (dev && config.mode != kms::app::Mode::kDev) {
    Log("--dev contradicts mode = \"production\" in " + config.source);
    return 2;
  }
  if (state_dir_flag->count() > 0) config.state_dir = state_dir;
  if (listen_flag->count() > 0) config.listen = listen;
  if (region_flag->count() > 0) config.region = region;
  if (account_flag->count() > 0) config.account_id = account_id;
  if (cert_flag->count() > 0 || key_flag->count() > 0 || ca_flag->count() > 0) {
    kms::app::TlsConfig tls = config.tls.value_or(kms::app::TlsConfig{});
    if (cert_flag->count() > 0) tls.cert = tls_cert;
    if (key_flag->count() > 0) tls.key = tls_key;
    if (ca_flag->count() > 0) tls.client_ca = tls_client_ca;
    config.tls = tls;
  }
  if (workers_flag->count() > 0) config.workers = workers;
  if (mounts_flag->count() > 0) config.vault_mounts = vault_mounts;
  if (sessions_flag->count() > 0) config.hsm_sessions = hsm_sessions;
  if (requests_flag->count() > 0) config.log_requests = log_requests;
  if (level_flag->count() > 0 && !kms::log::ParseLevel(log_level, config.log_level)) {
    Log("--log-level must be debug, info, warn or error, got '" + log_level + "'");
    return 2;
  }
  if (Status valid = kms::app::ValidateConfig(config); !valid.ok()) {
    Log(valid.message());
    return 2;
  }
  g_log_level = config.log_level;  // before the first line at that level, and before any thread

  // No core dumps: a dump of this process would hold PINs and unwrapped key material.
  struct rlimit no_core {
    0, 0
  };
  setrlimit(RLIMIT_CORE, &no_core);
  if (config.mode == kms::app::Mode::kProduction) {
    return RunProduction(config, argv, accept_store_rollback);
  }
  return RunDev(config, accept_store_rollback);
}
