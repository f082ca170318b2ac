// libFuzzer target: the AWS door's EncryptionContext member (api/aws/json_codec.h
// RequestReader::StringMap) and what the key service makes of it: the limits it enforces and the
// canonical encoding bound into the ciphertext's AAD (firmware/ciphertext_blob.h).
//
// The input is a request body (JSON text). Invariants:
//  * reading: an absent or null member is the empty context; a member that is not an object, or an
//    object with a non-string value, is exactly AWS's SerializationException text; otherwise the
//    context holds exactly the object's members;
//  * order independence: the same members written in reverse order read back as the same context
//    and the same canonical bytes;
//  * injectivity: the canonical bytes decode back to the context (an independent decoder);
//  * limits, through KeyService::Encrypt on the fake HSM and a SQLite store: an empty key, and more
//    than 8192 bytes of keys and values, are refused with the exact ValidationException text;
//    anything else encrypts, decrypts with the same context, and does NOT decrypt with a context
//    one pair away (the one InvalidCiphertextException, no detail).
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/aws/json_codec.h"
#include "base/secret_bytes.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/key_service.h"
#include "tests/fuzz/parsers/canonical_context.h"
#include "tests/fuzz/parsers/key_service_fixture.h"

namespace {

namespace json = boost::json;
using kms::Bytes;
using kms::ByteView;
using kms::firmware::EncryptionContext;

constexpr std::string_view kMember = "EncryptionContext";

// A key service with one symmetric key, made once per process.
struct Service : kms::fuzz::FuzzKeyService {
  std::string key_id;

  Service() : FuzzKeyService("kms-fuzz-ec") {
    auto key = service->CreateKey(kms::firmware::CreateKeyRequest{});
    if (!key) std::abort();
    key_id = key->key_metadata.key_id;
  }
};

Service& TheService() {
  static Service* s = new Service();  // never destroyed: libFuzzer exits without unwinding
  return *s;
}

EncryptionContext Read(const json::object& body, std::optional<kms::api::aws::AwsError>& error) {
  kms::api::aws::RequestReader reader(body);
  EncryptionContext out = reader.StringMap(kMember);
  error = reader.error();
  return out;
}

bool IsSerialization(const std::optional<kms::api::aws::AwsError>& e, std::string_view message) {
  return e.has_value() && e->type == "SerializationException" && e->http_status == 400 &&
         e->message == message;
}

std::string ValidationText(std::string_view constraint) {
  return "1 validation error detected: Value at 'encryptionContext' failed to satisfy constraint: " +
         std::string(constraint);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_object()) return 0;  // the door's framing refuses these before any member
  const json::object& body = parsed.get_object();

  // ---- reading, against a direct reading of the contract ----
  std::optional<kms::api::aws::AwsError> error;
  const EncryptionContext context = Read(body, error);
  const json::value* member = body.if_contains(kMember);
  if (member == nullptr || member->is_null()) {
    KMS_FUZZ_CHECK(!error && context.empty(), "an absent or null member is the empty context");
    return 0;
  }
  if (!member->is_object()) {
    KMS_FUZZ_CHECK(IsSerialization(error, "Value of member 'EncryptionContext' must be an object."),
                   "a non-object member is AWS's SerializationException");
    return 0;
  }
  const json::object& object = member->get_object();
  bool all_strings = true;
  for (const auto& kv : object) all_strings = all_strings && kv.value().is_string();
  if (!all_strings) {
    KMS_FUZZ_CHECK(IsSerialization(error, "Values of member 'EncryptionContext' must be strings."),
                   "a non-string value is AWS's SerializationException");
    return 0;
  }
  KMS_FUZZ_CHECK(!error, "an object of strings reads without error");
  KMS_FUZZ_CHECK(context.size() == object.size(), "every member becomes one pair");
  for (const auto& kv : object) {
    auto it = context.find(std::string(kv.key()));
    KMS_FUZZ_CHECK(it != context.end() && it->second == std::string(kv.value().get_string()),
                   "each pair holds its member's value");
  }

  // ---- order independence: the members in reverse order, through JSON text again ----
  json::object reversed;
  for (auto it = object.end(); it != object.begin();) {
    --it;
    reversed.emplace(it->key(), it->value());
  }
  json::object body2;
  body2[kMember] = reversed;
  json::value reparsed = json::parse(json::serialize(body2));
  std::optional<kms::api::aws::AwsError> error2;
  const EncryptionContext context2 = Read(reparsed.get_object(), error2);
  KMS_FUZZ_CHECK(!error2 && context2 == context, "member order does not change the context");
  const Bytes canonical = kms::firmware::CanonicalEncryptionContext(context);
  KMS_FUZZ_CHECK(kms::firmware::CanonicalEncryptionContext(context2) == canonical,
                 "member order does not change the canonical bytes");
  KMS_FUZZ_CHECK(kms::fuzz::DecodeCanonicalContext(canonical) == context,
                 "the canonical bytes decode to the context (injective)");

  // ---- limits and AAD binding through the key service ----
  bool empty_key = false;
  std::size_t total = 0;
  for (const auto& [k, v] : context) {
    empty_key = empty_key || k.empty();
    total += k.size() + v.size();
  }
  Service& s = TheService();
  kms::firmware::EncryptRequest encrypt;
  encrypt.key_id = s.key_id;
  encrypt.plaintext = kms::SecretBytes::CopyFrom(kms::AsBytes("fuzz plaintext"));
  encrypt.encryption_context = context;
  auto sealed = s.service->Encrypt(encrypt);
  if (empty_key) {
    KMS_FUZZ_CHECK(!sealed && sealed.error().code() == kms::StatusCode::kInvalidArgument &&
                       sealed.error().message() ==
                           ValidationText("Map keys must have length greater than or equal to 1"),
                   "an empty context key is refused with the exact text");
    return 0;
  }
  if (total > 8192) {
    KMS_FUZZ_CHECK(!sealed && sealed.error().code() == kms::StatusCode::kInvalidArgument &&
                       sealed.error().message() ==
                           ValidationText("Member must have total length less than or equal to 8192"),
                   "a context over 8192 bytes is refused with the exact text");
    return 0;
  }
  KMS_FUZZ_CHECK_DETAIL(sealed.has_value(), "a valid context encrypts",
                        sealed ? "" : sealed.error().ToString());

  kms::firmware::DecryptRequest decrypt;
  decrypt.ciphertext_blob = sealed->ciphertext_blob;
  decrypt.encryption_context = context2;
  auto opened = s.service->Decrypt(decrypt);
  KMS_FUZZ_CHECK(opened.has_value() && opened->plaintext.ExposeSecret().size() == 14,
                 "the same context, read in another order, decrypts");

  // One pair away: drop a pair, or add one.
  EncryptionContext other = context;
  if (!other.empty()) {
    other.erase(other.begin());
  } else {
    other["fuzz"] = "x";
  }
  decrypt.encryption_context = other;
  auto refused = s.service->Decrypt(decrypt);
  KMS_FUZZ_CHECK(!refused && refused.error().code() == kms::StatusCode::kInvalidArgument &&
                     refused.error().reason() == kms::Reason::kInvalidCiphertext &&
                     refused.error().message().empty(),
                 "another context does not decrypt, and says nothing about why");
  return 0;
}
