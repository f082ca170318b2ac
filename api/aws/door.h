// The AWS KMS door: AWS JSON 1.1 over HTTP with SigV4 (docs/aws-kms-protocol.md).
//
// `AwsDoor::Handle` is an http::Handler (mount it at "/" of an http::Router, or give it to the server
// directly). Per request, in this order:
//   1. a fresh `x-amzn-RequestId` (UUID v4) that every response carries, errors included;
//   2. SigV4 verification (api/aws/sigv4.h) against the door's AccessKeyStore, region and clock;
//   3. framing: `POST /`, `X-Amz-Target: TrentService.<Op>` (UnknownOperationException otherwise),
//      Content-Type application/x-amz-json-1.1 (1.0 tolerated), body a JSON object (empty body = {});
//      malformed JSON or a non-object is SerializationException;
//   4. the operation from the `OperationTable` (api/aws/operation.h): one declared unsupported is
//      UnsupportedOperationException; otherwise the KeyAuthorizer decides it (an error or a denial
//      is the answer and nothing runs); a mutating operation's audit intent is written (a failure
//      is KMSInternalException and nothing runs); then the operation runs under the
//      Authorization, and its AwsError or JSON object becomes the response.
// Errors are `{"__type": "<Exception>", "message": "..."}` with the status of the AwsError (400 for
// client errors, 500/503 for faults); success is 200 with Content-Type application/x-amz-json-1.1.
// An operation that throws becomes KMSInternalException (500); nothing escapes to the server.
//
// The appliance admin API (api/aws/appliance_operations.h) shares the door: `X-Amz-Target:
// KmsAppliance.<Op>` selects an operation of the second, appliance table, with the same SigV4 and
// framing; a caller whose access key is not an administrator gets AccessDeniedException (400) for
// every `KmsAppliance.` target before the table is consulted.
//
// `FaultResponse` is the door's http::FaultResponder: body too large -> 413
// RequestEntityTooLargeException, header too large -> 431, malformed HTTP -> 400 SerializationException,
// overload -> ThrottlingException (400, which every SDK retries with backoff,
// docs/aws-kms-protocol.md "Errors").
//
// Audit (api/http/request_audit.h): every answer has a record naming the caller, the key, the
// decision ("allow:*"/"deny:*" from the authorizer, else "refused:<stage>": unauthenticated,
// unsupported, invalid-request, not-found, audit) and the outcome, written before the answer
// leaves; a mutating operation also has its intent record (outcome "started") before it runs.
//
// Every request answered by `Handle` goes to the config's observers (api/http/request_recorder.h:
// metrics, and the log for 5xx answers or every request): door "aws" (or "appliance" for
// `KmsAppliance.`), the operation name when the table has it ("unknown" otherwise: a caller cannot
// mint label values), outcome "ok" or the exception name, the x-amzn-RequestId. Faults answered by
// the server itself (FaultResponse) are not recorded.
//
// Thread-safety: immutable after construction; Handle runs concurrently on the worker pool.
#ifndef KMS_API_AWS_DOOR_H_
#define KMS_API_AWS_DOOR_H_

#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "api/aws/access_key_store.h"
#include "api/aws/aws_error.h"
#include "api/aws/operation.h"
#include "api/aws/sigv4.h"
#include "api/http/message.h"
#include "api/http/request_id.h"
#include "api/http/request_recorder.h"
#include "api/http/server.h"

namespace kms::api::aws {

struct AwsDoorConfig {
  std::string region = "us-east-1";
  std::string account_id = "111122223333";
  // SigV4 clock skew window (docs/aws-kms-protocol.md "Request signing").
  std::chrono::seconds max_skew{300};
  // Defaults to the system clock; tests pin it.
  std::function<std::chrono::system_clock::time_point()> clock;
  // Where request metrics and request log lines go; none by default. Must outlive the door.
  http::RequestObservers observers;
};

class KeyAuthorizer;

class AwsDoor {
 public:
  // `keys` and `authorizer` must outlive the door. `appliance_operations` are the admin API's
  // (`KmsAppliance.<Op>`, administrators only).
  AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, const KeyAuthorizer& authorizer,
          OperationTable operations, OperationTable appliance_operations = {});

  http::HttpResponse Handle(const http::HttpRequest& request) const;
  static http::HttpResponse FaultResponse(http::ServerFault fault, std::string_view detail,
                                           std::string_view target = {});

  // The response an AwsError becomes (exposed for tests and for the fault path).
  static http::HttpResponse ErrorResponse(const AwsError& error, std::string_view request_id);

  const AwsDoorConfig& config() const { return config_; }

 private:
  // `note` and `who` (the authenticated caller) are filled for the audit record.
  AwsResult<boost::json::object> Dispatch(const http::HttpRequest& request,
                                          std::string_view request_id, RequestNote& note,
                                          sigv4::Caller& who) const;
  // The (door, operation) labels of a request: bounded by the operation tables.
  std::pair<std::string_view, std::string_view> MetricLabels(const http::HttpRequest& request) const;

  AwsDoorConfig config_;
  sigv4::Verifier verifier_;
  const KeyAuthorizer& authorizer_;
  OperationTable operations_;
  OperationTable appliance_operations_;
  http::RequestRecorder recorder_;
};

// A random UUID v4 in the 8-4-4-4-12 form AWS request ids have (api/http/request_id.h).
using http::NewRequestId;

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_DOOR_H_
