// The Vault door's adversarial matrix: every route the door serves, every request member each
// route reads, every hostile shape of each member, sent by a caller without rights and by one with
// them, through VaultDoor::Handle into a real TransitKeyring, VaultTokenRegistry and AccessControl
// over a KeyService on the fake HSM and a SQLite store.
//
// What is generated (all from the table below, `Routes()`):
//  * one RouteSpec per way of calling a door route (method, path, the key it acts on, the token
//    operation it needs, a valid base body, the members it reads at the top level and inside
//    batch_input items, the query parameters it reads, the path arguments it takes);
//  * for every member, the cases of its kind (`CasesFor`): wrong JSON type, null, empty, oversize,
//    malformed (bad base64, a bad "vault:vN:" value, a bad version number, an unknown word, ...),
//    and the member twice in the raw body text (`duplicate`: first malformed, then valid, so the
//    answer shows which one the door takes: the last, as Vault's Go decoder does); query
//    parameters get empty, malformed, oversize, out-of-range and duplicate;
//  * for every route: the valid base body (`baseline`), an unknown member (`unknown-member`),
//    and the path cases: a name bound to no key, names with odd characters, a mount that does not
//    exist, a path argument the endpoint does not know;
//  * every case is sent twice: by the `outsider` (a token scoped to another key and another
//    operation; no token at all on public routes; a token the registry never issued on the
//    auth/token/*-self routes, which any live token may call) and by the `holder` (a token scoped
//    to exactly the route's key and operation; the administrator token on administrator and
//    public routes, and for the path cases, whose odd names no scoped token can name).
// A new route or member gets its rows by being declared in `Routes()`; the first test case fails
// when the door serves a route (VaultDoor::Routes) without a spec, or a spec misses a member the
// door's route table says the route reads.
//
// What is asserted, per row:
//  (a) the exact answer: one line per (route, member, case, caller) in
//  tests/api/vault_matrix.golden
//      with the status and the body, normalised (UUIDs, ARNs, tokens, accessors, "vault:vN:"
//      values and long runs of one character become placeholders; a success body is reduced to
//      its top-level data/auth keys, its batch items and its warnings). Every line is compared,
//      and the differing ones are printed. No answer is a 5xx.
//  (b) the store is byte-for-byte the same before and after (tests/support/store_digest.h), unless
//      the row is a success of a caller with rights (a batch some of whose items succeeded
//      counts): a success of a route that changes nothing may only move the key service's GCM
//      counts (same keys, same versions). The outsider never succeeds (public routes aside) and
//      never changes anything.
//  (c) every audit record of the request names the caller (the token's display name and accessor;
//      nobody for a token that is not live), the key's ARN when the route names an existing key
//      (the new key's ARN on the final record of a successful create), and a decision from the
//      vocabulary (allow:*, deny:*, refused:*).
// And over the whole run: no secret (the plaintext canary, every token, every data key and random
// value the door handed out, the unseal share) appears in an error body or an audit record field.
//
// Updating the golden file: `KMS_UPDATE_GOLDEN=1 build/tests/api_vault_tests "[vault-matrix]"`
// rewrites it from what the door answers now. The diff is the review: each changed line is an
// answer a Vault client will see (its status, its error text, its shape), so a human must read it
// against Vault's behaviour (docs/vault-door.md) before committing; a rewrite that nobody reads
// would turn this test into a recording of whatever the door does.
//
// State: every row starts from the same keys and tokens. They are made once in a template store
// that is closed and copied; after a row that changed more than GCM counts (a key created,
// rotated, reconfigured or deleted, a token renewed or revoked) the next row gets a fresh copy.
// The run prints its size (route specs, members, rows, fresh copies) and how long it took.
//
// The sys/unseal rows run against the sealed door (VaultDoor without tokens or keys, the only door
// kmsd has before unseal), whose unseal callback hands each share to a real ShareCombiner (reset
// before every row). A sealed door has no token registry, so its audit records name nobody.
#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "api/http/request_audit.h"
#include "api/vault/vault_door.h"
#include "base/encoding.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "firmware/custodian_shares.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "tests/firmware/key_service_fixture.h"
#include "tests/support/fake_hsm.h"
#include "tests/support/store_digest.h"
#include "tests/support/test_random.h"

#ifndef KMS_VAULT_MATRIX_GOLDEN
#define KMS_VAULT_MATRIX_GOLDEN "tests/api/vault_matrix.golden"
#endif

namespace kms::api::vault {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using firmware::transit::TransitKeyType;

// ---- the table --------------------------------------------------------------------------------

// What a member holds, which decides its hostile cases (CasesFor).
enum class Kind {
  kSecret,     // base64 of caller data the door must never echo (plaintext, input)
  kBase64,     // base64, not secret (context, associated_data)
  kVersioned,  // "vault:v<N>:<base64>" (ciphertext, hmac, signature)
  kInt,        // Vault's TypeInt (versions, bits, status codes)
  kBool,       // TypeBool
  kDuration,   // TypeDurationSecond
  kWord,       // a string from a set (types, algorithms, formats, names)
  kBatch,      // batch_input: an array of objects
  kQuery,      // a query parameter
};

// One request member. `valid` is raw JSON (with the run's placeholders, Expand); `base`, when set,
// replaces the route's base body for this member's rows (a member that only matters in a batch
// that partly fails, for instance).
struct Member {
  std::string_view name;
  Kind kind;
  std::string_view valid;
  std::string_view base = {};
};

// Who may call a route, which decides the two callers.
enum class Access {
  kKeyed,          // a token scoped to the route's key and operation
  kNoKey,          // a token with the route's operation (random, hash, LIST)
  kTokenSelf,      // any live token (auth/token/*-self)
  kAdministrator,  // administrator tokens only (sys/seal)
  kPublic,         // no token needed (sys/health, sys/seal-status, sys/unseal)
};

struct RouteSpec {
  std::string_view method;
  std::string_view path;   // after /v1/, with {name} for the key
  std::string_view shape;  // the door's route shape (VaultDoor::Routes)
  std::string_view verb;   // the door's verb name
  Access access;
  std::string_view operation;  // the holder token's operation
  std::string_view key;        // the key the route acts on ("" none)
  std::string_view base;       // the valid body, raw JSON ("" none: the route reads no body)
  std::vector<Member> members = {};
  std::string_view batch_base = {};  // a valid batch body, for the item members
  std::vector<Member> item_members = {};
  std::vector<Member> query = {};
  // Path arguments the endpoint does not know: (case name, path after /v1/).
  std::vector<std::pair<std::string_view, std::string_view>> bad_paths = {};
  std::string_view note = {};  // appended to the label: two specs of one route
  bool sealed_door = false;
};

// Members shared by the routes of one endpoint.
const std::vector<Member> kSignOptions = {
    {"hash_algorithm", Kind::kWord, R"("sha2-256")"},
    {"algorithm", Kind::kWord, R"("sha2-256")"},
    {"prehashed", Kind::kBool, "false"},
    {"signature_algorithm", Kind::kWord, R"("pss")"},
    {"marshaling_algorithm", Kind::kWord, R"("asn1")"},
    {"salt_length", Kind::kWord, R"("auto")"},
};
std::vector<Member> Join(std::vector<Member> a, const std::vector<Member>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
constexpr std::string_view kPartialEncrypt =
    R"({"batch_input":[{"plaintext":"$PT"},{"plaintext":"%%%"}]})";
constexpr std::string_view kPartialDecrypt =
    R"({"batch_input":[{"ciphertext":"$CT"},{"ciphertext":"AAAA"}]})";
constexpr std::string_view kPartialHmac = R"({"batch_input":[{"input":"$PT"},{"input":"%%%"}]})";
constexpr std::string_view kPartialSign = R"({"batch_input":[{"input":"$PT"},{"input":"%%%"}]})";
constexpr std::string_view kPartialVerify =
    R"({"batch_input":[{"input":"$PT","signature":"$SIG"},{"input":"$PT","signature":"AAAA"}]})";

const std::vector<Member> kHmacMembers = {
    {"input", Kind::kSecret, R"("$PT")"},
    {"algorithm", Kind::kWord, R"("sha2-256")"},
    {"key_version", Kind::kInt, "1"},
    {"batch_input", Kind::kBatch, R"([{"input":"$PT"}])"},
    {"partial_failure_response_code", Kind::kInt, "207", kPartialHmac},
};
const std::vector<Member> kSignMembers =
    Join({{"input", Kind::kSecret, R"("$PT")"},
          {"key_version", Kind::kInt, "1"},
          {"batch_input", Kind::kBatch, R"([{"input":"$PT"}])"},
          {"partial_failure_response_code", Kind::kInt, "207", kPartialSign}},
         kSignOptions);
const std::vector<Member> kVerifyMembers =
    Join({{"input", Kind::kSecret, R"("$PT")"},
          {"signature", Kind::kVersioned, R"("$SIG")"},
          {"batch_input", Kind::kBatch, R"([{"input":"$PT","signature":"$SIG"}])"},
          {"partial_failure_response_code", Kind::kInt, "207", kPartialVerify}},
         kSignOptions);
const std::vector<Member> kRandomMembers = {
    {"bytes", Kind::kInt, "32"},
    {"format", Kind::kWord, R"("base64")"},
    {"source", Kind::kWord, R"("platform")"},
};
const std::vector<Member> kHashMembers = {
    {"input", Kind::kSecret, R"("$PT")"},
    {"algorithm", Kind::kWord, R"("sha2-256")"},
    {"format", Kind::kWord, R"("hex")"},
};
const std::vector<Member> kUnsupportedKeyMembers = {
    {"managed_key_name", Kind::kWord, R"("hsm-key")"},
    {"managed_key_id", Kind::kWord, R"("hsm-key-id")"},
    {"external_key_ref", Kind::kWord, R"("ext-key")"},
};
const std::vector<Member> kHealthQuery = {
    {"standbyok", Kind::kQuery, "true"},
    {"perfstandbyok", Kind::kQuery, "true"},
    {"activecode", Kind::kQuery, "200"},
    {"standbycode", Kind::kQuery, "429"},
    {"sealedcode", Kind::kQuery, "503"},
    {"uninitcode", Kind::kQuery, "501"},
    {"performancestandbycode", Kind::kQuery, "473"},
    {"drsecondarycode", Kind::kQuery, "472"},
    {"removedcode", Kind::kQuery, "530"},
    {"haunhealthycode", Kind::kQuery, "474"},
};

// One row per line, for review: clang-format would put every field on a line of its own.
// clang-format off
const std::vector<RouteSpec>& Routes() {
  static const std::vector<RouteSpec> kRoutes = {
      // ---- sys/ and auth/token/ ----
      {"GET", "sys/health", "sys/health", "read", Access::kPublic, "", "", "", {}, {}, {},
       kHealthQuery},
      {"HEAD", "sys/health", "sys/health", "head", Access::kPublic, "", "", "", {}, {}, {},
       {{"activecode", Kind::kQuery, "200"}, {"standbyok", Kind::kQuery, "true"}}},
      {"GET", "sys/seal-status", "sys/seal-status", "read", Access::kPublic, "", "", ""},
      {"PUT", "sys/unseal", "sys/unseal", "write", Access::kPublic, "", "", R"({"key":"$SHARE"})",
       {{"key", Kind::kWord, R"("$SHARE")"},
        {"reset", Kind::kBool, "true"},
        {"migrate", Kind::kBool, "false"}},
       {}, {}, {}, {}, " (sealed door)", true},
      {"PUT", "sys/seal", "sys/seal", "write", Access::kAdministrator, "", "", "{}"},
      {"GET", "auth/token/lookup-self", "auth/token/lookup-self", "read", Access::kTokenSelf, "",
       "", ""},
      {"PUT", "auth/token/lookup-self", "auth/token/lookup-self", "write", Access::kTokenSelf, "",
       "", "{}"},
      {"PUT", "auth/token/renew-self", "auth/token/renew-self", "write", Access::kTokenSelf, "", "",
       R"({"increment":"1h"})", {{"increment", Kind::kDuration, R"("1h")"}}},
      {"PUT", "auth/token/revoke-self", "auth/token/revoke-self", "write", Access::kTokenSelf, "",
       "", "{}"},
      // ---- keys ----
      {"LIST", "transit/keys", "keys", "list", Access::kNoKey, "read", "", ""},
      {"GET", "transit/keys?list=true", "keys", "list", Access::kNoKey, "read", "", "", {}, {}, {},
       {}, {}, " (GET ?list=true)"},
      {"GET", "transit/keys/{name}", "keys/{name}", "read", Access::kKeyed, "read", "aes", ""},
      {"POST", "transit/keys/{name}", "keys/{name}", "write", Access::kKeyed, "manage", "newkey",
       "{}",
       Join({{"type", Kind::kWord, R"("aes256-gcm96")"},
             {"derived", Kind::kBool, "false"},
             {"convergent_encryption", Kind::kBool, "false"},
             {"exportable", Kind::kBool, "false"},
             {"allow_plaintext_backup", Kind::kBool, "false"},
             {"auto_rotate_period", Kind::kDuration, R"("24h")"},
             {"key_size", Kind::kInt, "32", R"({"type":"hmac"})"},
             {"parameter_set", Kind::kWord, R"("44")"},
             {"hybrid_key_type_pqc", Kind::kWord, R"("ml-dsa")"},
             {"hybrid_key_type_ec", Kind::kWord, R"("ecdsa-p256")"}},
            kUnsupportedKeyMembers)},
      {"DELETE", "transit/keys/{name}", "keys/{name}", "delete", Access::kKeyed, "manage", "aes",
       ""},
      {"POST", "transit/keys/{name}/config", "keys/{name}/config", "write", Access::kKeyed,
       "manage", "aes", R"({"deletion_allowed":true})",
       {{"min_decryption_version", Kind::kInt, "1"},
        {"min_encryption_version", Kind::kInt, "0"},
        {"deletion_allowed", Kind::kBool, "true"},
        {"exportable", Kind::kBool, "false"},
        {"allow_plaintext_backup", Kind::kBool, "false"},
        {"auto_rotate_period", Kind::kDuration, R"("24h")"}}},
      {"POST", "transit/keys/{name}/rotate", "keys/{name}/rotate", "write", Access::kKeyed,
       "manage", "aes", "{}", kUnsupportedKeyMembers},
      // ---- cryptography ----
      {"PUT", "transit/encrypt/{name}", "encrypt/{name}", "write", Access::kKeyed, "encrypt",
       "aes", R"({"plaintext":"$PT"})",
       {{"plaintext", Kind::kSecret, R"("$PT")"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"associated_data", Kind::kBase64, R"("$CTX")"},
        {"key_version", Kind::kInt, "1"},
        {"nonce", Kind::kBase64, R"("")"},
        {"type", Kind::kWord, R"("aes256-gcm96")"},
        {"convergent_encryption", Kind::kBool, "false"},
        {"padding_scheme", Kind::kWord, R"("oaep")"},
        {"batch_input", Kind::kBatch, R"([{"plaintext":"$PT"}])"},
        {"partial_failure_response_code", Kind::kInt, "207", kPartialEncrypt}},
       R"({"batch_input":[{"plaintext":"$PT"}]})",
       {{"plaintext", Kind::kSecret, R"("$PT")"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"key_version", Kind::kInt, "1"},
        {"nonce", Kind::kBase64, R"("")"},
        {"reference", Kind::kWord, R"("item-1")"}}},
      {"PUT", "transit/decrypt/{name}", "decrypt/{name}", "write", Access::kKeyed, "decrypt",
       "aes", R"({"ciphertext":"$CT"})",
       {{"ciphertext", Kind::kVersioned, R"("$CT")"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"associated_data", Kind::kBase64, R"("")"},
        {"nonce", Kind::kBase64, R"("")"},
        {"batch_input", Kind::kBatch, R"([{"ciphertext":"$CT"}])"},
        {"partial_failure_response_code", Kind::kInt, "207", kPartialDecrypt}},
       R"({"batch_input":[{"ciphertext":"$CT"}]})",
       {{"ciphertext", Kind::kVersioned, R"("$CT")"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"nonce", Kind::kBase64, R"("")"},
        {"reference", Kind::kWord, R"("item-1")"}}},
      {"PUT", "transit/rewrap/{name}", "rewrap/{name}", "write", Access::kKeyed, "rewrap", "aes",
       R"({"ciphertext":"$CT"})",
       {{"ciphertext", Kind::kVersioned, R"("$CT")"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"associated_data", Kind::kBase64, R"("")"},
        {"key_version", Kind::kInt, "1"},
        {"nonce", Kind::kBase64, R"("")"},
        {"batch_input", Kind::kBatch, R"([{"ciphertext":"$CT"}])"},
        {"partial_failure_response_code", Kind::kInt, "207", kPartialDecrypt}},
       R"({"batch_input":[{"ciphertext":"$CT"}]})",
       {{"ciphertext", Kind::kVersioned, R"("$CT")"}, {"key_version", Kind::kInt, "1"}}},
      {"PUT", "transit/datakey/plaintext/{name}", "datakey/{arg}/{name}", "write", Access::kKeyed,
       "datakey", "aes", "{}",
       {{"bits", Kind::kInt, "256"},
        {"context", Kind::kBase64, R"("$CTX")"},
        {"associated_data", Kind::kBase64, R"("$CTX")"},
        {"key_version", Kind::kInt, "1"},
        {"nonce", Kind::kBase64, R"("")"}},
       {}, {}, {}, {{"bad-type", "transit/datakey/bogus/{name}"}}},
      {"PUT", "transit/datakey/wrapped/{name}", "datakey/{arg}/{name}", "write", Access::kKeyed,
       "datakey", "aes", "{}", {{"bits", Kind::kInt, "256"}, {"key_version", Kind::kInt, "1"}}},
      {"PUT", "transit/hmac/{name}", "hmac/{name}", "write", Access::kKeyed, "hmac", "mac",
       R"({"input":"$PT"})", kHmacMembers, R"({"batch_input":[{"input":"$PT"}]})",
       {{"input", Kind::kSecret, R"("$PT")"}, {"reference", Kind::kWord, R"("item-1")"}}},
      {"PUT", "transit/hmac/{name}/sha2-256", "hmac/{name}/{arg}", "write", Access::kKeyed,
       "hmac", "mac", R"({"input":"$PT"})", kHmacMembers, {}, {}, {},
       {{"bad-algorithm", "transit/hmac/{name}/sha2-999"}}},
      {"PUT", "transit/sign/{name}", "sign/{name}", "write", Access::kKeyed, "sign", "ec",
       R"({"input":"$PT"})", kSignMembers, R"({"batch_input":[{"input":"$PT"}]})",
       {{"input", Kind::kSecret, R"("$PT")"}}},
      {"PUT", "transit/sign/{name}/sha2-256", "sign/{name}/{arg}", "write", Access::kKeyed,
       "sign", "ec", R"({"input":"$PT"})", kSignMembers, {}, {}, {},
       {{"bad-hash", "transit/sign/{name}/sha2-999"}}},
      {"PUT", "transit/verify/{name}", "verify/{name}", "write", Access::kKeyed, "verify", "ec",
       R"({"input":"$PT","signature":"$SIG"})", kVerifyMembers,
       R"({"batch_input":[{"input":"$PT","signature":"$SIG"}]})",
       {{"input", Kind::kSecret, R"("$PT")"}, {"signature", Kind::kVersioned, R"("$SIG")"}}},
      {"PUT", "transit/verify/{name}", "verify/{name}", "write", Access::kKeyed, "verify", "mac",
       R"({"input":"$PT","hmac":"$MAC"})",
       {{"hmac", Kind::kVersioned, R"("$MAC")"}, {"input", Kind::kSecret, R"("$PT")"}},
       R"({"batch_input":[{"input":"$PT","hmac":"$MAC"}]})",
       {{"hmac", Kind::kVersioned, R"("$MAC")"}}, {}, {}, " (hmac key)"},
      {"PUT", "transit/verify/{name}/sha2-256", "verify/{name}/{arg}", "write", Access::kKeyed,
       "verify", "ec", R"({"input":"$PT","signature":"$SIG"})",
       Join(kVerifyMembers, {{"hmac", Kind::kVersioned, R"("$MAC")"}}), {}, {}, {},
       {{"bad-hash", "transit/verify/{name}/sha2-999"}}},
      {"PUT", "transit/random", "random", "write", Access::kNoKey, "random", "", "{}",
       kRandomMembers},
      {"PUT", "transit/random/16", "random/{arg}", "write", Access::kNoKey, "random", "", "{}",
       kRandomMembers, {}, {}, {}, {{"bad-bytes", "transit/random/-1"},
                                    {"bad-source", "transit/random/bogus"}}},
      {"PUT", "transit/random/platform/16", "random/{arg}/{arg2}", "write", Access::kNoKey,
       "random", "", "{}", kRandomMembers, {}, {}, {},
       {{"bad-bytes", "transit/random/platform/abc"}, {"bad-source", "transit/random/bogus/16"},
        {"oversize-bytes", "transit/random/platform/99999999999999999999"}}},
      {"PUT", "transit/hash", "hash", "write", Access::kNoKey, "hash", "", R"({"input":"$PT"})",
       kHashMembers},
      {"PUT", "transit/hash/sha2-256", "hash/{arg}", "write", Access::kNoKey, "hash", "",
       R"({"input":"$PT"})", kHashMembers, {}, {}, {},
       {{"bad-algorithm", "transit/hash/sha2-999"}}},
  };
  return kRoutes;
}
// clang-format on

// The golden file's name for a spec.
std::string Label(const RouteSpec& r) {
  std::string path(r.path);
  if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
  return std::string(r.method) + " " + path + std::string(r.note);
}

// ---- the run's values ---------------------------------------------------------------------------

constexpr std::string_view kCanary = "matrix-canary-plaintext-7f3a";
const std::string& CanaryB64() {
  static const std::string b64 = Base64Encode(AsBytes(kCanary));
  return b64;
}

std::string Repeat(std::string_view s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// A hostile case: its name and the member's raw JSON (nullopt: the "duplicate" case, built from
// the malformed and the valid value).
struct Case {
  std::string name;
  std::string value;
  bool duplicate = false;
};

std::vector<Case> CasesFor(const Member& m) {
  std::vector<Case> cases;
  const std::string quoted_canary = "\"" + CanaryB64() + "\"";
  if (m.kind == Kind::kQuery) {
    return {{"empty", ""},
            {"malformed", "abc"},
            {"oversize", "99999999999999999999"},
            {"out-of-range", "99"},
            {"duplicate", "abc&" + std::string(m.name) + "=" + std::string(m.valid), true}};
  }
  if (m.kind == Kind::kBatch) {
    cases = {{"wrong-type", quoted_canary}, {"null", "null"}, {"empty", "[]"}};
    std::string items = "[";
    std::string item(m.valid.substr(1, m.valid.size() - 2));  // the one valid item
    for (int i = 0; i < 1000; ++i) items += (i ? "," : "") + item;
    cases.push_back({"oversize", items + "]"});
    cases.push_back({"malformed", "[1," + quoted_canary + "]"});
  } else {
    cases = {
        {"wrong-type", "{\"value\":" + quoted_canary + "}"}, {"null", "null"}, {"empty", "\"\""}};
    switch (m.kind) {
      case Kind::kSecret:
        cases.push_back({"oversize", "\"" + Base64Encode(AsBytes(Repeat(kCanary, 200))) + "\""});
        cases.push_back({"malformed", R"("%%%not-base64%%%")"});
        break;
      case Kind::kBase64:
        cases.push_back({"oversize", "\"" + Repeat("QUFB", 16384) + "\""});
        cases.push_back({"malformed", R"("%%%not-base64%%%")"});
        break;
      case Kind::kVersioned:
        cases.push_back({"oversize", "\"vault:v1:" + Repeat("QUFB", 16384) + "\""});
        cases.push_back({"malformed-prefix", R"("AAAA")"});
        cases.push_back({"malformed-fields", R"("vault:v1")"});
        cases.push_back({"malformed-version", R"("vault:vX:AAAA")"});
        cases.push_back({"malformed-base64", R"("vault:v1:%%%")"});
        cases.push_back({"version-too-new", R"("vault:v99:AAAA")"});
        break;
      case Kind::kInt:
        cases.push_back({"oversize", "99999999999999999999"});
        cases.push_back({"negative", "-1"});
        cases.push_back({"malformed", R"("12abc")"});
        break;
      case Kind::kBool:
        cases.push_back({"oversize", "2"});
        cases.push_back({"malformed", R"("maybe")"});
        break;
      case Kind::kDuration:
        cases.push_back({"oversize", R"("99999999999999h")"});
        cases.push_back({"negative", "-5"});
        cases.push_back({"malformed", R"("1y")"});
        break;
      case Kind::kWord:
        cases.push_back({"oversize", "\"" + Repeat("a", 1024) + "\""});
        cases.push_back({"malformed", R"("bogus-value")"});
        break;
      case Kind::kBatch:
      case Kind::kQuery:
        break;
    }
  }
  // The member twice, first malformed then valid: Go's decoder (and so Vault) takes the last.
  cases.push_back({"duplicate", cases.back().value, true});
  return cases;
}

// ---- bodies: raw JSON objects that may hold a member twice -------------------------------------

using Fields = std::vector<std::pair<std::string, std::string>>;  // name, raw JSON value

Fields ParseFields(std::string_view raw) {
  Fields out;
  if (raw.empty()) return out;
  const json::object o = json::parse(raw).as_object();
  for (const auto& kv : o) out.emplace_back(std::string(kv.key()), json::serialize(kv.value()));
  return out;
}

std::string ObjectText(const Fields& fields) {
  std::string out = "{";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i != 0) out += ',';
    out += json::serialize(json::string(fields[i].first)) + ":" + fields[i].second;
  }
  return out + "}";
}

// `fields` with `name` set to `value`, or to the malformed then the valid value (duplicate).
Fields WithMember(Fields fields, std::string_view name, const Case& c, std::string_view valid) {
  std::erase_if(fields, [&](const auto& f) { return f.first == name; });
  fields.emplace_back(std::string(name), c.value);
  if (c.duplicate) fields.emplace_back(std::string(name), std::string(valid));
  return fields;
}

// ---- the world: a template store copied for every fresh start -----------------------------------

// What the door hands its auditor, copied.
struct Recorder final : http::RequestAuditor {
  struct Entry {
    std::string operation, principal, credential_id, source_address, key_arn, outcome,
        error_message, decision;
    unsigned status = 0;
  };
  std::vector<Entry> entries;
  bool Ready() const override { return true; }
  Status Record(const http::AuditedRequest& r) override {
    entries.push_back({std::string(r.operation), std::string(r.principal),
                       std::string(r.credential_id), std::string(r.source_address),
                       std::string(r.key_arn), std::string(r.outcome), std::string(r.error_message),
                       std::string(r.decision), r.status});
    return Status::Ok();
  }
};

struct Issued {
  std::string token, accessor, display_name;
};

// The keys, tokens and values every world starts with, made once in a store that is then closed
// and copied: a fresh world costs a file copy and an open, not a key ceremony.
struct Template {
  std::unique_ptr<kms::testing::FakeHsm> hsm = kms::testing::NewFakeHsm();
  firmware::ManualClock clock{firmware::testing::kStartMs};
  firmware::testing::TempDir dir;
  std::string db;
  std::map<std::string, Issued> tokens;  // "admin", "outsider", "holder:<label>"
  std::map<std::string, std::string> arns;
  std::string ct, mac, sig, share;
  std::vector<std::string> secrets;  // what must never leak

  Template() {
    db = (dir.path() / "kms.db").string();
    firmware::store::SqliteStoreOptions options;
    options.path = db;
    auto store = firmware::store::OpenSqliteStore(options);
    REQUIRE(store.has_value());
    {
      auto service = firmware::KeyService::Open(*hsm, **store, clock, {});
      REQUIRE(service.has_value());
      firmware::transit::TransitKeyring keyring(**service, **store, clock, "transit");
      firmware::VaultTokenRegistry registry(*hsm, **store, clock);
      auto create = [&](std::string_view name, TransitKeyType type) {
        firmware::transit::CreateTransitKeyOptions o;
        o.type = type;
        auto made = keyring.CreateKey(name, o);
        REQUIRE(made.has_value());
        arns[std::string(name)] = made->arn;
      };
      create("aes", TransitKeyType::kAes256Gcm96);
      create("mac", TransitKeyType::kHmac);
      create("ec", TransitKeyType::kEcdsaP256);
      create("other", TransitKeyType::kAes256Gcm96);
      firmware::transit::TransitKeyConfigUpdate allow;
      allow.deletion_allowed = true;
      REQUIRE(keyring.UpdateConfig("aes", allow).has_value());
      firmware::transit::EncryptInput in;
      in.plaintext = SecretBytes::CopyFrom(AsBytes(kCanary));
      ct = keyring.Encrypt("aes", in)->ciphertext;
      mac = *keyring.Hmac("mac", in.plaintext, "", std::nullopt);
      sig = keyring.Sign("ec", in.plaintext, {})->signature;

      auto issue = [&](const std::string& label, std::vector<std::string> patterns,
                       std::vector<std::string> operations, bool administrator,
                       std::int64_t ttl_ms) {
        firmware::VaultTokenSpec spec;
        spec.display_name = label;
        spec.key_patterns = std::move(patterns);
        spec.operations = std::move(operations);
        spec.administrator = administrator;
        spec.ttl_ms = ttl_ms;
        spec.renewable = ttl_ms != 0;
        auto made = registry.Create(spec);
        REQUIRE(made.has_value());
        Issued issued{ToString(made->token.ExposeSecret()), made->accessor, label};
        secrets.push_back(issued.token);
        tokens[label] = std::move(issued);
      };
      issue("admin", {"*/*"}, {"*"}, true, 0);
      issue("outsider", {"transit/other"}, {"hmac"}, false, 0);
      for (const RouteSpec& r : Routes()) {
        const std::string label = "holder:" + Label(r);
        if (r.access == Access::kKeyed) {
          issue(label, {"transit/" + std::string(r.key)}, {std::string(r.operation)}, false, 0);
        } else if (r.access == Access::kNoKey) {
          issue(label, {"transit/aes"}, {std::string(r.operation)}, false, 0);
        } else if (r.access == Access::kTokenSelf) {
          issue(label, {"transit/aes"}, {"read"}, false, 3'600'000);
        }
      }
    }
    store->reset();  // closed: the file is whole, ready to copy
    // One share of a 2-of-3 split: sys/unseal takes it and waits for another.
    auto shares = firmware::SplitSecret(SecretBytes::CopyFrom(AsBytes(Repeat("k", 32))), 2, 3,
                                        kms::testing::TestRandom);
    REQUIRE(shares.has_value());
    share = ToString((*shares)[0].ExposeSecret());
    secrets.push_back(share);
    secrets.push_back(std::string(kCanary));
    secrets.push_back(CanaryB64());
  }
};

// One appliance: a copy of the template's store, its services, an unsealed door and a sealed one.
struct World {
  Template& t;
  firmware::testing::TempDir dir;
  std::string db;
  std::unique_ptr<firmware::store::MetadataStore> store;
  std::unique_ptr<firmware::KeyService> service;
  std::unique_ptr<firmware::transit::TransitKeyring> keyring;
  std::unique_ptr<firmware::VaultTokenRegistry> registry;
  std::unique_ptr<firmware::authz::PrincipalRegistry> principals;
  std::unique_ptr<firmware::authz::AccessControl> access;
  Recorder recorder;
  std::unique_ptr<VaultDoor> door;
  std::unique_ptr<VaultDoor> sealed;
  firmware::ShareCombiner combiner;

  explicit World(Template& tmpl) : t(tmpl) {
    db = (dir.path() / "kms.db").string();
    fs::copy_file(t.db, db);
    firmware::store::SqliteStoreOptions options;
    options.path = db;
    auto opened = firmware::store::OpenSqliteStore(options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
    auto s = firmware::KeyService::Open(*t.hsm, *store, t.clock, {});
    REQUIRE(s.has_value());
    service = std::move(*s);
    keyring =
        std::make_unique<firmware::transit::TransitKeyring>(*service, *store, t.clock, "transit");
    registry = std::make_unique<firmware::VaultTokenRegistry>(*t.hsm, *store, t.clock);
    principals =
        std::make_unique<firmware::authz::PrincipalRegistry>(*store, t.clock, "111122223333");
    access = std::make_unique<firmware::authz::AccessControl>(*t.hsm, *store, *principals, t.clock);
    VaultDoorConfig config;
    config.access = access.get();
    config.clock = &t.clock;
    config.health = [] { return VaultHealth{true, false, false, "1.0.0-kms"}; };
    config.request_id = [] { return std::string("11111111-2222-4333-8444-555555555555"); };
    config.cluster_id = "cluster-1";
    config.observers.audit = &recorder;
    door = std::make_unique<VaultDoor>(
        config, *registry, std::vector<firmware::transit::TransitKeyring*>{keyring.get()});
    VaultDoorConfig sealed_config = config;
    sealed_config.access = nullptr;
    sealed_config.health = [this] {
      VaultHealth h{true, true, false, "1.0.0-kms", "shamir", 2, 3};
      h.progress = static_cast<unsigned>(combiner.progress().entered);
      h.recovery_seal = false;
      return h;
    };
    sealed_config.unseal = [this](std::string_view share, bool reset) -> StatusOr<VaultHealth> {
      if (reset) {
        combiner.Reset();
      } else {
        KMS_RETURN_IF_ERROR(combiner.Add(share));
      }
      return sealed->config().health();
    };
    sealed = std::make_unique<VaultDoor>(sealed_config);
  }
  ~World() {
    door.reset();
    sealed.reset();
    access.reset();
    principals.reset();
    registry.reset();
    keyring.reset();
    service.reset();
    store.reset();
  }
};

// ---- normalising an answer for the golden file
// ---------------------------------------------------

std::string Placeholders(std::string s, const Template& t) {
  for (const auto& [label, issued] : t.tokens) {
    for (const auto& [value, placeholder] :
         {std::pair{issued.token, "<token>"}, std::pair{issued.accessor, "<accessor>"}}) {
      for (auto at = s.find(value); at != std::string::npos; at = s.find(value, at)) {
        s.replace(at, value.size(), placeholder);
      }
    }
  }
  static const std::regex kArn(R"(arn:aws:kms:[a-z0-9-]+:[0-9]+:key/[0-9a-f-]{36})");
  static const std::regex kUuid(R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})");
  static const std::regex kVersioned(R"(vault:v([0-9]+):[A-Za-z0-9+/=_-]{8,})");
  static const std::regex kToken(R"(hvs\.[A-Za-z0-9]{32})");
  s = std::regex_replace(s, kArn, "<arn>");
  s = std::regex_replace(s, kUuid, "<uuid>");
  s = std::regex_replace(s, kVersioned, "vault:v$1:<value>");
  s = std::regex_replace(s, kToken, "<token>");
  // Long runs of one character (an echoed oversize value) as <c*N>.
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && s[j] == s[i]) ++j;
    if (j - i >= 32) {
      out += "<" + std::string(1, s[i]) + "*" + std::to_string(j - i) + ">";
    } else {
      out.append(s, i, j - i);
    }
    i = j;
  }
  return out;
}

std::string Keys(const json::object& o) {
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  std::sort(keys.begin(), keys.end());
  std::string out = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i];
  return out + "]";
}

// "<status> <body>": an error body as it is, an envelope reduced to its keys, batch items and
// warnings, a bare object (sys/health) to its keys.
std::string Normalise(const http::HttpResponse& r, const Template& t) {
  std::string out = std::to_string(r.status);
  if (r.body.empty()) return out + " (no body)";
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return out + " (not JSON) " + Placeholders(r.body, t);
  const json::object& o = v.as_object();
  if (o.contains("errors")) return out + " " + Placeholders(json::serialize(o), t);
  if (!o.contains("request_id")) return out + " bare:" + Keys(o);
  if (const json::value* d = o.if_contains("data"); d && d->is_object()) {
    out += " data:" + Keys(d->as_object());
    if (const json::value* b = d->as_object().if_contains("batch_results"); b && b->is_array()) {
      std::map<std::string, std::size_t> items;  // summary -> count, in order of first sight
      std::vector<std::string> order;
      for (const auto& item : b->as_array()) {
        const json::object& io = item.as_object();
        std::string summary =
            io.contains("error") ? "error:" + json::serialize(io.at("error")) : Keys(io);
        if (items[summary]++ == 0) order.push_back(summary);
      }
      out += " items:";
      for (const auto& s : order) {
        out += "{" + s + (items[s] > 1 ? "}x" + std::to_string(items[s]) : "}");
      }
    }
  }
  if (const json::value* a = o.if_contains("auth"); a && a->is_object()) {
    out += " auth:" + Keys(a->as_object());
  }
  if (const json::value* w = o.if_contains("warnings"); w && w->is_array()) {
    out += " warnings:" + json::serialize(*w);
  }
  return Placeholders(out, t);
}

// ---- one row
// -------------------------------------------------------------------------------------

enum class Caller { kOutsider, kHolder, kAdmin };

std::string_view CallerName(Caller c) {
  switch (c) {
    case Caller::kOutsider:
      return "outsider";
    case Caller::kHolder:
      return "holder";
    case Caller::kAdmin:
      return "admin";
  }
  return "";
}

struct Row {
  const RouteSpec* route;
  std::string member;  // "-" for route-level rows
  std::string kase;
  Caller caller;
  std::string path;  // after /v1/, query included
  std::string body;  // raw
  bool path_case = false;
  std::string key;  // the transit key the path names ("" none)
};

std::string Expand(std::string s, const Template& t, std::string_view key) {
  const std::pair<std::string_view, std::string> subs[] = {
      {"$PT", CanaryB64()},
      {"$CTX", Base64Encode(AsBytes("matrix-context"))},
      {"$CT", t.ct},
      {"$MAC", t.mac},
      {"$SIG", t.sig},
      {"$SHARE", t.share},
      {"{name}", std::string(key)},
  };
  for (const auto& [from, to] : subs) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
  }
  return s;
}

std::vector<Row> Generate(const Template& t) {
  std::vector<Row> rows;
  for (const RouteSpec& r : Routes()) {
    const std::string path = Expand(std::string(r.path), t, r.key);
    const std::string base = Expand(std::string(r.base), t, r.key);
    auto add = [&](std::string member, std::string kase, std::string p, std::string body,
                   bool path_case, std::string key = "") {
      if (key.empty() && member != "{mount}") key = std::string(r.key);
      for (Caller c : {Caller::kOutsider, path_case ? Caller::kAdmin : Caller::kHolder}) {
        rows.push_back({&r, member, kase, c, p, body, path_case, key});
      }
    };
    add("-", "baseline", path, base, false);
    if (!r.base.empty()) {
      Fields f = ParseFields(base);
      f.emplace_back("matrix_unknown_member", "\"" + CanaryB64() + "\"");
      add("-", "unknown-member", path, ObjectText(f), false);
    }
    for (const Member& m : r.members) {
      const std::string member_base = m.base.empty() ? base : Expand(std::string(m.base), t, "");
      const std::string valid = Expand(std::string(m.valid), t, r.key);
      for (const Case& c : CasesFor(m)) {
        Case expanded{c.name, Expand(c.value, t, r.key), c.duplicate};
        add(std::string(m.name), c.name, path,
            ObjectText(WithMember(ParseFields(member_base), m.name, expanded, valid)), false);
      }
    }
    for (const Member& m : r.item_members) {
      const Fields batch = ParseFields(Expand(std::string(r.batch_base), t, r.key));
      const std::string valid = Expand(std::string(m.valid), t, r.key);
      Fields item = ParseFields(json::serialize(
          json::parse(batch.front().second).as_array().front()));  // batch_input's one item
      for (const Case& c : CasesFor(m)) {
        Case expanded{c.name, Expand(c.value, t, r.key), c.duplicate};
        Fields body = batch;
        body.front().second = "[" + ObjectText(WithMember(item, m.name, expanded, valid)) + "]";
        add("batch_input[]." + std::string(m.name), c.name, path, ObjectText(body), false);
      }
    }
    for (const Member& m : r.query) {
      for (const Case& c : CasesFor(m)) {
        const char sep = path.find('?') == std::string::npos ? '?' : '&';
        add("?" + std::string(m.name), c.name, path + sep + std::string(m.name) + "=" + c.value,
            base, false);
      }
    }
    // Path cases: a name bound to no key, odd names, a mount that does not exist, bad arguments.
    if (r.access == Access::kKeyed) {
      const std::string shape(r.path);
      for (const auto& [kase, name] :
           std::vector<std::pair<std::string, std::string>>{{"unknown-key", "missing-key"},
                                                            {"odd-name:dot", "bad.name"},
                                                            {"odd-name:space", "a%20b"},
                                                            {"odd-name:long", Repeat("k", 129)}}) {
        add("{name}", kase, Expand(shape, t, name), base, true, name);
      }
    }
    for (const auto& [kase, p] : r.bad_paths) {
      add("{arg}", std::string(kase), Expand(std::string(p), t, r.key), base, true);
    }
    if (r.sealed_door) {
      // Sealed, every other path is 503 "Vault is sealed" (vault_door_test.cc): not a hostile
      // input but the state of the appliance.
    } else if (path.starts_with("transit/")) {
      add("{mount}", "no-mount", "nomount/" + path.substr(8), base, true);
    } else {
      add("{path}", "no-route", path.substr(0, path.find('?')) + "/extra", base, true);
    }
  }
  return rows;
}

// ---- the checks
// ------------------------------------------------------------------------------------

constexpr std::string_view kDecisions[] = {
    "allow:token-scope",       "allow:administrator", "allow:public",
    "deny:token-scope",        "deny:explicit",       "refused:unauthenticated",
    "refused:invalid-request", "refused:sealed",      "refused:audit",
    "refused:not-found",       "refused:internal"};

struct Outcome {
  std::string line;
  std::vector<std::string> failures;
  bool rebuild = false;  // the row changed what later rows would see
};

// The token a caller presents on `route`, and whether it is a live token of the registry.
std::optional<Issued> TokenOf(const Template& t, const RouteSpec& r, Caller c, bool& presented) {
  presented = true;
  if (c == Caller::kAdmin) return t.tokens.at("admin");
  if (c == Caller::kOutsider) {
    if (r.access == Access::kPublic) {
      presented = false;
      return std::nullopt;
    }
    if (r.access == Access::kTokenSelf) return std::nullopt;  // a token never issued
    return t.tokens.at("outsider");
  }
  if (r.access == Access::kPublic || r.access == Access::kAdministrator) {
    return t.tokens.at("admin");
  }
  return t.tokens.at("holder:" + Label(r));
}

using StoreDump = std::map<std::string, std::vector<std::string>>;

// `before`: the store as the previous row left it (read again after a rebuild); left as this row
// leaves it.
Outcome Run(World& w, const Row& row, StoreDump& before, std::vector<std::string>& seen_secrets,
            std::vector<std::string>& exposed) {
  const Template& t = w.t;
  const RouteSpec& r = *row.route;
  Outcome out;
  auto fail = [&](std::string what) { out.failures.push_back(std::move(what)); };

  bool presented = false;
  const std::optional<Issued> caller = TokenOf(t, r, row.caller, presented);
  http::HttpRequest request;
  request.method = std::string(r.method);
  request.target = "/v1/" + row.path;
  request.body = row.body;
  request.remote_address = "192.0.2.10";
  request.headers.emplace_back("X-Vault-Request", "true");
  if (presented) {
    request.headers.emplace_back("X-Vault-Token",
                                 caller ? caller->token : "hvs.UNISSUEDUNISSUEDUNISSUEDUNISSUED");
  }
  w.recorder.entries.clear();
  w.combiner.Reset();  // the sealed door's shares: every row starts with none entered
  const http::HttpResponse response = (r.sealed_door ? *w.sealed : *w.door).Handle(request);
  const auto after = kms::testing::StoreContents(w.db);

  out.line = Label(r) + " | " + row.member + " | " + row.kase + " | " +
             std::string(CallerName(row.caller)) + " | " + Normalise(response, t);
  boost::system::error_code ec;
  const json::value v = json::parse(response.body, ec);
  const json::object* envelope =
      !ec && v.is_object() && v.as_object().contains("request_id") ? &v.as_object() : nullptr;
  // A batch some of whose items succeeded did their work, whatever the status says.
  bool partial = false;
  if (envelope != nullptr) {
    if (const json::value* d = envelope->if_contains("data"); d && d->is_object()) {
      if (const json::value* b = d->as_object().if_contains("batch_results"); b && b->is_array()) {
        for (const auto& item : b->as_array()) {
          partial |= item.is_object() && !item.as_object().contains("error");
        }
      }
    }
  }
  const bool success = (response.status >= 200 && response.status < 300) || partial;
  const bool has_rights = row.caller != Caller::kOutsider || r.access == Access::kPublic;

  // No 5xx, and the outsider never succeeds.
  if (response.status >= 500) fail("a 5xx answer");
  if (success && !has_rights) fail("the caller without rights succeeded");

  // (b) the store.
  const auto changed = kms::testing::ChangedTables(before, after);
  if (!changed.empty()) {
    std::string tables;
    for (const auto& c : changed) tables += c + " ";
    if (!success || !has_rights) {
      fail("the store changed without an allowed success: " + tables);
    } else {
      const bool changes_state = r.shape.starts_with("keys/") || r.shape == "encrypt/{name}" ||
                                 r.shape == "auth/token/renew-self" ||
                                 r.shape == "auth/token/revoke-self" || r.shape == "sys/seal";
      // The key service's GCM invocation counts (counters, and the version records that carry
      // them): the same versions of the same keys, nothing else.
      const bool gcm_only = std::all_of(changed.begin(), changed.end(),
                                        [](const std::string& c) {
                                          return c == "counters" || c == "key_versions";
                                        }) &&
                            before.at("key_versions").size() == after.at("key_versions").size();
      if (!changes_state && !gcm_only) fail("a route that changes nothing changed " + tables);
      out.rebuild = !gcm_only;
    }
  }

  // (c) the audit records.
  if (w.recorder.entries.empty()) fail("no audit record");
  const bool live = caller.has_value() && !r.sealed_door;
  // The key the path names, when it exists.
  std::string key_arn;
  if (t.arns.count(row.key)) key_arn = t.arns.at(row.key);
  for (std::size_t i = 0; i < w.recorder.entries.size(); ++i) {
    const auto& e = w.recorder.entries[i];
    const bool final_record = i + 1 == w.recorder.entries.size();
    if (std::find(std::begin(kDecisions), std::end(kDecisions), e.decision) ==
        std::end(kDecisions)) {
      fail("audit decision '" + e.decision + "' is not in the vocabulary");
    }
    if (live) {
      if (e.principal != "vault-token:" + caller->display_name ||
          e.credential_id != caller->accessor) {
        fail("audit record does not name the caller: '" + e.principal + "'");
      }
    } else if (!e.principal.empty() || !e.credential_id.empty()) {
      fail("audit record names a caller for a token that is not live");
    }
    std::string expected_arn = key_arn;
    if (final_record && success && expected_arn.empty() && !row.key.empty() && r.method != "GET") {
      // A key this request created: the new key's ARN.
      if (auto made = w.keyring->Locate(row.key)) expected_arn = made->arn;
    }
    if (e.key_arn != expected_arn) {
      fail("audit key ARN '" + e.key_arn + "', expected '" + expected_arn + "'");
    }
    for (const std::string* field :
         {&e.operation, &e.principal, &e.credential_id, &e.source_address, &e.key_arn, &e.outcome,
          &e.error_message, &e.decision}) {
      exposed.push_back(*field);
    }
  }

  before = after;

  // Secrets the door handed out, and what an error showed.
  if (!ec && v.is_object()) {
    const json::object& o = v.as_object();
    if (o.contains("errors")) exposed.push_back(response.body);
    if (const json::value* d = o.if_contains("data"); d && d->is_object()) {
      auto collect = [&](const json::object& data) {
        for (const char* k : {"plaintext", "random_bytes"}) {
          if (const json::value* s = data.if_contains(k);
              s && s->is_string() && !s->as_string().empty() && s->as_string() != CanaryB64()) {
            seen_secrets.emplace_back(s->as_string());
          }
        }
        if (const json::value* e = data.if_contains("error"); e && e->is_string()) {
          exposed.emplace_back(e->as_string());
        }
      };
      collect(d->as_object());
      if (const json::value* b = d->as_object().if_contains("batch_results"); b && b->is_array()) {
        for (const auto& item : b->as_array()) {
          if (item.is_object()) collect(item.as_object());
        }
      }
    }
  }
  return out;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && !line.starts_with("#")) lines.push_back(line);
  }
  return lines;
}

// ------------------------------------------------------------------------------------------------

TEST_CASE("vault matrix: every route the door serves is declared, with every member it reads",
          "[unit][vault-matrix]") {
  const auto served = VaultDoor::Routes();
  REQUIRE_FALSE(served.empty());
  for (const VaultRouteInfo& route : served) {
    INFO(route.shape << " " << route.verb);
    std::set<std::string_view> declared;
    bool found = false;
    for (const RouteSpec& spec : Routes()) {
      if (spec.shape != route.shape || spec.verb != route.verb) continue;
      found = true;
      for (const Member& m : spec.members) declared.insert(m.name);
    }
    CHECK(found);  // a route the door serves has no rows: declare it in Routes()
    for (std::string_view member : route.members) {
      INFO(member);
      CHECK(declared.count(member) == 1);  // a member the route reads has no rows
    }
    for (std::string_view member : declared) {
      INFO(member);
      // A declared member the door's route table does not list would draw Vault's "ignored"
      // warning on success: the table and the endpoint disagree.
      CHECK(std::find(route.members.begin(), route.members.end(), member) != route.members.end());
    }
  }
  for (const RouteSpec& spec : Routes()) {
    INFO(Label(spec));
    CHECK(std::any_of(served.begin(), served.end(), [&](const VaultRouteInfo& route) {
      return route.shape == spec.shape && route.verb == spec.verb &&
             route.under_mount == spec.path.starts_with("transit/");
    }));
  }
}

TEST_CASE(
    "vault matrix: hostile members and paths, with and without rights, against the golden file",
    "[unit][vault-matrix]") {
  const auto started = std::chrono::steady_clock::now();
  Template t;
  const std::vector<Row> rows = Generate(t);
  auto world = std::make_unique<World>(t);
  std::vector<std::string> lines, failures, seen_secrets, exposed;
  std::size_t worlds = 1;
  StoreDump store = kms::testing::StoreContents(world->db);
  for (const Row& row : rows) {
    const Outcome out = Run(*world, row, store, seen_secrets, exposed);
    lines.push_back(out.line);
    for (const auto& f : out.failures) failures.push_back(out.line + "\n    " + f);
    if (out.rebuild) {
      world.reset();
      world = std::make_unique<World>(t);
      store = kms::testing::StoreContents(world->db);
      ++worlds;
    }
  }
  // No secret of the run in an error body or an audit field.
  std::vector<std::string> secrets = t.secrets;
  secrets.insert(secrets.end(), seen_secrets.begin(), seen_secrets.end());
  for (const std::string& text : exposed) {
    for (const std::string& secret : secrets) {
      if (secret.size() >= 8 && text.find(secret) != std::string::npos) {
        failures.push_back("a secret appears in an error body or audit field: " +
                           Placeholders(text.substr(0, 200), t));
      }
    }
  }
  std::size_t members = 0;
  for (const RouteSpec& r : Routes())
    members += r.members.size() + r.item_members.size() + r.query.size();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  WARN(Routes().size() << " route specs, " << members << " members, " << rows.size() << " rows, "
                       << worlds << " worlds, " << elapsed.count() << " ms");
  for (const auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());

  const std::string golden = KMS_VAULT_MATRIX_GOLDEN;
  if (const char* update = std::getenv("KMS_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    std::ofstream out(golden, std::ios::trunc);
    out << "# The Vault door's adversarial matrix (tests/api/vault_matrix_test.cc): one line per\n"
           "# route | member | case | caller | status and normalised body. Regenerate with\n"
           "# KMS_UPDATE_GOLDEN=1 and review every changed line against Vault's behaviour.\n";
    for (const auto& line : lines) out << line << "\n";
    WARN("rewrote " << golden);
    return;
  }
  const std::vector<std::string> expected = ReadLines(golden);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < std::max(expected.size(), lines.size()); ++i) {
    const std::string want = i < expected.size() ? expected[i] : "(none)";
    const std::string got = i < lines.size() ? lines[i] : "(none)";
    if (want != got) {
      if (++differing <= 40)
        UNSCOPED_INFO("line " << i + 1 << "\n  golden: " << want << "\n  now:    " << got);
    }
  }
  INFO(differing << " lines differ from " << golden
                 << " (KMS_UPDATE_GOLDEN=1 rewrites it; review the diff)");
  CHECK(differing == 0);
}

}  // namespace
}  // namespace kms::api::vault
