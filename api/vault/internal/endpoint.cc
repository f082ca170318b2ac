#include "api/vault/internal/endpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>

#include "api/vault/vault_door.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

namespace {

constexpr std::string_view kPermissionDenied = "permission denied";

bool ParseDecimal(std::string_view s, std::int64_t& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

}  // namespace

Reply ErrorReply(unsigned status, std::string message) {
  Reply r;
  r.status = status;
  r.errors.push_back(std::move(message));
  return r;
}

Reply EmptyErrorReply(unsigned status) {
  Reply r;
  r.status = status;
  return r;
}

Reply NoContent() {
  Reply r;
  r.status = 204;
  return r;
}

Reply DataReply(json::object data) {
  Reply r;
  r.data = std::move(data);
  return r;
}

// ---- Decision ----

bool Decision::MayCreateKey() const {
  create_asked_ = true;
  return create_allowed_;
}

bool Decision::Covers(std::string_view key_name) const {
  if (!token_) return false;
  if (token_->administrator) return true;
  return std::any_of(
      token_->key_patterns.begin(), token_->key_patterns.end(),
      [&](const std::string& p) { return firmware::VaultKeyPatternMatches(p, mount_, key_name); });
}

std::string_view Decision::audit_basis() const {
  if (create_asked_ && !create_allowed_ && !create_basis_.empty()) return create_basis_;
  return basis_;
}

unsigned HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists:
    case StatusCode::kOutOfRange:
    case StatusCode::kNotFound:
      return 400;
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated:
      return 403;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string ClientMessage(const Status& status) {
  const unsigned http = HttpStatusFor(status);
  if (http == 403) return std::string(kPermissionDenied);
  if (http == 503) {
    return status.reason() == Reason::kSealed ? "Vault is sealed"
                                              : "the HSM is unavailable; retry the request";
  }
  if (http >= 500 && http != 501) return "internal error";
  return status.message();
}

Reply StatusReply(const Status& status) {
  return ErrorReply(HttpStatusFor(status), ClientMessage(status));
}

// ---- FieldReader ----

const json::value* FieldReader::Find(std::string_view name) const {
  const json::value* v = fields_.if_contains(name);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

bool FieldReader::Has(std::string_view name) const { return Find(name) != nullptr; }

std::optional<std::string> FieldReader::String(std::string_view name) {
  const json::value* v = Find(name);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  // Vault's TypeString accepts numbers and booleans and prints them.
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  if (v->is_bool()) return v->get_bool() ? "true" : "false";
  Fail("field \"" + std::string(name) + "\" must be a string");
  return std::nullopt;
}

std::optional<std::int64_t> FieldReader::Int(std::string_view name) {
  const json::value* v = Find(name);
  if (v == nullptr) return std::nullopt;
  std::int64_t out = 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() &&
      v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return static_cast<std::int64_t>(v->get_uint64());
  }
  if (v->is_double()) {
    const double d = v->get_double();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) {
      return static_cast<std::int64_t>(d);
    }
  }
  if (v->is_string() && ParseDecimal(v->get_string(), out)) return out;
  // Vault: `error converting input <v> for field "<name>"`; the value is not echoed here.
  Fail("error converting input for field \"" + std::string(name) + "\": expected an integer");
  return std::nullopt;
}

std::optional<bool> FieldReader::Bool(std::string_view name) {
  const json::value* v = Find(name);
  if (v == nullptr) return std::nullopt;
  if (v->is_bool()) return v->get_bool();
  if (v->is_string()) {
    const std::string_view s = v->get_string();
    if (s == "true" || s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "True") return true;
    if (s == "false" || s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "False") {
      return false;
    }
  }
  if (v->is_int64() && (v->get_int64() == 0 || v->get_int64() == 1)) return v->get_int64() == 1;
  Fail("error converting input for field \"" + std::string(name) + "\": expected a boolean");
  return std::nullopt;
}

std::optional<std::int64_t> FieldReader::DurationMs(std::string_view name) {
  const json::value* v = Find(name);
  if (v == nullptr) return std::nullopt;
  const std::string bad =
      "error converting input for field \"" + std::string(name) + "\": expected a duration";
  if (!v->is_string()) {
    if (!v->is_number()) {
      Fail(bad);
      return std::nullopt;
    }
    auto secs = Int(name);
    if (!secs) return std::nullopt;
    if (*secs < 0 || *secs > std::numeric_limits<std::int64_t>::max() / 1000) {
      Fail(bad);
      return std::nullopt;
    }
    return *secs * 1000;
  }
  // parseutil.ParseDurationSecond: bare seconds, or Go durations with an added "d".
  std::string_view s = v->get_string();
  std::int64_t plain = 0;
  constexpr std::int64_t kMaxMs = std::numeric_limits<std::int64_t>::max();
  if (ParseDecimal(s, plain) && plain >= 0) {
    if (plain > kMaxMs / 1000) {  // more milliseconds than an int64 holds: no duration
      Fail(bad);
      return std::nullopt;
    }
    return plain * 1000;
  }
  if (s.empty()) {
    Fail(bad);
    return std::nullopt;
  }
  std::int64_t total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    std::int64_t n = 0;
    if (i == 0 || !ParseDecimal(s.substr(0, i), n) || n > 1'000'000'000) {
      Fail(bad);
      return std::nullopt;
    }
    s.remove_prefix(i);
    std::int64_t unit = 0;
    if (s.starts_with("ms")) {
      unit = 1, s.remove_prefix(2);
    } else if (s.starts_with("s")) {
      unit = 1000, s.remove_prefix(1);
    } else if (s.starts_with("m")) {
      unit = 60'000, s.remove_prefix(1);
    } else if (s.starts_with("h")) {
      unit = 3'600'000, s.remove_prefix(1);
    } else if (s.starts_with("d")) {
      unit = 86'400'000, s.remove_prefix(1);
    } else {
      Fail(bad);
      return std::nullopt;
    }
    // n * unit is at most 8.64e16; the sum of many segments could still overflow.
    if (n * unit > kMaxMs - total) {
      Fail(bad);
      return std::nullopt;
    }
    total += n * unit;
  }
  return total;
}

Bytes FieldReader::Base64(std::string_view name) {
  auto text = String(name);
  if (!text || text->empty()) return {};
  auto decoded = Base64Decode(*text);
  if (!decoded) {
    Fail("failed to base64-decode " + std::string(name));
    return {};
  }
  return std::move(*decoded);
}

SecretBytes FieldReader::SecretBase64(std::string_view name) {
  const json::value* v = Find(name);
  if (v == nullptr) return {};
  if (!v->is_string()) {
    Fail("field \"" + std::string(name) + "\" must be a base64 string");
    return {};
  }
  auto decoded = Base64DecodeSecret(v->get_string());
  if (!decoded) {
    // Never the value: it is (the encoding of) a plaintext.
    Fail("failed to base64-decode " + std::string(name));
    return {};
  }
  return std::move(*decoded);
}

// ---- batch ----

Reply RunItems(const json::object& body, bool batch_allowed, const ItemHandler& handle) {
  const json::value* batch = batch_allowed ? body.if_contains("batch_input") : nullptr;
  if (batch == nullptr || batch->is_null()) {
    auto result = handle(body);
    if (!result) return StatusReply(result.error());
    return DataReply(std::move(*result));
  }
  if (!batch->is_array()) return ErrorReply(400, "failed to parse batch input: expected an array");
  const json::array& items = batch->get_array();
  if (items.empty()) return ErrorReply(400, "missing batch input to process");
  for (const auto& item : items) {
    if (!item.is_object()) {
      return ErrorReply(400, "failed to parse batch input: each item must be an object");
    }
  }
  bool user_error = false;
  bool internal_error = false;
  bool success = false;
  json::array results;
  results.reserve(items.size());
  for (const auto& item : items) {
    const json::object& fields = item.get_object();
    std::string reference;
    if (const json::value* r = fields.if_contains("reference"); r && r->is_string()) {
      reference = r->get_string();
    }
    auto result = handle(fields);
    json::object out;
    if (result) {
      out = std::move(*result);
      success = true;
    } else {
      const unsigned code = HttpStatusFor(result.error());
      (code >= 500 && code != 501 ? internal_error : user_error) = true;
      out["error"] = ClientMessage(result.error());
    }
    out["reference"] = reference;
    results.emplace_back(std::move(out));
  }
  Reply reply = DataReply(json::object{{"batch_results", std::move(results)}});
  if (user_error || internal_error) {
    reply.status = user_error ? 400 : 500;
    FieldReader fields(body);
    auto code = fields.Int("partial_failure_response_code");
    if (code && success) {
      // Vault takes 1..599; a 1xx, 204, 205 or 304 with the batch body would be broken HTTP
      // framing, so only statuses that carry a body are taken.
      if (!IsBodyStatus(*code)) {
        reply.warnings.push_back(
            "invalid HTTP response code override from partial_failure_response_code, reverting "
            "to " +
            std::to_string(reply.status));
      } else {
        reply.status = static_cast<unsigned>(*code);
      }
    }
  }
  return reply;
}

bool IsBodyStatus(std::int64_t code) {
  return code >= 200 && code <= 599 && code != 204 && code != 205 && code != 304;
}

// ---- texts ----

std::string Rfc3339(std::int64_t epoch_ms) {
  const std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char out[32];
  const std::size_t n = std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(out, n);
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto decode = [&](std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out.push_back(' ');
      } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
        i += 2;
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  };
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (decode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

json::object KeyInfoData(const firmware::transit::TransitKeyInfo& info) {
  using firmware::transit::TransitKeyType;
  json::object d;
  d["name"] = info.name;
  d["type"] = std::string(firmware::transit::TransitKeyTypeName(info.type));
  d["derived"] = info.derived;
  if (info.derived) d["convergent_encryption"] = false;
  d["deletion_allowed"] = info.deletion_allowed;
  d["exportable"] = false;
  d["allow_plaintext_backup"] = false;
  d["imported_key"] = false;
  d["latest_version"] = info.latest_version;
  d["min_available_version"] = info.min_available_version;
  d["min_decryption_version"] = info.min_decryption_version;
  d["min_encryption_version"] = info.min_encryption_version;
  d["supports_encryption"] = info.supports_encryption;
  d["supports_decryption"] = info.supports_decryption;
  d["supports_signing"] = info.supports_signing;
  d["supports_derivation"] = info.supports_derivation;
  d["auto_rotate_period"] = info.auto_rotate_period_ms / 1000;
  if (info.type == TransitKeyType::kHmac) d["key_size"] = 32;
  // Appliance extensions: the same key as the AWS door sees it.
  d["kms_key_id"] = info.key_id;
  d["kms_key_arn"] = info.arn;
  const bool asymmetric =
      info.type != TransitKeyType::kAes256Gcm96 && info.type != TransitKeyType::kHmac;
  std::string_view curve;
  switch (info.type) {
    case TransitKeyType::kEcdsaP256:
      curve = "P-256";
      break;
    case TransitKeyType::kEcdsaP384:
      curve = "P-384";
      break;
    case TransitKeyType::kEcdsaP521:
      curve = "P-521";
      break;
    default:
      curve = firmware::transit::TransitKeyTypeName(info.type);
  }
  json::object keys;
  for (const auto& v : info.versions) {
    const std::string version = std::to_string(v.version);
    if (!asymmetric) {
      // Vault: symmetric versions map to their creation time in Unix seconds.
      keys[version] = v.creation_time_ms / 1000;
      continue;
    }
    keys[version] = json::object{{"name", std::string(curve)},
                                 {"public_key", v.public_key_pem},
                                 {"creation_time", Rfc3339(v.creation_time_ms)}};
  }
  d["keys"] = std::move(keys);
  return d;
}

void WipeSensitiveMembers(json::object& o) {
  // "key": a custodian share given to sys/unseal.
  static constexpr std::string_view kSensitive[] = {"plaintext",    "input", "random_bytes",
                                                    "client_token", "id",    "key"};
  for (const auto name : kSensitive) {
    if (json::value* v = o.if_contains(name); v && v->is_string()) {
      json::string& s = v->get_string();
      SecureWipe(s.data(), s.size());
    }
  }
  for (const auto name : {"batch_input", "batch_results"}) {
    if (json::value* v = o.if_contains(name); v && v->is_array()) {
      for (auto& item : v->get_array()) {
        if (item.is_object()) WipeSensitiveMembers(item.get_object());
      }
    }
  }
}

}  // namespace kms::api::vault::internal
