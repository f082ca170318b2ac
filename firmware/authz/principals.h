// PrincipalRegistry: the users of the appliance, the principals that access keys act
// for. Operators create them through the admin API; the access-control layer reads a user's
// identity policy on every decision that the key policy delegates to the account.
//
// Contract:
//  * A user is an IAM user NAME (1..64 of A-Z a-z 0-9 + = , . @ _ -, as AccessKeyRegistry checks)
//    and has the ARN "arn:aws:iam::<account>:user/<name>" in the appliance's account (`UserArn`).
//  * A user is an administrator (full rights over keys: the identity policy `kms:*` on `*`, and the
//    admin API) or carries an optional identity policy in AWS's IAM JSON language
//    (firmware/authz/policy.h, PolicyKind::kIdentityPolicy). Provisioning and dev mode create one
//    administrator ("admin" by default) with the bootstrap access key.
//  * Records (records::PrincipalRecord) live in the meta table under "authz.user.<name>".
//  * `Identity` is the per-request read: the compiled identity policy of a user, cached for
//    `cache_ttl_ms` and dropped at once by this registry's own writes (another process sharing the
//    store is seen within the TTL). An unknown user has no identity policy (nullptr), not an error:
//    an access key may predate users (stores written before the appliance had users).
//  * Errors: InvalidArgument for a malformed name or identity policy (the policy's message, which the
//    door answers as MalformedPolicyDocumentException); AlreadyExists for a duplicate user; NotFound
//    for an unknown one; FailedPrecondition deleting the last administrator; store failures pass
//    through.
//  * Lifetime: the store and clock outlive the registry. Thread-safety: every method may be called
//    concurrently.
#ifndef KMS_FIRMWARE_AUTHZ_PRINCIPALS_H_
#define KMS_FIRMWARE_AUTHZ_PRINCIPALS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "firmware/authz/policy.h"
#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"

namespace kms::firmware::authz {

inline constexpr std::string_view kUserMetaPrefix = "authz.user.";

struct UserInfo {
  std::string name;
  std::string arn;
  bool administrator = false;
  std::string identity_policy;  // "" = none
  std::int64_t creation_time_ms = 0;
};

// "arn:aws:iam::<account>:user/<name>".
std::string UserArn(std::string_view account_id, std::string_view user_name);

// The compiled identity policy of every administrator: {"Effect":"Allow","Action":"*","Resource":"*"}.
std::shared_ptr<const CompiledPolicy> AdministratorPolicy(std::string_view account_id);

class PrincipalRegistry {
 public:
  PrincipalRegistry(store::MetadataStore& store, const Clock& clock, std::string account_id,
                    std::int64_t cache_ttl_ms = 500);
  PrincipalRegistry(const PrincipalRegistry&) = delete;
  PrincipalRegistry& operator=(const PrincipalRegistry&) = delete;

  StatusOr<UserInfo> CreateUser(std::string_view name, bool administrator,
                                std::string_view identity_policy);
  StatusOr<UserInfo> GetUser(std::string_view name);
  // Users ordered by name, after `after`; limit 1..store::kMaxPageLimit.
  StatusOr<store::Page<UserInfo>> ListUsers(std::string_view after, std::size_t limit);
  // Replaces (or with "" removes) the identity policy of a user.
  Status PutUserPolicy(std::string_view name, std::string_view identity_policy);
  Status DeleteUser(std::string_view name);
  // Creates `name` as an administrator unless a user of that name exists (dev mode and provisioning
  // bootstrap; idempotent across restarts).
  Status EnsureAdministrator(std::string_view name);

  // What a request's caller may do by its own identity: the administrator policy, the user's
  // identity policy, or nullptr (no identity policy).
  StatusOr<std::shared_ptr<const CompiledPolicy>> Identity(std::string_view name);

  const std::string& account_id() const { return account_id_; }

 private:
  struct CachedIdentity {
    std::shared_ptr<const CompiledPolicy> policy;
    std::chrono::steady_clock::time_point loaded;
  };
  StatusOr<std::optional<records::PrincipalRecord>> Read(store::Transaction& tx,
                                                         std::string_view name);
  UserInfo ToInfo(const records::PrincipalRecord& r) const;
  void Forget();

  store::MetadataStore& store_;
  const Clock& clock_;
  const std::string account_id_;
  const std::int64_t cache_ttl_ms_;
  const std::shared_ptr<const CompiledPolicy> administrator_policy_;
  std::mutex mu_;  // guards the cache; never held across store calls
  std::uint64_t generation_ = 0;
  std::map<std::string, CachedIdentity, std::less<>> identities_;
};

}  // namespace kms::firmware::authz

#endif  // KMS_FIRMWARE_AUTHZ_PRINCIPALS_H_
