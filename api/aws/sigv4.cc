#include "api/aws/sigv4.h"

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <optional>
#include <utility>

#include "base/encoding.h"

namespace kms::api::aws::sigv4 {

namespace {

constexpr std::string_view kSignatureMismatch =
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details.";
constexpr std::string_view kInvalidToken = "The security token included in the request is invalid.";

AwsError Incomplete(std::string message) {
  return ClientError("IncompleteSignatureException", std::move(message));
}
AwsError InvalidSignature(std::string message) {
  return ClientError("InvalidSignatureException", std::move(message));
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::array<std::uint8_t, 32> Hmac(ByteView key, std::string_view data) {
  std::array<std::uint8_t, 32> out{};
  // mbedtls_md_hmac only fails on bad input parameters, which these never are.
  (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key.data(), key.size(),
                        reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

SecretBytes HmacSecret(ByteView key, std::string_view data) {
  auto mac = Hmac(key, data);
  SecretBytes out = SecretBytes::CopyFrom(ByteView(mac.data(), mac.size()));
  SecureWipe(mac.data(), mac.size());
  return out;
}

}  // namespace

// In seconds, not in the system clock's nanoseconds: a 64-bit count of nanoseconds ends in 2262,
// and a date past it wrapped around to one that looked current.
std::optional<std::chrono::sys_seconds> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !AllDigits(s.substr(0, 8)) ||
      !AllDigits(s.substr(9, 6))) {
    return std::nullopt;
  }
  auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  const std::chrono::year_month_day ymd{std::chrono::year(num(0, 4)),
                                        std::chrono::month(static_cast<unsigned>(num(4, 2))),
                                        std::chrono::day(static_cast<unsigned>(num(6, 2)))};
  const int hh = num(9, 2), mm = num(11, 2), ss = num(13, 2);
  if (!ymd.ok() || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  return std::chrono::sys_days(ymd) + std::chrono::hours(hh) + std::chrono::minutes(mm) +
         std::chrono::seconds(ss);
}

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

AwsResult<Authorization> ParseAuthorization(std::string_view header) {
  header = Trim(header);
  if (!header.starts_with(kAlgorithm) || header.size() == kAlgorithm.size() ||
      header[kAlgorithm.size()] != ' ') {
    return std::unexpected(Incomplete("Unsupported Authorization algorithm; expected " +
                                      std::string(kAlgorithm) + "."));
  }
  std::string_view rest = header.substr(kAlgorithm.size());
  std::optional<std::string_view> credential, signed_headers, signature;
  // Components are separated by ',' and optional spaces (every client sends ', ').
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view part = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      return std::unexpected(Incomplete("Authorization header component '" + std::string(part) +
                                        "' is not of the form name=value."));
    }
    const std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    std::optional<std::string_view>* slot = nullptr;
    if (name == "Credential") slot = &credential;
    else if (name == "SignedHeaders") slot = &signed_headers;
    else if (name == "Signature") slot = &signature;
    else {
      return std::unexpected(
          Incomplete("Authorization header has an unknown component '" + std::string(name) + "'."));
    }
    if (slot->has_value()) {
      return std::unexpected(
          Incomplete("Authorization header repeats the '" + std::string(name) + "' parameter."));
    }
    *slot = value;
  }
  std::string missing;
  if (!credential) missing += "Authorization header requires 'Credential' parameter. ";
  if (!signature) missing += "Authorization header requires 'Signature' parameter. ";
  if (!signed_headers) missing += "Authorization header requires 'SignedHeaders' parameter. ";
  if (!missing.empty()) {
    missing.pop_back();
    return std::unexpected(Incomplete(std::move(missing)));
  }

  Authorization auth;
  // Credential=<AKID>/<yyyymmdd>/<region>/<service>/aws4_request
  std::vector<std::string_view> scope;
  for (std::string_view c = *credential;;) {
    const auto slash = c.find('/');
    scope.push_back(c.substr(0, slash));
    if (slash == std::string_view::npos) break;
    c = c.substr(slash + 1);
  }
  if (scope.size() != 5 || scope[0].empty() || scope[1].size() != 8 || !AllDigits(scope[1]) ||
      scope[2].empty() || scope[3].empty() || scope[4] != "aws4_request") {
    return std::unexpected(Incomplete(
        "Credential should be of the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request, "
        "got '" + std::string(*credential) + "'."));
  }
  auth.access_key_id = scope[0];
  auth.date = scope[1];
  auth.region = scope[2];
  auth.service = scope[3];

  for (std::string_view s = *signed_headers;;) {
    const auto semi = s.find(';');
    const std::string_view name = s.substr(0, semi);
    if (name.empty() || Lower(name) != name ||
        !std::all_of(name.begin(), name.end(), [](char ch) {
          return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        })) {
      return std::unexpected(Incomplete("SignedHeaders must be a ';'-separated list of lower-case "
                                        "header names."));
    }
    auth.signed_headers.emplace_back(name);
    if (semi == std::string_view::npos) break;
    s = s.substr(semi + 1);
  }
  if (signature->size() != 64 || !IsLowerHex(*signature)) {
    return std::unexpected(Incomplete("Signature must be 64 lower-case hexadecimal digits."));
  }
  auth.signature = *signature;
  return auth;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        HexDigit(text[i + 1]) >= 0 && HexDigit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view path, bool normalize) {
  if (path.empty()) return "/";
  if (!normalize) return UriEncode(path, /*keep_slash=*/true);
  // RFC 3986 §5.2.4 remove_dot_segments, plus empty segments dropped (the AWS suite's
  // get-slashes-normalized: "//example//" -> "/example/").
  std::vector<std::string_view> segments;
  std::string_view p = path;
  const bool trailing_slash = p.back() == '/';
  while (!p.empty()) {
    const auto slash = p.find('/');
    const std::string_view seg = p.substr(0, slash);
    p = slash == std::string_view::npos ? std::string_view() : p.substr(slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(seg);
  }
  // A trailing "." or ".." also denotes a directory, but the suite keeps "/example/.." as "/".
  std::string out;
  for (const auto seg : segments) {
    out += '/';
    out += UriEncode(seg, /*keep_slash=*/false);
  }
  if (out.empty()) return "/";
  if (trailing_slash) out += '/';
  return out;
}

std::string CanonicalQuery(std::string_view query, std::string_view exclude) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    std::string name = UriDecode(part.substr(0, eq));
    if (!exclude.empty() && name == exclude) continue;
    std::string value = eq == std::string_view::npos ? std::string() : UriDecode(part.substr(eq + 1));
    params.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [n, v] : params) {
    if (!out.empty()) out += '&';
    out += n;
    out += '=';
    out += v;
  }
  return out;
}

std::string CanonicalHeaderValue(std::string_view raw) {
  raw = Trim(raw);
  std::string out;
  out.reserve(raw.size());
  bool in_space = false;
  for (char c : raw) {
    // Line folds (obs-fold) arrive as CR/LF + whitespace; they collapse like spaces.
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

AwsResult<std::string> CanonicalRequest(std::string_view method, std::string_view path,
                                        std::string_view query, const http::HeaderList& headers,
                                        const std::vector<std::string>& signed_headers,
                                        std::string_view payload_hash_hex, bool normalize_path) {
  std::string out;
  out.reserve(512);
  out += method;
  out += '\n';
  out += CanonicalUri(path, normalize_path);
  out += '\n';
  out += CanonicalQuery(query);
  out += '\n';
  std::string list;
  for (const auto& name : signed_headers) {
    bool found = false;
    out += name;
    out += ':';
    for (const auto& [n, v] : headers) {
      if (!http::HeaderNameEquals(n, name)) continue;
      if (found) out += ',';
      out += CanonicalHeaderValue(v);
      found = true;
    }
    if (!found) {
      return std::unexpected(Incomplete("Signed header '" + name +
                                        "' is not present in the request."));
    }
    out += '\n';
    if (!list.empty()) list += ';';
    list += name;
  }
  out += '\n';
  out += list;
  out += '\n';
  out += payload_hash_hex;
  return out;
}

std::string Sha256Hex(ByteView data) {
  std::array<std::uint8_t, 32> digest{};
  (void)mbedtls_sha256_ret(data.data(), data.size(), digest.data(), 0);
  return HexEncode(ByteView(digest.data(), digest.size()));
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out += '\n';
  out += amz_date;
  out += '\n';
  out += scope;
  out += '\n';
  out += Sha256Hex(AsBytes(canonical_request));
  return out;
}

SecretBytes SigningKey(ByteView secret, std::string_view date, std::string_view region,
                       std::string_view service) {
  SecretBytes k_secret = SecretBytes::CopyFrom(AsBytes("AWS4"));
  k_secret.Append(secret);
  SecretBytes k_date = HmacSecret(k_secret.ExposeSecret(), date);
  SecretBytes k_region = HmacSecret(k_date.ExposeSecret(), region);
  SecretBytes k_service = HmacSecret(k_region.ExposeSecret(), service);
  return HmacSecret(k_service.ExposeSecret(), "aws4_request");
}

std::string SignatureHex(const SecretBytes& signing_key, std::string_view string_to_sign) {
  const auto mac = Hmac(signing_key.ExposeSecret(), string_to_sign);
  return HexEncode(ByteView(mac.data(), mac.size()));
}

Verifier::Verifier(VerifierConfig config, const AccessKeyStore& keys)
    : config_(std::move(config)), keys_(keys) {
  if (!config_.clock) config_.clock = [] { return std::chrono::system_clock::now(); };
  // A fixed, 40-character stand-in (the length of a real secret); never matches a signature anyone
  // could produce without knowing it, and it is never reported.
  dummy_secret_ = SecretBytes::CopyFrom(AsBytes("kms-appliance-unknown-access-key-00000000"));
}

SecretBytes Verifier::CachedSigningKeyFor(std::string_view access_key_id, std::string_view date,
                                          const SecretBytes& secret) const {
  std::string cache_key;
  cache_key.reserve(access_key_id.size() + 1 + date.size());
  cache_key += access_key_id;
  cache_key += '/';
  cache_key += date;
  {
    std::lock_guard lock(cache_mu_);
    if (auto it = cache_.find(cache_key);
        it != cache_.end() &&
        ConstantTimeEquals(it->second.secret.ExposeSecret(), secret.ExposeSecret())) {
      return SecretBytes::CopyFrom(it->second.signing_key.ExposeSecret());
    }
  }
  // Derived outside the lock; two threads missing together both derive the same key (harmless).
  SecretBytes derived = SigningKey(secret.ExposeSecret(), date, config_.region, config_.service);
  std::lock_guard lock(cache_mu_);
  if (cache_.size() >= kSigningKeyCacheLimit) cache_.clear();
  cache_.insert_or_assign(std::move(cache_key),
                          CachedSigningKey{SecretBytes::CopyFrom(secret.ExposeSecret()),
                                           SecretBytes::CopyFrom(derived.ExposeSecret())});
  return derived;
}

AwsResult<Caller> Verifier::Verify(const http::HttpRequest& request) const {
  // Query-string presigning is not used by SDKs for KMS; refuse it explicitly.
  const std::string_view query = request.Query();
  if (query.find("X-Amz-Algorithm=") != std::string_view::npos ||
      query.find("X-Amz-Signature=") != std::string_view::npos) {
    return std::unexpected(
        Incomplete("Query-string authentication is not supported; sign the Authorization header."));
  }
  const std::size_t auth_count = request.HeaderCount("authorization");
  if (auth_count == 0) {
    return std::unexpected(
        ClientError("MissingAuthenticationTokenException", "Missing Authentication Token"));
  }
  if (auth_count > 1) {
    return std::unexpected(Incomplete("The request carries more than one Authorization header."));
  }
  auto auth = ParseAuthorization(*request.Header("authorization"));
  if (!auth) return std::unexpected(std::move(auth).error());

  // X-Amz-Date is required (all clients send it).
  const auto amz_date_header = request.Header("x-amz-date");
  if (!amz_date_header || request.HeaderCount("x-amz-date") != 1) {
    return std::unexpected(Incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."));
  }
  const std::string amz_date = CanonicalHeaderValue(*amz_date_header);
  const auto signed_at = ParseAmzDate(amz_date);
  if (!signed_at) {
    return std::unexpected(
        Incomplete("X-Amz-Date must be of the form YYYYMMDD'T'HHMMSS'Z', got '" + amz_date + "'."));
  }

  // Scope checks.
  if (auth->date != std::string_view(amz_date).substr(0, 8)) {
    return std::unexpected(InvalidSignature(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
        auth->date + "' != '" + amz_date.substr(0, 8) + "', from '" + amz_date + "'."));
  }
  if (auth->service != config_.service) {
    return std::unexpected(InvalidSignature("Credential should be scoped to correct service: '" +
                                            config_.service + "'"));
  }
  if (auth->region != config_.region) {
    return std::unexpected(InvalidSignature("Credential should be scoped to a valid region"));
  }

  // Headers that must be covered by the signature.
  auto is_signed = [&](std::string_view name) {
    return std::find(auth->signed_headers.begin(), auth->signed_headers.end(), name) !=
           auth->signed_headers.end();
  };
  auto require_signed = [&](std::string_view name) -> std::optional<AwsError> {
    if (is_signed(name)) return std::nullopt;
    return Incomplete("'" + std::string(name) +
                      "' must be a 'SignedHeader' in the AWS Authorization.");
  };
  for (const auto& name : config_.required_signed_headers) {
    if (auto e = require_signed(name)) return std::unexpected(std::move(*e));
  }
  if (auto e = require_signed("x-amz-date")) return std::unexpected(std::move(*e));
  if (request.Header("x-amz-security-token")) {
    if (auto e = require_signed("x-amz-security-token")) return std::unexpected(std::move(*e));
  }

  // ±5 minutes, with AWS's own texts.
  const auto now = config_.clock();
  const auto now_s = std::chrono::floor<std::chrono::seconds>(now);
  const auto skew = std::chrono::duration_cast<std::chrono::seconds>(config_.max_skew);
  auto window = [&] {
    return std::to_string(
               std::chrono::duration_cast<std::chrono::minutes>(config_.max_skew).count()) +
           " min.)";
  };
  if (*signed_at < now_s - skew) {
    return std::unexpected(InvalidSignature(
        "Signature expired: " + amz_date + " is now earlier than " +
        FormatAmzDate(now - config_.max_skew) + " (" + FormatAmzDate(now) + " - " + window()));
  }
  if (*signed_at > now_s + skew) {
    return std::unexpected(InvalidSignature(
        "Signature not yet current: " + amz_date + " is still later than " +
        FormatAmzDate(now + config_.max_skew) + " (" + FormatAmzDate(now) + " + " + window()));
  }

  // Hash what arrived; a claimed hash must agree.
  const std::string payload_hash = Sha256Hex(AsBytes(request.body));
  if (const auto claimed = request.Header("x-amz-content-sha256");
      claimed && CanonicalHeaderValue(*claimed) != payload_hash) {
    return std::unexpected(InvalidSignature(
        "The provided 'x-amz-content-sha256' header does not match what was computed."));
  }

  auto canonical = CanonicalRequest(request.method, request.Path(), query, request.headers,
                                    auth->signed_headers, payload_hash, config_.normalize_path);
  if (!canonical) return std::unexpected(std::move(canonical).error());
  const std::string scope =
      auth->date + "/" + auth->region + "/" + auth->service + "/aws4_request";
  const std::string string_to_sign = StringToSign(amz_date, scope, *canonical);

  // An unknown key must look like a wrong signature from the outside, so the whole
  // computation runs either way, against a dummy secret when the key is unknown.
  auto key = keys_.Lookup(auth->access_key_id);
  if (!key && key.error().code() != StatusCode::kNotFound) {
    return std::unexpected(AwsError{"KMSInternalException", 500,
                                    "The access key store is unavailable."});
  }
  const bool known = key.has_value();
  // auth->region and auth->service equal the configured ones (checked above); the cache needs it.
  const SecretBytes signing_key =
      CachedSigningKeyFor(auth->access_key_id, auth->date, known ? key->secret : dummy_secret_);
  const std::string expected = SignatureHex(signing_key, string_to_sign);
  const bool match = ConstantTimeEquals(AsBytes(expected), AsBytes(auth->signature));
  if (!known) return std::unexpected(ClientError("UnrecognizedClientException",
                                                 std::string(kInvalidToken)));
  if (!match) return std::unexpected(InvalidSignature(std::string(kSignatureMismatch)));
  // No STS here, so no session token can be valid. Checked after the signature so
  // that a forged token learns nothing either.
  if (request.Header("x-amz-security-token")) {
    return std::unexpected(ClientError("UnrecognizedClientException", std::string(kInvalidToken)));
  }
  return Caller{auth->access_key_id, std::move(key->principal), key->administrator};
}

}  // namespace kms::api::aws::sigv4
