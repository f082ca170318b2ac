#include "api/vault/vault_door.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <string>

#include "api/aws/door.h"  // NewRequestId: the same UUID v4 the AWS door uses
#include "api/vault/internal/endpoint.h"
#include "base/secret_bytes.h"

namespace kms::api::vault {

namespace json = boost::json;
using internal::Reply;
using internal::Verb;

namespace {

std::string_view TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    const auto slash = s.find('/');
    out.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) break;
    s.remove_prefix(slash + 1);
  }
  return out;
}

// strconv.ParseBool, which Vault applies to ?list=.
bool QueryTrue(std::string_view query, std::string_view name) {
  const auto v = internal::QueryParam(query, name);
  return v && (*v == "1" || *v == "t" || *v == "T" || *v == "true" || *v == "TRUE" || *v == "True");
}

// X-Vault-Token wins over Authorization, as in Vault's http/handler.go.
std::string_view PresentedToken(const http::HttpRequest& request) {
  if (auto t = request.Header("x-vault-token"); t && !t->empty()) return *t;
  if (auto a = request.Header("authorization")) {
    constexpr std::string_view kBearer = "bearer ";
    if (a->size() > kBearer.size() &&
        http::HeaderNameEquals(a->substr(0, kBearer.size()), kBearer)) {
      std::string_view t = a->substr(kBearer.size());
      while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
      return t;
    }
  }
  return {};
}

http::HttpResponse JsonResponse(unsigned status, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  // Responses carry ciphertexts, plaintexts and tokens: no cache may keep them.
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

http::HttpResponse Render(Reply reply, const std::string& request_id) {
  if (reply.no_body) return JsonResponse(reply.status, {});
  if (reply.bare) {
    auto r = JsonResponse(reply.status, json::serialize(*reply.bare));
    return r;
  }
  // A failed batch (400/500 or partial_failure_response_code) still answers the full envelope.
  if (reply.status >= 400 && !reply.data) {
    json::array errors;
    for (auto& e : reply.errors) errors.emplace_back(e);
    return JsonResponse(reply.status, json::serialize(json::object{{"errors", std::move(errors)}}));
  }
  if (reply.status == 204) return JsonResponse(204, {});
  json::object env;
  env["request_id"] = request_id;
  env["lease_id"] = "";
  env["renewable"] = false;
  env["lease_duration"] = 0;
  env["data"] = reply.data ? json::value(std::move(*reply.data)) : json::value(nullptr);
  env["wrap_info"] = nullptr;
  if (reply.warnings.empty()) {
    env["warnings"] = nullptr;
  } else {
    json::array w;
    for (auto& s : reply.warnings) w.emplace_back(s);
    env["warnings"] = std::move(w);
  }
  env["auth"] = reply.auth ? json::value(std::move(*reply.auth)) : json::value(nullptr);
  env["mount_type"] = reply.mount_type;
  auto r = JsonResponse(reply.status, json::serialize(env));
  if (json::value* d = env.if_contains("data"); d && d->is_object()) {
    internal::WipeSensitiveMembers(d->get_object());
  }
  if (json::value* a = env.if_contains("auth"); a && a->is_object()) {
    internal::WipeSensitiveMembers(a->get_object());
  }
  return r;
}

Reply NotImplemented(std::string_view what, std::string_view why) {
  return internal::ErrorReply(
      501, std::string(what) + " is not implemented by this appliance" + std::string(why));
}

// A Vault endpoint this appliance does not serve: the reason, or nullopt when `s` is no such path.
std::optional<Reply> UnimplementedTransit(const std::vector<std::string_view>& s) {
  const auto n = s.size();
  const std::string_view head = s[0];
  constexpr std::string_view kNoExport = ": transit key material never leaves the HSM";
  if ((head == "export" || head == "byok-export") && (n == 3 || n == 4)) {
    return NotImplemented(head, kNoExport);
  }
  if (head == "backup" && n == 2) return NotImplemented(head, kNoExport);
  if (head == "restore" && (n == 1 || n == 2)) return NotImplemented(head, kNoExport);
  if (head == "wrapping_key" && n == 1) {
    return NotImplemented(head, ": keys are created inside the HSM, never imported");
  }
  if (head == "cache-config" && n == 1) {
    return NotImplemented(head, ": the key service keeps its own key cache");
  }
  if (head == "config" && n == 2 && s[1] == "keys") {
    return NotImplemented("config/keys",
                          ": upsert on encrypt is governed by the token's scope (operation "
                          "\"manage\")");
  }
  if (head == "cmac" && (n == 2 || n == 3)) return NotImplemented(head, " (Vault Enterprise)");
  if (head == "derive-key" && n == 2) return NotImplemented(head, " (OpenBao)");
  if (head == "keys" && n == 3) {
    const std::string_view op = s[2];
    if (op == "import" || op == "import_version") {
      return NotImplemented("keys/<name>/" + std::string(op),
                            ": keys are created inside the HSM, never imported");
    }
    if (op == "trim") {
      return NotImplemented("keys/<name>/trim",
                            ": key versions stay in the HSM until the key is deleted");
    }
    if (op == "csr" || op == "set-certificate") {
      return NotImplemented("keys/<name>/" + std::string(op), ": no certificate management");
    }
    if (op == "soft-delete" || op == "soft-delete-restore") {
      return NotImplemented("keys/<name>/" + std::string(op), " (OpenBao)");
    }
  }
  return std::nullopt;
}

using Endpoint = Reply (*)(const internal::Call&);

// The endpoint for `s` (the path after the mount, split on '/'), filling the call's parameters.
Endpoint RouteTransit(const std::vector<std::string_view>& s, internal::Call& call) {
  const auto n = s.size();
  const std::string_view head = s[0];
  if (head == "keys") {
    if (n == 1) return internal::PathKeys;
    call.name = s[1];
    if (n == 2) return internal::PathKeys;
    if (n == 3 && s[2] == "config") return internal::PathConfig;
    if (n == 3 && s[2] == "rotate") return internal::PathRotate;
    return nullptr;
  }
  if (n == 2 && (head == "encrypt" || head == "decrypt" || head == "rewrap")) {
    call.name = s[1];
    if (head == "encrypt") return internal::PathEncrypt;
    return head == "decrypt" ? internal::PathDecrypt : internal::PathRewrap;
  }
  if (n == 3 && head == "datakey") {
    call.arg = s[1];
    call.name = s[2];
    return internal::PathDatakey;
  }
  if ((n == 2 || n == 3) && (head == "hmac" || head == "sign" || head == "verify")) {
    call.name = s[1];
    if (n == 3) call.arg = s[2];
    return head == "hmac" ? internal::PathHmac
                          : (head == "sign" ? internal::PathSign : internal::PathVerify);
  }
  if (n <= 3 && head == "random") {
    if (n >= 2) call.arg = s[1];
    if (n == 3) call.arg2 = s[2];
    return internal::PathRandom;
  }
  if (n <= 2 && head == "hash") {
    if (n == 2) call.arg = s[1];
    return internal::PathHash;
  }
  return nullptr;
}

std::string NoRoute(std::string_view path) {
  return "no handler for route \"" + std::string(path) + "\". route entry not found.";
}

}  // namespace

VaultDoor::VaultDoor(VaultDoorConfig config, firmware::VaultTokenRegistry& tokens,
                     std::vector<firmware::transit::TransitKeyring*> keyrings)
    : config_(std::move(config)), tokens_(&tokens), recorder_(config_.observers) {
  for (const auto& m : config_.mounts) {
    const std::string_view mount = TrimSlashes(m);
    for (auto* k : keyrings) {
      if (k != nullptr && TrimSlashes(k->mount()) == mount) {
        mounts_.emplace_back(std::string(mount), k);
        break;
      }
    }
  }
  std::sort(mounts_.begin(), mounts_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

VaultDoor::VaultDoor(VaultDoorConfig config)
    : config_(std::move(config)), tokens_(nullptr), recorder_(config_.observers) {}

http::HttpResponse VaultDoor::FaultResponse(http::ServerFault fault, std::string_view detail,
                                        std::string_view /*target*/) {
  unsigned status = 500;
  std::string message = "internal error";
  switch (fault) {
    case http::ServerFault::kBodyTooLarge:
      status = 413;
      message = "http: request body too large";
      break;
    case http::ServerFault::kHeaderTooLarge:
      status = 431;
      message = "request header fields too large";
      break;
    case http::ServerFault::kBadRequest:
      status = 400;
      message = "malformed HTTP request";
      break;
    case http::ServerFault::kOverloaded:
      // 503 (not 429): the Go client retries every 5xx but 501, with backoff.
      status = 503;
      message = "the appliance is overloaded; retry the request";
      break;
    case http::ServerFault::kHandlerFailed:
      break;
  }
  (void)detail;  // may echo request bytes; the fixed texts above say enough
  return Render(internal::ErrorReply(status, std::move(message)), {});
}

http::HttpResponse VaultDoor::Dispatch(const http::HttpRequest& request,
                                       const std::string& request_id, std::int64_t now_ms,
                                       internal::TokenSeen& seen) const {
  const std::string_view query = request.Query();
  Verb verb;
  const std::string& m = request.method;
  if (m == "GET") {
    verb = QueryTrue(query, "list") ? Verb::kList : Verb::kRead;
  } else if (m == "PUT" || m == "POST") {
    verb = Verb::kWrite;
  } else if (m == "LIST") {
    verb = Verb::kList;
  } else if (m == "DELETE") {
    verb = Verb::kDelete;
  } else if (m == "HEAD") {
    verb = Verb::kHead;
  } else {
    return Render(internal::EmptyErrorReply(405), request_id);
  }

  std::string_view path = request.Path();
  if (!path.starts_with("/v1/"))
    return Render(internal::ErrorReply(404, NoRoute(path)), request_id);
  path.remove_prefix(4);
  // A LIST from the CLI ends in '/'; Vault routes "keys" and "keys/" alike.
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

  static const json::object kEmpty;
  internal::Call call{verb, {}, tokens_, nullptr, kEmpty, query, {}, {}, {}, config_, now_ms};
  call.seen = &seen;

  // Unauthenticated, and answered sealed too: load balancers and `vault status` poll them.
  if (path == "sys/health") return Render(internal::PathSysHealth(call), request_id);
  if (path == "sys/seal-status") return Render(internal::PathSysSealStatus(call), request_id);
  if (path == "sys/unseal") {
    json::object unseal_body;
    if (!request.body.empty()) {
      boost::system::error_code ec;
      json::value parsed = json::parse(request.body, ec);
      if (ec || !parsed.is_object()) {
        return Render(
            internal::ErrorReply(
                400, "failed to parse JSON input: " +
                         (ec ? ec.message() : std::string("the body must be a JSON object"))),
            request_id);
      }
      unseal_body = std::move(parsed.get_object());
    }
    internal::Call unseal{verb, {}, tokens_, nullptr, unseal_body, query,
                          {},   {}, {},      config_, now_ms};
    Reply reply = internal::PathSysUnseal(unseal);
    internal::WipeSensitiveMembers(unseal_body);
    return Render(std::move(reply), request_id);
  }

  const VaultHealth health = config_.health ? config_.health() : VaultHealth{};
  if (tokens_ == nullptr || !health.initialized || health.sealed) {
    return Render(internal::ErrorReply(503, "Vault is sealed"), request_id);
  }

  call.token = PresentedToken(request);
  if (call.token.empty()) return Render(internal::ErrorReply(403, "permission denied"), request_id);
  // For answers that name no key (404, 501, 400 for a bad body): the token must still be live, so a
  // caller without one learns nothing about routes.
  auto live_or = [&](Reply reply) {
    auto info = internal::LookupToken(call);
    return Render(info ? std::move(reply) : internal::StatusReply(info.error()), request_id);
  };

  json::object body;
  if (verb == Verb::kWrite && !request.body.empty()) {
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec || !parsed.is_object()) {
      return live_or(internal::ErrorReply(
          400, "failed to parse JSON input: " +
                   (ec ? ec.message() : std::string("the body must be a JSON object"))));
    }
    body = std::move(parsed.get_object());
  }
  // Endpoints read the body by reference; its plaintext members are wiped on every way out.
  struct Wiper {
    json::object& o;
    ~Wiper() { internal::WipeSensitiveMembers(o); }
  } wiper{body};
  internal::Call routed{verb, call.token, tokens_, nullptr, body,  query,
                        {},   {},         {},      config_, now_ms};
  routed.seen = &seen;

  if (path == "sys/seal") return Render(internal::PathSysSeal(routed), request_id);
  if (path.starts_with("auth/")) {
    if (path == "auth/token/lookup-self") {
      return Render(internal::PathTokenLookupSelf(routed), request_id);
    }
    if (path == "auth/token/renew-self") {
      return Render(internal::PathTokenRenewSelf(routed), request_id);
    }
    if (path == "auth/token/revoke-self") {
      return Render(internal::PathTokenRevokeSelf(routed), request_id);
    }
    if (path.starts_with("auth/token/")) {
      return live_or(NotImplemented(
          path, ": tokens are created, looked up and revoked by operators (kmsctl, admin API)"));
    }
    return live_or(internal::ErrorReply(404, NoRoute(path)));
  }

  for (const auto& [mount, keyring] : mounts_) {
    if (!path.starts_with(mount)) continue;
    if (path.size() != mount.size() && path[mount.size()] != '/') continue;
    if (path.size() <= mount.size() + 1) break;  // the mount itself: no endpoint
    const auto segments = Split(path.substr(mount.size() + 1));
    if (std::any_of(segments.begin(), segments.end(), [](auto s) { return s.empty(); })) break;
    if (auto unimplemented = UnimplementedTransit(segments)) {
      return live_or(std::move(*unimplemented));
    }
    routed.keyring = keyring;
    if (Endpoint endpoint = RouteTransit(segments, routed)) {
      return Render(endpoint(routed), request_id);
    }
    break;
  }
  return live_or(internal::ErrorReply(404, NoRoute(path)));
}

std::string_view VaultDoor::MetricOperation(std::string_view path) const {
  if (!path.starts_with("/v1/")) return "unknown";
  path = TrimSlashes(path.substr(4));
  static constexpr std::string_view kFixed[] = {"sys/health",
                                                "sys/seal-status",
                                                "sys/unseal",
                                                "sys/seal",
                                                "auth/token/lookup-self",
                                                "auth/token/renew-self",
                                                "auth/token/revoke-self"};
  for (const std::string_view fixed : kFixed) {
    if (path == fixed) return fixed;
  }
  static constexpr std::string_view kTransit[] = {"keys", "encrypt", "decrypt", "rewrap", "datakey",
                                                  "hmac", "sign",    "verify",  "random", "hash"};
  for (const auto& [mount, keyring] : mounts_) {
    if (!path.starts_with(mount) || path.size() <= mount.size() + 1 || path[mount.size()] != '/') {
      continue;
    }
    const auto s = Split(path.substr(mount.size() + 1));
    if (s[0] == "keys" && s.size() == 3 && s[2] == "config") return "keys/config";
    if (s[0] == "keys" && s.size() == 3 && s[2] == "rotate") return "keys/rotate";
    for (const std::string_view known : kTransit) {
      if (s[0] == known) return known;
    }
    return "unknown";
  }
  return "unknown";
}

http::HttpResponse VaultDoor::Handle(const http::HttpRequest& request) const {
  const auto started = std::chrono::steady_clock::now();
  std::string request_id;
  http::HttpResponse response;
  internal::TokenSeen seen;
  try {
    request_id = config_.request_id ? config_.request_id() : aws::NewRequestId();
    static const firmware::SystemClock kSystemClock;
    const firmware::Clock& clock = config_.clock ? *config_.clock : kSystemClock;
    if (config_.observers.audit != nullptr && !config_.observers.audit->Ready()) {
      // The audit log failed its last write: perform nothing it could not record.
      response = Render(internal::ErrorReply(500, "internal error: the audit log cannot be written"),
                        request_id);
    } else {
      response = Dispatch(request, request_id, clock.NowMs(), seen);
    }
  } catch (...) {
    // Boundary catch (CONVENTIONS.md "Errors"): nothing escapes to the server.
    response = Render(internal::ErrorReply(500, "internal error"), request_id);
  }
  bool ok = response.status >= 200 && response.status < 300;
  std::string outcome = ok ? std::string("ok") : std::to_string(response.status);
  if (http::RequestAuditor* audit = config_.observers.audit; audit != nullptr) {
    // Who called: the token's accessor and display name (never the token), as the endpoint's
    // own lookup found them. Only answers that never looked the token up (sys/health with a token,
    // a refusal while the log is failing) look it up here, so every answer names its caller when
    // it had a live token, at one store read per request.
    if (!seen.looked_up && tokens_ != nullptr) {
      if (const std::string token(PresentedToken(request)); !token.empty()) {
        if (auto info = tokens_->Lookup(token)) {
          seen = internal::TokenSeen{true, info->accessor, info->display_name};
        }
      }
    }
    const std::string& accessor = seen.accessor;
    const std::string principal =
        seen.accessor.empty() ? std::string() : "vault-token:" + seen.display_name;
    const std::string path(request.Path());
    http::AuditedRequest record;
    record.door = "vault";
    record.operation = MetricOperation(path);
    record.request_id = request_id;
    record.principal = principal;
    record.credential_id = accessor;
    record.source_address = request.remote_address;
    record.outcome = outcome;
    record.status = response.status;
    if (!audit->Record(record).ok()) {
      // No record, no answer (fail closed), as Vault refuses requests it cannot audit.
      WipeString(response.body);
      response = Render(internal::ErrorReply(500, "internal error: the audit log cannot be written"),
                        request_id);
      ok = false;
      outcome = "500";
    }
  }
  recorder_.Record({"vault", MetricOperation(request.Path()), outcome, response.status, request_id,
                    request.remote_address, std::chrono::steady_clock::now() - started});
  return response;
}

}  // namespace kms::api::vault
