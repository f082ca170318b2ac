// Structured logs: one JSON object per line, for journald, Loki, or `jq`.
//
//   {"time":"2026-12-06T19:52:02.123Z","level":"info","msg":"ready","endpoint":"http://127.0.0.1:8300"}
//
// Every line has `time` (UTC, milliseconds), `level` ("debug", "info", "warn", "error") and `msg`,
// then the caller's fields in the order given. String values pass through PrintableUtf8 (so a line
// is always valid JSON on one line, whatever bytes a caller echoes) and are JSON-escaped.
//
// What may be logged: names, ids, counts, durations, status texts. Never a plaintext, a data key, a
// PIN, a share, a token or a secret access key: none of those types (SecretBytes) converts to a
// field, and the e2e suite greps every daemon log for the secrets its tests used.
//
// Thread-safety: Log from any thread; each line is written whole under the logger's lock. The FILE
// must outlive the logger.
#ifndef KMS_BASE_LOG_H_
#define KMS_BASE_LOG_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

namespace kms::log {

enum class Level { kDebug, kInfo, kWarn, kError };

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, std::int64_t v) : key(k), value(v) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<std::int64_t>(v)) {}
  Field(std::string_view k, unsigned v) : key(k), value(static_cast<std::int64_t>(v)) {}
  Field(std::string_view k, std::uint64_t v) : key(k), value(static_cast<std::int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}

  std::string_view key;  // a constant of the code: [a-z_]+, not escaped
  std::variant<std::string_view, std::int64_t, double, bool> value;
};

class Logger {
 public:
  // `clock` defaults to the system clock; tests pin it.
  explicit Logger(std::FILE* out, Level min_level = Level::kInfo,
                  std::function<std::chrono::system_clock::time_point()> clock = {});

  void Log(Level level, std::string_view msg, std::initializer_list<Field> fields = {}) const;
  void Info(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    Log(Level::kInfo, msg, fields);
  }
  void Warn(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    Log(Level::kWarn, msg, fields);
  }
  void Error(std::string_view msg, std::initializer_list<Field> fields = {}) const {
    Log(Level::kError, msg, fields);
  }
  bool Enabled(Level level) const { return level >= min_level_; }

  // The line Log would write, without the trailing newline (exposed for tests).
  std::string Format(std::chrono::system_clock::time_point when, Level level, std::string_view msg,
                     std::initializer_list<Field> fields) const;

 private:
  std::FILE* out_;
  Level min_level_;
  std::function<std::chrono::system_clock::time_point()> clock_;
  mutable std::mutex mu_;
};

// "debug", "info", "warn", "error"; false for anything else.
bool ParseLevel(std::string_view text, Level& level);

}  // namespace kms::log

#endif  // KMS_BASE_LOG_H_
