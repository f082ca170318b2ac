// THE error table of the AWS door: kms::Status (canonical code, Reason) -> (exception name, HTTP status).
//
// Every error a core operation returns reaches a client through `ErrorFromStatus`, and nowhere else, so
// the mapping is reviewable in one place (docs/conventions.md "Errors"). Statuses follow
// docs/aws-kms-protocol.md "Errors": 400 for every client error, including
// NotFound/Disabled/KMSInvalidState (AWS's wire, not the Smithy 404/409); 500/503 only for internal
// and unavailable, which SDKs retry.
//
// Messages: client-error messages pass through (the core writes AWS's texts and never secrets);
// InvalidCiphertextException always has an EMPTY message (no decryption oracle);
// 5xx messages are replaced by a fixed text, the detail belongs in the log, not on the wire.
//
// Thread-safety: pure function.
#ifndef KMS_API_AWS_ERROR_TABLE_H_
#define KMS_API_AWS_ERROR_TABLE_H_

#include "api/aws/aws_error.h"
#include "base/status.h"

namespace kms::api::aws {

// `status` must not be OK.
AwsError ErrorFromStatus(const Status& status);

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_ERROR_TABLE_H_
