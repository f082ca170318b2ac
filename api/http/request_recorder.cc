#include "api/http/request_recorder.h"

#include <cmath>

namespace kms::api::http {

RequestRecorder::RequestRecorder(const RequestObservers& observers)
    : log_(observers.log), log_every_request_(observers.log_every_request) {
  if (observers.metrics != nullptr) {
    requests_ = &observers.metrics->AddCounter(
        "kms_requests_total",
        "Requests answered by a door, by operation and outcome (ok or the error the client saw).",
        {"door", "operation", "outcome"});
    durations_ = &observers.metrics->AddHistogram(
        "kms_request_duration_seconds", "Time a door took to answer a request, by operation.",
        {"door", "operation"});
  }
}

void RequestRecorder::Record(const RequestRecord& r) const {
  const double seconds = std::chrono::duration<double>(r.elapsed).count();
  if (requests_ != nullptr) {
    requests_->With({r.door, r.operation, r.outcome}).Increment();
    durations_->With({r.door, r.operation}).Observe(seconds);
  }
  if (log_ == nullptr) return;
  const bool failed = r.status >= 500;
  if (!failed && !log_every_request_) return;
  log_->Log(failed ? log::Level::kError : log::Level::kInfo, failed ? "request failed" : "request",
            {{"request_id", r.request_id},
             {"door", r.door},
             {"operation", r.operation},
             {"outcome", r.outcome},
             {"status", r.status},
             {"duration_ms", std::round(seconds * 1e6) / 1000.0},  // µs resolution
             {"remote", r.remote_address}});
}

}  // namespace kms::api::http
