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

void RegisterApplianceOperations(OperationTable& table, firmware::AccessKeyRegistry& registry,
                                 firmware::KeyService& service, ApplianceInfo info,
                                 firmware::VaultTokenRegistry* vault_tokens,
                                 firmware::authz::PrincipalRegistry* users) {
  firmware::AccessKeyRegistry* reg = &registry;
  table.Add("CreateAccessKey",
            [reg, users](const OperationContext&, const boost::json::object& body)
                -> internal::OpResult {
              if (users != nullptr) {
                if (auto refused = internal::CheckAccessKeyOwner(*users, body)) {
                  return std::unexpected(std::move(*refused));
                }
              }
              return internal::CreateAccessKey(*reg, body);
            });
  if (users != nullptr) {
    table.Add("CreateUser", [users](const OperationContext&, const boost::json::object& body) {
      return internal::CreateUser(*users, body);
    });
    table.Add("GetUser", [users](const OperationContext&, const boost::json::object& body) {
      return internal::GetUser(*users, body);
    });
    table.Add("ListUsers", [users](const OperationContext&, const boost::json::object& body) {
      return internal::ListUsers(*users, body);
    });
    table.Add("PutUserPolicy", [users](const OperationContext&, const boost::json::object& body) {
      return internal::PutUserPolicy(*users, body);
    });
    table.Add("DeleteUser", [users, reg](const OperationContext&, const boost::json::object& body) {
      return internal::DeleteUser(*users, *reg, body);
    });
  }
  table.Add("ListAccessKeys", [reg](const OperationContext&, const boost::json::object& body) {
    return internal::ListAccessKeys(*reg, body);
  });
  table.Add("UpdateAccessKey", [reg](const OperationContext&, const boost::json::object& body) {
    return internal::UpdateAccessKey(*reg, body);
  });
  table.Add("DeleteAccessKey", [reg](const OperationContext&, const boost::json::object& body) {
    return internal::DeleteAccessKey(*reg, body);
  });
  firmware::KeyService* svc = &service;
  table.Add("GetApplianceStatus", [svc, info = std::move(info)](const OperationContext&,
                                                                const boost::json::object& body) {
    return internal::GetApplianceStatus(*svc, info, body);
  });
  if (vault_tokens == nullptr) return;
  table.Add("CreateVaultToken",
            [vault_tokens](const OperationContext&, const boost::json::object& body) {
              return internal::CreateVaultToken(*vault_tokens, body);
            });
  table.Add("ListVaultTokens",
            [vault_tokens](const OperationContext&, const boost::json::object& body) {
              return internal::ListVaultTokens(*vault_tokens, body);
            });
  table.Add("RevokeVaultToken",
            [vault_tokens](const OperationContext&, const boost::json::object& body) {
              return internal::RevokeVaultToken(*vault_tokens, body);
            });
}

}  // namespace kms::api::aws
