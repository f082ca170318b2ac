#include "tests/support/softhsm_fixture.h"

#include <stdlib.h>

#include <filesystem>

#include "hal/pkcs11_hsm_functions.h"
#include "pkcs11/module.h"

namespace kms::testing {

StatusOr<std::unique_ptr<SoftHsmFixture>> SoftHsmFixture::Create(SoftHsmFixtureOptions options) {
  std::unique_ptr<SoftHsmFixture> f(new SoftHsmFixture());
  f->options_ = options;
  std::string base = std::filesystem::temp_directory_path().string() + "/kms-softhsm-XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) return InternalError("mkdtemp failed");
  f->token_.dir = base;  // so the destructor removes it even if provisioning fails
  KMS_ASSIGN_OR_RETURN(f->token_, provisioning::CreateDevToken(base));
  KMS_ASSIGN_OR_RETURN(f->library_, pkcs11::Library::Open(f->token_.module_path));
  if (options.inject_faults) f->faults_ = std::make_unique<FaultInjector>(f->library_->functions());
  if (options.open_hsm) KMS_RETURN_IF_ERROR(f->OpenHsm());
  return f;
}

SoftHsmFixture::~SoftHsmFixture() {
  hsm_.reset();
  faults_.reset();
  library_.reset();
  if (!token_.dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(token_.dir, ec);
  }
}

hal::Pkcs11HsmConfig SoftHsmFixture::Config() const {
  hal::Pkcs11HsmConfig c;
  c.module_path = token_.module_path;
  c.token_label = token_.token_label;
  c.token_serial = token_.token_serial;
  c.user_pin = token_.user_pin.Clone();
  c.domain_key_label = token_.domain_key_label;
  c.session_pool_size = options_.session_pool_size;
  return c;
}

Status SoftHsmFixture::OpenHsm() { return OpenHsm(Config()); }

Status SoftHsmFixture::OpenHsm(hal::Pkcs11HsmConfig config) {
  hsm_.reset();
  KMS_ASSIGN_OR_RETURN(hsm_, hal::OpenPkcs11Hsm(std::move(config), functions()));
  return Status();
}

void SoftHsmFixture::CloseHsm() { hsm_.reset(); }

CK_FUNCTION_LIST* SoftHsmFixture::functions() {
  return faults_ != nullptr ? faults_->functions() : library_->functions();
}

CK_FUNCTION_LIST* SoftHsmFixture::real_functions() { return library_->functions(); }

StatusOr<CK_SLOT_ID> SoftHsmFixture::slot() const {
  CK_FUNCTION_LIST* f = library_->functions();
  CK_ULONG count = 0;
  if (f->C_GetSlotList(CK_TRUE, nullptr, &count) != CKR_OK) return UnavailableError("no slots");
  std::vector<CK_SLOT_ID> slots(count);
  if (f->C_GetSlotList(CK_TRUE, slots.data(), &count) != CKR_OK)
    return UnavailableError("no slots");
  for (CK_ULONG i = 0; i < count; ++i) {
    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    if (pkcs11::TrimPadded(info.label, sizeof(info.label)) == token_.token_label) return slots[i];
  }
  return NotFoundError("token not found");
}

}  // namespace kms::testing
