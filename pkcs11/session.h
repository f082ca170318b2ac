// Session: an RAII Cryptoki session (PKCS#11 v2.40 §5.6) and the calls made on it; ScopedObject: an
// object handle destroyed with its owner. The token-level login is in pkcs11/token.h.
//
// A Session is move-only; its destructor calls C_CloseSession, unless the module was re-initialised
// since the session opened (its handle number is dead and may have been reused) or `Abandon()` was
// called because the module said the session is gone. It never logs out: login belongs to the
// token, not to a session (PKCS#11 v2.40 §6.7.1: all sessions of an application share one login
// state), so a session closing must not log the others out. Session objects die with the session
// that created them.
//
// The operation methods are single-part (Encrypt, Decrypt, Sign, Verify, Wrap) and follow §5.2's
// length convention: they offer a buffer of `capacity` bytes and, on CKR_BUFFER_TOO_SMALL (which
// keeps the operation active), retry once with the length the module asked for. Every failure is a
// Status from pkcs11/rv.h carrying the CK_RV.
//
// Thread-safety: a Session must be used by one thread at a time (SoftHSM2 crashes when two threads
// share one session, docs/softhsm2.md "Sessions and login"). Different sessions may be used
// concurrently.
#ifndef KMS_PKCS11_SESSION_H_
#define KMS_PKCS11_SESSION_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "pkcs11/attributes.h"
#include "pkcs11/module.h"
#include "pkcs11/pkcs11.h"

namespace kms::pkcs11 {

class Session {
 public:
  static StatusOr<Session> Open(Module& module, CK_SLOT_ID slot, bool read_write = true);

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  CK_SESSION_HANDLE handle() const { return handle_; }
  bool is_open() const { return module_ != nullptr; }
  Module& module() const { return *module_; }
  std::uint64_t generation() const { return generation_; }
  // Whether the module was re-initialised since this session opened.
  bool stale() const { return module_ != nullptr && module_->generation() != generation_; }

  // C_CloseSession now, reporting its result. The session is closed (forgotten) either way.
  Status Close();
  // Forgets the handle without C_CloseSession: for a session the module reported gone.
  void Abandon();

  StatusOr<CK_SESSION_INFO> Info() const;

  // --- objects --------------------------------------------------------------------------------
  StatusOr<CK_OBJECT_HANDLE> CreateObject(AttributeTemplate& attributes);
  Status DestroyObject(CK_OBJECT_HANDLE object);
  StatusOr<CK_OBJECT_HANDLE> CopyObject(CK_OBJECT_HANDLE object, AttributeTemplate& attributes);
  // Up to `max` objects matching `attributes` (C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal).
  StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(AttributeTemplate& attributes,
                                                      std::size_t max = 64);
  // Reads `types`, in one C_GetAttributeValue when each value fits 64 bytes (flags, sizes, OIDs,
  // mechanism lists). An attribute that is invalid for the object or sensitive
  // comes back with present=false (CKR_ATTRIBUTE_TYPE_INVALID/SENSITIVE are not errors here). A
  // module that announces a value over 64 KiB, or answers more bytes than it announced, is broken:
  // Internal, and nothing of that size is allocated.
  StatusOr<std::vector<AttributeValue>> GetAttributes(CK_OBJECT_HANDLE object,
                                                      std::span<const CK_ATTRIBUTE_TYPE> types);
  // One attribute; FailedPrecondition when it is unavailable.
  StatusOr<AttributeValue> GetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);
  // The raw C_GetAttributeValue result for one attribute: CKR_ATTRIBUTE_SENSITIVE stays an error.
  Status GetAttributeStrict(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);
  Status SetAttributes(CK_OBJECT_HANDLE object, AttributeTemplate& attributes);

  // --- keys -----------------------------------------------------------------------------------
  StatusOr<CK_OBJECT_HANDLE> GenerateKey(CK_MECHANISM& mechanism, AttributeTemplate& attributes);
  // Returns {public, private}.
  StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> GenerateKeyPair(
      CK_MECHANISM& mechanism, AttributeTemplate& public_attributes,
      AttributeTemplate& private_attributes);
  StatusOr<Bytes> WrapKey(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE wrapping_key,
                          CK_OBJECT_HANDLE key);
  StatusOr<CK_OBJECT_HANDLE> UnwrapKey(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE unwrapping_key,
                                       ByteView wrapped, AttributeTemplate& attributes);

  // --- operations -----------------------------------------------------------------------------
  StatusOr<Bytes> Encrypt(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView plaintext,
                          std::size_t capacity);
  StatusOr<SecretBytes> Decrypt(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView ciphertext,
                                std::size_t capacity);
  StatusOr<Bytes> Sign(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                       std::size_t capacity);
  Status Verify(CK_MECHANISM& mechanism, CK_OBJECT_HANDLE key, ByteView data, ByteView signature);
  StatusOr<SecretBytes> GenerateRandom(std::size_t size);

 private:
  Session(Module* module, CK_SESSION_HANDLE handle)
      : module_(module), handle_(handle), generation_(module->generation()) {}
  CK_FUNCTION_LIST* f() const { return module_->functions(); }

  Module* module_ = nullptr;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  std::uint64_t generation_ = 0;
};

// An object destroyed (C_DestroyObject through `session`) when the ScopedObject goes, unless
// released. The session must outlive it.
class ScopedObject {
 public:
  ScopedObject() = default;
  ScopedObject(Session& session, CK_OBJECT_HANDLE handle) : session_(&session), handle_(handle) {}
  ScopedObject(ScopedObject&& o) noexcept
      : session_(std::exchange(o.session_, nullptr)), handle_(o.handle_) {}
  ScopedObject& operator=(ScopedObject&& o) noexcept {
    if (this != &o) {
      Reset();
      session_ = std::exchange(o.session_, nullptr);
      handle_ = o.handle_;
    }
    return *this;
  }
  ScopedObject(const ScopedObject&) = delete;
  ScopedObject& operator=(const ScopedObject&) = delete;
  ~ScopedObject() { Reset(); }

  CK_OBJECT_HANDLE get() const { return handle_; }
  CK_OBJECT_HANDLE Release() {
    session_ = nullptr;
    return handle_;
  }
  void Reset() {
    if (session_ != nullptr) (void)session_->DestroyObject(handle_);
    session_ = nullptr;
  }

 private:
  Session* session_ = nullptr;
  CK_OBJECT_HANDLE handle_ = CK_INVALID_HANDLE;
};

}  // namespace kms::pkcs11

#endif  // KMS_PKCS11_SESSION_H_
