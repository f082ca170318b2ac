// Appliance: an unsealed appliance's services and routes, built the same way in dev mode and in
// production once the custodians have unsealed it. kmsd (the composition root) owns the HTTP
// server and points it at `router()`; a sealed production appliance has no Appliance yet and
// serves SealedRouter() instead.
//
// Open, in order: logs in to the token (hal::OpenPkcs11Hsm with the PIN in `hsm`), runs the
// power-on self-tests on it (a failure stops here, named), checks the store against the token's
// rollback watermark (an older store stops here, FailedPrecondition naming both epochs), meters it
// (MeteredHsm), opens the key
// service over the store, and builds the access-key and Vault-token registries, one transit
// keyring per mount and both doors. Every failure is a Status naming the step ("self-tests:
// self-test aes-256-gcm-kat failed: ..."); nothing is served by a failed Open.
//
// Routes of router(): the AWS door at "/" (and for unknown paths), the Vault door under "/v1/",
// /health, /readyz, /livez and /metrics. Their lanes (api/http/server.h, Router::LaneOf): /livez
// runs inline on the network thread (it touches nothing); /health, /readyz and /v1/sys/health are
// probes, outside max_in_flight but on the workers (/health and /readyz do an HSM round trip, and
// sys/health may wait for an unseal in progress); everything else is kWorker.
//
// Lifetime: `store`, `metrics` and `logs` outlive the Appliance; the metrics it registers read it,
// so it is opened at most once per MetricsRegistry (kmsd seals by restarting itself, see
// kmsd_main.cc). The scheduler starts with StartScheduler (its tick also raises the watermark) and
// stops in the destructor, before anything it uses goes; the destructor raises the watermark once
// more, so a clean stop leaves it at the store's last epoch. Thread-safety: router() may be used from any thread once Open returned.
#ifndef KMS_FIRMWARE_APP_APPLIANCE_H_
#define KMS_FIRMWARE_APP_APPLIANCE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/aws/authorization.h"
#include "api/aws/aws_server.h"
#include "api/aws/registry_access_key_store.h"
#include "api/http/router.h"
#include "api/vault/vault_door.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/status.h"
#include "firmware/access_keys.h"
#include "firmware/app/appliance_config.h"
#include "firmware/audit/audit_log.h"
#include "firmware/audit/hsm_audit_signer.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "firmware/clock.h"
#include "firmware/key_scheduler.h"
#include "firmware/key_service.h"
#include "firmware/store/metadata_store.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "hal/metered_hsm.h"
#include "hal/pkcs11_hsm.h"

namespace kms::app {

inline constexpr std::string_view kApplianceVersion = "0.1.0";

struct ApplianceOptions {
  const ApplianceConfig* config = nullptr;
  std::string mode = "dev";  // "dev" or "production": admin API status and /health
  hal::Pkcs11HsmConfig hsm;  // with the user PIN; wiped by the HAL after login
  firmware::store::MetadataStore* store = nullptr;
  // The audit log's folder (firmware/audit/audit_log.h): every request of both doors is recorded
  // there, durably, before its answer leaves; none is answered when that fails.
  std::string audit_dir;
  metrics::MetricsRegistry* metrics = nullptr;
  const log::Logger* logs = nullptr;
  // What sys/seal-status and sys/health report while unsealed.
  api::vault::VaultHealth vault_health;
  // sys/unseal while unsealed (answers the state) and sys/seal; unset in dev mode.
  std::function<StatusOr<api::vault::VaultHealth>(std::string_view, bool)> unseal;
  std::function<Status()> seal;
  // The operator takes a store older than the token's watermark as it is (firmware/store_rollback.h).
  bool accept_store_rollback = false;
  // How the token is opened; hal::OpenPkcs11Hsm when unset. Tests open it through a fault-injecting
  // function list (tests/support/fault_injection.h) to show a failing self-test stops the boot.
  std::function<StatusOr<std::unique_ptr<hal::Hsm>>(hal::Pkcs11HsmConfig)> open_hsm;
};

class Appliance {
 public:
  static StatusOr<std::unique_ptr<Appliance>> Open(ApplianceOptions options);
  ~Appliance();
  Appliance(const Appliance&) = delete;
  Appliance& operator=(const Appliance&) = delete;

  const api::http::Router& router() const { return router_; }
  firmware::AccessKeyRegistry& access_keys() { return *access_keys_; }
  firmware::VaultTokenRegistry& vault_tokens() { return *vault_tokens_; }
  firmware::authz::PrincipalRegistry& principals() { return *principals_; }
  const Bytes& audit_public_key() const { return audit_signer_->public_key_der(); }
  void StartScheduler();

 private:
  explicit Appliance(ApplianceOptions options) : options_(std::move(options)) {}

  ApplianceOptions options_;
  firmware::SystemClock clock_;
  std::unique_ptr<hal::Hsm> hsm_;
  std::unique_ptr<hal::MeteredHsm> metered_;
  std::unique_ptr<firmware::KeyService> service_;
  std::unique_ptr<firmware::KeyLifecycleScheduler> scheduler_;
  // Declared before the doors: the doors record into it until they are destroyed.
  std::unique_ptr<firmware::audit::HsmAuditSigner> audit_signer_;
  std::unique_ptr<firmware::audit::AuditLog> audit_log_;
  std::unique_ptr<api::http::RequestAuditor> auditor_;
  std::unique_ptr<firmware::authz::PrincipalRegistry> principals_;
  std::unique_ptr<firmware::authz::AccessControl> access_control_;
  std::unique_ptr<api::aws::KeyAuthorizer> authorizer_;
  std::unique_ptr<firmware::AccessKeyRegistry> access_keys_;
  std::unique_ptr<api::aws::RegistryAccessKeyStore> access_key_store_;
  std::unique_ptr<firmware::VaultTokenRegistry> vault_tokens_;
  std::vector<std::unique_ptr<firmware::transit::TransitKeyring>> keyrings_;
  std::unique_ptr<api::aws::AwsDoor> aws_door_;
  std::unique_ptr<api::vault::VaultDoor> vault_door_;
  api::http::Router router_;
};

// The HTTP server's settings from the configuration (address, port, workers, body limit,
// connections per peer, TLS).
StatusOr<api::http::ServerConfig> ServerConfigFrom(const ApplianceConfig& config);

// kmsd's http::FaultResponder: the fault answer of the door that serves `target`, the Vault
// door's under /v1/ ({"errors":[...]}, 503 when overloaded: Vault clients retry 5xx) and the AWS
// door's everywhere else (it also answers unknown paths, and faults before the target is known).
api::http::HttpResponse DoorFaultResponse(api::http::ServerFault fault, std::string_view detail,
                                          std::string_view target);

// GET/HEAD /metrics in the Prometheus text format; 405 otherwise.
api::http::HttpResponse MetricsPage(const metrics::MetricsRegistry& metrics,
                                    const api::http::HttpRequest& request);

}  // namespace kms::app

#endif  // KMS_FIRMWARE_APP_APPLIANCE_H_
