// The appliance's health pages, for load balancers, monitors and orchestrators.
//
// `GET /health`: one request tells whether this appliance can serve key operations now, and why
// not. Status codes follow Vault's /v1/sys/health (docs/vault-door.md "HTTP conventions") so the
// same load-balancer checks work for both:
//
//   200  initialized, unsealed, and the HSM answered a round trip (hal::Hsm::CheckHealth)
//   501  not initialized (no domain key provisioned yet)
//   503  sealed, the HSM did not answer ("hsm": "degraded"), or the audit log cannot be written
//        ("audit": "failing": every key operation is refused until it can, so a load balancer
//        should send clients elsewhere)
//
// Body: {"initialized":bool,"sealed":bool,"standby":false,"hsm":"ok"|"degraded"|"not checked",
// "audit":"ok"|"failing"|"not checked","mode":"dev"|..., "version":"..."}, Content-Type application/json, Cache-Control no-store. The
// HSM is not asked while sealed or uninitialized ("not checked": the module may not be logged in).
// A failing HSM's status text is not shown: it may name slots or paths, and the page is
// unauthenticated; the daemon's log has it. GET and HEAD only (405 otherwise, with Allow).
//
// `GET /readyz` and `/livez` (Kubernetes' convention, docs/observability.md): readyz is 200
// "ok" exactly when /health would be 200, else 503 with the reason ("sealed", "not initialized",
// "hsm degraded", "audit log failing"); livez is 200 "ok" whenever the process answers HTTP at all. Plain text.
//
// Thread-safety: as `hsm` (any thread). Each call costs one HSM round trip when unsealed.
#ifndef KMS_API_HEALTH_HEALTH_PAGE_H_
#define KMS_API_HEALTH_HEALTH_PAGE_H_

#include <functional>
#include <string>

#include "api/http/message.h"
#include "hal/hsm.h"

namespace kms::api::health {

struct ApplianceState {
  bool initialized = true;
  bool sealed = false;
  std::string mode = "dev";
  std::string version;
  // Whether the audit log took its last record (AuditLog::healthy); null = no audit log to check.
  std::function<bool()> audit_healthy;
};

http::HttpResponse HealthPage(hal::Hsm& hsm, const ApplianceState& state,
                              const http::HttpRequest& request);
http::HttpResponse ReadinessPage(hal::Hsm& hsm, const ApplianceState& state,
                                 const http::HttpRequest& request);
// The same pages for an appliance that may have no HSM session yet: `hsm` is null while sealed
// (the token is not logged in until the custodians unseal it), which reads as sealed.
http::HttpResponse HealthPage(hal::Hsm* hsm, const ApplianceState& state,
                              const http::HttpRequest& request);
http::HttpResponse ReadinessPage(hal::Hsm* hsm, const ApplianceState& state,
                                 const http::HttpRequest& request);
http::HttpResponse LivenessPage(const http::HttpRequest& request);

}  // namespace kms::api::health

#endif  // KMS_API_HEALTH_HEALTH_PAGE_H_
