// RegistryAccessKeyStore: the AWS door's `AccessKeyStore` over the firmware's AccessKeyRegistry, so
// the door verifies SigV4 against operator-managed keys whose secrets are stored only sealed under
// an HSM key wrapped by the domain key (firmware/access_keys.h).
//
// Contract:
//  * `Lookup` answers the key's secret and its principal as an IAM user ARN,
//    "arn:aws:iam::<account_id>:user/<name>", built here from the configured account id (the
//    registry stores the bare user name, as the store keeps bare key ids).
//  * Unknown and inactive keys are NotFound (the door's UnrecognizedClientException, identical for
//    both); every other registry failure (store unavailable, a sealed secret that does not open)
//    passes through as is, which the door answers as a server error, never as "unknown key".
//  * Lifetime: the registry must outlive this adapter. Thread-safety: as the registry, concurrent
//    `Lookup` calls are safe.
#ifndef KMS_API_AWS_REGISTRY_ACCESS_KEY_STORE_H_
#define KMS_API_AWS_REGISTRY_ACCESS_KEY_STORE_H_

#include <string>
#include <string_view>

#include "api/aws/access_key_store.h"
#include "base/status.h"
#include "firmware/access_keys.h"

namespace kms::api::aws {

class RegistryAccessKeyStore final : public AccessKeyStore {
 public:
  // `account_id` is the appliance's 12-digit AWS account id (the same one key ARNs carry).
  RegistryAccessKeyStore(firmware::AccessKeyRegistry& registry, std::string account_id);

  StatusOr<AccessKey> Lookup(std::string_view access_key_id) const override;

  // "arn:aws:iam::<account_id>:user/<user_name>".
  static std::string UserArn(std::string_view account_id, std::string_view user_name);

 private:
  firmware::AccessKeyRegistry& registry_;
  const std::string account_id_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_REGISTRY_ACCESS_KEY_STORE_H_
