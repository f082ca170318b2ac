#include "api/aws/error_table.h"

#include <string_view>

namespace kms::api::aws {

namespace {

struct Entry {
  StatusCode code;
  Reason reason;
  std::string_view exception;
  unsigned http_status;
};

// Specific (code, reason) rows first; a row with Reason::kNone and `any_reason` below covers the rest
// of its code.
constexpr Entry kTable[] = {
    {StatusCode::kInvalidArgument, Reason::kInvalidCiphertext, "InvalidCiphertextException", 400},
    {StatusCode::kInvalidArgument, Reason::kIncorrectKey, "IncorrectKeyException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidKeyUsage, "InvalidKeyUsageException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidSignature, "KMSInvalidSignatureException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidMac, "KMSInvalidMacException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidMarker, "InvalidMarkerException", 400},
    {StatusCode::kInvalidArgument, Reason::kTag, "TagException", 400},
    {StatusCode::kInvalidArgument, Reason::kMalformedPolicy, "MalformedPolicyDocumentException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidGrantToken, "InvalidGrantTokenException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidGrantId, "InvalidGrantIdException", 400},
    {StatusCode::kInvalidArgument, Reason::kInvalidArn, "InvalidArnException", 400},
    {StatusCode::kFailedPrecondition, Reason::kKeyDisabled, "DisabledException", 400},
    {StatusCode::kFailedPrecondition, Reason::kKeyInvalidState, "KMSInvalidStateException", 400},
    {StatusCode::kFailedPrecondition, Reason::kDryRunOperation, "DryRunOperationException", 400},
    {StatusCode::kFailedPrecondition, Reason::kUnsupportedOperation, "UnsupportedOperationException",
     400},
    {StatusCode::kResourceExhausted, Reason::kLimitExceeded, "LimitExceededException", 400},
    {StatusCode::kUnavailable, Reason::kHandleStale, "KeyUnavailableException", 500},
};

struct CodeEntry {
  StatusCode code;
  std::string_view exception;
  unsigned http_status;
};

constexpr CodeEntry kByCode[] = {
    {StatusCode::kInvalidArgument, "ValidationException", 400},
    {StatusCode::kOutOfRange, "ValidationException", 400},
    {StatusCode::kNotFound, "NotFoundException", 400},  // AWS's wire, not Smithy's 404
    {StatusCode::kAlreadyExists, "AlreadyExistsException", 400},
    {StatusCode::kFailedPrecondition, "KMSInvalidStateException", 400},
    {StatusCode::kUnimplemented, "UnsupportedOperationException", 400},
    {StatusCode::kResourceExhausted, "ThrottlingException", 400},
    {StatusCode::kPermissionDenied, "AccessDeniedException", 400},
    {StatusCode::kUnauthenticated, "UnrecognizedClientException", 400},
    // Retryable faults: SDKs retry 500/503 (docs/aws-kms-protocol.md "Errors").
    {StatusCode::kUnavailable, "DependencyTimeoutException", 503},
    {StatusCode::kDeadlineExceeded, "DependencyTimeoutException", 503},
    {StatusCode::kAborted, "KMSInternalException", 500},
    {StatusCode::kInternal, "KMSInternalException", 500},
    {StatusCode::kDataLoss, "KMSInternalException", 500},
    {StatusCode::kUnknown, "KMSInternalException", 500},
    {StatusCode::kCancelled, "KMSInternalException", 500},
};

}  // namespace

AwsError ErrorFromStatus(const Status& status) {
  std::string_view exception = "KMSInternalException";
  unsigned http_status = 500;
  bool found = false;
  for (const auto& e : kTable) {
    if (e.code == status.code() && e.reason == status.reason()) {
      exception = e.exception;
      http_status = e.http_status;
      found = true;
      break;
    }
  }
  if (!found) {
    for (const auto& e : kByCode) {
      if (e.code == status.code()) {
        exception = e.exception;
        http_status = e.http_status;
        break;
      }
    }
  }
  std::string message = status.message();
  if (exception == "InvalidCiphertextException") message.clear();  // no oracle, ever
  if (http_status >= 500) {
    message = http_status == 503 ? "The service is temporarily unavailable; retry the request."
                                 : "An internal error occurred; retry the request.";
  }
  return AwsError{std::string(exception), http_status, std::move(message)};
}

}  // namespace kms::api::aws
