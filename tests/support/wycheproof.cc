#include "tests/support/wycheproof.h"

// Boost.JSON header-only: its sources are compiled in this one translation unit.
#include <boost/json/src.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "base/encoding.h"

namespace kms::testing {
namespace {

namespace json = boost::json;

WycheproofFields ScalarFields(const json::object& obj) {
  WycheproofFields out;
  for (const auto& [key, value] : obj) {
    std::string k(key);
    if (value.is_string()) {
      out.strings.emplace(k, std::string(value.get_string()));
    } else if (value.is_int64()) {
      out.numbers.emplace(k, value.get_int64());
    } else if (value.is_uint64()) {
      out.numbers.emplace(k, static_cast<std::int64_t>(value.get_uint64()));
    } else if (value.is_array()) {
      std::string joined;
      bool all_strings = true;
      for (const auto& e : value.get_array()) {
        if (!e.is_string()) {
          all_strings = false;
          break;
        }
        if (!joined.empty()) joined += ',';
        joined += std::string(e.get_string());
      }
      if (all_strings) out.strings.emplace(k, std::move(joined));
    }
  }
  return out;
}

}  // namespace

StatusOr<std::string> WycheproofFields::String(std::string_view name) const {
  auto it = strings.find(name);
  if (it == strings.end()) return NotFoundError("no field " + std::string(name));
  return it->second;
}

StatusOr<Bytes> WycheproofFields::Hex(std::string_view name) const {
  KMS_ASSIGN_OR_RETURN(std::string text, String(name));
  return HexDecode(text);
}

StatusOr<std::int64_t> WycheproofFields::Number(std::string_view name) const {
  auto it = numbers.find(name);
  if (it == numbers.end()) return NotFoundError("no field " + std::string(name));
  return it->second;
}

std::filesystem::path WycheproofDir() {
  if (const char* env = std::getenv("KMS_WYCHEPROOF_DIR"); env != nullptr && *env != '\0') {
    return std::filesystem::path(env);
  }
  return std::filesystem::path("..") / "shared" / "vectors" / "wycheproof";
}

StatusOr<WycheproofFile> ParseWycheproof(std::string_view name, std::string_view json_text) {
  boost::system::error_code ec;
  json::value root = json::parse(json::string_view(json_text.data(), json_text.size()), ec);
  if (ec) return InvalidArgumentError(std::string(name) + ": not JSON: " + ec.message());
  if (!root.is_object())
    return InvalidArgumentError(std::string(name) + ": top level is not an object");
  const json::object& top = root.get_object();
  WycheproofFile file;
  file.name = std::string(name);
  if (auto* a = top.if_contains("algorithm"); a != nullptr && a->is_string()) {
    file.algorithm = std::string(a->get_string());
  }
  if (auto* n = top.if_contains("numberOfTests"); n != nullptr && n->is_int64()) {
    file.number_of_tests = n->get_int64();
  }
  const json::value* groups = top.if_contains("testGroups");
  if (groups == nullptr || !groups->is_array()) {
    return InvalidArgumentError(std::string(name) + ": no testGroups array");
  }
  for (const json::value& g : groups->get_array()) {
    if (!g.is_object())
      return InvalidArgumentError(std::string(name) + ": a group is not an object");
    WycheproofGroup group;
    group.fields = ScalarFields(g.get_object());
    const json::value* tests = g.get_object().if_contains("tests");
    if (tests == nullptr || !tests->is_array()) {
      return InvalidArgumentError(std::string(name) + ": a group has no tests array");
    }
    for (const json::value& t : tests->get_array()) {
      if (!t.is_object())
        return InvalidArgumentError(std::string(name) + ": a test is not an object");
      WycheproofTest test;
      test.fields = ScalarFields(t.get_object());
      auto id = test.fields.Number("tcId");
      auto result = test.fields.String("result");
      if (!id || !result)
        return InvalidArgumentError(std::string(name) + ": a test lacks tcId/result");
      if (*result != "valid" && *result != "invalid" && *result != "acceptable") {
        return InvalidArgumentError(std::string(name) + ": unknown result " + *result);
      }
      test.tc_id = *id;
      test.result = *result;
      test.comment = test.fields.String("comment").value_or("");
      group.tests.push_back(std::move(test));
    }
    file.groups.push_back(std::move(group));
  }
  return file;
}

StatusOr<WycheproofFile> LoadWycheproof(const std::filesystem::path& dir, std::string_view name) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return NotFoundError("no Wycheproof vectors at " + dir.string());
  }
  std::filesystem::path path = dir / std::string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("no Wycheproof file " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return ParseWycheproof(name, text.str());
}

std::size_t WycheproofTally::skipped_total() const {
  std::size_t n = 0;
  for (const auto& [reason, count] : skipped) n += count;
  return n;
}

std::string WycheproofTally::Summary(std::string_view file, std::string_view backend) const {
  std::ostringstream out;
  out << "wycheproof " << file << " [" << backend << "]: " << total << " vectors, run " << run
      << ", passed " << passed << ", failed " << (run - passed) << ", acceptable " << acceptable
      << " (accepted " << acceptable_accepted << "), skipped " << skipped_total();
  if (!skipped.empty()) {
    out << " (";
    bool first = true;
    for (const auto& [reason, count] : skipped) {
      out << (first ? "" : "; ") << count << ": " << reason;
      first = false;
    }
    out << ")";
  }
  return out.str();
}

}  // namespace kms::testing
