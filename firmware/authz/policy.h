// The AWS policy language (key policies and identity policies) as a pure library: a document is
// parsed and validated once into a CompiledPolicy, which then answers, for one request, whether a
// Deny matched and whether an Allow matched the principal or delegated to the account. It touches
// no HSM and no store; the doors build a PolicyRequest and call Decide.
//
// Contract:
//  * Parse accepts what the IAM JSON policy reference describes, within these limits (all refused
//    with InvalidArgument, Reason::kMalformedPolicy, and a MalformedPolicyDocumentException-style
//    message that names the statement index, its Sid and the element, and never echoes more than
//    a 64-byte printable excerpt of the input):
//     - Top level: Version ("2012-10-17" or "2008-10-17", optional), Id (string, optional),
//       Statement (one object or a non-empty array, required). Anything else is malformed, as is a
//       duplicate JSON key anywhere in the document and nesting deeper than 32 levels.
//     - Size: at most kMaxPolicyBytes (AWS's 32 KB key-policy quota); larger documents are
//       ResourceExhausted with Reason::kLimitExceeded ("Policy exceeds the maximum size of 32768
//       bytes"). The same bound applies to identity policies (AWS's IAM quotas are smaller).
//     - Statement: Sid (string, unique within the policy), Effect ("Allow" | "Deny", case as AWS),
//       Principal | NotPrincipal (key policies: exactly one required; identity policies:
//       forbidden), Action | NotAction (exactly one required), Resource | NotResource (exactly one
//       required, in both kinds), Condition (optional). Element names are case-sensitive.
//     - Principals: "*", {"AWS": "*"}, "arn:aws:iam::<12 digits>:root", a bare 12-digit account id
//       (the same as its root), "arn:aws:iam::<acct>:user/<path/name>", ":role/<path/name>",
//       "arn:aws:sts::<acct>:assumed-role/<role>/<session>", as a string or a non-empty array.
//       Principal ARNs match the request's principal EXACTLY (IAM: "You cannot use a wildcard to
//       match part of a principal name or ARN"); only the "aws" partition is accepted. {"Service":
//       ...} principals are accepted and match nobody: the appliance has no AWS services calling
//       it. Other principal types (Federated, CanonicalUser) are malformed. The root of ANOTHER
//       account is valid syntax and matches nobody here: there is only the appliance's account.
//     - Actions: "*" or "<service>:<pattern>" with * and ? wildcards, compared ASCII
//       case-insensitively ("kms:encrypt" matches "kms:Encrypt").
//     - Resources: "*" or an ARN pattern ("arn:" and six colon-separated fields), wildcards
//     allowed,
//       compared case-sensitively. In a key policy "*" means "this key".
//     - Conditions: String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike},
//       Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,GreaterThanEquals},
//       Date{same six} (ISO 8601 "YYYY-MM-DD[Thh:mm[:ss[.fff]](Z|+hh:mm)]" or epoch seconds),
//       Bool, Null, Arn{Equals,Like,NotEquals,NotLike}; the IfExists suffix (not on Null) and the
//       ForAnyValue: / ForAllValues: qualifiers (not on Null). IpAddress, NotIpAddress and
//       BinaryEquals are refused as unsupported; any other operator is refused as unknown.
//       ForAllValues with kms:EncryptionContext:<key> or aws:RequestTag/<key> is refused with AWS
//       KMS's OverlyPermissiveCondition message. Policy values are strings, booleans or numbers, or
//       non-empty arrays of them.
//     - Policy variables ("${...}") are not supported: under Version 2012-10-17 (where AWS would
//       substitute them) a Resource or condition value containing "${" is refused rather than
//       matched literally, since a Deny that silently never matches would widen access.
//     - Wildcards match bytes, not UTF-8 characters ("?" is one byte).
//  * Condition semantics (IAM User Guide, "Condition operators" and "Single-valued vs. multivalued
//    context keys"): values listed for one key are ORed; keys within one operator and operators
//    within one Condition are ANDed. A key missing from the request makes a positive operator false
//    and a negated one (StringNotEquals, ArnNotLike, ...) true; ...IfExists makes it true;
//    ForAllValues is true and ForAnyValue false. Null {"k": true} is true iff k is missing. A
//    negated operator is the negation of its positive form per request value: without a qualifier
//    it holds when NO request value matches a policy value; ForAllValues:StringNotLike holds when
//    every request value matches none. Bool compares "true"/"false" ignoring case.
//  * Condition keys are compared ASCII case-insensitively, the context-key part of
//    kms:EncryptionContext:<context-key> included. The brief assumed AWS keeps that part
//    case-sensitive; the AWS KMS Developer Guide says otherwise ("Case sensitivity of the
//    encryption context condition": "the condition key, which consists of the
//    kms:EncryptionContext: prefix and the context-key replacement, is not case sensitive"), and
//    this library follows AWS. Case-sensitive key checks go through kms:EncryptionContextKeys,
//    whose values keep their case. Because "Purpose" and "purpose" then name one condition key,
//    ConditionValues::SetEncryptionContext ADDS both values rather than letting one overwrite the
//    other (a Deny on either must still see it).
//  * Evaluate never fails and does no JSON work or heap allocation: patterns are lower-cased and
//    split at Parse time, and ConditionValues is looked up with a case-insensitive hash. Wildcard
//    matching is an iterative two-pointer glob, O(pattern x text) worst case, never exponential.
//  * Decide combines a key policy and an identity policy as described at its declaration.
//  * Thread-safety: a CompiledPolicy is immutable; Evaluate and Decide may run concurrently on one
//    policy from any number of threads. ConditionValues and PolicyRequest are plain values.
#ifndef KMS_FIRMWARE_AUTHZ_POLICY_H_
#define KMS_FIRMWARE_AUTHZ_POLICY_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace kms::firmware::authz {

// AWS KMS: "A key policy document cannot exceed 32 KB (32,768 bytes)."
inline constexpr std::size_t kMaxPolicyBytes = 32768;

// Condition keys the doors set (AWS KMS Developer Guide, "AWS KMS condition keys"). Spelling is
// AWS's; lookups ignore case.
namespace condition_keys {
inline constexpr std::string_view kCallerAccount = "kms:CallerAccount";
inline constexpr std::string_view kEncryptionContextPrefix = "kms:EncryptionContext:";
inline constexpr std::string_view kEncryptionContextKeys = "kms:EncryptionContextKeys";
inline constexpr std::string_view kEncryptionAlgorithm = "kms:EncryptionAlgorithm";
inline constexpr std::string_view kGrantIsForAwsResource = "kms:GrantIsForAWSResource";
inline constexpr std::string_view kGrantOperations = "kms:GrantOperations";
inline constexpr std::string_view kGranteePrincipal = "kms:GranteePrincipal";
inline constexpr std::string_view kRetiringPrincipal = "kms:RetiringPrincipal";
inline constexpr std::string_view kRequestAlias = "kms:RequestAlias";
inline constexpr std::string_view kResourceAliases = "kms:ResourceAliases";
inline constexpr std::string_view kKeySpec = "kms:KeySpec";
inline constexpr std::string_view kKeyUsage = "kms:KeyUsage";
inline constexpr std::string_view kKeyOrigin = "kms:KeyOrigin";
inline constexpr std::string_view kSigningAlgorithm = "kms:SigningAlgorithm";
inline constexpr std::string_view kMacAlgorithm = "kms:MacAlgorithm";
inline constexpr std::string_view kViaService = "kms:ViaService";
inline constexpr std::string_view kBypassPolicyLockoutSafetyCheck =
    "kms:BypassPolicyLockoutSafetyCheck";
}  // namespace condition_keys

// Condition values of one request: condition key (compared ASCII case-insensitively, stored
// lower-cased, the context-key part of kms:EncryptionContext:<key> included, as AWS does; see the
// contract) -> one or more string values, whose case is kept. A key absent from the map, or set to
// no values, is "missing" (for Null, ...IfExists and the negated operators).
class ConditionValues {
 public:
  // Replaces whatever `key` held. An empty `values` removes the key.
  void Set(std::string_view key, std::vector<std::string> values);
  void Set(std::string_view key, std::string value);
  // Appends one value to `key` (creating it), for multivalued keys and case-colliding pairs.
  void Add(std::string_view key, std::string value);
  // kms:EncryptionContext:<k> = v for every pair (added, so "Purpose"/"purpose" both count) and
  // kms:EncryptionContextKeys = the keys, exact case. An empty context sets nothing: both keys
  // stay missing, as AWS treats a request without encryption context.
  void SetEncryptionContext(const std::map<std::string, std::string>& context);

  // The values of `key` (any case), or nullptr when missing. Does not allocate.
  const std::vector<std::string>* Find(std::string_view key) const;
  bool empty() const { return values_.empty(); }

 private:
  struct CaseInsensitiveHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const;
  };
  struct CaseInsensitiveEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
  };
  std::unordered_map<std::string, std::vector<std::string>, CaseInsensitiveHash,
                     CaseInsensitiveEqual>
      values_;
};

struct PolicyRequest {
  std::string principal_arn;  // "arn:aws:iam::111122223333:user/alice" (or role/...)
  std::string account_id;     // "111122223333", the appliance's account
  std::string action;         // "kms:Encrypt"
  std::string resource_arn;   // "arn:aws:kms:us-east-1:111122223333:key/<uuid>", or "*" when no key
  ConditionValues conditions;
};

// What one policy says about one request.
struct PolicyVerdict {
  bool explicit_deny = false;  // a Deny statement matched (principal, action, resource, conditions)
  bool allows_principal = false;  // an Allow statement matched naming this principal (its ARN, "*",
                                  // {"AWS":"*"}, or NotPrincipal not listing it); in an identity
                                  // policy, any matching Allow (it names its holder implicitly)
  bool allows_account = false;    // an Allow statement matched naming the account root
                                  // ("arn:aws:iam::<acct>:root" or bare "<acct>") and the principal
                                  // belongs to that account: AWS delegates to the principal's
                                  // identity (IAM) policy, which the caller evaluates separately
  std::string deny_sid;           // the Sid of the first matching Deny, for the audit record
                                  // ("" if none or unnamed)
};

enum class PolicyKind {
  kKeyPolicy,  // every statement needs Principal (or NotPrincipal); Resource "*" means this key
  kIdentityPolicy,  // attached to a user: Principal/NotPrincipal forbidden; Resource required
};

class CompiledPolicy {
 public:
  // Parses and validates `json` (see the contract). `account_id` is the appliance's account: a
  // root principal naming it delegates to identity policies, any other account's root matches
  // nobody. Errors: InvalidArgument with Reason::kMalformedPolicy (malformed; the message is for
  // the client), ResourceExhausted with Reason::kLimitExceeded (over kMaxPolicyBytes),
  // InvalidArgument without a reason if `account_id` is not 12 digits (a caller bug).
  static StatusOr<std::shared_ptr<const CompiledPolicy>> Parse(std::string_view json,
                                                               PolicyKind kind,
                                                               std::string_view account_id);

  CompiledPolicy(const CompiledPolicy&) = delete;
  CompiledPolicy& operator=(const CompiledPolicy&) = delete;
  ~CompiledPolicy();

  // What this policy says about `request`. Thread-safe; no JSON work, no allocation beyond the
  // verdict's deny_sid.
  PolicyVerdict Evaluate(const PolicyRequest& request) const;

  // The document as given (GetKeyPolicy returns it verbatim).
  const std::string& text() const { return text_; }
  PolicyKind kind() const { return kind_; }
  std::size_t statement_count() const;
  // Whether any statement's Effect is Deny: a policy without one can refuse nothing, so a caller
  // asking only for explicit denials need not build a request for it.
  bool has_deny() const;

 private:
  struct Statement;  // the precompiled form of one statement (policy.cc)
  class Compiler;    // builds the statements from the parsed document (policy.cc)

  CompiledPolicy(std::string text, PolicyKind kind, std::string account_id);

  std::string text_;
  PolicyKind kind_;
  std::string account_id_;
  std::string account_root_arn_;  // "arn:aws:iam::<account_id_>:root"
  std::vector<Statement> statements_;
};

// AWS's default key policy for CreateKey without Policy, pretty-printed as GetKeyPolicy returns it
// (AWS KMS Developer Guide, "Getting a key policy"; two-space indent, " : " separators, "[ {"):
//   {
//     "Version" : "2012-10-17",
//     "Id" : "key-default-1",
//     "Statement" : [ {
//       "Sid" : "Enable IAM User Permissions",
//       "Effect" : "Allow",
//       "Principal" : {
//         "AWS" : "arn:aws:iam::<account>:root"
//       },
//       "Action" : "kms:*",
//       "Resource" : "*"
//     } ]
//   }
// (no trailing newline).
std::string DefaultKeyPolicy(std::string_view account_id);

// The whole decision for one request:
//   1. a Deny matched in the key policy or the identity policy -> kExplicitDeny;
//   2. else the key policy allows the principal itself -> kAllow;
//   3. else the key policy delegates to the account (allows_account) and the identity policy, if
//      there is one, allows (a matching Allow, since identity statements name no principal)
//      -> kAllow. With identity_policy == nullptr the delegation alone allows: nullptr means "this
//      principal has no identity-policy layer", NOT AWS's "no IAM policy, so no permission"; a
//      caller wanting AWS's strictness passes an identity policy for every principal;
//   4. with key_policy == nullptr (an operation on no key: CreateKey, ListKeys, ...) only the
//      identity policy can allow; both nullptr -> kImplicitDeny;
//   5. else kImplicitDeny.
enum class Decision { kImplicitDeny, kAllow, kExplicitDeny };
Decision Decide(const CompiledPolicy* key_policy, const CompiledPolicy* identity_policy,
                const PolicyRequest& request);

// AWS KMS's policy lockout safety check for CreateKey/PutKeyPolicy without
// BypassPolicyLockoutSafetyCheck: `new_key_policy` must let the caller of `request` make a later
// kms:PutKeyPolicy call on the key (request.action is replaced by "kms:PutKeyPolicy"; the other
// fields, conditions included, are used as given). OK, or InvalidArgument with
// Reason::kMalformedPolicy and AWS's text "The new key policy will not allow you to update the key
// policy in the future."
Status CheckPolicyLockoutSafety(const CompiledPolicy& new_key_policy,
                                const CompiledPolicy* identity_policy,
                                const PolicyRequest& request);

}  // namespace kms::firmware::authz

#endif  // KMS_FIRMWARE_AUTHZ_POLICY_H_
