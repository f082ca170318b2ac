// The policy language engine. See policy.h for the contract; the sources relied on are cited where
// their rule is implemented:
//  [IAM-OPS]   IAM User Guide, "IAM JSON policy elements: Condition operators"
//              (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)
//  [IAM-MULTI] IAM User Guide, "Single-valued vs. multivalued context keys" and "Multivalued
//  context
//              keys examples" (ForAllValues / ForAnyValue)
//  [IAM-PRIN]  IAM User Guide, "AWS JSON policy elements: Principal"
//  [KMS-COND]  AWS KMS Developer Guide, "AWS KMS condition keys" (conditions-kms.md)
//  [KMS-POL]   AWS KMS Developer Guide, "Default key policy" and "Getting a key policy"
//
// Parsing happens in two passes over at most 32 KB: a Boost.JSON SAX pass that only looks for
// duplicate keys (the DOM keeps one of them silently, and a policy whose second "Effect" hides
// its first must not reach evaluation), then the DOM parse that the Compiler walks.
#include "firmware/authz/policy.h"

#include <algorithm>
#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kms::firmware::authz {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxExcerpt = 64;  // longest piece of client input echoed in a message
constexpr std::size_t kMaxJsonDepth = 32;

constexpr std::string_view kMsgInvalidPrincipals =
    "Policy contains a statement with one or more invalid principals.";
constexpr std::string_view kMsgInvalidActions =
    "Policy contains a statement with one or more invalid actions; an action is \"*\" or "
    "\"<service>:<action>\", for example \"kms:Encrypt\" or \"kms:*\".";
constexpr std::string_view kMsgInvalidResources =
    "Policy contains a statement with one or more invalid resources; a resource is \"*\" or an "
    "ARN, for example \"arn:aws:kms:us-east-1:111122223333:key/*\".";
constexpr std::string_view kMsgLockout =
    "The new key policy will not allow you to update the key policy in the future.";

// Every refusal of a document's content: InvalidArgument, MalformedPolicyDocumentException.
Status MalformedPolicy(std::string message) {
  return InvalidArgumentError(std::move(message), Reason::kMalformedPolicy);
}

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A short, printable piece of client input for a message: at most kMaxExcerpt bytes, anything
// outside printable ASCII shown as '?', so a message never carries control characters or a large
// chunk of the document.
std::string Excerpt(std::string_view s) {
  std::string out;
  const std::size_t n = std::min(s.size(), kMaxExcerpt);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[i];
    out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  }
  if (s.size() > kMaxExcerpt) out += "...";
  return out;
}

// Glob match with '*' (any run, possibly empty) and '?' (one byte). Iterative two-pointer with a
// single backtrack point: when a later '*' is met the earlier one can never need revisiting, so
// the work is O(|pattern| * |text|) at worst ("a*a*a*a*b" against "aaaa...a"), never exponential.
// With ignore_case the pattern must already be lower-case; text bytes are lowered as compared.
bool GlobMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;  // position of the last '*' seen in pattern
  std::size_t resume = 0;                     // text position that '*' currently stops before
  while (t < text.size()) {
    const char tc = ignore_case ? LowerAscii(text[t]) : text[t];
    if (p < pattern.size() && pattern[p] != '*' && (pattern[p] == '?' || pattern[p] == tc)) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;  // let the last '*' swallow one more byte and retry
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Splits an ARN into its six colon-separated fields (the last keeps any further colons). False
// if there are fewer than six.
bool SplitArn(std::string_view arn, std::array<std::string_view, 6>& fields) {
  for (std::size_t i = 0; i < 5; ++i) {
    const std::size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return false;
    fields[i] = arn.substr(0, colon);
    arn.remove_prefix(colon + 1);
  }
  fields[5] = arn;
  return true;
}

// [IAM-OPS] ArnEquals/ArnLike: "Each of the six colon-delimited components of the ARN is checked
// separately and each can include ... wildcards", case-sensitively. A pattern that is not a full
// ARN (typically "*") is matched as a whole string.
bool ArnMatch(std::string_view pattern, std::string_view value) {
  std::array<std::string_view, 6> pattern_fields;
  if (!SplitArn(pattern, pattern_fields)) return GlobMatch(pattern, value, false);
  std::array<std::string_view, 6> value_fields;
  if (!SplitArn(value, value_fields)) return false;
  for (std::size_t i = 0; i < 6; ++i) {
    if (!GlobMatch(pattern_fields[i], value_fields[i], false)) return false;
  }
  return true;
}

bool IsAccountId(std::string_view s) {
  return s.size() == 12 && std::all_of(s.begin(), s.end(), IsDigit);
}

// The account field of an IAM/STS principal ARN ("arn:aws:iam::<acct>:user/x"), or "".
std::string_view PrincipalAccount(std::string_view arn) {
  std::array<std::string_view, 6> fields;
  if (!SplitArn(arn, fields) || fields[0] != "arn") return {};
  if (fields[2] != "iam" && fields[2] != "sts") return {};
  return fields[4];
}

bool IsIamNameCharacter(char c) {
  return IsAlnum(c) || c == '+' || c == '=' || c == ',' || c == '.' || c == '@' || c == '_' ||
         c == '-';
}

// "name" or "path/.../name": non-empty segments of IAM name characters.
bool IsIamPathAndName(std::string_view s) {
  if (s.empty()) return false;
  std::size_t segment = 0;
  for (const char c : s) {
    if (c == '/') {
      if (segment == 0) return false;
      segment = 0;
    } else if (IsIamNameCharacter(c)) {
      ++segment;
    } else {
      return false;
    }
  }
  return segment > 0;
}

enum class PrincipalForm { kInvalid, kAny, kAccountRoot, kArn };

// [IAM-PRIN] The AWS principal forms the appliance understands; `account` receives the account of
// a root form. Wildcards other than the whole "*" are invalid ("You cannot use a wildcard to match
// part of a principal name or ARN").
PrincipalForm ClassifyAwsPrincipal(std::string_view s, std::string_view& account) {
  if (s == "*") return PrincipalForm::kAny;
  if (IsAccountId(s)) {
    account = s;
    return PrincipalForm::kAccountRoot;
  }
  std::array<std::string_view, 6> f;
  if (!SplitArn(s, f) || f[0] != "arn" || f[1] != "aws" || !f[3].empty() || !IsAccountId(f[4])) {
    return PrincipalForm::kInvalid;
  }
  const std::string_view resource = f[5];
  if (f[2] == "iam") {
    if (resource == "root") {
      account = f[4];
      return PrincipalForm::kAccountRoot;
    }
    for (const std::string_view prefix : {std::string_view("user/"), std::string_view("role/")}) {
      if (resource.starts_with(prefix) && IsIamPathAndName(resource.substr(prefix.size()))) {
        return PrincipalForm::kArn;
      }
    }
    return PrincipalForm::kInvalid;
  }
  if (f[2] == "sts") {
    constexpr std::string_view kAssumedRole = "assumed-role/";
    if (!resource.starts_with(kAssumedRole)) return PrincipalForm::kInvalid;
    const std::string_view rest = resource.substr(kAssumedRole.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
      return PrincipalForm::kInvalid;
    }
    const std::string_view role = rest.substr(0, slash);
    const std::string_view session = rest.substr(slash + 1);
    if (!std::all_of(role.begin(), role.end(), IsIamNameCharacter) ||
        !std::all_of(session.begin(), session.end(), IsIamNameCharacter)) {
      return PrincipalForm::kInvalid;
    }
    return PrincipalForm::kArn;
  }
  return PrincipalForm::kInvalid;
}

// A service principal such as "logs.us-east-1.amazonaws.com": lower-case DNS-ish characters.
bool IsServicePrincipal(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || IsDigit(c) || c == '.' || c == '-';
  });
}

// "*" or "<service>:<pattern>".
bool IsValidAction(std::string_view s) {
  if (s == "*") return true;
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
  const std::string_view service = s.substr(0, colon);
  const std::string_view name = s.substr(colon + 1);
  return std::all_of(service.begin(), service.end(),
                     [](char c) { return IsAlnum(c) || c == '-'; }) &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlnum(c) || c == '*' || c == '?'; });
}

// "*" or an ARN pattern with its six fields.
bool IsValidResource(std::string_view s) {
  if (s == "*") return true;
  std::array<std::string_view, 6> fields;
  return s.starts_with("arn:") && SplitArn(s, fields) && !fields[1].empty() && !fields[2].empty() &&
         !fields[5].empty();
}

// "<vendor>:<name>", e.g. "kms:CallerAccount", "aws:PrincipalArn", "kms:EncryptionContext:k".
bool IsValidConditionKey(std::string_view s) {
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
  const std::string_view vendor = s.substr(0, colon);
  return std::all_of(vendor.begin(), vendor.end(), [](char c) { return IsAlnum(c) || c == '-'; });
}

bool ParseDouble(std::string_view s, double& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end;
}

bool ParseFixedDigits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

// [IAM-OPS] Date operators take "one of the W3C implementations of the ISO 8601 date formats or
// ... epoch (UNIX) time". Accepted: epoch seconds (digits), "YYYY-MM-DD", optionally followed by
// "Thh:mm", ":ss", ".fraction" and "Z" or "+hh:mm" / "-hh:mm" (no zone means UTC). Milliseconds
// since the epoch, or nullopt.
std::optional<std::int64_t> ParseDate(std::string_view s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), IsDigit)) {
    if (s.size() > 12) return std::nullopt;  // beyond year 33658: not a date anyone means
    std::int64_t seconds = 0;
    std::from_chars(s.data(), s.data() + s.size(), seconds);
    return seconds * 1000;
  }
  int year = 0, month = 0, day = 0;
  if (!ParseFixedDigits(s, 0, 4, year) || s.size() < 10 || s[4] != '-' ||
      !ParseFixedDigits(s, 5, 2, month) || s[7] != '-' || !ParseFixedDigits(s, 8, 2, day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  std::int64_t ms = DaysFromCivil(year, month, day) * 86'400'000;
  std::size_t pos = 10;
  if (pos < s.size() && s[pos] == 'T') {
    int hour = 0, minute = 0, second = 0;
    if (!ParseFixedDigits(s, pos + 1, 2, hour) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseFixedDigits(s, pos + 4, 2, minute) || hour > 23 || minute > 59) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!ParseFixedDigits(s, pos + 1, 2, second) || second > 60) return std::nullopt;
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        const std::size_t start = pos;
        int fraction_ms = 0;
        while (pos < s.size() && IsDigit(s[pos])) {
          if (pos - start < 3) fraction_ms = fraction_ms * 10 + (s[pos] - '0');
          ++pos;
        }
        if (pos == start) return std::nullopt;
        for (std::size_t i = pos - start; i < 3; ++i) fraction_ms *= 10;
        ms += fraction_ms;
      }
    }
    ms += (static_cast<std::int64_t>(hour) * 3600 + minute * 60 + second) * 1000;
    if (pos < s.size() && s[pos] == 'Z') {
      ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
      const bool east = s[pos] == '+';
      int zone_hour = 0, zone_minute = 0;
      if (!ParseFixedDigits(s, pos + 1, 2, zone_hour)) return std::nullopt;
      std::size_t next = pos + 3;
      if (next < s.size() && s[next] == ':') ++next;
      if (!ParseFixedDigits(s, next, 2, zone_minute) || zone_hour > 23 || zone_minute > 59) {
        return std::nullopt;
      }
      const std::int64_t offset_ms = (zone_hour * 60 + zone_minute) * 60'000LL;
      ms += east ? -offset_ms : offset_ms;
      pos = next + 2;
    }
  }
  if (pos != s.size()) return std::nullopt;
  return ms;
}

// Finds duplicate object keys, which boost::json::parse would silently collapse. Everything else
// is accepted: the DOM parse that follows reports syntax errors.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    open_objects_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    open_objects_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    key_.append(s.data(), s.size());
    if (!open_objects_.back().insert(key_).second) {
      duplicate_ = key_;
      ec = json::error::syntax;  // stops the parser; Parse reports duplicate_ instead
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  std::vector<std::unordered_set<std::string>> open_objects_;
  std::string key_;
  std::optional<std::string> duplicate_;
};

json::parse_options StrictJson() {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  return options;  // no comments, no trailing commas, valid UTF-8 only
}

// The scalar text of a condition value: strings as given, booleans "true"/"false", numbers in
// their shortest decimal form (AWS compares condition values as strings).
std::optional<std::string> ScalarText(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string().data(), v.get_string().size());
    case json::kind::bool_:
      return std::string(v.get_bool() ? "true" : "false");
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_: {
      std::array<char, 32> buffer{};
      const auto [ptr, ec] =
          std::to_chars(buffer.data(), buffer.data() + buffer.size(), v.get_double());
      if (ec != std::errc()) return std::nullopt;
      return std::string(buffer.data(), ptr);
    }
    default:
      return std::nullopt;
  }
}

std::string_view View(const json::string& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// ConditionValues

std::size_t ConditionValues::CaseInsensitiveHash::operator()(std::string_view s) const {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the lower-cased bytes
  for (const char c : s) {
    h ^= static_cast<unsigned char>(LowerAscii(c));
    h *= 1099511628211ULL;
  }
  return static_cast<std::size_t>(h);
}

bool ConditionValues::CaseInsensitiveEqual::operator()(std::string_view a,
                                                       std::string_view b) const {
  return EqualsIgnoreCase(a, b);
}

void ConditionValues::Set(std::string_view key, std::vector<std::string> values) {
  if (values.empty()) {
    if (auto it = values_.find(key); it != values_.end()) values_.erase(it);
    return;
  }
  if (auto it = values_.find(key); it != values_.end()) {
    it->second = std::move(values);
  } else {
    values_.emplace(LowerAscii(key), std::move(values));
  }
}

void ConditionValues::Set(std::string_view key, std::string value) {
  std::vector<std::string> values;
  values.push_back(std::move(value));
  Set(key, std::move(values));
}

void ConditionValues::Add(std::string_view key, std::string value) {
  if (auto it = values_.find(key); it != values_.end()) {
    it->second.push_back(std::move(value));
  } else {
    std::vector<std::string> values;
    values.push_back(std::move(value));
    values_.emplace(LowerAscii(key), std::move(values));
  }
}

void ConditionValues::SetEncryptionContext(const std::map<std::string, std::string>& context) {
  if (context.empty()) return;
  std::vector<std::string> keys;
  keys.reserve(context.size());
  std::string condition_key;
  for (const auto& [key, value] : context) {
    condition_key.assign(condition_keys::kEncryptionContextPrefix);
    condition_key += key;
    Add(condition_key, value);
    keys.push_back(key);
  }
  Set(condition_keys::kEncryptionContextKeys, std::move(keys));
}

const std::vector<std::string>* ConditionValues::Find(std::string_view key) const {
  const auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------
// The compiled form

namespace {

enum class ConditionTest {
  kStringEquals,
  kStringEqualsIgnoreCase,
  kStringLike,
  kNumericEquals,
  kNumericLessThan,
  kNumericLessThanEquals,
  kNumericGreaterThan,
  kNumericGreaterThanEquals,
  kDateEquals,
  kDateLessThan,
  kDateLessThanEquals,
  kDateGreaterThan,
  kDateGreaterThanEquals,
  kBool,
  kArnLike,
  kNull,
};

enum class SetQualifier { kNone, kForAnyValue, kForAllValues };

struct OperatorName {
  std::string_view name;
  ConditionTest test;
  bool negated;
};

// [IAM-OPS] The operator table. Negated forms are the positive test inverted; ArnEquals and
// ArnLike "behave identically", as do ArnNotEquals and ArnNotLike.
constexpr std::array<OperatorName, 24> kOperators = {{
    {"StringEquals", ConditionTest::kStringEquals, false},
    {"StringNotEquals", ConditionTest::kStringEquals, true},
    {"StringEqualsIgnoreCase", ConditionTest::kStringEqualsIgnoreCase, false},
    {"StringNotEqualsIgnoreCase", ConditionTest::kStringEqualsIgnoreCase, true},
    {"StringLike", ConditionTest::kStringLike, false},
    {"StringNotLike", ConditionTest::kStringLike, true},
    {"NumericEquals", ConditionTest::kNumericEquals, false},
    {"NumericNotEquals", ConditionTest::kNumericEquals, true},
    {"NumericLessThan", ConditionTest::kNumericLessThan, false},
    {"NumericLessThanEquals", ConditionTest::kNumericLessThanEquals, false},
    {"NumericGreaterThan", ConditionTest::kNumericGreaterThan, false},
    {"NumericGreaterThanEquals", ConditionTest::kNumericGreaterThanEquals, false},
    {"DateEquals", ConditionTest::kDateEquals, false},
    {"DateNotEquals", ConditionTest::kDateEquals, true},
    {"DateLessThan", ConditionTest::kDateLessThan, false},
    {"DateLessThanEquals", ConditionTest::kDateLessThanEquals, false},
    {"DateGreaterThan", ConditionTest::kDateGreaterThan, false},
    {"DateGreaterThanEquals", ConditionTest::kDateGreaterThanEquals, false},
    {"Bool", ConditionTest::kBool, false},
    {"ArnEquals", ConditionTest::kArnLike, false},
    {"ArnLike", ConditionTest::kArnLike, false},
    {"ArnNotEquals", ConditionTest::kArnLike, true},
    {"ArnNotLike", ConditionTest::kArnLike, true},
    {"Null", ConditionTest::kNull, false},
}};

constexpr std::array<std::string_view, 3> kUnsupportedOperators = {"IpAddress", "NotIpAddress",
                                                                   "BinaryEquals"};

// One (operator, condition key) pair of a Condition block, precompiled.
struct ConditionClause {
  ConditionTest test = ConditionTest::kStringEquals;
  bool negated = false;
  bool if_exists = false;
  SetQualifier qualifier = SetQualifier::kNone;
  std::string key;                   // as written; lookups ignore case
  std::vector<std::string> strings;  // string/ARN/Bool tests; lower-cased for IgnoreCase
  std::vector<double> numbers;       // Numeric tests
  std::vector<std::int64_t> times;   // Date tests, ms since the epoch
  bool null_when_missing = false;    // Null: holds when the key is missing
  bool null_when_present = false;    // Null: holds when the key is present
};

// The positive test of one request value against the clause's policy values (ORed).
bool PositiveMatch(const ConditionClause& clause, std::string_view value) {
  switch (clause.test) {
    case ConditionTest::kStringEquals:
      return std::any_of(clause.strings.begin(), clause.strings.end(),
                         [&](const std::string& p) { return p == value; });
    case ConditionTest::kStringEqualsIgnoreCase:
      return std::any_of(clause.strings.begin(), clause.strings.end(),
                         [&](const std::string& p) { return EqualsIgnoreCase(p, value); });
    case ConditionTest::kStringLike:
      return std::any_of(clause.strings.begin(), clause.strings.end(),
                         [&](const std::string& p) { return GlobMatch(p, value, false); });
    case ConditionTest::kBool:
      // [IAM-OPS] Bool compares against "true"/"false"; the request's spelling is not case-bound.
      return std::any_of(clause.strings.begin(), clause.strings.end(),
                         [&](const std::string& p) { return EqualsIgnoreCase(p, value); });
    case ConditionTest::kArnLike:
      return std::any_of(clause.strings.begin(), clause.strings.end(),
                         [&](const std::string& p) { return ArnMatch(p, value); });
    case ConditionTest::kNumericEquals:
    case ConditionTest::kNumericLessThan:
    case ConditionTest::kNumericLessThanEquals:
    case ConditionTest::kNumericGreaterThan:
    case ConditionTest::kNumericGreaterThanEquals: {
      double v = 0;
      if (!ParseDouble(value, v)) return false;  // a non-number matches no numeric test
      return std::any_of(clause.numbers.begin(), clause.numbers.end(), [&](double p) {
        switch (clause.test) {
          case ConditionTest::kNumericEquals:
            return v == p;
          case ConditionTest::kNumericLessThan:
            return v < p;
          case ConditionTest::kNumericLessThanEquals:
            return v <= p;
          case ConditionTest::kNumericGreaterThan:
            return v > p;
          default:
            return v >= p;
        }
      });
    }
    case ConditionTest::kDateEquals:
    case ConditionTest::kDateLessThan:
    case ConditionTest::kDateLessThanEquals:
    case ConditionTest::kDateGreaterThan:
    case ConditionTest::kDateGreaterThanEquals: {
      const std::optional<std::int64_t> v = ParseDate(value);
      if (!v) return false;
      return std::any_of(clause.times.begin(), clause.times.end(), [&](std::int64_t p) {
        switch (clause.test) {
          case ConditionTest::kDateEquals:
            return *v == p;
          case ConditionTest::kDateLessThan:
            return *v < p;
          case ConditionTest::kDateLessThanEquals:
            return *v <= p;
          case ConditionTest::kDateGreaterThan:
            return *v > p;
          default:
            return *v >= p;
        }
      });
    }
    case ConditionTest::kNull:
      return false;  // handled by ClauseHolds
  }
  return false;
}

// [IAM-OPS] "If the key that you specify in a policy condition is not present in the request
// context, the values do not match and the condition is false. If the policy condition requires
// that the key is not matched, such as StringNotLike or ArnNotLike, and the right key is not
// present, the condition is true." ...IfExists: "If the key is not present, evaluate the condition
// element as true." Null: true means "the key doesn't exist". [IAM-MULTI] ForAllValues "returns
// true if every context key value in the request matches at least one context key value in the
// policy. It also returns true if there are no context keys in the request"; ForAnyValue needs at
// least one matching request value, so a missing key is false.
bool ClauseHolds(const ConditionClause& clause, const ConditionValues& conditions) {
  const std::vector<std::string>* values = conditions.Find(clause.key);
  if (clause.test == ConditionTest::kNull) {
    return values == nullptr ? clause.null_when_missing : clause.null_when_present;
  }
  if (values == nullptr) {
    if (clause.if_exists) return true;
    switch (clause.qualifier) {
      case SetQualifier::kForAllValues:
        return true;
      case SetQualifier::kForAnyValue:
        return false;
      case SetQualifier::kNone:
        return clause.negated;
    }
  }
  const auto matches = [&](const std::string& v) {
    return PositiveMatch(clause, v) != clause.negated;
  };
  switch (clause.qualifier) {
    case SetQualifier::kForAllValues:
      return std::all_of(values->begin(), values->end(), matches);
    case SetQualifier::kForAnyValue:
      return std::any_of(values->begin(), values->end(), matches);
    case SetQualifier::kNone:
      break;
  }
  // No qualifier: the operator applies to the key as a whole. Positive: some value matches.
  // Negated: the positive form fails, i.e. no value matches.
  const bool any_positive = std::any_of(values->begin(), values->end(), [&](const std::string& v) {
    return PositiveMatch(clause, v);
  });
  return any_positive != clause.negated;
}

// Principals named by a statement, precompiled.
struct PrincipalSet {
  bool any = false;               // "*" or {"AWS": "*"}
  bool account_root = false;      // this appliance's account (its root ARN or bare id)
  std::vector<std::string> arns;  // exact IAM/STS principal ARNs
};

}  // namespace

struct CompiledPolicy::Statement {
  std::string sid;
  bool deny = false;
  bool not_principal = false;
  PrincipalSet principals;  // unused in identity policies
  bool not_action = false;
  bool any_action = false;
  std::vector<std::string> actions;  // lower-case glob patterns
  bool not_resource = false;
  std::vector<std::string> resources;  // case-sensitive glob patterns
  std::vector<ConditionClause> conditions;
};

// ---------------------------------------------------------------------------------------------
// Parse

class CompiledPolicy::Compiler {
 public:
  Compiler(CompiledPolicy& policy, bool variables_forbidden)
      : policy_(policy), variables_forbidden_(variables_forbidden) {}

  Status CompileStatement(const json::value& value, std::size_t index) {
    index_ = index;
    sid_.clear();
    if (!value.is_object())
      return Malformed("Policy contains a statement that is not a JSON object.", "");
    const json::object& object = value.get_object();

    // The Sid first, so every later message can name it.
    Statement statement;
    if (const json::value* sid = object.if_contains("Sid")) {
      if (!sid->is_string())
        return Malformed("Policy contains a statement whose Sid is not a string.", "Sid");
      statement.sid = std::string(View(sid->get_string()));
      sid_ = statement.sid;
      if (!statement.sid.empty()) {
        const auto [it, inserted] = sids_.emplace(statement.sid, index);
        if (!inserted) {
          // IAM: "Statement IDs (SID) in a single policy must be unique."
          return Malformed("Statement IDs (SID) in a single policy must be unique; Statement[" +
                               std::to_string(it->second) + "] has the same Sid.",
                           "Sid");
        }
      }
    }

    for (const auto& member : object) {
      const std::string_view name(member.key().data(), member.key().size());
      if (name != "Sid" && name != "Effect" && name != "Principal" && name != "NotPrincipal" &&
          name != "Action" && name != "NotAction" && name != "Resource" && name != "NotResource" &&
          name != "Condition") {
        return Malformed(
            "Policy contains a statement with an unknown element \"" + Excerpt(name) + "\".", "");
      }
    }

    // Effect: required, and spelled as AWS spells it.
    const json::value* effect = object.if_contains("Effect");
    if (effect == nullptr)
      return Malformed("Policy contains a statement with no Effect.", "Effect");
    if (!effect->is_string() ||
        (effect->get_string() != "Allow" && effect->get_string() != "Deny")) {
      return Malformed(
          "Policy contains a statement with an invalid Effect; it must be \"Allow\" or \"Deny\".",
          "Effect");
    }
    statement.deny = effect->get_string() == "Deny";

    KMS_RETURN_IF_ERROR(CompilePrincipal(object, statement));
    KMS_RETURN_IF_ERROR(CompileActions(object, statement));
    KMS_RETURN_IF_ERROR(CompileResources(object, statement));
    if (const json::value* condition = object.if_contains("Condition")) {
      KMS_RETURN_IF_ERROR(CompileConditions(*condition, statement));
    }
    policy_.statements_.push_back(std::move(statement));
    return Status();
  }

 private:
  // "<message> (Statement[i], Sid "x", element E)".
  Status Malformed(std::string message, std::string_view element) const {
    message += " (Statement[" + std::to_string(index_) + "]";
    if (!sid_.empty()) message += ", Sid \"" + Excerpt(sid_) + "\"";
    if (!element.empty()) message += ", element " + std::string(element);
    message += ")";
    return MalformedPolicy(std::move(message));
  }

  // A string or a non-empty array of strings.
  StatusOr<std::vector<std::string_view>> StringList(const json::value& value,
                                                     std::string_view element) const {
    std::vector<std::string_view> out;
    if (value.is_string()) {
      out.push_back(View(value.get_string()));
      return out;
    }
    const std::string not_strings = "Policy contains a statement whose " + std::string(element) +
                                    " is not a string or an array of strings.";
    if (!value.is_array()) return Malformed(not_strings, element);
    if (value.get_array().empty()) {
      return Malformed("Policy contains a statement with an empty " + std::string(element) + ".",
                       element);
    }
    for (const json::value& item : value.get_array()) {
      if (!item.is_string()) return Malformed(not_strings, element);
      out.push_back(View(item.get_string()));
    }
    return out;
  }

  Status CompilePrincipal(const json::object& object, Statement& statement) {
    const json::value* principal = object.if_contains("Principal");
    const json::value* not_principal = object.if_contains("NotPrincipal");
    if (policy_.kind_ == PolicyKind::kIdentityPolicy) {
      // IAM refuses a principal in an identity-based policy: it is the identity it is attached to.
      if (principal != nullptr)
        return Malformed("Policy document should not specify a principal.", "Principal");
      if (not_principal != nullptr) {
        return Malformed("Policy document should not specify a principal.", "NotPrincipal");
      }
      return Status();
    }
    if (principal != nullptr && not_principal != nullptr) {
      return Malformed("Policy contains a statement with both Principal and NotPrincipal.",
                       "Principal");
    }
    if (principal == nullptr && not_principal == nullptr) {
      return Malformed("Policy contains a statement with no Principal or NotPrincipal.",
                       "Principal");
    }
    const std::string_view element = principal != nullptr ? "Principal" : "NotPrincipal";
    const json::value& value = principal != nullptr ? *principal : *not_principal;
    statement.not_principal = not_principal != nullptr;

    if (value.is_string()) {
      // [IAM-PRIN] Only the bare "*" may stand without a type: "Principal": "*".
      if (value.get_string() != "*") return Malformed(std::string(kMsgInvalidPrincipals), element);
      statement.principals.any = true;
      return Status();
    }
    if (!value.is_object() || value.get_object().empty()) {
      return Malformed(std::string(kMsgInvalidPrincipals), element);
    }
    for (const auto& member : value.get_object()) {
      const std::string_view type(member.key().data(), member.key().size());
      KMS_ASSIGN_OR_RETURN(const std::vector<std::string_view> entries,
                           StringList(member.value(), element));
      if (type == "AWS") {
        for (const std::string_view entry : entries) {
          std::string_view account;
          switch (ClassifyAwsPrincipal(entry, account)) {
            case PrincipalForm::kInvalid:
              return Malformed(std::string(kMsgInvalidPrincipals), element);
            case PrincipalForm::kAny:
              statement.principals.any = true;
              break;
            case PrincipalForm::kAccountRoot:
              // Another account's root is valid and names nobody here: the appliance is one
              // account, so no principal of that account can ever call it.
              if (account == policy_.account_id_) statement.principals.account_root = true;
              break;
            case PrincipalForm::kArn:
              statement.principals.arns.emplace_back(entry);
              break;
          }
        }
      } else if (type == "Service") {
        // Valid, and matches nobody: no AWS service calls the appliance on anyone's behalf.
        for (const std::string_view entry : entries) {
          if (!IsServicePrincipal(entry))
            return Malformed(std::string(kMsgInvalidPrincipals), element);
        }
      } else {
        return Malformed(std::string(kMsgInvalidPrincipals), element);
      }
    }
    return Status();
  }

  Status CompileActions(const json::object& object, Statement& statement) {
    const json::value* action = object.if_contains("Action");
    const json::value* not_action = object.if_contains("NotAction");
    if (action != nullptr && not_action != nullptr) {
      return Malformed("Policy contains a statement with both Action and NotAction.", "Action");
    }
    if (action == nullptr && not_action == nullptr) {
      return Malformed("Policy contains a statement with no Action or NotAction.", "Action");
    }
    const std::string_view element = action != nullptr ? "Action" : "NotAction";
    statement.not_action = not_action != nullptr;
    KMS_ASSIGN_OR_RETURN(const std::vector<std::string_view> entries,
                         StringList(action != nullptr ? *action : *not_action, element));
    for (const std::string_view entry : entries) {
      if (!IsValidAction(entry)) return Malformed(std::string(kMsgInvalidActions), element);
      if (entry == "*") statement.any_action = true;
      statement.actions.push_back(LowerAscii(entry));
    }
    return Status();
  }

  Status CompileResources(const json::object& object, Statement& statement) {
    const json::value* resource = object.if_contains("Resource");
    const json::value* not_resource = object.if_contains("NotResource");
    if (resource != nullptr && not_resource != nullptr) {
      return Malformed("Policy contains a statement with both Resource and NotResource.",
                       "Resource");
    }
    if (resource == nullptr && not_resource == nullptr) {
      return Malformed("Policy contains a statement with no Resource or NotResource.", "Resource");
    }
    const std::string_view element = resource != nullptr ? "Resource" : "NotResource";
    statement.not_resource = not_resource != nullptr;
    KMS_ASSIGN_OR_RETURN(const std::vector<std::string_view> entries,
                         StringList(resource != nullptr ? *resource : *not_resource, element));
    for (const std::string_view entry : entries) {
      if (!IsValidResource(entry)) return Malformed(std::string(kMsgInvalidResources), element);
      KMS_RETURN_IF_ERROR(CheckNoVariables(entry, element));
      statement.resources.emplace_back(entry);
    }
    return Status();
  }

  Status CheckNoVariables(std::string_view s, std::string_view element) const {
    if (variables_forbidden_ && s.find("${") != std::string_view::npos) {
      return Malformed(
          "Policy contains a policy variable (\"${...}\"), which this appliance does not support.",
          element);
    }
    return Status();
  }

  Status CompileConditions(const json::value& value, Statement& statement) {
    if (!value.is_object()) {
      return Malformed("Policy contains a statement whose Condition is not a JSON object.",
                       "Condition");
    }
    for (const auto& block : value.get_object()) {
      const std::string_view full_name(block.key().data(), block.key().size());
      std::string_view name = full_name;
      ConditionClause clause;
      if (name.starts_with("ForAnyValue:")) {
        clause.qualifier = SetQualifier::kForAnyValue;
        name.remove_prefix(std::string_view("ForAnyValue:").size());
      } else if (name.starts_with("ForAllValues:")) {
        clause.qualifier = SetQualifier::kForAllValues;
        name.remove_prefix(std::string_view("ForAllValues:").size());
      }
      if (name.ends_with("IfExists")) {
        clause.if_exists = true;
        name.remove_suffix(std::string_view("IfExists").size());
      }
      const OperatorName* op = nullptr;
      for (const OperatorName& candidate : kOperators) {
        if (candidate.name == name) op = &candidate;
      }
      if (op == nullptr) {
        const bool unsupported =
            std::find(kUnsupportedOperators.begin(), kUnsupportedOperators.end(), name) !=
            kUnsupportedOperators.end();
        return Malformed(std::string(unsupported ? "Policy contains a condition operator that this "
                                                   "appliance does not support: \""
                                                 : "Policy contains an unknown condition "
                                                   "operator: \"") +
                             Excerpt(full_name) + "\".",
                         "Condition");
      }
      if (op->test == ConditionTest::kNull &&
          (clause.if_exists || clause.qualifier != SetQualifier::kNone)) {
        // [IAM-OPS] "You can add IfExists to the end of any condition operator name except the
        // Null condition"; a set qualifier on a presence test means nothing either.
        return Malformed("Policy contains a Null condition with IfExists or a set qualifier.",
                         "Condition");
      }
      clause.test = op->test;
      clause.negated = op->negated;
      if (!block.value().is_object()) {
        return Malformed("Policy contains a condition operator \"" + Excerpt(full_name) +
                             "\" whose value is not an object of condition keys.",
                         "Condition");
      }
      for (const auto& entry : block.value().get_object()) {
        const std::string_view key(entry.key().data(), entry.key().size());
        KMS_RETURN_IF_ERROR(CompileClause(clause, key, entry.value(), statement));
      }
    }
    return Status();
  }

  Status CompileClause(const ConditionClause& prototype, std::string_view key,
                       const json::value& value, Statement& statement) {
    if (!IsValidConditionKey(key)) {
      return Malformed("Policy contains an invalid condition key \"" + Excerpt(key) +
                           "\"; a condition key is \"<service>:<key>\", for example "
                           "\"kms:CallerAccount\".",
                       "Condition");
    }
    const std::string lower_key = LowerAscii(key);
    if (prototype.qualifier == SetQualifier::kForAllValues) {
      // [KMS-COND] AWS KMS refuses ForAllValues on these single-valued keys with this text.
      if (lower_key.starts_with("kms:encryptioncontext:")) {
        return Malformed(
            "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator "
            "with a single-valued condition key matches requests without the specified "
            "encryption context or with an unspecified encryption context. To fix, remove "
            "ForAllValues.",
            "Condition");
      }
      if (lower_key.starts_with("aws:requesttag/")) {
        return Malformed(
            "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued "
            "condition key matches requests without the specified tag or with an unspecified "
            "tag. To fix, remove ForAllValues.",
            "Condition");
      }
    }

    // The values: a scalar or a non-empty array of scalars.
    std::vector<std::string> texts;
    const auto add = [&](const json::value& item) -> Status {
      std::optional<std::string> text = ScalarText(item);
      if (!text) {
        return Malformed("Policy contains a condition value for \"" + Excerpt(key) +
                             "\" that is not a string, number or boolean.",
                         "Condition");
      }
      texts.push_back(std::move(*text));
      return Status();
    };
    if (value.is_array()) {
      if (value.get_array().empty()) {
        return Malformed("Policy contains an empty list of values for \"" + Excerpt(key) + "\".",
                         "Condition");
      }
      for (const json::value& item : value.get_array()) KMS_RETURN_IF_ERROR(add(item));
    } else {
      KMS_RETURN_IF_ERROR(add(value));
    }

    ConditionClause clause = prototype;
    clause.key = std::string(key);
    for (std::string& text : texts) {
      switch (clause.test) {
        case ConditionTest::kNull:
        case ConditionTest::kBool: {
          const bool is_true = EqualsIgnoreCase(text, "true");
          if (!is_true && !EqualsIgnoreCase(text, "false")) {
            return Malformed(
                "Policy contains a " +
                    std::string(clause.test == ConditionTest::kNull ? "Null" : "Bool") +
                    " condition on \"" + Excerpt(key) + "\" whose value is not true or false.",
                "Condition");
          }
          if (clause.test == ConditionTest::kNull) {
            (is_true ? clause.null_when_missing : clause.null_when_present) = true;
          } else {
            clause.strings.emplace_back(is_true ? "true" : "false");
          }
          break;
        }
        case ConditionTest::kNumericEquals:
        case ConditionTest::kNumericLessThan:
        case ConditionTest::kNumericLessThanEquals:
        case ConditionTest::kNumericGreaterThan:
        case ConditionTest::kNumericGreaterThanEquals: {
          double number = 0;
          if (!ParseDouble(text, number)) {
            return Malformed("Policy contains a numeric condition on \"" + Excerpt(key) +
                                 "\" whose value is not a number.",
                             "Condition");
          }
          clause.numbers.push_back(number);
          break;
        }
        case ConditionTest::kDateEquals:
        case ConditionTest::kDateLessThan:
        case ConditionTest::kDateLessThanEquals:
        case ConditionTest::kDateGreaterThan:
        case ConditionTest::kDateGreaterThanEquals: {
          const std::optional<std::int64_t> time = ParseDate(text);
          if (!time) {
            return Malformed("Policy contains a date condition on \"" + Excerpt(key) +
                                 "\" whose value is not an ISO 8601 date or epoch time.",
                             "Condition");
          }
          clause.times.push_back(*time);
          break;
        }
        case ConditionTest::kStringEqualsIgnoreCase:
          KMS_RETURN_IF_ERROR(CheckNoVariables(text, "Condition"));
          clause.strings.push_back(LowerAscii(text));
          break;
        case ConditionTest::kStringEquals:
        case ConditionTest::kStringLike:
        case ConditionTest::kArnLike:
          KMS_RETURN_IF_ERROR(CheckNoVariables(text, "Condition"));
          clause.strings.push_back(std::move(text));
          break;
      }
    }
    statement.conditions.push_back(std::move(clause));
    return Status();
  }

  CompiledPolicy& policy_;
  const bool variables_forbidden_;
  std::size_t index_ = 0;
  std::string sid_;
  std::unordered_map<std::string, std::size_t> sids_;
};

CompiledPolicy::CompiledPolicy(std::string text, PolicyKind kind, std::string account_id)
    : text_(std::move(text)),
      kind_(kind),
      account_id_(std::move(account_id)),
      account_root_arn_("arn:aws:iam::" + account_id_ + ":root") {}

CompiledPolicy::~CompiledPolicy() = default;

std::size_t CompiledPolicy::statement_count() const { return statements_.size(); }

bool CompiledPolicy::has_deny() const {
  return std::any_of(statements_.begin(), statements_.end(),
                     [](const Statement& s) { return s.deny; });
}

StatusOr<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::Parse(std::string_view text,
                                                                      PolicyKind kind,
                                                                      std::string_view account_id) {
  if (!IsAccountId(account_id)) {
    return InvalidArgumentError("The appliance account id must be 12 digits.");
  }
  if (text.size() > kMaxPolicyBytes) {
    return ResourceExhaustedError(
        "Policy exceeds the maximum size of " + std::to_string(kMaxPolicyBytes) + " bytes",
        Reason::kLimitExceeded);
  }

  // Pass 1: syntax and duplicate keys.
  {
    json::basic_parser<DuplicateKeyFinder> checker(StrictJson());
    json::error_code ec;
    const std::size_t consumed = checker.write_some(false, text.data(), text.size(), ec);
    if (const auto& duplicate = checker.handler().duplicate()) {
      return MalformedPolicy("Policy document contains the JSON key \"" + Excerpt(*duplicate) +
                             "\" twice in one object.");
    }
    if (ec == json::error::too_deep) {
      return MalformedPolicy("Policy document nests JSON deeper than " +
                             std::to_string(kMaxJsonDepth) + " levels.");
    }
    if (ec) {
      return MalformedPolicy("Policy document is not valid JSON: " + ec.message() + " at byte " +
                             std::to_string(consumed) + ".");
    }
  }

  // Pass 2: the DOM.
  json::error_code ec;
  const json::value document = json::parse(json::string_view(text.data(), text.size()), ec,
                                           json::storage_ptr(), StrictJson());
  if (ec) return MalformedPolicy("Policy document is not valid JSON: " + ec.message() + ".");
  if (!document.is_object()) return MalformedPolicy("Policy document is not a JSON object.");
  const json::object& root = document.get_object();

  for (const auto& member : root) {
    const std::string_view name(member.key().data(), member.key().size());
    if (name != "Version" && name != "Id" && name != "Statement") {
      return MalformedPolicy("Policy document contains an unknown element \"" + Excerpt(name) +
                             "\".");
    }
  }
  bool variables_forbidden = false;
  if (const json::value* version = root.if_contains("Version")) {
    if (!version->is_string() ||
        (version->get_string() != "2012-10-17" && version->get_string() != "2008-10-17")) {
      return MalformedPolicy(
          "Policy document has an invalid Version; it must be \"2012-10-17\" or \"2008-10-17\".");
    }
    // Policy variables exist only in the 2012-10-17 language; in 2008-10-17 "${" is literal.
    variables_forbidden = version->get_string() == "2012-10-17";
  }
  if (const json::value* id = root.if_contains("Id"); id != nullptr && !id->is_string()) {
    return MalformedPolicy("Policy document has an Id that is not a string.");
  }
  const json::value* statements = root.if_contains("Statement");
  if (statements == nullptr) {
    return MalformedPolicy("Policy document is missing the required Statement element.");
  }
  if (statements->is_array() && statements->get_array().empty()) {
    return MalformedPolicy("Policy document has an empty Statement array.");
  }

  std::shared_ptr<CompiledPolicy> policy(
      new CompiledPolicy(std::string(text), kind, std::string(account_id)));
  Compiler compiler(*policy, variables_forbidden);
  if (statements->is_array()) {
    const json::array& array = statements->get_array();
    policy->statements_.reserve(array.size());
    for (std::size_t i = 0; i < array.size(); ++i) {
      KMS_RETURN_IF_ERROR(compiler.CompileStatement(array[i], i));
    }
  } else {
    KMS_RETURN_IF_ERROR(compiler.CompileStatement(*statements, 0));
  }
  return std::shared_ptr<const CompiledPolicy>(std::move(policy));
}

// ---------------------------------------------------------------------------------------------
// Evaluate

PolicyVerdict CompiledPolicy::Evaluate(const PolicyRequest& request) const {
  PolicyVerdict verdict;
  const std::string_view principal = request.principal_arn;
  const std::string_view principal_account = PrincipalAccount(principal);
  const bool in_account = !principal_account.empty() && principal_account == account_id_;

  for (const Statement& statement : statements_) {
    bool by_principal = true;  // identity policies name their holder implicitly
    bool by_account = false;
    if (kind_ == PolicyKind::kKeyPolicy) {
      const PrincipalSet& set = statement.principals;
      const bool named = set.any || (set.account_root && principal == account_root_arn_) ||
                         std::find(set.arns.begin(), set.arns.end(), principal) != set.arns.end();
      // Naming the account covers its principals: for an Allow as a delegation to their identity
      // policies, for a Deny (and for NotPrincipal's exclusion) as the principals themselves.
      const bool account = set.account_root && in_account;
      if (statement.not_principal) {
        by_principal = !(named || account);
        by_account = false;
      } else {
        by_principal = named;
        by_account = account;
      }
      if (!by_principal && !by_account) continue;
    }

    bool action_listed = statement.any_action;
    for (std::size_t i = 0; !action_listed && i < statement.actions.size(); ++i) {
      action_listed = GlobMatch(statement.actions[i], request.action, true);
    }
    if (action_listed == statement.not_action) continue;

    bool resource_listed = false;
    for (std::size_t i = 0; !resource_listed && i < statement.resources.size(); ++i) {
      resource_listed = GlobMatch(statement.resources[i], request.resource_arn, false);
    }
    if (resource_listed == statement.not_resource) continue;

    const bool conditions_hold =
        std::all_of(statement.conditions.begin(), statement.conditions.end(),
                    [&](const ConditionClause& c) { return ClauseHolds(c, request.conditions); });
    if (!conditions_hold) continue;

    if (statement.deny) {
      if (!verdict.explicit_deny) {
        verdict.explicit_deny = true;
        verdict.deny_sid = statement.sid;
      }
    } else {
      verdict.allows_principal = verdict.allows_principal || by_principal;
      verdict.allows_account = verdict.allows_account || by_account;
    }
  }
  return verdict;
}

// ---------------------------------------------------------------------------------------------
// Defaults and the decision

std::string DefaultKeyPolicy(std::string_view account_id) {
  // [KMS-POL] The shape GetKeyPolicy returns for a key created without Policy.
  std::string policy;
  policy.reserve(320);
  policy +=
      "{\n"
      "  \"Version\" : \"2012-10-17\",\n"
      "  \"Id\" : \"key-default-1\",\n"
      "  \"Statement\" : [ {\n"
      "    \"Sid\" : \"Enable IAM User Permissions\",\n"
      "    \"Effect\" : \"Allow\",\n"
      "    \"Principal\" : {\n"
      "      \"AWS\" : \"arn:aws:iam::";
  policy += account_id;
  policy +=
      ":root\"\n"
      "    },\n"
      "    \"Action\" : \"kms:*\",\n"
      "    \"Resource\" : \"*\"\n"
      "  } ]\n"
      "}";
  return policy;
}

Decision Decide(const CompiledPolicy* key_policy, const CompiledPolicy* identity_policy,
                const PolicyRequest& request) {
  PolicyVerdict key;
  PolicyVerdict identity;
  if (key_policy != nullptr) key = key_policy->Evaluate(request);
  if (identity_policy != nullptr) identity = identity_policy->Evaluate(request);
  if (key.explicit_deny || identity.explicit_deny) return Decision::kExplicitDeny;
  if (key_policy == nullptr) {
    return identity_policy != nullptr && identity.allows_principal ? Decision::kAllow
                                                                   : Decision::kImplicitDeny;
  }
  if (key.allows_principal) return Decision::kAllow;
  if (key.allows_account && (identity_policy == nullptr || identity.allows_principal)) {
    return Decision::kAllow;
  }
  return Decision::kImplicitDeny;
}

Status CheckPolicyLockoutSafety(const CompiledPolicy& new_key_policy,
                                const CompiledPolicy* identity_policy,
                                const PolicyRequest& request) {
  PolicyRequest put_key_policy = request;
  put_key_policy.action = "kms:PutKeyPolicy";
  if (Decide(&new_key_policy, identity_policy, put_key_policy) == Decision::kAllow) return Status();
  return MalformedPolicy(std::string(kMsgLockout));
}

}  // namespace kms::firmware::authz
