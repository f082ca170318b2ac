// AttributeTemplate: a CK_ATTRIBUTE array that owns the buffers its entries point to
// (PKCS#11 v2.40 §4.1, §5.7 "templates").
//
// Each value lives in its own zeroizing buffer (SecretBytes storage), so a template may carry a key
// value (C_CreateObject of imported material) and wipes it when it dies. `data()` rebuilds the
// CK_ATTRIBUTE array on each call, so it stays valid while the template is neither modified nor
// destroyed. CK_BBOOL and CK_ULONG values are stored in the module's native layout.
//
// Thread-safety: as a std::vector; a template is built and used by one thread.
#ifndef KMS_PKCS11_ATTRIBUTES_H_
#define KMS_PKCS11_ATTRIBUTES_H_

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "pkcs11/pkcs11.h"

namespace kms::pkcs11 {

class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  AttributeTemplate(AttributeTemplate&&) noexcept = default;
  AttributeTemplate& operator=(AttributeTemplate&&) noexcept = default;
  AttributeTemplate(const AttributeTemplate&) = delete;
  AttributeTemplate& operator=(const AttributeTemplate&) = delete;

  AttributeTemplate& Bool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeTemplate& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeTemplate& Bytes(CK_ATTRIBUTE_TYPE type, ByteView value);
  AttributeTemplate& String(CK_ATTRIBUTE_TYPE type, std::string_view value);
  // A secret value (CKA_VALUE of imported key material); the copy here is wiped with the template.
  AttributeTemplate& Secret(CK_ATTRIBUTE_TYPE type, const SecretBytes& value);
  // CK_MECHANISM_TYPE array attribute (CKA_ALLOWED_MECHANISMS).
  AttributeTemplate& Mechanisms(CK_ATTRIBUTE_TYPE type, std::span<const CK_MECHANISM_TYPE> values);

  CK_ATTRIBUTE* data();
  CK_ULONG size() const { return static_cast<CK_ULONG>(entries_.size()); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    CK_ATTRIBUTE_TYPE type;
    SecretBytes value;
  };
  AttributeTemplate& Add(CK_ATTRIBUTE_TYPE type, ByteView value);

  std::vector<Entry> entries_;
  std::vector<CK_ATTRIBUTE> view_;
};

// One attribute read back by C_GetAttributeValue. `present` is false when the module answered
// CK_UNAVAILABLE_INFORMATION (attribute invalid for the object, or sensitive).
struct AttributeValue {
  CK_ATTRIBUTE_TYPE type = 0;
  bool present = false;
  SecretBytes value;  // SecretBytes because CKA_VALUE of a non-sensitive key is a secret

  std::optional<bool> AsBool() const;
  std::optional<CK_ULONG> AsUlong() const;
  Bytes AsBytes() const;  // only for non-secret attributes
  std::vector<CK_MECHANISM_TYPE> AsMechanisms() const;
};

}  // namespace kms::pkcs11

#endif  // KMS_PKCS11_ATTRIBUTES_H_
