// rewrap/<name> (write): Vault's path_rewrap.go: decrypt and encrypt again under the key's latest
// (or the requested) version without the plaintext leaving the appliance.
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

Reply PathRewrap(const Call& call, const Decision& d) {
  FieldReader top(call.body);
  const auto top_version = top.Int("key_version");
  if (top.error()) return ErrorReply(400, *top.error());
  return RunItems(call.body, true, [&](const json::object& item) -> StatusOr<json::object> {
    FieldReader f(item);
    if (auto nonce = f.String("nonce"); nonce && !nonce->empty()) {
      return InvalidArgumentError("provided nonce not allowed for this key");
    }
    auto ciphertext = f.String("ciphertext");
    if (f.error()) return InvalidArgumentError(*f.error());
    if (!ciphertext || ciphertext->empty()) {
      return InvalidArgumentError("missing ciphertext to decrypt");
    }
    firmware::transit::DecryptInput in;
    in.ciphertext = std::move(*ciphertext);
    in.context = f.Base64("context");
    in.associated_data = f.Base64("associated_data");
    // Per item since hashicorp/vault#10232; the top-level value otherwise.
    auto version = f.Int("key_version");
    if (f.error()) return InvalidArgumentError(*f.error());
    auto out = call.keyring->Rewrap(d.key(), in, version ? version : top_version);
    if (!out) return out.error();
    return json::object{{"ciphertext", out->ciphertext}, {"key_version", out->key_version}};
  });
}

}  // namespace kms::api::vault::internal
