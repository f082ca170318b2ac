#include "api/vault/vault_door.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <expected>
#include <optional>
#include <span>
#include <string>

#include "api/aws/door.h"  // NewRequestId: the same UUID v4 the AWS door uses
#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "firmware/authz/access_control.h"
#include "firmware/key_spec.h"

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
    // Messages may echo the request's bytes (its path, a key name), which need not be UTF-8;
    // JSON must be, or a client's decoder fails on the whole answer.
    json::array errors;
    for (auto& e : reply.errors) errors.emplace_back(PrintableUtf8(e));
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
    for (auto& s : reply.warnings) w.emplace_back(PrintableUtf8(s));
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

// Vault's token store paths (vault/token_store.go) this appliance does not serve: 501 naming why.
// Any other auth/token/ path is no Vault path at all (404).
bool IsVaultTokenPath(std::string_view path) {
  if (!path.starts_with("auth/token/")) return false;
  const auto s = Split(path.substr(11));
  constexpr std::string_view kOne[] = {
      "create", "create-orphan",   "lookup",        "lookup-accessor", "renew", "renew-accessor",
      "revoke", "revoke-accessor", "revoke-orphan", "roles",           "tidy"};
  if (s.size() == 1) return std::find(std::begin(kOne), std::end(kOne), s[0]) != std::end(kOne);
  // create/<role>, roles/<role>, and the accessor/token forms of lookup, renew and revoke.
  constexpr std::string_view kTwo[] = {"create", "roles", "lookup", "renew", "revoke"};
  return s.size() == 2 && std::find(std::begin(kTwo), std::end(kTwo), s[0]) != std::end(kTwo);
}

std::string NoRoute(std::string_view path) {
  return "no handler for route \"" + std::string(path) + "\". route entry not found.";
}

// ---- the route table --------------------------------------------------------------------------
//
// Every endpoint is reached through one row: (path shape, verb) -> (endpoint, the token operation
// decided, what it does to state, the KMS actions of the key behind the transit key). A shape's
// segments are literals or placeholders: {name} is the transit key (the only source of a key name),
// {arg} and {arg2} the endpoint's other path parameters. A path whose shape matches but whose verb
// has no row is 405; a path no shape matches is 404 (or 501 for Vault endpoints not implemented).

// Operations of routes that act on no key: any live token ("token-self"), administrator tokens
// ("administrator"), or nobody's token ("public").
constexpr std::string_view kOpPublic = "public";
constexpr std::string_view kOpTokenSelf = "token-self";
constexpr std::string_view kOpAdministrator = "administrator";

enum class Effect {
  kReadOnly,      // reads, or cryptography with an existing key: no intent record
  kChangesState,  // commits a change: the intent record is written before the endpoint runs
  kUpsert,        // encrypt: changes state when it creates its missing key
};

// The AWS actions a key policy's explicit Deny is matched against (docs/vault-door.md).
enum class Actions {
  kNone,
  kEncrypt,
  kDecrypt,
  kReEncrypt,
  kDataKey,
  kMac,
  kSign,
  kVerify,
  kRead,
  kManage
};

using Endpoint = Reply (*)(const internal::Call&, const internal::Decision&);

// The request members a route reads (the body of a write), Vault's path fields, with their types.
// As Vault's framework (FieldData.Validate) does before a handler runs, a member present with a
// value its type cannot take refuses the whole request (400, FieldReader's message) before the
// endpoint runs, even when the endpoint would not have looked at it in this request (encrypt's
// `type` on an existing key, a body `algorithm` the path overrides). A member outside the list is
// ignored, and a success answer says so with Vault's warning "Endpoint ignored these unrecognized
// parameters: [...]". Members of batch_input items are the items' business (RunItems).
enum class MemberType {
  kString,    // TypeString: a string, a number or a boolean
  kSecret,    // base64 of caller data (plaintext, input): a string
  kInt,       // TypeInt
  kBool,      // TypeBool
  kDuration,  // TypeDurationSecond
  kSlice,     // batch_input: an array
  kEndpoint,  // checked by the endpoint alone: refused by name, or sys/unseal's own decoding
};
struct Member {
  std::string_view name;
  MemberType type;
};
using Members = std::span<const Member>;
using enum MemberType;
constexpr Member kCreateMembers[] = {
    {"type", kString},
    {"derived", kBool},
    {"convergent_encryption", kBool},
    {"exportable", kBool},
    {"allow_plaintext_backup", kBool},
    {"auto_rotate_period", kDuration},
    {"key_size", kInt},
    // Refused by name (path_keys.cc): recognised, so never "ignored".
    {"managed_key_name", kEndpoint},
    {"managed_key_id", kEndpoint},
    {"parameter_set", kEndpoint},
    {"hybrid_key_type_pqc", kEndpoint},
    {"hybrid_key_type_ec", kEndpoint},
    {"external_key_ref", kEndpoint}};
constexpr Member kConfigMembers[] = {
    {"min_decryption_version", kInt},  {"min_encryption_version", kInt},
    {"deletion_allowed", kBool},       {"exportable", kBool},
    {"allow_plaintext_backup", kBool}, {"auto_rotate_period", kDuration}};
constexpr Member kRotateMembers[] = {{"managed_key_name", kEndpoint},
                                     {"managed_key_id", kEndpoint},
                                     {"external_key_ref", kEndpoint}};
constexpr Member kEncryptMembers[] = {{"plaintext", kSecret},
                                      {"context", kString},
                                      {"associated_data", kString},
                                      {"key_version", kInt},
                                      {"nonce", kString},
                                      {"type", kString},
                                      {"convergent_encryption", kBool},
                                      {"padding_scheme", kString},
                                      {"batch_input", kSlice},
                                      {"partial_failure_response_code", kInt}};
constexpr Member kDecryptMembers[] = {
    {"ciphertext", kString}, {"context", kString},    {"associated_data", kString},
    {"nonce", kString},      {"batch_input", kSlice}, {"partial_failure_response_code", kInt}};
constexpr Member kRewrapMembers[] = {{"ciphertext", kString},
                                     {"context", kString},
                                     {"associated_data", kString},
                                     {"key_version", kInt},
                                     {"nonce", kString},
                                     {"batch_input", kSlice},
                                     {"partial_failure_response_code", kInt}};
constexpr Member kDatakeyMembers[] = {{"nonce", kString},
                                      {"bits", kInt},
                                      {"context", kString},
                                      {"associated_data", kString},
                                      {"key_version", kInt}};
constexpr Member kHmacMembers[] = {{"input", kSecret},
                                   {"algorithm", kString},
                                   {"key_version", kInt},
                                   {"batch_input", kSlice},
                                   {"partial_failure_response_code", kInt}};
constexpr Member kSignMembers[] = {{"input", kSecret},
                                   {"hash_algorithm", kString},
                                   {"algorithm", kString},
                                   {"prehashed", kBool},
                                   {"signature_algorithm", kString},
                                   {"marshaling_algorithm", kString},
                                   {"salt_length", kString},
                                   {"key_version", kInt},
                                   {"batch_input", kSlice},
                                   {"partial_failure_response_code", kInt}};
// Vault's verify takes no key_version: the signature names its version.
constexpr Member kVerifyMembers[] = {{"input", kSecret},
                                     {"signature", kString},
                                     {"hmac", kString},
                                     {"hash_algorithm", kString},
                                     {"algorithm", kString},
                                     {"prehashed", kBool},
                                     {"signature_algorithm", kString},
                                     {"marshaling_algorithm", kString},
                                     {"salt_length", kString},
                                     {"batch_input", kSlice},
                                     {"partial_failure_response_code", kInt}};
constexpr Member kRandomMembers[] = {{"bytes", kInt}, {"format", kString}, {"source", kString}};
constexpr Member kHashMembers[] = {{"input", kSecret}, {"algorithm", kString}, {"format", kString}};
constexpr Member kRenewMembers[] = {{"increment", kDuration}};
// sys/unseal decodes its body itself (path_sys.cc), as Vault's handler does.
constexpr Member kUnsealMembers[] = {
    {"key", kEndpoint}, {"reset", kEndpoint}, {"migrate", kEndpoint}};

struct Route {
  std::string_view shape;
  Verb verb;
  Endpoint endpoint;
  std::string_view operation;
  Effect effect;
  Actions actions;
  Members members = {};
  // Whether a success warns of ignored members: Vault's framework paths do (transit, auth/token),
  // its sys/ handlers do not.
  bool warns_ignored = true;
};

// Paths outside any mount.
constexpr Route kFixedRoutes[] = {
    {"sys/health", Verb::kRead, internal::PathSysHealth, kOpPublic, Effect::kReadOnly,
     Actions::kNone, {}, false},
    {"sys/health", Verb::kHead, internal::PathSysHealth, kOpPublic, Effect::kReadOnly,
     Actions::kNone, {}, false},
    {"sys/seal-status", Verb::kRead, internal::PathSysSealStatus, kOpPublic, Effect::kReadOnly,
     Actions::kNone, {}, false},
    // Unauthenticated as in Vault; it hands a custodian share to the appliance (config.unseal),
    // which keeps its own record of shares. The sealed appliance has no audit log yet.
    {"sys/unseal", Verb::kWrite, internal::PathSysUnseal, kOpPublic, Effect::kReadOnly,
     Actions::kNone, kUnsealMembers, false},
    {"sys/seal", Verb::kWrite, internal::PathSysSeal, kOpAdministrator, Effect::kChangesState,
     Actions::kNone, {}, false},
    {"auth/token/lookup-self", Verb::kRead, internal::PathTokenLookupSelf, kOpTokenSelf,
     Effect::kReadOnly, Actions::kNone},
    {"auth/token/lookup-self", Verb::kWrite, internal::PathTokenLookupSelf, kOpTokenSelf,
     Effect::kReadOnly, Actions::kNone},
    {"auth/token/renew-self", Verb::kWrite, internal::PathTokenRenewSelf, kOpTokenSelf,
     Effect::kChangesState, Actions::kNone, kRenewMembers},
    {"auth/token/revoke-self", Verb::kWrite, internal::PathTokenRevokeSelf, kOpTokenSelf,
     Effect::kChangesState, Actions::kNone},
};

// Paths after a transit mount.
constexpr Route kTransitRoutes[] = {
    {"keys", Verb::kList, internal::PathKeysList, "read", Effect::kReadOnly, Actions::kNone},
    {"keys/{name}", Verb::kRead, internal::PathKeysRead, "read", Effect::kReadOnly, Actions::kRead},
    {"keys/{name}", Verb::kWrite, internal::PathKeysCreate, "manage", Effect::kChangesState,
     Actions::kManage, kCreateMembers},
    {"keys/{name}", Verb::kDelete, internal::PathKeysDelete, "manage", Effect::kChangesState,
     Actions::kManage},
    {"keys/{name}/config", Verb::kWrite, internal::PathConfig, "manage", Effect::kChangesState,
     Actions::kManage, kConfigMembers},
    {"keys/{name}/rotate", Verb::kWrite, internal::PathRotate, "manage", Effect::kChangesState,
     Actions::kManage, kRotateMembers},
    {"encrypt/{name}", Verb::kWrite, internal::PathEncrypt, "encrypt", Effect::kUpsert,
     Actions::kEncrypt, kEncryptMembers},
    {"decrypt/{name}", Verb::kWrite, internal::PathDecrypt, "decrypt", Effect::kReadOnly,
     Actions::kDecrypt, kDecryptMembers},
    {"rewrap/{name}", Verb::kWrite, internal::PathRewrap, "rewrap", Effect::kReadOnly,
     Actions::kReEncrypt, kRewrapMembers},
    {"datakey/{arg}/{name}", Verb::kWrite, internal::PathDatakey, "datakey", Effect::kReadOnly,
     Actions::kDataKey, kDatakeyMembers},
    {"hmac/{name}", Verb::kWrite, internal::PathHmac, "hmac", Effect::kReadOnly, Actions::kMac,
     kHmacMembers},
    {"hmac/{name}/{arg}", Verb::kWrite, internal::PathHmac, "hmac", Effect::kReadOnly,
     Actions::kMac, kHmacMembers},
    {"sign/{name}", Verb::kWrite, internal::PathSign, "sign", Effect::kReadOnly, Actions::kSign,
     kSignMembers},
    {"sign/{name}/{arg}", Verb::kWrite, internal::PathSign, "sign", Effect::kReadOnly,
     Actions::kSign, kSignMembers},
    {"verify/{name}", Verb::kWrite, internal::PathVerify, "verify", Effect::kReadOnly,
     Actions::kVerify, kVerifyMembers},
    {"verify/{name}/{arg}", Verb::kWrite, internal::PathVerify, "verify", Effect::kReadOnly,
     Actions::kVerify, kVerifyMembers},
    {"random", Verb::kWrite, internal::PathRandom, "random", Effect::kReadOnly, Actions::kNone,
     kRandomMembers},
    {"random/{arg}", Verb::kWrite, internal::PathRandom, "random", Effect::kReadOnly,
     Actions::kNone, kRandomMembers},
    {"random/{arg}/{arg2}", Verb::kWrite, internal::PathRandom, "random", Effect::kReadOnly,
     Actions::kNone, kRandomMembers},
    {"hash", Verb::kWrite, internal::PathHash, "hash", Effect::kReadOnly, Actions::kNone,
     kHashMembers},
    {"hash/{arg}", Verb::kWrite, internal::PathHash, "hash", Effect::kReadOnly, Actions::kNone,
     kHashMembers},
};

std::string_view VerbName(Verb verb) {
  switch (verb) {
    case Verb::kRead:
      return "read";
    case Verb::kWrite:
      return "write";
    case Verb::kList:
      return "list";
    case Verb::kDelete:
      return "delete";
    case Verb::kHead:
      return "head";
  }
  return "";
}

bool Declares(const Route& route, std::string_view name) {
  return std::any_of(route.members.begin(), route.members.end(),
                     [&](const Member& m) { return m.name == name; });
}

// Vault's FieldData.Validate: the first member of the body whose value its type cannot take.
std::optional<std::string> InvalidMember(const Route& route, const json::object& body) {
  internal::FieldReader f(body);
  for (const Member& m : route.members) {
    const json::value* v = body.if_contains(m.name);
    if (v == nullptr || v->is_null()) continue;
    switch (m.type) {
      case MemberType::kString:
        (void)f.String(m.name);
        break;
      case MemberType::kSecret:
        if (!v->is_string())
          f.Fail("field \"" + std::string(m.name) + "\" must be a base64 string");
        break;
      case MemberType::kInt:
        (void)f.Int(m.name);
        break;
      case MemberType::kBool:
        (void)f.Bool(m.name);
        break;
      case MemberType::kDuration:
        (void)f.DurationMs(m.name);
        break;
      case MemberType::kSlice:
        if (!v->is_array()) f.Fail("failed to parse batch input: expected an array");
        break;
      case MemberType::kEndpoint:
        break;
    }
    if (f.error()) return f.error();
  }
  return std::nullopt;
}

// Vault's warning for members outside the route's (sdk/framework/backend.go): sorted, as Go's
// "%v" prints a []string.
std::optional<std::string> IgnoredMembersWarning(const Route& route, const json::object& body) {
  if (!route.warns_ignored) return std::nullopt;
  std::vector<std::string_view> ignored;
  for (const auto& member : body) {
    const std::string_view key = member.key();
    if (!Declares(route, key)) ignored.push_back(key);
  }
  if (ignored.empty()) return std::nullopt;
  std::sort(ignored.begin(), ignored.end());
  std::string warning = "Endpoint ignored these unrecognized parameters: [";
  for (std::size_t i = 0; i < ignored.size(); ++i) {
    if (i != 0) warning += ' ';
    warning += ignored[i];
  }
  return warning + "]";
}

// The path parameters a shape matched.
struct PathParams {
  std::string_view name;
  std::string_view arg;
  std::string_view arg2;
};

bool ShapeMatches(std::string_view shape, const std::vector<std::string_view>& segments,
                  PathParams& params) {
  const auto parts = Split(shape);
  if (parts.size() != segments.size()) return false;
  PathParams p;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    if (part == "{name}") {
      p.name = segments[i];
    } else if (part == "{arg}") {
      p.arg = segments[i];
    } else if (part == "{arg2}") {
      p.arg2 = segments[i];
    } else if (part != segments[i]) {
      return false;
    }
  }
  params = p;
  return true;
}

// The rows of `table` whose shape matches: none, or every verb of one shape.
template <std::size_t N>
std::vector<const Route*> MatchShape(const Route (&table)[N],
                                     const std::vector<std::string_view>& segments,
                                     PathParams& params) {
  std::vector<const Route*> rows;
  for (const Route& route : table) {
    if (!rows.empty() && route.shape != rows.front()->shape) continue;
    if (ShapeMatches(route.shape, segments, params)) rows.push_back(&route);
  }
  return rows;
}

// AWS's key-administration actions on an existing key: a token's "manage" is a key administrator's
// right, so an explicit Deny of any of them to the Vault caller refuses every "manage" request on
// the key (create of an existing name, config, rotate, delete).
constexpr std::string_view kManageActions[] = {
    "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",  "kms:RotateKeyOnDemand",
    "kms:EnableKeyRotation",   "kms:DisableKeyRotation", "kms:UpdateKeyDescription",
    "kms:PutKeyPolicy",        "kms:EnableKey",          "kms:DisableKey",
    "kms:CreateAlias",         "kms:UpdateAlias",        "kms:DeleteAlias",
    "kms:TagResource",         "kms:UntagResource",
};

// The KMS actions a Vault operation on `key` performs (docs/vault-door.md's table).
std::vector<std::string_view> KmsActions(Actions actions,
                                         const firmware::transit::TransitKeyRef& key,
                                         std::string_view arg) {
  switch (actions) {
    case Actions::kNone:
      return {};
    case Actions::kEncrypt:
      return {"kms:Encrypt"};
    case Actions::kDecrypt:
      return {"kms:Decrypt"};
    case Actions::kReEncrypt:
      // Vault's rewrap decrypts and encrypts again under the same key: both halves of ReEncrypt.
      return {"kms:ReEncryptFrom", "kms:ReEncryptTo"};
    case Actions::kDataKey:
      // The wrapped variant never shows the plaintext key, as GenerateDataKeyWithoutPlaintext.
      if (arg == "wrapped") return {"kms:GenerateDataKeyWithoutPlaintext"};
      return {"kms:GenerateDataKey"};
    case Actions::kMac:
      return {"kms:GenerateMac"};
    case Actions::kSign:
      return {"kms:Sign"};
    case Actions::kVerify:
      // verify checks HMACs on hmac keys and signatures on the others.
      if (key.key_usage == firmware::KeyUsage::kGenerateVerifyMac) return {"kms:VerifyMac"};
      return {"kms:Verify"};
    case Actions::kRead:
      // A read of an asymmetric key answers its public keys.
      if (key.key_usage == firmware::KeyUsage::kSignVerify) {
        return {"kms:DescribeKey", "kms:GetPublicKey"};
      }
      return {"kms:DescribeKey"};
    case Actions::kManage:
      return {std::begin(kManageActions), std::end(kManageActions)};
  }
  return {};
}

// Whether a token's scope allows `operation` (for token-self and administrator, what they mean).
bool ScopeAllows(const firmware::VaultTokenInfo& token, std::string_view operation,
                 std::string_view mount, std::string_view key_name) {
  if (operation == kOpTokenSelf) return true;
  if (operation == kOpAdministrator) return token.administrator;
  return firmware::VaultTokenRegistry::Permits(token, operation, mount, key_name).ok();
}

std::string_view AllowBasis(const firmware::VaultTokenInfo& token) {
  return token.administrator ? internal::decision::kAllowAdministrator
                             : internal::decision::kAllowTokenScope;
}

// The Vault caller as key policies see it (docs/vault-door.md): a principal of the appliance's
// account under the path "vault-token/", named by the token's display name, so "*" and the
// account root match it, a Principal can name it, and aws:PrincipalArn "...:user/vault-token/*"
// matches every Vault caller. No IAM user can have this ARN (user names hold no '/').
firmware::authz::Caller VaultCaller(const firmware::authz::AccessControl& access,
                                    const firmware::VaultTokenInfo& token) {
  firmware::authz::Caller caller;
  caller.principal_arn =
      "arn:aws:iam::" + access.config().account_id + ":user/vault-token/" + token.display_name;
  caller.user_name = token.display_name;
  caller.administrator = token.administrator;
  return caller;
}

}  // namespace

namespace internal {

// The only code that makes Decisions (endpoint.h): a request reaches its endpoint with one, or is
// refused with the reply and the decision the audit record carries.
class Decider {
 public:
  struct Refusal {
    Reply reply;
    std::string_view basis;
    std::string key_arn;  // the key the refused request named, when it exists
  };

  static Decision Public(const Route& route) {
    Decision d;
    d.operation_ = std::string(route.operation);
    d.basis_ = std::string(decision::kAllowPublic);
    return d;
  }

  // Decides `route` for `token` on `mount` (and the key `params.name` of `keyring`, when the route
  // names one): the key's key-service key (for the audit record of any answer, refusals included),
  // the token's scope, an explicit Deny in that key's policy, then encrypt's upsert.
  static std::expected<Decision, Refusal> Decide(const Route& route,
                                                 const firmware::VaultTokenInfo& token,
                                                 std::string_view mount, const PathParams& params,
                                                 firmware::transit::TransitKeyring* keyring,
                                                 firmware::authz::AccessControl* access) {
    Decision d;
    d.operation_ = std::string(route.operation);
    d.mount_ = std::string(mount);
    d.key_name_ = std::string(params.name);
    d.token_ = token;
    const bool keyed = !params.name.empty() && keyring != nullptr;
    std::optional<firmware::transit::TransitKeyRef> key;
    std::optional<Status> malformed_name;
    if (keyed) {
      auto located = keyring->Locate(params.name);
      if (located) {
        key = std::move(*located);
        d.key_exists_ = true;
        d.key_id_ = key->key_id;
        d.key_arn_ = key->arn;
      } else if (located.error().code() == StatusCode::kInvalidArgument) {
        malformed_name = located.error();
      } else if (located.error().code() != StatusCode::kNotFound) {
        return std::unexpected(
            Refusal{StatusReply(located.error()), decision::kRefusedInternal, {}});
      }
    }
    // The scope before the name's syntax, as Vault's ACLs come before its handlers: a caller
    // whose token does not reach the name is refused the same way whatever the name looks like.
    if (!ScopeAllows(token, route.operation, mount, params.name)) {
      return std::unexpected(
          Refusal{ErrorReply(403, "permission denied"), decision::kDenyTokenScope, d.key_arn_});
    }
    if (malformed_name) {
      return std::unexpected(
          Refusal{StatusReply(*malformed_name), decision::kRefusedInvalidRequest, {}});
    }
    d.basis_ = std::string(AllowBasis(token));
    if (!keyed) return d;
    if (!key) {
      // A missing key has no key policy; the endpoint answers Vault's "not found" (or upserts).
      if (route.effect == Effect::kUpsert) {
        d.create_allowed_ = ScopeAllows(token, "manage", mount, params.name);
        d.create_basis_ =
            std::string(d.create_allowed_ ? AllowBasis(token) : decision::kDenyTokenScope);
      }
      return d;
    }
    if (access == nullptr) return d;
    const firmware::authz::Caller caller = VaultCaller(*access, token);
    const firmware::authz::KeyRef ref{key->key_id, key->arn};
    firmware::authz::ConditionValues conditions;
    conditions.Set("kms:RequestAlias", key->alias);
    conditions.Set("kms:KeySpec", std::string(firmware::KeySpecName(key->key_spec)));
    conditions.Set("kms:KeyUsage", std::string(firmware::KeyUsageName(key->key_usage)));
    conditions.Set("kms:KeyOrigin", "AWS_KMS");
    for (const std::string_view action : KmsActions(route.actions, *key, params.arg)) {
      auto denied = access->ExplicitlyDenies(caller, action, ref, conditions);
      if (!denied) {
        return std::unexpected(
            Refusal{StatusReply(denied.error()), decision::kRefusedInternal, d.key_arn_});
      }
      if (*denied) {
        return std::unexpected(
            Refusal{ErrorReply(403, "permission denied"), decision::kDenyExplicit, d.key_arn_});
      }
    }
    return d;
  }

  // Whether the request commits a change, so its intent must be recorded before the endpoint runs.
  static bool ChangesState(const Route& route, const Decision& d) {
    if (route.effect == Effect::kChangesState) return true;
    return route.effect == Effect::kUpsert && !d.key_exists_ && d.create_allowed_;
  }
};

}  // namespace internal

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
                                       internal::AuditNote& note) const {
  namespace decision = internal::decision;
  // Every answer below names its decision (or the stage that refused the request) for the audit
  // record: there is no way out of here without one.
  auto answer = [&](Reply reply, std::string_view basis) {
    note.decision = std::string(basis);
    return Render(std::move(reply), request_id);
  };

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
    return answer(internal::EmptyErrorReply(405), decision::kRefusedInvalidRequest);
  }

  std::string_view path = request.Path();
  if (!path.starts_with("/v1/")) {
    return answer(internal::ErrorReply(404, NoRoute(path)), decision::kRefusedNotFound);
  }
  path.remove_prefix(4);
  // A LIST from the CLI ends in '/'; Vault routes "keys" and "keys/" alike.
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

  // The route: a path outside the mounts, or one under the longest configured mount.
  PathParams params;
  std::vector<const Route*> rows;
  firmware::transit::TransitKeyring* keyring = nullptr;
  std::string_view mount;
  std::optional<Reply> unimplemented;
  const auto segments = Split(path);
  if (std::none_of(segments.begin(), segments.end(), [](auto s) { return s.empty(); })) {
    rows = MatchShape(kFixedRoutes, segments, params);
    for (const auto& [mount_path, mount_keyring] : mounts_) {
      if (!rows.empty()) break;
      if (!path.starts_with(mount_path)) continue;
      if (path.size() != mount_path.size() && path[mount_path.size()] != '/') continue;
      if (path.size() <= mount_path.size() + 1) break;  // the mount itself: no endpoint
      const auto rest = Split(path.substr(mount_path.size() + 1));
      unimplemented = UnimplementedTransit(rest);
      if (!unimplemented) rows = MatchShape(kTransitRoutes, rest, params);
      keyring = mount_keyring;
      mount = mount_path;
      break;
    }
  }
  const Route* route = nullptr;
  for (const Route* row : rows) {
    if (row->verb == verb) route = row;
  }

  json::object body;
  // Endpoints read the body by reference; its plaintext members are wiped on every way out.
  struct Wiper {
    json::object& o;
    ~Wiper() { internal::WipeSensitiveMembers(o); }
  } wiper{body};
  // The body of a write: a JSON object, {} when empty. Ignored on GET, LIST and DELETE, as Vault.
  auto parse_body = [&]() -> std::optional<Reply> {
    if (verb != Verb::kWrite || request.body.empty()) return std::nullopt;
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec || !parsed.is_object()) {
      return internal::ErrorReply(
          400, "failed to parse JSON input: " +
                   (ec ? ec.message() : std::string("the body must be a JSON object")));
    }
    body = std::move(parsed.get_object());
    return std::nullopt;
  };

  // Unauthenticated, and answered sealed too: load balancers and `vault status` poll them.
  if (!rows.empty() && rows.front()->operation == kOpPublic) {
    // No token here, so no lookup before the 405 either.
    if (route == nullptr) {
      return answer(internal::ErrorReply(405, "unsupported operation"),
                    decision::kRefusedInvalidRequest);
    }
    if (auto bad = parse_body()) return answer(std::move(*bad), decision::kRefusedInvalidRequest);
    const internal::Decision d = internal::Decider::Public(*route);
    note.decision = std::string(d.basis());
    const internal::Call call{verb,  {},         tokens_,     nullptr, body,
                              query, params.arg, params.arg2, config_, now_ms};
    return Render(route->endpoint(call, d), request_id);
  }

  const VaultHealth health = config_.health ? config_.health() : VaultHealth{};
  if (tokens_ == nullptr || !health.initialized || health.sealed) {
    return answer(internal::ErrorReply(503, "Vault is sealed"), decision::kRefusedSealed);
  }

  // The token before the path is even looked at (as Vault): a caller without a live token learns
  // nothing about routes, methods or bodies.
  const std::string_view token = PresentedToken(request);
  if (token.empty()) {
    return answer(internal::ErrorReply(403, "permission denied"),
                  decision::kRefusedUnauthenticated);
  }
  auto info = tokens_->Lookup(token);
  note.looked_up = true;
  if (!info) {
    const bool denied = info.error().code() == StatusCode::kPermissionDenied;
    return answer(internal::StatusReply(info.error()),
                  denied ? decision::kRefusedUnauthenticated : decision::kRefusedInternal);
  }
  note.accessor = info->accessor;
  note.display_name = info->display_name;

  if (rows.empty()) {
    // As Vault's ACLs, which refuse a path no policy of the token names before any handler is
    // looked for: no scope of a token that is not an administrator covers a path without a route,
    // so it learns nothing of which paths exist or are implemented.
    if (!info->administrator) {
      return answer(internal::ErrorReply(403, "permission denied"), decision::kDenyTokenScope);
    }
    if (unimplemented) return answer(std::move(*unimplemented), decision::kRefusedNotFound);
    if (IsVaultTokenPath(path)) {
      return answer(
          NotImplemented(
              path, ": tokens are created, looked up and revoked by operators (kmsctl, admin API)"),
          decision::kRefusedNotFound);
    }
    return answer(internal::ErrorReply(404, NoRoute(path)), decision::kRefusedNotFound);
  }
  if (route == nullptr) {
    return answer(internal::ErrorReply(405, "unsupported operation"),
                  decision::kRefusedInvalidRequest);
  }
  if (auto bad = parse_body()) return answer(std::move(*bad), decision::kRefusedInvalidRequest);

  auto decided = internal::Decider::Decide(*route, *info, mount, params, keyring, config_.access);
  if (!decided) {
    note.key_arn = std::move(decided.error().key_arn);
    return answer(std::move(decided.error().reply), decided.error().basis);
  }
  const internal::Decision& d = *decided;
  note.decision = std::string(d.basis());
  note.key_arn = d.key_arn();
  // The members' types, after the decision (a caller without rights learns nothing of the body's
  // rules) and before anything is recorded or changed, as Vault's framework.
  if (auto invalid = InvalidMember(*route, body)) {
    return Render(internal::ErrorReply(400, std::move(*invalid)), request_id);
  }

  // A change is committed only once its intent is on record: a failing audit log then refuses
  // the request before anything changed, and a final record that fails still leaves the intent.
  if (internal::Decider::ChangesState(*route, d) && config_.observers.audit != nullptr &&
      !Audit(request, request_id, note, "started", 0).ok()) {
    return Render(internal::ErrorReply(500, "internal error: the audit log cannot be written"),
                  request_id);
  }

  const internal::Call call{verb,  token,      tokens_,     keyring, body,
                            query, params.arg, params.arg2, config_, now_ms};
  Reply reply = route->endpoint(call, d);
  note.decision = std::string(d.audit_basis());
  // An answer in the envelope (a success, or a batch whose items failed) names the members it
  // ignored, after the endpoint's own warnings, as Vault does; an error answer carries none.
  const bool envelope = !reply.bare && !reply.no_body && reply.status != 204 &&
                        (reply.status < 400 || reply.data.has_value());
  if (envelope) {
    if (auto warning = IgnoredMembersWarning(*route, body)) {
      reply.warnings.push_back(std::move(*warning));
    }
  }
  // A key this request created (keys/<name> write, encrypt's upsert): its ARN for the record.
  if (note.key_arn.empty() && !d.key_name().empty() && route->effect != Effect::kReadOnly &&
      reply.status < 300) {
    if (auto created = keyring->Locate(d.key_name())) note.key_arn = created->arn;
  }
  return Render(std::move(reply), request_id);
}

Status VaultDoor::Audit(const http::HttpRequest& request, std::string_view request_id,
                        const internal::AuditNote& note, std::string_view outcome,
                        unsigned status) const {
  // Who called: the token's accessor and display name, never the token.
  const std::string principal =
      note.accessor.empty() ? std::string() : "vault-token:" + note.display_name;
  http::AuditedRequest record;
  record.door = "vault";
  record.operation = MetricOperation(request.Path());
  record.request_id = request_id;
  record.principal = principal;
  record.credential_id = note.accessor;
  record.source_address = request.remote_address;
  record.key_arn = note.key_arn;
  record.outcome = outcome;
  record.status = status;
  record.decision = note.decision;
  return config_.observers.audit->Record(record);
}

std::vector<VaultRouteInfo> VaultDoor::Routes() {
  std::vector<VaultRouteInfo> out;
  auto add = [&](const Route& r, bool under_mount) {
    std::vector<std::string_view> members;
    for (const Member& m : r.members) members.push_back(m.name);
    out.push_back({r.shape, under_mount, VerbName(r.verb), r.operation, std::move(members)});
  };
  for (const Route& r : kFixedRoutes) add(r, false);
  for (const Route& r : kTransitRoutes) add(r, true);
  return out;
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
  internal::AuditNote note;
  try {
    request_id = config_.request_id ? config_.request_id() : aws::NewRequestId();
    static const firmware::SystemClock kSystemClock;
    const firmware::Clock& clock = config_.clock ? *config_.clock : kSystemClock;
    if (config_.observers.audit != nullptr && !config_.observers.audit->Ready()) {
      // The audit log failed its last write: perform nothing it could not record.
      response = Render(
          internal::ErrorReply(500, "internal error: the audit log cannot be written"), request_id);
      note.decision = std::string(internal::decision::kRefusedAudit);
    } else {
      response = Dispatch(request, request_id, clock.NowMs(), note);
    }
  } catch (...) {
    // Boundary catch (docs/conventions.md "Errors"): nothing escapes to the server.
    response = Render(internal::ErrorReply(500, "internal error"), request_id);
    if (note.decision.empty()) note.decision = std::string(internal::decision::kRefusedInternal);
  }
  bool ok = response.status >= 200 && response.status < 300;
  std::string outcome = ok ? std::string("ok") : std::to_string(response.status);
  if (config_.observers.audit != nullptr) {
    // Only answers that never looked the token up (sys/health with a token, a refusal while the
    // log is failing) look it up here, so every answer names its caller when it had a live token,
    // at one store read per request.
    if (!note.looked_up && tokens_ != nullptr) {
      if (const std::string token(PresentedToken(request)); !token.empty()) {
        if (auto info = tokens_->Lookup(token)) {
          note.accessor = info->accessor;
          note.display_name = info->display_name;
        }
      }
    }
    // The contract: never an empty decision (every path above names one; this is the backstop).
    if (note.decision.empty()) note.decision = std::string(internal::decision::kRefusedInternal);
    if (!Audit(request, request_id, note, outcome, response.status).ok()) {
      // No record, no answer (fail closed), as Vault refuses requests it cannot audit.
      WipeString(response.body);
      response = Render(
          internal::ErrorReply(500, "internal error: the audit log cannot be written"), request_id);
      ok = false;
      outcome = "500";
    }
  }
  recorder_.Record({"vault", MetricOperation(request.Path()), outcome, response.status, request_id,
                    request.remote_address, std::chrono::steady_clock::now() - started});
  return response;
}

}  // namespace kms::api::vault
