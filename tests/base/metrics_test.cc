#include "base/metrics.h"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

using kms::metrics::Counter;
using kms::metrics::Histogram;
using kms::metrics::MetricsRegistry;

TEST_CASE("metrics: counters render as Prometheus text with escaped labels", "[unit]") {
  MetricsRegistry registry;
  auto& requests = registry.AddCounter("kms_requests_total", "Requests by door.\nSecond line \\.",
                                       {"door", "outcome"});
  requests.With({"aws", "ok"}).Increment();
  requests.With({"aws", "ok"}).Increment(2);
  requests.With({"vault", "a\"b\\c\nd"}).Increment();
  CHECK(registry.Render() ==
        "# HELP kms_requests_total Requests by door.\\nSecond line \\\\.\n"
        "# TYPE kms_requests_total counter\n"
        "kms_requests_total{door=\"aws\",outcome=\"ok\"} 3\n"
        "kms_requests_total{door=\"vault\",outcome=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST_CASE("metrics: a family with no children renders only its header", "[unit]") {
  MetricsRegistry registry;
  registry.AddCounter("kms_errors_total", "Errors.", {"operation"});
  CHECK(registry.Render() == "# HELP kms_errors_total Errors.\n# TYPE kms_errors_total counter\n");
}

TEST_CASE("metrics: histograms are cumulative, with +Inf, sum and count", "[unit]") {
  MetricsRegistry registry;
  auto& latency = registry.AddHistogram("kms_latency_seconds", "Latency.", {"op"}, {0.01, 0.1, 1});
  auto& h = latency.With({"Encrypt"});
  h.Observe(0.005);
  h.Observe(0.01);  // on the bound: counted in le="0.01" (upper bounds are inclusive)
  h.Observe(0.5);
  h.Observe(30);
  CHECK(registry.Render() ==
        "# HELP kms_latency_seconds Latency.\n"
        "# TYPE kms_latency_seconds histogram\n"
        "kms_latency_seconds_bucket{op=\"Encrypt\",le=\"0.01\"} 2\n"
        "kms_latency_seconds_bucket{op=\"Encrypt\",le=\"0.1\"} 2\n"
        "kms_latency_seconds_bucket{op=\"Encrypt\",le=\"1\"} 3\n"
        "kms_latency_seconds_bucket{op=\"Encrypt\",le=\"+Inf\"} 4\n"
        "kms_latency_seconds_sum{op=\"Encrypt\"} 30.515\n"
        "kms_latency_seconds_count{op=\"Encrypt\"} 4\n");
}

TEST_CASE("metrics: gauges read their callback at scrape time, families keep their order",
          "[unit]") {
  MetricsRegistry registry;
  double open = 2;
  registry.AddGauge("kms_http_connections", "Open connections.", [&open] { return open; });
  registry.AddCounter("kms_b_total", "B.", {});
  registry.AddCounter("kms_b_total", "ignored: the first registration wins", {"x"})
      .With({})
      .Increment();
  open = 7.5;
  CHECK(registry.Render() ==
        "# HELP kms_http_connections Open connections.\n"
        "# TYPE kms_http_connections gauge\n"
        "kms_http_connections 7.5\n"
        "# HELP kms_b_total B.\n"
        "# TYPE kms_b_total counter\n"
        "kms_b_total 1\n");
}

TEST_CASE("metrics: a counter kept elsewhere is read at scrape time and typed counter", "[unit]") {
  MetricsRegistry registry;
  std::uint64_t hits = 41;
  registry.AddCounterCallback("kms_cache_hits_total", "Hits.", [&hits] { return double(hits); });
  registry.AddGauge("kms_cache_hits_total", "ignored: the name is taken", [] { return 0.0; });
  ++hits;
  CHECK(registry.Render() ==
        "# HELP kms_cache_hits_total Hits.\n# TYPE kms_cache_hits_total counter\n"
        "kms_cache_hits_total 42\n");
}

TEST_CASE("metrics: label cardinality is bounded, a wrong label count is folded", "[unit]") {
  MetricsRegistry registry;
  auto& f = registry.AddCounter("kms_c_total", "C.", {"k"});
  for (std::size_t i = 0; i < kms::metrics::CounterFamily::kMaxChildren + 50; ++i) {
    f.With({std::to_string(i)}).Increment();
  }
  std::size_t children = 0;
  std::uint64_t other = 0;
  f.ForEach([&](const std::vector<std::string>& v, const Counter& c) {
    ++children;
    if (v[0] == "other") other = c.value();
  });
  CHECK(children == kms::metrics::CounterFamily::kMaxChildren + 1);
  CHECK(other == 50);
  f.With({"a", "b"}).Increment();
  CHECK(f.With({"other"}).value() == 51);
  // A child created before the bound keeps counting.
  f.With({"3"}).Increment();
  CHECK(f.With({"3"}).value() == 2);
}

TEST_CASE("metrics: names follow Prometheus' grammar", "[unit]") {
  CHECK(kms::metrics::IsValidMetricName("kms_requests_total"));
  CHECK(kms::metrics::IsValidMetricName("kms:rate5m"));
  CHECK_FALSE(kms::metrics::IsValidMetricName(""));
  CHECK_FALSE(kms::metrics::IsValidMetricName("1kms"));
  CHECK_FALSE(kms::metrics::IsValidMetricName("kms-requests"));
  CHECK(kms::metrics::IsValidLabelName("operation"));
  CHECK_FALSE(kms::metrics::IsValidLabelName("__name"));
  CHECK_FALSE(kms::metrics::IsValidLabelName("a:b"));
  CHECK_FALSE(kms::metrics::IsValidLabelName("0a"));
}

TEST_CASE("metrics: concurrent increments and observations are all counted",
          "[unit][concurrency]") {
  MetricsRegistry registry;
  auto& c = registry.AddCounter("kms_n_total", "N.", {"t"});
  auto& h = registry.AddHistogram("kms_h_seconds", "H.", {});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.With({t % 2 == 0 ? "even" : "odd"}).Increment();
        h.With({}).Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.With({"even"}).value() == 20000);
  CHECK(c.With({"odd"}).value() == 20000);
  const Histogram::Snapshot s = h.With({}).Read();
  CHECK(s.count == 40000);
  CHECK(s.sum == Approx(40.0));
}
