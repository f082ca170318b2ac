// decrypt/<name> (write): Vault's path_decrypt.go, with batch_input.
#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

Reply PathDecrypt(const Call& call, const Decision& d) {
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
    if (f.error()) return InvalidArgumentError(*f.error());
    auto plaintext = call.keyring->Decrypt(d.key(), in);
    if (!plaintext) return plaintext.error();
    // The base64 text is the plaintext in another spelling: wiped here, and its JSON copy by the
    // door once the response is serialised.
    std::string encoded = Base64Encode(plaintext->ExposeSecret());
    json::object out{{"plaintext", encoded}};
    WipeString(encoded);
    return out;
  });
}

}  // namespace kms::api::vault::internal
