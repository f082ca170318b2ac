// The AWS door: SigV4 failures, JSON 1.1 framing failures and the error table, each asserting the
// exact exception, HTTP status and (where AWS defines it) message a client sees.
#include "api/aws/door.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <regex>

#include "api/aws/error_table.h"
#include "api/aws/json_codec.h"
#include "api/aws/op_not_implemented.h"
#include "api/http/server.h"
#include "tests/api/door_authz_fixture.h"
#include "tests/api/http_client.h"
#include "tests/api/test_server.h"
#include "tests/api/sign_request.h"

namespace kms::api::aws {
namespace {

using testing::ReadAll;

namespace json = boost::json;
using namespace std::chrono_literals;
using testing::KmsRequest;
using testing::SignRequest;
using testing::SigningParams;

const auto kNow = std::chrono::sys_days{std::chrono::year(2026) / 11 / 28} + 18h + 41min + 42s;

// A test operation exercising every reader type.
AwsResult<json::object> TestEcho(const OperationContext& ctx, const json::object& body) {
  RequestReader r(body);
  auto name = r.RequiredString("Name", 1, 8);
  auto count = r.Integer("Count");
  auto blob = r.Blob("Blob", 1, 16);
  auto flag = r.Boolean("Flag");
  auto context = r.StringMap("Context");
  if (r.error()) return std::unexpected(*r.error());
  json::object out;
  out["Name"] = name;
  if (count) out["Count"] = *count;
  if (blob) PutBlob(out, "Blob", *blob);
  out["Flag"] = flag;
  out["ContextSize"] = context.size();
  out["Principal"] = ctx.caller.principal;
  return out;
}

struct DoorFixture {
  firmware::testing::ServiceFixture service;
  testing::DoorAuthz authz{service};
  InMemoryAccessKeyStore keys;
  metrics::MetricsRegistry registry;
  std::unique_ptr<AwsDoor> door;

  DoorFixture() {
    keys.Add("AKIDEXAMPLE", SecretBytes::CopyFrom(AsBytes("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")),
             "arn:aws:iam::111122223333:user/test", /*administrator=*/true);
    OperationTable ops;
    ops.Add("TestEcho", testing::AccountLevel(TestEcho));
    ops.Add("Encrypt", testing::AccountLevel([](const OperationContext&, const json::object& body)
                                                  -> AwsResult<json::object> {
              json::object out;
              out["Seen"] = body.at("KeyId");
              return out;
            }));
    ops.Add("Throwing", testing::AccountLevel([](const OperationContext&, const json::object&)
                                                   -> AwsResult<json::object> {
              throw std::runtime_error("boom");
            }));
    RegisterNotImplementedOperations(ops);
    AwsDoorConfig cfg;
    cfg.clock = [] { return std::chrono::system_clock::time_point(kNow); };
    cfg.observers.metrics = &registry;
    door = std::make_unique<AwsDoor>(cfg, keys, authz.authorizer, std::move(ops));
  }

  http::HttpResponse Call(http::HttpRequest req, std::optional<SigningParams> p = std::nullopt) {
    if (!p) {
      p.emplace();
      p->when = kNow;
    }
    SignRequest(req, *p);
    return door->Handle(req);
  }
};

SigningParams At(std::chrono::system_clock::time_point t) {
  SigningParams p;
  p.when = t;
  return p;
}

// Asserts the AWS error shape: status, __type, message, request id and content type.
void ExpectError(const http::HttpResponse& r, unsigned status, const std::string& type,
                 const std::optional<std::string>& message = std::nullopt) {
  INFO("body: " << r.body);
  CHECK(r.status == status);
  const auto body = json::parse(r.body).as_object();
  CHECK(body.at("__type").as_string() == type);
  if (message) CHECK(body.at("message").as_string() == *message);
  bool has_id = false;
  for (const auto& [n, v] : r.headers) {
    if (n == "x-amzn-RequestId") {
      has_id = std::regex_match(v, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                              "[0-9a-f]{12}"));
    }
  }
  CHECK(has_id);
}

TEST_CASE("door: a signed request reaches its operation", "[unit]") {
  DoorFixture f;
  auto r = f.Call(KmsRequest("TestEcho", R"({"Name":"abc","Count":7,"Blob":"aGVsbG8=","Flag":true,)"
                                         R"("Context":{"a":"b"},"Unknown":{"x":[1,2]}})"));
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto body = json::parse(r.body).as_object();
  CHECK(body.at("Name").as_string() == "abc");
  CHECK(body.at("Count").as_int64() == 7);
  CHECK(body.at("Blob").as_string() == "aGVsbG8=");
  CHECK(body.at("Flag").as_bool());
  CHECK(body.at("ContextSize").as_int64() == 1);
  CHECK(body.at("Principal").as_string() == "arn:aws:iam::111122223333:user/test");
  bool json_type = false, request_id = false;
  for (const auto& [n, v] : r.headers) {
    json_type |= n == "Content-Type" && v == "application/x-amz-json-1.1";
    request_id |= n == "x-amzn-RequestId" && v.size() == 36;
  }
  CHECK(json_type);
  CHECK(request_id);
}

TEST_CASE("door: a captured aws-cli v2 Encrypt request verifies verbatim", "[unit]") {
  DoorFixture f;
  http::HttpRequest req;
  req.method = "POST";
  req.target = "/";
  req.headers = {
      {"Host", "127.0.0.1:18085"},
      {"Accept-Encoding", "identity"},
      {"X-Amz-Target", "TrentService.Encrypt"},
      {"Content-Type", "application/x-amz-json-1.1"},
      {"User-Agent", "aws-cli/2.9.19 Python/3.11.2 Linux/6.18.44-fc-v669 source/x86_64.debian.12 "
                     "prompt/off command/kms.encrypt"},
      {"X-Amz-Date", "20261128T184142Z"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
       "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
       "Signature=0f0460a1b3e65e067d00dd4556d15a8201cf2aa7f144b81c1c1cd4ada063e844"},
      {"Content-Length", "50"}};
  req.body = R"({"KeyId": "alias/my-key", "Plaintext": "aGVsbG8="})";
  auto r = f.door->Handle(req);
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(json::parse(r.body).as_object().at("Seen").as_string() == "alias/my-key");

  // The same bytes with one body byte changed no longer verify.
  req.body[10] = 'X';
  ExpectError(f.door->Handle(req), 400, "InvalidSignatureException",
              "The request signature we calculated does not match the signature you provided. "
              "Check your AWS Secret Access Key and signing method. Consult the service "
              "documentation for details.");
}

TEST_CASE("door: a captured JavaScript SDK v3 request computes the recorded signature", "[unit]") {
  // Ten signed headers including amz-sdk-request with an inner space; session token present.
  http::HeaderList headers = {
      {"content-type", "application/x-amz-json-1.1"},
      {"x-amz-target", "TrentService.Encrypt"},
      {"content-length", "86"},
      {"x-amz-user-agent", "aws-sdk-js/3.1163.0"},
      {"host", "127.0.0.1:18085"},
      {"amz-sdk-invocation-id", "ec63625b-890f-45af-831c-996567fc2e13"},
      {"amz-sdk-request", "attempt=1; max=3"},
      {"x-amz-date", "20261128T184143Z"},
      {"x-amz-security-token", "FQoGZXIvYXdzEXAMPLESESSIONTOKEN"},
      {"x-amz-content-sha256", "adce9e78849c6886992d4db2a828d8427a473e988af2ed617f39b37899a97253"}};
  const std::string body =
      R"({"KeyId":"alias/my-key","Plaintext":"aGVsbG8=","EncryptionContext":{"purpose":"test"}})";
  CHECK(sigv4::Sha256Hex(AsBytes(body)) ==
        "adce9e78849c6886992d4db2a828d8427a473e988af2ed617f39b37899a97253");
  const std::vector<std::string> signed_headers = {
      "amz-sdk-invocation-id", "amz-sdk-request", "content-length", "content-type", "host",
      "x-amz-content-sha256", "x-amz-date", "x-amz-security-token", "x-amz-target",
      "x-amz-user-agent"};
  auto creq = sigv4::CanonicalRequest("POST", "/", "", headers, signed_headers,
                                      sigv4::Sha256Hex(AsBytes(body)), true);
  REQUIRE(creq.has_value());
  CHECK(creq->find("\namz-sdk-request:attempt=1; max=3\n") != std::string::npos);
  const auto sts =
      sigv4::StringToSign("20261128T184143Z", "20261128/us-east-1/kms/aws4_request", *creq);
  // The recorded canonical-request hash is the string to sign's last line.
  CHECK(sts.ends_with("\n7637007095e255f56a9e80d4985dcc600cc1218a384a8fabbf0dcdcc417cc2ce"));
  const auto key = sigv4::SigningKey(AsBytes("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                     "20261128", "us-east-1", "kms");
  CHECK(sigv4::SignatureHex(key, sts) ==
        "a9b8c0a3df3880b4c0d26f5d968ea39b53ac3cdaf105276f6778045792e8894e");
}

TEST_CASE("door: SigV4 failures give the AWS exceptions", "[unit]") {
  DoorFixture f;
  const auto req = KmsRequest("TestEcho", R"({"Name":"a"})");

  SECTION("no Authorization header") {
    ExpectError(f.door->Handle(req), 400, "MissingAuthenticationTokenException",
                "Missing Authentication Token");
  }
  SECTION("request signed 6 minutes ago") {
    ExpectError(f.Call(req, At(kNow - 6min)), 400, "InvalidSignatureException",
                "Signature expired: 20261128T183542Z is now earlier than 20261128T183642Z "
                "(20261128T184142Z - 5 min.)");
  }
  SECTION("request signed 6 minutes in the future") {
    ExpectError(f.Call(req, At(kNow + 6min)), 400, "InvalidSignatureException",
                "Signature not yet current: 20261128T184742Z is still later than 20261128T184642Z "
                "(20261128T184142Z + 5 min.)");
  }
  SECTION("a date past the year 2262 is not yet current, not wrapped around to now") {
    // kNow + 2^64 ns, to the second: in a 64-bit nanosecond count it wrapped to 0.7 s before now.
    SigningParams p = At(kNow);
    p.amz_date = "26110619T181615Z";
    ExpectError(f.Call(req, p), 400, "InvalidSignatureException",
                "Signature not yet current: 26110619T181615Z is still later than 20261128T184642Z "
                "(20261128T184142Z + 5 min.)");
    p.amz_date = "99991231T235959Z";
    ExpectError(f.Call(req, p), 400, "InvalidSignatureException",
                "Signature not yet current: 99991231T235959Z is still later than 20261128T184642Z "
                "(20261128T184142Z + 5 min.)");
  }
  SECTION("4 minutes of skew is accepted") {
    CHECK(f.Call(req, At(kNow - 4min)).status == 200);
    CHECK(f.Call(req, At(kNow + 4min)).status == 200);
  }
  SECTION("wrong region") {
    SigningParams p = At(kNow);
    p.region = "eu-west-1";
    ExpectError(f.Call(req, p), 400, "InvalidSignatureException",
                "Credential should be scoped to a valid region");
  }
  SECTION("wrong service") {
    SigningParams p = At(kNow);
    p.service = "s3";
    ExpectError(f.Call(req, p), 400, "InvalidSignatureException",
                "Credential should be scoped to correct service: 'kms'");
  }
  SECTION("unknown access key") {
    SigningParams p = At(kNow);
    p.access_key_id = "AKIDUNKNOWN";
    ExpectError(f.Call(req, p), 400, "UnrecognizedClientException",
                "The security token included in the request is invalid.");
  }
  SECTION("wrong secret") {
    SigningParams p = At(kNow);
    p.secret = "not-the-secret";
    ExpectError(f.Call(req, p), 400, "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.");
  }
  SECTION("x-amz-target not signed") {
    SigningParams p = At(kNow);
    p.signed_headers = {"content-type", "host", "x-amz-date"};
    ExpectError(f.Call(req, p), 400, "IncompleteSignatureException",
                "'x-amz-target' must be a 'SignedHeader' in the AWS Authorization.");
  }
  SECTION("host not signed") {
    SigningParams p = At(kNow);
    p.signed_headers = {"content-type", "x-amz-date", "x-amz-target"};
    ExpectError(f.Call(req, p), 400, "IncompleteSignatureException",
                "'host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  SECTION("x-amz-target changed after signing (Decrypt body replayed as another operation)") {
    auto r = req;
    SignRequest(r, At(kNow));
    for (auto& [n, v] : r.headers) {
      if (n == "X-Amz-Target") v = "TrentService.Encrypt";
    }
    ExpectError(f.door->Handle(r), 400, "InvalidSignatureException");
  }
  SECTION("credential date differs from X-Amz-Date") {
    auto r = req;
    r.headers.emplace_back("X-Amz-Date", "20261128T184142Z");
    SignRequest(r, At(kNow - 24h));  // scope date 20261127, header date kept
    ExpectError(f.door->Handle(r), 400, "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                "from HTTP: '20261127' != '20261128', from '20261128T184142Z'.");
  }
  SECTION("missing X-Amz-Date") {
    auto r = req;
    SignRequest(r, At(kNow));
    std::erase_if(r.headers, [](const auto& h) { return h.first == "X-Amz-Date"; });
    ExpectError(f.door->Handle(r), 400, "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.");
  }
  SECTION("x-amz-content-sha256 that does not match the body") {
    auto r = req;
    r.headers.emplace_back("x-amz-content-sha256", std::string(64, '0'));
    SigningParams p = At(kNow);
    p.signed_headers = {"content-type", "host", "x-amz-content-sha256", "x-amz-date",
                        "x-amz-target"};
    ExpectError(f.Call(r, p), 400, "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  SECTION("a correctly signed session token is refused (no STS)") {
    auto r = req;
    r.headers.emplace_back("X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLESESSIONTOKEN");
    SigningParams p = At(kNow);
    p.signed_headers = {"content-type", "host", "x-amz-date", "x-amz-security-token",
                        "x-amz-target"};
    ExpectError(f.Call(r, p), 400, "UnrecognizedClientException",
                "The security token included in the request is invalid.");
  }
  SECTION("an unsigned session token is refused") {
    auto r = req;
    r.headers.emplace_back("X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLESESSIONTOKEN");
    ExpectError(f.Call(r, At(kNow)), 400, "IncompleteSignatureException",
                "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization.");
  }
  SECTION("query-string presigning is refused") {
    auto r = req;
    r.target = "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00";
    ExpectError(f.door->Handle(r), 400, "IncompleteSignatureException");
  }
}

TEST_CASE("door: cached signing keys follow the access key store", "[unit]") {
  DoorFixture f;
  const auto req = KmsRequest("TestEcho", R"({"Name":"a"})");
  REQUIRE(f.Call(req).status == 200);  // derives and caches the signing key for (AKIDEXAMPLE, date)
  REQUIRE(f.Call(req).status == 200);  // from the cache

  SECTION("a removed key is refused although its signing key is cached") {
    f.keys.Remove("AKIDEXAMPLE");
    ExpectError(f.Call(req), 400, "UnrecognizedClientException",
                "The security token included in the request is invalid.");
  }
  SECTION("a key id whose secret changed verifies against the new secret only") {
    f.keys.Add("AKIDEXAMPLE",
               SecretBytes::CopyFrom(AsBytes("a-new-secret-for-the-same-key-id-000000")),
               "arn:aws:iam::111122223333:user/test", /*administrator=*/true);
    ExpectError(f.Call(req), 400, "InvalidSignatureException");
    SigningParams p = At(kNow);
    p.secret = "a-new-secret-for-the-same-key-id-000000";
    CHECK(f.Call(req, p).status == 200);
  }
  SECTION("an unknown key id is refused on every call (its dummy signing key is cached too)") {
    SigningParams p = At(kNow);
    p.access_key_id = "AKIDUNKNOWN";
    for (int i = 0; i < 2; ++i) {
      ExpectError(f.Call(req, p), 400, "UnrecognizedClientException",
                  "The security token included in the request is invalid.");
    }
  }
  SECTION("more distinct key ids than the cache holds all verify") {
    for (std::size_t i = 0; i < sigv4::Verifier::kSigningKeyCacheLimit + 10; ++i) {
      const std::string id = "AKIDCACHE" + std::to_string(i);
      const std::string secret = "secret-number-" + std::to_string(i);
      f.keys.Add(id, SecretBytes::CopyFrom(AsBytes(secret)), "arn:aws:iam::111122223333:user/c",
                 /*administrator=*/true);
      SigningParams p = At(kNow);
      p.access_key_id = id;
      p.secret = secret;
      REQUIRE(f.Call(req, p).status == 200);
    }
    CHECK(f.Call(req).status == 200);  // the first key again, after the cache was dropped
  }
}

TEST_CASE("door: malformed Authorization headers are IncompleteSignatureException", "[unit]") {
  DoorFixture f;
  const std::string good_scope = "Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request";
  const std::string sig = "Signature=" + std::string(64, 'a');
  const char* cases[] = {
      "AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
      "SignedHeaders=host, Signature=aa",
      "AWS4-HMAC-SHA256",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms, SignedHeaders=host, "
      "Signature=0000000000000000000000000000000000000000000000000000000000000000",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026112/us-east-1/kms/aws4_request, "
      "SignedHeaders=host, "
      "Signature=0000000000000000000000000000000000000000000000000000000000000000",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
      "SignedHeaders=host, Signature=XYZ",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
      "SignedHeaders=Host;x-amz-date, "
      "Signature=0000000000000000000000000000000000000000000000000000000000000000",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
      "SignedHeaders=host;;x-amz-date, "
      "Signature=0000000000000000000000000000000000000000000000000000000000000000",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
      "SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000, "
      "Extra=1",
      "AWS4-HMAC-SHA256 garbage",
  };
  for (const char* auth : cases) {
    INFO(auth);
    auto r = KmsRequest("TestEcho", "{}");
    r.headers.emplace_back("X-Amz-Date", "20261128T184142Z");
    r.headers.emplace_back("Authorization", auth);
    ExpectError(f.door->Handle(r), 400, "IncompleteSignatureException");
  }
  // Missing parameters are named, as AWS names them.
  auto r = KmsRequest("TestEcho", "{}");
  r.headers.emplace_back("X-Amz-Date", "20261128T184142Z");
  r.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 " + good_scope);
  ExpectError(f.door->Handle(r), 400, "IncompleteSignatureException",
              "Authorization header requires 'Signature' parameter. Authorization header requires "
              "'SignedHeaders' parameter.");
  // Header bytes echoed in a message are made JSON-safe (invalid UTF-8 and controls become '?').
  auto binary = KmsRequest("TestEcho", "{}");
  binary.headers.emplace_back("X-Amz-Date", "20261128T184142Z");
  binary.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 \xff\x01" "Cred=\xc3\xa9");
  ExpectError(f.door->Handle(binary), 400, "IncompleteSignatureException",
              "Authorization header has an unknown component '??Cred'.");
  // Two Authorization headers.
  auto twice = KmsRequest("TestEcho", "{}");
  SignRequest(twice, At(kNow));
  twice.headers.emplace_back("Authorization", twice.headers.back().second);
  ExpectError(f.door->Handle(twice), 400, "IncompleteSignatureException");
  (void)sig;
}

TEST_CASE("door: JSON 1.1 framing failures give the AWS exceptions", "[unit]") {
  DoorFixture f;
  SECTION("unknown operation") {
    ExpectError(f.Call(KmsRequest("NoSuchOperation", "{}")), 400, "UnknownOperationException",
                "Operation 'NoSuchOperation' is not known to this service.");
  }
  SECTION("target of another service") {
    auto r = KmsRequest("TestEcho", "{}");
    for (auto& [n, v] : r.headers) {
      if (n == "X-Amz-Target") v = "DynamoDB_20120810.GetItem";
    }
    ExpectError(f.Call(r), 400, "UnknownOperationException");
  }
  SECTION("GET instead of POST") {
    auto r = KmsRequest("TestEcho", "");
    r.method = "GET";
    ExpectError(f.Call(r), 400, "UnknownOperationException");
  }
  SECTION("wrong content type") {
    auto r = KmsRequest("TestEcho", R"({"Name":"a"})");
    for (auto& [n, v] : r.headers) {
      if (n == "Content-Type") v = "application/json";
    }
    ExpectError(f.Call(r), 400, "SerializationException",
                "Content-Type must be application/x-amz-json-1.1.");
  }
  SECTION("malformed JSON") {
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name": "a")")), 400, "SerializationException",
                "The request body is not valid JSON.");
  }
  SECTION("JSON that is not an object") {
    ExpectError(f.Call(KmsRequest("TestEcho", R"(["Name"])")), 400, "SerializationException",
                "The request body must be a JSON object.");
  }
  SECTION("missing required member (empty body counts as {})") {
    ExpectError(f.Call(KmsRequest("TestEcho", "")), 400, "ValidationException",
                "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
                "Member must not be null");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":null})")), 400, "ValidationException");
  }
  SECTION("wrong member types") {
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":5})")), 400, "SerializationException",
                "Value of member 'Name' must be a string.");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Count":"5"})")), 400,
                "SerializationException", "Value of member 'Count' must be an integer.");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Count":1.5})")), 400,
                "SerializationException");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Count":4294967296})")), 400,
                "SerializationException");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Flag":"true"})")), 400,
                "SerializationException", "Value of member 'Flag' must be a boolean.");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Context":{"k":1}})")), 400,
                "SerializationException", "Values of member 'Context' must be strings.");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Context":[]})")), 400,
                "SerializationException");
  }
  SECTION("blobs must be strict base64") {
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Blob":"hello"})")), 400,
                "SerializationException", "Value of member 'Blob' is not valid base64.");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Blob":7})")), 400,
                "SerializationException");
  }
  SECTION("length constraints") {
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"abcdefghi"})")), 400,
                "ValidationException",
                "1 validation error detected: Value 'abcdefghi' at 'name' failed to satisfy "
                "constraint: Member must have length less than or equal to 8");
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":""})")), 400, "ValidationException",
                "1 validation error detected: Value '' at 'name' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1");
    // Lengths are in characters: eight two-byte characters fit a limit of 8.
    CHECK(f.Call(KmsRequest("TestEcho", R"({"Name":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"})"))
              .status == 200);
    // 17 bytes of blob; blob values are never echoed.
    ExpectError(f.Call(KmsRequest("TestEcho", R"({"Name":"a","Blob":"AAAAAAAAAAAAAAAAAAAAAAA="})")),
                400, "ValidationException",
                "1 validation error detected: Value at 'blob' failed to satisfy constraint: Member "
                "must have length less than or equal to 16");
  }
  SECTION("an operation that throws is a 500 KMSInternalException, not a crash") {
    ExpectError(f.Call(KmsRequest("Throwing", "{}")), 500, "KMSInternalException");
  }
  SECTION("the model's operations the appliance does not offer answer UnsupportedOperationException") {
    for (const char* op : {"DeriveSharedSecret", "GetKeyLastUsage", "CreateCustomKeyStore",
                           "ReplicateKey", "ImportKeyMaterial", "GetParametersForImport"}) {
      INFO(op);
      ExpectError(f.Call(KmsRequest(op, R"({"KeyId":"k"})")), 400, "UnsupportedOperationException",
                  std::string(op) + " is not supported by this appliance.");
    }
  }
}

TEST_CASE("error table: every core status maps to the AWS exception and status", "[unit]") {
  struct Row {
    Status status;
    const char* type;
    unsigned http;
  };
  const Row rows[] = {
      {NotFoundError("Key 'x' does not exist"), "NotFoundException", 400},
      {AlreadyExistsError("An alias with the name alias/a already exists"),
       "AlreadyExistsException", 400},
      {InvalidArgumentError("1 validation error detected: x"), "ValidationException", 400},
      {InvalidArgumentError("", Reason::kInvalidCiphertext), "InvalidCiphertextException", 400},
      {InvalidArgumentError("x", Reason::kIncorrectKey), "IncorrectKeyException", 400},
      {InvalidArgumentError("x", Reason::kInvalidKeyUsage), "InvalidKeyUsageException", 400},
      {InvalidArgumentError("", Reason::kInvalidSignature), "KMSInvalidSignatureException", 400},
      {InvalidArgumentError("", Reason::kInvalidMac), "KMSInvalidMacException", 400},
      {InvalidArgumentError("x", Reason::kInvalidMarker), "InvalidMarkerException", 400},
      {InvalidArgumentError("Duplicate tag keys", Reason::kTag), "TagException", 400},
      {FailedPreconditionError("arn is disabled.", Reason::kKeyDisabled), "DisabledException", 400},
      {FailedPreconditionError("arn is pending deletion.", Reason::kKeyInvalidState),
       "KMSInvalidStateException", 400},
      {FailedPreconditionError("dry", Reason::kDryRunOperation), "DryRunOperationException", 400},
      {FailedPreconditionError("x", Reason::kUnsupportedOperation), "UnsupportedOperationException",
       400},
      {UnimplementedError("x", Reason::kUnsupportedOperation), "UnsupportedOperationException", 400},
      {UnimplementedError("x", Reason::kMechanismUnsupported), "UnsupportedOperationException", 400},
      {ResourceExhaustedError("x", Reason::kLimitExceeded), "LimitExceededException", 400},
      {ResourceExhaustedError("x"), "ThrottlingException", 400},
      {PermissionDeniedError("x"), "AccessDeniedException", 400},
      {UnauthenticatedError("x"), "UnrecognizedClientException", 400},
      {OutOfRangeError("x"), "ValidationException", 400},
      {UnavailableError("x", Reason::kHandleStale), "KeyUnavailableException", 500},
      {UnavailableError("sealed", Reason::kSealed), "DependencyTimeoutException", 503},
      {Status(StatusCode::kDeadlineExceeded, "x"), "DependencyTimeoutException", 503},
      {InternalError("x"), "KMSInternalException", 500},
      {DataLossError("x"), "KMSInternalException", 500},
      {Status(StatusCode::kAborted, "x"), "KMSInternalException", 500},
      {Status(StatusCode::kUnknown, "x"), "KMSInternalException", 500},
  };
  for (const auto& row : rows) {
    INFO(row.status.ToString());
    const AwsError e = ErrorFromStatus(row.status);
    CHECK(e.type == row.type);
    CHECK(e.http_status == row.http);
  }
  // Client messages pass through; ciphertext errors are always empty; faults never leak detail.
  CHECK(ErrorFromStatus(NotFoundError("Key 'k' does not exist")).message == "Key 'k' does not exist");
  CHECK(ErrorFromStatus(InvalidArgumentError("tag mismatch detail", Reason::kInvalidCiphertext))
            .message.empty());
  CHECK(ErrorFromStatus(InternalError("CKR_DEVICE_ERROR in slot 3")).message ==
        "An internal error occurred; retry the request.");
  CHECK(ErrorFromStatus(UnavailableError("token removed")).message ==
        "The service is temporarily unavailable; retry the request.");
}

TEST_CASE("door: server faults speak AWS JSON (413 body limit, throttling)",
          "[unit][concurrency]") {
  DoorFixture f;
  http::ServerConfig cfg;
  cfg.body_limit = 64 * 1024;
  auto server = http::Server::Create(
      cfg, [&](const http::HttpRequest& r) { return f.door->Handle(r); }, AwsDoor::FaultResponse);
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  testing::RawClient c((*server)->port());
  auto r = c.RoundTrip("POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.Encrypt\r\n"
                       "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 65537\r\n\r\n");
  REQUIRE(r.has_value());
  http::HttpResponse as_response;
  as_response.status = r->status;
  as_response.body = r->body;
  as_response.headers.emplace_back("x-amzn-RequestId",
                                   r->head.substr(r->head.find("x-amzn-RequestId: ") + 18, 36));
  ExpectError(as_response, 413, "RequestEntityTooLargeException",
              "Request body exceeds 65536 bytes.");

  const auto throttled = AwsDoor::FaultResponse(http::ServerFault::kOverloaded, "");
  ExpectError(throttled, 400, "ThrottlingException",
              "You have exceeded the rate at which you may call KMS. Reduce the frequency of your "
              "calls.");
  ExpectError(AwsDoor::FaultResponse(http::ServerFault::kBadRequest, "Malformed HTTP request."),
              400, "SerializationException");
  ExpectError(AwsDoor::FaultResponse(http::ServerFault::kHandlerFailed, ""), 500,
              "KMSInternalException");
}

TEST_CASE("door: requests are counted by operation and outcome, and callers cannot mint labels",
          "[unit]") {
  DoorFixture f;
  auto& requests = f.registry.AddCounter("kms_requests_total", "", {"door", "operation", "outcome"});
  auto count = [&](std::string_view op, std::string_view outcome) {
    return requests.With({"aws", op, outcome}).value();
  };
  CHECK(f.Call(KmsRequest("TestEcho", R"({"Name":"abc"})")).status == 200);
  CHECK(f.Call(KmsRequest("TestEcho", R"({"Name":"abc"})")).status == 200);
  CHECK(f.Call(KmsRequest("TestEcho", R"({"Name":"much too long"})")).status == 400);
  CHECK(f.Call(KmsRequest("Throwing", "{}")).status == 500);
  // An operation name the table does not have is "unknown", whatever the caller sent.
  CHECK(f.Call(KmsRequest("NoSuchOperationCanary", "{}")).status == 400);
  auto unsigned_request = KmsRequest("TestEcho", "{}");
  CHECK(f.door->Handle(unsigned_request).status == 400);

  CHECK(count("TestEcho", "ok") == 2);
  CHECK(count("TestEcho", "ValidationException") == 1);
  CHECK(count("Throwing", "KMSInternalException") == 1);
  CHECK(count("unknown", "UnknownOperationException") == 1);
  CHECK(count("TestEcho", "MissingAuthenticationTokenException") == 1);
  const std::string text = f.registry.Render();
  CHECK(text.find("NoSuchOperationCanary") == std::string::npos);
  CHECK(text.find("kms_request_duration_seconds_count{door=\"aws\",operation=\"TestEcho\"} 4\n") !=
        std::string::npos);
}

// Reads everything written to `f` so far.

TEST_CASE("door: a 5xx answer is logged with the request id the client saw, others only on request",
          "[unit]") {
  for (const bool every : {false, true}) {
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    const log::Logger logger(f);
    DoorFixture fixture;
    AwsDoorConfig cfg = fixture.door->config();
    cfg.observers = {nullptr, &logger, every};
    OperationTable ops;
    ops.Add("Throwing", testing::AccountLevel([](const OperationContext&, const json::object&)
                                                   -> AwsResult<json::object> {
              throw std::runtime_error("secret-canary detail");
            }));
    ops.Add("Fine", testing::AccountLevel([](const OperationContext&, const json::object&)
                                               -> AwsResult<json::object> {
              return json::object{};
            }));
    AwsDoor door(cfg, fixture.keys, fixture.authz.authorizer, std::move(ops));
    auto call = [&](const char* op) {
      auto req = KmsRequest(op, "{}");
      req.remote_address = "192.0.2.7";
      SignRequest(req, At(kNow));
      return door.Handle(req);
    };
    const auto failed = call("Throwing");
    const auto fine = call("Fine");
    REQUIRE(failed.status == 500);
    REQUIRE(fine.status == 200);
    std::string id;
    for (const auto& [n, v] : failed.headers) {
      if (n == "x-amzn-RequestId") id = v;
    }
    const std::string text = ReadAll(f);
    INFO(text);
    CHECK(text.find(R"("level":"error","msg":"request failed","request_id":")" + id +
                    R"(","door":"aws","operation":"Throwing","outcome":"KMSInternalException",)"
                    R"("status":500,)") != std::string::npos);
    CHECK(text.find(R"("remote":"192.0.2.7"})") != std::string::npos);
    CHECK(text.find("canary") == std::string::npos);
    CHECK((text.find(R"("msg":"request","request_id")") != std::string::npos) == every);
    CHECK((text.find(R"("operation":"Fine","outcome":"ok","status":200)") != std::string::npos) ==
          every);
    std::fclose(f);
  }
}

TEST_CASE("door: signed requests over a real socket", "[unit][concurrency]") {
  DoorFixture f;
  auto server = http::Server::Create(
      {}, [&](const http::HttpRequest& r) { return f.door->Handle(r); }, AwsDoor::FaultResponse);
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  auto req = KmsRequest("TestEcho", R"({"Name":"net"})");
  SignRequest(req, At(kNow));
  std::string wire = "POST / HTTP/1.1\r\n";
  for (const auto& [n, v] : req.headers) wire += n + ": " + v + "\r\n";
  wire += "\r\n" + req.body;
  testing::RawClient c((*server)->port());
  for (int i = 0; i < 2; ++i) {  // keep-alive
    auto r = c.RoundTrip(wire);
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->HasHeader("x-amzn-RequestId: "));
    CHECK(json::parse(r->body).as_object().at("Name").as_string() == "net");
  }
}

}  // namespace
}  // namespace kms::api::aws
