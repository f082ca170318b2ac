// OpenPkcs11Hsm over a Cryptoki function list someone else owns, for slotting a fault-injecting
// wrapper (tests/support/fault_injection.h) between the HAL and the module. Kept apart from
// hal/pkcs11_hsm.h because it exposes PKCS#11 types, which firmware/ must never see.
//
// `config.module_path` is ignored; `functions` must stay valid until the Hsm and every KeyHandle it
// returned are gone. The Hsm calls C_Initialize/C_Finalize through `functions` itself.
#ifndef KMS_HAL_PKCS11_HSM_FUNCTIONS_H_
#define KMS_HAL_PKCS11_HSM_FUNCTIONS_H_

#include <memory>

#include "base/status.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/pkcs11.h"

namespace kms::hal {

StatusOr<std::unique_ptr<Hsm>> OpenPkcs11Hsm(Pkcs11HsmConfig config, CK_FUNCTION_LIST* functions);

}  // namespace kms::hal

#endif  // KMS_HAL_PKCS11_HSM_FUNCTIONS_H_
