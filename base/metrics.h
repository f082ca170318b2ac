// Process metrics in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
//
// A `MetricsRegistry` owns metric families: counters and histograms with named labels, and gauges
// whose value a callback reads at scrape time (open connections, say). Code that counts something
// holds a family and asks it for the child of its label values (`family.With({"aws", "Encrypt"})`);
// the child is created on first use and lives as long as the registry, so the returned reference
// may be kept. Counting is lock-free (atomics); finding a child takes a shared lock.
//
// Label values must come from bounded sets (operation names, error names, status codes), never from
// request data: a family holds at most `kMaxChildren` children, and label values past that count
// are folded into one child whose every label is "other", so a bug cannot grow memory without
// bound. Metric and label names are checked when the family is added (Prometheus' grammar); label
// values are escaped on output.
//
// Nothing here may carry a secret: metrics are served without authentication on the appliance's
// listener, and carry only counts, durations and names.
//
// Thread-safety: every method is safe from any thread. Families are added before serving starts
// (adding takes the registry's lock and the families are never removed).
#ifndef KMS_BASE_METRICS_H_
#define KMS_BASE_METRICS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace kms::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  void Increment(std::uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Histogram {
 public:
  // `upper_bounds` strictly increasing and finite; +Inf is implicit.
  explicit Histogram(const std::vector<double>& upper_bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// A family of children keyed by label values; `Child` is Counter or Histogram.
template <typename Child>
class Family {
 public:
  static constexpr std::size_t kMaxChildren = 1000;

  // `values` has one entry per label name, in the family's order; a wrong count is a programming
  // error and gets the overflow child.
  Child& With(std::initializer_list<std::string_view> values);
  Child& With(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& bounds() const { return bounds_; }  // histograms only
  // Calls `visit(label_values, child)` for each child, in label order.
  void ForEach(
      const std::function<void(const std::vector<std::string>&, const Child&)>& visit) const;

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);
  Child& Find(std::vector<std::string> values);
  std::unique_ptr<Child> Make() const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>, std::less<>> children_;
};

using CounterFamily = Family<Counter>;
using HistogramFamily = Family<Histogram>;

// Latency buckets in seconds, from 100 µs (an HSM call) to 10 s (a stuck request).
const std::vector<double>& LatencyBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Adding a name twice returns the family added first (its help and labels win); a callback added
  // under a name already used is ignored. An invalid metric or label name, or a counter name
  // reused for a histogram (and so on), aborts: names are constants in the code, so either is a
  // programming error.
  CounterFamily& AddCounter(std::string name, std::string help, std::vector<std::string> labels);
  HistogramFamily& AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                const std::vector<double>& upper_bounds = LatencyBuckets());
  // A label-less gauge read at scrape time; `read` must be thread-safe and must not throw.
  void AddGauge(std::string name, std::string help, std::function<double()> read);
  // A label-less counter read at scrape time, for counts another component keeps (cache hits);
  // `read` must be monotonic, thread-safe and must not throw.
  void AddCounterCallback(std::string name, std::string help, std::function<double()> read);

  // Every family, in the order added, as Prometheus text.
  std::string Render() const;

 private:
  // A value read at scrape time: a gauge, or a counter kept elsewhere.
  struct Callback {
    std::string help;
    std::string_view type;  // "gauge" or "counter"
    std::function<double()> read;
  };
  void AddCallback(std::string name, std::string help, std::string_view type,
                   std::function<double()> read);
  mutable std::mutex mu_;
  std::vector<std::string> order_;  // names in the order added
  std::map<std::string, std::unique_ptr<CounterFamily>, std::less<>> counters_;
  std::map<std::string, std::unique_ptr<HistogramFamily>, std::less<>> histograms_;
  std::map<std::string, Callback, std::less<>> callbacks_;
};

// Prometheus' grammar: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
// and not starting with "__".
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

}  // namespace kms::metrics

#endif  // KMS_BASE_METRICS_H_
