#include "base/log.h"

#include <charconv>
#include <cmath>
#include <ctime>

#include "base/encoding.h"

namespace kms::log {
namespace {

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// PrintableUtf8 has removed control characters; what is left to escape is '"' and '\'.
void AppendString(std::string& out, std::string_view value) {
  out += '"';
  for (char c : PrintableUtf8(value)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void AppendTime(std::string& out, std::chrono::system_clock::time_point when) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[96];  // sized for any int the compiler can imagine, so no truncation warning
  std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  out += buf;
}

}  // namespace

Logger::Logger(std::FILE* out, Level min_level,
               std::function<std::chrono::system_clock::time_point()> clock)
    : out_(out), min_level_(min_level), clock_(std::move(clock)) {}

std::string Logger::Format(std::chrono::system_clock::time_point when, Level level,
                           std::string_view msg, std::initializer_list<Field> fields) const {
  std::string line = "{\"time\":";
  AppendTime(line, when);
  line += ",\"level\":\"";
  line += LevelName(level);
  line += "\",\"msg\":";
  AppendString(line, msg);
  for (const Field& f : fields) {
    line += ",\"";
    line += f.key;
    line += "\":";
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
      AppendString(line, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      if (std::isfinite(*d)) {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d);
        line.append(buf, ec == std::errc() ? end : buf);
      } else {
        line += "null";  // JSON has no NaN or infinity
      }
    } else {
      line += std::get<bool>(f.value) ? "true" : "false";
    }
  }
  line += '}';
  return line;
}

void Logger::Log(Level level, std::string_view msg, std::initializer_list<Field> fields) const {
  if (!Enabled(level)) return;
  std::string line =
      Format(clock_ ? clock_() : std::chrono::system_clock::now(), level, msg, fields);
  line += '\n';
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

bool ParseLevel(std::string_view text, Level& level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(l)) {
      level = l;
      return true;
    }
  }
  return false;
}

}  // namespace kms::log
