// libFuzzer target for everything the AWS door parses from an unauthenticated peer: the SigV4
// Authorization header and canonicalisation (URI, query, header values), then the JSON 1.1 framing
// and the typed member reader. The input is split on NUL bytes into: Authorization value, request
// target, X-Amz-Target, body. Invariants checked: no crash or sanitizer report; every response is
// 200 or a JSON error object with a non-empty __type and a status of 400 (the test operation never
// fails internally).
//
// Build (Clang only): cmake -DCMAKE_CXX_COMPILER=clang++ -DKMS_BUILD_FUZZERS=ON ...; run:
//   build/tests/api/fuzz/aws_door_fuzz -max_total_time=60
#include <boost/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <stdlib.h>

#include <filesystem>

#include "api/aws/authorization.h"
#include "api/aws/door.h"
#include "api/aws/json_codec.h"
#include "api/aws/sigv4.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace {

using namespace kms;
using namespace kms::api;

aws::AwsResult<boost::json::object> ReadEverything(const aws::OperationContext&,
                                                  const aws::Authorization&,
                                                  boost::json::object& body) {
  aws::RequestReader r(body);
  (void)r.String("A", 1, 64);
  (void)r.Blob("B", 1, 4096);
  (void)r.SecretBlob("C", 1, 4096);
  (void)r.Integer("D");
  (void)r.Boolean("E");
  (void)r.StringMap("F");
  (void)r.StringList("G");
  (void)r.ObjectList("H");
  if (r.error()) return std::unexpected(*r.error());
  return boost::json::object();
}

// A real door needs a real authorizer: a key service and access control on the fake HSM and a
// SQLite store in a temporary folder. The fuzzed key is an administrator's, so "Op" (an
// account-level action) is allowed once the request gets through SigV4 and the framing.
struct Door {
  std::filesystem::path dir;
  std::unique_ptr<testing::FakeHsm> hsm = testing::NewFakeHsm();
  firmware::SystemClock clock;
  std::unique_ptr<firmware::store::MetadataStore> store;
  std::unique_ptr<firmware::KeyService> service;
  std::unique_ptr<firmware::authz::PrincipalRegistry> principals;
  std::unique_ptr<firmware::authz::AccessControl> access;
  std::unique_ptr<aws::KeyAuthorizer> authorizer;
  aws::InMemoryAccessKeyStore keys;
  std::unique_ptr<aws::AwsDoor> door;
  Door() {
    char tmpl[] = "/tmp/kms-door-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    firmware::store::SqliteStoreOptions options;
    options.path = (dir / "kms.db").string();
    auto opened = firmware::store::OpenSqliteStore(options);
    if (!opened) std::abort();
    store = std::move(*opened);
    auto made = firmware::KeyService::Open(*hsm, *store, clock);
    if (!made) std::abort();
    service = std::move(*made);
    principals = std::make_unique<firmware::authz::PrincipalRegistry>(*store, clock, "111122223333");
    access = std::make_unique<firmware::authz::AccessControl>(*hsm, *store, *principals, clock);
    authorizer = std::make_unique<aws::KeyAuthorizer>(*service, *access);
    keys.Add("AKIDEXAMPLE", SecretBytes::CopyFrom(AsBytes("secret")),
             "arn:aws:iam::111122223333:user/fuzz", /*administrator=*/true);
    aws::OperationTable ops;
    ops.Add("Op", aws::OperationSpec{aws::AccessRule{}, false, ReadEverything});
    aws::AwsDoorConfig cfg;
    cfg.clock = [] {
      return std::chrono::system_clock::time_point(std::chrono::sys_days{
          std::chrono::year(2026) / 11 / 28});
    };
    door = std::make_unique<aws::AwsDoor>(cfg, keys, *authorizer, std::move(ops));
  }
  ~Door() {
    door.reset();
    authorizer.reset();
    access.reset();
    principals.reset();
    service.reset();
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Door d;
  std::vector<std::string> parts(4);
  std::size_t part = 0;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && part < 3) {
      ++part;
      continue;
    }
    parts[part].push_back(static_cast<char>(data[i]));
  }
  // The canonicalisation primitives on raw input.
  (void)aws::sigv4::ParseAuthorization(parts[0]);
  (void)aws::sigv4::CanonicalUri(parts[1], true);
  (void)aws::sigv4::CanonicalQuery(parts[1]);
  (void)aws::sigv4::CanonicalHeaderValue(parts[2]);

  // A request that is correctly signed except where the fuzzer's bytes make it otherwise: half the
  // time the fuzzer's Authorization is used verbatim, half the time a real signature over its body.
  http::HttpRequest req;
  req.method = "POST";
  req.target = parts[1].empty() ? "/" : parts[1];
  req.headers = {{"Host", "h"},
                 {"X-Amz-Target", parts[2].empty() ? "TrentService.Op" : parts[2]},
                 {"Content-Type", "application/x-amz-json-1.1"},
                 {"X-Amz-Date", "20261128T000000Z"}};
  req.body = parts[3];
  if (size % 2 == 0) {
    req.headers.emplace_back("Authorization", parts[0]);
  } else {
    const std::vector<std::string> signed_headers = {"host", "x-amz-date", "x-amz-target"};
    auto creq = aws::sigv4::CanonicalRequest(req.method, req.Path(), req.Query(), req.headers,
                                             signed_headers,
                                             aws::sigv4::Sha256Hex(AsBytes(req.body)), true);
    if (creq) {
      const auto sts = aws::sigv4::StringToSign(
          "20261128T000000Z", "20261128/us-east-1/kms/aws4_request", *creq);
      const auto key = aws::sigv4::SigningKey(AsBytes("secret"), "20261128", "us-east-1", "kms");
      req.headers.emplace_back(
          "Authorization",
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
          "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" +
              aws::sigv4::SignatureHex(key, sts));
    }
  }
  const http::HttpResponse r = d.door->Handle(req);
  auto violated = [&] {
    std::fprintf(stderr, "invariant violated: status %u body %s\n", r.status, r.body.c_str());
    std::abort();
  };
  if (r.status != 200) {
    if (r.status != 400) violated();
    boost::system::error_code ec;
    const auto v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("__type") ||
        v.as_object().at("__type").as_string().empty()) {
      violated();
    }
  }
  return 0;
}
