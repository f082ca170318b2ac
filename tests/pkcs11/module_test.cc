// pkcs11/module.h and session.h against a real SoftHSM2 token: loading, token lookup, RAII
// sessions, login semantics, owned templates and attribute reads.
#include "pkcs11/module.h"

#include <algorithm>
#include <catch2/catch.hpp>

#include "pkcs11/attributes.h"
#include "pkcs11/rv.h"
#include "pkcs11/session.h"
#include "pkcs11/token.h"
#include "tests/hal/softhsm_test_util.h"

namespace kms::pkcs11 {
namespace {

using kms::testing::FaultInjector;
using kms::testing::MakeFixture;
using kms::testing::Must;
using kms::testing::MustOk;

TEST_CASE("loading a module that is not there / or not a module / fails loudly",
          "[softhsm][pkcs11]") {
  auto missing = Library::Open("/nonexistent/module.so");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code() == StatusCode::kFailedPrecondition);
  auto not_module = Module::Load("libc.so.6");
  REQUIRE_FALSE(not_module.has_value());
  CHECK(not_module.error() ==
        FailedPreconditionError("not a PKCS#11 module (no C_GetFunctionList): libc.so.6"));
  CHECK(Module::Adopt(nullptr).error().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("token lookup by label and serial", "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.open_hsm = false});
  auto module = Must(Module::Adopt(fx->real_functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  CHECK(Must(module->FindToken(fx->token().token_label, fx->token().token_serial)) == slot);
  CHECK(module->FindToken("absent").error() == NotFoundError("PKCS#11 token 'absent' not found"));
  CHECK(module->FindToken(fx->token().token_label, "bad-serial").error() ==
        NotFoundError("PKCS#11 token '" + fx->token().token_label +
                      "' with serial 'bad-serial' not found"));
  auto mechanisms = Must(module->Mechanisms(slot));
  CHECK(std::find(mechanisms.begin(), mechanisms.end(), CKM_AES_KEY_WRAP_PAD) != mechanisms.end());
  CK_MECHANISM_INFO info = Must(module->MechanismInfo(slot, CKM_AES_GCM));
  CHECK((info.flags & CKF_ENCRYPT) != 0);
  CHECK(module->MechanismInfo(slot, 0x7FFFFFF0UL).error().reason() ==
        Reason::kMechanismUnsupported);
}

TEST_CASE("initialising twice in one process is refused by the module", "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.open_hsm = false});
  auto first = Must(Module::Adopt(fx->real_functions()));
  auto second = Module::Adopt(fx->real_functions());
  REQUIRE_FALSE(second.has_value());
  CHECK(RvOf(second.error()) == CKR_CRYPTOKI_ALREADY_INITIALIZED);
  // Reinitialize works and moves the generation on.
  const std::uint64_t g = first->generation();
  MustOk(first->Reinitialize());
  CHECK(first->generation() == g + 1);
}

TEST_CASE("sessions close with their owner / never twice / never after re-initialisation",
          "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.inject_faults = true, .open_hsm = false});
  FaultInjector& faults = *fx->faults();
  auto module = Must(Module::Adopt(fx->functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  {
    Session a = Must(Session::Open(*module, slot));
    CHECK(faults.open_sessions() == 1);
    Session b = std::move(a);  // move: one owner, one close
    CHECK_FALSE(a.is_open());
    CHECK(b.is_open());
    Session c = Must(Session::Open(*module, slot, /*read_write=*/false));
    CHECK(faults.open_sessions() == 2);
    c = std::move(b);  // the old c closes
    CHECK(faults.open_sessions() == 1);
  }
  CHECK(faults.open_sessions() == 0);
  CHECK(faults.calls("C_CloseSession") == 2);
  {
    Session stale = Must(Session::Open(*module, slot));
    MustOk(module->Reinitialize());
    CHECK(stale.stale());
  }  // its number died with the old generation: no C_CloseSession for it
  CHECK(faults.calls("C_CloseSession") == 2);
}

TEST_CASE("login is per token: already logged in is success / a wrong PIN is Unauthenticated",
          "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.open_hsm = false});
  auto module = Must(Module::Adopt(fx->real_functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  Session a = Must(Session::Open(*module, slot));
  CHECK(Login::User(a, SecretBytes::CopyFrom(AsBytes("wrong"))) ==
        Status(StatusCode::kUnauthenticated, "C_Login: CKR_PIN_INCORRECT"));
  MustOk(Login::User(a, fx->token().user_pin));
  MustOk(Login::User(a, fx->token().user_pin));  // CKR_USER_ALREADY_LOGGED_IN
  // A session opened later shares the login.
  Session b = Must(Session::Open(*module, slot));
  CHECK(Must(b.Info()).state == CKS_RW_USER_FUNCTIONS);
  // Closing a session keeps the others logged in.
  MustOk(a.Close());
  CHECK(Must(b.Info()).state == CKS_RW_USER_FUNCTIONS);
  // Logout is token-wide: b loses it too.
  MustOk(Login::Logout(b));
  CHECK(Must(b.Info()).state == CKS_RW_PUBLIC_SESSION);
}

TEST_CASE("templates own their buffers, attributes read back / sensitive ones are absent",
          "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.open_hsm = false});
  auto module = Must(Module::Adopt(fx->real_functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  Session s = Must(Session::Open(*module, slot));
  MustOk(Login::User(s, fx->token().user_pin));
  CK_MECHANISM_TYPE allowed[] = {CKM_AES_GCM, CKM_AES_CBC};
  AttributeTemplate t;
  {
    std::string label = "temporary label";  // the template keeps its own copy
    t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Ulong(CKA_VALUE_LEN, 32)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_ENCRYPT, true)
        .String(CKA_LABEL, label)
        .Mechanisms(CKA_ALLOWED_MECHANISMS, allowed);
  }
  CHECK(t.size() == 8);
  CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = Must(s.GenerateKey(gen, t));
  const CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_SENSITIVE,          CKA_VALUE_LEN,
                                     CKA_VALUE, CKA_ALLOWED_MECHANISMS, CKA_MODULUS};
  auto values = Must(s.GetAttributes(key, types));
  CHECK(AsStringView(values[0].value.ExposeSecret()) == "temporary label");
  CHECK(values[1].AsBool() == true);
  CHECK(values[2].AsUlong() == 32UL);
  CHECK_FALSE(values[3].present);  // sensitive
  std::vector<CK_MECHANISM_TYPE> mechanisms =
      values[4].AsMechanisms();  // a set: order is the module's
  std::sort(mechanisms.begin(), mechanisms.end());
  CHECK(mechanisms == std::vector<CK_MECHANISM_TYPE>{CKM_AES_CBC, CKM_AES_GCM});
  CHECK_FALSE(values[5].present);  // not an attribute of a secret key
  CHECK(s.GetAttributeStrict(key, CKA_VALUE).reason() == Reason::kPolicyViolation);
  CHECK(RvOf(s.GetAttributeStrict(key, CKA_VALUE)) == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(s.GetAttribute(key, CKA_VALUE).error().code() == StatusCode::kFailedPrecondition);

  AttributeTemplate find;
  find.String(CKA_LABEL, "temporary label");
  CHECK(Must(s.FindObjects(find)) == std::vector<CK_OBJECT_HANDLE>{key});
  { ScopedObject scoped(s, key); }
  CHECK(Must(s.FindObjects(find)).empty());
  CHECK(RvOf(s.DestroyObject(key)) == CKR_OBJECT_HANDLE_INVALID);
}

TEST_CASE("single-part operations size their output (CKR_BUFFER_TOO_SMALL is retried)",
          "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.open_hsm = false});
  auto module = Must(Module::Adopt(fx->real_functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  Session s = Must(Session::Open(*module, slot));
  MustOk(Login::User(s, fx->token().user_pin));
  AttributeTemplate t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_SIGN, true)
      .Bool(CKA_VERIFY, true);
  CK_MECHANISM gen{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = Must(s.GenerateKey(gen, t));
  CK_MECHANISM hmac{CKM_SHA256_HMAC, nullptr, 0};
  Bytes mac = Must(s.Sign(hmac, key, AsBytes("data"), /*capacity=*/4));  // too small on purpose
  CHECK(mac.size() == 32);
  MustOk(s.Verify(hmac, key, AsBytes("data"), mac));
  mac[0] ^= 1;
  CHECK(RvOf(s.Verify(hmac, key, AsBytes("data"), mac)) == CKR_SIGNATURE_INVALID);
  CHECK(Must(s.GenerateRandom(0)).empty());
  CHECK(Must(s.GenerateRandom(48)).size() == 48);
}

TEST_CASE("the fault injector fails exactly the planned call and counts every call",
          "[softhsm][pkcs11]") {
  auto fx = MakeFixture({.inject_faults = true, .open_hsm = false});
  FaultInjector& faults = *fx->faults();
  auto module = Must(Module::Adopt(fx->functions()));
  CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
  Session s = Must(Session::Open(*module, slot));
  const std::uint64_t before = faults.calls("C_GenerateRandom");
  faults.FailNthCall(3, CKR_DEVICE_ERROR, "C_GenerateRandom");
  CHECK(s.GenerateRandom(8).has_value());
  CHECK(s.GenerateRandom(8).has_value());
  CHECK(s.GenerateRandom(8).error() ==
        Status(StatusCode::kUnavailable, "C_GenerateRandom: CKR_DEVICE_ERROR"));
  CHECK(s.GenerateRandom(8).has_value());  // once only
  CHECK(faults.calls("C_GenerateRandom") == before + 4);
  CHECK(faults.injected() == 1);
  // Any function: the very next call fails, whatever it is.
  faults.FailNthCall(1, CKR_HOST_MEMORY);
  CHECK(RvOf(StatusOf(s.Info())) == CKR_HOST_MEMORY);
  faults.FailAlways(CKR_TOKEN_NOT_PRESENT, "C_GetSessionInfo");
  CHECK(RvOf(StatusOf(s.Info())) == CKR_TOKEN_NOT_PRESENT);
  CHECK(RvOf(StatusOf(s.Info())) == CKR_TOKEN_NOT_PRESENT);
  CHECK(s.GenerateRandom(1).has_value());
  faults.Clear();
  CHECK(s.Info().has_value());
  CHECK(faults.injected() == 4);
  CHECK(faults.open_sessions() == 1);
}

}  // namespace
}  // namespace kms::pkcs11
