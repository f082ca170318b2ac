#include "pkcs11/module.h"

#include <dlfcn.h>

#include <cstring>

#include "pkcs11/rv.h"

namespace kms::pkcs11 {

std::string TrimPadded(const unsigned char* field, std::size_t size) {
  std::size_t n = size;
  while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0')) --n;
  return std::string(reinterpret_cast<const char*>(field), n);
}

StatusOr<std::unique_ptr<Library>> Library::Open(const std::string& path) {
  // RTLD_LOCAL keeps the module's symbols (OpenSSL for SoftHSM2) out of the global namespace.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return FailedPreconditionError("cannot load PKCS#11 module " + path + ": " +
                                   (why != nullptr ? why : "dlopen failed"));
  }
  void* symbol = dlsym(handle, "C_GetFunctionList");
  if (symbol == nullptr) {
    dlclose(handle);
    return FailedPreconditionError("not a PKCS#11 module (no C_GetFunctionList): " + path);
  }
  CK_C_GetFunctionList get_function_list = nullptr;
  static_assert(sizeof(get_function_list) == sizeof(symbol));
  std::memcpy(&get_function_list, &symbol, sizeof(symbol));  // POSIX: object to function pointer
  CK_FUNCTION_LIST* functions = nullptr;
  CK_RV rv = get_function_list(&functions);
  if (rv != CKR_OK || functions == nullptr) {
    dlclose(handle);
    Status s = RvToStatus(rv == CKR_OK ? CKR_FUNCTION_FAILED : rv, "C_GetFunctionList");
    return FailedPreconditionError("cannot use PKCS#11 module " + path + ": " + s.message());
  }
  return std::unique_ptr<Library>(new Library(handle, functions, path));
}

Library::~Library() {
  if (handle_ != nullptr) dlclose(handle_);
}

StatusOr<std::unique_ptr<Module>> Module::Load(const std::string& path) {
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<Library> library, Library::Open(path));
  CK_FUNCTION_LIST* functions = library->functions();
  std::unique_ptr<Module> module(new Module(std::move(library), functions));
  KMS_RETURN_IF_ERROR(module->Initialize());
  return module;
}

StatusOr<std::unique_ptr<Module>> Module::Adopt(CK_FUNCTION_LIST* functions) {
  if (functions == nullptr) return InvalidArgumentError("null PKCS#11 function list");
  std::unique_ptr<Module> module(new Module(nullptr, functions));
  KMS_RETURN_IF_ERROR(module->Initialize());
  return module;
}

Status Module::Initialize() {
  // PKCS#11 v2.40 §5.4 C_Initialize: CKF_OS_LOCKING_OK with no mutex callbacks asks the module to
  // use the OS primitives; SoftHSM2 runs without any locking otherwise.
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = functions_->C_Initialize(&args);
  if (rv != CKR_OK) return RvToStatus(rv, "C_Initialize");
  initialized_ = true;
  return Status();
}

Module::~Module() {
  if (initialized_) (void)functions_->C_Finalize(nullptr);
}

Status Module::Reinitialize() {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  if (initialized_) {
    // The result is ignored on purpose: after a device error C_Finalize may itself fail, and the
    // C_Initialize below is what decides whether the module is usable again.
    (void)functions_->C_Finalize(nullptr);
    initialized_ = false;
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = functions_->C_Initialize(&args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    // The C_Finalize above did not take (it failed): try the pair once more.
    (void)functions_->C_Finalize(nullptr);
    rv = functions_->C_Initialize(&args);
  }
  if (rv != CKR_OK) return RvToStatus(rv, "C_Initialize");
  initialized_ = true;
  return Status();
}

StatusOr<std::vector<CK_SLOT_ID>> Module::SlotList(bool token_present) const {
  // PKCS#11 v2.40 §5.5 C_GetSlotList: the count may change between the two calls, hence the loop.
  for (int attempt = 0; attempt < 4; ++attempt) {
    CK_ULONG count = 0;
    CK_RV rv = functions_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, nullptr, &count);
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(count);
    rv = functions_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, slots.data(), &count);
    if (rv == CKR_BUFFER_TOO_SMALL) continue;
    if (rv != CKR_OK) return RvToStatus(rv, "C_GetSlotList");
    slots.resize(count);
    return slots;
  }
  return UnavailableError("C_GetSlotList: slot list keeps changing");
}

StatusOr<CK_TOKEN_INFO> Module::TokenInfo(CK_SLOT_ID slot) const {
  CK_TOKEN_INFO info{};
  CK_RV rv = functions_->C_GetTokenInfo(slot, &info);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetTokenInfo");
  return info;
}

StatusOr<CK_SLOT_ID> Module::FindToken(std::string_view label, std::string_view serial) const {
  KMS_ASSIGN_OR_RETURN(std::vector<CK_SLOT_ID> slots, SlotList(true));
  std::vector<CK_SLOT_ID> matches;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (functions_->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    if (TrimPadded(info.label, sizeof(info.label)) != label) continue;
    if (!serial.empty() && TrimPadded(info.serialNumber, sizeof(info.serialNumber)) != serial) {
      continue;
    }
    matches.push_back(slot);
  }
  std::string what = "token '" + std::string(label) + "'" +
                     (serial.empty() ? "" : " with serial '" + std::string(serial) + "'");
  if (matches.empty()) return NotFoundError("PKCS#11 " + what + " not found");
  if (matches.size() > 1) {
    return FailedPreconditionError("PKCS#11 " + what + " is ambiguous: " +
                                   std::to_string(matches.size()) + " slots; give the serial");
  }
  return matches.front();
}

StatusOr<std::vector<CK_MECHANISM_TYPE>> Module::Mechanisms(CK_SLOT_ID slot) const {
  CK_ULONG count = 0;
  CK_RV rv = functions_->C_GetMechanismList(slot, nullptr, &count);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismList");
  std::vector<CK_MECHANISM_TYPE> mechanisms(count);
  rv = functions_->C_GetMechanismList(slot, mechanisms.data(), &count);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismList");
  mechanisms.resize(count);
  return mechanisms;
}

StatusOr<CK_MECHANISM_INFO> Module::MechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type) const {
  CK_MECHANISM_INFO info{};
  CK_RV rv = functions_->C_GetMechanismInfo(slot, type, &info);
  if (rv != CKR_OK) return RvToStatus(rv, "C_GetMechanismInfo");
  return info;
}

}  // namespace kms::pkcs11
