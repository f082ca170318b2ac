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
// every key. The production boot (configuration file, sealed start, unseal by custodian shares) is not
// built yet: kmsd without --dev says so and exits.
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
#include "base/metrics.h"
#include "base/status.h"
#include "firmware/access_keys.h"
#include "firmware/clock.h"
#include "firmware/key_scheduler.h"
#include "firmware/key_service.h"
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

struct Options {
  bool dev = false;
  std::string state_dir = ".state";
  std::string listen = "127.0.0.1:0";
  std::string region = "us-east-1";
  std::string account_id = "111122223333";
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::size_t workers = 4;
  std::size_t hsm_sessions = 2;
  std::vector<std::string> vault_mounts{"transit"};
};

// The Vault token dev mode hands its operator (dev.env's VAULT_TOKEN), like `vault server -dev`'s
// root token.
constexpr std::string_view kDevTokenName = "dev-operator";

void Log(const std::string& line) { std::fprintf(stderr, "kmsd: %s\n", line.c_str()); }

// "host:port" with host an IPv4 literal, "localhost" or a bracketed IPv6 literal.
StatusOr<std::pair<std::string, std::uint16_t>> ParseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return kms::InvalidArgumentError("--listen must be HOST:PORT, got '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  errno = 0;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || errno != 0 || port > 65535) {
    return kms::InvalidArgumentError("--listen port must be 0-65535, got '" + port_text + "'");
  }
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

bool IsLoopback(const std::string& host) {
  return host == "::1" || host.rfind("127.", 0) == 0;
}

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

int RunDev(const Options& options) {
  auto listen = ParseListen(options.listen);
  if (!listen.has_value()) {
    Log(listen.error().message());
    return 2;
  }
  if (!IsLoopback(listen->first)) {
    Log("dev mode listens on loopback only (127.0.0.0/8 or ::1), not '" + listen->first + "'");
    return 2;
  }
  if ((options.tls_cert.empty()) != (options.tls_key.empty())) {
    Log("--tls-cert and --tls-key go together");
    return 2;
  }

  std::error_code ec;
  fs::create_directories(options.state_dir, ec);
  if (ec) {
    Log("cannot create state folder " + options.state_dir + ": " + ec.message());
    return 1;
  }
  fs::permissions(options.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const fs::path state = fs::absolute(options.state_dir);

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
  hsm_config.session_pool_size = options.hsm_sessions;
  auto hsm = kms::hal::OpenPkcs11Hsm(std::move(hsm_config));
  if (!hsm.has_value()) {
    Log("HSM: " + hsm.error().ToString());
    return 1;
  }
  // Everything above the HAL reaches the device through the metering decorator (GET /metrics).
  kms::metrics::MetricsRegistry metrics;
  kms::hal::MeteredHsm metered_hsm(**hsm, metrics);
  metrics.AddGauge("kms_hsm_sessions", "Sessions in the HSM's operation pool.",
                   [n = static_cast<double>(options.hsm_sessions)] { return n; });

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
  service_config.region = options.region;
  service_config.account_id = options.account_id;
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
  kms::api::aws::RegistryAccessKeyStore access_keys(registry, options.account_id);

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
  for (const std::string& mount : options.vault_mounts) {
    keyrings.push_back(std::make_unique<kms::firmware::transit::TransitKeyring>(**service, **store,
                                                                                clock, mount));
    keyring_ptrs.push_back(keyrings.back().get());
    kms::firmware::transit::TransitKeyring& keyring = *keyrings.back();
    // Vault's auto_rotate_period, checked on the scheduler's tick (Vault checks hourly).
    // A key that fails to rotate is retried on the next tick; a store failure is worth a line.
    scheduler.AlsoRun([&keyring, mount](std::int64_t now_ms) {
      if (auto rotated = keyring.RotateDue(now_ms); !rotated.has_value()) {
        Log("transit " + mount + ": auto-rotation pass: " + rotated.error().ToString());
      }
    });
  }

  // 5. The AWS door, and the Vault door under /v1/ on the same listener.
  kms::api::aws::AwsServerConfig server_config;
  server_config.server.bind_address = listen->first;
  server_config.server.port = listen->second;
  server_config.server.worker_threads = options.workers;
  // AWS requests are small (a 4 KiB plaintext is ~5.5 KiB of JSON), but Vault clients batch: 1 MiB
  // carries a batch_input of about 700 one-KiB plaintexts. Vault's own default is 32 MiB; bounding it
  // far lower keeps max_in_flight requests' bodies within a few hundred MiB.
  server_config.server.body_limit = 1024 * 1024;
  if (!options.tls_cert.empty()) {
    server_config.server.tls =
        kms::api::tls::TlsOptions{options.tls_cert, options.tls_key, options.tls_client_ca};
  }
  server_config.door.region = options.region;
  server_config.door.account_id = options.account_id;
  server_config.door.metrics = &metrics;
  // The appliance admin API (KmsAppliance.*, administrator keys only) on the same endpoint.
  server_config.appliance.mode = "dev";
  server_config.appliance.region = options.region;
  server_config.appliance.account_id = options.account_id;
  // With the token registry the admin API also serves Create/List/RevokeVaultToken.
  auto server = kms::api::aws::AwsServer::Create(server_config, access_keys, **service, &registry,
                                                 &vault_tokens);
  if (!server.has_value()) {
    Log("server: " + server.error().ToString());
    return 1;
  }
  kms::api::vault::VaultDoorConfig vault_config;
  vault_config.mounts = options.vault_mounts;
  vault_config.clock = &clock;
  vault_config.metrics = &metrics;
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

  const std::string scheme = options.tls_cert.empty() ? "http" : "https";
  std::string host = listen->first.find(':') != std::string::npos ? "[" + listen->first + "]"
                                                                   : listen->first;
  const std::string endpoint = scheme + "://" + host + ":" + std::to_string((*server)->port());
  std::string env;
  env += "AWS_ACCESS_KEY_ID=" + *admin_id + "\n";
  env += "AWS_SECRET_ACCESS_KEY=" + std::string(kms::AsStringView(admin_secret->ExposeSecret())) + "\n";
  env += "AWS_DEFAULT_REGION=" + options.region + "\n";
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
      state.string().c_str(), endpoint.c_str(), options.region.c_str(), admin_id->c_str(),
      (state / "dev.env").string().c_str(), endpoint.c_str(), options.vault_mounts.front().c_str(),
      (state / "dev.env").string().c_str(), (state / "dev.env").string().c_str(),
      options.vault_mounts.front().c_str());
  std::fflush(stdout);
  Log("ready on " + endpoint);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  Log(std::string("stopping on ") + (signal_number == SIGTERM ? "SIGTERM" : "SIGINT") +
      ": draining in-flight requests");
  scheduler.Stop();
  (*server)->Stop();
  Log("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"kmsd: the KMS appliance daemon"};
  app.add_flag("--dev", options.dev,
               "dev mode: own SoftHSM2 token and store under --state-dir, loopback only");
  app.add_option("--state-dir", options.state_dir, "state folder (dev mode)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--listen", options.listen, "HOST:PORT to listen on (port 0 picks a free port)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // tools/dev's default can be overridden
  app.add_option("--region", options.region, "region in ARNs and SigV4 scopes")->capture_default_str();
  app.add_option("--account-id", options.account_id, "account id in ARNs")->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate chain: serve HTTPS");
  app.add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", options.tls_client_ca, "PEM CA bundle: require client certificates");
  app.add_option("--workers", options.workers, "request worker threads")->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--vault-mount", options.vault_mounts,
                 "Vault transit mount path(s) served under /v1/ (repeatable)")
      ->capture_default_str();
  app.add_option("--hsm-sessions", options.hsm_sessions, "HSM operation sessions")
      ->capture_default_str()->check(CLI::Range(1, 256));
  CLI11_PARSE(app, argc, argv);

  if (!options.dev) {
    Log("the production boot (configuration file, sealed start, unseal by custodian shares) is not "
        "implemented yet; run with --dev");
    return 2;
  }
  // No core dumps: a dump of this process would hold PINs and unwrapped key material.
  struct rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  return RunDev(options);
}
