#include "api/aws/json_codec.h"

#include <boost/json/array.hpp>

#include <algorithm>
#include <limits>

#include "base/encoding.h"

namespace kms::api::aws {

namespace json = boost::json;

std::string MemberPath(std::string_view name) {
  std::string out(name);
  if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z') out[0] = static_cast<char>(out[0] - 'A' + 'a');
  return out;
}

AwsError SerializationError(std::string message) {
  return ClientError("SerializationException", std::move(message));
}

AwsError ValidationError(std::string message) {
  return ClientError("ValidationException", "1 validation error detected: " + std::move(message));
}

const json::value* RequestReader::Find(std::string_view name) const {
  const json::value* v = body_.if_contains(name);
  if (v == nullptr || v->is_null()) return nullptr;  // AWS treats null as absent
  return v;
}

void RequestReader::Missing(std::string_view name) {
  Fail(ValidationError("Value null at '" + MemberPath(name) +
                       "' failed to satisfy constraint: Member must not be null"));
}

bool RequestReader::CheckLength(std::string_view name, std::size_t len, std::size_t min_len,
                                std::size_t max_len, const std::string* echo) {
  const std::string value = echo ? "Value '" + *echo + "' at '" : "Value at '";
  if (len < min_len) {
    Fail(ValidationError(value + MemberPath(name) +
                         "' failed to satisfy constraint: Member must have length greater than or "
                         "equal to " + std::to_string(min_len)));
    return false;
  }
  if (len > max_len) {
    Fail(ValidationError(value + MemberPath(name) +
                         "' failed to satisfy constraint: Member must have length less than or "
                         "equal to " + std::to_string(max_len)));
    return false;
  }
  return true;
}

std::optional<std::string> RequestReader::String(std::string_view name, std::size_t min_len,
                                                  std::size_t max_len) {
  if (error_) return std::nullopt;
  const json::value* v = Find(name);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be a string."));
    return std::nullopt;
  }
  std::string s(v->get_string());
  // AWS measures string lengths in characters, not bytes (a Description of 8192 non-ASCII characters
  // is valid). The JSON parser has validated the UTF-8, so counting non-continuation bytes counts
  // code points.
  const auto chars = static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
  const std::string echo = s.size() <= 256 ? s : s.substr(0, 256);
  if (!CheckLength(name, chars, min_len, max_len, &echo)) return std::nullopt;
  return s;
}

std::string RequestReader::RequiredString(std::string_view name, std::size_t min_len,
                                          std::size_t max_len) {
  if (error_) return {};
  auto s = String(name, min_len, max_len);
  if (!s) {
    if (!error_) Missing(name);
    return {};
  }
  return std::move(*s);
}

template <typename T, typename Decode>
std::optional<T> RequestReader::DecodedBlob(std::string_view name, std::size_t min_len,
                                            std::size_t max_len, Decode decode) {
  if (error_) return std::nullopt;
  const json::value* v = Find(name);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Fail(SerializationError("Value of member '" + std::string(name) +
                            "' must be a base64-encoded string."));
    return std::nullopt;
  }
  auto decoded = decode(std::string_view(v->get_string()));
  if (!decoded) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' is not valid base64."));
    return std::nullopt;
  }
  if (!CheckLength(name, decoded->size(), min_len, max_len, nullptr)) return std::nullopt;
  return std::move(*decoded);
}

std::optional<Bytes> RequestReader::Blob(std::string_view name, std::size_t min_len,
                                         std::size_t max_len) {
  return DecodedBlob<Bytes>(name, min_len, max_len,
                            [](std::string_view text) { return Base64Decode(text); });
}

Bytes RequestReader::RequiredBlob(std::string_view name, std::size_t min_len, std::size_t max_len) {
  if (error_) return {};
  auto b = Blob(name, min_len, max_len);
  if (!b) {
    if (!error_) Missing(name);
    return {};
  }
  return std::move(*b);
}

std::optional<SecretBytes> RequestReader::SecretBlob(std::string_view name, std::size_t min_len,
                                                     std::size_t max_len) {
  return DecodedBlob<SecretBytes>(name, min_len, max_len,
                                  [](std::string_view text) { return Base64DecodeSecret(text); });
}

SecretBytes RequestReader::RequiredSecretBlob(std::string_view name, std::size_t min_len,
                                              std::size_t max_len) {
  if (error_) return {};
  auto b = SecretBlob(name, min_len, max_len);
  if (!b) {
    if (!error_) Missing(name);
    return {};
  }
  return std::move(*b);
}

std::optional<std::int64_t> RequestReader::Integer(std::string_view name) {
  if (error_) return std::nullopt;
  const json::value* v = Find(name);
  if (!v) return std::nullopt;
  std::int64_t n = 0;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    n = static_cast<std::int64_t>(v->get_uint64());
  } else {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be an integer."));
    return std::nullopt;
  }
  if (n < std::numeric_limits<std::int32_t>::min() || n > std::numeric_limits<std::int32_t>::max()) {
    Fail(SerializationError("Value of member '" + std::string(name) +
                            "' does not fit in a 32-bit integer."));
    return std::nullopt;
  }
  return n;
}

bool RequestReader::Boolean(std::string_view name) {
  if (error_) return false;
  const json::value* v = Find(name);
  if (!v) return false;
  if (!v->is_bool()) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be a boolean."));
    return false;
  }
  return v->get_bool();
}

std::map<std::string, std::string> RequestReader::StringMap(std::string_view name) {
  std::map<std::string, std::string> out;
  if (error_) return out;
  const json::value* v = Find(name);
  if (!v) return out;
  if (!v->is_object()) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be an object."));
    return out;
  }
  for (const auto& [k, val] : v->get_object()) {
    if (!val.is_string()) {
      Fail(SerializationError("Values of member '" + std::string(name) + "' must be strings."));
      return {};
    }
    out.emplace(std::string(k), std::string(val.get_string()));
  }
  return out;
}

std::vector<std::string> RequestReader::StringList(std::string_view name, bool required) {
  std::vector<std::string> out;
  if (error_) return out;
  const json::value* v = Find(name);
  if (!v) {
    if (required) Missing(name);
    return out;
  }
  if (!v->is_array()) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be a list."));
    return out;
  }
  for (const auto& item : v->get_array()) {
    if (!item.is_string()) {
      Fail(SerializationError("Elements of member '" + std::string(name) + "' must be strings."));
      return {};
    }
    out.emplace_back(item.get_string());
  }
  return out;
}

std::vector<const json::object*> RequestReader::ObjectList(std::string_view name, bool required) {
  std::vector<const json::object*> out;
  if (error_) return out;
  const json::value* v = Find(name);
  if (!v) {
    if (required) Missing(name);
    return out;
  }
  if (!v->is_array()) {
    Fail(SerializationError("Value of member '" + std::string(name) + "' must be a list."));
    return out;
  }
  for (const auto& item : v->get_array()) {
    if (!item.is_object()) {
      Fail(SerializationError("Elements of member '" + std::string(name) + "' must be objects."));
      return {};
    }
    out.push_back(&item.get_object());
  }
  return out;
}

void RequestReader::Unsupported(std::string_view name, std::string_view why) {
  if (error_ || !Find(name)) return;
  Fail(ClientError("UnsupportedOperationException", std::string(why)));
}

void PutBlob(json::object& out, std::string_view name, ByteView bytes) {
  std::string encoded = Base64Encode(bytes);
  out[name] = encoded;
  WipeString(encoded);  // the value may be a plaintext; the JSON copy is wiped by the door
}

void PutTimestamp(json::object& out, std::string_view name, std::int64_t epoch_ms) {
  if (epoch_ms % 1000 == 0) {
    out[name] = epoch_ms / 1000;
  } else {
    out[name] = static_cast<double>(epoch_ms) / 1000.0;
  }
}

void PutStringList(json::object& out, std::string_view name, const std::vector<std::string>& values) {
  json::array a;
  for (const auto& v : values) a.emplace_back(v);
  out[name] = std::move(a);
}

}  // namespace kms::api::aws
