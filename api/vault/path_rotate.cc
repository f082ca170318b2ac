// keys/<name>/rotate (write): Vault's path_rotate.go.
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

Reply PathRotate(const Call& call, const Decision& d) {
  FieldReader f(call.body);
  for (const auto field : {"managed_key_name", "managed_key_id", "external_key_ref"}) {
    if (f.Has(field)) {
      return ErrorReply(400, std::string(field) + " is not supported by this appliance");
    }
  }
  auto info = call.keyring->Rotate(d.key());
  if (!info) return StatusReply(info.error());
  return DataReply(KeyInfoData(*info));
}

}  // namespace kms::api::vault::internal
