// The misuse matrix on a real SoftHSM2 token: what the token and the HAL refuse.
#include <catch2/catch.hpp>
#include <set>

#include "hal/hsm.h"
#include "pkcs11/module.h"
#include "pkcs11/session.h"
#include "pkcs11/token.h"
#include "tests/hal/softhsm_test_util.h"

namespace kms::testing {
namespace {

using hal::KeyAlgorithm;
using hal::KeyPurpose;

const Status kInvalidCiphertext =
    InvalidArgumentError("invalid ciphertext", Reason::kInvalidCiphertext);

TEST_CASE("the domain key's value cannot be read", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  RawSession raw(*fx);
  CK_OBJECT_HANDLE dk = raw.DomainKey(fx->token().domain_key_label);
  CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
  CHECK(raw.f()->C_GetAttributeValue(raw.h(), dk, &value, 1) == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(value.ulValueLen == CK_UNAVAILABLE_INFORMATION);
}

TEST_CASE("the domain key cannot be wrapped by an untrusted user key", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  RawSession raw(*fx);
  CK_OBJECT_HANDLE dk = raw.DomainKey(fx->token().domain_key_label);
  // A user-made KEK that may wrap (not CKA_TRUSTED: only the SO can set that).
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &type, sizeof(type)},
                      {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
                      {CKA_WRAP, &yes, sizeof(yes)},      {CKA_DECRYPT, &yes, sizeof(yes)}};
  CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
  REQUIRE(raw.f()->C_GenerateKey(raw.h(), &gen, t, 6, &kek) == CKR_OK);
  for (CK_MECHANISM_TYPE m : {CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP, CKM_AES_CBC}) {
    INFO("mechanism " << m);
    CK_BYTE iv[16] = {};
    CK_MECHANISM mech{m, m == CKM_AES_CBC ? iv : nullptr, m == CKM_AES_CBC ? 16UL : 0UL};
    CK_BYTE out[256];
    CK_ULONG out_len = sizeof(out);
    CHECK(raw.f()->C_WrapKey(raw.h(), &mech, kek, dk, out, &out_len) == CKR_KEY_NOT_WRAPPABLE);
  }
}

TEST_CASE("the domain key's attributes cannot be loosened", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  RawSession raw(*fx);
  CK_OBJECT_HANDLE dk = raw.DomainKey(fx->token().domain_key_label);
  for (auto [attr, value] :
       std::vector<std::pair<CK_ATTRIBUTE_TYPE, bool>>{{CKA_DECRYPT, true},
                                                       {CKA_ENCRYPT, true},
                                                       {CKA_SIGN, true},
                                                       {CKA_DERIVE, true},
                                                       {CKA_SENSITIVE, false},
                                                       {CKA_WRAP_WITH_TRUSTED, false},
                                                       {CKA_MODIFIABLE, true},
                                                       {CKA_EXTRACTABLE, true}}) {
    INFO("attribute " << attr);
    CK_RV rv = raw.SetBool(dk, attr, value);
    CHECK((rv == CKR_ACTION_PROHIBITED || rv == CKR_ATTRIBUTE_READ_ONLY));
  }
  // Copying cannot make a looser twin either (CKA_COPYABLE = FALSE).
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE loosen{CKA_DECRYPT, &yes, sizeof(yes)};
  CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
  CK_RV rv = raw.f()->C_CopyObject(raw.h(), dk, &loosen, 1, &copy);
  CHECK((rv == CKR_ACTION_PROHIBITED || rv == CKR_ATTRIBUTE_READ_ONLY));
  CHECK(raw.Bool(dk, CKA_DECRYPT) == 0);
  CHECK(raw.Bool(dk, CKA_SENSITIVE) == 1);
}

TEST_CASE("GCM with an 8- or 16-byte IV or a 12-byte tag is refused by the HAL",
          "[softhsm][misuse]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  auto c = Must(hsm.EncryptAesGcm(key, AsBytes("secret"), AsBytes("aad")));
  REQUIRE(c.iv.size() == 12);
  REQUIRE(c.tag.size() == 16);
  const Status bad_iv = InvalidArgumentError("AES-GCM IV must be 12 bytes");
  const Status bad_tag = InvalidArgumentError("AES-GCM tag must be 16 bytes");
  Bytes iv8(c.iv.begin(), c.iv.begin() + 8);
  Bytes iv16 = c.iv;
  iv16.resize(16);
  Bytes tag12(c.tag.begin(), c.tag.begin() + 12);
  CHECK(hsm.DecryptAesGcm(key, iv8, c.ciphertext, c.tag, AsBytes("aad")).error() == bad_iv);
  CHECK(hsm.DecryptAesGcm(key, iv16, c.ciphertext, c.tag, AsBytes("aad")).error() == bad_iv);
  CHECK(hsm.DecryptAesGcm(key, {}, c.ciphertext, c.tag, AsBytes("aad")).error() == bad_iv);
  CHECK(hsm.DecryptAesGcm(key, c.iv, c.ciphertext, tag12, AsBytes("aad")).error() == bad_tag);
  CHECK(hsm.DecryptAesGcm(key, c.iv, c.ciphertext, c.tag, AsBytes("aad")).has_value());
}

TEST_CASE("a tampered ciphertext / tag / IV or AAD fails cleanly", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  auto key = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  auto c = Must(hsm.EncryptAesGcm(key, AsBytes("attack at dawn"), AsBytes("ctx")));
  auto flip = [](Bytes b, std::size_t i) {
    b[i] ^= 0x01;
    return b;
  };
  CHECK(hsm.DecryptAesGcm(key, c.iv, flip(c.ciphertext, 0), c.tag, AsBytes("ctx")).error() ==
        kInvalidCiphertext);
  CHECK(hsm.DecryptAesGcm(key, c.iv, c.ciphertext, flip(c.tag, 15), AsBytes("ctx")).error() ==
        kInvalidCiphertext);
  CHECK(hsm.DecryptAesGcm(key, flip(c.iv, 3), c.ciphertext, c.tag, AsBytes("ctx")).error() ==
        kInvalidCiphertext);
  CHECK(hsm.DecryptAesGcm(key, c.iv, c.ciphertext, c.tag, AsBytes("cty")).error() ==
        kInvalidCiphertext);
  Bytes truncated(c.ciphertext.begin(), c.ciphertext.end() - 1);
  CHECK(hsm.DecryptAesGcm(key, c.iv, truncated, c.tag, AsBytes("ctx")).error() ==
        kInvalidCiphertext);
  // Another key of the same kind cannot open it either.
  auto other = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  CHECK(hsm.DecryptAesGcm(other, c.iv, c.ciphertext, c.tag, AsBytes("ctx")).error() ==
        kInvalidCiphertext);
  // And the real one still works after all those failures.
  auto p = Must(hsm.DecryptAesGcm(key, c.iv, c.ciphertext, c.tag, AsBytes("ctx")));
  CHECK(AsStringView(p.ExposeSecret()) == "attack at dawn");
}

TEST_CASE("a tampered wrapped blob fails cleanly for every key type", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  const std::pair<KeyAlgorithm, KeyPurpose> kinds[] = {
      {KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt},
      {KeyAlgorithm::kHmacSha384, KeyPurpose::kMac},
      {KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify},
      {KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify},
  };
  for (auto [algorithm, purpose] : kinds) {
    INFO(hal::KeyAlgorithmName(algorithm));
    auto key = Must(hsm.GenerateKey(algorithm, purpose));
    hal::WrappedKey w = Must(hsm.WrapKey(key));
    for (std::size_t i : {std::size_t{0}, w.wrapped.size() / 2, w.wrapped.size() - 1}) {
      hal::WrappedKey bad = w;
      bad.wrapped[i] ^= 0x80;
      CHECK(hsm.UnwrapKey(bad).error() == kInvalidCiphertext);
    }
    hal::WrappedKey shorter = w;
    shorter.wrapped.resize(w.wrapped.size() - 8);
    CHECK(hsm.UnwrapKey(shorter).error() == kInvalidCiphertext);
    hal::WrappedKey empty = w;
    empty.wrapped.clear();
    CHECK(hsm.UnwrapKey(empty).error() == kInvalidCiphertext);
    CHECK(hsm.UnwrapKey(w).has_value());
  }
  // A blob presented as another kind of key does not load.
  auto aes = Must(hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt));
  hal::WrappedKey as_hmac = Must(hsm.WrapKey(aes));
  as_hmac.algorithm = KeyAlgorithm::kHmacSha512;
  as_hmac.purpose = KeyPurpose::kMac;
  CHECK(hsm.UnwrapKey(as_hmac).error() == kInvalidCiphertext);
  // The public key beside an asymmetric blob must belong to the private key inside it.
  auto ec1 = Must(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
  auto ec2 = Must(hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify));
  hal::WrappedKey swapped = Must(hsm.WrapKey(ec1));
  swapped.public_key_der = Must(hsm.PublicKeyDer(ec2));
  CHECK(hsm.UnwrapKey(swapped).error() == kInvalidCiphertext);
  auto rsa1 = Must(hsm.GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify));
  auto rsa2 = Must(hsm.GenerateKey(KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify));
  hal::WrappedKey swapped_rsa = Must(hsm.WrapKey(rsa1));
  swapped_rsa.public_key_der = Must(hsm.PublicKeyDer(rsa2));
  CHECK(hsm.UnwrapKey(swapped_rsa).error() == kInvalidCiphertext);
}

TEST_CASE("no key created by the HAL can both wrap and decrypt", "[softhsm][misuse]") {
  auto fx = MakeFixture();
  hal::Hsm& hsm = fx->hsm();
  std::vector<hal::KeyHandle> keep;
  const std::pair<KeyAlgorithm, KeyPurpose> kinds[] = {
      {KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt},
      {KeyAlgorithm::kHmacSha224, KeyPurpose::kMac},
      {KeyAlgorithm::kHmacSha512, KeyPurpose::kMac},
      {KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify},
      {KeyAlgorithm::kEcSecp256k1, KeyPurpose::kSignVerify},
      {KeyAlgorithm::kRsa2048, KeyPurpose::kEncryptDecrypt},
      {KeyAlgorithm::kRsa2048, KeyPurpose::kSignVerify},
  };
  for (auto [algorithm, purpose] : kinds) {
    auto key = Must(hsm.GenerateKey(algorithm, purpose));
    keep.push_back(Must(hsm.UnwrapKey(Must(hsm.WrapKey(key)))));
    keep.push_back(key);
  }
  SecretBytes material(32);
  keep.push_back(Must(hsm.ImportKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt, material)));
  keep.push_back(Must(hsm.ImportPublicKey(KeyAlgorithm::kEcP384, KeyPurpose::kSignVerify,
                                          Must(hsm.PublicKeyDer(keep[6])))));

  RawSession raw(*fx);
  CK_OBJECT_HANDLE dk = raw.DomainKey(fx->token().domain_key_label);
  std::size_t checked = 0;
  for (CK_OBJECT_HANDLE o : raw.Find({})) {
    const CK_ULONG cls = raw.Ulong(o, CKA_CLASS);
    if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY && cls != CKO_PUBLIC_KEY) continue;
    INFO("object " << o << " class " << cls);
    ++checked;
    const bool wrap = raw.Bool(o, CKA_WRAP) == 1, unwrap = raw.Bool(o, CKA_UNWRAP) == 1;
    const bool decrypt = raw.Bool(o, CKA_DECRYPT) == 1, encrypt = raw.Bool(o, CKA_ENCRYPT) == 1;
    CHECK_FALSE((wrap && decrypt));
    CHECK_FALSE((unwrap && encrypt));
    if (o == dk) continue;
    // Every other key is a session object that cannot wrap, unwrap or derive.
    CHECK(raw.Bool(o, CKA_TOKEN) == 0);
    CHECK_FALSE(wrap);
    CHECK_FALSE(unwrap);
    CHECK(raw.Bool(o, CKA_MODIFIABLE) == 0);  // unwrapped keys included
    CHECK(raw.Bool(o, CKA_DERIVE) != 1);
    if (cls != CKO_PUBLIC_KEY) {
      CHECK(raw.Bool(o, CKA_SENSITIVE) == 1);
      CHECK(raw.Bool(o, CKA_PRIVATE) == 1);
    }
  }
  // DK; 3 symmetric + 4 asymmetric (2 objects each) generated, the same unwrapped; 2 imports.
  CHECK(checked == 1 + 11 + 11 + 1 + 1);
}

TEST_CASE("the HAL refuses a domain key that breaks the policy", "[softhsm][misuse]") {
  auto fx = MakeFixture({.open_hsm = false});
  {
    // As the user, make look-alike domain keys that break one rule each.
    auto module = Must(pkcs11::Module::Adopt(fx->real_functions()));
    CK_SLOT_ID slot = Must(module->FindToken(fx->token().token_label));
    auto session = Must(pkcs11::Session::Open(*module, slot));
    MustOk(pkcs11::Login::User(session, fx->token().user_pin));
    CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
    static constexpr CK_MECHANISM_TYPE kKwp[] = {CKM_AES_KEY_WRAP_PAD};
    auto make = [&](const std::string& label, auto&& adjust) {
      pkcs11::AttributeTemplate t;
      t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
          .Ulong(CKA_KEY_TYPE, CKK_AES)
          .Ulong(CKA_VALUE_LEN, 32)
          .Bool(CKA_TOKEN, true)
          .Bool(CKA_PRIVATE, true)
          .Bool(CKA_SENSITIVE, true)
          .Bool(CKA_COPYABLE, false)
          .Bool(CKA_SIGN, false)
          .Bool(CKA_VERIFY, false)
          .Bool(CKA_DERIVE, false)
          .Mechanisms(CKA_ALLOWED_MECHANISMS, kKwp)
          .String(CKA_LABEL, label);
      adjust(t);
      MustOk(StatusOf(session.GenerateKey(gen, t)));
    };
    make("dk-decrypt", [](pkcs11::AttributeTemplate& t) {
      t.Bool(CKA_EXTRACTABLE, false)
          .Bool(CKA_WRAP, true)
          .Bool(CKA_UNWRAP, true)
          .Bool(CKA_DECRYPT, true)
          .Bool(CKA_ENCRYPT, false)
          .Bool(CKA_MODIFIABLE, false);
    });
    make("dk-modifiable", [](pkcs11::AttributeTemplate& t) {
      t.Bool(CKA_EXTRACTABLE, false)
          .Bool(CKA_WRAP, true)
          .Bool(CKA_UNWRAP, true)
          .Bool(CKA_DECRYPT, false)
          .Bool(CKA_ENCRYPT, false)
          .Bool(CKA_MODIFIABLE, true);
    });
    make("dk-sealed",
         [](pkcs11::AttributeTemplate& t) {  // never extractable at all: stricter, fine
           t.Bool(CKA_EXTRACTABLE, false)
               .Bool(CKA_WRAP, true)
               .Bool(CKA_UNWRAP, true)
               .Bool(CKA_DECRYPT, false)
               .Bool(CKA_ENCRYPT, false)
               .Bool(CKA_MODIFIABLE, false);
         });
    make("dk-untrusted", [](pkcs11::AttributeTemplate& t) {
      t.Bool(CKA_EXTRACTABLE, true)
          .Bool(CKA_WRAP_WITH_TRUSTED, false)
          .Bool(CKA_WRAP, true)
          .Bool(CKA_UNWRAP, true)
          .Bool(CKA_DECRYPT, false)
          .Bool(CKA_ENCRYPT, false)
          .Bool(CKA_MODIFIABLE, false);
    });
  }  // C_Finalize
  const std::pair<const char*, const char*> cases[] = {
      {"dk-decrypt", "key can both wrap and decrypt"},
      {"dk-modifiable", "CKA_MODIFIABLE must be FALSE"},
      {"dk-untrusted", "CKA_WRAP_WITH_TRUSTED must be TRUE"},
  };
  for (auto [label, why] : cases) {
    INFO(label);
    hal::Pkcs11HsmConfig config = fx->Config();
    config.domain_key_label = label;
    CHECK(fx->OpenHsm(std::move(config)) ==
          FailedPreconditionError(std::string("key policy violation: domain key: ") + why,
                                  Reason::kPolicyViolation));
  }
  hal::Pkcs11HsmConfig missing = fx->Config();
  missing.domain_key_label = "no-such-key";
  CHECK(fx->OpenHsm(std::move(missing)) ==
        FailedPreconditionError("domain key 'no-such-key' not found on the token"));
  hal::Pkcs11HsmConfig sealed = fx->Config();
  sealed.domain_key_label = "dk-sealed";
  MustOk(fx->OpenHsm(std::move(sealed)));
  fx->CloseHsm();
  MustOk(fx->OpenHsm());  // the real one passes
}

}  // namespace
}  // namespace kms::testing
