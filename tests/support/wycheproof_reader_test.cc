// The Wycheproof reader (tests/support/wycheproof.h): shapes it accepts, shapes it refuses, and the
// NotFound that makes suites skip when ../shared/vectors is absent.
#include <catch2/catch.hpp>

#include "tests/support/wycheproof.h"

namespace kms::testing {
namespace {

TEST_CASE("Wycheproof reader keeps scalar fields of groups and tests", "[unit][wycheproof]") {
  auto f = ParseWycheproof("x.json", R"({"algorithm":"AES-GCM","numberOfTests":2,
    "testGroups":[{"ivSize":96,"type":"AeadTest","tests":[
      {"tcId":1,"comment":"c","flags":["Ktv","Other"],"key":"00ff","result":"valid"},
      {"tcId":2,"comment":"","flags":[],"key":"zz","result":"invalid"}]}]})");
  REQUIRE(f.has_value());
  CHECK(f->algorithm == "AES-GCM");
  CHECK(f->number_of_tests == 2);
  REQUIRE(f->groups.size() == 1);
  CHECK(f->groups[0].fields.Number("ivSize").value() == 96);
  CHECK(f->groups[0].fields.String("type").value() == "AeadTest");
  REQUIRE(f->groups[0].tests.size() == 2);
  const auto& t = f->groups[0].tests[0];
  CHECK(t.tc_id == 1);
  CHECK(t.result == "valid");
  CHECK(t.comment == "c");
  CHECK(t.fields.String("flags").value() == "Ktv,Other");
  CHECK(t.fields.Hex("key").value() == Bytes{0x00, 0xff});
  CHECK(f->groups[0].tests[1].fields.Hex("key").error().code() == StatusCode::kInvalidArgument);
  CHECK(t.fields.String("nope").error().code() == StatusCode::kNotFound);
  CHECK(t.fields.Number("key").error().code() == StatusCode::kNotFound);
}

TEST_CASE("Wycheproof reader refuses malformed files", "[unit][wycheproof]") {
  for (const char* text :
       {"", "{", "[]", R"({"testGroups":{}})", R"({"testGroups":[1]})",
        R"({"testGroups":[{"tests":{}}]})", R"({"testGroups":[{"tests":[{"tcId":1}]}]})",
        R"({"testGroups":[{"tests":[{"tcId":1,"result":"maybe"}]}]})",
        R"({"testGroups":[{"tests":[{"result":"valid"}]}]})"}) {
    INFO(text);
    auto f = ParseWycheproof("bad.json", text);
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("Wycheproof reader answers NotFound for a missing folder or file", "[unit][wycheproof]") {
  auto no_dir = LoadWycheproof("/nonexistent/kms-wycheproof", "aes_gcm_test.json");
  REQUIRE_FALSE(no_dir.has_value());
  CHECK(no_dir.error().code() == StatusCode::kNotFound);
  auto no_file = LoadWycheproof("/", "no_such_vectors_test.json");
  REQUIRE_FALSE(no_file.has_value());
  CHECK(no_file.error().code() == StatusCode::kNotFound);
}

TEST_CASE("Wycheproof tally prints run, passed, failed and skip reasons", "[unit][wycheproof]") {
  WycheproofTally t;
  t.total = 10;
  t.run = 6;
  t.passed = 5;
  t.acceptable = 1;
  t.acceptable_accepted = 1;
  t.skipped["too short"] = 3;
  CHECK(t.skipped_total() == 3);
  CHECK(
      t.Summary("f.json", "fake") ==
      "wycheproof f.json [fake]: 10 vectors, run 6, passed 5, failed 1, acceptable 1 (accepted 1), "
      "skipped 3 (3: too short)");
}

}  // namespace
}  // namespace kms::testing
