// KmsAppliance.GetApplianceStatus: version, seal state, mode, region, account and the number of KMS
// keys (api/aws/appliance_operations.h). A serving appliance is unsealed by construction: the door
// only runs once the domain key is usable.
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

OpResult GetApplianceStatus(firmware::KeyService& service, const ApplianceInfo& info,
                            const boost::json::object& /*body*/) {
  // Counted by paging ListKeys (1000 per page): the store keeps no counter, and operators call this
  // rarely.
  std::int64_t count = 0;
  firmware::ListKeysRequest req;
  req.limit = 1000;
  for (;;) {
    KMS_AWS_ASSIGN_OR_FAIL(auto page, service.ListKeys(req));
    count += static_cast<std::int64_t>(page.keys.size());
    if (!page.truncated || !page.next_marker) break;
    req.marker = page.next_marker;
  }
  boost::json::object out;
  out["Version"] = info.version;
  out["Sealed"] = false;
  out["Mode"] = info.mode;
  out["Region"] = info.region;
  out["AccountId"] = info.account_id;
  out["KeyCount"] = count;
  return out;
}

}  // namespace kms::api::aws::internal
