#include "firmware/authz/principals.h"

#include <utility>

namespace kms::firmware::authz {

namespace {

using store::TransactionMode;

std::string MetaName(std::string_view name) {
  return std::string(kUserMetaPrefix) + std::string(name);
}

// IAM user names: 1..64 of [\w+=,.@-] (IAM CreateUser UserName), as access keys check them.
Status ValidateUserName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError("user name must be 1..64 characters");
  }
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '=' || c == ',' || c == '.' || c == '@' || c == '_' ||
                    c == '-';
    if (!ok) return InvalidArgumentError("user name must use only A-Z a-z 0-9 + = , . @ _ -");
  }
  return Status::Ok();
}

StatusOr<records::PrincipalRecord> ParseRecord(std::string_view value) {
  records::PrincipalRecord r;
  if (value.size() > static_cast<std::size_t>(INT32_MAX) ||
      !r.ParseFromArray(value.data(), static_cast<int>(value.size())) || r.record_version() == 0 ||
      r.name().empty()) {
    return DataLossError("principals: a stored user record does not parse");
  }
  if (r.record_version() > store::kRecordVersion) {
    return FailedPreconditionError("principals: a user record was written by newer firmware");
  }
  return r;
}

Status Write(store::Transaction& tx, records::PrincipalRecord r) {
  r.set_record_version(store::kRecordVersion);
  return tx.PutMeta(MetaName(r.name()), r.SerializeAsString());
}

}  // namespace

std::string UserArn(std::string_view account_id, std::string_view user_name) {
  return "arn:aws:iam::" + std::string(account_id) + ":user/" + std::string(user_name);
}

std::shared_ptr<const CompiledPolicy> AdministratorPolicy(std::string_view account_id) {
  auto p = CompiledPolicy::Parse(
      R"({"Version":"2012-10-17","Statement":[{"Sid":"Administrator","Effect":"Allow",)"
      R"("Action":"kms:*","Resource":"*"}]})",
      PolicyKind::kIdentityPolicy, account_id);
  // A constant document: failing to parse it is a programming error caught by every test.
  return p ? *p : nullptr;
}

PrincipalRegistry::PrincipalRegistry(store::MetadataStore& store, const Clock& clock,
                                     std::string account_id, std::int64_t cache_ttl_ms)
    : store_(store),
      clock_(clock),
      account_id_(std::move(account_id)),
      cache_ttl_ms_(cache_ttl_ms),
      administrator_policy_(AdministratorPolicy(account_id_)) {}

UserInfo PrincipalRegistry::ToInfo(const records::PrincipalRecord& r) const {
  return UserInfo{r.name(), UserArn(account_id_, r.name()), r.administrator(),
                  r.identity_policy(), r.creation_time_ms()};
}

StatusOr<std::optional<records::PrincipalRecord>> PrincipalRegistry::Read(store::Transaction& tx,
                                                                          std::string_view name) {
  auto value = tx.GetMeta(MetaName(name));
  if (!value) {
    if (value.error().code() == StatusCode::kNotFound) {
      return std::optional<records::PrincipalRecord>();
    }
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(auto r, ParseRecord(*value));
  return std::optional<records::PrincipalRecord>(std::move(r));
}

void PrincipalRegistry::Forget() {
  std::lock_guard lock(mu_);
  ++generation_;
  identities_.clear();
}

StatusOr<UserInfo> PrincipalRegistry::CreateUser(std::string_view name, bool administrator,
                                                 std::string_view identity_policy) {
  KMS_RETURN_IF_ERROR(ValidateUserName(name));
  if (!identity_policy.empty()) {
    KMS_RETURN_IF_ERROR(
        StatusOf(CompiledPolicy::Parse(identity_policy, PolicyKind::kIdentityPolicy, account_id_)));
  }
  records::PrincipalRecord r;
  r.set_name(std::string(name));
  r.set_administrator(administrator);
  r.set_identity_policy(std::string(identity_policy));
  r.set_creation_time_ms(clock_.NowMs());
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(auto existing, Read(*tx, name));
  if (existing) {
    return AlreadyExistsError("User with name " + std::string(name) + " already exists.");
  }
  KMS_RETURN_IF_ERROR(Write(*tx, r));
  KMS_RETURN_IF_ERROR(tx->Commit());
  Forget();
  return ToInfo(r);
}

StatusOr<UserInfo> PrincipalRegistry::GetUser(std::string_view name) {
  KMS_RETURN_IF_ERROR(ValidateUserName(name));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  KMS_ASSIGN_OR_RETURN(auto r, Read(*tx, name));
  if (!r) return NotFoundError("The user with name " + std::string(name) + " cannot be found.");
  return ToInfo(*r);
}

StatusOr<store::Page<UserInfo>> PrincipalRegistry::ListUsers(std::string_view after,
                                                            std::size_t limit) {
  if (limit == 0 || limit > store::kMaxPageLimit) {
    return InvalidArgumentError("page limit out of range");
  }
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  const std::string after_name = after.empty() ? std::string() : MetaName(after);
  KMS_ASSIGN_OR_RETURN(auto entries, tx->ListMeta(kUserMetaPrefix, after_name, limit));
  store::Page<UserInfo> page;
  page.truncated = entries.truncated;
  for (const auto& [meta_name, value] : entries.items) {
    KMS_ASSIGN_OR_RETURN(auto r, ParseRecord(value));
    page.items.push_back(ToInfo(r));
  }
  if (page.truncated && !page.items.empty()) page.next_marker = page.items.back().name;
  return page;
}

Status PrincipalRegistry::PutUserPolicy(std::string_view name, std::string_view identity_policy) {
  KMS_RETURN_IF_ERROR(ValidateUserName(name));
  if (!identity_policy.empty()) {
    KMS_RETURN_IF_ERROR(
        StatusOf(CompiledPolicy::Parse(identity_policy, PolicyKind::kIdentityPolicy, account_id_)));
  }
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(auto r, Read(*tx, name));
  if (!r) return NotFoundError("The user with name " + std::string(name) + " cannot be found.");
  r->set_identity_policy(std::string(identity_policy));
  KMS_RETURN_IF_ERROR(Write(*tx, *r));
  KMS_RETURN_IF_ERROR(tx->Commit());
  Forget();
  return Status::Ok();
}

Status PrincipalRegistry::DeleteUser(std::string_view name) {
  KMS_RETURN_IF_ERROR(ValidateUserName(name));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(auto r, Read(*tx, name));
  if (!r) return NotFoundError("The user with name " + std::string(name) + " cannot be found.");
  if (r->administrator()) {
    // The appliance must keep someone who can manage it: count the other administrators.
    bool other_admin = false;
    std::string after;
    for (;;) {
      KMS_ASSIGN_OR_RETURN(auto entries, tx->ListMeta(kUserMetaPrefix, after, 1000));
      for (const auto& [meta_name, value] : entries.items) {
        KMS_ASSIGN_OR_RETURN(auto other, ParseRecord(value));
        if (other.administrator() && other.name() != name) other_admin = true;
      }
      if (other_admin || !entries.truncated) break;
      after = entries.next_marker;
    }
    if (!other_admin) {
      return FailedPreconditionError("User " + std::string(name) +
                                     " is the last administrator and cannot be deleted.");
    }
  }
  KMS_RETURN_IF_ERROR(tx->DeleteMeta(MetaName(name)));
  KMS_RETURN_IF_ERROR(tx->Commit());
  Forget();
  return Status::Ok();
}

Status PrincipalRegistry::EnsureAdministrator(std::string_view name) {
  KMS_RETURN_IF_ERROR(ValidateUserName(name));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_ASSIGN_OR_RETURN(auto existing, Read(*tx, name));
  if (existing) return Status::Ok();
  records::PrincipalRecord r;
  r.set_name(std::string(name));
  r.set_administrator(true);
  r.set_creation_time_ms(clock_.NowMs());
  KMS_RETURN_IF_ERROR(Write(*tx, r));
  KMS_RETURN_IF_ERROR(tx->Commit());
  Forget();
  return Status::Ok();
}

StatusOr<std::shared_ptr<const CompiledPolicy>> PrincipalRegistry::Identity(std::string_view name) {
  std::uint64_t generation;
  {
    std::lock_guard lock(mu_);
    generation = generation_;
    auto it = identities_.find(name);
    if (it != identities_.end() &&
        std::chrono::steady_clock::now() - it->second.loaded <
            std::chrono::milliseconds(cache_ttl_ms_)) {
      return it->second.policy;
    }
  }
  std::shared_ptr<const CompiledPolicy> policy;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(auto r, Read(*tx, name));
    if (r && r->administrator()) {
      policy = administrator_policy_;
    } else if (r && !r->identity_policy().empty()) {
      // Stored policies were validated when written; one that no longer parses (newer firmware
      // wrote it) is a store problem, not "no policy".
      auto compiled =
          CompiledPolicy::Parse(r->identity_policy(), PolicyKind::kIdentityPolicy, account_id_);
      if (!compiled) {
        return DataLossError("principals: the stored identity policy of " + std::string(name) +
                             " does not parse: " + compiled.error().message());
      }
      policy = *compiled;
    }
  }
  if (cache_ttl_ms_ > 0) {
    std::lock_guard lock(mu_);
    if (generation == generation_) {
      if (identities_.size() >= 4096) identities_.clear();
      identities_[std::string(name)] = CachedIdentity{policy, std::chrono::steady_clock::now()};
    }
  }
  return policy;
}

}  // namespace kms::firmware::authz
