// HsmAuditSigner: the audit log's checkpoint signer (audit_log.h), an ECDSA P-256 key that lives in
// the HSM. Checkpoints are verified offline with its public key (audit_verify.h, kmsctl audit
// verify), so a log copied off the appliance can be checked without it.
//
// Contract:
//  * The key is generated in the HSM (hal::KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify) on first
//    use and stored ONLY as its hal::WrappedKey under the domain key, with its DER public key, in
//    the store's meta table under "audit.signing_key.1". The value is a records::KeyVersionRecord
//    (reused rather than adding a proto message: it has exactly the fields a wrapped asymmetric key
//    needs): key_id "audit", version 1, key_material_id = hex SHA-256 of the public key DER (the
//    "key" of every checkpoint), algorithm HAL_ALGORITHM_EC_P256, purpose HAL_PURPOSE_SIGN_VERIFY,
//    state CURRENT, wrapped, public_key_der, creation_time_ms. Creation happens inside one
//    read-write transaction that re-reads the name first, so processes sharing a store make one.
//  * Open proves the pair once: it signs a probe digest in the HSM and verifies it with mbedTLS
//    against the stored public key, the same check the offline verifier makes.
//  * Errors: DataLoss when the stored record is malformed, does not unwrap under this appliance's
//    domain key, or its public key does not match its private key; FailedPrecondition for a record
//    written by newer firmware; InvalidArgument from SignDigest for a digest that is not 32 bytes;
//    HSM and store failures pass through. A handle left stale by a device re-initialisation is
//    reloaded from the wrapped key once, transparently.
//  * Lifetime: the Hsm must outlive the signer (the store is used only inside Open).
//  * Thread-safety: SignDigest may be called from any thread.
#ifndef KMS_FIRMWARE_AUDIT_HSM_AUDIT_SIGNER_H_
#define KMS_FIRMWARE_AUDIT_HSM_AUDIT_SIGNER_H_

#include <memory>
#include <mutex>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"
#include "firmware/audit/audit_log.h"
#include "firmware/store/metadata_store.h"
#include "hal/hsm.h"

namespace kms::firmware::audit {

inline constexpr std::string_view kAuditSigningKeyMeta = "audit.signing_key.1";

class HsmAuditSigner final : public AuditSigner {
 public:
  // Loads the stored signing key, or makes and stores it on first use.
  static StatusOr<std::unique_ptr<HsmAuditSigner>> Open(hal::Hsm& hsm, store::MetadataStore& store);

  StatusOr<Bytes> SignDigest(ByteView sha256_digest) override;
  const Bytes& public_key_der() const override { return wrapped_.public_key_der; }

 private:
  HsmAuditSigner(hal::Hsm& hsm, hal::WrappedKey wrapped, hal::KeyHandle key);
  hal::KeyHandle Key();

  hal::Hsm& hsm_;
  const hal::WrappedKey wrapped_;  // no secret: the private key is wrapped under the domain key
  std::mutex mu_;                  // guards key_
  hal::KeyHandle key_;
};

}  // namespace kms::firmware::audit

#endif  // KMS_FIRMWARE_AUDIT_HSM_AUDIT_SIGNER_H_
