#include "api/http/request_metrics.h"

namespace kms::api::http {

RequestMetrics::RequestMetrics(metrics::MetricsRegistry& registry)
    : requests_(registry.AddCounter("kms_requests_total",
                                    "Requests answered by a door, by operation and outcome (ok or "
                                    "the error the client saw).",
                                    {"door", "operation", "outcome"})),
      durations_(registry.AddHistogram("kms_request_duration_seconds",
                                       "Time a door took to answer a request, by operation.",
                                       {"door", "operation"})) {}

void RequestMetrics::Record(std::string_view door, std::string_view operation,
                            std::string_view outcome, std::chrono::steady_clock::duration elapsed) {
  requests_.With({door, operation, outcome}).Increment();
  durations_.With({door, operation}).Observe(std::chrono::duration<double>(elapsed).count());
}

}  // namespace kms::api::http
