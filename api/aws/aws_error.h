// An error as an AWS JSON 1.1 client sees it: the exception name botocore dispatches on (`__type`),
// the HTTP status, and the message.
//
// docs/aws-kms-protocol.md "Errors": real AWS sends 400 for every modelled client error and 500/503
// only for KMSInternal, KeyUnavailable and DependencyTimeout, which SDKs retry. The api layer
// produces these directly for its own failures (framing, SigV4) and through the error table
// (api/aws/error_table.h) for a kms::Status coming up from the core.
//
// Thread-safety: value type.
#ifndef KMS_API_AWS_AWS_ERROR_H_
#define KMS_API_AWS_AWS_ERROR_H_

#include <expected>
#include <string>

namespace kms::api::aws {

struct AwsError {
  std::string type;      // "NotFoundException"
  unsigned http_status;  // 400, 413, 500, 503
  std::string message;   // may be empty (InvalidCiphertextException)

  friend bool operator==(const AwsError&, const AwsError&) = default;
};

template <typename T>
using AwsResult = std::expected<T, AwsError>;

inline AwsError ClientError(std::string type, std::string message) {
  return AwsError{std::move(type), 400, std::move(message)};
}

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_AWS_ERROR_H_
