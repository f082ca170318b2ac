#include "tools/kms_client/request_signer.h"

#include "api/aws/sigv4.h"
#include "api/http/message.h"
#include "base/bytes.h"

namespace kms::tools {

namespace sigv4 = api::aws::sigv4;

RequestSigner::RequestSigner(std::string access_key_id, SecretBytes secret, std::string region,
                             std::string host_header)
    : access_key_id_(std::move(access_key_id)),
      secret_(std::move(secret)),
      region_(std::move(region)),
      host_header_(std::move(host_header)) {}

SignedHeaders RequestSigner::Sign(std::string_view target, std::string_view body,
                                  std::chrono::system_clock::time_point now) {
  SignedHeaders out;
  out.amz_date = sigv4::FormatAmzDate(now);
  const std::string date = out.amz_date.substr(0, 8);
  if (date != key_date_) {
    signing_key_ = sigv4::SigningKey(secret_.ExposeSecret(), date, region_, "kms");
    key_date_ = date;
  }
  // docs/aws-kms-protocol.md "Request signing": canonical headers sorted by name, values trimmed;
  // these four are what botocore signs.
  std::string canonical;
  canonical.reserve(256);
  canonical += "POST\n/\n\ncontent-type:";
  canonical += kKmsContentType;
  canonical += "\nhost:";
  canonical += host_header_;
  canonical += "\nx-amz-date:";
  canonical += out.amz_date;
  canonical += "\nx-amz-target:";
  canonical += target;
  canonical += "\n\ncontent-type;host;x-amz-date;x-amz-target\n";
  canonical += sigv4::Sha256Hex(AsBytes(body));
  const std::string scope = date + "/" + region_ + "/kms/aws4_request";
  const std::string string_to_sign = sigv4::StringToSign(out.amz_date, scope, canonical);
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + access_key_id_ + "/" + scope +
                      ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
                      sigv4::SignatureHex(signing_key_, string_to_sign);
  return out;
}

std::string RequestSigner::RawRequest(std::string_view target, std::string_view body,
                                      std::chrono::system_clock::time_point now) {
  const SignedHeaders h = Sign(target, body, now);
  std::string r;
  r.reserve(512 + body.size());
  r += "POST / HTTP/1.1\r\nHost: ";
  r += host_header_;
  r += "\r\nContent-Type: ";
  r += kKmsContentType;
  r += "\r\nX-Amz-Target: ";
  r += target;
  r += "\r\nX-Amz-Date: ";
  r += h.amz_date;
  r += "\r\nAuthorization: ";
  r += h.authorization;
  r += "\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += "\r\n\r\n";
  r += body;
  return r;
}

}  // namespace kms::tools
