// pkcs11/rv.h: every CK_RV has a name, a class and a Status; the Status keeps the CK_RV.
#include "pkcs11/rv.h"

#include <catch2/catch.hpp>

namespace kms::pkcs11 {
namespace {

TEST_CASE("every CKR_ of PKCS#11 v2.40 has a name and a class", "[softhsm][pkcs11]") {
  // A sample across the table: the exact name comes back and nothing falls into the unknown branch.
  const std::pair<CK_RV, const char*> known[] = {
      {CKR_OK, "CKR_OK"},
      {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
      {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
      {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
      {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
      {CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED"},
      {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
      {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
  };
  for (const auto& [rv, name] : known) CHECK(RvName(rv) == name);
  for (CK_RV rv = 1; rv < 0x300; ++rv) {
    const std::string name = RvName(rv);
    if (name.rfind("CKR_UNKNOWN", 0) == 0) {
      CHECK(ClassOfRv(rv) == RvClass::kFatal);
    } else {
      CHECK(ClassOfRv(rv) != RvClass::kNone);
    }
  }
}

TEST_CASE("classes and statuses of the codes the HAL acts on", "[softhsm][pkcs11]") {
  struct Row {
    CK_RV rv;
    RvClass cls;
    StatusCode code;
    Reason reason;
  };
  const Row rows[] = {
      {CKR_DEVICE_ERROR, RvClass::kDevice, StatusCode::kUnavailable, Reason::kNone},
      {CKR_DEVICE_REMOVED, RvClass::kDevice, StatusCode::kUnavailable, Reason::kNone},
      {CKR_TOKEN_NOT_PRESENT, RvClass::kDevice, StatusCode::kUnavailable, Reason::kNone},
      {CKR_CRYPTOKI_NOT_INITIALIZED, RvClass::kDevice, StatusCode::kUnavailable, Reason::kNone},
      {CKR_SESSION_HANDLE_INVALID, RvClass::kSessionLost, StatusCode::kUnavailable, Reason::kNone},
      {CKR_SESSION_CLOSED, RvClass::kSessionLost, StatusCode::kUnavailable, Reason::kNone},
      {CKR_HOST_MEMORY, RvClass::kRetry, StatusCode::kUnavailable, Reason::kNone},
      {CKR_OBJECT_HANDLE_INVALID, RvClass::kObjectLost, StatusCode::kUnavailable,
       Reason::kHandleStale},
      {CKR_PIN_INCORRECT, RvClass::kAuth, StatusCode::kUnauthenticated, Reason::kNone},
      {CKR_USER_NOT_LOGGED_IN, RvClass::kAuth, StatusCode::kUnauthenticated, Reason::kNone},
      {CKR_SIGNATURE_INVALID, RvClass::kInvalidData, StatusCode::kInvalidArgument, Reason::kNone},
      {CKR_KEY_NOT_WRAPPABLE, RvClass::kRefused, StatusCode::kFailedPrecondition,
       Reason::kPolicyViolation},
      {CKR_ATTRIBUTE_SENSITIVE, RvClass::kRefused, StatusCode::kFailedPrecondition,
       Reason::kPolicyViolation},
      {CKR_MECHANISM_INVALID, RvClass::kUnsupported, StatusCode::kUnimplemented,
       Reason::kMechanismUnsupported},
      {CKR_ARGUMENTS_BAD, RvClass::kCallerBug, StatusCode::kInternal, Reason::kNone},
      {CKR_TEMPLATE_INCONSISTENT, RvClass::kCallerBug, StatusCode::kInternal, Reason::kNone},
      {CKR_GENERAL_ERROR, RvClass::kFatal, StatusCode::kInternal, Reason::kNone},
  };
  for (const Row& row : rows) {
    INFO(RvName(row.rv));
    CHECK(ClassOfRv(row.rv) == row.cls);
    Status s = RvToStatus(row.rv, "C_Encrypt");
    CHECK(s.code() == row.code);
    CHECK(s.reason() == row.reason);
    CHECK(s.device_code() == row.rv);
    CHECK(s.message() == "C_Encrypt: " + RvName(row.rv));
    CHECK(ClassOf(s) == row.cls);
    CHECK(RvOf(s) == row.rv);
  }
}

TEST_CASE("CKR_OK / unknown and vendor codes", "[softhsm][pkcs11]") {
  CHECK(RvToStatus(CKR_OK, "C_Login").ok());
  CHECK(RvName(0x12345UL) == "CKR_UNKNOWN(0x12345)");
  CHECK(RvName(CKR_VENDOR_DEFINED + 7) == "CKR_VENDOR_DEFINED+0x7");
  Status vendor = RvToStatus(CKR_VENDOR_DEFINED + 7, "C_Sign");
  CHECK(vendor.code() == StatusCode::kInternal);
  CHECK(ClassOf(vendor) == RvClass::kFatal);
  // A Status that did not come from a module has no class.
  CHECK(ClassOf(InvalidArgumentError("x")) == RvClass::kNone);
  CHECK(ClassOf(Status()) == RvClass::kNone);
  CHECK(RvClassName(RvClass::kSessionLost) == "session lost");
}

}  // namespace
}  // namespace kms::pkcs11
