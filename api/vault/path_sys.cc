// sys/health (GET, HEAD) and sys/seal-status (GET): unauthenticated and answered while sealed, for
// load balancers, `vault status` and clients probing the server (Vault's http/sys_health.go).
#include <charconv>

#include "api/vault/internal/endpoint.h"
#include "api/vault/vault_door.h"

namespace kms::api::vault::internal {

namespace {

VaultHealth Health(const Call& call) {
  return call.config.health ? call.config.health() : VaultHealth{};
}

// A status code from the query; false when malformed or not a status the answer may carry.
// Vault takes any integer (strconv.Atoi) and writes it as the status: ?activecode=101 or =204 would
// put the JSON body behind a 1xx or 204, which is broken HTTP framing, and a code outside 100..999
// is not a status at all. Only statuses that carry a body are taken (IsBodyStatus, the same rule
// for GET and HEAD, which share the URL a load balancer is given).
bool CodeParam(std::string_view query, std::string_view name, unsigned& code) {
  auto v = QueryParam(query, name);
  if (!v) return true;
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || !IsBodyStatus(out)) return false;
  code = static_cast<unsigned>(out);
  return true;
}

// standbyok / perfstandbyok: Vault's parseutil.ParseBool forms; an empty value is true (older
// Vault only looked for the parameter's presence). False when malformed.
bool BoolParam(std::string_view query, std::string_view name, bool& out) {
  auto v = QueryParam(query, name);
  if (!v) return true;
  if (v->empty() || *v == "1" || *v == "t" || *v == "T" || *v == "true" || *v == "TRUE" ||
      *v == "True") {
    out = true;
    return true;
  }
  if (*v == "0" || *v == "f" || *v == "F" || *v == "false" || *v == "FALSE" || *v == "False") {
    out = false;
    return true;
  }
  return false;
}

}  // namespace

Reply PathSysHealth(const Call& call, const Decision&) {
  const VaultHealth health = Health(call);
  // Vault's answer to a malformed parameter: 400 {"errors":[]} (http/sys_health.go logs the reason
  // and writes no message); HEAD, the status alone.
  auto bad_request = [&] {
    Reply r = EmptyErrorReply(400);
    r.no_body = call.verb == Verb::kHead;
    return r;
  };
  unsigned active = 200, standby = 429, sealed = 503, uninit = 501;
  // Accepted and checked for compatibility; the appliance has no performance standbys, DR
  // secondaries or HA membership to report with them.
  unsigned perf_standby = 473, dr_secondary = 472, removed = 530, ha_unhealthy = 474;
  for (auto [name, code] : {std::pair<std::string_view, unsigned*>{"activecode", &active},
                            {"standbycode", &standby},
                            {"sealedcode", &sealed},
                            {"uninitcode", &uninit},
                            {"performancestandbycode", &perf_standby},
                            {"drsecondarycode", &dr_secondary},
                            {"removedcode", &removed},
                            {"haunhealthycode", &ha_unhealthy}}) {
    if (!CodeParam(call.query, name, *code)) return bad_request();
  }
  bool standby_ok = false;
  bool perf_standby_ok = false;
  if (!BoolParam(call.query, "standbyok", standby_ok) ||
      !BoolParam(call.query, "perfstandbyok", perf_standby_ok)) {
    return bad_request();
  }
  unsigned status = active;
  if (!health.initialized) {
    status = uninit;
  } else if (health.sealed) {
    status = sealed;
  } else if (health.standby && !standby_ok) {
    status = standby;
  }
  Reply r;
  r.status = status;
  if (call.verb == Verb::kHead) {
    r.no_body = true;
    return r;
  }
  json::object b{
      {"initialized", health.initialized},
      {"sealed", health.sealed},
      {"standby", health.standby},
      {"performance_standby", false},
      {"replication_performance_mode", "disabled"},
      {"replication_dr_mode", "disabled"},
      {"server_time_utc", call.now_ms / 1000},
      {"version", health.version},
      {"enterprise", false},
  };
  // As Vault: the cluster is only known once unsealed.
  if (health.initialized && !health.sealed) {
    b["cluster_name"] = call.config.cluster_name;
    b["cluster_id"] = call.config.cluster_id;
  }
  r.bare = std::move(b);
  return r;
}

namespace {

// Vault's seal-status body (sys/seal-status, and the answer of every sys/unseal call).
Reply SealStatusReply(const Call& call, const VaultHealth& health) {
  // A dev appliance unseals from its HSM, as Vault's pkcs11 auto-seal (recovery_seal true, t = n =
  // 1); a production one reports its custodian shares ("shamir", t of n, progress).
  json::object b{
      {"type", health.seal_type},
      {"initialized", health.initialized},
      {"sealed", health.sealed},
      {"t", health.threshold},
      {"n", health.shares},
      {"progress", health.progress},
      {"nonce", ""},
      {"version", health.version},
      {"build_date", ""},
      {"migration", false},
      {"recovery_seal", health.recovery_seal},
      {"storage_type", "sqlite"},
  };
  if (health.initialized && !health.sealed) {
    b["cluster_name"] = call.config.cluster_name;
    b["cluster_id"] = call.config.cluster_id;
  }
  Reply r;
  r.bare = std::move(b);
  return r;
}

}  // namespace

Reply PathSysSealStatus(const Call& call, const Decision&) {
  return SealStatusReply(call, Health(call));
}

Reply PathSysUnseal(const Call& call, const Decision&) {
  // Vault decodes the body into a struct (http/sys_seal.go): a member of another type refuses the
  // request, and null leaves the member unset, as Go's encoding/json does.
  auto member = [&](std::string_view name) -> const json::value* {
    const json::value* v = call.body.if_contains(name);
    return v != nullptr && !v->is_null() ? v : nullptr;
  };
  bool reset = false;
  if (const json::value* v = member("reset")) {
    if (!v->is_bool()) return ErrorReply(400, "'reset' must be a boolean");
    reset = v->get_bool();
  }
  std::string_view key;
  if (const json::value* v = member("key")) {
    if (!v->is_string()) return ErrorReply(400, "'key' must be a string");
    key = v->get_string();
  }
  if (const json::value* v = member("migrate")) {
    if (!v->is_bool()) return ErrorReply(400, "'migrate' must be a boolean");
    if (v->get_bool()) return ErrorReply(400, "seal migration is not supported by this appliance");
  }
  // As Vault (http/sys_seal.go): without a key, only a reset is a valid request.
  if (key.empty() && !reset) {
    return ErrorReply(400,
                      "'key' must be specified in request body as JSON, or 'reset' set to true");
  }
  if (!call.config.unseal) return SealStatusReply(call, Health(call));
  auto state = call.config.unseal(key, reset);
  if (!state.has_value()) return StatusReply(state.error());
  return SealStatusReply(call, *state);
}

// Vault requires a root (sudo) token here; the appliance's equivalent is an administrator token,
// which the door decided ("administrator") before this runs.
Reply PathSysSeal(const Call& call, const Decision&) {
  if (!call.config.seal) {
    return ErrorReply(400, "this appliance cannot be sealed: dev mode unseals itself at start");
  }
  if (Status sealed = call.config.seal(); !sealed.ok()) return StatusReply(sealed);
  Reply r;
  r.status = 204;
  r.no_body = true;
  return r;
}

}  // namespace kms::api::vault::internal
