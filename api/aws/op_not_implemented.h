// The model operations the appliance does not offer answer UnsupportedOperationException (400, not
// retried) with a message that says so ("<Op> is not supported by this appliance."), instead of
// UnknownOperationException, so a client learns what is missing. They are declared with the
// kUnsupported rule and no function (api/aws/operation.h): the door answers them before anything
// is decided, and nothing runs. No firmware dependency: part of kms_api.
#ifndef KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
#define KMS_API_AWS_OP_NOT_IMPLEMENTED_H_

#include "api/aws/operation.h"

namespace kms::api::aws {

// Adds DeriveSharedSecret, GetKeyLastUsage, the custom key store operations, the multi-Region
// ones and those of imported key material.
void RegisterNotImplementedOperations(OperationTable& table);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_OP_NOT_IMPLEMENTED_H_
