// What the Vault door's endpoint files (api/vault/path_*.cc) share, and nothing outside api/vault/
// includes: the parsed call an endpoint receives, the reply it returns, a typed reader for Vault's
// loosely typed request fields, the one table from kms::Status to Vault's HTTP status, and the
// batch runner of reference/vault.md §1.5 "Batch semantics".
//
// An endpoint is a plain function `Reply F(const Call&)`. The door (vault_door.cc) has already
// parsed the path, the verb, the JSON body and the presented token (but authorized nothing: each
// endpoint calls Authorize for its own operation and key, because only it knows them). Endpoints
// never throw on purpose; the door catches at its boundary.
//
// Fields: Vault's framework converts weakly (TypeInt accepts 5 and "5", TypeBool accepts true and
// "true", TypeDurationSecond accepts 3600 and "1h"); OpenBao's client sends key_version as a
// string, so `FieldReader` converts the same way. It records the first error (a 400 message) and
// keeps returning defaults, so an endpoint reads straight down and checks `error()` once.
//
// Secrets: base64 fields that carry plaintext (plaintext, input) decode into SecretBytes; the door
// wipes the JSON copies of such members in the request and in the reply after serialising.
//
// Thread-safety: a Call and a FieldReader belong to one request; the functions are pure.
#ifndef KMS_API_VAULT_INTERNAL_ENDPOINT_H_
#define KMS_API_VAULT_INTERNAL_ENDPOINT_H_

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"

namespace kms::api::vault {
struct VaultDoorConfig;
}

namespace kms::api::vault::internal {

namespace json = boost::json;

// Vault's logical operations (PUT and POST are both kWrite; GET ?list=true and LIST are kList).
enum class Verb { kRead, kWrite, kList, kDelete, kHead };

// The token a request presented, as the endpoint's lookup found it: for the audit record, so the
// door does not read the token a second time per request. Never holds the token itself.
struct TokenSeen {
  bool looked_up = false;  // a lookup ran (and failed when accessor is empty)
  std::string accessor;
  std::string display_name;
};

struct Call {
  Verb verb = Verb::kRead;
  std::string_view
      token;  // as presented; empty when none (never logged or echoed, except renew-self)
  firmware::VaultTokenRegistry* tokens;  // null only for sys/ paths of a sealed door
  firmware::transit::TransitKeyring* keyring = nullptr;  // the mount's; null for auth/ and sys/
  const json::object& body;                              // {} for an empty body
  std::string_view query;                                // raw, without '?'
  // Path parameters after the endpoint's fixed part (e.g. hmac/<name>/<algorithm>: name, arg).
  std::string_view name;
  std::string_view arg;
  std::string_view arg2;
  const VaultDoorConfig& config;
  std::int64_t now_ms = 0;
  TokenSeen* seen = nullptr;  // filled by LookupToken; null = nobody asks
};

struct Reply {
  unsigned status = 200;
  // Success: `data` (null when absent) and `auth` (null when absent) in the envelope.
  std::optional<json::object> data;
  std::optional<json::object> auth;
  std::vector<std::string> warnings;
  std::string mount_type = "transit";
  // Error: status >= 400 and these messages in {"errors": [...]}.
  std::vector<std::string> errors;
  // sys/health and sys/seal-status answer a bare object, not the envelope.
  std::optional<json::object> bare;
  // HEAD: the status alone.
  bool no_body = false;
};

Reply ErrorReply(unsigned status, std::string message);
Reply EmptyErrorReply(unsigned status);  // {"errors":[]}: Vault's 404 for a missing item
Reply NoContent();                       // 204
Reply DataReply(json::object data);
// 405 "unsupported operation" when the call's verb is not one of `allowed` (403 instead when the
// token is not live, so a caller without one learns nothing), else nullopt.
std::optional<Reply> RequireVerb(const Call& call, std::initializer_list<Verb> allowed);
// Writes only (PUT/POST): the verbs of every transit crypto endpoint.
inline std::optional<Reply> RequireWrite(const Call& call) {
  return RequireVerb(call, {Verb::kWrite});
}

// The one table (CONVENTIONS.md "Errors") from a Status to the HTTP status Vault gives its class:
// InvalidArgument, FailedPrecondition, AlreadyExists, OutOfRange and NotFound -> 400 (transit
// answers 400 for a missing key on every write), PermissionDenied/Unauthenticated -> 403,
// ResourceExhausted
// -> 429, Unimplemented -> 501, Unavailable -> 503, the rest -> 500.
unsigned HttpStatusFor(const Status& status);
// The message a client sees: the Status's own text for 4xx/501 (the firmware writes Vault's texts);
// "permission denied" for 403; "Vault is sealed" for a sealed appliance; a fixed text for 500 and
// other 503s, so no internal detail leaks (the detail belongs in the log).
std::string ClientMessage(const Status& status);
Reply StatusReply(const Status& status);

// The call's live token (tokens->Lookup), noted in call.seen.
StatusOr<firmware::VaultTokenInfo> LookupToken(const Call& call);
// The call's mount as configured, without leading or trailing '/' ("" for auth/ and sys/ paths).
std::string_view MountOf(const Call& call);
// Authorize `operation` on `key_name` of the call's mount for the call's token; an error Reply
// (403) when refused.
std::optional<Reply> Authorize(const Call& call, std::string_view operation,
                               std::string_view key_name);

class FieldReader {
 public:
  explicit FieldReader(const json::object& fields) : fields_(fields) {}

  bool Has(std::string_view name) const;
  std::optional<std::string> String(std::string_view name);
  // A TypeInt field: a JSON integer, an integral float, or a decimal string ("3").
  std::optional<std::int64_t> Int(std::string_view name);
  // TypeBool: true/false or "true"/"false"/"1"/"0".
  std::optional<bool> Bool(std::string_view name);
  // TypeDurationSecond, in milliseconds: seconds as a number or string, or "90s", "10m", "1h",
  // "1d".
  std::optional<std::int64_t> DurationMs(std::string_view name);
  // Standard base64 (RFC 4648 §4); absent -> empty. A malformed value fails with
  // "failed to base64-decode <name>" and is never echoed.
  Bytes Base64(std::string_view name);
  SecretBytes SecretBase64(std::string_view name);

  const std::optional<std::string>& error() const { return error_; }
  void Fail(std::string message) {
    if (!error_) error_ = std::move(message);
  }

 private:
  const json::value* Find(std::string_view name) const;  // null for absent or JSON null
  const json::object& fields_;
  std::optional<std::string> error_;
};

// One item of a request (the body itself, or an element of batch_input): a JSON result object or a
// Status.
using ItemHandler = std::function<StatusOr<json::object>(const json::object& item)>;

// Runs `handle` on the body, or on each element of `batch_input` when the body has one, with
// Vault's semantics: single -> data is the result, an error is the status's reply; batch -> data is
// {"batch_results": [...]} in order, each result carrying `reference` (echoed, "" when absent) and
// failed items {"error": msg, "reference": r}; the status is 400 if any item failed with a user
// error, else 500 if any failed internally, else 200. `partial_failure_response_code` replaces a
// failure code when at least one item succeeded, if it is a status that may carry the batch body
// (IsBodyStatus); any other value is ignored with Vault's warning ("invalid HTTP response code
// override from partial_failure_response_code, reverting to <code>"). `batch_input` that is not
// an array of objects, or is empty, fails the whole request (400).
Reply RunItems(const json::object& body, bool batch_allowed, const ItemHandler& handle);

// An HTTP status an answer with a body may carry: 200..599 except 204 and 205 (no content
// allowed) and 304 (no content, RFC 9110 §15). 1xx are interim answers, never a final one.
bool IsBodyStatus(std::int64_t code);


// Time texts: RFC 3339 UTC ("2026-01-01T00:00:00Z"), as Vault's creation_time and expire_time.
std::string Rfc3339(std::int64_t epoch_ms);

// A query parameter's value (percent-decoded), or nullopt.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

// keys/<name> read, config and rotate all answer this `data` object.
json::object KeyInfoData(const firmware::transit::TransitKeyInfo& info);

// Members whose JSON copies held plaintext, random bytes or data keys; wiped once serialised.
void WipeSensitiveMembers(json::object& o);

// ---- endpoints (one file each, as Vault's path_*.go) ----
Reply PathKeys(const Call& call);     // LIST keys, keys/<name> GET/write/DELETE
Reply PathConfig(const Call& call);   // keys/<name>/config
Reply PathRotate(const Call& call);   // keys/<name>/rotate
Reply PathEncrypt(const Call& call);  // encrypt/<name>
Reply PathDecrypt(const Call& call);  // decrypt/<name>
Reply PathRewrap(const Call& call);   // rewrap/<name>
Reply PathDatakey(const Call& call);  // datakey/<arg: plaintext|wrapped>/<name>
Reply PathHmac(const Call& call);     // hmac/<name>(/<arg: algorithm>)
Reply PathSign(const Call& call);     // sign/<name>(/<arg: hash>)
Reply PathVerify(const Call& call);   // verify/<name>(/<arg: hash>)
Reply PathRandom(const Call& call);   // random(/<arg>)(/<arg2>)
Reply PathHash(const Call& call);     // hash(/<arg: algorithm>)
Reply PathTokenLookupSelf(const Call& call);
Reply PathTokenRenewSelf(const Call& call);
Reply PathTokenRevokeSelf(const Call& call);
Reply PathSysHealth(const Call& call);
Reply PathSysSealStatus(const Call& call);
Reply PathSysUnseal(const Call& call);
Reply PathSysSeal(const Call& call);

}  // namespace kms::api::vault::internal

#endif  // KMS_API_VAULT_INTERNAL_ENDPOINT_H_
