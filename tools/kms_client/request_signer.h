// Client-side SigV4 for the operator tools: signs `POST /` KMS requests (AWS JSON 1.1, service
// `kms`) the way botocore does, over content-type;host;x-amz-date;x-amz-target
// (docs/aws-kms-protocol.md "Request signing"), with the verifier's own primitives
// (api/aws/sigv4.h), so client and server cannot drift apart.
//
// The signing key (HMAC chain over the secret, date, region and service) is derived once per UTC
// day and cached; every request still gets its own X-Amz-Date, payload hash and signature.
//
// Thread-safety: none (the day cache is mutable); give each thread its own signer.
#ifndef KMS_TOOLS_KMS_CLIENT_REQUEST_SIGNER_H_
#define KMS_TOOLS_KMS_CLIENT_REQUEST_SIGNER_H_

#include <chrono>
#include <string>
#include <string_view>

#include "base/secret_bytes.h"

namespace kms::tools {

inline constexpr std::string_view kKmsContentType = "application/x-amz-json-1.1";

struct SignedHeaders {
  std::string amz_date;       // X-Amz-Date
  std::string authorization;  // Authorization
};

class RequestSigner {
 public:
  RequestSigner(std::string access_key_id, SecretBytes secret, std::string region,
                std::string host_header);

  // The two headers to add to `POST /` with Host = host_header, Content-Type = kKmsContentType and
  // X-Amz-Target = target, carrying `body`.
  SignedHeaders Sign(std::string_view target, std::string_view body,
                     std::chrono::system_clock::time_point now);
  // The whole HTTP/1.1 request (headers and body) as bytes, ready for one write.
  std::string RawRequest(std::string_view target, std::string_view body,
                         std::chrono::system_clock::time_point now);

  const std::string& host_header() const { return host_header_; }

 private:
  std::string access_key_id_;
  SecretBytes secret_;
  std::string region_;
  std::string host_header_;
  std::string key_date_;  // yyyymmdd of signing_key_
  SecretBytes signing_key_;
};

}  // namespace kms::tools

#endif  // KMS_TOOLS_KMS_CLIENT_REQUEST_SIGNER_H_
