// kmsd: the appliance daemon, and the composition root of the tree. This is the one place that knows
// every layer: it opens the HSM (hal/ over pkcs11/), the metadata store, the key service, and mounts the
// AWS door at "/" and the Vault door under "/v1/" (api/) on one HTTP(S) server. Nothing below it knows
// the others exist.
//
// Today kmsd runs in dev mode only (`--dev`): a complete appliance from an empty state folder, the way
// `vault server -dev` is: its own SoftHSM2 token and SQLite store under the folder, unsealed at start
// (the dev token's PIN is kept in the folder), listening on loopback, and one administrator access key
// whose credentials it writes to `<state>/dev.env` and prints, with a Vault token for the same
// operator (VAULT_ADDR, VAULT_TOKEN), made anew on every start. A second start on the same folder keeps
// every key. Settings come from a TOML file (`--config`, firmware/app/appliance_config.h) with flags
// over it; `--dev` alone is dev mode with the defaults. The production boot (sealed start, unseal by
// custodian shares) is not built yet: a valid `mode = "production"` file is checked, then kmsd says
// so and exits.
//
// Signals: SIGTERM and SIGINT stop the server gracefully (stop accepting, drain in-flight requests) and
// the daemon exits 0.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/aws/aws_server.h"
#include "api/aws/registry_access_key_store.h"
#include "api/health/health_page.h"
#include "api/http/message.h"
#include "api/vault/vault_door.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/status.h"
#include "firmware/access_keys.h"
#include "firmware/app/appliance_config.h"
#include "firmware/clock.h"
#include "firmware/key_scheduler.h"
#include "firmware/key_service.h"
#include "firmware/self_test.h"
#include "firmware/store/sqlite_store.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "hal/metered_hsm.h"
#include "hal/pkcs11_hsm.h"
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

// Writes `content` to `path` atomically with mode 0600: it holds a credential.
Status WritePrivateFile(const fs::path& path, const std::string& content) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return kms::UnavailableError("cannot write " + tmp.string());
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    out << content;
    out.flush();
    if (!out) return kms::UnavailableError("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return kms::UnavailableError("cannot rename " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

kms::api::http::HttpResponse MetricsPage(const kms::metrics::MetricsRegistry& metrics,
                                         const kms::api::http::HttpRequest& request) {
  kms::api::http::HttpResponse response;
  if (request.method != "GET" && request.method != "HEAD") {
    response.status = 405;
    response.SetHeader("Allow", "GET, HEAD");
    response.SetHeader("Content-Type", "text/plain; charset=utf-8");
    response.body = "GET /metrics\n";
    return response;
  }
  response.status = 200;
  response.SetHeader("Content-Type", std::string(kms::metrics::kContentType));
  response.SetHeader("Cache-Control", "no-store");
  if (request.method == "GET") response.body = metrics.Render();
  return response;
}

// A fresh administrator token for the dev operator. Tokens are stored hashed, so the previous run's
// token cannot be shown again: it is revoked and a new one made on every start (dev.env is rewritten
// with it), which also keeps dev tokens from piling up.
StatusOr<kms::SecretBytes> FreshDevToken(kms::firmware::VaultTokenRegistry& tokens) {
  std::string after;
  while (true) {
    KMS_ASSIGN_OR_RETURN(auto page, tokens.List(after, 1000));
    for (const auto& token : page.items) {
      if (token.display_name == kDevTokenName) KMS_RETURN_IF_ERROR(tokens.RevokeAccessor(token.accessor));
    }
    if (!page.truncated) break;
    after = page.next_marker;
  }
  kms::firmware::VaultTokenSpec spec;
  spec.display_name = std::string(kDevTokenName);
  spec.key_patterns = {"*"};
  spec.operations = {"*"};
  spec.administrator = true;
  spec.ttl_ms = 0;  // never expires, as Vault's dev root token
  spec.policies = {"root"};
  KMS_ASSIGN_OR_RETURN(auto made, tokens.Create(spec));
  return std::move(made.token);
}

int RunDev(const kms::app::ApplianceConfig& config) {
  // ValidateConfig has checked the address (loopback only in dev mode).
  auto listen = kms::app::ParseListenAddress(config.listen, "server.listen");
  if (!listen.has_value()) {
    Log(listen.error().message());
    return 2;
  }

  std::error_code ec;
  fs::create_directories(config.state_dir, ec);
  if (ec) {
    Log("cannot create state folder " + config.state_dir + ": " + ec.message());
    return 1;
  }
  fs::permissions(config.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const fs::path state = fs::absolute(config.state_dir);

  // 1. The HSM: the folder's own SoftHSM2 token, made on first start.
  auto token = kms::provisioning::OpenOrCreateDevToken((state / "hsm").string());
  if (!token.has_value()) {
    Log("dev token: " + token.error().ToString());
    return 1;
  }
  kms::hal::Pkcs11HsmConfig hsm_config;
  hsm_config.module_path = token->module_path;
  hsm_config.token_label = token->token_label;
  hsm_config.token_serial = token->token_serial;
  hsm_config.user_pin = token->user_pin.Clone();
  hsm_config.domain_key_label = token->domain_key_label;
  hsm_config.session_pool_size = config.hsm_sessions;
  auto hsm = kms::hal::OpenPkcs11Hsm(std::move(hsm_config));
  if (!hsm.has_value()) {
    Log("HSM: " + hsm.error().ToString());
    return 1;
  }
  // Power-on self-tests (firmware/self_test.h): a device that fails one is never served.
  auto self_tests = kms::firmware::RunPowerOnSelfTests(**hsm);
  if (!self_tests.has_value()) {
    Logs().Error("self-tests failed", {{"status", self_tests.error().ToString()}});
    return 1;
  }
  Logs().Info("self-tests passed",
              {{"count", self_tests->passed.size()},
               {"skipped", self_tests->skipped.size()},
               {"duration_ms", static_cast<double>(self_tests->duration.count()) / 1000.0}});
  // Everything above the HAL reaches the device through the metering decorator (GET /metrics).
  kms::metrics::MetricsRegistry metrics;
  kms::hal::MeteredHsm metered_hsm(**hsm, metrics);
  kms::api::http::RequestObservers observers{&metrics, &Logs(), config.log_requests};
  metrics.AddGauge("kms_hsm_sessions", "Sessions in the HSM's operation pool.",
                   [n = static_cast<double>(config.hsm_sessions)] { return n; });

  // 2. The metadata store and the key service over them.
  kms::firmware::store::SqliteStoreOptions store_options;
  store_options.path = (state / "kms.db").string();
  auto store = kms::firmware::store::OpenSqliteStore(store_options);
  if (!store.has_value()) {
    Log("store: " + store.error().ToString());
    return 1;
  }
  kms::firmware::SystemClock clock;
  kms::firmware::KeyServiceConfig service_config;
  service_config.region = config.region;
  service_config.account_id = config.account_id;
  auto service = kms::firmware::KeyService::Open(metered_hsm, **store, clock, service_config);
  if (!service.has_value()) {
    Log("key service: " + service.error().ToString());
    return 1;
  }
  kms::firmware::KeyLifecycleScheduler scheduler(**service, clock);
  const kms::firmware::KeyHandleCache& key_cache = (**service).cache();
  metrics.AddCounterCallback("kms_key_cache_hits_total",
                             "Cryptographic calls that found their key already loaded in the HSM.",
                             [&key_cache] { return static_cast<double>(key_cache.hits()); });
  metrics.AddCounterCallback("kms_key_cache_misses_total",
                             "Cryptographic calls that had to unwrap their key into the HSM.",
                             [&key_cache] { return static_cast<double>(key_cache.misses()); });
  metrics.AddGauge("kms_key_cache_entries", "Keys loaded in the HSM's key cache.",
                   [&key_cache] { return static_cast<double>(key_cache.size()); });

  // 3. Access keys: one administrator key for the dev operator, made on first start.
  kms::firmware::AccessKeyRegistry registry(metered_hsm, **store, clock);
  auto admin_id = registry.EnsureBootstrapAdmin("dev-admin");
  if (!admin_id.has_value()) {
    Log("access keys: " + admin_id.error().ToString());
    return 1;
  }
  auto admin_secret = registry.RevealSecret(*admin_id);  // dev mode only: dev.env carries it
  if (!admin_secret.has_value()) {
    Log("access keys: " + admin_secret.error().ToString());
    return 1;
  }
  kms::api::aws::RegistryAccessKeyStore access_keys(registry, config.account_id);

  // 4. Vault tokens and one transit keyring per mount, over the same key service (one key store,
  // two doors); a fresh administrator token for the dev operator.
  kms::firmware::VaultTokenRegistry vault_tokens(metered_hsm, **store, clock);
  auto dev_token = FreshDevToken(vault_tokens);
  if (!dev_token.has_value()) {
    Log("vault tokens: " + dev_token.error().ToString());
    return 1;
  }
  std::vector<std::unique_ptr<kms::firmware::transit::TransitKeyring>> keyrings;
  std::vector<kms::firmware::transit::TransitKeyring*> keyring_ptrs;
  for (const std::string& mount : config.vault_mounts) {
    keyrings.push_back(std::make_unique<kms::firmware::transit::TransitKeyring>(**service, **store,
                                                                                clock, mount));
    keyring_ptrs.push_back(keyrings.back().get());
    kms::firmware::transit::TransitKeyring& keyring = *keyrings.back();
    // Vault's auto_rotate_period, checked on the scheduler's tick (Vault checks hourly).
    // A key that fails to rotate is retried on the next tick; a store failure is worth a line.
    scheduler.AlsoRun([&keyring, mount](std::int64_t now_ms) {
      if (auto rotated = keyring.RotateDue(now_ms); !rotated.has_value()) {
        Logs().Error("transit auto-rotation pass failed",
                     {{"mount", mount}, {"status", rotated.error().ToString()}});
      }
    });
  }

  // 5. The AWS door, and the Vault door under /v1/ on the same listener.
  kms::api::aws::AwsServerConfig server_config;
  server_config.server.bind_address = listen->first;
  server_config.server.port = listen->second;
  server_config.server.worker_threads = config.workers;
  // server.max_body_bytes, 1 MiB by default. AWS requests are small (a 4 KiB plaintext is ~5.5 KiB
  // of JSON), but Vault clients batch: 1 MiB carries a batch_input of about 700 one-KiB plaintexts. Vault's own default is 32 MiB; bounding it
  // far lower keeps max_in_flight requests' bodies within a few hundred MiB.
  server_config.server.body_limit = config.max_body_bytes;
  if (config.tls.has_value()) {
    server_config.server.tls =
        kms::api::tls::TlsOptions{config.tls->cert, config.tls->key, config.tls->client_ca};
  }
  server_config.door.region = config.region;
  server_config.door.account_id = config.account_id;
  server_config.door.observers = observers;
  // The appliance admin API (KmsAppliance.*, administrator keys only) on the same endpoint.
  server_config.appliance.mode = "dev";
  server_config.appliance.region = config.region;
  server_config.appliance.account_id = config.account_id;
  // With the token registry the admin API also serves Create/List/RevokeVaultToken.
  auto server = kms::api::aws::AwsServer::Create(server_config, access_keys, **service, &registry,
                                                 &vault_tokens);
  if (!server.has_value()) {
    Log("server: " + server.error().ToString());
    return 1;
  }
  kms::api::vault::VaultDoorConfig vault_config;
  vault_config.mounts = config.vault_mounts;
  vault_config.clock = &clock;
  vault_config.observers = observers;
  // Dev mode is unsealed from the start; the sealed boot (issue 5) will report its state here.
  vault_config.health = [version = server_config.appliance.version] {
    return kms::api::vault::VaultHealth{true, false, false, version};
  };
  auto vault_door = std::make_shared<kms::api::vault::VaultDoor>(vault_config, vault_tokens,
                                                                 keyring_ptrs);
  (*server)->router().Prefix("/v1/", [vault_door](const kms::api::http::HttpRequest& request) {
    return vault_door->Handle(request);
  });
  // Dev mode is initialized and unsealed from the start; the sealed boot (issue 5) will feed its
  // state here and to the Vault door's sys/health.
  kms::hal::Hsm& hsm_ref = metered_hsm;
  const kms::api::health::ApplianceState appliance_state{true, false, "dev",
                                                         server_config.appliance.version};
  (*server)->router().Exact("/health", [&hsm_ref, appliance_state](const auto& request) {
    return kms::api::health::HealthPage(hsm_ref, appliance_state, request);
  });
  (*server)->router().Exact("/readyz", [&hsm_ref, appliance_state](const auto& request) {
    return kms::api::health::ReadinessPage(hsm_ref, appliance_state, request);
  });
  (*server)->router().Exact("/livez", [](const kms::api::http::HttpRequest& request) {
    return kms::api::health::LivenessPage(request);
  });
  kms::api::aws::AwsServer& server_ref = **server;
  metrics.AddGauge("kms_http_connections", "Open client connections.",
                   [&server_ref] { return static_cast<double>(server_ref.connection_count()); });
  // Counts, durations and names only (base/metrics.h), so unauthenticated like Vault's
  // unauthenticated_metrics_access and every Prometheus exporter; loopback-only in dev mode.
  (*server)->router().Exact("/metrics", [&metrics](const kms::api::http::HttpRequest& request) {
    return MetricsPage(metrics, request);
  });

  // Block the stop signals in every thread the server starts; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (Status started = (*server)->Start(); !started.ok()) {
    Log("server: " + started.ToString());
    return 1;
  }
  scheduler.Start(std::chrono::seconds(60));

  const std::string scheme = config.tls.has_value() ? "https" : "http";
  std::string host = listen->first.find(':') != std::string::npos ? "[" + listen->first + "]"
                                                                   : listen->first;
  const std::string endpoint = scheme + "://" + host + ":" + std::to_string((*server)->port());
  std::string env;
  env += "AWS_ACCESS_KEY_ID=" + *admin_id + "\n";
  env += "AWS_SECRET_ACCESS_KEY=" + std::string(kms::AsStringView(admin_secret->ExposeSecret())) + "\n";
  env += "AWS_DEFAULT_REGION=" + config.region + "\n";
  env += "KMS_ENDPOINT=" + endpoint + "\n";
  env += "VAULT_ADDR=" + endpoint + "\n";
  env += "VAULT_TOKEN=" + std::string(kms::AsStringView(dev_token->ExposeSecret())) + "\n";
  if (Status written = WritePrivateFile(state / "dev.env", env); !written.ok()) {
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

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  Logs().Info("stopping: draining in-flight requests",
              {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  scheduler.Stop();
  (*server)->Stop();
  Logs().Info("stopped");
  return 0;
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
  auto* account_flag = app.add_option("--account-id", account_id, "account id in ARNs (account.id)");
  auto* cert_flag = app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve HTTPS");
  auto* key_flag = app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  auto* ca_flag =
      app.add_option("--tls-client-ca", tls_client_ca, "PEM CA bundle: require client certificates");
  auto* workers_flag = app.add_option("--workers", workers, "request worker threads (server.workers)");
  auto* mounts_flag = app.add_option("--vault-mount", vault_mounts,
                                     "Vault transit mount path(s) served under /v1/ (repeatable)");
  auto* sessions_flag = app.add_option("--hsm-sessions", hsm_sessions, "HSM operation sessions");
  auto* level_flag =
      app.add_option("--log-level", log_level, "debug, info, warn or error (JSON lines on stderr)");
  auto* requests_flag = app.add_flag(
      "--log-requests", log_requests,
      "log every request (request id, door, operation, outcome, status, duration, peer); 5xx "
      "answers are logged always");
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

  if (config.mode == kms::app::Mode::kProduction) {
    Log("the production boot (sealed start, unseal by custodian shares) is not implemented yet: " +
        config.source + " is valid, but only mode = \"dev\" runs so far");
    return 2;
  }
  // No core dumps: a dump of this process would hold PINs and unwrapped key material.
  struct rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  return RunDev(config);
}
