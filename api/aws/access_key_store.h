// Where the AWS door finds the secret of an access key.
//
// `AccessKeyStore` is the seam between the door and whoever holds access keys: the firmware supplies
// an implementation that unwraps secrets stored only wrapped under the domain key
// (docs/access-keys.md); tests and dev tools use `InMemoryAccessKeyStore`. A lookup returns
// the secret in `SecretBytes` (wiped when the caller drops it) and the principal the key acts for.
// Unknown keys are `NotFound`; any other error is a server failure, never "unknown key".
//
// Thread-safety: implementations must allow concurrent `Lookup` calls (every request thread calls it).
#ifndef KMS_API_AWS_ACCESS_KEY_STORE_H_
#define KMS_API_AWS_ACCESS_KEY_STORE_H_

#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms::api::aws {

struct AccessKey {
  SecretBytes secret;     // the secret access key's bytes (the text the client configured)
  std::string principal;  // who the key acts for, e.g. "arn:aws:iam::111122223333:user/dev"
  // May call the appliance admin API (`KmsAppliance.*`, api/aws/appliance_operations.h).
  bool administrator = false;
};

class AccessKeyStore {
 public:
  virtual ~AccessKeyStore() = default;
  // NotFound when `access_key_id` is unknown (or disabled).
  virtual StatusOr<AccessKey> Lookup(std::string_view access_key_id) const = 0;
};

class InMemoryAccessKeyStore final : public AccessKeyStore {
 public:
  void Add(std::string access_key_id, SecretBytes secret, std::string principal,
           bool administrator = false);
  void Remove(std::string_view access_key_id);
  StatusOr<AccessKey> Lookup(std::string_view access_key_id) const override;

 private:
  mutable std::mutex mu_;
  std::map<std::string, AccessKey, std::less<>> keys_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_ACCESS_KEY_STORE_H_
