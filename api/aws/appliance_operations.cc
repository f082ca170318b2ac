// The appliance admin API's table and shared writer. See api/aws/appliance_operations.h.
#include "api/aws/appliance_operations.h"

#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws {

namespace internal {

boost::json::object AccessKeyMetadataJson(const firmware::AccessKeyInfo& info) {
  boost::json::object o;
  o["AccessKeyId"] = info.access_key_id;
  o["UserName"] = info.principal;
  o["Status"] = info.active ? "Active" : "Inactive";
  PutTimestamp(o, "CreateDate", info.creation_time_ms);
  o["Administrator"] = info.administrator;
  return o;
}

boost::json::object VaultTokenJson(const firmware::VaultTokenInfo& info) {
  auto strings = [](const std::vector<std::string>& v) {
    boost::json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
  };
  boost::json::object o;
  o["Accessor"] = info.accessor;
  o["DisplayName"] = info.display_name;
  o["KeyPatterns"] = strings(info.key_patterns);
  o["Operations"] = strings(info.operations);
  o["Policies"] = strings(info.policies);
  o["Administrator"] = info.administrator;
  o["Renewable"] = info.renewable;
  PutTimestamp(o, "CreateDate", info.creation_time_ms);
  o["TtlSeconds"] = info.ttl_ms / 1000;
  o["ExplicitMaxTtlSeconds"] = info.explicit_max_ttl_ms / 1000;
  if (info.expire_time_ms != 0) PutTimestamp(o, "ExpireDate", info.expire_time_ms);
  return o;
}

}  // namespace internal

namespace {

// Every admin operation is decided the same way: administrator access keys only.
constexpr AccessRule kAdministrators{KeySource::kAdministrator, "", "", ""};

// An admin operation that reads only its body.
template <typename Fn>
OperationSpec Admin(bool mutating, Fn fn) {
  return OperationSpec{kAdministrators, mutating,
                       [fn = std::move(fn)](const OperationContext&, const Authorization&,
                                            boost::json::object& body) { return fn(body); }};
}

}  // namespace

void RegisterApplianceOperations(OperationTable& table, firmware::AccessKeyRegistry& registry,
                                 firmware::KeyService& service, ApplianceInfo info,
                                 firmware::VaultTokenRegistry* vault_tokens,
                                 firmware::authz::PrincipalRegistry* users) {
  using Body = const boost::json::object&;
  firmware::AccessKeyRegistry* reg = &registry;
  table.Add("CreateAccessKey", Admin(true, [reg, users](Body body) -> internal::OpResult {
              if (users != nullptr) {
                if (auto refused = internal::CheckAccessKeyOwner(*users, body)) {
                  return std::unexpected(std::move(*refused));
                }
              }
              return internal::CreateAccessKey(*reg, body);
            }));
  if (users != nullptr) {
    table.Add("CreateUser", Admin(true, [users](Body b) { return internal::CreateUser(*users, b); }));
    table.Add("GetUser", Admin(false, [users](Body b) { return internal::GetUser(*users, b); }));
    table.Add("ListUsers", Admin(false, [users](Body b) { return internal::ListUsers(*users, b); }));
    table.Add("PutUserPolicy",
              Admin(true, [users](Body b) { return internal::PutUserPolicy(*users, b); }));
    table.Add("DeleteUser",
              Admin(true, [users, reg](Body b) { return internal::DeleteUser(*users, *reg, b); }));
  }
  table.Add("ListAccessKeys",
            Admin(false, [reg](Body b) { return internal::ListAccessKeys(*reg, b); }));
  table.Add("UpdateAccessKey",
            Admin(true, [reg](Body b) { return internal::UpdateAccessKey(*reg, b); }));
  table.Add("DeleteAccessKey",
            Admin(true, [reg](Body b) { return internal::DeleteAccessKey(*reg, b); }));
  firmware::KeyService* svc = &service;
  table.Add("GetApplianceStatus", Admin(false, [svc, info = std::move(info)](Body b) {
              return internal::GetApplianceStatus(*svc, info, b);
            }));
  if (vault_tokens == nullptr) return;
  table.Add("CreateVaultToken", Admin(true, [vault_tokens](Body b) {
              return internal::CreateVaultToken(*vault_tokens, b);
            }));
  table.Add("ListVaultTokens", Admin(false, [vault_tokens](Body b) {
              return internal::ListVaultTokens(*vault_tokens, b);
            }));
  table.Add("RevokeVaultToken", Admin(true, [vault_tokens](Body b) {
              return internal::RevokeVaultToken(*vault_tokens, b);
            }));
}

}  // namespace kms::api::aws
