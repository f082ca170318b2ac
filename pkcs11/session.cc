#include "pkcs11/session.h"

#include <string>

#include "pkcs11/rv.h"

namespace kms::pkcs11 {
namespace {

// Cryptoki takes non-const input pointers for data it only reads. SoftHSM2 refuses a NULL data
// pointer even with length 0 (CKR_ARGUMENTS_BAD), so empty inputs point at a dummy byte.
unsigned char* In(ByteView v) {
  static unsigned char empty = 0;
  return v.empty() ? &empty : const_cast<unsigned char*>(v.data());
}

CK_ULONG Len(std::size_t n) { return static_cast<CK_ULONG>(n); }

// The largest attribute value GetAttributes reads. Key attributes are far smaller (an RSA-4096
// modulus is 512 bytes, a token data value 1024): a module that announces more is broken, and
// allocating whatever it announces would let it exhaust the process's memory.
constexpr CK_ULONG kMaxAttributeBytes = 64 * 1024;

}  // namespace

StatusOr<Session> Session::Open(Module& module, CK_SLOT_ID slot, bool read_write) {
  // PKCS#11 v2.40 §5.6: CKF_SERIAL_SESSION must always be set.
  CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_RV rv = module.functions()->C_OpenSession(slot, flags, nullptr, nullptr, &handle);
  if (rv != CKR_OK) return RvToStatus(rv, "C_OpenSession");
  return Session(&module, handle);
}

Session::Session(Session&& other) noexcept
    : module_(std::exchange(other.module_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      generation_(other.generation_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    (void)Close();
    module_ = std::exchange(other.module_, nullptr);
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
    generation_ = other.generation_;
  }
  return *this;
}

Session::~Session() { (void)Close(); }

Status Session::Close() {
  if (module_ == nullptr) return Status();
  Module* module = std::exchange(module_, nullptr);
  CK_SESSION_HANDLE handle = std::exchange(handle_, CK_INVALID_HANDLE);
  // After a re-initialisation the number may belong to a newer session: leave it alone.
  if (module->generation() != generation_ || !module->initialized()) return Status();
  return RvToStatus(module->functions()->C_CloseSession(handle), "C_CloseSession");
}

void Session::Abandon() {
  module_ = nullptr;
  handle_ = CK_INVALID_HANDLE;
}

StatusOr<CK_SESSION_INFO> Session::Info() const {
  CK_SESSION_INFO info{};
  CK_RV rv = f()->C_GetSessionInfo(handle_, &info);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetSessionInfo");
  return info;
}

StatusOr<CK_OBJECT_HANDLE> Session::CreateObject(AttributeTemplate& attributes) {
  CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_CreateObject(handle_, attributes.data(), attributes.size(), &object);
  if (rv != CKR_OK) return RvToStatus(rv, "C_CreateObject");
  return object;
}

Status Session::DestroyObject(CK_OBJECT_HANDLE object) {
  return RvToStatus(f()->C_DestroyObject(handle_, object), "C_DestroyObject");
}

StatusOr<CK_OBJECT_HANDLE> Session::CopyObject(CK_OBJECT_HANDLE object,
                                               AttributeTemplate& attributes) {
  CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_CopyObject(handle_, object, attributes.data(), attributes.size(), &copy);
  if (rv != CKR_OK) return RvToStatus(rv, "C_CopyObject");
  return copy;
}

StatusOr<std::vector<CK_OBJECT_HANDLE>> Session::FindObjects(AttributeTemplate& attributes,
                                                             std::size_t max) {
  CK_RV rv = f()->C_FindObjectsInit(handle_, attributes.data(), attributes.size());
  if (rv != CKR_OK) return RvToStatus(rv, "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> found(max);
  CK_ULONG count = 0;
  rv = f()->C_FindObjects(handle_, found.data(), Len(max), &count);
  // C_FindObjectsFinal always, so the session is left without an active search.
  CK_RV final_rv = f()->C_FindObjectsFinal(handle_);
  if (rv != CKR_OK) return RvToStatus(rv, "C_FindObjects");
  if (final_rv != CKR_OK) return RvToStatus(final_rv, "C_FindObjectsFinal");
  found.resize(count);
  return found;
}

StatusOr<std::vector<AttributeValue>> Session::GetAttributes(
    CK_OBJECT_HANDLE object, std::span<const CK_ATTRIBUTE_TYPE> types) {
  // PKCS#11 v2.40 §5.7 C_GetAttributeValue. One call with room for the usual attribute (flags,
  // sizes, OIDs, mechanism lists): policy checks read a dozen of those per key load, and each call
  // costs the module a lookup. An entry the module marks CK_UNAVAILABLE_INFORMATION is either
  // invalid for the object, sensitive, or larger than the room given (the return value names only
  // one of the causes): those are sized and fetched one by one.
  constexpr std::size_t kRoom = 64;
  std::vector<AttributeValue> values(types.size());
  std::vector<CK_ATTRIBUTE> query(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    values[i].type = types[i];
    values[i].value = SecretBytes(kRoom);
    query[i] = CK_ATTRIBUTE{types[i], values[i].value.ExposeSecretMutable().data(), Len(kRoom)};
  }
  CK_RV rv = f()->C_GetAttributeValue(handle_, object, query.data(), Len(query.size()));
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE &&
      rv != CKR_BUFFER_TOO_SMALL) {
    return RvToStatus(rv, "C_GetAttributeValue");
  }
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (query[i].ulValueLen != CK_UNAVAILABLE_INFORMATION && query[i].ulValueLen <= kRoom) {
      values[i].present = true;
      values[i].value.resize(static_cast<std::size_t>(query[i].ulValueLen));
      continue;
    }
    CK_ATTRIBUTE size{types[i], nullptr, 0};
    rv = f()->C_GetAttributeValue(handle_, object, &size, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
        size.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      values[i].value = SecretBytes();
      continue;
    }
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetAttributeValue");
    if (size.ulValueLen > kMaxAttributeBytes) {
      return InternalError("C_GetAttributeValue: the module announces " +
                           std::to_string(size.ulValueLen) + " bytes for attribute " +
                           std::to_string(types[i]) + ", more than the " +
                           std::to_string(kMaxAttributeBytes) + " any key attribute needs");
    }
    values[i].value = SecretBytes(static_cast<std::size_t>(size.ulValueLen));
    CK_ATTRIBUTE fetch{types[i], values[i].value.ExposeSecretMutable().data(), size.ulValueLen};
    rv = f()->C_GetAttributeValue(handle_, object, &fetch, 1);
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetAttributeValue");
    // The module wrote into a buffer of the size it announced: a longer answer is a broken module.
    if (fetch.ulValueLen > size.ulValueLen) {
      return InternalError("C_GetAttributeValue: the module answered more bytes than it announced");
    }
    values[i].present = true;
    values[i].value.resize(static_cast<std::size_t>(fetch.ulValueLen));
  }
  return values;
}

StatusOr<AttributeValue> Session::GetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  const CK_ATTRIBUTE_TYPE types[] = {type};
  KMS_ASSIGN_OR_RETURN(std::vector<AttributeValue> values, GetAttributes(object, types));
  if (!values[0].present) {
    return FailedPreconditionError("C_GetAttributeValue: attribute unavailable");
  }
  return std::move(values[0]);
}

Status Session::GetAttributeStrict(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE query{type, nullptr, 0};
  return RvToStatus(f()->C_GetAttributeValue(handle_, object, &query, 1), "C_GetAttributeValue");
}

Status Session::SetAttributes(CK_OBJECT_HANDLE object, AttributeTemplate& attributes) {
  return RvToStatus(f()->C_SetAttributeValue(handle_, object, attributes.data(), attributes.size()),
                    "C_SetAttributeValue");
}

StatusOr<CK_OBJECT_HANDLE> Session::GenerateKey(CK_MECHANISM& mechanism,
                                                AttributeTemplate& attributes) {
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_GenerateKey(handle_, &mechanism, attributes.data(), attributes.size(), &key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GenerateKey");
  return key;
}

StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> Session::GenerateKeyPair(
    CK_MECHANISM& mechanism, AttributeTemplate& public_attributes,
    AttributeTemplate& private_attributes) {
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_GenerateKeyPair(handle_, &mechanism, public_attributes.data(),
                                    public_attributes.size(), private_attributes.data(),
                                    private_attributes.size(), &pub, &priv);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GenerateKeyPair");
  return std::make_pair(pub, priv);
}

StatusOr<Bytes> Session::WrapKey(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE wrapping_key,
                                 CK_OBJECT_HANDLE key) {
  CK_ULONG length = 0;
  CK_RV rv = f()->C_WrapKey(handle_, &mechanism, wrapping_key, key, nullptr, &length);
  if (rv != CKR_OK) return RvToStatus(rv, "C_WrapKey");
  Bytes out(static_cast<std::size_t>(length));
  rv = f()->C_WrapKey(handle_, &mechanism, wrapping_key, key, out.data(), &length);
  if (rv != CKR_OK) return RvToStatus(rv, "C_WrapKey");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

StatusOr<CK_OBJECT_HANDLE> Session::UnwrapKey(CK_MECHANISM& mechanism,
                                              CK_OBJECT_HANDLE unwrapping_key, ByteView wrapped,
                                              AttributeTemplate& attributes) {
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_RV rv = f()->C_UnwrapKey(handle_, &mechanism, unwrapping_key, In(wrapped), Len(wrapped.size()),
                              attributes.data(), attributes.size(), &key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_UnwrapKey");
  return key;
}

StatusOr<Bytes> Session::Encrypt(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView plaintext,
                                 std::size_t capacity) {
  CK_RV rv = f()->C_EncryptInit(handle_, &mechanism, key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_EncryptInit");
  Bytes out(capacity == 0 ? 1 : capacity);
  CK_ULONG length = Len(out.size());
  rv = f()->C_Encrypt(handle_, In(plaintext), Len(plaintext.size()), out.data(), &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {  // §5.2: the operation stays active, `length` is the need
    out.resize(static_cast<std::size_t>(length));
    rv = f()->C_Encrypt(handle_, In(plaintext), Len(plaintext.size()), out.data(), &length);
  }
  if (rv != CKR_OK) return RvToStatus(rv, "C_Encrypt");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

StatusOr<SecretBytes> Session::Decrypt(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key,
                                       ByteView ciphertext, std::size_t capacity) {
  CK_RV rv = f()->C_DecryptInit(handle_, &mechanism, key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_DecryptInit");
  SecretBytes out(capacity == 0 ? 1 : capacity);
  CK_ULONG length = Len(out.size());
  rv = f()->C_Decrypt(handle_, In(ciphertext), Len(ciphertext.size()),
                      out.ExposeSecretMutable().data(), &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    out.resize(static_cast<std::size_t>(length));
    rv = f()->C_Decrypt(handle_, In(ciphertext), Len(ciphertext.size()),
                        out.ExposeSecretMutable().data(), &length);
  }
  if (rv != CKR_OK) return RvToStatus(rv, "C_Decrypt");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

StatusOr<Bytes> Session::Sign(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                              std::size_t capacity) {
  CK_RV rv = f()->C_SignInit(handle_, &mechanism, key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_SignInit");
  Bytes out(capacity == 0 ? 1 : capacity);
  CK_ULONG length = Len(out.size());
  rv = f()->C_Sign(handle_, In(data), Len(data.size()), out.data(), &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    out.resize(static_cast<std::size_t>(length));
    rv = f()->C_Sign(handle_, In(data), Len(data.size()), out.data(), &length);
  }
  if (rv != CKR_OK) return RvToStatus(rv, "C_Sign");
  out.resize(static_cast<std::size_t>(length));
  return out;
}

Status Session::Verify(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                       ByteView signature) {
  CK_RV rv = f()->C_VerifyInit(handle_, &mechanism, key);
  if (rv != CKR_OK) return RvToStatus(rv, "C_VerifyInit");
  rv = f()->C_Verify(handle_, In(data), Len(data.size()), In(signature), Len(signature.size()));
  return RvToStatus(rv, "C_Verify");
}

StatusOr<SecretBytes> Session::GenerateRandom(std::size_t size) {
  SecretBytes out(size);
  if (size == 0) return out;
  CK_RV rv = f()->C_GenerateRandom(handle_, out.ExposeSecretMutable().data(), Len(size));
  if (rv != CKR_OK) return RvToStatus(rv, "C_GenerateRandom");
  return out;
}

}  // namespace kms::pkcs11
