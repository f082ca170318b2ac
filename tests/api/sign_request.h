// Test-side SigV4 signer: signs an HttpRequest the way botocore does (Authorization header over the
// listed headers), built from the verifier's own primitives, whose correctness the AWS suite
// (sigv4_vectors_test.cc) establishes independently.
#ifndef KMS_TESTS_API_SIGN_REQUEST_H_
#define KMS_TESTS_API_SIGN_REQUEST_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "api/aws/sigv4.h"
#include "api/http/message.h"

namespace kms::api::testing {

struct SigningParams {
  std::string access_key_id = "AKIDEXAMPLE";
  std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  std::string region = "us-east-1";
  std::string service = "kms";
  std::chrono::system_clock::time_point when = std::chrono::system_clock::now();
  std::vector<std::string> signed_headers = {"content-type", "host", "x-amz-date", "x-amz-target"};
  // Signs for this X-Amz-Date text instead of `when`'s (dates a time_point cannot hold).
  std::optional<std::string> amz_date;
};

// Adds X-Amz-Date (unless present) and Authorization.
inline void SignRequest(http::HttpRequest& req, const SigningParams& p) {
  const std::string amz_date = p.amz_date ? *p.amz_date : aws::sigv4::FormatAmzDate(p.when);
  if (!req.Header("x-amz-date")) req.headers.emplace_back("X-Amz-Date", amz_date);
  const std::string date = amz_date.substr(0, 8);
  auto creq = aws::sigv4::CanonicalRequest(req.method, req.Path(), req.Query(), req.headers,
                                           p.signed_headers,
                                           aws::sigv4::Sha256Hex(AsBytes(req.body)), true);
  const std::string scope = date + "/" + p.region + "/" + p.service + "/aws4_request";
  const std::string sts = aws::sigv4::StringToSign(amz_date, scope, creq.value());
  const auto key = aws::sigv4::SigningKey(AsBytes(p.secret), date, p.region, p.service);
  std::string list;
  for (const auto& h : p.signed_headers) list += (list.empty() ? "" : ";") + h;
  req.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + p.access_key_id + "/" +
                                                scope + ", SignedHeaders=" + list +
                                                ", Signature=" +
                                                aws::sigv4::SignatureHex(key, sts));
}

// A KMS request as aws-cli sends it, unsigned.
// `op` is an operation of TrentService ("Encrypt"), or a whole target ("KmsAppliance.ListUsers").
inline http::HttpRequest KmsRequest(std::string op, std::string body) {
  http::HttpRequest req;
  req.method = "POST";
  req.target = "/";
  req.headers = {{"Host", "127.0.0.1:18085"},
                 {"Accept-Encoding", "identity"},
                 {"X-Amz-Target",
                  op.find('.') == std::string::npos ? "TrentService." + op : op},
                 {"Content-Type", "application/x-amz-json-1.1"}};
  req.body = std::move(body);
  req.headers.emplace_back("Content-Length", std::to_string(req.body.size()));
  return req;
}

}  // namespace kms::api::testing

#endif  // KMS_TESTS_API_SIGN_REQUEST_H_
