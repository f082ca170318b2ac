// The input format and oracles shared by the aws_door and admin_api fuzz targets: one signed
// request to the real AWS door (DoorStack, tests/fuzz/door_stack.h) per input.
//
// Input: byte 0 chooses the caller (0: `admin`, an administrator; 1: `alice`, a user with no
// rights at all; 2: `admin`'s key with a signature that does not verify), byte 1 the operation (an
// index into the door's operation table, by name order), the rest is the JSON body, with
// DoorStack's placeholders ($SYM, $BLOB, ...) replaced by the state's ids.
//
// Oracles (abort with the invariant's name):
//  (a) no state change without an Allow: the store changed only if the answer is 200 to `admin`,
//      the door's decision for it was "allow:*" and, for an operation declared mutating, an intent
//      record was written first (others may only write bookkeeping, see DoorStack::Mutating); `alice` and
//      a bad signature never get a 200; a 200 always comes with an "allow:*" decision;
//  (b) every answer is well formed: never a 5xx; a 200 is a JSON object with the door's content
//      type; anything else is a JSON object with a `__type` from the door's vocabulary and a
//      string `message`;
//  (c) no secret of the state (access key secrets, Vault tokens, the canary plaintext and its
//      base64) appears in an answer, unless the request carried it, or the answer is the 200 to an
//      administrator's Decrypt (whose purpose is to return the canary's plaintext).
#ifndef KMS_TESTS_FUZZ_AWS_DOOR_HARNESS_H_
#define KMS_TESTS_FUZZ_AWS_DOOR_HARNESS_H_

#include <boost/json.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/door_stack.h"

namespace kms::fuzz {

// Every exception name the AWS door and the admin API answer with (api/aws/).
inline const std::set<std::string, std::less<>>& AwsErrorVocabulary() {
  static const std::set<std::string, std::less<>> names = {
      "AccessDeniedException", "AlreadyExistsException", "DeleteConflictException",
      "DependencyTimeoutException", "DisabledException", "DryRunOperationException",
      "IncompleteSignatureException", "IncorrectKeyException", "InvalidArnException",
      "InvalidCiphertextException", "InvalidGrantIdException", "InvalidGrantTokenException",
      "InvalidKeyUsageException", "InvalidMarkerException", "InvalidSignatureException",
      "KMSInvalidMacException", "KMSInvalidSignatureException", "KMSInvalidStateException",
      "KeyUnavailableException", "LimitExceededException", "MalformedPolicyDocumentException",
      "MissingAuthenticationTokenException", "NotFoundException",
      "RequestEntityTooLargeException", "SerializationException", "TagException",
      "ThrottlingException", "UnknownOperationException", "UnrecognizedClientException",
      "UnsupportedOperationException", "ValidationException"};
  return names;
}

// `target_prefix`: "TrentService." or "KmsAppliance."; `operations`: that table's names.
inline void RunAwsDoorInput(const char* name, std::string_view target_prefix,
                            const std::vector<std::string>& operations, const std::uint8_t* data,
                            std::size_t size) {
  if (size < 2 || operations.empty()) return;
  DoorStack& stack = DoorStack::Get();
  const unsigned caller = data[0] % 3;
  const std::string operation = operations[data[1] % operations.size()];
  const std::string raw(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string body = stack.Substitute(raw);

  stack.BeginInput();
  const DoorStack::Credentials& who = caller == 1 ? stack.alice() : stack.admin();
  const auto r = stack.CallAws(who, std::string(target_prefix) + operation, body, caller == 2);
  const bool changed = stack.EndInput();
  const std::string& decision = stack.auditor().decision;
  const std::string detail = operation + " caller " + std::to_string(caller) + " -> " +
                             std::to_string(r.status) + " " + r.body.substr(0, 200);

  // (a)
  if (r.status == 200 && caller != 0) Violated(name, "a caller without rights got 200", detail);
  if (r.status == 200 && !decision.starts_with("allow:")) {
    Violated(name, "a 200 without an allow decision", detail + " decision " + decision);
  }
  if (changed) {
    if (r.status != 200 || caller != 0 || !decision.starts_with("allow:")) {
      Violated(name, "the store changed without an allowed success", detail);
    }
    if (stack.Mutating(operation) && stack.auditor().intents == 0) {
      Violated(name, "the store changed without an intent record", detail);
    }
  }
  // (b)
  if (r.status >= 500) Violated(name, "a 5xx answer", detail);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) Violated(name, "an answer that is not a JSON object", detail);
  if (r.status == 200) {
    bool json_type = false;
    for (const auto& [n, value] : r.headers) {
      json_type = json_type || (api::http::HeaderNameEquals(n, "content-type") &&
                                value == "application/x-amz-json-1.1");
    }
    if (!json_type) {
      Violated(name, "a 200 without the door's content type", detail);
    }
  } else {
    const auto& o = v.as_object();
    const auto* type = o.if_contains("__type");
    const auto* message = o.if_contains("message");
    if (type == nullptr || !type->is_string() || !AwsErrorVocabulary().contains(type->as_string())) {
      Violated(name, "an error outside the door's vocabulary", detail);
    }
    if (message == nullptr || !message->is_string()) Violated(name, "an error without a message", detail);
    if (r.status < 400) Violated(name, "an error status below 400", detail);
  }
  // (c)
  const bool returns_plaintext = r.status == 200 && caller == 0 && operation == "Decrypt";
  for (const std::string& secret : stack.secrets()) {
    if (r.body.find(secret) == std::string::npos) continue;
    if (body.find(secret) != std::string::npos) continue;
    const bool canary = secret == kCanary || secret == DoorStack::CanaryBase64();
    if (canary && returns_plaintext) continue;
    Violated(name, "a secret of the run in an answer", detail);
  }
}

}  // namespace kms::fuzz

#endif  // KMS_TESTS_FUZZ_AWS_DOOR_HARNESS_H_
