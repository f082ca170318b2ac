// The Vault door: a Vault-compatible HTTP API under "/v1/" (docs/vault-door.md) over the
// appliance's transit keyrings and Vault tokens, so Vault's and OpenBao's `seal "transit"` and
// apps written for Vault transit can use the appliance unchanged.
//
//   kms::api::vault::VaultDoorConfig vcfg;
//   vcfg.mounts = {"transit"};                                  // one TransitKeyring per mount
//   vcfg.health = [&] { return kms::api::vault::VaultHealth{true, false, false, "kms 0.6"}; };
//   vcfg.access = &access_control;                              // key policies' explicit Deny
//   kms::firmware::transit::TransitKeyring transit(service, store, clock, "transit");
//   kms::firmware::VaultTokenRegistry tokens(hsm, store, clock);
//   auto vault = std::make_shared<kms::api::vault::VaultDoor>(vcfg, tokens,
//       std::vector<kms::firmware::transit::TransitKeyring*>{&transit});
//   server->router().Prefix("/v1/", [vault](const auto& r) { return vault->Handle(r); });
//
// `Handle` is an http::Handler. Per request:
//   1. a fresh request id (UUID v4), in the success envelope's "request_id";
//   2. the verb: GET read (GET ?list=true and the custom LIST verb are list), PUT and POST are both
//      write (the Go client always sends PUT), DELETE, HEAD (sys/health only); any other method is
//      405 {"errors":[]};
//   3. the route, from one table (vault_door.cc): (path shape, verb) -> (endpoint, the token
//      operation it needs, where its key name comes from, whether it changes state). Paths are
//      "sys/...", "auth/token/{lookup-self,renew-self,revoke-self}", or "<mount>/<endpoint>" for
//      the longest configured mount (mounts may contain '/');
//   4. unauthenticated routes: sys/health (GET/HEAD), sys/seal-status (GET) and sys/unseal
//      (write) answer even sealed; the decision is "allow:public";
//   5. sealed (the health callback says so): 503 {"errors":["Vault is sealed"]};
//   6. the token, from `X-Vault-Token` or else `Authorization: Bearer`; missing, unknown, revoked
//      or expired -> 403 {"errors":["permission denied"]} before the path is even looked at (as
//      Vault: nothing about routes leaks to a caller without a token);
//   7. a path without a route is 403 "permission denied" for a token that is not an
//      administrator (decision "deny:token-scope": as Vault's ACLs, which refuse a path no policy
//      names before any handler is looked for, so scoped tokens learn nothing of which paths
//      exist); for administrators an unknown path is 404 `no handler for route "<path>". route
//      entry not found.`, and a Vault endpoint this appliance does not implement (export, backup,
//      restore, import, trim, wrapping_key, cache-config, byok-export, csr, auth/token/create, ...)
//      is 501 with the reason; a known path with another verb is 405 "unsupported operation";
//   8. the body: JSON object, no Content-Type required, empty = {}; malformed -> 400
//      "failed to parse JSON input: ...". Ignored on GET, LIST and DELETE, as Vault does;
//   9. the decision, made here and nowhere else (internal/endpoint.h `Decision`): the key's
//      key-service key is found (its ARN goes to the audit record, refusals included); the
//      token's scope must allow the route's operation on the route's key of
//      this mount (firmware/vault_tokens.h), else 403 "permission denied"; an explicit Deny in that
//      key's policy for the Vault caller and the operation's KMS actions (`config.access`,
//      docs/vault-door.md) is 403 "permission denied" too; encrypt to a missing key decides
//      "manage" for its upsert as well; a malformed key name is 400 "invalid key name" only once
//      the scope allowed the request (403 before). Then the members' types (the route table's,
//      as Vault's FieldData.Validate): a member present with a value its type cannot take is 400
//      with FieldReader's message, whether or not the endpoint would read it in this request. The
//      endpoint runs with the Decision and acts on the key it
//      names: the key-service key decided, never a key the name was bound to since (that is 400
//      "the key name ... was bound to another key while this request ran; retry the request",
//      firmware/transit_keyring.h "Bindings");
//  10. a route that changes state (keys create/delete/config/rotate, encrypt creating its key,
//      renew-self, revoke-self, sys/seal) first writes an intent record (outcome "started", status
//      0) through the auditor; if that fails, 500 "internal error: the audit log cannot be
//      written" and the endpoint never runs.
// Success is 200 `{"request_id","lease_id":"","renewable":false,"lease_duration":0,"data":{...},
// "wrap_info":null,"warnings":null,"auth":null,"mount_type":"transit"}` or 204 with no body (key
// delete, revoke-self); errors are `{"errors":[...]}` with Vault's texts from the firmware. An
// answer in the envelope to a body holding members the route does not read carries Vault's
// warning "Endpoint ignored these unrecognized parameters: [a b]" (transit and auth/token routes;
// sys/ routes decode their bodies themselves and ignore the rest silently, as Vault's). Every
// response carries Content-Type application/json and Cache-Control no-store. A throw anywhere below
// becomes 500 {"errors":["internal error"]}; nothing escapes to the server. Status codes a caller
// chooses (sys/health's activecode and the like, a batch's partial_failure_response_code) are taken
// only when they can carry the body: 200..599 but 204, 205 and 304.
//
// Ignored on purpose: `X-Vault-Request` (a CSRF marker the Go client always sends) and
// `X-Vault-Namespace` (Vault Enterprise/OpenBao namespaces; the appliance has one flat namespace,
// so "ns1/" plus "transit" is just "transit"), `X-Vault-Wrap-TTL` (no response wrapping).
// Plaintexts, tokens and data keys never appear in an error, a log or an audit record; their JSON
// copies are wiped once used.
//
// `FaultResponse` is the door's http::FaultResponder (413/431/400/503/500 as {"errors":[...]}); a
// server that carries both doors answers the faults of /v1/ requests with it and the others with
// the AWS door's (kmsd: firmware/app/appliance.h, DoorFaultResponse).
//
// Every request goes to the config's observers (api/http/request_recorder.h: metrics, and the log
// for 5xx answers or every request), with the envelope's request_id: door "vault", operation the
// endpoint ("encrypt", "keys/rotate", "sys/health",
// "auth/token/renew-self", ...; "unknown" for any other path, so callers cannot mint label values),
// outcome "ok" for a 2xx answer and the status code otherwise ("403", "400"). The audit record
// (api/http/request_audit.h) adds the caller (token accessor and display name, never the token),
// the key-service key's ARN when the request names an existing transit key (or one it created),
// and the decision, never empty: "allow:token-scope", "allow:administrator", "allow:public",
// "deny:token-scope", "deny:explicit", or the stage that refused the request before a decision:
// "refused:unauthenticated", "refused:invalid-request" (method, body, key name), "refused:sealed",
// "refused:audit", "refused:not-found" (unknown or unimplemented path, administrators; other tokens
// get "deny:token-scope"), "refused:internal" (a store
// or HSM failure, or a throw, before the decision was complete).
//
// Lifetime: the registry, the keyrings and `config.access` must outlive the door. Thread-safety:
// immutable after construction; Handle runs concurrently on the server's worker pool.
#ifndef KMS_API_VAULT_VAULT_DOOR_H_
#define KMS_API_VAULT_VAULT_DOOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http/message.h"
#include "api/http/request_recorder.h"
#include "api/http/server.h"
#include "firmware/clock.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"

namespace kms::firmware::authz {
class AccessControl;
}  // namespace kms::firmware::authz

namespace kms::api::vault::internal {
struct AuditNote;
}  // namespace kms::api::vault::internal

namespace kms::api::vault {

// What sys/health and sys/seal-status report, and what gates every other path (sealed -> 503).
// The seal fields are sys/seal-status's: the defaults describe an appliance that unseals from its
// HSM (dev mode, like Vault's pkcs11 seal); a production appliance reports "shamir" with its
// custodian-share threshold (t), share count (n) and the shares entered so far (progress).
struct VaultHealth {
  bool initialized = true;
  bool sealed = false;
  bool standby = false;
  std::string version = "0.0.0";
  std::string seal_type = "pkcs11";
  unsigned threshold = 1;
  unsigned shares = 1;
  unsigned progress = 0;
  bool recovery_seal = true;
};

struct VaultDoorConfig {
  // Mount paths ("transit", "apps/transit"; a leading or trailing '/' is ignored). Each must have a
  // keyring whose mount() is the same path.
  std::vector<std::string> mounts = {"transit"};
  // A new request id per request; defaults to a random UUID v4.
  std::function<std::string()> request_id;
  // Defaults to "initialized, unsealed, active".
  std::function<VaultHealth()> health;
  // Where lease durations and sys/health's server_time_utc come from; null = the system clock.
  // Must outlive the door.
  const firmware::Clock* clock = nullptr;
  std::string cluster_name = "kms-appliance";
  std::string cluster_id;
  // Where request metrics and request log lines go; none by default. Must outlive the door.
  http::RequestObservers observers;
  // sys/unseal (PUT/POST, unauthenticated as in Vault): one custodian share, or reset. Returns the
  // state after it (an InvalidArgument error becomes 400 with its message). Unset: the appliance
  // cannot be unsealed by shares, and sys/unseal answers the current state.
  std::function<StatusOr<VaultHealth>(std::string_view share, bool reset)> unseal;
  // sys/seal (PUT/POST, administrator tokens): seals the appliance once the answer is sent. Unset:
  // 400, the appliance cannot be sealed (dev mode).
  std::function<Status()> seal;
  // Key policies: an explicit Deny for the Vault caller in the policy of the key-service key behind
  // a transit key refuses the request (docs/vault-door.md). Null: no key policy is consulted (a
  // door alone in tests). Must outlive the door.
  firmware::authz::AccessControl* access = nullptr;
  // The request body limit is the server's (http::ServerConfig::body_limit; Vault's default
  // max_request_size is 32 MiB, kVaultMaxRequestBytes).
};

inline constexpr std::size_t kVaultMaxRequestBytes = 32u << 20;

// One row of the door's route table (vault_door.cc), as tests and docs see it: the path shape
// ("sys/health", "auth/token/renew-self", or after a transit mount "encrypt/{name}",
// "datakey/{arg}/{name}"), whether it is under a mount, the Vault verb ("read", "write", "list",
// "delete", "head"), the token operation decided ("encrypt", "manage", ...; "public",
// "token-self", "administrator"), and the request members it reads.
struct VaultRouteInfo {
  std::string_view shape;
  bool under_mount = false;
  std::string_view verb;
  std::string_view operation;
  std::vector<std::string_view> members;
};

class VaultDoor {
 public:
  // `keyrings`: one per configured mount, matched by TransitKeyring::mount(); a configured mount
  // without a keyring is not served (404), a keyring whose mount is not configured is unused.
  VaultDoor(VaultDoorConfig config, firmware::VaultTokenRegistry& tokens,
            std::vector<firmware::transit::TransitKeyring*> keyrings);
  // The door of a sealed appliance: no tokens and no keys yet. sys/health, sys/seal-status and
  // sys/unseal answer; every other path is 503 "Vault is sealed", whatever `config.health` says.
  explicit VaultDoor(VaultDoorConfig config);
  VaultDoor(const VaultDoor&) = delete;
  VaultDoor& operator=(const VaultDoor&) = delete;

  http::HttpResponse Handle(const http::HttpRequest& request) const;
  static http::HttpResponse FaultResponse(http::ServerFault fault, std::string_view detail,
                                           std::string_view target = {});

  const VaultDoorConfig& config() const { return config_; }
  // Every route the door serves, in table order.
  static std::vector<VaultRouteInfo> Routes();

 private:
  // `note` gets the caller, the decision and the key, for the audit records.
  http::HttpResponse Dispatch(const http::HttpRequest& request, const std::string& request_id,
                              std::int64_t now_ms, internal::AuditNote& note) const;
  // One audit record of `request` (the intent record: outcome "started", status 0).
  Status Audit(const http::HttpRequest& request, std::string_view request_id,
               const internal::AuditNote& note, std::string_view outcome, unsigned status) const;
  // The endpoint's name for the metrics, from a bounded set.
  std::string_view MetricOperation(std::string_view target_path) const;

  VaultDoorConfig config_;
  firmware::VaultTokenRegistry* tokens_;  // null while sealed
  // (normalised mount path, its keyring), longest path first so nested mounts win.
  std::vector<std::pair<std::string, firmware::transit::TransitKeyring*>> mounts_;
  http::RequestRecorder recorder_;
};

}  // namespace kms::api::vault

#endif  // KMS_API_VAULT_VAULT_DOOR_H_
