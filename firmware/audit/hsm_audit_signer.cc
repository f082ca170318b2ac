// HsmAuditSigner implementation. See hsm_audit_signer.h for the contract.
#include "firmware/audit/hsm_audit_signer.h"

#include <mbedtls/pk.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/encoding.h"
#include "hal/key_types.h"

namespace kms::firmware::audit {
namespace {

using store::TransactionMode;

constexpr std::string_view kKeyId = "audit";
constexpr std::uint32_t kVersion = 1;
// Signed once at Open and verified against the stored public key: a domain of its own, so the
// probe signature is never a valid checkpoint signature.
constexpr std::string_view kProbeLabel = "kms.audit.signer-probe.v1";

bool IsStale(const Status& s) {
  return s.code() == StatusCode::kUnavailable && s.reason() == Reason::kHandleStale;
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Fingerprint(ByteView public_key_der) {
  return HexEncode(AuditLineHash(AsStringView(public_key_der)));
}

// Meta values are free-form to the store, so the record checks it applies to its own tables are
// repeated here.
StatusOr<hal::WrappedKey> ParseRecord(std::string_view value) {
  records::KeyVersionRecord record;
  if (value.size() > static_cast<std::size_t>(INT32_MAX) ||
      !record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return DataLossError("audit signer: the stored signing key does not parse");
  }
  if (record.record_version() == 0) {
    return DataLossError("audit signer: the stored signing key has no record_version");
  }
  if (record.record_version() > store::kRecordVersion) {
    return FailedPreconditionError(
        "audit signer: the stored signing key was written by newer firmware");
  }
  if (record.key_id() != kKeyId || record.version() != kVersion ||
      record.algorithm() != records::HAL_ALGORITHM_EC_P256 ||
      record.purpose() != records::HAL_PURPOSE_SIGN_VERIFY || record.wrapped().empty() ||
      record.public_key_der().empty() ||
      record.key_material_id() != Fingerprint(AsBytes(record.public_key_der()))) {
    return DataLossError("audit signer: the stored signing key is malformed");
  }
  hal::WrappedKey wrapped;
  wrapped.algorithm = hal::KeyAlgorithm::kEcP256;
  wrapped.purpose = hal::KeyPurpose::kSignVerify;
  wrapped.wrapped = ToBytes(record.wrapped());
  wrapped.public_key_der = ToBytes(record.public_key_der());
  return wrapped;
}

// A blob the device refuses was not wrapped by this appliance's domain key, or was damaged.
StatusOr<hal::KeyHandle> Unwrap(hal::Hsm& hsm, const hal::WrappedKey& wrapped) {
  auto key = hsm.UnwrapKey(wrapped);
  if (!key.has_value() && key.error().code() == StatusCode::kInvalidArgument) {
    return DataLossError(
        "audit signer: the stored signing key does not unwrap under this domain key");
  }
  return key;
}

StatusOr<std::string> NewRecord(const hal::WrappedKey& wrapped) {
  records::KeyVersionRecord record;
  record.set_record_version(store::kRecordVersion);
  record.set_key_id(std::string(kKeyId));
  record.set_version(kVersion);
  record.set_key_material_id(Fingerprint(wrapped.public_key_der));
  record.set_algorithm(records::HAL_ALGORITHM_EC_P256);
  record.set_purpose(records::HAL_PURPOSE_SIGN_VERIFY);
  record.set_wrapped(ToString(wrapped.wrapped));
  record.set_public_key_der(ToString(wrapped.public_key_der));
  record.set_creation_time_ms(NowMs());
  record.set_state(records::KEY_VERSION_STATE_CURRENT);
  std::string serialized;
  if (!record.SerializeToString(&serialized)) {
    return InternalError("audit signer: signing key serialization failed");
  }
  return serialized;
}

bool VerifiesWith(ByteView public_key_der, ByteView digest, ByteView sig) {
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  const bool ok =
      mbedtls_pk_parse_public_key(&pk, public_key_der.data(), public_key_der.size()) == 0 &&
      mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig.data(),
                        sig.size()) == 0;
  mbedtls_pk_free(&pk);
  return ok;
}

}  // namespace

HsmAuditSigner::HsmAuditSigner(hal::Hsm& hsm, hal::WrappedKey wrapped, hal::KeyHandle key)
    : hsm_(hsm), wrapped_(std::move(wrapped)), key_(std::move(key)) {}

StatusOr<std::unique_ptr<HsmAuditSigner>> HsmAuditSigner::Open(hal::Hsm& hsm,
                                                               store::MetadataStore& store) {
  std::optional<hal::WrappedKey> wrapped;
  hal::KeyHandle key;
  {
    KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(TransactionMode::kReadOnly));
    auto value = txn->GetMeta(kAuditSigningKeyMeta);
    if (value.has_value()) {
      KMS_ASSIGN_OR_RETURN(wrapped, ParseRecord(*value));
    } else if (value.error().code() != StatusCode::kNotFound) {
      return value.error();
    }
  }
  if (!wrapped.has_value()) {
    // Created under the store's write lock, after re-reading: a process that lost the race finds
    // the winner's key here and uses it.
    KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(TransactionMode::kReadWrite));
    auto value = txn->GetMeta(kAuditSigningKeyMeta);
    if (value.has_value()) {
      KMS_ASSIGN_OR_RETURN(wrapped, ParseRecord(*value));
    } else if (value.error().code() != StatusCode::kNotFound) {
      return value.error();
    } else {
      KMS_ASSIGN_OR_RETURN(
          key, hsm.GenerateKey(hal::KeyAlgorithm::kEcP256, hal::KeyPurpose::kSignVerify));
      KMS_ASSIGN_OR_RETURN(wrapped, hsm.WrapKey(key));
      if (wrapped->public_key_der.empty()) {
        return InternalError("audit signer: the HSM gave no public key for the signing key");
      }
      KMS_ASSIGN_OR_RETURN(std::string serialized, NewRecord(*wrapped));
      KMS_RETURN_IF_ERROR(txn->PutMeta(kAuditSigningKeyMeta, serialized));
      KMS_RETURN_IF_ERROR(txn->Commit());
    }
  }
  if (key == nullptr) {
    KMS_ASSIGN_OR_RETURN(key, Unwrap(hsm, *wrapped));
  }
  std::unique_ptr<HsmAuditSigner> signer(new HsmAuditSigner(hsm, std::move(*wrapped), key));

  const auto probe = AuditLineHash(kProbeLabel);
  KMS_ASSIGN_OR_RETURN(Bytes sig, signer->SignDigest(probe));
  if (!VerifiesWith(signer->public_key_der(), probe, sig)) {
    return DataLossError("audit signer: the stored public key does not match the signing key");
  }
  return signer;
}

hal::KeyHandle HsmAuditSigner::Key() {
  std::lock_guard lock(mu_);
  return key_;
}

StatusOr<Bytes> HsmAuditSigner::SignDigest(ByteView sha256_digest) {
  if (sha256_digest.size() != 32) {
    return InvalidArgumentError("audit signer: the digest must be 32 bytes (SHA-256)");
  }
  hal::KeyHandle key = Key();
  auto sig = hsm_.SignDigest(key, hal::SignatureAlgorithm::kEcdsaSha256, sha256_digest);
  if (sig.has_value() || !IsStale(sig.error())) return sig;
  // The device was re-initialised since the key was loaded: load it again, once.
  KMS_ASSIGN_OR_RETURN(key, Unwrap(hsm_, wrapped_));
  {
    std::lock_guard lock(mu_);
    key_ = key;
  }
  return hsm_.SignDigest(key, hal::SignatureAlgorithm::kEcdsaSha256, sha256_digest);
}

}  // namespace kms::firmware::audit
