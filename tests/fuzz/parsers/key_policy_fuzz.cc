// libFuzzer target: the key-policy language (firmware/authz/policy.h): CompiledPolicy::Parse on
// hostile documents, and Evaluate / Decide checked against a second evaluator written here.
//
// The first byte picks the mode:
//  * raw: the rest is a policy document (key or identity policy). Parse never crashes; a refusal is
//    InvalidArgument/kMalformedPolicy (or ResourceExhausted/kLimitExceeded over 32 KB) with a
//    printable message; an accepted policy evaluates without crashing.
//  * generated: the rest drives a structured generator of policies (statements with Sid, Effect,
//    Principal/NotPrincipal, Action/NotAction, Resource/NotResource and Condition blocks, each
//    drawn from vocabularies of valid and invalid entries: wildcards, case variants, every
//    operator with its IfExists and ForAnyValue:/ForAllValues: forms, numbers, dates, booleans,
//    ARNs, policy variables) and of requests (principal, action, resource, condition values and an
//    encryption context). Invariants:
//     - Parse accepts the document exactly when every part the generator drew is valid under the
//       contract (the generator knows which of its entries are invalid, and where);
//     - for every request, Evaluate agrees with the reference evaluator below on explicit_deny,
//       deny_sid, allows_principal and allows_account, and Decide (with and without an identity
//       policy) agrees with the contract's five rules.
// The reference evaluator is deliberately simple and slow: it reads the IAM rules as the header
// states them, matches wildcards with a plain recursive glob, and takes the meaning of every
// number, date and boolean from the vocabulary table instead of parsing text.
#include <boost/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "firmware/authz/policy.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

namespace json = boost::json;
namespace authz = kms::firmware::authz;

constexpr std::string_view kAccount = "111122223333";
constexpr std::string_view kKeyArn =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

// ---- vocabularies ----

enum class PrincipalKind { kAny, kRoot, kArn, kService, kInvalid };
struct PrincipalEntry {
  const char* text;
  PrincipalKind kind;
  const char* account;  // for kRoot
};
constexpr PrincipalEntry kAwsPrincipals[] = {
    {"*", PrincipalKind::kAny, ""},
    {"111122223333", PrincipalKind::kRoot, "111122223333"},
    {"arn:aws:iam::111122223333:root", PrincipalKind::kRoot, "111122223333"},
    {"444455556666", PrincipalKind::kRoot, "444455556666"},
    {"arn:aws:iam::444455556666:root", PrincipalKind::kRoot, "444455556666"},
    {"arn:aws:iam::111122223333:user/alice", PrincipalKind::kArn, ""},
    {"arn:aws:iam::111122223333:user/bob", PrincipalKind::kArn, ""},
    {"arn:aws:iam::111122223333:role/admin", PrincipalKind::kArn, ""},
    {"arn:aws:iam::111122223333:role/path/ops", PrincipalKind::kArn, ""},
    {"arn:aws:sts::111122223333:assumed-role/admin/session1", PrincipalKind::kArn, ""},
    {"arn:aws:iam::444455556666:user/alice", PrincipalKind::kArn, ""},
    {"arn:aws:iam::111122223333:user/*", PrincipalKind::kInvalid, ""},
    {"arn:aws-cn:iam::111122223333:root", PrincipalKind::kInvalid, ""},
    {"alice", PrincipalKind::kInvalid, ""},
    {"arn:aws:iam::11112222333:root", PrincipalKind::kInvalid, ""},
    {"arn:aws:iam::111122223333:group/devs", PrincipalKind::kInvalid, ""},
    {"arn:aws:sts::111122223333:assumed-role/admin", PrincipalKind::kInvalid, ""},
};
struct ServiceEntry {
  const char* text;
  bool valid;
};
constexpr ServiceEntry kServices[] = {{"logs.amazonaws.com", true},
                                      {"ec2.us-east-1.amazonaws.com", true},
                                      {"Logs.amazonaws.com", false},
                                      {".amazonaws.com", false}};

struct TextEntry {
  const char* text;
  bool valid;
};
constexpr TextEntry kActions[] = {
    {"kms:Encrypt", true},    {"kms:Decrypt", true},     {"kms:*", true},
    {"*", true},              {"kms:Re*", true},          {"kms:Generate*", true},
    {"KMS:encrypt", true},    {"kms:?ncrypt", true},      {"kms:*Key*", true},
    {"s3:GetObject", true},   {"kms:PutKeyPolicy", true}, {"kms:Describe?ey", true},
    {"kms", false},           {"kms:", false},            {"encrypt", false},
    {"kms:Encrypt!", false},  {":Encrypt", false},
};
constexpr TextEntry kResources[] = {
    {"*", true},
    {"arn:aws:kms:us-east-1:111122223333:key/*", true},
    {"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", true},
    {"arn:aws:kms:*:111122223333:key/1234*", true},
    {"arn:aws:kms:us-east-1:111122223333:alias/*", true},
    {"arn:aws:kms:us-east-1:111122223333:key/\?\?\?\?\?\?\?\?-*", true},
    {"arn:aws:kms:us-east-1:*:*", true},
    {"arn:aws:kms:us-east-1:111122223333:KEY/*", true},
    {"arn:aws:kms:us-east-1:111122223333:key/${aws:username}", true},  // see variables
    {"key/*", false},
    {"arn:aws:kms", false},
    {"arn::kms:us-east-1:111122223333:key/x", false},
    {"arn:aws:kms:us-east-1:111122223333:", false},
};

// A condition value: its JSON form, the text AWS compares, and what it means to the typed
// operators (nullopt: not a number / date / boolean).
struct ValueEntry {
  const char* json;  // JSON text of the policy value
  const char* text;  // ScalarText of it, and the request spelling
  std::optional<double> number;
  std::optional<std::int64_t> date_ms;
  std::optional<bool> boolean;
};
const ValueEntry kValues[] = {
    {"\"111122223333\"", "111122223333", 111122223333.0, 111122223333000LL, std::nullopt},
    {"\"444455556666\"", "444455556666", 444455556666.0, 444455556666000LL, std::nullopt},
    {"\"Test\"", "Test", std::nullopt, std::nullopt, std::nullopt},
    {"\"test\"", "test", std::nullopt, std::nullopt, std::nullopt},
    {"\"te*\"", "te*", std::nullopt, std::nullopt, std::nullopt},
    {"\"t?st\"", "t?st", std::nullopt, std::nullopt, std::nullopt},
    {"\"*\"", "*", std::nullopt, std::nullopt, std::nullopt},
    {"\"\"", "", std::nullopt, std::nullopt, std::nullopt},
    {"\"SYMMETRIC_DEFAULT\"", "SYMMETRIC_DEFAULT", std::nullopt, std::nullopt, std::nullopt},
    {"true", "true", std::nullopt, std::nullopt, true},
    {"false", "false", std::nullopt, std::nullopt, false},
    {"\"TRUE\"", "TRUE", std::nullopt, std::nullopt, true},
    {"\"yes\"", "yes", std::nullopt, std::nullopt, std::nullopt},
    {"10", "10", 10.0, 10000LL, std::nullopt},
    {"\"10\"", "10", 10.0, 10000LL, std::nullopt},
    {"\"1e1\"", "1e1", 10.0, std::nullopt, std::nullopt},
    {"1.5", "1.5", 1.5, std::nullopt, std::nullopt},
    {"-2", "-2", -2.0, std::nullopt, std::nullopt},
    {"\"nan\"", "nan", std::numeric_limits<double>::quiet_NaN(), std::nullopt, std::nullopt},
    {"\"2024-01-01T00:00:00Z\"", "2024-01-01T00:00:00Z", std::nullopt, 1704067200000LL,
     std::nullopt},
    {"\"2024-01-01\"", "2024-01-01", std::nullopt, 1704067200000LL, std::nullopt},
    {"\"2023-12-31T23:00:00-01:00\"", "2023-12-31T23:00:00-01:00", std::nullopt, 1704067200000LL,
     std::nullopt},
    {"\"2024-06-01T12:30:00.250+02:00\"", "2024-06-01T12:30:00.250+02:00", std::nullopt,
     1717237800250LL, std::nullopt},
    {"\"1704067200\"", "1704067200", 1704067200.0, 1704067200000LL, std::nullopt},
    {"\"2024-13-01\"", "2024-13-01", std::nullopt, std::nullopt, std::nullopt},
    {"\"arn:aws:iam::111122223333:user/*\"", "arn:aws:iam::111122223333:user/*", std::nullopt,
     std::nullopt, std::nullopt},
    {"\"arn:aws:iam::111122223333:role/admin\"", "arn:aws:iam::111122223333:role/admin",
     std::nullopt, std::nullopt, std::nullopt},
    {"\"arn:aws:iam::*:root\"", "arn:aws:iam::*:root", std::nullopt, std::nullopt, std::nullopt},
    {"\"arn:aws:iam::111122223333:user/alice\"", "arn:aws:iam::111122223333:user/alice",
     std::nullopt, std::nullopt, std::nullopt},
    {"\"arn:*\"", "arn:*", std::nullopt, std::nullopt, std::nullopt},
    {"\"${aws:username}\"", "${aws:username}", std::nullopt, std::nullopt, std::nullopt},
};

enum class OpType { kString, kStringIgnoreCase, kStringLike, kNumeric, kDate, kBool, kArn, kNull };
enum class Cmp { kEq, kLt, kLe, kGt, kGe };
struct OperatorEntry {
  const char* name;
  OpType type;
  Cmp cmp;
  bool negated;
};
constexpr OperatorEntry kOperators[] = {
    {"StringEquals", OpType::kString, Cmp::kEq, false},
    {"StringNotEquals", OpType::kString, Cmp::kEq, true},
    {"StringEqualsIgnoreCase", OpType::kStringIgnoreCase, Cmp::kEq, false},
    {"StringNotEqualsIgnoreCase", OpType::kStringIgnoreCase, Cmp::kEq, true},
    {"StringLike", OpType::kStringLike, Cmp::kEq, false},
    {"StringNotLike", OpType::kStringLike, Cmp::kEq, true},
    {"NumericEquals", OpType::kNumeric, Cmp::kEq, false},
    {"NumericNotEquals", OpType::kNumeric, Cmp::kEq, true},
    {"NumericLessThan", OpType::kNumeric, Cmp::kLt, false},
    {"NumericLessThanEquals", OpType::kNumeric, Cmp::kLe, false},
    {"NumericGreaterThan", OpType::kNumeric, Cmp::kGt, false},
    {"NumericGreaterThanEquals", OpType::kNumeric, Cmp::kGe, false},
    {"DateEquals", OpType::kDate, Cmp::kEq, false},
    {"DateNotEquals", OpType::kDate, Cmp::kEq, true},
    {"DateLessThan", OpType::kDate, Cmp::kLt, false},
    {"DateLessThanEquals", OpType::kDate, Cmp::kLe, false},
    {"DateGreaterThan", OpType::kDate, Cmp::kGt, false},
    {"DateGreaterThanEquals", OpType::kDate, Cmp::kGe, false},
    {"Bool", OpType::kBool, Cmp::kEq, false},
    {"ArnEquals", OpType::kArn, Cmp::kEq, false},
    {"ArnLike", OpType::kArn, Cmp::kEq, false},
    {"ArnNotEquals", OpType::kArn, Cmp::kEq, true},
    {"ArnNotLike", OpType::kArn, Cmp::kEq, true},
    {"Null", OpType::kNull, Cmp::kEq, false},
};
constexpr const char* kBadOperators[] = {"IpAddress", "NotIpAddress", "BinaryEquals",
                                         "StringEqualz", "stringequals", "Foo"};

struct KeyEntry {
  const char* text;
  bool valid;
};
constexpr KeyEntry kPolicyKeys[] = {
    {"kms:CallerAccount", true},
    {"KMS:calleraccount", true},
    {"kms:EncryptionAlgorithm", true},
    {"kms:ViaService", true},
    {"aws:PrincipalArn", true},
    {"kms:GrantIsForAWSResource", true},
    {"aws:CurrentTime", true},
    {"kms:KeySpec", true},
    {"kms:GrantOperations", true},
    {"kms:EncryptionContext:Purpose", true},
    {"kms:encryptioncontext:PURPOSE", true},
    {"kms:EncryptionContext:Dept", true},
    {"kms:EncryptionContextKeys", true},
    {"aws:RequestTag/x", true},
    {"CallerAccount", false},
    {"kms:", false},
    {":x", false},
    {"k m s:x", false},
};
constexpr const char* kRequestKeys[] = {
    "kms:CallerAccount",     "KMS:calleraccount", "kms:EncryptionAlgorithm",
    "kms:ViaService",        "aws:PrincipalArn",  "kms:GrantIsForAWSResource",
    "aws:CurrentTime",       "kms:KeySpec",       "kms:GrantOperations",
    "aws:RequestTag/x"};
constexpr const char* kContextKeys[] = {"Purpose", "purpose", "Dept", "x"};
constexpr const char* kRequestPrincipals[] = {
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::111122223333:user/bob",
    "arn:aws:iam::111122223333:user/Alice",
    "arn:aws:iam::111122223333:role/admin",
    "arn:aws:iam::111122223333:role/path/ops",
    "arn:aws:iam::111122223333:root",
    "arn:aws:sts::111122223333:assumed-role/admin/session1",
    "arn:aws:iam::444455556666:user/alice",
    "arn:aws:iam::444455556666:root",
};
constexpr const char* kRequestActions[] = {
    "kms:Encrypt", "kms:Decrypt",     "kms:ReEncryptFrom", "kms:GenerateDataKey",
    "kms:PutKeyPolicy", "kms:CreateKey", "kms:ListKeys", "kms:DescribeKey"};
constexpr const char* kRequestResources[] = {
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-west-2:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321",
    "arn:aws:kms:us-east-1:111122223333:alias/app", "*"};

// ---- the generated policy, as the reference evaluator sees it ----

enum class Qualifier { kNone, kForAny, kForAll };
struct RefClause {
  OpType type;
  Cmp cmp;
  bool negated;
  bool if_exists;
  Qualifier qualifier;
  std::string key;
  std::vector<const ValueEntry*> values;
};
struct RefStatement {
  std::string sid;
  bool deny = false;
  bool not_principal = false;
  std::vector<const PrincipalEntry*> principals;  // AWS entries (Service names match nobody)
  bool not_action = false;
  std::vector<std::string> actions;
  bool not_resource = false;
  std::vector<std::string> resources;
  std::vector<RefClause> clauses;
};
struct RefPolicy {
  authz::PolicyKind kind = authz::PolicyKind::kKeyPolicy;
  bool valid = true;
  std::vector<RefStatement> statements;
};

// An entry of `vocab`, mostly a valid one: invalid entries are drawn one time in sixteen, so that
// policies of several statements are often valid as a whole and reach the evaluator.
template <typename Entry, std::size_t N, typename IsValid>
const Entry& PickMostlyValid(kms::fuzz::ByteReader& in, const Entry (&vocab)[N], IsValid is_valid) {
  std::vector<const Entry*> valid, invalid;
  for (const Entry& e : vocab) (is_valid(e) ? valid : invalid).push_back(&e);
  const bool bad = !invalid.empty() && in.Pick(16) == 0;
  const auto& from = bad ? invalid : valid;
  return *from[in.Pick(from.size())];
}

json::value ParseValue(const char* text) { return json::parse(text); }

// A string or an array of 1..3 strings (sometimes empty: invalid).
template <typename Entry, std::size_t N, typename IsValid>
json::value StringOrList(kms::fuzz::ByteReader& in, const Entry (&vocab)[N], IsValid is_valid,
                         std::vector<const Entry*>& picked, bool& valid) {
  if (in.Pick(3) == 0) {
    picked.push_back(&PickMostlyValid(in, vocab, is_valid));
    return json::value(picked.back()->text);
  }
  json::array a;
  const std::size_t n = in.Pick(12) == 0 ? 0 : in.Range(1, 3);
  if (n == 0) valid = false;
  for (std::size_t i = 0; i < n; ++i) {
    picked.push_back(&PickMostlyValid(in, vocab, is_valid));
    a.emplace_back(picked.back()->text);
  }
  return a;
}

void GenerateStatement(kms::fuzz::ByteReader& in, RefPolicy& policy, bool variables_forbidden,
                       std::set<std::string>& sids, json::object& s, RefStatement& r) {
  // Sid
  switch (in.Pick(4)) {
    case 0:
      break;
    case 1:
      r.sid = "";
      s["Sid"] = "";
      break;
    default: {
      r.sid = "s" + std::to_string(in.Range(0, 9));
      if (!sids.insert(r.sid).second) policy.valid = false;  // "must be unique"
      s["Sid"] = r.sid;
      break;
    }
  }
  // Effect
  switch (in.Pick(12)) {
    case 0:
      policy.valid = false;  // missing
      break;
    case 1:
      s["Effect"] = "allow";
      policy.valid = false;
      break;
    default:
      r.deny = in.Pick(3) == 0;
      s["Effect"] = r.deny ? "Deny" : "Allow";
      break;
  }
  // Principal / NotPrincipal
  const bool key_policy = policy.kind == authz::PolicyKind::kKeyPolicy;
  const std::size_t principal_shape = in.Pick(16);
  if (principal_shape == 0) {
    if (key_policy) policy.valid = false;  // required in key policies; absent is right elsewhere
  } else if (!key_policy && principal_shape != 1) {
    // identity policies: none (the usual case)
  } else {
    if (!key_policy) policy.valid = false;  // forbidden in identity policies
    r.not_principal = in.Pick(5) == 0;
    json::value v;
    switch (in.Pick(16)) {
      case 0:
        v = "*";
        r.principals.push_back(&kAwsPrincipals[0]);
        break;
      case 1:
        v = "arn:aws:iam::111122223333:root";  // a bare string other than "*": invalid
        policy.valid = false;
        break;
      case 2:
        v = json::object();
        policy.valid = false;  // empty object
        break;
      default: {
        json::object o;
        const std::size_t types = in.Range(1, 2);
        for (std::size_t t = 0; t < types; ++t) {
          const std::size_t type = in.Pick(8);
          if (type < 6 && !o.contains("AWS")) {
            std::vector<const PrincipalEntry*> picked;
            o["AWS"] = StringOrList(
                in, kAwsPrincipals,
                [](const PrincipalEntry& e) { return e.kind != PrincipalKind::kInvalid; }, picked,
                policy.valid);
            for (const PrincipalEntry* p : picked) {
              if (p->kind == PrincipalKind::kInvalid) policy.valid = false;
              r.principals.push_back(p);
            }
          } else if (type < 7 && !o.contains("Service")) {
            std::vector<const ServiceEntry*> picked;
            o["Service"] = StringOrList(
                in, kServices, [](const ServiceEntry& e) { return e.valid; }, picked,
                policy.valid);
            for (const ServiceEntry* p : picked) policy.valid = policy.valid && p->valid;
          } else if (!o.contains("Federated")) {
            o["Federated"] = "cognito-identity.amazonaws.com";
            policy.valid = false;
          }
        }
        v = std::move(o);
        break;
      }
    }
    s[r.not_principal ? "NotPrincipal" : "Principal"] = std::move(v);
    if (in.Pick(24) == 0) {
      s[r.not_principal ? "Principal" : "NotPrincipal"] = "*";  // both: invalid
      policy.valid = false;
    }
  }
  // Action / NotAction, Resource / NotResource
  auto list_element = [&](const TextEntry* vocab, std::size_t n, const char* name,
                          const char* not_name, bool& is_not, std::vector<std::string>& out,
                          bool resources) {
    const std::size_t shape = in.Pick(20);
    if (shape == 0) {
      policy.valid = false;  // missing
      return;
    }
    is_not = in.Pick(5) == 0;
    std::vector<const TextEntry*> picked;
    json::value v;
    auto pick = [&]() -> const TextEntry* {
      const bool bad = in.Pick(16) == 0;
      std::vector<const TextEntry*> from;
      for (std::size_t i = 0; i < n; ++i) {
        if (vocab[i].valid != bad) from.push_back(&vocab[i]);
      }
      return from[in.Pick(from.size())];
    };
    if (in.Pick(3) == 0) {
      picked.push_back(pick());
      v = picked.back()->text;
    } else {
      json::array a;
      const std::size_t count = in.Pick(12) == 0 ? 0 : in.Range(1, 3);
      if (count == 0) policy.valid = false;
      for (std::size_t i = 0; i < count; ++i) {
        picked.push_back(pick());
        a.emplace_back(picked.back()->text);
      }
      v = std::move(a);
    }
    for (const TextEntry* e : picked) {
      if (!e->valid) policy.valid = false;
      if (resources && variables_forbidden && std::string_view(e->text).find("${") !=
                                                  std::string_view::npos) {
        policy.valid = false;
      }
      out.emplace_back(e->text);
    }
    s[is_not ? not_name : name] = std::move(v);
    if (shape == 1) {
      s[is_not ? name : not_name] = "*";  // both: invalid
      policy.valid = false;
    }
  };
  list_element(kActions, std::size(kActions), "Action", "NotAction", r.not_action, r.actions, false);
  list_element(kResources, std::size(kResources), "Resource", "NotResource", r.not_resource,
               r.resources, true);
  // Condition
  if (in.Pick(3) != 0) {
    json::object condition;
    const std::size_t blocks = in.Range(1, 3);
    for (std::size_t b = 0; b < blocks; ++b) {
      std::string name;
      RefClause prototype{};
      const std::size_t q = in.Pick(6);
      prototype.qualifier = q == 0 ? Qualifier::kForAny : q == 1 ? Qualifier::kForAll
                                                                 : Qualifier::kNone;
      if (prototype.qualifier == Qualifier::kForAny) name = "ForAnyValue:";
      if (prototype.qualifier == Qualifier::kForAll) name = "ForAllValues:";
      bool bad_operator = false;
      if (in.Pick(16) == 0) {
        name += in.PickFrom(kBadOperators);
        bad_operator = true;
      } else {
        const OperatorEntry& op = in.PickFrom(kOperators);
        name += op.name;
        prototype.type = op.type;
        prototype.cmp = op.cmp;
        prototype.negated = op.negated;
      }
      prototype.if_exists = in.Pick(4) == 0;
      if (prototype.if_exists) name += "IfExists";
      if (condition.contains(name)) continue;  // the generator makes no duplicate JSON keys
      if (bad_operator) policy.valid = false;
      if (!bad_operator && prototype.type == OpType::kNull &&
          (prototype.if_exists || prototype.qualifier != Qualifier::kNone)) {
        policy.valid = false;
      }
      json::object keys;
      const std::size_t key_count = in.Pick(16) == 0 ? 0 : in.Range(1, 2);
      for (std::size_t k = 0; k < key_count; ++k) {
        const KeyEntry& key =
            PickMostlyValid(in, kPolicyKeys, [](const KeyEntry& e) { return e.valid; });
        if (keys.contains(key.text)) continue;
        RefClause clause = prototype;
        clause.key = key.text;
        if (!key.valid) policy.valid = false;
        std::string lower(key.text);
        for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (clause.qualifier == Qualifier::kForAll &&
            (lower.starts_with("kms:encryptioncontext:") || lower.starts_with("aws:requesttag/"))) {
          policy.valid = false;  // AWS KMS's OverlyPermissiveCondition
        }
        json::value values;
        const std::size_t count = in.Pick(16) == 0 ? 0 : in.Range(1, 3);
        const bool scalar = count == 1 && in.Bool();
        json::array a;
        // Values of the operator's type, but one time in sixteen any value.
        std::vector<const ValueEntry*> fitting;
        for (const ValueEntry& v : kValues) {
          const bool fits = bad_operator ? true
                            : clause.type == OpType::kNumeric ? v.number.has_value()
                            : clause.type == OpType::kDate    ? v.date_ms.has_value()
                            : (clause.type == OpType::kBool || clause.type == OpType::kNull)
                                ? v.boolean.has_value()
                                : true;
          if (fits) fitting.push_back(&v);
        }
        for (std::size_t i = 0; i < count; ++i) {
          const ValueEntry& v = in.Pick(16) == 0 ? kValues[in.Pick(std::size(kValues))]
                                                 : *fitting[in.Pick(fitting.size())];
          clause.values.push_back(&v);
          a.push_back(ParseValue(v.json));
          if (bad_operator) continue;
          switch (clause.type) {
            case OpType::kNumeric:
              if (!v.number) policy.valid = false;
              break;
            case OpType::kDate:
              if (!v.date_ms) policy.valid = false;
              break;
            case OpType::kBool:
            case OpType::kNull:
              if (!v.boolean) policy.valid = false;
              break;
            default:
              if (variables_forbidden && std::string_view(v.text).find("${") != std::string_view::npos) {
                policy.valid = false;
              }
              break;
          }
        }
        if (count == 0) {
          policy.valid = false;  // an empty list of values
          values = json::array();
        } else if (scalar) {
          values = a[0];
        } else {
          values = std::move(a);
        }
        keys[key.text] = std::move(values);
        r.clauses.push_back(std::move(clause));
      }
      if (in.Pick(20) == 0) {
        condition[name] = "not an object";
        policy.valid = false;
      } else {
        condition[name] = std::move(keys);
      }
    }
    s["Condition"] = std::move(condition);
  }
  if (in.Pick(32) == 0) {
    s["Foo"] = "bar";  // an unknown element
    policy.valid = false;
  }
}

std::string GeneratePolicy(kms::fuzz::ByteReader& in, authz::PolicyKind kind, RefPolicy& policy) {
  policy.kind = kind;
  json::object doc;
  bool variables_forbidden = false;
  switch (in.Pick(8)) {
    case 0:
      break;  // no Version: policy variables are literal
    case 1:
      doc["Version"] = "2008-10-17";
      break;
    case 2:
      doc["Version"] = "2011-01-01";
      policy.valid = false;
      break;
    default:
      doc["Version"] = "2012-10-17";
      variables_forbidden = true;
      break;
  }
  if (in.Pick(4) == 0) doc["Id"] = "key-policy-1";
  if (in.Pick(48) == 0) {
    doc["Id"] = 7;
    policy.valid = false;
  }
  std::set<std::string> sids;
  const std::size_t shape = in.Pick(24);
  if (shape == 0) {
    policy.valid = false;  // no Statement
  } else if (shape == 1) {
    doc["Statement"] = json::array();
    policy.valid = false;
  } else if (shape < 6) {
    json::object s;
    RefStatement r;
    GenerateStatement(in, policy, variables_forbidden, sids, s, r);
    doc["Statement"] = std::move(s);
    policy.statements.push_back(std::move(r));
  } else {
    json::array a;
    const std::size_t n = in.Range(1, 4);
    for (std::size_t i = 0; i < n; ++i) {
      json::object s;
      RefStatement r;
      GenerateStatement(in, policy, variables_forbidden, sids, s, r);
      a.push_back(std::move(s));
      policy.statements.push_back(std::move(r));
    }
    doc["Statement"] = std::move(a);
  }
  if (in.Pick(48) == 0) {
    doc["Comment"] = "x";
    policy.valid = false;
  }
  return json::serialize(doc);
}

// ---- the reference evaluator ----

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Plain recursive glob: '*' any run, '?' one byte.
bool Glob(std::string_view p, std::string_view t) {
  if (p.empty()) return t.empty();
  if (p[0] == '*') return Glob(p.substr(1), t) || (!t.empty() && Glob(p, t.substr(1)));
  if (t.empty()) return false;
  return (p[0] == '?' || p[0] == t[0]) && Glob(p.substr(1), t.substr(1));
}

std::vector<std::string_view> ArnFields(std::string_view arn) {
  std::vector<std::string_view> f;
  for (int i = 0; i < 5; ++i) {
    const std::size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return {};
    f.push_back(arn.substr(0, colon));
    arn.remove_prefix(colon + 1);
  }
  f.push_back(arn);
  return f;
}

bool ArnMatches(std::string_view pattern, std::string_view value) {
  const auto pf = ArnFields(pattern);
  if (pf.empty()) return Glob(pattern, value);
  const auto vf = ArnFields(value);
  if (vf.empty()) return false;
  for (std::size_t i = 0; i < 6; ++i) {
    if (!Glob(pf[i], vf[i])) return false;
  }
  return true;
}

std::string AccountOf(std::string_view principal_arn) {
  const auto f = ArnFields(principal_arn);
  if (f.empty() || f[0] != "arn" || (f[2] != "iam" && f[2] != "sts")) return "";
  return std::string(f[4]);
}

// Request condition values by lower-cased key.
using RefConditions = std::map<std::string, std::vector<std::string>>;

struct RefRequest {
  authz::PolicyRequest request;
  RefConditions conditions;
};

const ValueEntry* EntryOfText(std::string_view text) {
  for (const ValueEntry& v : kValues) {
    if (text == v.text) return &v;
  }
  return nullptr;
}

bool Compare(double a, double b, Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return a == b;
    case Cmp::kLt:
      return a < b;
    case Cmp::kLe:
      return a <= b;
    case Cmp::kGt:
      return a > b;
    default:
      return a >= b;
  }
}
bool CompareMs(std::int64_t a, std::int64_t b, Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return a == b;
    case Cmp::kLt:
      return a < b;
    case Cmp::kLe:
      return a <= b;
    case Cmp::kGt:
      return a > b;
    default:
      return a >= b;
  }
}

// Whether request value `v` matches policy value `p` under the positive form of the operator.
bool Positive(const RefClause& c, const std::string& v, const ValueEntry& p) {
  const ValueEntry* ve = EntryOfText(v);  // request values are drawn from the same table
  switch (c.type) {
    case OpType::kString:
      return v == p.text;
    case OpType::kStringIgnoreCase:
      return Lower(v) == Lower(p.text);
    case OpType::kStringLike:
      return Glob(p.text, v);
    case OpType::kNumeric:
      return ve != nullptr && ve->number && Compare(*ve->number, *p.number, c.cmp);
    case OpType::kDate:
      return ve != nullptr && ve->date_ms && CompareMs(*ve->date_ms, *p.date_ms, c.cmp);
    case OpType::kBool:
      return Lower(v) == (*p.boolean ? "true" : "false");
    case OpType::kArn:
      return ArnMatches(p.text, v);
    case OpType::kNull:
      return false;
  }
  return false;
}

bool ClauseHolds(const RefClause& c, const RefConditions& conditions) {
  auto it = conditions.find(Lower(c.key));
  const bool missing = it == conditions.end() || it->second.empty();
  if (c.type == OpType::kNull) {
    // {"k": true} holds when k is missing; {"k": false} when it is present; listed values are ORed.
    for (const ValueEntry* p : c.values) {
      if (*p->boolean == missing) return true;
    }
    return false;
  }
  if (missing) {
    if (c.if_exists) return true;
    if (c.qualifier == Qualifier::kForAll) return true;
    if (c.qualifier == Qualifier::kForAny) return false;
    return c.negated;
  }
  auto value_matches = [&](const std::string& v) {
    for (const ValueEntry* p : c.values) {
      if (Positive(c, v, *p)) return true;
    }
    return false;
  };
  const std::vector<std::string>& values = it->second;
  if (c.qualifier == Qualifier::kForAll) {
    for (const std::string& v : values) {
      if (value_matches(v) == c.negated) return false;
    }
    return true;
  }
  if (c.qualifier == Qualifier::kForAny) {
    for (const std::string& v : values) {
      if (value_matches(v) != c.negated) return true;
    }
    return false;
  }
  bool any = false;
  for (const std::string& v : values) any = any || value_matches(v);
  return any != c.negated;
}

authz::PolicyVerdict ReferenceEvaluate(const RefPolicy& policy, const RefRequest& rr) {
  const authz::PolicyRequest& req = rr.request;
  authz::PolicyVerdict verdict;
  const std::string root = "arn:aws:iam::" + std::string(kAccount) + ":root";
  const bool in_account = AccountOf(req.principal_arn) == kAccount;
  for (const RefStatement& s : policy.statements) {
    bool by_principal = true;
    bool by_account = false;
    if (policy.kind == authz::PolicyKind::kKeyPolicy) {
      bool named = false;
      bool account = false;
      for (const PrincipalEntry* p : s.principals) {
        switch (p->kind) {
          case PrincipalKind::kAny:
            named = true;
            break;
          case PrincipalKind::kRoot:
            if (p->account == kAccount) {
              named = named || req.principal_arn == root;
              account = account || in_account;
            }
            break;
          case PrincipalKind::kArn:
            named = named || req.principal_arn == p->text;
            break;
          default:
            break;
        }
      }
      if (s.not_principal) {
        by_principal = !(named || account);
      } else {
        by_principal = named;
        by_account = account;
      }
      if (!by_principal && !by_account) continue;
    }
    bool action = false;
    for (const std::string& a : s.actions) action = action || Glob(Lower(a), Lower(req.action));
    if (action == s.not_action) continue;
    bool resource = false;
    for (const std::string& r : s.resources) resource = resource || Glob(r, req.resource_arn);
    if (resource == s.not_resource) continue;
    bool conditions = true;
    for (const RefClause& c : s.clauses) conditions = conditions && ClauseHolds(c, rr.conditions);
    if (!conditions) continue;
    if (s.deny) {
      if (!verdict.explicit_deny) {
        verdict.explicit_deny = true;
        verdict.deny_sid = s.sid;
      }
    } else {
      verdict.allows_principal = verdict.allows_principal || by_principal;
      verdict.allows_account = verdict.allows_account || by_account;
    }
  }
  return verdict;
}

// The contract's five rules of Decide.
authz::Decision ReferenceDecide(const authz::PolicyVerdict* key, const authz::PolicyVerdict* identity) {
  if ((key && key->explicit_deny) || (identity && identity->explicit_deny)) {
    return authz::Decision::kExplicitDeny;
  }
  if (key == nullptr) {
    return identity != nullptr && identity->allows_principal ? authz::Decision::kAllow
                                                             : authz::Decision::kImplicitDeny;
  }
  if (key->allows_principal) return authz::Decision::kAllow;
  if (key->allows_account && (identity == nullptr || identity->allows_principal)) {
    return authz::Decision::kAllow;
  }
  return authz::Decision::kImplicitDeny;
}

RefRequest GenerateRequest(kms::fuzz::ByteReader& in) {
  RefRequest rr;
  rr.request.principal_arn = in.PickFrom(kRequestPrincipals);
  rr.request.account_id = std::string(kAccount);
  rr.request.action = in.PickFrom(kRequestActions);
  rr.request.resource_arn = in.PickFrom(kRequestResources);
  const std::size_t ops = in.Range(0, 4);
  for (std::size_t i = 0; i < ops; ++i) {
    const std::string key = in.PickFrom(kRequestKeys);
    const std::string value = kValues[in.Pick(std::size(kValues))].text;
    if (in.Pick(3) == 0) {
      rr.request.conditions.Add(key, value);
      rr.conditions[Lower(key)].push_back(value);
    } else {
      rr.request.conditions.Set(key, value);
      rr.conditions[Lower(key)] = {value};
    }
  }
  if (in.Bool()) {
    std::map<std::string, std::string> context;
    const std::size_t pairs = in.Range(1, 3);
    for (std::size_t i = 0; i < pairs; ++i) {
      context[in.PickFrom(kContextKeys)] = kValues[in.Pick(std::size(kValues))].text;
    }
    rr.request.conditions.SetEncryptionContext(context);
    std::vector<std::string> keys;
    for (const auto& [k, v] : context) {
      rr.conditions[Lower("kms:EncryptionContext:" + k)].push_back(v);
      keys.push_back(k);
    }
    rr.conditions["kms:encryptioncontextkeys"] = keys;
  }
  return rr;
}

bool SameVerdict(const authz::PolicyVerdict& a, const authz::PolicyVerdict& b) {
  return a.explicit_deny == b.explicit_deny && a.allows_principal == b.allows_principal &&
         a.allows_account == b.allows_account && a.deny_sid == b.deny_sid;
}

std::string Describe(const authz::PolicyVerdict& got, const authz::PolicyVerdict& want,
                     const std::string& policy, const RefRequest& rr) {
  auto v = [](const authz::PolicyVerdict& x) {
    return "deny=" + std::to_string(x.explicit_deny) + " sid=" + x.deny_sid +
           " principal=" + std::to_string(x.allows_principal) +
           " account=" + std::to_string(x.allows_account);
  };
  std::string conditions;
  for (const auto& [k, vs] : rr.conditions) {
    conditions += k + "=[";
    for (const auto& x : vs) conditions += x + ",";
    conditions += "] ";
  }
  return "got " + v(got) + "; want " + v(want) + "\n  policy " + policy + "\n  request " +
         rr.request.principal_arn + " " + rr.request.action + " " + rr.request.resource_arn + " " +
         conditions;
}

bool Printable(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

void Raw(std::string_view text, authz::PolicyKind kind) {
  auto parsed = authz::CompiledPolicy::Parse(text, kind, kAccount);
  if (!parsed) {
    const kms::Status& e = parsed.error();
    const bool malformed =
        e.code() == kms::StatusCode::kInvalidArgument && e.reason() == kms::Reason::kMalformedPolicy;
    const bool too_big = e.code() == kms::StatusCode::kResourceExhausted &&
                         e.reason() == kms::Reason::kLimitExceeded && text.size() > 32768;
    KMS_FUZZ_CHECK(malformed || too_big, "a refused policy is MalformedPolicy (or over 32 KB)");
    KMS_FUZZ_CHECK_DETAIL(Printable(e.message()), "a refusal's message is printable", e.message());
    return;
  }
  KMS_FUZZ_CHECK((*parsed)->text() == text, "the policy keeps its text verbatim");
  for (const char* principal : kRequestPrincipals) {
    authz::PolicyRequest r;
    r.principal_arn = principal;
    r.account_id = std::string(kAccount);
    r.action = "kms:Encrypt";
    r.resource_arn = std::string(kKeyArn);
    r.conditions.Set("kms:CallerAccount", std::string(kAccount));
    (void)(*parsed)->Evaluate(r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kms::fuzz::ByteReader in(data, size);
  const std::uint8_t mode = in.Byte();
  if (mode % 4 == 0) {
    Raw(std::string_view(reinterpret_cast<const char*>(data), size).substr(size > 0 ? 1 : 0),
        (mode & 4) ? authz::PolicyKind::kIdentityPolicy : authz::PolicyKind::kKeyPolicy);
    return 0;
  }
  RefPolicy key_ref;
  const std::string key_text = GeneratePolicy(in, authz::PolicyKind::kKeyPolicy, key_ref);
  auto key_policy = authz::CompiledPolicy::Parse(key_text, authz::PolicyKind::kKeyPolicy, kAccount);
  KMS_FUZZ_CHECK_DETAIL(key_policy.has_value() == key_ref.valid,
                        "Parse accepts a generated key policy exactly when it is valid",
                        (key_policy ? "accepted: " : key_policy.error().message() + ": ") + key_text);
  RefPolicy identity_ref;
  std::shared_ptr<const authz::CompiledPolicy> identity;
  if (in.Bool()) {
    const std::string identity_text =
        GeneratePolicy(in, authz::PolicyKind::kIdentityPolicy, identity_ref);
    auto parsed =
        authz::CompiledPolicy::Parse(identity_text, authz::PolicyKind::kIdentityPolicy, kAccount);
    KMS_FUZZ_CHECK_DETAIL(parsed.has_value() == identity_ref.valid,
                          "Parse accepts a generated identity policy exactly when it is valid",
                          (parsed ? "accepted: " : parsed.error().message() + ": ") + identity_text);
    if (parsed) identity = *parsed;
  }
  if (!key_policy) return 0;
  KMS_FUZZ_CHECK((*key_policy)->statement_count() == key_ref.statements.size(),
                 "every statement is compiled");
  const std::size_t requests = in.Range(1, 4);
  for (std::size_t i = 0; i < requests; ++i) {
    const RefRequest rr = GenerateRequest(in);
    const authz::PolicyVerdict got = (*key_policy)->Evaluate(rr.request);
    const authz::PolicyVerdict want = ReferenceEvaluate(key_ref, rr);
    KMS_FUZZ_CHECK_DETAIL(SameVerdict(got, want), "Evaluate agrees with the reference evaluator",
                          Describe(got, want, key_text, rr));
    authz::PolicyVerdict identity_want;
    if (identity) {
      const authz::PolicyVerdict identity_got = identity->Evaluate(rr.request);
      identity_want = ReferenceEvaluate(identity_ref, rr);
      KMS_FUZZ_CHECK_DETAIL(SameVerdict(identity_got, identity_want),
                            "Evaluate agrees with the reference on identity policies",
                            Describe(identity_got, identity_want, identity->text(), rr));
    }
    const authz::Decision decided = authz::Decide(key_policy->get(), identity.get(), rr.request);
    KMS_FUZZ_CHECK(decided == ReferenceDecide(&want, identity ? &identity_want : nullptr),
                   "Decide follows the contract's rules");
    if (identity) {
      KMS_FUZZ_CHECK(authz::Decide(nullptr, identity.get(), rr.request) ==
                         ReferenceDecide(nullptr, &identity_want),
                     "Decide without a key policy follows the contract's rules");
    }
  }
  return 0;
}
