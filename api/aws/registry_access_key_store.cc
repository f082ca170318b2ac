// RegistryAccessKeyStore implementation. See registry_access_key_store.h for the contract.
#include "api/aws/registry_access_key_store.h"

#include <utility>

namespace kms::api::aws {

RegistryAccessKeyStore::RegistryAccessKeyStore(firmware::AccessKeyRegistry& registry,
                                               std::string account_id)
    : registry_(registry), account_id_(std::move(account_id)) {}

std::string RegistryAccessKeyStore::UserArn(std::string_view account_id,
                                            std::string_view user_name) {
  std::string arn = "arn:aws:iam::";
  arn += account_id;
  arn += ":user/";
  arn += user_name;
  return arn;
}

StatusOr<AccessKey> RegistryAccessKeyStore::Lookup(std::string_view access_key_id) const {
  KMS_ASSIGN_OR_RETURN(firmware::ResolvedAccessKey key, registry_.Lookup(access_key_id));
  return AccessKey{std::move(key.secret), UserArn(account_id_, key.principal), key.administrator};
}

}  // namespace kms::api::aws
