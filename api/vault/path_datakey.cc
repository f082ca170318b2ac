// datakey/plaintext/<name> and datakey/wrapped/<name> (write): Vault's path_datakey.go. Which
// variant a caller may use is decided by the path, as Vault's ACLs do; here both need "datakey"
// (and a key policy Deny of kms:GenerateDataKey, or of kms:GenerateDataKeyWithoutPlaintext for the
// wrapped variant, refuses them).
#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

Reply PathDatakey(const Call& call, const Decision& d) {
  if (call.arg != "plaintext" && call.arg != "wrapped") {
    return ErrorReply(400, "Invalid path, must be 'plaintext' or 'wrapped'");
  }
  FieldReader f(call.body);
  if (auto nonce = f.String("nonce"); nonce && !nonce->empty()) {
    return ErrorReply(400, "provided nonce not allowed for this key");
  }
  const std::int64_t bits = f.Int("bits").value_or(256);
  const Bytes context = f.Base64("context");
  const Bytes associated_data = f.Base64("associated_data");
  const auto key_version = f.Int("key_version");
  if (f.error()) return ErrorReply(400, *f.error());
  const bool with_plaintext = call.arg == "plaintext";
  auto key = call.keyring->GenerateDataKey(d.key(), bits, context, associated_data,
                                           key_version, with_plaintext);
  if (!key) return StatusReply(key.error());
  json::object data{{"ciphertext", key->ciphertext}, {"key_version", key->key_version}};
  if (with_plaintext) {
    std::string encoded = Base64Encode(key->plaintext.ExposeSecret());
    data["plaintext"] = encoded;  // wiped by the door after serialising
    WipeString(encoded);
  }
  return DataReply(std::move(data));
}

}  // namespace kms::api::vault::internal
