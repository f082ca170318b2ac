// pkcs11::Session::GetAttributes against a broken module: the sizes a module announces are bounded
// before anything is allocated for them. The module here is a function table written for the test
// (C_GetAttributeValue answers what the test chooses), so no token is needed.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "pkcs11/module.h"
#include "pkcs11/session.h"

namespace kms::pkcs11 {
namespace {

// What the fake module answers for every attribute: a size query gets `announced`; a fetch gets
// `answered` bytes (or CKR_BUFFER_TOO_SMALL when they do not fit).
CK_ULONG g_announced = 0;
CK_ULONG g_answered = 0;

CK_RV Initialize(CK_VOID_PTR) { return CKR_OK; }
CK_RV Finalize(CK_VOID_PTR) { return CKR_OK; }
CK_RV OpenSession(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR session) {
  *session = 1;
  return CKR_OK;
}
CK_RV CloseSession(CK_SESSION_HANDLE) { return CKR_OK; }
CK_RV GetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR t, CK_ULONG count) {
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < count; ++i) {
    if (t[i].pValue == nullptr) {
      t[i].ulValueLen = g_announced;
    } else if (t[i].ulValueLen < g_announced) {
      t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_BUFFER_TOO_SMALL;
    } else {
      std::memset(t[i].pValue, 0xab, static_cast<std::size_t>(t[i].ulValueLen));
      t[i].ulValueLen = g_answered;
    }
  }
  return rv;
}

CK_FUNCTION_LIST* FakeModule() {
  static CK_FUNCTION_LIST list = [] {
    CK_FUNCTION_LIST l;
    std::memset(&l, 0, sizeof l);
    l.version = {2, 40};
    l.C_Initialize = Initialize;
    l.C_Finalize = Finalize;
    l.C_OpenSession = OpenSession;
    l.C_CloseSession = CloseSession;
    l.C_GetAttributeValue = GetAttributeValue;
    return l;
  }();
  return &list;
}

TEST_CASE("attribute reads / refuse a size no key attribute has, before allocating it",
          "[softhsm][pkcs11]") {
  auto module = Module::Adopt(FakeModule());
  REQUIRE(module.has_value());
  auto session = Session::Open(**module, 0, false);
  REQUIRE(session.has_value());
  const CK_ATTRIBUTE_TYPE types[] = {CKA_MODULUS};

  g_announced = CK_ULONG{1} << 40;  // a terabyte
  g_answered = g_announced;
  auto absurd = session->GetAttributes(7, types);
  REQUIRE_FALSE(absurd.has_value());
  CHECK(absurd.error().code() == StatusCode::kInternal);
  CHECK(absurd.error().message() ==
        "C_GetAttributeValue: the module announces 1099511627776 bytes for attribute 288, more "
        "than the 65536 any key attribute needs");

  g_announced = 65536;  // the bound itself is read
  g_answered = 65536;
  auto largest = session->GetAttributes(7, types);
  REQUIRE(largest.has_value());
  CHECK((*largest)[0].present);
  CHECK((*largest)[0].value.size() == 65536);

  g_announced = 100;  // over the 64 bytes of the first call, then more than announced
  g_answered = 101;
  auto longer = session->GetAttributes(7, types);
  REQUIRE_FALSE(longer.has_value());
  CHECK(longer.error().code() == StatusCode::kInternal);
  CHECK(longer.error().message() ==
        "C_GetAttributeValue: the module answered more bytes than it announced");
}

}  // namespace
}  // namespace kms::pkcs11
