// libFuzzer target: AWS Signature Version 4 (api/aws/sigv4.{h,cc}): the Authorization header
// parser, URI encoding, the canonical URI, query and header value, the X-Amz-Date parser, and the
// Verifier over requests signed with the fuzzer's path, query, header and date.
//
// Input: NUL-separated fields: Authorization value, request target (path and query), a header
// value, an X-Amz-Date, an extra header name, the body (missing fields are empty).
//
// Oracles (abort with the invariant's name):
//  - a parsed Authorization header, printed again, parses to the same components;
//  - UriDecode(UriEncode(x)) == x; canonical URIs start with '/' and hold only unreserved
//    characters, '/' and upper-case %XX escapes, with no empty, "." or ".." segment once
//    normalised; the canonical query and the canonical header value are fixed points (canonical
//    of canonical is itself), the query sorted and escaped, the header value trimmed and without
//    runs of whitespace;
//  - ParseAmzDate accepts exactly what a plain second reading of the format accepts (a calendar
//    date, hours below 24, minutes below 60, seconds up to 60), and FormatAmzDate prints a parsed
//    date back as it was (years 1900-2200, seconds below 60);
//  - a request signed over the fuzzer's target, header and body (at the fuzzer's date, the
//    verifier's clock set to it) verifies, as the right caller; the same request with its body
//    changed does not, and is an InvalidSignatureException; the fuzzer's own Authorization header
//    on it never verifies, and is refused with one of SigV4's exceptions (HTTP 400).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/aws/access_key_store.h"
#include "api/aws/sigv4.h"
#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "tests/api/sign_request.h"

namespace {

namespace sigv4 = kms::api::aws::sigv4;

[[noreturn]] void Violated(const char* invariant, std::string_view detail = {}) {
  std::fprintf(stderr, "sigv4 invariant violated: %s %.*s\n", invariant,
               static_cast<int>(std::min<std::size_t>(detail.size(), 300)), detail.data());
  std::abort();
}

bool Unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}
bool UpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

// Only unreserved characters, `extra`, and %XX with upper-case hex.
bool WellEscaped(std::string_view s, std::string_view extra) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (Unreserved(s[i]) || extra.find(s[i]) != std::string_view::npos) continue;
    if (s[i] == '%' && i + 2 < s.size() && UpperHex(s[i + 1]) && UpperHex(s[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

std::string Print(const sigv4::Authorization& a) {
  std::string headers;
  for (const auto& h : a.signed_headers) headers += (headers.empty() ? "" : ";") + h;
  return "AWS4-HMAC-SHA256 Credential=" + a.access_key_id + "/" + a.date + "/" + a.region + "/" +
         a.service + "/aws4_request, SignedHeaders=" + headers + ", Signature=" + a.signature;
}

bool Same(const sigv4::Authorization& a, const sigv4::Authorization& b) {
  return a.access_key_id == b.access_key_id && a.date == b.date && a.region == b.region &&
         a.service == b.service && a.signed_headers == b.signed_headers &&
         a.signature == b.signature;
}

// A second, plain reading of "YYYYMMDDTHHMMSSZ".
bool PlainDateValid(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return false;
  for (std::size_t i = 0; i < 15; ++i) {
    if (i == 8) continue;
    if (s[i] < '0' || s[i] > '9') return false;
  }
  auto n = [&](std::size_t at, std::size_t len) {
    int v = 0;
    for (std::size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  const int year = n(0, 4), month = n(4, 2), day = n(6, 2);
  if (month < 1 || month > 12 || day < 1) return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day <= days && n(9, 2) < 24 && n(11, 2) < 60 && n(13, 2) <= 60;
}

bool HeaderNameOk(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  // Names that change the outcome on purpose: a second Host or X-Amz-Date, a session token, a
  // claimed payload hash, a second Authorization.
  for (std::string_view special : {"host", "x-amz-date", "x-amz-security-token",
                                   "x-amz-content-sha256", "authorization"}) {
    if (n == special) return false;
  }
  return true;
}

constexpr std::string_view kKeyId = "AKIDFUZZ";
constexpr std::string_view kSecret = "fuzz/secret/K7MDENG+bPxRfiCYEXAMPLEKEY00";

struct Keys {
  kms::api::aws::InMemoryAccessKeyStore store;
  Keys() {
    store.Add(std::string(kKeyId), kms::SecretBytes::CopyFrom(kms::AsBytes(kSecret)),
              "arn:aws:iam::111122223333:user/fuzz", false);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Keys* keys = new Keys();
  std::vector<std::string> f(6);
  std::size_t field = 0;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\0' && field < f.size() - 1) {
      ++field;
      continue;
    }
    f[field].push_back(c);
  }
  const std::string& auth_value = f[0];
  const std::string& target = f[1];
  const std::string& header_value = f[2];
  const std::string& amz_date = f[3];
  std::string extra_name = f[4];
  const std::string& body = f[5];

  // Authorization: parse, print, parse.
  if (auto a = sigv4::ParseAuthorization(auth_value)) {
    const std::string printed = Print(*a);
    auto again = sigv4::ParseAuthorization(printed);
    if (!again) Violated("a printed Authorization header does not parse", printed);
    if (!Same(*a, *again)) Violated("Authorization components change through print and parse", printed);
  } else if (a.error().http_status != 400 || a.error().type != "IncompleteSignatureException") {
    Violated("an Authorization refusal other than IncompleteSignatureException");
  }

  // URI encoding and the canonical forms.
  for (bool keep_slash : {false, true}) {
    if (sigv4::UriDecode(sigv4::UriEncode(target, keep_slash)) != target) {
      Violated("UriDecode(UriEncode(x)) != x", target);
    }
  }
  const std::string_view path = std::string_view(target).substr(0, target.find('?'));
  const std::string_view query =
      target.find('?') == std::string::npos ? std::string_view() : std::string_view(target).substr(target.find('?') + 1);
  for (bool normalize : {false, true}) {
    const std::string uri = sigv4::CanonicalUri(path, normalize);
    if (uri.empty() || (uri[0] != '/' && !(!normalize && !path.empty()))) {
      Violated("canonical URI does not start with '/'", uri);
    }
    if (!WellEscaped(uri, "/")) Violated("canonical URI badly escaped", uri);
    if (normalize) {
      const std::string inner = uri + (uri.back() == '/' ? "" : "/");
      if (uri != "/" && (inner.find("//") != std::string::npos ||
                         inner.find("/./") != std::string::npos ||
                         inner.find("/../") != std::string::npos)) {
        Violated("normalised canonical URI keeps an empty, '.' or '..' segment", uri);
      }
    }
  }
  const std::string cq = sigv4::CanonicalQuery(query);
  if (sigv4::CanonicalQuery(cq) != cq) Violated("canonical query is not a fixed point", cq);
  if (!WellEscaped(cq, "=&")) Violated("canonical query badly escaped", cq);
  const std::string hv = sigv4::CanonicalHeaderValue(header_value);
  if (sigv4::CanonicalHeaderValue(hv) != hv) Violated("canonical header value is not a fixed point", hv);
  if (!hv.empty() && (hv.front() == ' ' || hv.back() == ' ' || hv.find("  ") != std::string::npos ||
                      hv.find_first_of("\t\r\n") != std::string::npos)) {
    Violated("canonical header value keeps whitespace", hv);
  }

  // Dates.
  const auto parsed = sigv4::ParseAmzDate(amz_date);
  if (parsed.has_value() != PlainDateValid(amz_date)) {
    Violated("ParseAmzDate disagrees with the format", amz_date);
  }
  const int year = parsed ? std::atoi(amz_date.substr(0, 4).c_str()) : 0;
  const bool printable = parsed && year >= 1900 && year <= 2200 && amz_date.substr(13, 2) != "60";
  if (printable) {
    const auto t = std::chrono::time_point_cast<std::chrono::system_clock::duration>(*parsed);
    if (sigv4::FormatAmzDate(t) != amz_date) Violated("FormatAmzDate(ParseAmzDate(x)) != x", amz_date);
  }

  // The verifier, on a request signed over the fuzzer's bytes. HTTP cannot carry CR, LF or NUL in
  // a header value or a space in a request target; the target must be origin-form.
  if (target.empty() || target[0] != '/' || target.find_first_of(" \r\n") != std::string::npos ||
      header_value.find_first_of("\r\n") != std::string::npos ||
      query.find("X-Amz-Algorithm=") != std::string_view::npos ||
      query.find("X-Amz-Signature=") != std::string_view::npos) {
    return 0;
  }
  const auto when = printable ? std::chrono::time_point_cast<std::chrono::system_clock::duration>(*parsed)
                              : std::chrono::system_clock::time_point(std::chrono::seconds(1'767'225'600));
  sigv4::VerifierConfig config;
  config.clock = [when] { return when; };
  const sigv4::Verifier verifier(config, keys->store);
  kms::api::http::HttpRequest req;
  req.method = "POST";
  req.target = target;
  req.headers = {{"Host", "kms.us-east-1.amazonaws.com"},
                 {"X-Amz-Target", "TrentService.ListKeys"},
                 {"Content-Type", "application/x-amz-json-1.1"}};
  req.body = body;
  kms::api::testing::SigningParams p;
  p.access_key_id = std::string(kKeyId);
  p.secret = std::string(kSecret);
  p.when = when;
  p.signed_headers = {"host", "x-amz-date", "x-amz-target"};
  for (char& c : extra_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (HeaderNameOk(extra_name)) {
    req.headers.emplace_back(extra_name, header_value);
    p.signed_headers.push_back(extra_name);
  }
  kms::api::http::HttpRequest theirs = req;  // the fuzzer's Authorization, same request
  kms::api::testing::SignRequest(req, p);
  const auto verified = verifier.Verify(req);
  if (!verified) Violated("a correctly signed request does not verify", verified.error().message);
  if (verified->access_key_id != kKeyId) Violated("verified as someone else");
  kms::api::http::HttpRequest tampered = req;
  tampered.body += "x";
  const auto refused = verifier.Verify(tampered);
  if (refused || refused.error().type != "InvalidSignatureException") {
    Violated("a request whose body changed after signing is not an InvalidSignatureException");
  }
  theirs.headers.emplace_back("X-Amz-Date", sigv4::FormatAmzDate(when));
  theirs.headers.emplace_back("Authorization", auth_value);
  const auto forged = verifier.Verify(theirs);
  if (forged) Violated("the fuzzer's own Authorization header verified", auth_value);
  if (forged.error().http_status != 400) Violated("a SigV4 refusal that is not a 400", forged.error().type);
  return 0;
}
