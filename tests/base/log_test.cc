#include "base/log.h"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace kms::log {
namespace {

using std::chrono::system_clock;

const system_clock::time_point kWhen =
    system_clock::time_point(std::chrono::milliseconds(1796586722123));  // 2026-12-06T19:52:02.123Z

TEST_CASE("log: one JSON object per line with time, level, msg and fields in order", "[unit]") {
  Logger logger(stderr);
  const std::string line = logger.Format(kWhen, Level::kInfo, "ready",
                                         {{"endpoint", "http://127.0.0.1:8300"},
                                          {"workers", 4},
                                          {"tls", false},
                                          {"p99_ms", 3.5},
                                          {"connections", std::size_t{32}}});
  CHECK(
      line ==
      R"({"time":"2026-12-06T19:52:02.123Z","level":"info","msg":"ready",)"
      R"("endpoint":"http://127.0.0.1:8300","workers":4,"tls":false,"p99_ms":3.5,"connections":32})");
}

TEST_CASE("log: hostile strings stay one valid JSON line", "[unit]") {
  Logger logger(stderr);
  const std::string line =
      logger.Format(kWhen, Level::kError, "quote \" backslash \\ newline \n",
                    {{"bytes", std::string_view("\xff\x01\"}{", 5)}, {"nan", std::nan("")}});
  CHECK(line.find('\n') == std::string::npos);
  const auto v = boost::json::parse(line).as_object();
  CHECK(v.at("msg").as_string() == "quote \" backslash \\ newline ?");
  CHECK(v.at("bytes").as_string() == "??\"}{");
  CHECK(v.at("nan").is_null());
  CHECK(v.at("level").as_string() == "error");
}

TEST_CASE("log: lines below the level are dropped, and written lines end in a newline", "[unit]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  Logger logger(f, Level::kWarn, [] { return kWhen; });
  logger.Info("dropped");
  logger.Warn("kept", {{"n", 1}});
  std::rewind(f);
  char buf[256] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  CHECK(std::string(buf, n) ==
        "{\"time\":\"2026-12-06T19:52:02.123Z\",\"level\":\"warn\",\"msg\":\"kept\",\"n\":1}\n");
  Level level = Level::kInfo;
  CHECK(ParseLevel("debug", level));
  CHECK(level == Level::kDebug);
  CHECK_FALSE(ParseLevel("verbose", level));
}

}  // namespace
}  // namespace kms::log
