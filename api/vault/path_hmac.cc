// hmac/<name>(/<algorithm>) (write): Vault's path_hmac.go, with batch_input. HMAC verification is
// verify/<name> with an `hmac` field (path_sign.cc).
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

Reply PathHmac(const Call& call, const Decision& d) {
  FieldReader top(call.body);
  // The path's algorithm wins over the body's (Vault's "urlalgorithm").
  std::string algorithm(call.arg);
  if (algorithm.empty()) algorithm = top.String("algorithm").value_or("sha2-256");
  const auto top_version = top.Int("key_version");
  if (top.error()) return ErrorReply(400, *top.error());
  return RunItems(call.body, true, [&](const json::object& item) -> StatusOr<json::object> {
    FieldReader f(item);
    if (!f.Has("input")) return InvalidArgumentError("missing input for HMAC");
    SecretBytes input = f.SecretBase64("input");
    auto version = f.Int("key_version");
    if (f.error()) return InvalidArgumentError(*f.error());
    auto mac = call.keyring->Hmac(d.key(), input, algorithm, version ? version : top_version);
    if (!mac) return mac.error();
    return json::object{{"hmac", *mac}};
  });
}

}  // namespace kms::api::vault::internal
