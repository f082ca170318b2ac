// AccessControl: who may do what with a key: key policies, grants, and the
// decision every operation of the doors asks for before it touches a key.
//
// Contract:
//  * Decision (AWS's evaluation logic, reduced to what an appliance with one account has):
//      1. an explicit Deny in the key policy or the caller's identity policy refuses (it beats every
//         allow, grants included);
//      2. an Allow in the key policy naming the caller (its ARN or "*") allows;
//      3. an Allow in the key policy naming the account root delegates to the caller's identity
//         policy (PrincipalRegistry::Identity): allowed if that policy allows too. Administrators'
//         identity policy is `kms:*` on `*`, so the default key policy lets administrators do
//         everything and other users nothing until a key policy statement or a grant says so;
//      4. a grant on the key whose grantee is the caller, whose operations include the request's
//         grant operation and whose constraints the request's encryption context meets allows;
//      5. otherwise the request is refused (default deny).
//    Account-level actions (CreateKey, ListKeys, ListAliases, GenerateRandom, ListRetirableGrants)
//    have no key policy: only step 1/3's identity policy decides.
//  * Key policies are stored as given (records::KeyPolicyRecord, "authz.key_policy.<key id>"); a
//    key without one has DefaultKeyPolicy(account). PutKeyPolicy (and CreateKey with a Policy) runs
//    AWS's lockout safety check unless bypassed: the new policy must still let the caller call
//    PutKeyPolicy, or it is refused (MalformedPolicyDocumentException "The new key policy will not
//    allow you to update the key policy in the future.").
//  * Grants (records::GrantRecord, "authz.grant.<key id>.<grant id>") take effect the moment
//    CreateGrant commits and stop the moment RetireGrant/RevokeGrant commits, in this process; a
//    process sharing the store sees them within `cache_ttl_ms`. Grant tokens name a grant; one
//    presented with a request is read from the store uncached, so it works at once even across
//    processes (AWS's "use the grant before it is eventually consistent"). A malformed token is
//    InvalidGrantTokenException; a token whose grant is gone grants nothing.
//  * Compiled key policies and grants are cached per key (the decision must not cost a store read per
//    request): entries live `cache_ttl_ms` and are dropped on every write made here.
//  * A key's policy and grants are deleted with the key (DeleteKeyRecords).
//  * Errors: InvalidArgument with Reason::kMalformedPolicy / kInvalidGrantToken / kInvalidGrantId /
//    none (validation), NotFound for an unknown grant, ResourceExhausted kLimitExceeded beyond
//    `max_grants_per_key`; store and HSM failures pass through. `Decide` and `DecideRetireGrant`
//    answer a decision, never PermissionDenied: the door words the AccessDeniedException.
//  * Lifetime: hsm, store, principals and clock outlive this. Thread-safety: fully concurrent.
#ifndef KMS_FIRMWARE_AUTHZ_ACCESS_CONTROL_H_
#define KMS_FIRMWARE_AUTHZ_ACCESS_CONTROL_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "firmware/authz/policy.h"
#include "firmware/authz/principals.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"
#include "hal/hsm.h"

namespace kms::firmware::authz {

inline constexpr std::string_view kKeyPolicyMetaPrefix = "authz.key_policy.";
inline constexpr std::string_view kGrantMetaPrefix = "authz.grant.";
inline constexpr std::string_view kDefaultPolicyName = "default";

// AWS's GrantOperation enum (docs/aws-kms-protocol.md "Key specs and algorithms"), in its order.
inline constexpr std::string_view kGrantOperations[] = {
    "Decrypt",      "Encrypt",      "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom", "ReEncryptTo", "Sign",            "Verify",
    "GetPublicKey", "CreateGrant",  "RetireGrant",     "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret"};
bool IsGrantOperation(std::string_view name);

struct AccessControlConfig {
  std::string account_id = "111122223333";
  std::string region = "us-east-1";  // for key ARNs of keys a grant token names
  std::int64_t cache_ttl_ms = 500;
  std::size_t max_grants_per_key = 50'000;  // AWS's quota (docs/aws-kms-protocol.md "Limits")
  std::size_t max_policy_bytes = 32'768;    // AWS: 32 KB
};

// The authenticated caller of a request.
struct Caller {
  std::string principal_arn;   // "arn:aws:iam::<account>:user/<name>"
  std::string user_name;       // "<name>", for the identity policy
  bool administrator = false;  // the access key's own administrator flag (operator rights)
};

// The key a request acts on, as the key service identified it (KeyService::IdentifyKey).
struct KeyRef {
  std::string key_id;  // bare id
  std::string arn;
};

struct AccessRequest {
  std::string action;           // "kms:Encrypt"
  const KeyRef* key = nullptr;  // null for account-level actions
  // Account-level actions only (key null): the resource the identity policy is evaluated on, "*"
  // when empty; an alias ARN for the alias half of CreateAlias/UpdateAlias/DeleteAlias.
  std::string resource;
  // The GrantOperation this action can be granted as ("" = not grantable, e.g. PutKeyPolicy).
  std::string grant_operation;
  const EncryptionContext* encryption_context = nullptr;
  // Request-specific condition keys (kms:EncryptionAlgorithm, kms:RequestAlias, ...); the standard
  // ones (kms:CallerAccount, kms:EncryptionContext*, kms:GrantIsForAWSResource, aws:PrincipalArn)
  // are added by Decide.
  ConditionValues conditions;
  std::vector<std::string> grant_tokens;
};

struct AccessDecision {
  bool allowed = false;
  // "allow:key-policy", "allow:identity-policy", "allow:grant", "deny:explicit", "deny:implicit".
  std::string basis;
  std::string grant_id;  // the grant that allowed it
};

// GrantConstraints: at most one of the two (AWS refuses both). A present but empty map is a
// constraint as given and is stored and read back as such: Equals {} admits only requests without
// an encryption context; Subset {} admits every context.
struct GrantConstraints {
  std::optional<EncryptionContext> encryption_context_subset;
  std::optional<EncryptionContext> encryption_context_equals;
};

struct GrantSpec {
  KeyRef key;
  std::string grantee_principal;
  std::string retiring_principal;  // "" = none
  std::vector<std::string> operations;
  GrantConstraints constraints;
  std::string name;  // "" = none (no idempotence)
};

struct GrantInfo {
  std::string key_id;  // bare id
  std::string grant_id;
  std::string name;
  std::int64_t creation_time_ms = 0;
  std::string grantee_principal;
  std::string retiring_principal;
  std::string issuing_account;
  std::vector<std::string> operations;
  GrantConstraints constraints;
};

struct CreatedGrant {
  std::string grant_id;
  std::string grant_token;
};

class AccessControl {
 public:
  AccessControl(hal::Hsm& hsm, store::MetadataStore& store, PrincipalRegistry& principals,
                const Clock& clock, AccessControlConfig config = {});
  AccessControl(const AccessControl&) = delete;
  AccessControl& operator=(const AccessControl&) = delete;

  StatusOr<AccessDecision> Decide(const Caller& caller, const AccessRequest& request);

  // Whether the key policy of `key` explicitly denies `caller` the `action`: a Deny statement
  // matches its principal ("*", the account root, or its ARN), action, resource and conditions
  // (`conditions` plus the standard keys Decide sets). For callers whose rights come from outside
  // this class (the Vault door's tokens): only the key policy's Deny is consulted, never its
  // Allows, identity policies or grants. Reads the policy through the per-key cache; store
  // failures pass through.
  StatusOr<bool> ExplicitlyDenies(const Caller& caller, std::string_view action, const KeyRef& key,
                                  const ConditionValues& conditions = {});

  // ---- key policies ----
  // Parses a policy for `key`: MalformedPolicy (with the parser's message) or LimitExceeded-free
  // InvalidArgument for oversize. With `check_lockout`, also refuses a policy that would not let
  // `caller` call PutKeyPolicy afterwards.
  StatusOr<std::shared_ptr<const CompiledPolicy>> CheckKeyPolicy(std::string_view policy,
                                                                 const Caller& caller,
                                                                 const KeyRef& key,
                                                                 bool check_lockout);
  // The text GetKeyPolicy answers (the default policy for a key that never had one put).
  StatusOr<std::string> GetKeyPolicy(const KeyRef& key);
  Status PutKeyPolicy(const Caller& caller, const KeyRef& key, std::string_view policy,
                      bool bypass_lockout_check);
  // Writes the record of a checked policy inside `tx` (CreateKey stores its Policy in the same
  // transaction that activates the key); the caller calls ForgetKey after committing.
  Status StoreKeyPolicy(store::Transaction& tx, std::string_view key_id, std::string_view policy);

  // ---- grants ----
  // `allowed_by` is the decision that let the caller call CreateGrant: when it was a grant, the new
  // grant may not give more than that grant (its operations must be a subset, its constraints the
  // same), as AWS requires.
  StatusOr<CreatedGrant> CreateGrant(const Caller& caller, const GrantSpec& spec,
                                     const AccessDecision& allowed_by);
  // Grants of one key ordered by grant id, optionally only `grant_id` or one grantee.
  StatusOr<store::Page<GrantInfo>> ListGrants(const KeyRef& key, std::string_view grant_id,
                                              std::string_view grantee, std::string_view after,
                                              std::size_t limit);
  // Grants of every key whose retiring principal is `retiring_principal`.
  StatusOr<store::Page<GrantInfo>> ListRetirableGrants(std::string_view retiring_principal,
                                                       std::string_view after, std::size_t limit);
  // RetireGrant's decision: the grant named by token, or by key + grant id (both when given must
  // agree), read uncached. Allowed ("allow:retiring-principal") for the retiring principal,
  // ("allow:grantee") for the grantee when the grant includes RetireGrant, and for callers the
  // key policy (or their identity policy through it) allows kms:RetireGrant. `key` is the key the
  // request named (null when only a token was given); the decision's key and grant are returned
  // in `decided`. NotFound for a grant that does not exist; a refusal is a decision, not an error.
  struct RetireTarget {
    std::string key_id;
    std::string grant_id;
  };
  StatusOr<AccessDecision> DecideRetireGrant(const Caller& caller,
                                             std::optional<std::string_view> grant_token,
                                             const KeyRef* key,
                                             std::optional<std::string_view> grant_id,
                                             RetireTarget& decided);
  // Deletes one grant: RetireGrant and RevokeGrant once the door has decided them. NotFound when
  // it is already gone; InvalidGrantId for a malformed id.
  Status RetireGrant(const KeyRef& key, std::string_view grant_id);
  Status RevokeGrant(const KeyRef& key, std::string_view grant_id);
  // The key and grant a token names (InvalidGrantToken when malformed). Does not read the store.
  StatusOr<std::pair<std::string, std::string>> ParseGrantToken(std::string_view token) const;

  // Drops the cached policy and grants of a key (after a write made outside this class).
  void ForgetKey(std::string_view key_id);

  // Deletes a key's policy and every grant on it, inside `tx`: KeyService calls it in the
  // transaction that destroys the key (KeyServiceConfig::on_destroy), so a destroyed key leaves
  // nothing behind. Static: it touches only the store (a process's cache of the key expires, and
  // the key no longer exists to be decided on).
  static Status DeleteKeyRecords(store::Transaction& tx, std::string_view key_id);

  const AccessControlConfig& config() const { return config_; }

 private:
  struct CompiledGrant {
    GrantInfo info;
  };
  struct KeyAuthz {
    std::shared_ptr<const CompiledPolicy> policy;
    // By grantee ARN: a decision looks at the caller's grants only.
    std::unordered_multimap<std::string, std::shared_ptr<const CompiledGrant>> grants;
  };
  struct CachedKeyAuthz {
    std::shared_ptr<const KeyAuthz> authz;
    std::chrono::steady_clock::time_point loaded;
  };

  StatusOr<std::shared_ptr<const KeyAuthz>> LoadKey(const std::string& key_id);
  StatusOr<std::shared_ptr<const CompiledPolicy>> ParseStoredPolicy(std::string_view text);
  PolicyRequest MakePolicyRequest(const Caller& caller, const AccessRequest& request) const;
  // Steps 1-3 for one policy pair; `explicit_deny` out.
  bool PolicyAllows(const CompiledPolicy* key_policy, const CompiledPolicy* identity,
                    const PolicyRequest& request, bool& explicit_deny, std::string& basis) const;
  static bool GrantApplies(const GrantInfo& grant, std::string_view operation,
                           const EncryptionContext* context);
  StatusOr<std::optional<GrantInfo>> ReadGrant(store::Transaction& tx, std::string_view key_id,
                                               std::string_view grant_id);
  std::string MakeGrantToken(std::string_view key_id, std::string_view grant_id,
                             std::string_view nonce) const;

  hal::Hsm& hsm_;
  store::MetadataStore& store_;
  PrincipalRegistry& principals_;
  const Clock& clock_;
  const AccessControlConfig config_;
  const std::shared_ptr<const CompiledPolicy> default_policy_;

  std::mutex mu_;  // guards the cache; never held across store calls
  std::uint64_t generation_ = 0;
  std::map<std::string, CachedKeyAuthz, std::less<>> keys_;
};

}  // namespace kms::firmware::authz

#endif  // KMS_FIRMWARE_AUTHZ_ACCESS_CONTROL_H_
