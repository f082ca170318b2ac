#include "api/aws/access_key_store.h"

#include <utility>

namespace kms::api::aws {

void InMemoryAccessKeyStore::Add(std::string access_key_id, SecretBytes secret,
                                 std::string principal, bool administrator) {
  std::lock_guard lock(mu_);
  keys_.insert_or_assign(std::move(access_key_id),
                         AccessKey{std::move(secret), std::move(principal), administrator});
}

void InMemoryAccessKeyStore::Remove(std::string_view access_key_id) {
  std::lock_guard lock(mu_);
  if (auto it = keys_.find(access_key_id); it != keys_.end()) keys_.erase(it);
}

StatusOr<AccessKey> InMemoryAccessKeyStore::Lookup(std::string_view access_key_id) const {
  std::lock_guard lock(mu_);
  auto it = keys_.find(access_key_id);
  if (it == keys_.end()) return NotFoundError("unknown access key");
  return AccessKey{it->second.secret.Clone(), it->second.principal, it->second.administrator};
}

}  // namespace kms::api::aws
