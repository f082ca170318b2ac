#include "base/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace kms::metrics {
namespace {

bool NameChar(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon_ok && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

// Names are constants in the code; a bad one is a bug that must not reach a scrape as broken text.
void RequireValid(bool valid, std::string_view what, std::string_view name) {
  if (valid) return;
  std::fprintf(stderr, "metrics: invalid %.*s name '%.*s'\n", static_cast<int>(what.size()),
               what.data(), static_cast<int>(name.size()), name.data());
  std::abort();
}

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc() ? end : buf);
  }
}

void AppendNumber(std::string& out, std::uint64_t v) { out += std::to_string(v); }

// Label values: backslash, double quote and line feed are escaped (exposition format 0.0.4).
void AppendEscaped(std::string& out, std::string_view value, bool quote) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void AppendHeader(std::string& out, std::string_view name, std::string_view help,
                  std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  AppendEscaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// `{a="x",b="y"}` (with an optional extra pair, for `le`), or nothing without labels.
void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    AppendEscaped(out, values[i], true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!NameChar(name[i], i == 0, true)) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!NameChar(name[i], i == 0, false)) return false;
  }
  return true;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};
  return kBuckets;
}

Histogram::Histogram(const std::vector<double>& upper_bounds)
    : bounds_(upper_bounds),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds.size() + 1)) {}

void Histogram::Observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  // The count is the +Inf bucket, so the two always agree within one scrape.
  s.count = running;
  return s;
}

template <typename Child>
Family<Child>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                      std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <>
std::unique_ptr<Counter> Family<Counter>::Make() const {
  return std::make_unique<Counter>();
}

template <>
std::unique_ptr<Histogram> Family<Histogram>::Make() const {
  return std::make_unique<Histogram>(bounds_);
}

template <typename Child>
Child& Family<Child>::With(std::initializer_list<std::string_view> values) {
  std::vector<std::string> v;
  v.reserve(values.size());
  for (std::string_view s : values) v.emplace_back(s);
  return Find(std::move(v));
}

template <typename Child>
Child& Family<Child>::With(const std::vector<std::string>& values) {
  return Find(values);
}

template <typename Child>
Child& Family<Child>::Find(std::vector<std::string> values) {
  {
    std::shared_lock lock(mu_);
    if (auto it = children_.find(values); it != children_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  if (values.size() != label_names_.size() || children_.size() >= kMaxChildren) {
    values.assign(label_names_.size(), "other");
  }
  auto [it, inserted] = children_.try_emplace(std::move(values));
  if (inserted) it->second = Make();
  return *it->second;
}

template <typename Child>
void Family<Child>::ForEach(
    const std::function<void(const std::vector<std::string>&, const Child&)>& visit) const {
  std::shared_lock lock(mu_);
  for (const auto& [values, child] : children_) visit(values, *child);
}

template class Family<Counter>;
template class Family<Histogram>;

CounterFamily& MetricsRegistry::AddCounter(std::string name, std::string help,
                                           std::vector<std::string> labels) {
  RequireValid(IsValidMetricName(name), "metric", name);
  for (const auto& l : labels) RequireValid(IsValidLabelName(l), "label", l);
  std::lock_guard lock(mu_);
  if (auto it = counters_.find(name); it != counters_.end()) return *it->second;
  RequireValid(!histograms_.contains(name) && !callbacks_.contains(name), "(already used) metric",
               name);
  order_.push_back(name);
  auto family = std::unique_ptr<CounterFamily>(
      new CounterFamily(name, std::move(help), std::move(labels), {}));
  return *counters_.emplace(std::move(name), std::move(family)).first->second;
}

HistogramFamily& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                               std::vector<std::string> labels,
                                               const std::vector<double>& upper_bounds) {
  RequireValid(IsValidMetricName(name), "metric", name);
  for (const auto& l : labels) RequireValid(IsValidLabelName(l) && l != "le", "label", l);
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    RequireValid(
        std::isfinite(upper_bounds[i]) && (i == 0 || upper_bounds[i] > upper_bounds[i - 1]),
        "bucket bound of", name);
  }
  std::lock_guard lock(mu_);
  if (auto it = histograms_.find(name); it != histograms_.end()) return *it->second;
  RequireValid(!counters_.contains(name) && !callbacks_.contains(name), "(already used) metric",
               name);
  order_.push_back(name);
  auto family = std::unique_ptr<HistogramFamily>(
      new HistogramFamily(name, std::move(help), std::move(labels), upper_bounds));
  return *histograms_.emplace(std::move(name), std::move(family)).first->second;
}

void MetricsRegistry::AddGauge(std::string name, std::string help, std::function<double()> read) {
  AddCallback(std::move(name), std::move(help), "gauge", std::move(read));
}

void MetricsRegistry::AddCounterCallback(std::string name, std::string help,
                                         std::function<double()> read) {
  AddCallback(std::move(name), std::move(help), "counter", std::move(read));
}

void MetricsRegistry::AddCallback(std::string name, std::string help, std::string_view type,
                                  std::function<double()> read) {
  RequireValid(IsValidMetricName(name), "metric", name);
  std::lock_guard lock(mu_);
  if (counters_.contains(name) || histograms_.contains(name) || callbacks_.contains(name)) return;
  order_.push_back(name);
  callbacks_.emplace(std::move(name), Callback{std::move(help), type, std::move(read)});
}

std::string MetricsRegistry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const std::string& name : order_) {
    if (auto c = counters_.find(name); c != counters_.end()) {
      const CounterFamily& f = *c->second;
      AppendHeader(out, name, f.help(), "counter");
      f.ForEach([&](const std::vector<std::string>& values, const Counter& counter) {
        out += name;
        AppendLabels(out, f.label_names(), values);
        out += ' ';
        AppendNumber(out, counter.value());
        out += '\n';
      });
    } else if (auto h = histograms_.find(name); h != histograms_.end()) {
      const HistogramFamily& f = *h->second;
      AppendHeader(out, name, f.help(), "histogram");
      f.ForEach([&](const std::vector<std::string>& values, const Histogram& histogram) {
        const Histogram::Snapshot s = histogram.Read();
        for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
          std::string le;
          if (i < f.bounds().size()) {
            AppendNumber(le, f.bounds()[i]);
          } else {
            le = "+Inf";
          }
          out += name;
          out += "_bucket";
          AppendLabels(out, f.label_names(), values, "le", le);
          out += ' ';
          AppendNumber(out, s.cumulative[i]);
          out += '\n';
        }
        out += name;
        out += "_sum";
        AppendLabels(out, f.label_names(), values);
        out += ' ';
        AppendNumber(out, s.sum);
        out += '\n';
        out += name;
        out += "_count";
        AppendLabels(out, f.label_names(), values);
        out += ' ';
        AppendNumber(out, s.count);
        out += '\n';
      });
    } else if (auto g = callbacks_.find(name); g != callbacks_.end()) {
      AppendHeader(out, name, g->second.help, g->second.type);
      out += name;
      out += ' ';
      AppendNumber(out, g->second.read());
      out += '\n';
    }
  }
  return out;
}

}  // namespace kms::metrics
