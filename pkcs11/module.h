// Module: one loaded and initialised Cryptoki module (PKCS#11 v2.40 §5.4, §5.5).
//
// `Load` dlopen()s a module by path and takes its function list from C_GetFunctionList; `Adopt`
// uses a function list that someone else owns (a fault-injecting wrapper in tests) and never
// unloads it. Either way the Module calls C_Initialize once, with CKF_OS_LOCKING_OK (SoftHSM2
// disables its own locks without it and crashes under threads, docs/softhsm2.md "Sessions and
// login"), and C_Finalize in its destructor. `Reinitialize` (C_Finalize + C_Initialize) is the
// recovery for device errors; it bumps `generation()`, which sessions opened before it compare
// against so they never close a handle number that the module may have handed out again.
//
// Slot and token lookup: `FindToken` finds a token by label (and serial, when given) and fails
// loudly (NotFound, listing nothing secret) when it is missing or ambiguous.
//
// Thread-safety: all const methods and the lookups may be called concurrently (Cryptoki with OS
// locking is thread-safe per call). `Reinitialize` must not run concurrently with any other use of
// the module; callers serialise it (the HAL holds an exclusive lock).
//
// Process-wide state: Cryptoki has one initialisation per process and module; two Modules over the
// same library in one process would collide (the second gets CKR_CRYPTOKI_ALREADY_INITIALIZED).
#ifndef KMS_PKCS11_MODULE_H_
#define KMS_PKCS11_MODULE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "pkcs11/pkcs11.h"

namespace kms::pkcs11 {

// A dlopen()ed module library and its function list, not initialised. Closing it (destructor)
// unloads the library: keep it alive while anything uses the function list.
class Library {
 public:
  static StatusOr<std::unique_ptr<Library>> Open(const std::string& path);
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  CK_FUNCTION_LIST* functions() const { return functions_; }
  const std::string& path() const { return path_; }

 private:
  Library(void* handle, CK_FUNCTION_LIST* functions, std::string path)
      : handle_(handle), functions_(functions), path_(std::move(path)) {}
  void* handle_;
  CK_FUNCTION_LIST* functions_;
  std::string path_;
};

class Module {
 public:
  // dlopen()s `path`, then C_Initialize(CKF_OS_LOCKING_OK).
  static StatusOr<std::unique_ptr<Module>> Load(const std::string& path);
  // C_Initialize(CKF_OS_LOCKING_OK) through `functions`, which must outlive the Module.
  static StatusOr<std::unique_ptr<Module>> Adopt(CK_FUNCTION_LIST* functions);

  ~Module();  // C_Finalize (when initialised), then unloads the library if Load()ed it.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* functions() const { return functions_; }
  // Bumped by every Reinitialize (successful or not): handles from an older generation are dead.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  bool initialized() const { return initialized_; }

  // C_Finalize then C_Initialize. Every session, login and session object is gone afterwards.
  Status Reinitialize();

  StatusOr<std::vector<CK_SLOT_ID>> SlotList(bool token_present) const;
  StatusOr<CK_TOKEN_INFO> TokenInfo(CK_SLOT_ID slot) const;
  // The slot whose token has this label (and serial number, unless `serial` is empty).
  StatusOr<CK_SLOT_ID> FindToken(std::string_view label, std::string_view serial = {}) const;
  StatusOr<std::vector<CK_MECHANISM_TYPE>> Mechanisms(CK_SLOT_ID slot) const;
  StatusOr<CK_MECHANISM_INFO> MechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type) const;

 private:
  Module(std::unique_ptr<Library> library, CK_FUNCTION_LIST* functions)
      : library_(std::move(library)), functions_(functions) {}
  Status Initialize();

  std::unique_ptr<Library> library_;  // null when adopted
  CK_FUNCTION_LIST* functions_;
  bool initialized_ = false;
  std::atomic<std::uint64_t> generation_{1};
};

// A blank-padded fixed-width Cryptoki string field (token label, serial: PKCS#11 v2.40 §3.2)
// without its padding.
std::string TrimPadded(const unsigned char* field, std::size_t size);

}  // namespace kms::pkcs11

#endif  // KMS_PKCS11_MODULE_H_
