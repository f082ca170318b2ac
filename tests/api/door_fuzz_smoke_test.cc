// Runs the libFuzzer entry point of tests/api/fuzz/aws_door_fuzz.cc over deterministic mutations of
// seed requests, so the door's parsers get random input in every build (g++ cannot build the real
// libFuzzer target; Clang builds it with -DKMS_BUILD_FUZZERS=ON). A violated invariant aborts the
// process, which fails this test.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::string Seed(const std::string& auth, const std::string& target, const std::string& op,
                 const std::string& body) {
  std::string s = auth;
  s.push_back('\0');
  s += target;
  s.push_back('\0');
  s += op;
  s.push_back('\0');
  s += body;
  return s;
}

TEST_CASE("door fuzz smoke: 30000 mutated requests keep the door's invariants", "[unit]") {
  const std::vector<std::string> seeds = {
      Seed("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request, "
           "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + std::string(64, 'a'),
           "/", "TrentService.Op", R"({"A":"x","B":"aGVsbG8=","D":5,"E":true,"F":{"k":"v"}})"),
      Seed("", "/./a/../b?x=1&y=%41", "TrentService.Op",
           R"({"G":["a","b"],"H":[{"k":1}],"C":"AAAA","D":-1})"),
      Seed("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;, Signature=", "/%zz%",
           "TrentService.Nope", "[1,2,{\"a\":null}]"),
      Seed("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/kms/aws4_request,"
           "SignedHeaders=host,Signature=" + std::string(64, '0'),
           "//", "TrentService.Op", R"({"A":)"),
  };
  std::mt19937_64 rng(20261128);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  std::size_t runs = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string input = seeds[pick(seeds.size())];
    const std::size_t mutations = 1 + pick(8);
    for (std::size_t m = 0; m < mutations; ++m) {
      switch (pick(5)) {
        case 0:  // flip a byte
          if (!input.empty()) input[pick(input.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:  // insert a random byte
          input.insert(input.begin() + static_cast<std::ptrdiff_t>(pick(input.size() + 1)),
                       static_cast<char>(rng()));
          break;
        case 2:  // erase a range
          if (!input.empty()) {
            const std::size_t at = pick(input.size());
            input.erase(at, pick(16) + 1);
          }
          break;
        case 3:  // duplicate a range (deep nesting, repeated members)
          if (!input.empty()) {
            const std::size_t at = pick(input.size());
            input.insert(at, input.substr(at, pick(32) + 1));
          }
          break;
        default:  // splice in a JSON or URI metacharacter
          input.insert(input.begin() + static_cast<std::ptrdiff_t>(pick(input.size() + 1)),
                       "{}[]\",:%/.=&;\\\0"[pick(15)]);
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
    ++runs;
  }
  CHECK(runs == 30000);  // reached only if no input aborted the process
}

}  // namespace
