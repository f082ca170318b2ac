// The AWS operations of the appliance, for an AwsDoor's OperationTable.
//
// `RegisterKeyServiceOperations` adds every AWS operation the appliance serves (the customer-key
// operations of docs/aws-kms-protocol.md "Operations", UpdateKeyDescription, key policies and
// grants), each declared with its authorization rule and whether it changes stored state
// (api/aws/operation.h) and implemented in its own file api/aws/op_<operation>.cc, converting the
// JSON members named exactly as the AWS model names them to and from the core's domain structs; and
// the rest of the model's operations as unsupported (api/aws/op_not_implemented.h).
//
// Lifetime: `service` and `access` must outlive the table (and the door holding it).
#ifndef KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
#define KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_

#include "api/aws/door.h"
#include "api/aws/op_not_implemented.h"

namespace kms::firmware {
class KeyService;
namespace authz {
class AccessControl;
}  // namespace authz
}  // namespace kms::firmware

namespace kms::api::aws {

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service,
                                  firmware::authz::AccessControl& access);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
