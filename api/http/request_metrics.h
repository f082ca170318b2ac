// RequestMetrics: the request counters and latency histograms every door records, under one set of
// names so a dashboard can sum or compare doors:
//
//   kms_requests_total{door, operation, outcome}          counter
//   kms_request_duration_seconds{door, operation}         histogram (metrics::LatencyBuckets)
//
// `door` is "aws", "appliance" (the admin API) or "vault"; `operation` is a name from the door's
// own bounded set (the AWS operation, the Vault endpoint), "unknown" for anything else; `outcome`
// is "ok" or the error the client saw (an AWS exception name, a Vault status code). Callers must
// never pass request data as a label: the family's cardinality bound would fold it, but it would
// still be a leak of caller input onto an unauthenticated page.
//
// The time measured is the door's handling (authentication, the operation, serialisation), not the
// socket's: what an operator compares with the HSM's own latency.
//
// Thread-safety: Record from any thread. The registry must outlive the RequestMetrics.
#ifndef KMS_API_HTTP_REQUEST_METRICS_H_
#define KMS_API_HTTP_REQUEST_METRICS_H_

#include <chrono>
#include <string_view>

#include "base/metrics.h"

namespace kms::api::http {

class RequestMetrics {
 public:
  explicit RequestMetrics(metrics::MetricsRegistry& registry);

  void Record(std::string_view door, std::string_view operation, std::string_view outcome,
              std::chrono::steady_clock::duration elapsed);

 private:
  metrics::CounterFamily& requests_;
  metrics::HistogramFamily& durations_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_REQUEST_METRICS_H_
