#include "base/status.h"

#include <catch2/catch.hpp>

namespace kms {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  KMS_ASSIGN_OR_RETURN(int h, Half(x));
  KMS_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  KMS_RETURN_IF_ERROR(Half(x));
  return Status::Ok();
}

TEST_CASE("StatusOr carries values and errors through the macros", "[unit][base]") {
  REQUIRE(Quarter(8).value() == 2);
  auto r = Quarter(6);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == StatusCode::kInvalidArgument);
  CHECK(r.error().message() == "odd");
  CHECK(CheckEven(4).ok());
  CHECK(CheckEven(3).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Status keeps reason and device code", "[unit][base]") {
  Status s(StatusCode::kUnavailable, "gone", Reason::kHandleStale, 0x30);
  CHECK(s.reason() == Reason::kHandleStale);
  CHECK(s.device_code() == 0x30);
  CHECK(s.ToString() == "UNAVAILABLE: gone");
  CHECK(Status().ToString() == "OK");
}

}  // namespace
}  // namespace kms
