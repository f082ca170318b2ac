// AWS Signature Version 4 verification for the AWS door (docs/aws-kms-protocol.md "Request
// signing").
//
// The building blocks (canonical URI, canonical query, canonical request, string to sign, signing key,
// signature) are exposed so the AWS test suite (shared/vectors/sigv4) can check each step; `Verifier`
// strings them together with the appliance's policy:
//   - `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/<service>/aws4_request,
//     SignedHeaders=<a;b;c>, Signature=<64 hex>`; the signed-header list is read generically, because
//     every SDK signs a different set;
//   - `X-Amz-Date` required, within ±5 minutes of the clock; credential date = its first 8 characters;
//     region = the configured one; service = `kms`;
//   - `host` and `x-amz-target` (configurable) must be signed: an unsigned target would let a relay turn
//     a signed Decrypt body into another operation;
//   - the payload hash is always computed over the body actually received; an `x-amz-content-sha256`
//     header must equal it;
//   - session tokens are refused (the appliance has no STS);
//   - an unknown access key is verified against a dummy secret, so it costs the same as a wrong
//     signature, and the comparison is constant-time; only then is the outcome reported.
// Each failure is the AWS exception a client expects (docs/aws-kms-protocol.md, "Request signing"
// and "Errors"), HTTP 400.
//
// Signing keys: deriving one costs four HMAC-SHA256 calls, the same for every
// request of a key on a day, so `Verifier` keeps the derived keys of recent (access key id, date)
// pairs in SecretBytes, at most `kSigningKeyCacheLimit` of them (the whole cache is dropped when it
// is full). An entry also keeps the secret it was derived from and is used only while the store
// still returns that same secret (compared in constant time); the store is still asked on every
// request, so a deactivated or deleted key is refused at once. Unknown key ids are cached the same
// way (against the dummy secret). A hit still skips the four HMACs, so a key id used recently answers
// a few microseconds sooner than one not used since the cache was last filled or dropped; that is
// smaller than what the store's own lookup already varies by (record found or not, secret unwrapped
// or cached), which is where timing equality between known and unknown keys would have to start.
//
// Thread-safety: `Verify` may run on many threads at once provided the `AccessKeyStore` allows
// concurrent lookups (its contract says it must); the signing-key cache is guarded by a mutex.
#ifndef KMS_API_AWS_SIGV4_H_
#define KMS_API_AWS_SIGV4_H_

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/aws/access_key_store.h"
#include "api/aws/aws_error.h"
#include "api/http/message.h"
#include "base/bytes.h"
#include "base/secret_bytes.h"

namespace kms::api::aws::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// The parts of an Authorization header.
struct Authorization {
  std::string access_key_id;
  std::string date;     // yyyymmdd
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;  // lower-case, in the client's order
  std::string signature;                    // 64 lower-case hex digits
};

// IncompleteSignatureException for anything that is not the documented shape.
AwsResult<Authorization> ParseAuthorization(std::string_view header);

// RFC 3986 unreserved characters stay, every other byte becomes %XX (upper-case hex), as SigV4 says.
std::string UriEncode(std::string_view text, bool keep_slash);
// Decodes %XX escapes; malformed escapes are kept literally.
std::string UriDecode(std::string_view text);
// The canonical URI: optionally normalised (RFC 3986 §5.2.4 dot segments removed, empty segments
// dropped, a trailing slash kept), then each segment URI-encoded once over the path as received.
std::string CanonicalUri(std::string_view path, bool normalize);
// Parameters decoded, re-encoded, sorted by name then value; `exclude` (e.g. X-Amz-Signature) dropped.
std::string CanonicalQuery(std::string_view query, std::string_view exclude = {});
// Leading and trailing whitespace trimmed, inner runs of spaces/tabs collapsed to one space.
std::string CanonicalHeaderValue(std::string_view raw);
// The whole canonical request. Headers named in `signed_headers` are looked up case-insensitively;
// repeated headers are joined with ',' in wire order. IncompleteSignatureException if one is absent.
AwsResult<std::string> CanonicalRequest(std::string_view method, std::string_view path,
                                        std::string_view query, const http::HeaderList& headers,
                                        const std::vector<std::string>& signed_headers,
                                        std::string_view payload_hash_hex, bool normalize_path);
std::string Sha256Hex(ByteView data);
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
// The HMAC chain of SigV4: "AWS4"+secret -> date -> region -> service -> "aws4_request".
SecretBytes SigningKey(ByteView secret, std::string_view date, std::string_view region,
                       std::string_view service);
std::string SignatureHex(const SecretBytes& signing_key, std::string_view string_to_sign);

// "20150830T123600Z" for a time point (UTC).
std::string FormatAmzDate(std::chrono::system_clock::time_point t);
// The time an X-Amz-Date ("YYYYMMDDTHHMMSSZ", UTC) names; nullopt if malformed (not that shape, or
// not a calendar date and time; a leap second 60 is accepted).
std::optional<std::chrono::sys_seconds> ParseAmzDate(std::string_view amz_date);

struct VerifierConfig {
  std::string region = "us-east-1";
  std::string service = "kms";
  // Headers that must be in SignedHeaders (lower-case). x-amz-date is always required as well.
  std::vector<std::string> required_signed_headers = {"host", "x-amz-target"};
  std::chrono::seconds max_skew{300};
  bool normalize_path = true;  // true for every service except S3
  // Clock; defaults to std::chrono::system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
};

// Who signed a verified request.
struct Caller {
  std::string access_key_id;
  std::string principal;
  bool administrator = false;  // the key's AccessKey::administrator
};

class Verifier {
 public:
  Verifier(VerifierConfig config, const AccessKeyStore& keys);

  AwsResult<Caller> Verify(const http::HttpRequest& request) const;

  const VerifierConfig& config() const { return config_; }

  // Bound on cached signing keys (see the contract above).
  static constexpr std::size_t kSigningKeyCacheLimit = 256;

 private:
  struct CachedSigningKey {
    SecretBytes secret;       // the secret it was derived from
    SecretBytes signing_key;  // SigningKey(secret, date, config_.region, config_.service)
  };
  // The signing key for `secret` on `date` (region and service are the configured ones, already
  // checked), from the cache when an entry for (access_key_id, date) was derived from this secret.
  SecretBytes CachedSigningKeyFor(std::string_view access_key_id, std::string_view date,
                                  const SecretBytes& secret) const;

  VerifierConfig config_;
  const AccessKeyStore& keys_;
  SecretBytes dummy_secret_;  // stands in for unknown keys so they cost the same as known ones
  mutable std::mutex cache_mu_;
  // "<access key id>/<yyyymmdd>" -> derived key; at most kSigningKeyCacheLimit entries.
  mutable std::map<std::string, CachedSigningKey, std::less<>> cache_;
};

}  // namespace kms::api::aws::sigv4

#endif  // KMS_API_AWS_SIGV4_H_
