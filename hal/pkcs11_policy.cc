#include "hal/pkcs11_policy.h"

#include <algorithm>
#include <string>

namespace kms::hal {
namespace {

Status Violation(std::string what) {
  return FailedPreconditionError("key policy violation: " + what, Reason::kPolicyViolation);
}

std::string AttributeName(CK_ATTRIBUTE_TYPE type) {
  switch (type) {
    case CKA_TOKEN:
      return "CKA_TOKEN";
    case CKA_PRIVATE:
      return "CKA_PRIVATE";
    case CKA_SENSITIVE:
      return "CKA_SENSITIVE";
    case CKA_EXTRACTABLE:
      return "CKA_EXTRACTABLE";
    case CKA_WRAP_WITH_TRUSTED:
      return "CKA_WRAP_WITH_TRUSTED";
    case CKA_MODIFIABLE:
      return "CKA_MODIFIABLE";
    case CKA_COPYABLE:
      return "CKA_COPYABLE";
    case CKA_ENCRYPT:
      return "CKA_ENCRYPT";
    case CKA_DECRYPT:
      return "CKA_DECRYPT";
    case CKA_SIGN:
      return "CKA_SIGN";
    case CKA_VERIFY:
      return "CKA_VERIFY";
    case CKA_SIGN_RECOVER:
      return "CKA_SIGN_RECOVER";
    case CKA_VERIFY_RECOVER:
      return "CKA_VERIFY_RECOVER";
    case CKA_WRAP:
      return "CKA_WRAP";
    case CKA_UNWRAP:
      return "CKA_UNWRAP";
    case CKA_DERIVE:
      return "CKA_DERIVE";
    default:
      return "attribute 0x" + std::to_string(type);
  }
}

std::vector<CK_MECHANISM_TYPE> AllowedFor(KeyAlgorithm algorithm, KeyPurpose purpose) {
  if (algorithm == KeyAlgorithm::kAes256) return {CKM_AES_GCM};
  if (auto hash = HmacHashOf(algorithm)) {
    switch (*hash) {
      case HashAlgorithm::kSha224:
        return {CKM_SHA224_HMAC};
      case HashAlgorithm::kSha256:
        return {CKM_SHA256_HMAC};
      case HashAlgorithm::kSha384:
        return {CKM_SHA384_HMAC};
      case HashAlgorithm::kSha512:
        return {CKM_SHA512_HMAC};
      case HashAlgorithm::kSha1:
        return {CKM_SHA_1_HMAC};
    }
  }
  if (IsRsa(algorithm)) {
    if (purpose == KeyPurpose::kEncryptDecrypt) return {CKM_RSA_PKCS_OAEP};
    return {CKM_RSA_PKCS_PSS, CKM_RSA_PKCS};
  }
  return {CKM_ECDSA};
}

}  // namespace

KeySpec DomainKeySpec() {
  KeySpec spec;
  spec.object_class = CKO_SECRET_KEY;
  spec.key_type = CKK_AES;
  spec.value_len = 32;
  spec.flags = {
      {CKA_TOKEN, true},       {CKA_PRIVATE, true},           {CKA_SENSITIVE, true},
      {CKA_EXTRACTABLE, true}, {CKA_WRAP_WITH_TRUSTED, true}, {CKA_WRAP, true},
      {CKA_UNWRAP, true},      {CKA_ENCRYPT, false},          {CKA_DECRYPT, false},
      {CKA_SIGN, false},       {CKA_VERIFY, false},           {CKA_DERIVE, false},
      {CKA_MODIFIABLE, false}, {CKA_COPYABLE, false},
  };
  spec.allowed_mechanisms = {CKM_AES_KEY_WRAP_PAD};
  // A domain key restored from a backup (kms-provision restore) is made by C_UnwrapKey, and
  // SoftHSM2 2.6 leaves CKA_VALUE_LEN at 0 on unwrapped keys and refuses to set it (measured, as
  // for customer keys). Restore checks the length itself: the wrapped blob must be 40 bytes, which
  // KWP gives for exactly a 32-byte key.
  spec.value_len_may_be_unset = true;
  return spec;
}

pkcs11::AttributeTemplate DomainKeyTemplate(std::string_view label) {
  pkcs11::AttributeTemplate t = TemplateOf(DomainKeySpec(), /*with_value_len=*/true);
  t.String(CKA_LABEL, label);
  return t;
}

Status CheckDomainKeyPolicy(pkcs11::Session& session, CK_OBJECT_HANDLE key) {
  KeySpec spec = DomainKeySpec();
  // A domain key that can never leave the token at all (EXTRACTABLE=FALSE) is stricter than the
  // policy and accepted; an extractable one must be wrappable only by trusted keys.
  const CK_ATTRIBUTE_TYPE types[] = {CKA_EXTRACTABLE};
  KMS_ASSIGN_OR_RETURN(std::vector<pkcs11::AttributeValue> v, session.GetAttributes(key, types));
  if (v[0].AsBool() == false) {
    std::erase_if(spec.flags, [](const auto& f) {
      return f.first == CKA_EXTRACTABLE || f.first == CKA_WRAP_WITH_TRUSTED;
    });
  }
  Status s = CheckKeyPolicy(session, key, spec);
  if (!s.ok() && s.reason() == Reason::kPolicyViolation) {
    return Violation("domain key: " + s.message().substr(s.message().find(": ") + 2));
  }
  return s;
}

KeySpec SecretOrPrivateKeySpec(KeyAlgorithm algorithm, KeyPurpose purpose, KeyOrigin origin) {
  KeySpec spec;
  const bool extractable = origin == KeyOrigin::kGenerated;
  spec.flags = {{CKA_TOKEN, false},    {CKA_PRIVATE, true},
                {CKA_SENSITIVE, true}, {CKA_EXTRACTABLE, extractable},
                {CKA_COPYABLE, false}, {CKA_DERIVE, false},
                {CKA_UNWRAP, false},   {CKA_MODIFIABLE, false}};
  spec.value_len_may_be_unset = origin == KeyOrigin::kUnwrapped;
  if (IsSymmetric(algorithm)) {
    spec.object_class = CKO_SECRET_KEY;
    const bool enc = algorithm == KeyAlgorithm::kAes256;
    spec.key_type = enc ? CKK_AES : CKK_GENERIC_SECRET;
    switch (algorithm) {
      case KeyAlgorithm::kHmacSha384:
        spec.value_len = 48;
        break;
      case KeyAlgorithm::kHmacSha512:
        spec.value_len = 64;
        break;
      default:
        spec.value_len = 32;
        break;  // AES-256, HMAC-SHA-224/256 (multiples of 8, see key_types.h)
    }
    spec.flags.insert(spec.flags.end(), {{CKA_ENCRYPT, enc},
                                         {CKA_DECRYPT, enc},
                                         {CKA_SIGN, !enc},
                                         {CKA_VERIFY, !enc},
                                         {CKA_WRAP, false}});
  } else {
    spec.object_class = CKO_PRIVATE_KEY;
    spec.key_type = IsRsa(algorithm) ? CKK_RSA : CKK_EC;
    const bool decrypt = purpose == KeyPurpose::kEncryptDecrypt;
    spec.flags.insert(spec.flags.end(),
                      {{CKA_DECRYPT, decrypt}, {CKA_SIGN, !decrypt}, {CKA_SIGN_RECOVER, false}});
    // CKA_WRAP is not a private key attribute (SoftHSM2 refuses it in the template): checked only.
    spec.never_true = {CKA_WRAP};
  }
  spec.allowed_mechanisms = AllowedFor(algorithm, purpose);
  return spec;
}

KeySpec PublicKeySpec(KeyAlgorithm algorithm, KeyPurpose purpose) {
  KeySpec spec;
  spec.object_class = CKO_PUBLIC_KEY;
  spec.key_type = IsRsa(algorithm) ? CKK_RSA : CKK_EC;
  const bool encrypt = purpose == KeyPurpose::kEncryptDecrypt;
  spec.flags = {{CKA_TOKEN, false},     {CKA_PRIVATE, false},   {CKA_MODIFIABLE, false},
                {CKA_COPYABLE, false},  {CKA_WRAP, false},      {CKA_DERIVE, false},
                {CKA_ENCRYPT, encrypt}, {CKA_VERIFY, !encrypt}, {CKA_VERIFY_RECOVER, false}};
  spec.allowed_mechanisms = AllowedFor(algorithm, purpose);
  return spec;
}

pkcs11::AttributeTemplate TemplateOf(const KeySpec& spec, bool with_value_len) {
  pkcs11::AttributeTemplate t;
  t.Ulong(CKA_CLASS, spec.object_class).Ulong(CKA_KEY_TYPE, spec.key_type);
  // SoftHSM2 2.6 applies a template in order, and once CKA_MODIFIABLE=FALSE is applied the
  // attributes after it are read-only for C_UnwrapKey (CKR_ATTRIBUTE_READ_ONLY); it also refuses
  // CKA_UNWRAP on a private key unless it comes after the usage flags (measured). So: every other
  // attribute first, then CKA_UNWRAP, then CKA_MODIFIABLE last.
  auto is_late = [](CK_ATTRIBUTE_TYPE a) { return a == CKA_UNWRAP || a == CKA_MODIFIABLE; };
  for (const auto& [type, value] : spec.flags) {
    if (!is_late(type)) t.Bool(type, value);
  }
  if (with_value_len && spec.value_len) t.Ulong(CKA_VALUE_LEN, *spec.value_len);
  if (!spec.allowed_mechanisms.empty()) {
    t.Mechanisms(CKA_ALLOWED_MECHANISMS, spec.allowed_mechanisms);
  }
  for (CK_ATTRIBUTE_TYPE late : {CKA_UNWRAP, CKA_MODIFIABLE}) {
    for (const auto& [type, value] : spec.flags) {
      if (type == late) t.Bool(type, value);
    }
  }
  return t;
}

Status CheckKeyPolicy(pkcs11::Session& session, CK_OBJECT_HANDLE key, const KeySpec& spec) {
  std::vector<CK_ATTRIBUTE_TYPE> types = {CKA_CLASS, CKA_KEY_TYPE, CKA_ALLOWED_MECHANISMS};
  if (spec.value_len) types.push_back(CKA_VALUE_LEN);
  // Beyond the spec's own flags, no key may wrap and decrypt, or unwrap and encrypt.
  for (CK_ATTRIBUTE_TYPE t : {CKA_WRAP, CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT}) types.push_back(t);
  for (const auto& f : spec.flags) types.push_back(f.first);
  for (CK_ATTRIBUTE_TYPE t : spec.never_true) types.push_back(t);
  KMS_ASSIGN_OR_RETURN(std::vector<pkcs11::AttributeValue> values,
                       session.GetAttributes(key, types));
  auto find = [&values](CK_ATTRIBUTE_TYPE t) -> const pkcs11::AttributeValue& {
    return *std::find_if(values.begin(), values.end(),
                         [t](const pkcs11::AttributeValue& v) { return v.type == t; });
  };
  auto flag = [&find](CK_ATTRIBUTE_TYPE t) { return find(t).AsBool().value_or(false); };

  if (find(CKA_CLASS).AsUlong() != spec.object_class) return Violation("wrong object class");
  if (find(CKA_KEY_TYPE).AsUlong() != spec.key_type) return Violation("wrong key type");
  if (spec.value_len) {
    std::optional<CK_ULONG> len = find(CKA_VALUE_LEN).AsUlong();
    const bool unset_ok = spec.value_len_may_be_unset && len.value_or(0) == 0;
    if (!unset_ok && len != *spec.value_len) return Violation("wrong key length");
  }
  if (flag(CKA_WRAP) && flag(CKA_DECRYPT)) return Violation("key can both wrap and decrypt");
  if (flag(CKA_UNWRAP) && flag(CKA_ENCRYPT)) return Violation("key can both unwrap and encrypt");
  for (const auto& [type, expected] : spec.flags) {
    const pkcs11::AttributeValue& v = find(type);
    // An attribute the object type does not have counts as FALSE (e.g. CKA_ENCRYPT on a private
    // key).
    if (v.AsBool().value_or(false) != expected) {
      return Violation(AttributeName(type) + " must be " + (expected ? "TRUE" : "FALSE"));
    }
  }
  for (CK_ATTRIBUTE_TYPE type : spec.never_true) {
    if (flag(type)) return Violation(AttributeName(type) + " must be FALSE");
  }
  if (!spec.allowed_mechanisms.empty()) {
    const pkcs11::AttributeValue& allowed = find(CKA_ALLOWED_MECHANISMS);
    std::vector<CK_MECHANISM_TYPE> got = allowed.AsMechanisms();
    // Absent or empty means "any mechanism" (PKCS#11 v2.40 §4.4): refused.
    if (got.empty()) return Violation("CKA_ALLOWED_MECHANISMS must be restricted");
    for (CK_MECHANISM_TYPE m : got) {
      if (std::find(spec.allowed_mechanisms.begin(), spec.allowed_mechanisms.end(), m) ==
          spec.allowed_mechanisms.end()) {
        return Violation("CKA_ALLOWED_MECHANISMS allows more than the key's purpose");
      }
    }
  }
  return Status();
}

}  // namespace kms::hal
