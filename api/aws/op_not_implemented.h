// The model operations the appliance does not offer answer UnsupportedOperationException (400, not
// retried) with a message that says so, instead of UnknownOperationException, so a client learns
// what is missing. Key policies and grants (reference §2.1 #33-#40) are among them only on a door
// built without access control (tests of the operations alone); the appliance's door always has it
// (api/aws/key_service_operations.h). No firmware dependency: part of kms_api.
#ifndef KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
#define KMS_API_AWS_OP_NOT_IMPLEMENTED_H_

#include "api/aws/door.h"

namespace kms::api::aws {

// Adds GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, CreateGrant, ListGrants, ListRetirableGrants,
// RetireGrant and RevokeGrant ("... is not available on a door without access control ..."), and the other
// model operations the appliance does not offer (DeriveSharedSecret, GetKeyLastUsage, custom key
// stores, multi-Region keys, imported key material: "... is not supported by this appliance.").
// With `include_policy_operations` false, only the second group.
void RegisterNotImplementedOperations(OperationTable& table, bool include_policy_operations = true);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
