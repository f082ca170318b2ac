#include "api/aws/op_not_implemented.h"

namespace kms::api::aws {

void RegisterNotImplementedOperations(OperationTable& table) {
  // The rest of the 54 operations of the model (docs/aws-kms-protocol.md "Operations":
  // DeriveSharedSecret, GetKeyLastUsage, custom key stores, multi-Region keys, imported key
  // material): known to AWS clients, so they get a clear refusal rather than
  // UnknownOperationException.
  static constexpr const char* kUnsupported[] = {
      "DeriveSharedSecret",     "GetKeyLastUsage",          "ConnectCustomKeyStore",
      "CreateCustomKeyStore",   "DeleteCustomKeyStore",     "DescribeCustomKeyStores",
      "DisconnectCustomKeyStore", "UpdateCustomKeyStore",   "ReplicateKey",
      "UpdatePrimaryRegion",    "GetParametersForImport",   "ImportKeyMaterial",
      "DeleteImportedKeyMaterial",
  };
  for (const char* name : kUnsupported) {
    table.Add(name, OperationSpec{AccessRule{KeySource::kUnsupported, "", "", ""}, false, {}});
  }
}

}  // namespace kms::api::aws
