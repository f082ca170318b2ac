// Request ids: the correlation handle every answer of every door carries (AWS's x-amzn-RequestId,
// Vault's request_id), also written to the audit record and the log line of the request.
//
// Thread-safety: NewRequestId may be called from any thread.
#ifndef KMS_API_HTTP_REQUEST_ID_H_
#define KMS_API_HTTP_REQUEST_ID_H_

#include <string>

namespace kms::api::http {

// A random UUID v4 in the 8-4-4-4-12 form AWS request ids have.
std::string NewRequestId();

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_REQUEST_ID_H_
