#include "firmware/authz/access_control.h"

#include <algorithm>
#include <set>
#include <utility>

#include "base/encoding.h"

namespace kms::firmware::authz {

namespace {

using store::TransactionMode;

constexpr std::string_view kGrantTokenPrefix = "KMSGT1";

std::string PolicyMetaName(std::string_view key_id) {
  return std::string(kKeyPolicyMetaPrefix) + std::string(key_id);
}
std::string GrantKeyPrefix(std::string_view key_id) {
  return std::string(kGrantMetaPrefix) + std::string(key_id) + ".";
}
std::string GrantMetaName(std::string_view key_id, std::string_view grant_id) {
  return GrantKeyPrefix(key_id) + std::string(grant_id);
}

bool IsGrantId(std::string_view id) {
  if (id.size() != 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Status MalformedGrantToken() {
  return InvalidArgumentError("Invalid grant token.", Reason::kInvalidGrantToken);
}

EncryptionContext ToContext(const google::protobuf::Map<std::string, std::string>& m) {
  return EncryptionContext(m.begin(), m.end());
}

GrantInfo ToInfo(const records::GrantRecord& r, std::string_view account_id) {
  GrantInfo g;
  g.key_id = r.key_id();
  g.grant_id = r.grant_id();
  g.name = r.name();
  g.creation_time_ms = r.creation_time_ms();
  g.grantee_principal = r.grantee_principal();
  g.retiring_principal = r.retiring_principal();
  g.issuing_account = "arn:aws:iam::" + std::string(account_id) + ":root";
  g.operations.assign(r.operations().begin(), r.operations().end());
  if (r.has_encryption_context_subset() || !r.encryption_context_subset().empty()) {
    g.constraints.encryption_context_subset = ToContext(r.encryption_context_subset());
  }
  if (r.has_encryption_context_equals() || !r.encryption_context_equals().empty()) {
    g.constraints.encryption_context_equals = ToContext(r.encryption_context_equals());
  }
  return g;
}

StatusOr<records::GrantRecord> ParseGrant(std::string_view value) {
  records::GrantRecord r;
  if (value.size() > static_cast<std::size_t>(INT32_MAX) ||
      !r.ParseFromArray(value.data(), static_cast<int>(value.size())) || r.record_version() == 0 ||
      !IsGrantId(r.grant_id())) {
    return DataLossError("access control: a stored grant does not parse");
  }
  if (r.record_version() > store::kRecordVersion) {
    return FailedPreconditionError("access control: a grant was written by newer firmware");
  }
  return r;
}

bool SameConstraints(const GrantConstraints& a, const GrantConstraints& b) {
  return a.encryption_context_subset == b.encryption_context_subset &&
         a.encryption_context_equals == b.encryption_context_equals;
}

}  // namespace

bool IsGrantOperation(std::string_view name) {
  return std::find(std::begin(kGrantOperations), std::end(kGrantOperations), name) !=
         std::end(kGrantOperations);
}

AccessControl::AccessControl(hal::Hsm& hsm, store::MetadataStore& store,
                             PrincipalRegistry& principals, const Clock& clock,
                             AccessControlConfig config)
    : hsm_(hsm),
      store_(store),
      principals_(principals),
      clock_(clock),
      config_(std::move(config)),
      default_policy_([this] {
        auto p = CompiledPolicy::Parse(DefaultKeyPolicy(config_.account_id),
                                       PolicyKind::kKeyPolicy, config_.account_id);
        return p ? *p : nullptr;
      }()) {}

void AccessControl::ForgetKey(std::string_view key_id) {
  std::lock_guard lock(mu_);
  ++generation_;
  auto it = keys_.find(key_id);
  if (it != keys_.end()) keys_.erase(it);
}

StatusOr<std::shared_ptr<const CompiledPolicy>> AccessControl::ParseStoredPolicy(
    std::string_view text) {
  auto compiled = CompiledPolicy::Parse(text, PolicyKind::kKeyPolicy, config_.account_id);
  if (!compiled) {
    // Validated when written: a stored policy that no longer parses is damage, never "no policy".
    return DataLossError("access control: a stored key policy does not parse: " +
                         compiled.error().message());
  }
  return *compiled;
}

StatusOr<std::shared_ptr<const AccessControl::KeyAuthz>> AccessControl::LoadKey(
    const std::string& key_id) {
  std::uint64_t generation;
  {
    std::lock_guard lock(mu_);
    generation = generation_;
    auto it = keys_.find(key_id);
    if (it != keys_.end() && std::chrono::steady_clock::now() - it->second.loaded <
                                 std::chrono::milliseconds(config_.cache_ttl_ms)) {
      return it->second.authz;
    }
  }
  auto authz = std::make_shared<KeyAuthz>();
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    auto value = tx->GetMeta(PolicyMetaName(key_id));
    if (value) {
      records::KeyPolicyRecord r;
      if (!r.ParseFromArray(value->data(), static_cast<int>(value->size())) ||
          r.record_version() == 0) {
        return DataLossError("access control: a stored key policy record does not parse");
      }
      KMS_ASSIGN_OR_RETURN(authz->policy, ParseStoredPolicy(r.policy()));
    } else if (value.error().code() == StatusCode::kNotFound) {
      authz->policy = default_policy_;
    } else {
      return value.error();
    }
    std::string after;
    for (;;) {
      KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(GrantKeyPrefix(key_id), after, 5000));
      for (const auto& [name, v] : page.items) {
        KMS_ASSIGN_OR_RETURN(auto r, ParseGrant(v));
        auto g = std::make_shared<CompiledGrant>(CompiledGrant{ToInfo(r, config_.account_id)});
        authz->grants.emplace(g->info.grantee_principal, std::move(g));
      }
      if (!page.truncated) break;
      after = page.next_marker;
    }
  }
  if (config_.cache_ttl_ms > 0) {
    std::lock_guard lock(mu_);
    if (generation == generation_) {
      if (keys_.size() >= 4096) keys_.clear();
      keys_[key_id] = CachedKeyAuthz{authz, std::chrono::steady_clock::now()};
    }
  }
  return std::shared_ptr<const KeyAuthz>(std::move(authz));
}

PolicyRequest AccessControl::MakePolicyRequest(const Caller& caller,
                                               const AccessRequest& request) const {
  PolicyRequest p;
  p.principal_arn = caller.principal_arn;
  p.account_id = config_.account_id;
  p.action = request.action;
  p.resource_arn = request.key ? request.key->arn
                                : (request.resource.empty() ? "*" : request.resource);
  p.conditions = request.conditions;
  p.conditions.Set("kms:CallerAccount", config_.account_id);
  p.conditions.Set("kms:GrantIsForAWSResource", "false");
  p.conditions.Set("aws:PrincipalArn", caller.principal_arn);
  p.conditions.Set("aws:PrincipalAccount", config_.account_id);
  p.conditions.Set("aws:username", caller.user_name);
  if (request.encryption_context) p.conditions.SetEncryptionContext(*request.encryption_context);
  return p;
}

bool AccessControl::PolicyAllows(const CompiledPolicy* key_policy, const CompiledPolicy* identity,
                                 const PolicyRequest& request, bool& explicit_deny,
                                 std::string& basis) const {
  PolicyVerdict key_verdict;
  PolicyVerdict identity_verdict;
  if (key_policy) key_verdict = key_policy->Evaluate(request);
  if (identity) identity_verdict = identity->Evaluate(request);
  // An identity policy's statements have no Principal: a match is an allow for its user.
  const bool identity_allows = identity_verdict.allows_principal || identity_verdict.allows_account;
  if (key_verdict.explicit_deny || identity_verdict.explicit_deny) {
    explicit_deny = true;
    basis = "deny:explicit";
    return false;
  }
  if (key_policy == nullptr) {
    if (identity_allows) basis = "allow:identity-policy";
    return identity_allows;
  }
  if (key_verdict.allows_principal) {
    basis = "allow:key-policy";
    return true;
  }
  if (key_verdict.allows_account && identity_allows) {
    basis = "allow:identity-policy";
    return true;
  }
  return false;
}

bool AccessControl::GrantApplies(const GrantInfo& grant, std::string_view operation,
                                 const EncryptionContext* context) {
  if (std::find(grant.operations.begin(), grant.operations.end(), operation) ==
      grant.operations.end()) {
    return false;
  }
  static const EncryptionContext kEmpty;
  const EncryptionContext& ec = context ? *context : kEmpty;
  if (grant.constraints.encryption_context_equals) {
    return ec == *grant.constraints.encryption_context_equals;
  }
  if (grant.constraints.encryption_context_subset) {
    for (const auto& [k, v] : *grant.constraints.encryption_context_subset) {
      auto it = ec.find(k);
      if (it == ec.end() || it->second != v) return false;
    }
  }
  return true;
}

StatusOr<AccessDecision> AccessControl::Decide(const Caller& caller, const AccessRequest& request) {
  // Tokens are checked for shape first: a malformed one is the caller's error whatever else holds.
  std::vector<std::pair<std::string, std::string>> tokens;
  for (const auto& t : request.grant_tokens) {
    KMS_ASSIGN_OR_RETURN(auto named, ParseGrantToken(t));
    tokens.push_back(std::move(named));
  }
  KMS_ASSIGN_OR_RETURN(auto identity, principals_.Identity(caller.user_name));
  if (caller.administrator) identity = AdministratorPolicy(config_.account_id);
  const PolicyRequest preq = MakePolicyRequest(caller, request);

  AccessDecision d;
  bool explicit_deny = false;
  std::shared_ptr<const KeyAuthz> authz;
  if (request.key) {
    KMS_ASSIGN_OR_RETURN(authz, LoadKey(request.key->key_id));
  }
  if (PolicyAllows(authz ? authz->policy.get() : nullptr, identity.get(), preq, explicit_deny,
                   d.basis)) {
    d.allowed = true;
    return d;
  }
  if (explicit_deny || !request.key || request.grant_operation.empty()) {
    if (!explicit_deny) d.basis = "deny:implicit";
    return d;
  }
  auto [begin, end] = authz->grants.equal_range(caller.principal_arn);
  for (auto it = begin; it != end; ++it) {
    if (GrantApplies(it->second->info, request.grant_operation, request.encryption_context)) {
      d.allowed = true;
      d.basis = "allow:grant";
      d.grant_id = it->second->info.grant_id;
      return d;
    }
  }
  // Grants named by tokens: read uncached, so a grant made a moment ago elsewhere works at once.
  for (const auto& [key_id, grant_id] : tokens) {
    if (key_id != request.key->key_id) continue;
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(auto grant, ReadGrant(*tx, key_id, grant_id));
    if (grant && grant->grantee_principal == caller.principal_arn &&
        GrantApplies(*grant, request.grant_operation, request.encryption_context)) {
      d.allowed = true;
      d.basis = "allow:grant";
      d.grant_id = grant->grant_id;
      return d;
    }
  }
  d.basis = "deny:implicit";
  return d;
}

StatusOr<bool> AccessControl::ExplicitlyDenies(const Caller& caller, std::string_view action,
                                               const KeyRef& key,
                                               const ConditionValues& conditions) {
  KMS_ASSIGN_OR_RETURN(auto authz, LoadKey(key.key_id));
  // Most keys' policies have no Deny at all (the default policy has none): answer without
  // building the request, which costs more than the rest of the check.
  if (authz->policy == nullptr || !authz->policy->has_deny()) return false;
  AccessRequest request;
  request.action = std::string(action);
  request.key = &key;
  request.conditions = conditions;
  const PolicyRequest preq = MakePolicyRequest(caller, request);
  return authz->policy->Evaluate(preq).explicit_deny;
}

// ---- key policies -----------------------------------------------------------------------------------

StatusOr<std::shared_ptr<const CompiledPolicy>> AccessControl::CheckKeyPolicy(
    std::string_view policy, const Caller& caller, const KeyRef& key, bool check_lockout) {
  if (policy.size() > config_.max_policy_bytes) {
    return InvalidArgumentError("Policy exceeds the maximum size of " +
                                    std::to_string(config_.max_policy_bytes) + " bytes.",
                                Reason::kMalformedPolicy);
  }
  auto compiled = CompiledPolicy::Parse(policy, PolicyKind::kKeyPolicy, config_.account_id);
  if (!compiled) {
    return InvalidArgumentError(compiled.error().message(), Reason::kMalformedPolicy);
  }
  if (check_lockout) {
    KMS_ASSIGN_OR_RETURN(auto identity, principals_.Identity(caller.user_name));
    if (caller.administrator) identity = AdministratorPolicy(config_.account_id);
    AccessRequest put;
    put.action = "kms:PutKeyPolicy";
    put.key = &key;
    const PolicyRequest preq = MakePolicyRequest(caller, put);
    bool explicit_deny = false;
    std::string basis;
    if (!PolicyAllows(compiled->get(), identity.get(), preq, explicit_deny, basis)) {
      return InvalidArgumentError(
          "The new key policy will not allow you to update the key policy in the future.",
          Reason::kMalformedPolicy);
    }
  }
  return *compiled;
}

StatusOr<std::string> AccessControl::GetKeyPolicy(const KeyRef& key) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  auto value = tx->GetMeta(PolicyMetaName(key.key_id));
  if (!value) {
    if (value.error().code() == StatusCode::kNotFound) return DefaultKeyPolicy(config_.account_id);
    return value.error();
  }
  records::KeyPolicyRecord r;
  if (!r.ParseFromArray(value->data(), static_cast<int>(value->size())) ||
      r.record_version() == 0) {
    return DataLossError("access control: a stored key policy record does not parse");
  }
  return r.policy();
}

Status AccessControl::StoreKeyPolicy(store::Transaction& tx, std::string_view key_id,
                                     std::string_view policy) {
  records::KeyPolicyRecord r;
  r.set_record_version(store::kRecordVersion);
  r.set_key_id(std::string(key_id));
  r.set_policy(std::string(policy));
  r.set_last_updated_time_ms(clock_.NowMs());
  return tx.PutMeta(PolicyMetaName(key_id), r.SerializeAsString());
}

Status AccessControl::PutKeyPolicy(const Caller& caller, const KeyRef& key, std::string_view policy,
                                   bool bypass_lockout_check) {
  KMS_RETURN_IF_ERROR(StatusOf(CheckKeyPolicy(policy, caller, key, !bypass_lockout_check)));
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  KMS_RETURN_IF_ERROR(StoreKeyPolicy(*tx, key.key_id, policy));
  Status committed = tx->Commit();
  ForgetKey(key.key_id);
  return committed;
}

// ---- grants ------------------------------------------------------------------------------------------

std::string AccessControl::MakeGrantToken(std::string_view key_id, std::string_view grant_id,
                                          std::string_view nonce) const {
  const std::string inner =
      std::string(key_id) + ":" + std::string(grant_id) + ":" + std::string(nonce);
  return std::string(kGrantTokenPrefix) + Base64Encode(AsBytes(inner));
}

StatusOr<std::pair<std::string, std::string>> AccessControl::ParseGrantToken(
    std::string_view token) const {
  if (!token.starts_with(kGrantTokenPrefix)) return MalformedGrantToken();
  auto decoded = Base64Decode(token.substr(kGrantTokenPrefix.size()));
  if (!decoded) return MalformedGrantToken();
  const std::string inner(decoded->begin(), decoded->end());
  const auto first = inner.find(':');
  const auto second = first == std::string::npos ? first : inner.find(':', first + 1);
  if (second == std::string::npos) return MalformedGrantToken();
  std::string key_id = inner.substr(0, first);
  std::string grant_id = inner.substr(first + 1, second - first - 1);
  const std::string nonce = inner.substr(second + 1);
  if (!ParseKeyId(key_id) || !IsGrantId(grant_id) || nonce.size() != 32) {
    return MalformedGrantToken();
  }
  return std::make_pair(std::move(key_id), std::move(grant_id));
}

StatusOr<std::optional<GrantInfo>> AccessControl::ReadGrant(store::Transaction& tx,
                                                            std::string_view key_id,
                                                            std::string_view grant_id) {
  auto value = tx.GetMeta(GrantMetaName(key_id, grant_id));
  if (!value) {
    if (value.error().code() == StatusCode::kNotFound) return std::optional<GrantInfo>();
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(auto r, ParseGrant(*value));
  return std::optional<GrantInfo>(ToInfo(r, config_.account_id));
}

StatusOr<CreatedGrant> AccessControl::CreateGrant(const Caller& caller, const GrantSpec& spec,
                                                  const AccessDecision& allowed_by) {
  if (spec.constraints.encryption_context_subset && spec.constraints.encryption_context_equals) {
    return InvalidArgumentError(
        "Constraints may hold EncryptionContextSubset or EncryptionContextEquals, not both.");
  }
  std::set<std::string> ops(spec.operations.begin(), spec.operations.end());
  if (!allowed_by.grant_id.empty()) {
    // A grant that allows CreateGrant passes on no more than it has (AWS: the child grant's
    // operations are a subset of the parent's and its constraints at least as strict).
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(auto parent, ReadGrant(*tx, spec.key.key_id, allowed_by.grant_id));
    if (!parent) return PermissionDeniedError("the grant that allowed CreateGrant is gone");
    for (const auto& op : ops) {
      if (std::find(parent->operations.begin(), parent->operations.end(), op) ==
          parent->operations.end()) {
        return PermissionDeniedError("a grant cannot give an operation it does not have: " + op);
      }
    }
    const bool parent_constrained = parent->constraints.encryption_context_subset ||
                                    parent->constraints.encryption_context_equals;
    if (parent_constrained && !SameConstraints(parent->constraints, spec.constraints)) {
      return PermissionDeniedError(
          "a grant cannot give weaker encryption context constraints than its own");
    }
  }
  KMS_ASSIGN_OR_RETURN(SecretBytes random, hsm_.GenerateRandom(48));
  const ByteView r = random.ExposeSecret();
  const std::string nonce = HexEncode(r.subspan(32, 16));

  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  std::size_t count = 0;
  std::string after;
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(GrantKeyPrefix(spec.key.key_id), after, 5000));
    count += page.items.size();
    if (!spec.name.empty()) {
      for (const auto& [name, value] : page.items) {
        KMS_ASSIGN_OR_RETURN(auto existing, ParseGrant(value));
        const GrantInfo g = ToInfo(existing, config_.account_id);
        // Idempotence by Name: the same request again answers the same grant (with a new token).
        if (g.name == spec.name && g.grantee_principal == spec.grantee_principal &&
            g.retiring_principal == spec.retiring_principal &&
            std::set<std::string>(g.operations.begin(), g.operations.end()) == ops &&
            SameConstraints(g.constraints, spec.constraints)) {
          return CreatedGrant{g.grant_id, MakeGrantToken(spec.key.key_id, g.grant_id, nonce)};
        }
      }
    }
    if (!page.truncated) break;
    after = page.next_marker;
  }
  if (count >= config_.max_grants_per_key) {
    return ResourceExhaustedError("The request was rejected because a quota was exceeded: at most " +
                                      std::to_string(config_.max_grants_per_key) +
                                      " grants per key.",
                                  Reason::kLimitExceeded);
  }
  records::GrantRecord rec;
  rec.set_record_version(store::kRecordVersion);
  rec.set_key_id(spec.key.key_id);
  rec.set_grant_id(HexEncode(r.subspan(0, 32)));
  rec.set_name(spec.name);
  rec.set_grantee_principal(spec.grantee_principal);
  rec.set_retiring_principal(spec.retiring_principal);
  rec.set_issuing_principal(caller.principal_arn);
  for (const auto& op : ops) rec.add_operations(op);
  if (spec.constraints.encryption_context_subset) {
    rec.set_has_encryption_context_subset(true);
    for (const auto& [k, v] : *spec.constraints.encryption_context_subset) {
      (*rec.mutable_encryption_context_subset())[k] = v;
    }
  }
  if (spec.constraints.encryption_context_equals) {
    rec.set_has_encryption_context_equals(true);
    for (const auto& [k, v] : *spec.constraints.encryption_context_equals) {
      (*rec.mutable_encryption_context_equals())[k] = v;
    }
  }
  rec.set_creation_time_ms(clock_.NowMs());
  KMS_RETURN_IF_ERROR(
      tx->PutMeta(GrantMetaName(spec.key.key_id, rec.grant_id()), rec.SerializeAsString()));
  Status committed = tx->Commit();
  ForgetKey(spec.key.key_id);
  KMS_RETURN_IF_ERROR(committed);
  return CreatedGrant{rec.grant_id(), MakeGrantToken(spec.key.key_id, rec.grant_id(), nonce)};
}

StatusOr<store::Page<GrantInfo>> AccessControl::ListGrants(const KeyRef& key,
                                                           std::string_view grant_id,
                                                           std::string_view grantee,
                                                           std::string_view after,
                                                           std::size_t limit) {
  if (!grant_id.empty() && !IsGrantId(grant_id)) {
    return InvalidArgumentError("Invalid grant ID.", Reason::kInvalidGrantId);
  }
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  store::Page<GrantInfo> out;
  std::string cursor = after.empty() ? std::string() : GrantMetaName(key.key_id, after);
  // Filters apply after the store's paging: read pages until `limit` matches or the end.
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(GrantKeyPrefix(key.key_id), cursor, 1000));
    for (const auto& [name, value] : page.items) {
      cursor = name;
      KMS_ASSIGN_OR_RETURN(auto r, ParseGrant(value));
      if (!grant_id.empty() && r.grant_id() != grant_id) continue;
      if (!grantee.empty() && r.grantee_principal() != grantee) continue;
      if (out.items.size() == limit) {
        out.truncated = true;
        out.next_marker = out.items.back().grant_id;
        return out;
      }
      out.items.push_back(ToInfo(r, config_.account_id));
    }
    if (!page.truncated) break;
  }
  return out;
}

StatusOr<store::Page<GrantInfo>> AccessControl::ListRetirableGrants(
    std::string_view retiring_principal, std::string_view after, std::size_t limit) {
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
  store::Page<GrantInfo> out;
  // Markers here are "<key id>.<grant id>", the meta name after the prefix.
  std::string cursor = after.empty() ? std::string() : std::string(kGrantMetaPrefix) + std::string(after);
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto page, tx->ListMeta(kGrantMetaPrefix, cursor, 1000));
    for (const auto& [name, value] : page.items) {
      cursor = name;
      KMS_ASSIGN_OR_RETURN(auto r, ParseGrant(value));
      if (r.retiring_principal() != retiring_principal) continue;
      if (out.items.size() == limit) {
        out.truncated = true;
        out.next_marker = out.items.back().key_id + "." + out.items.back().grant_id;
        return out;
      }
      out.items.push_back(ToInfo(r, config_.account_id));
    }
    if (!page.truncated) break;
  }
  return out;
}

StatusOr<AccessDecision> AccessControl::DecideRetireGrant(
    const Caller& caller, std::optional<std::string_view> grant_token, const KeyRef* key,
    std::optional<std::string_view> grant_id, RetireTarget& decided) {
  std::string key_id;
  std::string id;
  if (grant_token) {
    KMS_ASSIGN_OR_RETURN(auto named, ParseGrantToken(*grant_token));
    key_id = named.first;
    id = named.second;
    if (key && key->key_id != key_id) {
      return InvalidArgumentError("The grant token does not belong to the key given.",
                                  Reason::kInvalidGrantToken);
    }
    if (grant_id && *grant_id != id) {
      return InvalidArgumentError("The grant token does not match the grant ID given.",
                                  Reason::kInvalidGrantId);
    }
  } else {
    if (!key || !grant_id) {
      return InvalidArgumentError("RetireGrant needs a GrantToken, or a KeyId and a GrantId.");
    }
    if (!IsGrantId(*grant_id)) {
      return InvalidArgumentError("Invalid grant ID.", Reason::kInvalidGrantId);
    }
    key_id = key->key_id;
    id = std::string(*grant_id);
  }
  std::optional<GrantInfo> grant;
  {
    KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadOnly));
    KMS_ASSIGN_OR_RETURN(grant, ReadGrant(*tx, key_id, id));
  }
  if (!grant) return NotFoundError("Grant ID " + id + " not found.");
  decided = RetireTarget{key_id, id};
  AccessDecision d;
  if (!grant->retiring_principal.empty() && grant->retiring_principal == caller.principal_arn) {
    d.allowed = true;
    d.basis = "allow:retiring-principal";
    return d;
  }
  if (grant->grantee_principal == caller.principal_arn &&
      std::find(grant->operations.begin(), grant->operations.end(), "RetireGrant") !=
          grant->operations.end()) {
    d.allowed = true;
    d.basis = "allow:grantee";
    d.grant_id = id;
    return d;
  }
  // The key's own principals may retire too when the key policy (or their identity) allows it.
  const KeyRef ref{key_id, "arn:aws:kms:" + config_.region + ":" + config_.account_id + ":key/" +
                               key_id};
  AccessRequest req;
  req.action = "kms:RetireGrant";
  req.key = &ref;
  return Decide(caller, req);
}

Status AccessControl::DeleteKeyRecords(store::Transaction& tx, std::string_view key_id) {
  Status policy = tx.DeleteMeta(PolicyMetaName(key_id));
  if (!policy.ok() && policy.code() != StatusCode::kNotFound) return policy;
  // Deleting while listing: every page starts again from the (now shorter) prefix.
  for (;;) {
    KMS_ASSIGN_OR_RETURN(auto page, tx.ListMeta(GrantKeyPrefix(key_id), "", 1000));
    for (const auto& [name, value] : page.items) KMS_RETURN_IF_ERROR(tx.DeleteMeta(name));
    if (!page.truncated) return Status();
  }
}

Status AccessControl::RetireGrant(const KeyRef& key, std::string_view grant_id) {
  return RevokeGrant(key, grant_id);
}

Status AccessControl::RevokeGrant(const KeyRef& key, std::string_view grant_id) {
  if (!IsGrantId(grant_id)) return InvalidArgumentError("Invalid grant ID.", Reason::kInvalidGrantId);
  KMS_ASSIGN_OR_RETURN(auto tx, store_.Begin(TransactionMode::kReadWrite));
  auto deleted = tx->DeleteMeta(GrantMetaName(key.key_id, grant_id));
  if (!deleted.ok()) {
    if (deleted.code() == StatusCode::kNotFound) {
      return NotFoundError("Grant ID " + std::string(grant_id) + " not found.");
    }
    return deleted;
  }
  Status committed = tx->Commit();
  ForgetKey(key.key_id);
  return committed;
}

}  // namespace kms::firmware::authz
