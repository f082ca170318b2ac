#include <string>

#include "api/aws/op_not_implemented.h"

namespace kms::api::aws {

void RegisterNotImplementedOperations(OperationTable& table, bool include_policy_operations) {
  static constexpr const char* kOperations[] = {
      "GetKeyPolicy", "PutKeyPolicy",       "ListKeyPolicies", "CreateGrant",
      "ListGrants",   "ListRetirableGrants", "RetireGrant",     "RevokeGrant",
  };
  for (const char* name : kOperations) {
    if (!include_policy_operations) break;
    const std::string message = std::string(name) +
                                " is not available on this door: it was built without access "
                                "control (key policies and grants).";
    table.Add(name, [message](const OperationContext&,
                              boost::json::object&) -> AwsResult<boost::json::object> {
      return std::unexpected(ClientError("UnsupportedOperationException", message));
    });
  }
  // The rest of the 54 operations of the model (reference §2.1: P1 DeriveSharedSecret and
  // GetKeyLastUsage, P2 custom key stores, multi-Region keys, imported key material): known to AWS
  // clients, so they get a clear refusal rather than UnknownOperationException.
  static constexpr const char* kUnsupported[] = {
      "DeriveSharedSecret",     "GetKeyLastUsage",          "ConnectCustomKeyStore",
      "CreateCustomKeyStore",   "DeleteCustomKeyStore",     "DescribeCustomKeyStores",
      "DisconnectCustomKeyStore", "UpdateCustomKeyStore",   "ReplicateKey",
      "UpdatePrimaryRegion",    "GetParametersForImport",   "ImportKeyMaterial",
      "DeleteImportedKeyMaterial",
  };
  for (const char* name : kUnsupported) {
    const std::string message = std::string(name) + " is not supported by this appliance.";
    table.Add(name, [message](const OperationContext&,
                              boost::json::object&) -> AwsResult<boost::json::object> {
      return std::unexpected(ClientError("UnsupportedOperationException", message));
    });
  }
}

}  // namespace kms::api::aws
