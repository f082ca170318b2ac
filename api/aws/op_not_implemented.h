// Key policies and grants (AWS KMS reference §2.1 #33-#40) are not implemented yet. These
// operations answer UnsupportedOperationException (400, not retried) with a message that says the
// appliance does not implement them, instead of UnknownOperationException, so a client learns what
// is missing. No firmware dependency: part of kms_api.
#ifndef KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
#define KMS_API_AWS_OP_NOT_IMPLEMENTED_H_

#include "api/aws/door.h"

namespace kms::api::aws {

// Adds GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, CreateGrant, ListGrants, ListRetirableGrants,
// RetireGrant and RevokeGrant ("... is not implemented by this appliance yet ..."), and the other
// model operations the appliance does not offer (DeriveSharedSecret, GetKeyLastUsage, custom key
// stores, multi-Region keys, imported key material: "... is not supported by this appliance.").
void RegisterNotImplementedOperations(OperationTable& table);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
