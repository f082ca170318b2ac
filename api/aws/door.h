// The AWS KMS door: AWS JSON 1.1 over HTTP with SigV4 (AWS KMS reference §1).
//
// `AwsDoor::Handle` is an http::Handler (mount it at "/" of an http::Router, or give it to the server
// directly). Per request, in this order:
//   1. a fresh `x-amzn-RequestId` (UUID v4) that every response carries, errors included;
//   2. SigV4 verification (api/aws/sigv4.h) against the door's AccessKeyStore, region and clock;
//   3. framing: `POST /`, `X-Amz-Target: TrentService.<Op>` (UnknownOperationException otherwise),
//      Content-Type application/x-amz-json-1.1 (1.0 tolerated), body a JSON object (empty body = {});
//      malformed JSON or a non-object is SerializationException;
//   4. the operation from the `OperationTable`; its AwsError or JSON object becomes the response.
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
// overload -> ThrottlingException (400, which every SDK retries with backoff, reference §0.4).
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
#include "api/aws/sigv4.h"
#include "api/http/message.h"
#include "api/http/request_recorder.h"
#include "api/http/server.h"

namespace kms::api::aws {

// What the door learns about a request while serving it, for its audit record: filled by the
// authorization step (api/aws/authorization.h), read by the door after the operation.
struct RequestNote {
  std::string key_arn;  // the key acted on ("" for none)
  std::map<std::string, std::string> encryption_context;  // not secret (AWS logs it too)
  std::string grant_id;  // the grant that allowed the call
  std::string decision;  // "allow:key-policy", "deny:explicit", ... ("" when not decided)
};

// What an operation knows about the call besides its body.
struct OperationContext {
  const sigv4::Caller& caller;
  std::string_view request_id;
  RequestNote* note = nullptr;  // never null when the door calls an operation
  std::string_view source_address;
};

// One AWS operation: request JSON object in, response JSON object or AwsError out. Runs on a worker
// thread (may block on the HSM). Must be thread-safe. The body is the door's own parsed copy: the
// authorization step may rewrite its KeyId (an alias becomes the key ARN it authorized).
using Operation =
    std::function<AwsResult<boost::json::object>(const OperationContext&, boost::json::object&)>;

// Operation name ("Encrypt") -> Operation.
class OperationTable {
 public:
  void Add(std::string name, Operation operation);
  const Operation* Find(std::string_view name) const;
  std::size_t size() const { return ops_.size(); }

 private:
  std::map<std::string, Operation, std::less<>> ops_;
};

struct AwsDoorConfig {
  std::string region = "us-east-1";
  std::string account_id = "111122223333";
  // SigV4 clock skew window (reference §1.3.3).
  std::chrono::seconds max_skew{300};
  // Defaults to the system clock; tests pin it.
  std::function<std::chrono::system_clock::time_point()> clock;
  // Where request metrics and request log lines go; none by default. Must outlive the door.
  http::RequestObservers observers;
};

class AwsDoor {
 public:
  // `keys` must outlive the door.
  AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, OperationTable operations);
  // With the appliance admin operations (`KmsAppliance.<Op>`, administrators only).
  AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, OperationTable operations,
          OperationTable appliance_operations);

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
  OperationTable operations_;
  OperationTable appliance_operations_;
  http::RequestRecorder recorder_;
};

// A random UUID v4 in the 8-4-4-4-12 form AWS request ids have.
std::string NewRequestId();

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_DOOR_H_
