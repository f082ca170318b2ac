// The one include of the Cryptoki header for the whole tree (p11-kit's copy of the PKCS#11 v2.40
// header, in its PKCS#11-compatible naming: CK_RV, CK_FUNCTION_LIST, CK_GCM_PARAMS with ulIvBits,
// ...). Only pkcs11/, hal/ backends, provisioning/ and tests include it; firmware/ and api/ never
// do.
#ifndef KMS_PKCS11_PKCS11_H_
#define KMS_PKCS11_PKCS11_H_

#include <p11-kit/pkcs11.h>  // IWYU pragma: export

#endif  // KMS_PKCS11_PKCS11_H_
