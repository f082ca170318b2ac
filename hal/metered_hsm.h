// MeteredHsm: an hal::Hsm that forwards every call to another Hsm and measures it, so an operator
// sees what the device is doing from `/metrics`:
//
//   kms_hsm_calls_total{operation, outcome}     counter: outcome "ok" or the status code name
//                                               ("INVALID_ARGUMENT" for a bad tag or signature,
//                                               "UNAVAILABLE" for a device fault)
//   kms_hsm_call_duration_seconds{operation}    histogram (metrics::LatencyBuckets), every outcome
//   kms_hsm_calls_in_flight                     gauge: calls inside the device or waiting for one
//                                               of its sessions (compare with the pool size)
//
// `operation` is the Hsm method's name ("EncryptAesGcm"). It changes nothing else: results, errors
// and secrets pass through untouched, and nothing about a call's arguments is recorded (not even a
// token data label: the label sets stay the fixed operations times the status codes).
//
// Lifetime: `inner` and `registry` must outlive the MeteredHsm. Thread-safety: as `inner`; the
// counters are atomics.
#ifndef KMS_HAL_METERED_HSM_H_
#define KMS_HAL_METERED_HSM_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <string_view>

#include "base/metrics.h"
#include "hal/hsm.h"

namespace kms::hal {

class MeteredHsm final : public Hsm {
 public:
  MeteredHsm(Hsm& inner, metrics::MetricsRegistry& registry);
  MeteredHsm(const MeteredHsm&) = delete;
  MeteredHsm& operator=(const MeteredHsm&) = delete;

  const Capabilities& capabilities() const override { return inner_.capabilities(); }
  StatusOr<KeyHandle> GenerateKey(KeyAlgorithm algorithm, KeyPurpose purpose) override;
  StatusOr<WrappedKey> WrapKey(const KeyHandle& key) override;
  StatusOr<KeyHandle> UnwrapKey(const WrappedKey& wrapped) override;
  StatusOr<KeyHandle> ImportKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                const SecretBytes& material) override;
  StatusOr<KeyHandle> ImportPublicKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                      ByteView public_key_der) override;
  StatusOr<Bytes> PublicKeyDer(const KeyHandle& key) override;
  StatusOr<ExportedKeyPair> GenerateExportableKeyPair(KeyAlgorithm algorithm) override;
  StatusOr<GcmCiphertext> EncryptAesGcm(const KeyHandle& key, ByteView plaintext,
                                        ByteView aad) override;
  StatusOr<SecretBytes> DecryptAesGcm(const KeyHandle& key, ByteView iv, ByteView ciphertext,
                                      ByteView tag, ByteView aad) override;
  StatusOr<Bytes> SignDigest(const KeyHandle& key, SignatureAlgorithm algorithm,
                             ByteView digest) override;
  Status VerifyDigest(const KeyHandle& key, SignatureAlgorithm algorithm, ByteView digest,
                      ByteView signature) override;
  StatusOr<Bytes> ComputeMac(const KeyHandle& key, ByteView message) override;
  Status VerifyMac(const KeyHandle& key, ByteView message, ByteView mac) override;
  StatusOr<Bytes> EncryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                 ByteView plaintext) override;
  StatusOr<SecretBytes> DecryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                       ByteView ciphertext) override;
  StatusOr<SecretBytes> GenerateRandom(std::size_t size) override;
  Status CheckHealth() override;
  StatusOr<Bytes> ReadTokenData(std::string_view label) override;
  Status WriteTokenData(std::string_view label, ByteView value) override;

  // The operations measured, in the order of the Hsm interface.
  enum class Op : std::size_t {
    kGenerateKey,
    kWrapKey,
    kUnwrapKey,
    kImportKey,
    kImportPublicKey,
    kPublicKeyDer,
    kGenerateExportableKeyPair,
    kEncryptAesGcm,
    kDecryptAesGcm,
    kSignDigest,
    kVerifyDigest,
    kComputeMac,
    kVerifyMac,
    kEncryptRsaOaep,
    kDecryptRsaOaep,
    kGenerateRandom,
    kCheckHealth,
    kReadTokenData,
    kWriteTokenData,
    kCount,
  };

 private:
  // The children every successful call touches, found once so the hot path takes no lock.
  struct Meters {
    std::string_view name;
    metrics::Counter* ok = nullptr;
    metrics::Histogram* duration = nullptr;
  };

  template <typename Call>
  auto Measure(Op op, Call&& call);

  Hsm& inner_;
  metrics::CounterFamily& calls_;
  std::array<Meters, static_cast<std::size_t>(Op::kCount)> meters_;
  std::atomic<std::int64_t> in_flight_{0};
};

}  // namespace kms::hal

#endif  // KMS_HAL_METERED_HSM_H_
