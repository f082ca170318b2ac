// sign/<name>(/<hash>) and verify/<name>(/<hash>) (write): Vault's path_sign_verify.go, with
// batch_input. verify also checks HMACs (`hmac` instead of `signature`), as Vault's does.
#include "api/vault/internal/endpoint.h"

namespace kms::api::vault::internal {

namespace {

// The options every item shares, from the path and the top-level body.
StatusOr<firmware::transit::SignOptions> ReadSignOptions(const Call& call, bool signing) {
  FieldReader f(call.body);
  firmware::transit::SignOptions options;
  // Path, then hash_algorithm, then the deprecated `algorithm`, as Vault.
  if (!call.arg.empty()) {
    options.hash_algorithm = std::string(call.arg);
  } else if (auto h = f.String("hash_algorithm"); h && !h->empty()) {
    options.hash_algorithm = *h;
  } else if (auto a = f.String("algorithm"); a && !a->empty()) {
    options.hash_algorithm = *a;
  }
  options.prehashed = f.Bool("prehashed").value_or(false);
  if (auto s = f.String("signature_algorithm"); s && !s->empty()) {
    if (*s == "pss") {
      options.signature_algorithm = firmware::transit::SignatureScheme::kPss;
    } else if (*s == "pkcs1v15") {
      options.signature_algorithm = firmware::transit::SignatureScheme::kPkcs1v15;
    } else {
      return InvalidArgumentError("unsupported signature algorithm " + *s);
    }
  }
  if (auto m = f.String("marshaling_algorithm"); m && !m->empty())
    options.marshaling_algorithm = *m;
  // The HSM's PSS salt is the hash length, which Vault's "auto" and "hash" both verify against;
  // "" is Vault's unset.
  if (auto salt = f.String("salt_length");
      salt && !salt->empty() && *salt != "auto" && *salt != "hash") {
    return InvalidArgumentError("salt_length " + *salt + " is not supported by this appliance");
  }
  // Vault's verify takes no key_version: the signature names its version.
  if (signing) options.key_version = f.Int("key_version");
  if (f.error()) return InvalidArgumentError(*f.error());
  return options;
}

}  // namespace

Reply PathSign(const Call& call, const Decision& d) {
  auto options = ReadSignOptions(call, true);
  if (!options) return StatusReply(options.error());
  return RunItems(call.body, true, [&](const json::object& item) -> StatusOr<json::object> {
    FieldReader f(item);
    SecretBytes input = f.SecretBase64("input");
    if (f.error()) return InvalidArgumentError(*f.error());
    auto signature = call.keyring->Sign(d.key(), input, *options);
    if (!signature) return signature.error();
    return json::object{{"signature", signature->signature},
                        {"key_version", signature->key_version}};
  });
}

Reply PathVerify(const Call& call, const Decision& d) {
  auto options = ReadSignOptions(call, false);
  if (!options) return StatusReply(options.error());
  // Vault: batch items must all use `signature` or all use `hmac`.
  if (const json::value* b = call.body.if_contains("batch_input"); b && b->is_array()) {
    std::optional<bool> uses_hmac;
    for (const auto& item : b->get_array()) {
      if (!item.is_object()) continue;  // RunItems refuses it
      const bool h = item.get_object().contains("hmac");
      if (uses_hmac && *uses_hmac != h) {
        return ErrorReply(400, "batch items must consistently use either hmac or signature");
      }
      uses_hmac = h;
    }
  }
  return RunItems(call.body, true, [&](const json::object& item) -> StatusOr<json::object> {
    FieldReader f(item);
    const std::string signature = f.String("signature").value_or("");
    const std::string hmac = f.String("hmac").value_or("");
    SecretBytes input = f.SecretBase64("input");
    if (f.error()) return InvalidArgumentError(*f.error());
    if (!signature.empty() && !hmac.empty()) {
      return InvalidArgumentError("provide one of 'signature' or 'hmac'");
    }
    if (signature.empty() && hmac.empty()) {
      return InvalidArgumentError("neither a 'signature' nor an 'hmac' were given to verify");
    }
    StatusOr<bool> valid =
        hmac.empty() ? call.keyring->Verify(d.key(), input, signature, *options)
                     : call.keyring->VerifyHmac(d.key(), input, hmac, options->hash_algorithm);
    if (!valid) return valid.error();
    return json::object{{"valid", *valid}};
  });
}

}  // namespace kms::api::vault::internal
