// The AWS operations of the appliance, for an AwsDoor's OperationTable.
//
// `RegisterKeyServiceOperations` adds one Operation per firmware::KeyService method (every P0
// operation of AWS KMS reference §2.1 plus UpdateKeyDescription), each implemented in its own file
// api/aws/op_<operation>.cc, converting the JSON members named exactly as the AWS model names them
// to and from the core's domain structs.
//
// With a KeyAuthorizer (api/aws/authorization.h) — the appliance's door, always — every operation is
// decided by access control before it runs, and the key-policy and grant operations are served
// (api/aws/op_key_policies.cc, op_grants.cc; CreateKey accepts Policy). Without one — tests of the
// operations' translation alone — every caller may use every key, and the policy and grant
// operations answer UnsupportedOperationException (api/aws/op_not_implemented.h).
//
// Lifetime: `service` and `authorizer` must outlive the table (and the door holding it).
#ifndef KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
#define KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_

#include "api/aws/door.h"
#include "api/aws/op_not_implemented.h"

namespace kms::firmware {
class KeyService;
}  // namespace kms::firmware

namespace kms::api::aws {

class KeyAuthorizer;

void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service);
void RegisterKeyServiceOperations(OperationTable& table, firmware::KeyService& service,
                                  const KeyAuthorizer& authorizer);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_KEY_SERVICE_OPERATIONS_H_
