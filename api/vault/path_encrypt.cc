// encrypt/<name> (write): Vault's path_encrypt.go, with its upsert (encrypting to a missing key
// creates it) and batch_input.
#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

namespace {

// Every crypto path refuses `nonce`: only convergent v1 keys took one, and the appliance has no
// convergent keys. Vault's text for a key that does not take one.
Status RefuseNonce(FieldReader& f) {
  if (auto nonce = f.String("nonce"); nonce && !nonce->empty()) {
    return InvalidArgumentError("provided nonce not allowed for this key");
  }
  return Status::Ok();
}

// Vault's upsert (docs/vault-door.md): a missing key is created with the request's `type` and
// `convergent_encryption`, derived iff the (first) item carries a context. Vault lets it happen
// with the ACL's `create` capability; here the door decided before this ran whether the token may
// "manage" the name (Decision::MayCreateKey). Refused -> `missing` (Vault's 400 "encryption key not
// found"). Returns the new key's key-service key id: the request encrypts with the key it created,
// and a name another request bound meanwhile fails (firmware/transit_keyring.h, "Bindings").
StatusOr<std::string> Upsert(const Call& call, const Decision& d, const json::array* batch,
                             const Status& missing) {
  if (!d.MayCreateKey()) return missing;
  FieldReader top(call.body);
  firmware::transit::CreateTransitKeyOptions options;
  if (auto type = top.String("type"); type && !type->empty()) {
    auto parsed = firmware::transit::ParseTransitKeyType(*type);
    if (!parsed) return parsed.error();
    options.type = *parsed;
  }
  options.convergent_encryption = top.Bool("convergent_encryption").value_or(false);
  if (top.error()) return InvalidArgumentError(*top.error());
  auto has_context = [](const json::object& o) {
    const json::value* c = o.if_contains("context");
    return c != nullptr && c->is_string() && !c->get_string().empty();
  };
  if (batch != nullptr) {
    const bool first = has_context(batch->front().get_object());
    for (const auto& item : *batch) {
      if (has_context(item.get_object()) != first) {
        return InvalidArgumentError(
            "context should be set either in all the request blocks or in none");
      }
    }
    options.derived = first;
  } else {
    options.derived = has_context(call.body);
  }
  auto created = call.keyring->CreateKey(d.key(), options);
  if (!created) return created.error();
  return created->key_id;
}

}  // namespace

Reply PathEncrypt(const Call& call, const Decision& d) {
  {
    // The door checked the members' types; "" is Vault's unset.
    FieldReader top(call.body);
    if (auto padding = top.String("padding_scheme");
        padding && !padding->empty() && *padding != "oaep") {
      return ErrorReply(400, "padding_scheme " + *padding + " is not supported by this appliance");
    }
  }
  const json::value* batch_value = call.body.if_contains("batch_input");
  const json::array* batch =
      batch_value != nullptr && batch_value->is_array() && !batch_value->get_array().empty()
          ? &batch_value->get_array()
          : nullptr;
  bool upsert_tried = false;
  // The decided key, until the upsert creates one: then the key it created, for every item.
  std::string created_key_id;
  firmware::transit::KeyBinding key = d.key();
  // Vault upserts before it looks at any item, so a failed upsert fails the whole request.
  std::optional<Status> upsert_error;
  Reply reply = RunItems(call.body, true, [&](const json::object& item) -> StatusOr<json::object> {
    FieldReader f(item);
    KMS_RETURN_IF_ERROR(RefuseNonce(f));
    if (!f.Has("plaintext")) return InvalidArgumentError("missing plaintext to encrypt");
    firmware::transit::EncryptInput in;
    in.plaintext = f.SecretBase64("plaintext");
    in.context = f.Base64("context");
    in.associated_data = f.Base64("associated_data");
    in.key_version = f.Int("key_version");
    if (f.error()) return InvalidArgumentError(*f.error());
    // Before the upsert: a plaintext the appliance refuses must not leave a new key behind.
    KMS_RETURN_IF_ERROR(firmware::transit::CheckEncryptPlaintext(in.plaintext));
    auto out = call.keyring->Encrypt(key, in);
    if (!out && out.error().code() == StatusCode::kNotFound && !upsert_tried) {
      upsert_tried = true;
      auto created = Upsert(call, d, batch, out.error());
      if (!created) {
        upsert_error = created.error();
        return created.error();
      }
      created_key_id = std::move(*created);
      key = firmware::transit::KeyBinding::Decided(d.key_name(), created_key_id);
      out = call.keyring->Encrypt(key, in);
    }
    if (!out) return out.error();
    return json::object{{"ciphertext", out->ciphertext}, {"key_version", out->key_version}};
  });
  if (upsert_error) return StatusReply(*upsert_error);
  return reply;
}

}  // namespace kms::api::vault::internal
