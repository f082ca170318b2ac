// RequestRecorder: what every door records about each request it answers, in one place so the doors
// agree on names: request metrics and the request log.
//
// Metrics (with a registry):
//   kms_requests_total{door, operation, outcome}          counter
//   kms_request_duration_seconds{door, operation}         histogram (metrics::LatencyBuckets)
//
// Log (with a logger): a request answered with a 5xx is always logged at error level; with
// `log_every_request`, every request is logged at info level ("request"). A line carries the
// request id the client saw (x-amzn-RequestId, Vault's request_id), door, operation, outcome, HTTP
// status, duration in milliseconds and the peer address:
//
//   {"time":"…","level":"error","msg":"request failed","request_id":"…","door":"aws",
//    "operation":"Encrypt","outcome":"KMSInternalException","status":500,"duration_ms":0.8,
//    "remote":"127.0.0.1"}
//
// `door` is "aws", "appliance" (the admin API) or "vault"; `operation` is a name from the door's
// own bounded set (the AWS operation, the Vault endpoint), "unknown" for anything else; `outcome`
// is "ok" or the error the client saw (an AWS exception name, a Vault status code). Callers must
// never pass request data as operation or outcome: the family's cardinality bound would fold it,
// but it would still be caller input on an unauthenticated page. Nothing else of a request (bodies,
// keys, principals, tokens) is recorded here; who did what to which key is the audit log's (issue
// 7).
//
// The time measured is the door's handling (authentication, the operation, serialisation), not the
// socket's: what an operator compares with the HSM's own latency.
//
// Thread-safety: Record from any thread. The registry and logger must outlive the recorder.
#ifndef KMS_API_HTTP_REQUEST_RECORDER_H_
#define KMS_API_HTTP_REQUEST_RECORDER_H_

#include <chrono>
#include <string_view>

#include "api/http/request_audit.h"
#include "base/log.h"
#include "base/metrics.h"

namespace kms::api::http {

struct RequestRecord {
  std::string_view door;
  std::string_view operation;
  std::string_view outcome;
  unsigned status = 0;
  std::string_view request_id;
  std::string_view remote_address;
  std::chrono::steady_clock::duration elapsed{};
};

// Where a door sends its records; every member optional.
struct RequestObservers {
  metrics::MetricsRegistry* metrics = nullptr;
  const log::Logger* log = nullptr;
  bool log_every_request = false;
  // The audit log (api/http/request_audit.h): every answered request is recorded there before its
  // answer leaves, and none is performed while it is not ready. Null only in tests of a door alone.
  RequestAuditor* audit = nullptr;
};

class RequestRecorder {
 public:
  explicit RequestRecorder(const RequestObservers& observers);

  void Record(const RequestRecord& record) const;

 private:
  metrics::CounterFamily* requests_ = nullptr;
  metrics::HistogramFamily* durations_ = nullptr;
  const log::Logger* log_;
  bool log_every_request_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_REQUEST_RECORDER_H_
