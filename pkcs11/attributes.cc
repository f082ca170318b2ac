#include "pkcs11/attributes.h"

#include <cstring>

namespace kms::pkcs11 {

AttributeTemplate& AttributeTemplate::Add(CK_ATTRIBUTE_TYPE type, ByteView value) {
  entries_.push_back(Entry{type, SecretBytes::CopyFrom(value)});
  return *this;
}

AttributeTemplate& AttributeTemplate::Bool(CK_ATTRIBUTE_TYPE type, bool value) {
  const CK_BBOOL b = value ? CK_TRUE : CK_FALSE;
  return Add(type, ByteView(&b, sizeof(b)));
}

AttributeTemplate& AttributeTemplate::Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  std::uint8_t raw[sizeof(CK_ULONG)];
  std::memcpy(raw, &value, sizeof(value));
  return Add(type, ByteView(raw, sizeof(raw)));
}

AttributeTemplate& AttributeTemplate::Bytes(CK_ATTRIBUTE_TYPE type, ByteView value) {
  return Add(type, value);
}

AttributeTemplate& AttributeTemplate::String(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return Add(type, AsBytes(value));
}

AttributeTemplate& AttributeTemplate::Secret(CK_ATTRIBUTE_TYPE type, const SecretBytes& value) {
  entries_.push_back(Entry{type, value.Clone()});
  return *this;
}

AttributeTemplate& AttributeTemplate::Mechanisms(CK_ATTRIBUTE_TYPE type,
                                                 std::span<const CK_MECHANISM_TYPE> values) {
  SecretBytes raw(values.size() * sizeof(CK_MECHANISM_TYPE));
  if (!values.empty()) std::memcpy(raw.ExposeSecretMutable().data(), values.data(), raw.size());
  entries_.push_back(Entry{type, std::move(raw)});
  return *this;
}

CK_ATTRIBUTE* AttributeTemplate::data() {
  view_.clear();
  view_.reserve(entries_.size());
  for (Entry& e : entries_) {
    std::span<std::uint8_t> v = e.value.ExposeSecretMutable();
    view_.push_back(
        CK_ATTRIBUTE{e.type, v.empty() ? nullptr : v.data(), static_cast<CK_ULONG>(v.size())});
  }
  return view_.data();
}

std::optional<bool> AttributeValue::AsBool() const {
  if (!present || value.size() != sizeof(CK_BBOOL)) return std::nullopt;
  return value.ExposeSecret()[0] != CK_FALSE;
}

std::optional<CK_ULONG> AttributeValue::AsUlong() const {
  if (!present || value.size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG v = 0;
  std::memcpy(&v, value.ExposeSecret().data(), sizeof(v));
  return v;
}

Bytes AttributeValue::AsBytes() const {
  if (!present) return {};
  ByteView v = value.ExposeSecret();
  return Bytes(v.begin(), v.end());
}

std::vector<CK_MECHANISM_TYPE> AttributeValue::AsMechanisms() const {
  std::vector<CK_MECHANISM_TYPE> out;
  if (!present || value.size() % sizeof(CK_MECHANISM_TYPE) != 0) return out;
  out.resize(value.size() / sizeof(CK_MECHANISM_TYPE));
  if (!out.empty()) std::memcpy(out.data(), value.ExposeSecret().data(), value.size());
  return out;
}

}  // namespace kms::pkcs11
