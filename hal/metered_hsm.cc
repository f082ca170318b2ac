#include "hal/metered_hsm.h"

#include <chrono>

namespace kms::hal {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(MeteredHsm::Op::kCount)> kNames = {
    "GenerateKey",
    "WrapKey",
    "UnwrapKey",
    "ImportKey",
    "ImportPublicKey",
    "PublicKeyDer",
    "GenerateExportableKeyPair",
    "EncryptAesGcm",
    "DecryptAesGcm",
    "SignDigest",
    "VerifyDigest",
    "ComputeMac",
    "VerifyMac",
    "EncryptRsaOaep",
    "DecryptRsaOaep",
    "GenerateRandom",
    "CheckHealth",
    "ReadTokenData",
    "WriteTokenData"};
// std::array pads missing initialisers with empty names: an Op added without one would be metered
// under operation="".
static_assert(!kNames.back().empty(), "every MeteredHsm::Op needs a name in kNames");

StatusCode CodeOf(const Status& s) { return s.code(); }
template <typename T>
StatusCode CodeOf(const StatusOr<T>& s) {
  return s.has_value() ? StatusCode::kOk : s.error().code();
}

}  // namespace

MeteredHsm::MeteredHsm(Hsm& inner, metrics::MetricsRegistry& registry)
    : inner_(inner),
      calls_(registry.AddCounter("kms_hsm_calls_total",
                                 "Calls into the HSM, by operation and outcome (ok or the status "
                                 "code).",
                                 {"operation", "outcome"})) {
  auto& durations =
      registry.AddHistogram("kms_hsm_call_duration_seconds",
                            "Time HSM calls took, waiting for a session included.", {"operation"});
  registry.AddGauge("kms_hsm_calls_in_flight",
                    "HSM calls in progress or waiting for one of the HSM's sessions.",
                    [this] { return static_cast<double>(in_flight_.load()); });
  for (std::size_t i = 0; i < meters_.size(); ++i) {
    meters_[i] = Meters{kNames[i], &calls_.With({kNames[i], "ok"}), &durations.With({kNames[i]})};
  }
}

template <typename Call>
auto MeteredHsm::Measure(Op op, Call&& call) {
  const Meters& m = meters_[static_cast<std::size_t>(op)];
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  const auto started = std::chrono::steady_clock::now();
  auto result = call();
  m.duration->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (const StatusCode code = CodeOf(result); code == StatusCode::kOk) {
    m.ok->Increment();
  } else {
    calls_.With({m.name, StatusCodeName(code)}).Increment();
  }
  return result;
}

StatusOr<KeyHandle> MeteredHsm::GenerateKey(KeyAlgorithm algorithm, KeyPurpose purpose) {
  return Measure(Op::kGenerateKey, [&] { return inner_.GenerateKey(algorithm, purpose); });
}
StatusOr<WrappedKey> MeteredHsm::WrapKey(const KeyHandle& key) {
  return Measure(Op::kWrapKey, [&] { return inner_.WrapKey(key); });
}
StatusOr<KeyHandle> MeteredHsm::UnwrapKey(const WrappedKey& wrapped) {
  return Measure(Op::kUnwrapKey, [&] { return inner_.UnwrapKey(wrapped); });
}
StatusOr<KeyHandle> MeteredHsm::ImportKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                          const SecretBytes& material) {
  return Measure(Op::kImportKey, [&] { return inner_.ImportKey(algorithm, purpose, material); });
}
StatusOr<KeyHandle> MeteredHsm::ImportPublicKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                                ByteView public_key_der) {
  return Measure(Op::kImportPublicKey,
                 [&] { return inner_.ImportPublicKey(algorithm, purpose, public_key_der); });
}
StatusOr<Bytes> MeteredHsm::PublicKeyDer(const KeyHandle& key) {
  return Measure(Op::kPublicKeyDer, [&] { return inner_.PublicKeyDer(key); });
}
StatusOr<ExportedKeyPair> MeteredHsm::GenerateExportableKeyPair(KeyAlgorithm algorithm) {
  return Measure(Op::kGenerateExportableKeyPair,
                 [&] { return inner_.GenerateExportableKeyPair(algorithm); });
}
StatusOr<GcmCiphertext> MeteredHsm::EncryptAesGcm(const KeyHandle& key, ByteView plaintext,
                                                  ByteView aad) {
  return Measure(Op::kEncryptAesGcm, [&] { return inner_.EncryptAesGcm(key, plaintext, aad); });
}
StatusOr<SecretBytes> MeteredHsm::DecryptAesGcm(const KeyHandle& key, ByteView iv,
                                                ByteView ciphertext, ByteView tag, ByteView aad) {
  return Measure(Op::kDecryptAesGcm,
                 [&] { return inner_.DecryptAesGcm(key, iv, ciphertext, tag, aad); });
}
StatusOr<Bytes> MeteredHsm::SignDigest(const KeyHandle& key, SignatureAlgorithm algorithm,
                                       ByteView digest) {
  return Measure(Op::kSignDigest, [&] { return inner_.SignDigest(key, algorithm, digest); });
}
Status MeteredHsm::VerifyDigest(const KeyHandle& key, SignatureAlgorithm algorithm, ByteView digest,
                                ByteView signature) {
  return Measure(Op::kVerifyDigest,
                 [&] { return inner_.VerifyDigest(key, algorithm, digest, signature); });
}
StatusOr<Bytes> MeteredHsm::ComputeMac(const KeyHandle& key, ByteView message) {
  return Measure(Op::kComputeMac, [&] { return inner_.ComputeMac(key, message); });
}
Status MeteredHsm::VerifyMac(const KeyHandle& key, ByteView message, ByteView mac) {
  return Measure(Op::kVerifyMac, [&] { return inner_.VerifyMac(key, message, mac); });
}
StatusOr<Bytes> MeteredHsm::EncryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                           ByteView plaintext) {
  return Measure(Op::kEncryptRsaOaep, [&] { return inner_.EncryptRsaOaep(key, hash, plaintext); });
}
StatusOr<SecretBytes> MeteredHsm::DecryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                                 ByteView ciphertext) {
  return Measure(Op::kDecryptRsaOaep, [&] { return inner_.DecryptRsaOaep(key, hash, ciphertext); });
}
StatusOr<SecretBytes> MeteredHsm::GenerateRandom(std::size_t size) {
  return Measure(Op::kGenerateRandom, [&] { return inner_.GenerateRandom(size); });
}
Status MeteredHsm::CheckHealth() {
  return Measure(Op::kCheckHealth, [&] { return inner_.CheckHealth(); });
}
StatusOr<Bytes> MeteredHsm::ReadTokenData(std::string_view label) {
  return Measure(Op::kReadTokenData, [&] { return inner_.ReadTokenData(label); });
}
Status MeteredHsm::WriteTokenData(std::string_view label, ByteView value) {
  return Measure(Op::kWriteTokenData, [&] { return inner_.WriteTokenData(label, value); });
}

}  // namespace kms::hal
