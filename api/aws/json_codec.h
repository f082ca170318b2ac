// Typed access to AWS JSON 1.1 request members, and the writers for response members.
//
// `RequestReader` reads members of a request object by their exact model names
// (docs/aws-kms-protocol.md "Operations") with strict typing, the way AWS's deserialiser does:
//  - a member of the wrong JSON type, or a blob that is not strict base64 -> SerializationException;
//  - a missing required member -> ValidationException "1 validation error detected: Value null at
//    'keyId' failed to satisfy constraint: Member must not be null" (member path in camelCase,
//    docs/aws-kms-protocol.md "Errors");
//  - a length outside the model's range -> ValidationException with AWS's "Member must have length
//    less than or equal to N" text (values of sensitive members are never echoed);
//  - unknown members are ignored, as AWS ignores them; JSON null counts as absent.
// The reader records the FIRST error and keeps returning defaults, so an operation reads every member
// straight down and checks `error()` once before calling the core.
//
// Response writers put blobs as standard base64 with padding and timestamps as epoch seconds
// (JSON numbers, with a fraction when the millisecond part is not zero).
//
// Thread-safety: a reader is used by one request; writers are pure functions.
#ifndef KMS_API_AWS_JSON_CODEC_H_
#define KMS_API_AWS_JSON_CODEC_H_

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/aws/aws_error.h"
#include "api/aws/error_table.h"
#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms::api::aws {

// "KeyId" -> "keyId": the member path AWS's validation messages use.
std::string MemberPath(std::string_view name);
AwsError SerializationError(std::string message);
AwsError ValidationError(std::string message);  // prefixes "1 validation error detected: "

class RequestReader {
 public:
  explicit RequestReader(const boost::json::object& body) : body_(body) {}

  std::optional<std::string> String(std::string_view name, std::size_t min_len = 0,
                                    std::size_t max_len = SIZE_MAX);
  std::string RequiredString(std::string_view name, std::size_t min_len = 0,
                             std::size_t max_len = SIZE_MAX);
  std::optional<Bytes> Blob(std::string_view name, std::size_t min_len, std::size_t max_len);
  Bytes RequiredBlob(std::string_view name, std::size_t min_len, std::size_t max_len);
  // Plaintexts, messages: decoded straight into wiped storage.
  std::optional<SecretBytes> SecretBlob(std::string_view name, std::size_t min_len,
                                        std::size_t max_len);
  SecretBytes RequiredSecretBlob(std::string_view name, std::size_t min_len, std::size_t max_len);
  // A JSON integer that fits in int32 (AWS's Integer shape); range checks are the core's.
  std::optional<std::int64_t> Integer(std::string_view name);
  bool Boolean(std::string_view name);  // absent -> false
  // map<string,string> (EncryptionContext).
  std::map<std::string, std::string> StringMap(std::string_view name);
  std::vector<std::string> StringList(std::string_view name, bool required = false);
  // list<structure>: each element must be an object.
  std::vector<const boost::json::object*> ObjectList(std::string_view name, bool required = false);
  // A string member parsed by one of the core's enum parsers (firmware/key_spec.h); the parser's
  // Status goes through the error table.
  template <typename T, typename Parser>
  std::optional<T> Enum(std::string_view name, Parser parse, bool required = false) {
    auto text = required ? std::optional<std::string>(RequiredString(name)) : String(name);
    if (!text || error_) return std::nullopt;
    auto parsed = parse(*text, MemberPath(name));
    if (!parsed) {
      Fail(ErrorFromStatus(parsed.error()));
      return std::nullopt;
    }
    return *parsed;
  }
  // Rejects a member this appliance does not implement (Recipient, ...) when present.
  void Unsupported(std::string_view name, std::string_view why);

  const std::optional<AwsError>& error() const { return error_; }
  void Fail(AwsError error) {
    if (!error_) error_ = std::move(error);
  }

 private:
  // Blob and SecretBlob: the member as base64 decoded by `decode` (into Bytes or SecretBytes).
  template <typename T, typename Decode>
  std::optional<T> DecodedBlob(std::string_view name, std::size_t min_len, std::size_t max_len,
                               Decode decode);
  const boost::json::value* Find(std::string_view name) const;
  bool CheckLength(std::string_view name, std::size_t len, std::size_t min_len,
                   std::size_t max_len, const std::string* echo);
  void Missing(std::string_view name);

  const boost::json::object& body_;
  std::optional<AwsError> error_;
};

void PutBlob(boost::json::object& out, std::string_view name, ByteView bytes);
void PutTimestamp(boost::json::object& out, std::string_view name, std::int64_t epoch_ms);
void PutStringList(boost::json::object& out, std::string_view name,
                   const std::vector<std::string>& values);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_JSON_CODEC_H_
