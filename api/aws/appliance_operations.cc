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

}  // namespace internal

void RegisterApplianceOperations(OperationTable& table, firmware::AccessKeyRegistry& registry,
                                 firmware::KeyService& service, ApplianceInfo info) {
  firmware::AccessKeyRegistry* reg = &registry;
  table.Add("CreateAccessKey", [reg](const OperationContext&, const boost::json::object& body) {
    return internal::CreateAccessKey(*reg, body);
  });
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
}

}  // namespace kms::api::aws
