// libFuzzer target: what the PKCS#11 backend decodes from bytes a token (or a stored record) hands
// it: hal/internal/key_encoding.h (ECDSA signatures, DER OCTET STRING points, SubjectPublicKeyInfo,
// PKCS#8) and the attribute values read back by pkcs11::Session::GetAttributes and judged by
// hal::CheckKeyPolicy / CheckDomainKeyPolicy.
//
// The first byte picks a part. Invariants:
//  * DER readers are strict, as the header promises ("DER only ... no trailing bytes, minimal
//    integers"): whatever EcdsaDerToRaw, ParseDerOctetString or ParseSpki accepts re-encodes, with
//    the matching writer, to exactly the input bytes;
//  * writers round-trip: r||s -> DER -> r||s (when r, s are in range), point -> OCTET STRING ->
//    point, (modulus, exponent) or (curve, point) -> SPKI -> the same parts, PKCS#8 parts ->
//    PKCS#8 -> the same parts;
//  * attributes: a minimal Cryptoki module serves attribute values chosen by the input (absent,
//    short, long, wrong-sized booleans and integers, odd mechanism lists, sizes that change between
//    calls, absurd sizes); GetAttributes never crashes, and CheckKeyPolicy's verdict agrees with a
//    direct reading of the policy (hal/pkcs11_policy.h) over the values served.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "hal/internal/key_encoding.h"
#include "hal/key_types.h"
#include "hal/pkcs11_policy.h"
#include "pkcs11/attributes.h"
#include "pkcs11/module.h"
#include "pkcs11/session.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

using kms::Bytes;
using kms::ByteView;
using kms::SecretBytes;
namespace internal = kms::hal::internal;

Bytes Strip(ByteView b) {
  std::size_t i = 0;
  while (i < b.size() && b[i] == 0) ++i;
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(i), b.end());
}

constexpr kms::hal::KeyAlgorithm kCurves[] = {
    kms::hal::KeyAlgorithm::kEcP256, kms::hal::KeyAlgorithm::kEcP384,
    kms::hal::KeyAlgorithm::kEcP521, kms::hal::KeyAlgorithm::kEcSecp256k1};

void Signatures(ByteView in) {
  for (const auto algorithm : kCurves) {
    const internal::CurveInfo& curve = *internal::CurveOf(algorithm);
    if (auto raw = internal::EcdsaDerToRaw(curve, in); raw.has_value()) {
      KMS_FUZZ_CHECK(raw->size() == 2 * curve.order_bytes, "r||s has the curve's width");
      auto der = internal::EcdsaRawToDer(*raw);
      KMS_FUZZ_CHECK(der && *der == Bytes(in.begin(), in.end()),
                     "an accepted ECDSA DER signature is the unique DER of its r||s");
    } else {
      KMS_FUZZ_CHECK(raw.error().reason() == kms::Reason::kInvalidSignature,
                     "a refused signature is kInvalidSignature");
    }
    if (in.size() == 2 * curve.order_bytes) {
      auto der = internal::EcdsaRawToDer(in);
      KMS_FUZZ_CHECK(der.has_value(), "every r||s of a curve's width has a DER form");
      if (auto back = internal::EcdsaDerToRaw(curve, *der); back.has_value()) {
        KMS_FUZZ_CHECK(*back == Bytes(in.begin(), in.end()), "r||s -> DER -> r||s");
      }
    }
  }
}

void OctetStrings(ByteView in) {
  if (auto inner = internal::ParseDerOctetString(in); inner.has_value()) {
    KMS_FUZZ_CHECK(internal::DerOctetString(*inner) == Bytes(in.begin(), in.end()),
                   "an accepted OCTET STRING is the unique DER of its content");
  }
  auto back = internal::ParseDerOctetString(internal::DerOctetString(in));
  KMS_FUZZ_CHECK(back && *back == Bytes(in.begin(), in.end()), "content -> OCTET STRING -> content");
}

kms::StatusOr<Bytes> Reencode(const internal::PublicKeyParts& parts) {
  if (parts.rsa) return internal::RsaSpki(parts.modulus, parts.public_exponent);
  return internal::EcSpki(*parts.curve, parts.point);
}

void PublicKeys(ByteView in, kms::fuzz::ByteReader& choices) {
  if (auto parts = internal::ParseSpki(in); parts.has_value()) {
    auto again = Reencode(*parts);
    KMS_FUZZ_CHECK(again.has_value(), "an accepted SPKI re-encodes");
    KMS_FUZZ_CHECK_DETAIL(*again == Bytes(in.begin(), in.end()),
                          "an accepted SPKI is the unique DER of its key (strict DER)",
                          kms::HexEncode(in));
  }
  // Writers: RSA from a modulus and exponent the input chooses, EC from a point.
  const std::size_t split = choices.Range(0, in.size());
  const ByteView modulus = in.first(split);
  const ByteView exponent = in.subspan(split);
  if (auto der = internal::RsaSpki(modulus, exponent); der.has_value()) {
    auto parts = internal::ParseSpki(*der);
    KMS_FUZZ_CHECK(parts && parts->rsa && parts->modulus == Strip(modulus) &&
                       parts->public_exponent == Strip(exponent),
                   "(modulus, exponent) -> SPKI -> the same numbers");
  }
  for (const auto algorithm : kCurves) {
    const internal::CurveInfo& curve = *internal::CurveOf(algorithm);
    if (auto der = internal::EcSpki(curve, in); der.has_value()) {
      auto parts = internal::ParseSpki(*der);
      KMS_FUZZ_CHECK(parts && !parts->rsa && parts->curve == &curve &&
                         parts->point == Bytes(in.begin(), in.end()),
                     "(curve, point) -> SPKI -> the same curve and point");
    }
  }
}

bool SameSecret(const SecretBytes& a, const SecretBytes& b) {
  return Strip(a.ExposeSecret()) == Strip(b.ExposeSecret());
}

void PrivateKeys(ByteView in) {
  auto parts = internal::ParsePkcs8(SecretBytes::CopyFrom(in));
  if (!parts) return;
  kms::StatusOr<SecretBytes> again = parts->pub.rsa
      ? internal::RsaPkcs8(parts->pub.modulus, parts->pub.public_exponent, parts->private_exponent,
                           parts->prime1, parts->prime2)
      : internal::EcPkcs8(*parts->pub.curve, parts->scalar, parts->pub.point);
  if (!again) return;  // a key that parses but is inconsistent is the device's problem to refuse
  auto reparsed = internal::ParsePkcs8(*again);
  KMS_FUZZ_CHECK(reparsed.has_value(), "a PKCS#8 the writer made parses");
  KMS_FUZZ_CHECK(reparsed->pub.rsa == parts->pub.rsa && reparsed->pub.modulus == parts->pub.modulus &&
                     reparsed->pub.public_exponent == parts->pub.public_exponent &&
                     reparsed->pub.curve == parts->pub.curve &&
                     reparsed->pub.point == parts->pub.point &&
                     SameSecret(reparsed->private_exponent, parts->private_exponent) &&
                     SameSecret(reparsed->scalar, parts->scalar),
                 "PKCS#8 parts -> PKCS#8 -> the same parts");
}

// ---- a Cryptoki module whose attribute values come from the input ----

struct Served {
  bool present = false;
  Bytes value;
  // A size the module claims in a size query (C_GetAttributeValue with a null pValue).
  std::optional<CK_ULONG> claimed_size;
  bool grows = false;  // answers a bigger value on the fetch than the size query announced
};

struct Token {
  kms::fuzz::ByteReader* in = nullptr;
  std::map<CK_ATTRIBUTE_TYPE, Served> served;

  const Served& ValueOf(CK_ATTRIBUTE_TYPE type) {
    auto it = served.find(type);
    if (it != served.end()) return it->second;
    Served s;
    kms::fuzz::ByteReader& r = *in;
    switch (r.Pick(8)) {
      case 0:
        break;  // absent
      case 1:
      case 2: {  // a CK_BBOOL
        s.present = true;
        s.value.push_back(r.Bool() ? CK_TRUE : CK_FALSE);
        break;
      }
      case 3: {  // a CK_ULONG
        s.present = true;
        CK_ULONG v = r.Pick(4) == 0 ? r.U32() : r.Range(0, 0x20);
        s.value.resize(sizeof v);
        std::memcpy(s.value.data(), &v, sizeof v);
        break;
      }
      case 4: {  // a mechanism list
        s.present = true;
        const std::size_t n = r.Range(0, 3);
        for (std::size_t i = 0; i < n; ++i) {
          CK_MECHANISM_TYPE m = r.Pick(2) == 0 ? CKM_AES_GCM : r.Range(0, 0x1100);
          const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
          s.value.insert(s.value.end(), p, p + sizeof m);
        }
        break;
      }
      case 5:  // raw bytes, up to past the reader's 64-byte room
        s.present = true;
        s.value = kms::ToBytes(r.String(100));
        break;
      case 6:  // a size query answering an absurd size
        s.present = true;
        s.value = kms::ToBytes(r.String(100));
        s.claimed_size = r.Bool() ? CK_ULONG{1} << (32 + r.Range(0, 20)) : CK_ULONG{r.U32()};
        break;
      default:  // grows between the size query and the fetch
        s.present = true;
        s.value = kms::ToBytes(r.String(100));
        s.grows = true;
        break;
    }
    return served.emplace(type, std::move(s)).first->second;
  }
};

Token* g_token = nullptr;

CK_RV FakeInitialize(CK_VOID_PTR) { return CKR_OK; }
CK_RV FakeFinalize(CK_VOID_PTR) { return CKR_OK; }
CK_RV FakeOpenSession(CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR session) {
  *session = 1;
  return CKR_OK;
}
CK_RV FakeCloseSession(CK_SESSION_HANDLE) { return CKR_OK; }

// PKCS#11 v2.40 §5.7, C_GetAttributeValue, with the module's answers chosen by the input.
CK_RV FakeGetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR tmpl,
                            CK_ULONG count) {
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < count; ++i) {
    const Served& s = g_token->ValueOf(tmpl[i].type);
    if (!s.present) {
      tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_ATTRIBUTE_TYPE_INVALID;
      continue;
    }
    if (tmpl[i].pValue == nullptr) {
      tmpl[i].ulValueLen = s.claimed_size.value_or(s.value.size());
      continue;
    }
    Bytes value = s.value;
    if (s.grows && tmpl[i].ulValueLen > 64) value.push_back(0xee);  // bigger than announced
    if (tmpl[i].ulValueLen < value.size()) {
      tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_BUFFER_TOO_SMALL;
      continue;
    }
    if (!value.empty()) std::memcpy(tmpl[i].pValue, value.data(), value.size());
    tmpl[i].ulValueLen = value.size();
  }
  return rv;
}

CK_FUNCTION_LIST* FakeModule() {
  static CK_FUNCTION_LIST list = [] {
    CK_FUNCTION_LIST l;
    std::memset(&l, 0, sizeof l);
    l.version = {2, 40};
    l.C_Initialize = FakeInitialize;
    l.C_Finalize = FakeFinalize;
    l.C_OpenSession = FakeOpenSession;
    l.C_CloseSession = FakeCloseSession;
    l.C_GetAttributeValue = FakeGetAttributeValue;
    return l;
  }();
  return &list;
}

// The policy read straight from hal/pkcs11_policy.h, over the values the token served.
bool ReferenceAllows(Token& token, const kms::hal::KeySpec& spec) {
  auto value = [&token](CK_ATTRIBUTE_TYPE t) -> const Served& { return token.ValueOf(t); };
  auto as_bool = [&](CK_ATTRIBUTE_TYPE t) -> std::optional<bool> {
    const Served& s = value(t);
    if (!s.present || s.value.size() != 1) return std::nullopt;
    return s.value[0] != CK_FALSE;
  };
  auto as_ulong = [&](CK_ATTRIBUTE_TYPE t) -> std::optional<CK_ULONG> {
    const Served& s = value(t);
    if (!s.present || s.value.size() != sizeof(CK_ULONG)) return std::nullopt;
    CK_ULONG v = 0;
    std::memcpy(&v, s.value.data(), sizeof v);
    return v;
  };
  auto flag = [&](CK_ATTRIBUTE_TYPE t) { return as_bool(t).value_or(false); };
  if (as_ulong(CKA_CLASS) != spec.object_class) return false;
  if (as_ulong(CKA_KEY_TYPE) != spec.key_type) return false;
  if (spec.value_len) {
    const auto len = as_ulong(CKA_VALUE_LEN);
    const bool unset_ok = spec.value_len_may_be_unset && len.value_or(0) == 0;
    if (!unset_ok && len != spec.value_len) return false;
  }
  if (flag(CKA_WRAP) && flag(CKA_DECRYPT)) return false;
  if (flag(CKA_UNWRAP) && flag(CKA_ENCRYPT)) return false;
  for (const auto& [type, expected] : spec.flags) {
    if (flag(type) != expected) return false;
  }
  for (CK_ATTRIBUTE_TYPE t : spec.never_true) {
    if (flag(t)) return false;
  }
  if (!spec.allowed_mechanisms.empty()) {
    const Served& s = value(CKA_ALLOWED_MECHANISMS);
    if (!s.present || s.value.empty() || s.value.size() % sizeof(CK_MECHANISM_TYPE) != 0) {
      return false;
    }
    for (std::size_t i = 0; i < s.value.size(); i += sizeof(CK_MECHANISM_TYPE)) {
      CK_MECHANISM_TYPE m = 0;
      std::memcpy(&m, s.value.data() + i, sizeof m);
      if (std::find(spec.allowed_mechanisms.begin(), spec.allowed_mechanisms.end(), m) ==
          spec.allowed_mechanisms.end()) {
        return false;
      }
    }
  }
  return true;
}

bool Hostile(const Token& token) {
  for (const auto& [type, s] : token.served) {
    if (s.claimed_size || s.grows) return true;
  }
  return false;
}

void Attributes(kms::fuzz::ByteReader& in) {
  static kms::pkcs11::Module* module = [] {
    auto m = kms::pkcs11::Module::Adopt(FakeModule());
    if (!m) std::abort();
    return m->release();
  }();
  Token token;
  token.in = &in;
  g_token = &token;
  auto session = kms::pkcs11::Session::Open(*module, 0, false);
  KMS_FUZZ_CHECK(session.has_value(), "the fake module opens a session");

  static constexpr kms::hal::KeyAlgorithm kAlgorithms[] = {
      kms::hal::KeyAlgorithm::kAes256,  kms::hal::KeyAlgorithm::kHmacSha256,
      kms::hal::KeyAlgorithm::kHmacSha512, kms::hal::KeyAlgorithm::kRsa2048,
      kms::hal::KeyAlgorithm::kEcP256};
  const auto algorithm = in.PickFrom(kAlgorithms);
  const bool domain = in.Pick(4) == 0;
  kms::Status verdict;
  kms::hal::KeySpec spec;
  if (domain) {
    verdict = kms::hal::CheckDomainKeyPolicy(*session, 7);
    spec = kms::hal::DomainKeySpec();
    if (token.ValueOf(CKA_EXTRACTABLE).present && token.ValueOf(CKA_EXTRACTABLE).value.size() == 1 &&
        token.ValueOf(CKA_EXTRACTABLE).value[0] == CK_FALSE) {
      std::erase_if(spec.flags, [](const auto& f) {
        return f.first == CKA_EXTRACTABLE || f.first == CKA_WRAP_WITH_TRUSTED;
      });
    }
  } else {
    const bool symmetric = algorithm == kms::hal::KeyAlgorithm::kAes256 ||
                           algorithm == kms::hal::KeyAlgorithm::kHmacSha256 ||
                           algorithm == kms::hal::KeyAlgorithm::kHmacSha512;
    const auto purpose = algorithm == kms::hal::KeyAlgorithm::kAes256
                             ? kms::hal::KeyPurpose::kEncryptDecrypt
                         : symmetric ? kms::hal::KeyPurpose::kMac
                                     : kms::hal::KeyPurpose::kSignVerify;
    static constexpr kms::hal::KeyOrigin kOrigins[] = {kms::hal::KeyOrigin::kGenerated,
                                                       kms::hal::KeyOrigin::kUnwrapped,
                                                       kms::hal::KeyOrigin::kImported};
    spec = (!symmetric && in.Bool()) ? kms::hal::PublicKeySpec(algorithm, purpose)
                                     : kms::hal::SecretOrPrivateKeySpec(algorithm, purpose,
                                                                        in.PickFrom(kOrigins));
    verdict = kms::hal::CheckKeyPolicy(*session, 7, spec);
  }
  if (!verdict.ok() && verdict.reason() != kms::Reason::kPolicyViolation) {
    // The read itself failed: only a hostile size may cause that.
    KMS_FUZZ_CHECK_DETAIL(Hostile(token), "attribute reads fail only on a hostile module",
                          verdict.ToString());
  } else if (!Hostile(token)) {
    KMS_FUZZ_CHECK_DETAIL(verdict.ok() == ReferenceAllows(token, spec),
                          "the policy verdict agrees with a direct reading of the policy",
                          verdict.ToString());
  }
  g_token = nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kms::fuzz::ByteReader in(data, size);
  const std::uint8_t part = in.Byte();
  const ByteView rest(data + (size > 0 ? 1 : 0), size > 0 ? size - 1 : 0);
  switch (part % 6) {
    case 0:
      Signatures(rest);
      break;
    case 1:
      OctetStrings(rest);
      break;
    case 2:
    case 3: {
      kms::fuzz::ByteReader choices(rest.data(), std::min<std::size_t>(rest.size(), 2));
      PublicKeys(rest, choices);
      break;
    }
    case 4:
      PrivateKeys(rest);
      break;
    default:
      Attributes(in);
      break;
  }
  return 0;
}
