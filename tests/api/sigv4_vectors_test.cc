// The AWS Signature Version 4 test suite (awslabs/aws-c-auth, shared/vectors/sigv4) through the
// verifier's building blocks and through Verifier::Verify itself.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/aws/sigv4.h"

namespace kms::api::aws::sigv4 {
namespace {

namespace fs = std::filesystem;
const fs::path kSuite = "../shared/vectors/sigv4";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses a request file of the suite: request line, "Name:value" headers with folded continuation
// lines, a blank line, the body. Paths may hold spaces and raw UTF-8.
http::HttpRequest ParseRequestFile(const std::string& text) {
  http::HttpRequest req;
  std::size_t pos = text.find('\n');
  std::string line = text.substr(0, pos);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto sp = line.find(' ');
  const auto proto = line.rfind(" HTTP/");
  req.method = line.substr(0, sp);
  req.target = line.substr(sp + 1, proto - sp - 1);
  std::size_t start = pos + 1;
  while (start < text.size()) {
    pos = text.find('\n', start);
    std::string h = text.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    start = pos == std::string::npos ? text.size() : pos + 1;
    if (!h.empty() && h.back() == '\r') h.pop_back();
    if (h.empty()) {
      req.body = text.substr(start);
      break;
    }
    if ((h[0] == ' ' || h[0] == '\t') && !req.headers.empty()) {
      req.headers.back().second += " " + h;  // obs-fold, as an HTTP parser unfolds it
      continue;
    }
    const auto colon = h.find(':');
    req.headers.emplace_back(h.substr(0, colon), h.substr(colon + 1));
  }
  return req;
}

std::string QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = part.find('=');
    if (part.substr(0, eq) == name) return UriDecode(part.substr(eq + 1));
  }
  return {};
}

std::chrono::system_clock::time_point ParseIsoTimestamp(const std::string& s) {
  // "2015-08-30T12:36:00Z"
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

struct Counts {
  int cases = 0, header_ok = 0, header_fail = 0, query_ok = 0, query_fail = 0, verify_ok = 0,
      verify_fail = 0;
};

TEST_CASE("AWS SigV4 test suite: canonical request, string to sign, signature", "[unit]") {
  if (!fs::is_directory(kSuite)) {
    std::cout << "SKIP: SigV4 test suite not found at " << kSuite << " (cwd "
              << fs::current_path() << ")\n";
    WARN("SigV4 test suite absent; skipped");
    return;
  }
  Counts n;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(kSuite)) {
    if (e.is_directory() && fs::exists(e.path() / "context.json")) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    const std::string name = dir.filename().string();
    INFO("case " << name);
    ++n.cases;
    const auto ctx = boost::json::parse(ReadFile(dir / "context.json")).as_object();
    const auto& creds = ctx.at("credentials").as_object();
    const std::string akid(creds.at("access_key_id").as_string());
    const std::string secret(creds.at("secret_access_key").as_string());
    const std::string region(ctx.at("region").as_string());
    const std::string service(ctx.at("service").as_string());
    const bool normalize = ctx.at("normalize").as_bool();
    const auto when = ParseIsoTimestamp(std::string(ctx.at("timestamp").as_string()));
    const auto signing_key = SigningKey(AsBytes(secret), FormatAmzDate(when).substr(0, 8), region,
                                        service);

    // Header-signed variant: everything the verifier computes must match the suite byte for byte.
    {
      const auto req = ParseRequestFile(ReadFile(dir / "header-signed-request.txt"));
      auto auth = ParseAuthorization(*req.Header("authorization"));
      REQUIRE(auth.has_value());
      auto creq = CanonicalRequest(req.method, req.Path(), req.Query(), req.headers,
                                   auth->signed_headers, Sha256Hex(AsBytes(req.body)), normalize);
      REQUIRE(creq.has_value());
      const std::string scope = auth->date + "/" + region + "/" + service + "/aws4_request";
      const std::string sts =
          StringToSign(CanonicalHeaderValue(*req.Header("x-amz-date")), scope, *creq);
      const std::string sig = SignatureHex(signing_key, sts);
      const bool ok = *creq == ReadFile(dir / "header-canonical-request.txt") &&
                      sts == ReadFile(dir / "header-string-to-sign.txt") &&
                      sig == ReadFile(dir / "header-signature.txt") && sig == auth->signature;
      CHECK(*creq == ReadFile(dir / "header-canonical-request.txt"));
      CHECK(sts == ReadFile(dir / "header-string-to-sign.txt"));
      CHECK(sig == ReadFile(dir / "header-signature.txt"));
      ok ? ++n.header_ok : ++n.header_fail;

      // The full verifier, with the suite's clock, region and service.
      InMemoryAccessKeyStore store;
      store.Add(akid, SecretBytes::CopyFrom(AsBytes(secret)), "suite");
      VerifierConfig cfg;
      cfg.region = region;
      cfg.service = service;
      cfg.required_signed_headers = {"host"};
      cfg.normalize_path = normalize;
      cfg.clock = [when] { return when; };
      Verifier verifier(cfg, store);
      const auto verdict = verifier.Verify(req);
      if (req.Header("x-amz-security-token")) {
        // No STS on the appliance: a correctly signed session token is still refused, and an
        // unsigned one (post-sts-header-after) is refused before that as an unsigned header.
        const bool token_signed = std::find(auth->signed_headers.begin(),
                                            auth->signed_headers.end(),
                                            "x-amz-security-token") != auth->signed_headers.end();
        const std::string want =
            token_signed ? "UnrecognizedClientException" : "IncompleteSignatureException";
        REQUIRE_FALSE(verdict.has_value());
        CHECK(verdict.error().type == want);
        verdict.error().type == want ? ++n.verify_ok : ++n.verify_fail;
      } else {
        CHECK(verdict.has_value());
        verdict.has_value() ? ++n.verify_ok : ++n.verify_fail;
      }
    }

    // Query-signed variant (presigned URL): computed with the same primitives; the verifier itself
    // refuses presigning, which KMS clients never use (docs/aws-kms-protocol.md "Request signing").
    if (fs::exists(dir / "query-signed-request.txt")) {
      const auto req = ParseRequestFile(ReadFile(dir / "query-signed-request.txt"));
      std::vector<std::string> signed_headers;
      const std::string list = QueryParam(req.Query(), "X-Amz-SignedHeaders");
      for (std::string_view s = list; !s.empty();) {
        const auto semi = s.find(';');
        signed_headers.emplace_back(s.substr(0, semi));
        s = semi == std::string_view::npos ? std::string_view() : s.substr(semi + 1);
      }
      const std::string amz_date = QueryParam(req.Query(), "X-Amz-Date");
      // With omit_session_token the token is appended after signing and is not part of it.
      std::string query;
      const bool omit_token = ctx.contains("omit_session_token") &&
                              ctx.at("omit_session_token").as_bool();
      for (std::string_view q = req.Query(); !q.empty();) {
        const auto amp = q.find('&');
        const auto part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
        if (omit_token && part.starts_with("X-Amz-Security-Token=")) continue;
        query += (query.empty() ? "" : "&") + std::string(part);
      }
      std::string creq = std::string(req.method) + "\n" + CanonicalUri(req.Path(), normalize) +
                         "\n" + CanonicalQuery(query, "X-Amz-Signature") + "\n";
      auto full = CanonicalRequest(req.method, req.Path(), "", req.headers, signed_headers,
                                   Sha256Hex(AsBytes(req.body)), normalize);
      REQUIRE(full.has_value());
      // Splice the canonical query into the header-only canonical request (line 3).
      const auto second_nl = full->find('\n', full->find('\n') + 1);
      creq += full->substr(second_nl + 2);
      const std::string scope = amz_date.substr(0, 8) + "/" + region + "/" + service +
                                "/aws4_request";
      const std::string sts = StringToSign(amz_date, scope, creq);
      const std::string sig = SignatureHex(signing_key, sts);
      const bool ok = creq == ReadFile(dir / "query-canonical-request.txt") &&
                      sts == ReadFile(dir / "query-string-to-sign.txt") &&
                      sig == ReadFile(dir / "query-signature.txt");
      CHECK(creq == ReadFile(dir / "query-canonical-request.txt"));
      CHECK(sig == ReadFile(dir / "query-signature.txt"));
      ok ? ++n.query_ok : ++n.query_fail;
    }
  }
  std::cout << "SigV4 suite: " << n.cases << " cases; header-signed " << n.header_ok << " passed, "
            << n.header_fail << " failed; query-signed " << n.query_ok << " passed, " << n.query_fail
            << " failed; full verification " << n.verify_ok << " as expected, " << n.verify_fail
            << " not\n";
  CHECK(n.header_fail == 0);
  CHECK(n.verify_fail == 0);
  CHECK(n.query_fail == 0);
}

}  // namespace
}  // namespace kms::api::aws::sigv4
