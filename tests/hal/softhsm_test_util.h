// Helpers for the SoftHSM2 suites: unwrapping StatusOr in tests, and a raw Cryptoki session on the
// fixture's module to look at the objects the HAL made from outside the HAL.
#ifndef KMS_TESTS_HAL_SOFTHSM_TEST_UTIL_H_
#define KMS_TESTS_HAL_SOFTHSM_TEST_UTIL_H_

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "pkcs11/pkcs11.h"
#include "pkcs11/rv.h"
#include "tests/support/softhsm_fixture.h"

namespace Catch {
template <>
struct StringMaker<kms::Status> {
  static std::string convert(const kms::Status& s) { return s.ToString(); }
};
}  // namespace Catch

namespace kms::testing {

template <typename T>
T Must(StatusOr<T> v) {
  INFO((v.has_value() ? std::string("ok") : v.error().ToString()));
  REQUIRE(v.has_value());
  return std::move(*v);
}
inline void MustOk(const Status& s) {
  INFO(s.ToString());
  REQUIRE(s.ok());
}

inline std::unique_ptr<SoftHsmFixture> MakeFixture(SoftHsmFixtureOptions options = {}) {
  return Must(SoftHsmFixture::Create(options));
}

// A session opened directly on the real module (bypassing the HAL and any fault injection). The
// module must already be initialised and logged in (an open Hsm does both); session objects of the
// HAL are visible here because they belong to the same process.
class RawSession {
 public:
  explicit RawSession(SoftHsmFixture& fixture) : f_(fixture.real_functions()) {
    CK_SLOT_ID slot = Must(fixture.slot());
    REQUIRE(f_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h_) ==
            CKR_OK);
  }
  ~RawSession() { (void)f_->C_CloseSession(h_); }
  RawSession(const RawSession&) = delete;
  RawSession& operator=(const RawSession&) = delete;

  CK_FUNCTION_LIST* f() const { return f_; }
  CK_SESSION_HANDLE h() const { return h_; }

  std::vector<CK_OBJECT_HANDLE> Find(std::vector<CK_ATTRIBUTE> query) {
    REQUIRE(f_->C_FindObjectsInit(h_, query.data(), query.size()) == CKR_OK);
    std::vector<CK_OBJECT_HANDLE> out(1024);
    CK_ULONG n = 0;
    REQUIRE(f_->C_FindObjects(h_, out.data(), out.size(), &n) == CKR_OK);
    REQUIRE(f_->C_FindObjectsFinal(h_) == CKR_OK);
    out.resize(n);
    return out;
  }
  CK_OBJECT_HANDLE DomainKey(const std::string& label) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    std::vector<CK_ATTRIBUTE> q = {{CKA_CLASS, &cls, sizeof(cls)},
                                   {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    auto found = Find(q);
    REQUIRE(found.size() == 1);
    return found[0];
  }
  // CK_TRUE/CK_FALSE, or -1 when the attribute is unavailable for the object.
  int Bool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a{type, &v, sizeof(v)};
    if (f_->C_GetAttributeValue(h_, o, &a, 1) != CKR_OK) return -1;
    return v == CK_TRUE ? 1 : 0;
  }
  CK_ULONG Ulong(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a{type, &v, sizeof(v)};
    REQUIRE(f_->C_GetAttributeValue(h_, o, &a, 1) == CKR_OK);
    return v;
  }
  CK_RV SetBool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, bool value) {
    CK_BBOOL v = value ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE a{type, &v, sizeof(v)};
    return f_->C_SetAttributeValue(h_, o, &a, 1);
  }

 private:
  CK_FUNCTION_LIST* f_;
  CK_SESSION_HANDLE h_ = CK_INVALID_HANDLE;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_HAL_SOFTHSM_TEST_UTIL_H_
