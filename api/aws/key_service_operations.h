// The AWS operations of the appliance, for an AwsDoor's OperationTable.
//
// `RegisterKeyServiceOperations` adds one Operation per firmware::KeyService method (every P0
// operation of AWS KMS reference §2.1 plus UpdateKeyDescription), each implemented in its own file
// api/aws/op_<operation>.cc, converting the JSON members named exactly as the AWS model names them
// to and from the core's domain structs. It also registers the key-policy and grant operations
// (`RegisterNotImplementedOperations`, api/aws/op_not_implemented.h), which answer
// UnsupportedOperationException (400) saying the appliance does not implement them yet.
//
// Lifetime: `service` must outlive the table (and the door holding it).
#ifndef KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
#define KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_

#include "api/aws/door.h"
#include "api/aws/op_not_implemented.h"

namespace kms::firmware {
class KeyService;
}  // namespace kms::firmware

namespace kms::api::aws {

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
