// Key templates as policy, for the PKCS#11 backend and for provisioning.
//
// One `KeySpec` per kind of object says every attribute the HAL cares about; the same spec builds
// the complete template sent to the module (docs/softhsm2.md "Key attributes and templates": the
// module's defaults are permissive) and checks the attributes read back when a key is loaded, so
// the two can never drift apart.
//
// The policy (docs/architecture.md "Key hierarchy"; no key may both wrap and decrypt):
//  * Domain key: AES-256 token object, private, sensitive, CKA_EXTRACTABLE=TRUE only together with
//    CKA_WRAP_WITH_TRUSTED=TRUE (so only a trusted key installed by the SO can ever wrap it, for
//    backup or cluster join; its value is never readable), WRAP/UNWRAP only (no
//    ENCRYPT/DECRYPT/SIGN/VERIFY/DERIVE: this blocks wrap-then-decrypt extraction,
//    docs/softhsm2.md "Key attributes and templates"), not modifiable, not copyable,
//    CKA_ALLOWED_MECHANISMS = {CKM_AES_KEY_WRAP_PAD}.
//  * Customer keys made by GenerateKey: session objects, private, sensitive, extractable (so the
//  domain
//    key can wrap them), exactly the usage of their purpose, never wrap/unwrap/derive, not
//    modifiable, not copyable, allowed mechanisms limited to their purpose.
//  * Unwrapped and imported keys: the same, but non-extractable.
//  * Public key objects: session objects, VERIFY or ENCRYPT only, never WRAP.
//  No key can both wrap and decrypt.
//
// SoftHSM2 2.6 quirks, measured: it applies templates in order and makes the attributes after
// CKA_MODIFIABLE=FALSE read-only in C_UnwrapKey, and takes CKA_UNWRAP on a private key only after
// the usage flags (TemplateOf orders accordingly); it refuses CKA_WRAP on private keys (checked,
// not sent: KeySpec::never_true); it leaves CKA_VALUE_LEN at 0 on unwrapped keys
// (value_len_may_be_unset).
//
// Thread-safety: pure functions over a Session the caller holds.
#ifndef KMS_HAL_PKCS11_POLICY_H_
#define KMS_HAL_PKCS11_POLICY_H_

#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "hal/key_types.h"
#include "pkcs11/attributes.h"
#include "pkcs11/pkcs11.h"
#include "pkcs11/session.h"

namespace kms::hal {

struct KeySpec {
  CK_OBJECT_CLASS object_class = CKO_SECRET_KEY;
  CK_KEY_TYPE key_type = CKK_AES;
  std::vector<std::pair<CK_ATTRIBUTE_TYPE, bool>> flags;  // sent, and each must hold exactly
  // Checked (TRUE is refused) but not sent, for attributes a module may not accept in a template.
  std::vector<CK_ATTRIBUTE_TYPE> never_true;
  std::optional<CK_ULONG> value_len;  // secret keys: CKA_VALUE_LEN
  // SoftHSM2 2.6 leaves CKA_VALUE_LEN at 0 on keys made by C_UnwrapKey (measured): for unwrapped
  // keys a 0 is accepted and the length is enforced through the wrapped blob's size instead (RFC
  // 5649 §4.1: a KWP blob of a multiple-of-8 key is exactly 8 bytes longer than the key).
  bool value_len_may_be_unset = false;
  std::vector<CK_MECHANISM_TYPE> allowed_mechanisms;  // CKA_ALLOWED_MECHANISMS
};

// How a customer key came into the device.
enum class KeyOrigin {
  kGenerated,  // extractable, so WrapKey under the domain key works
  kUnwrapped,  // non-extractable
  kImported,   // non-extractable
};

KeySpec DomainKeySpec();
// The template for C_GenerateKey(CKM_AES_KEY_GEN) of the domain key.
pkcs11::AttributeTemplate DomainKeyTemplate(std::string_view label);
// Reads the domain key's attributes and refuses (FailedPrecondition/kPolicyViolation, naming the
// offending attribute) one that breaks the policy.
Status CheckDomainKeyPolicy(pkcs11::Session& session, CK_OBJECT_HANDLE key);

// The secret key (symmetric) or private key (asymmetric) of a customer key.
KeySpec SecretOrPrivateKeySpec(KeyAlgorithm algorithm, KeyPurpose purpose, KeyOrigin origin);
// The public key object of an asymmetric customer key.
KeySpec PublicKeySpec(KeyAlgorithm algorithm, KeyPurpose purpose);

// Template from a spec: class, key type, every flag, value length when `with_value_len`, allowed
// mechanisms. The caller appends what is specific (CKA_VALUE, CKA_MODULUS_BITS, CKA_EC_PARAMS,
// ...).
pkcs11::AttributeTemplate TemplateOf(const KeySpec& spec, bool with_value_len);

// Reads the object's attributes and checks them against `spec`
// (FailedPrecondition/kPolicyViolation).
Status CheckKeyPolicy(pkcs11::Session& session, CK_OBJECT_HANDLE key, const KeySpec& spec);

}  // namespace kms::hal

#endif  // KMS_HAL_PKCS11_POLICY_H_
