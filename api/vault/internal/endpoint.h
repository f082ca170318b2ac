// What the Vault door's endpoint files (api/vault/path_*.cc) share, and nothing outside api/vault/
// includes: the parsed call an endpoint receives, the decision that let it run, the reply it
// returns, a typed reader for Vault's loosely typed request fields, the one table from kms::Status
// to Vault's HTTP status, and the batch runner of Vault's batch semantics (docs/vault-door.md).
//
// An endpoint is a plain function `Reply F(const Call&, const Decision&)`, reached only through the
// door's route table (vault_door.cc), which maps (path shape, verb) to (endpoint, token operation,
// where the key name comes from, whether it changes state). Before any endpoint runs the door has
// parsed the path, the verb and the JSON body, looked the token up and decided the route's
// operation on the route's key: the token's scope (mount-aware, firmware/vault_tokens.h) and an
// explicit Deny in the key policy of the key-service key behind the transit key
// (firmware/authz/access_control.h). A Decision can only be made by that deciding code (its
// constructor is private to `Decider`) and only for an allowed request, so holding one is proof
// the request was allowed; an endpoint takes its key from the Decision (`key()`), never from the
// path, and acts on the key-service key decided: the keyring refuses an operation on a name that
// was bound to another key after the decision (firmware/transit_keyring.h, "Bindings").
// Decisions a request needs beyond its main one are made by the door before the work too: encrypt's
// upsert ("manage" on a missing key), rewrap's two KMS actions, and one decision for every item of
// a batch (all items act on the route's one key). Endpoints never throw on purpose; the door
// catches at its boundary.
//
// Fields: Vault's framework converts weakly (TypeInt accepts 5 and "5", TypeBool accepts true and
// "true", TypeDurationSecond accepts 3600 and "1h"); OpenBao's client sends key_version as a
// string, so `FieldReader` converts the same way. It records the first error (a 400 message) and
// keeps returning defaults, so an endpoint reads straight down and checks `error()` once.
//
// Secrets: base64 fields that carry plaintext (plaintext, input) decode into SecretBytes; the door
// wipes the JSON copies of such members in the request and in the reply after serialising.
//
// Thread-safety: a Call, a Decision and a FieldReader belong to one request; the functions are
// pure.
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

// The decision vocabulary of the audit record's `decision` (shared with the AWS door): an allow and
// its basis, a deny and its basis, or the stage where a request was refused before any decision.
namespace decision {
inline constexpr std::string_view kAllowTokenScope = "allow:token-scope";
inline constexpr std::string_view kAllowAdministrator = "allow:administrator";
inline constexpr std::string_view kAllowPublic = "allow:public";
inline constexpr std::string_view kDenyTokenScope = "deny:token-scope";
inline constexpr std::string_view kDenyExplicit = "deny:explicit";
inline constexpr std::string_view kRefusedUnauthenticated = "refused:unauthenticated";
inline constexpr std::string_view kRefusedInvalidRequest = "refused:invalid-request";
inline constexpr std::string_view kRefusedSealed = "refused:sealed";
inline constexpr std::string_view kRefusedAudit = "refused:audit";
inline constexpr std::string_view kRefusedNotFound = "refused:not-found";
// The appliance itself failed (a store or HSM error, a throw) before the decision was complete.
inline constexpr std::string_view kRefusedInternal = "refused:internal";
}  // namespace decision

// What the door learned about a request, for its audit records: the caller (never the token), the
// decision (never empty once answered) and the key-service key acted on.
struct AuditNote {
  bool looked_up = false;  // a token lookup ran (and failed when accessor is empty)
  std::string accessor;
  std::string display_name;
  std::string decision;
  std::string key_arn;  // "" for no key, or a transit key that does not exist
};

class Decider;  // vault_door.cc: the only code that makes Decisions

// The door's decision that a request may run its endpoint.
class Decision {
 public:
  Decision(const Decision&) = delete;
  Decision& operator=(const Decision&) = delete;
  Decision(Decision&&) = default;

  // The token operation decided ("encrypt", "manage", ...; "token-self", "administrator" and
  // "public" for the auth/ and sys/ routes).
  std::string_view operation() const { return operation_; }
  // The transit key decided on ("" for routes on no key: LIST keys, random, hash, auth/, sys/).
  std::string_view key_name() const { return key_name_; }
  // Whether that key existed when decided, and its key-service key then.
  bool key_exists() const { return key_exists_; }
  const std::string& key_arn() const { return key_arn_; }
  // What every keyring call of the endpoint names: the key as decided (its key-service key, or
  // none when the name was unbound). Valid while the Decision lives.
  firmware::transit::KeyBinding key() const {
    return firmware::transit::KeyBinding::Decided(key_name_, key_id_);
  }
  // The live token (null on public routes).
  const firmware::VaultTokenInfo* token() const { return token_ ? &*token_ : nullptr; }
  std::string_view basis() const { return basis_; }

  // encrypt's upsert: whether this request may create its missing key (the token's "manage" on the
  // name, decided before the endpoint ran). Asking records that the request needed it, so the
  // audit record carries that decision.
  bool MayCreateKey() const;
  // LIST keys: whether the token's scope covers `key_name` of this mount for the decided
  // operation (a filter on what is shown; the listing itself was decided).
  bool Covers(std::string_view key_name) const;

  // The decision for the audit record: the create decision when the endpoint needed one that was
  // refused, else `basis()`.
  std::string_view audit_basis() const;

 private:
  friend class Decider;
  Decision() = default;

  std::string operation_;
  std::string mount_;
  std::string key_name_;
  bool key_exists_ = false;
  std::string key_id_;  // "" when the name was unbound
  std::string key_arn_;
  std::optional<firmware::VaultTokenInfo> token_;
  std::string basis_;
  bool create_allowed_ = false;
  std::string create_basis_;
  mutable bool create_asked_ = false;
};

struct Call {
  Verb verb = Verb::kRead;
  // As presented; empty when none. Never logged or echoed, except by lookup-self and renew-self.
  std::string_view token;
  firmware::VaultTokenRegistry* tokens;  // null only for sys/ paths of a sealed door
  firmware::transit::TransitKeyring* keyring = nullptr;  // the mount's; null for auth/ and sys/
  const json::object& body;                              // {} for an empty body
  std::string_view query;                                // raw, without '?'
  // Path parameters other than the key name (e.g. hmac/<name>/<algorithm>: arg). The key name is
  // the Decision's.
  std::string_view arg;
  std::string_view arg2;
  const VaultDoorConfig& config;
  std::int64_t now_ms = 0;
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

// The one table (docs/conventions.md "Errors") from a Status to the HTTP status Vault gives its
// class: InvalidArgument, FailedPrecondition, AlreadyExists, OutOfRange and NotFound -> 400
// (transit answers 400 for a missing key on every write), PermissionDenied/Unauthenticated -> 403,
// ResourceExhausted -> 429, Unimplemented -> 501, Unavailable -> 503, the rest -> 500.
unsigned HttpStatusFor(const Status& status);
// The message a client sees: the Status's own text for 4xx/501 (the firmware writes Vault's texts);
// "permission denied" for 403; "Vault is sealed" for a sealed appliance; a fixed text for 500 and
// other 503s, so no internal detail leaks (the detail belongs in the log).
std::string ClientMessage(const Status& status);
Reply StatusReply(const Status& status);

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

// ---- endpoints (one file each, as Vault's path_*.go), reached only through the door's route
// table with the decision it names ----
Reply PathKeysList(const Call& call, const Decision& d);    // LIST keys (read, no key)
Reply PathKeysRead(const Call& call, const Decision& d);    // GET keys/<name> (read)
Reply PathKeysCreate(const Call& call, const Decision& d);  // write keys/<name> (manage)
Reply PathKeysDelete(const Call& call, const Decision& d);  // DELETE keys/<name> (manage)
Reply PathConfig(const Call& call, const Decision& d);      // keys/<name>/config (manage)
Reply PathRotate(const Call& call, const Decision& d);      // keys/<name>/rotate (manage)
Reply PathEncrypt(const Call& call, const Decision& d);     // encrypt/<name>
Reply PathDecrypt(const Call& call, const Decision& d);     // decrypt/<name>
Reply PathRewrap(const Call& call, const Decision& d);      // rewrap/<name>
Reply PathDatakey(const Call& call, const Decision& d);  // datakey/<arg: plaintext|wrapped>/<name>
Reply PathHmac(const Call& call, const Decision& d);     // hmac/<name>(/<arg: algorithm>)
Reply PathSign(const Call& call, const Decision& d);     // sign/<name>(/<arg: hash>)
Reply PathVerify(const Call& call, const Decision& d);   // verify/<name>(/<arg: hash>)
Reply PathRandom(const Call& call, const Decision& d);   // random(/<arg>)(/<arg2>)
Reply PathHash(const Call& call, const Decision& d);     // hash(/<arg: algorithm>)
Reply PathTokenLookupSelf(const Call& call, const Decision& d);
Reply PathTokenRenewSelf(const Call& call, const Decision& d);
Reply PathTokenRevokeSelf(const Call& call, const Decision& d);
Reply PathSysHealth(const Call& call, const Decision& d);
Reply PathSysSealStatus(const Call& call, const Decision& d);
Reply PathSysUnseal(const Call& call, const Decision& d);
Reply PathSysSeal(const Call& call, const Decision& d);

}  // namespace kms::api::vault::internal

#endif  // KMS_API_VAULT_INTERNAL_ENDPOINT_H_
