#include "firmware/app/appliance.h"

#include <utility>

#include "api/health/health_page.h"
#include "firmware/self_test.h"
#include "firmware/store_rollback.h"

namespace kms::app {
namespace {

Status Step(std::string_view step, const Status& status) {
  return Status(status.code(), std::string(step) + ": " + status.message(), status.reason(),
                status.device_code());
}

// The doors' audit seam over the firmware's hash-chained log: every request becomes one record.
class AuditLogAuditor final : public api::http::RequestAuditor {
 public:
  AuditLogAuditor(firmware::audit::AuditLog& log, const log::Logger& logs,
                  metrics::CounterFamily* failures)
      : log_(log), logs_(logs), failures_(failures) {}

  bool Ready() const override { return log_.healthy(); }

  Status Record(const api::http::AuditedRequest& r) override {
    firmware::audit::AuditEvent e;
    e.request_id = std::string(r.request_id);
    e.door = std::string(r.door);
    e.operation = std::string(r.operation);
    e.principal = std::string(r.principal);
    e.credential_id = std::string(r.credential_id);
    e.source_address = std::string(r.source_address);
    e.key_arn = std::string(r.key_arn);
    e.outcome = std::string(r.outcome);
    e.error_message = std::string(r.error_message);
    e.http_status = static_cast<int>(r.status);
    if (r.encryption_context) e.encryption_context = *r.encryption_context;
    e.grant_id = std::string(r.grant_id);
    e.decision = std::string(r.decision);
    Status s = log_.Append(e);
    if (!s.ok()) {
      if (failures_ != nullptr) failures_->With({}).Increment();
      logs_.Error("audit record not written; request answered with a server error",
                  {{"request_id", std::string(r.request_id)}, {"status", s.ToString()}});
    }
    return s;
  }

 private:
  firmware::audit::AuditLog& log_;
  const log::Logger& logs_;
  metrics::CounterFamily* failures_;
};

}  // namespace

StatusOr<api::http::ServerConfig> ServerConfigFrom(const ApplianceConfig& config) {
  KMS_ASSIGN_OR_RETURN(auto listen, ParseListenAddress(config.listen, "server.listen"));
  api::http::ServerConfig server;
  server.bind_address = listen.first;
  server.port = listen.second;
  server.worker_threads = config.workers;
  // server.max_body_bytes, 1 MiB by default. AWS requests are small (a 4 KiB plaintext is ~5.5 KiB
  // of JSON), but Vault clients batch: 1 MiB carries a batch_input of about 700 one-KiB
  // plaintexts. Vault's own default is 32 MiB; bounding it far lower keeps max_in_flight requests'
  // bodies within a few hundred MiB.
  server.body_limit = config.max_body_bytes;
  server.max_connections_per_peer = config.max_connections_per_peer;
  if (config.tls.has_value()) {
    server.tls = api::tls::TlsOptions{config.tls->cert, config.tls->key, config.tls->client_ca};
  }
  return server;
}

api::http::HttpResponse DoorFaultResponse(api::http::ServerFault fault, std::string_view detail,
                                          std::string_view target) {
  // The same test as the routers' Prefix("/v1/"), so a fault speaks the format of the door the
  // request would have reached.
  if (target.starts_with("/v1/")) return api::vault::VaultDoor::FaultResponse(fault, detail);
  return api::aws::AwsDoor::FaultResponse(fault, detail);
}

api::http::HttpResponse MetricsPage(const metrics::MetricsRegistry& metrics,
                                    const api::http::HttpRequest& request) {
  api::http::HttpResponse response;
  if (request.method != "GET" && request.method != "HEAD") {
    response.status = 405;
    response.SetHeader("Allow", "GET, HEAD");
    response.SetHeader("Content-Type", "text/plain; charset=utf-8");
    response.body = "GET /metrics\n";
    return response;
  }
  response.status = 200;
  response.SetHeader("Content-Type", std::string(metrics::kContentType));
  response.SetHeader("Cache-Control", "no-store");
  if (request.method == "GET") response.body = metrics.Render();
  return response;
}

StatusOr<std::unique_ptr<Appliance>> Appliance::Open(ApplianceOptions options) {
  const ApplianceConfig& config = *options.config;
  std::unique_ptr<Appliance> a(new Appliance(std::move(options)));
  ApplianceOptions& o = a->options_;
  metrics::MetricsRegistry& metrics = *o.metrics;
  const log::Logger& logs = *o.logs;

  // 1. The token, and the self-tests on it before anything else may use it. They run on the raw
  // HAL so they count nothing in /metrics.
  auto hsm = o.open_hsm ? o.open_hsm(std::move(o.hsm)) : hal::OpenPkcs11Hsm(std::move(o.hsm));
  if (!hsm.has_value()) return Step("HSM", hsm.error());
  a->hsm_ = std::move(*hsm);
  auto self_tests = firmware::RunPowerOnSelfTests(*a->hsm_);
  if (!self_tests.has_value()) return Step("self-tests", self_tests.error());
  logs.Info("self-tests passed",
            {{"count", self_tests->passed.size()},
             {"skipped", self_tests->skipped.size()},
             {"duration_ms", static_cast<double>(self_tests->duration.count()) / 1000.0}});
  // The store must not be older than what this token has seen: checked before the key service
  // reads (or reconciles) anything in it.
  auto epoch = firmware::CheckStoreEpoch(*a->hsm_, *o.store, o.accept_store_rollback);
  if (!epoch.has_value()) return Step("store", epoch.error());
  if (epoch->rollback_accepted) {
    logs.Warn("store rollback accepted by the operator (--accept-store-rollback)",
              {{"store_epoch", static_cast<std::int64_t>(epoch->store_epoch)},
               {"watermark", static_cast<std::int64_t>(*epoch->watermark)}});
  } else {
    logs.Info("store epoch checked against the token",
              {{"store_epoch", static_cast<std::int64_t>(epoch->store_epoch)}});
  }
  // Everything above the HAL reaches the device through the metering decorator.
  a->metered_ = std::make_unique<hal::MeteredHsm>(*a->hsm_, metrics);
  metrics.AddGauge("kms_hsm_sessions", "Sessions in the HSM's operation pool.",
                   [n = static_cast<double>(config.hsm_sessions)] { return n; });

  // 2. The key service over the store.
  firmware::KeyServiceConfig service_config;
  service_config.region = config.region;
  service_config.account_id = config.account_id;
  // A destroyed key takes its key policy and grants with it.
  service_config.on_destroy = &firmware::authz::AccessControl::DeleteKeyRecords;
  auto service = firmware::KeyService::Open(*a->metered_, *o.store, a->clock_, service_config);
  if (!service.has_value()) return Step("key service", service.error());
  a->service_ = std::move(*service);
  a->scheduler_ = std::make_unique<firmware::KeyLifecycleScheduler>(*a->service_, a->clock_);
  const firmware::KeyHandleCache& key_cache = a->service_->cache();
  metrics.AddCounterCallback("kms_key_cache_hits_total",
                             "Cryptographic calls that found their key already loaded in the HSM.",
                             [&key_cache] { return static_cast<double>(key_cache.hits()); });
  metrics.AddCounterCallback("kms_key_cache_misses_total",
                             "Cryptographic calls that had to unwrap their key into the HSM.",
                             [&key_cache] { return static_cast<double>(key_cache.misses()); });
  metrics.AddGauge("kms_key_cache_entries", "Keys loaded in the HSM's key cache.",
                   [&key_cache] { return static_cast<double>(key_cache.size()); });

  // The watermark follows the store on every tick.
  a->scheduler_->AlsoRun([hsm = a->metered_.get(), store = o.store, &logs](std::int64_t) {
    if (auto raised = firmware::RaiseWatermark(*hsm, *store); !raised.has_value()) {
      logs.Error("store watermark not raised", {{"status", raised.error().ToString()}});
    }
  });

  // 3a. The audit log: signed with a key of the HSM, written before any answer leaves.
  auto signer = firmware::audit::HsmAuditSigner::Open(*a->metered_, *o.store);
  if (!signer.has_value()) return Step("audit signing key", signer.error());
  a->audit_signer_ = std::move(*signer);
  firmware::audit::AuditLogOptions audit_options;
  audit_options.folder = o.audit_dir;
  audit_options.checkpoint_every = config.audit_checkpoint_every;
  auto audit_log = firmware::audit::AuditLog::Open(audit_options, *a->audit_signer_);
  if (!audit_log.has_value()) return Step("audit log " + o.audit_dir, audit_log.error());
  a->audit_log_ = std::move(*audit_log);
  a->auditor_ = std::make_unique<AuditLogAuditor>(
      *a->audit_log_, logs,
      &metrics.AddCounter("kms_audit_write_failures_total",
                         "Requests answered with a server error because their audit record could "
                         "not be made durable.",
                         {}));
  a->scheduler_->AlsoRun([log = a->audit_log_.get(), &logs](std::int64_t) {
    if (Status s = log->Tick(); !s.ok()) {
      logs.Error("audit checkpoint not written", {{"status", s.ToString()}});
    }
  });

  // 3b. Who may do what: users, key policies and grants, decided for every operation.
  a->principals_ =
      std::make_unique<firmware::authz::PrincipalRegistry>(*o.store, a->clock_, config.account_id);
  firmware::authz::AccessControlConfig access_config;
  access_config.account_id = config.account_id;
  access_config.region = config.region;
  a->access_control_ = std::make_unique<firmware::authz::AccessControl>(
      *a->metered_, *o.store, *a->principals_, a->clock_, access_config);
  a->authorizer_ = std::make_unique<api::aws::KeyAuthorizer>(*a->service_, *a->access_control_);

  // 3c. Access keys and Vault tokens, and one transit keyring per mount over the same key service
  // (one key store, two doors).
  a->access_keys_ =
      std::make_unique<firmware::AccessKeyRegistry>(*a->metered_, *o.store, a->clock_);
  a->access_key_store_ =
      std::make_unique<api::aws::RegistryAccessKeyStore>(*a->access_keys_, config.account_id);
  firmware::VaultTokenOptions token_options;
  token_options.max_ttl_ms =
      static_cast<std::int64_t>(config.vault_token_max_ttl_hours) * 3'600'000;
  a->vault_tokens_ = std::make_unique<firmware::VaultTokenRegistry>(*a->metered_, *o.store,
                                                                    a->clock_, token_options);
  // Tokens stored before key patterns named their mount reached every mount: bind each such
  // pattern to the mounts configured now, before the door serves (firmware/vault_tokens.h).
  auto rebound = a->vault_tokens_->BindMountlessPatterns(config.vault_mounts);
  if (!rebound.has_value()) return Step("vault token patterns", rebound.error());
  if (*rebound > 0) {
    logs.Info("vault tokens bound to the configured mounts", {{"tokens", *rebound}});
  }
  std::vector<firmware::transit::TransitKeyring*> keyrings;
  for (const std::string& mount : config.vault_mounts) {
    a->keyrings_.push_back(std::make_unique<firmware::transit::TransitKeyring>(
        *a->service_, *o.store, a->clock_, mount));
    keyrings.push_back(a->keyrings_.back().get());
    firmware::transit::TransitKeyring& keyring = *a->keyrings_.back();
    // Vault's auto_rotate_period, checked on the scheduler's tick (Vault checks hourly). A key
    // that fails to rotate is retried on the next tick; a store failure is worth a line.
    a->scheduler_->AlsoRun([&keyring, &logs, mount](std::int64_t now_ms) {
      if (auto rotated = keyring.RotateDue(now_ms); !rotated.has_value()) {
        logs.Error("transit auto-rotation pass failed",
                   {{"mount", mount}, {"status", rotated.error().ToString()}});
      }
    });
  }

  // 4. The doors.
  const api::http::RequestObservers observers{&metrics, &logs, config.log_requests,
                                              a->auditor_.get()};
  api::aws::AwsServerConfig aws;
  aws.door.region = config.region;
  aws.door.account_id = config.account_id;
  aws.door.observers = observers;
  aws.appliance.mode = o.mode;
  aws.appliance.region = config.region;
  aws.appliance.account_id = config.account_id;
  aws.appliance.version = std::string(kApplianceVersion);
  // With the registries the door also serves the admin API (KmsAppliance.*, administrators only).
  a->aws_door_ = api::aws::MakeAwsDoor(aws, *a->access_key_store_, *a->authorizer_,
                                       a->access_keys_.get(), a->vault_tokens_.get(),
                                       a->principals_.get());
  api::vault::VaultDoorConfig vault;
  vault.mounts = config.vault_mounts;
  vault.clock = &a->clock_;
  vault.observers = observers;
  vault.health = [health = o.vault_health] { return health; };
  vault.unseal = o.unseal;
  vault.seal = o.seal;
  vault.access = a->access_control_.get();
  a->vault_door_ = std::make_unique<api::vault::VaultDoor>(vault, *a->vault_tokens_, keyrings);

  // 5. Routes.
  api::aws::RouteAwsDoor(a->router_, *a->aws_door_);
  const api::vault::VaultDoor* vault_door = a->vault_door_.get();
  auto vault_handler = [vault_door](const api::http::HttpRequest& request) {
    return vault_door->Handle(request);
  };
  a->router_.Prefix("/v1/", vault_handler);
  using api::http::Lane;
  a->router_.Exact("/v1/sys/health", vault_handler, Lane::kProbe);
  hal::Hsm* hsm_ptr = a->metered_.get();
  api::health::ApplianceState state{true, false, o.mode, std::string(kApplianceVersion), {}};
  state.audit_healthy = [log = a->audit_log_.get()] { return log->healthy(); };
  a->router_.Exact(
      "/health",
      [hsm_ptr, state](const api::http::HttpRequest& request) {
        return api::health::HealthPage(hsm_ptr, state, request);
      },
      Lane::kProbe);
  a->router_.Exact(
      "/readyz",
      [hsm_ptr, state](const api::http::HttpRequest& request) {
        return api::health::ReadinessPage(hsm_ptr, state, request);
      },
      Lane::kProbe);
  a->router_.Exact("/livez", api::health::LivenessPage, Lane::kInline);
  // Counts, durations and names only (base/metrics.h), so unauthenticated like Vault's
  // unauthenticated_metrics_access and every Prometheus exporter.
  const metrics::MetricsRegistry* registry = o.metrics;
  a->router_.Exact("/metrics", [registry](const api::http::HttpRequest& request) {
    return MetricsPage(*registry, request);
  });
  return a;
}

void Appliance::StartScheduler() { scheduler_->Start(std::chrono::seconds(60)); }

Appliance::~Appliance() {
  if (scheduler_) scheduler_->Stop();
  // A clean stop leaves the watermark at the store's last epoch.
  if (metered_ && options_.store != nullptr) {
    if (auto raised = firmware::RaiseWatermark(*metered_, *options_.store); !raised.has_value()) {
      options_.logs->Error("store watermark not raised at stop",
                           {{"status", raised.error().ToString()}});
    }
  }
}

}  // namespace kms::app
