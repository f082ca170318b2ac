// Shared pieces of the key-policy and grant operations (api/aws/op_key_policies.cc,
// api/aws/op_grants.cc): what they need besides the body, and their declarations. Internal to
// api/aws; registered by RegisterKeyServiceOperations when it has an authorizer.
//
// Thread-safety: as firmware::authz::AccessControl and firmware::KeyService (fully concurrent).
#ifndef KMS_API_AWS_INTERNAL_POLICY_SUPPORT_H_
#define KMS_API_AWS_INTERNAL_POLICY_SUPPORT_H_

#include "api/aws/door.h"
#include "api/aws/internal/operation_support.h"
#include "firmware/authz/access_control.h"

namespace kms::api::aws::internal {

struct PolicyContext {
  firmware::KeyService& service;
  firmware::authz::AccessControl& access;
  // The decision the request runs under: its caller, its key, the grant that allowed it.
  const Authorization& authorization;
};

#define KMS_AWS_POLICY_OPERATION(Name) \
  OpResult Name(const PolicyContext& p, const boost::json::object& body)
KMS_AWS_POLICY_OPERATION(GetKeyPolicy);
KMS_AWS_POLICY_OPERATION(PutKeyPolicy);
KMS_AWS_POLICY_OPERATION(ListKeyPolicies);
KMS_AWS_POLICY_OPERATION(CreateGrant);
KMS_AWS_POLICY_OPERATION(ListGrants);
KMS_AWS_POLICY_OPERATION(ListRetirableGrants);
KMS_AWS_POLICY_OPERATION(RetireGrant);
KMS_AWS_POLICY_OPERATION(RevokeGrant);
#undef KMS_AWS_POLICY_OPERATION

// CreateKey with its Policy member checked and stored with the key (api/aws/op_create_key.cc).
OpResult CreateKeyWithPolicy(const PolicyContext& p, const boost::json::object& body);

}  // namespace kms::api::aws::internal

#endif  // KMS_API_AWS_INTERNAL_POLICY_SUPPORT_H_
