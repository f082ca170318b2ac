#include <string>

#include "api/aws/op_not_implemented.h"

namespace kms::api::aws {

void RegisterNotImplementedOperations(OperationTable& table) {
  static constexpr const char* kOperations[] = {
      "GetKeyPolicy", "PutKeyPolicy",       "ListKeyPolicies", "CreateGrant",
      "ListGrants",   "ListRetirableGrants", "RetireGrant",     "RevokeGrant",
  };
  for (const char* name : kOperations) {
    const std::string message = std::string(name) +
                                " is not implemented by this appliance yet: key policies and grants "
                                "are not supported.";
    table.Add(name, [message](const OperationContext&,
                              const boost::json::object&) -> AwsResult<boost::json::object> {
      return std::unexpected(ClientError("UnsupportedOperationException", message));
    });
  }
}

}  // namespace kms::api::aws
