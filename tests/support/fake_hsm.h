// FakeHsm: an in-memory `hal::Hsm` for tests, built on mbedTLS 2.28. Never linked into a product
// binary (it lives in tests/support and is the target kms_test_support_fake).
//
// Contract: the fake enforces the same contract as the real HAL documented in hal/hsm.h, so a test
// written against the fake holds against the PKCS#11 backend (tests/hal/hsm_contract_test.cc runs
// one suite against both):
//  * Keys live in process memory, in SecretBytes only (raw AES/HMAC bytes, or DER PKCS#8 for
//    private keys). `WrapKey` is RFC 5649 (AES key wrap with padding) under a random in-memory
//    AES-256 domain key drawn when the fake is made; `UnwrapKey` of a tampered blob, or of a blob
//    from a fake with another domain key, is InvalidArgument/kInvalidCiphertext.
//  * AES-GCM: 12-byte IVs from the fake's CTR-DRBG, 16-byte tags; any other IV or tag length is
//    InvalidArgument; a failed tag check is InvalidArgument/kInvalidCiphertext with no detail.
//  * ECDSA signatures are DER, parsed strictly (no BER lengths, no non-minimal or negative
//    INTEGERs, no trailing bytes): anything else is InvalidArgument/kInvalidSignature. A bad MAC
//    is kInvalidMac.
//  * A key used for another purpose or algorithm than it was made for is
//    InvalidArgument/kInvalidKeyUsage. A mechanism missing from `capabilities()` is
//    Unimplemented/kMechanismUnsupported.
//  * Material formats: `ImportKey` takes raw bytes for AES-256 (32 bytes) and HMAC keys (from the
//    hash's output size up to 512 bytes: RFC 2104 §3 discourages shorter keys, SoftHSM2 refuses
//    them), and DER PKCS#8 PrivateKeyInfo for RSA/EC keys. `GenerateExportableKeyPair` returns
//    PKCS#8.
//  * Only keys made by GenerateKey can be wrapped; imported, unwrapped and public keys answer
//    FailedPrecondition/kPolicyViolation (non-extractable, as on the device).
//  * Handles: a handle from another Hsm instance is InvalidArgument. `SimulateReinitialize()`
//    makes every existing handle answer Unavailable/kHandleStale, as the real HAL does after a
//    device re-init.
//  * Token data is an in-memory map with the real HAL's limits (label 1..64 bytes, value 1..1024
//    bytes) and NotFound for an absent label. It belongs to the simulated token, so `NewSibling()`
//    (the same device after a restart) sees and changes the same values; a fresh fake starts empty.
//
// Thread-safety: every method may be called concurrently; keys are immutable once made, and the
// DRBG and the token data are guarded by mutexes.
#ifndef KMS_TESTS_SUPPORT_FAKE_HSM_H_
#define KMS_TESTS_SUPPORT_FAKE_HSM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/hsm.h"
#include "hal/key_types.h"

namespace kms::testing {

// Everything the fake can do: all key and signature algorithms, GCM, KWP, OAEP with SHA-1..SHA-512.
hal::Capabilities FakeHsmFullCapabilities();
// What SoftHSM2 2.6.1 offers (docs/softhsm2.md "Mechanisms"): as the full set, but RSA-OAEP with
// SHA-1 only.
hal::Capabilities SoftHsm2LikeCapabilities();

struct FakeHsmOptions {
  // The fake refuses (Unimplemented/kMechanismUnsupported) whatever is missing here, so capability
  // checks in callers can be tested.
  hal::Capabilities capabilities = FakeHsmFullCapabilities();
};

class FakeHsm final : public hal::Hsm {
 public:
  explicit FakeHsm(FakeHsmOptions options);
  ~FakeHsm() override;
  FakeHsm(const FakeHsm&) = delete;
  FakeHsm& operator=(const FakeHsm&) = delete;

  // --- test knobs --------------------------------------------------------------------------------
  // A second device holding the same domain key on the same token (a restarted appliance): it
  // unwraps this fake's WrappedKeys and shares its token data, but handles do not cross between the
  // two.
  std::unique_ptr<FakeHsm> NewSibling() const;
  // Every handle made so far goes stale (Unavailable/kHandleStale); new ones work.
  void SimulateReinitialize();
  // Keys currently loaded (handles alive), to check that dropping the last handle frees the key.
  std::size_t LoadedKeyCount() const;
  // Fault injection (as Beast's fail_count): after `after_calls` more hal::Hsm calls succeed, the
  // next `count` calls return `status` without doing anything (e.g. UnavailableError("device
  // gone")). capabilities() and the knobs are not counted; count 0 clears a pending failure.
  void InjectFailure(Status status, std::size_t after_calls = 0, std::size_t count = 1);

  // --- hal::Hsm ----------------------------------------------------------------------------------
  const hal::Capabilities& capabilities() const override;
  StatusOr<hal::KeyHandle> GenerateKey(hal::KeyAlgorithm algorithm,
                                       hal::KeyPurpose purpose) override;
  StatusOr<hal::WrappedKey> WrapKey(const hal::KeyHandle& key) override;
  StatusOr<hal::KeyHandle> UnwrapKey(const hal::WrappedKey& wrapped) override;
  StatusOr<hal::KeyHandle> ImportKey(hal::KeyAlgorithm algorithm, hal::KeyPurpose purpose,
                                     const SecretBytes& material) override;
  StatusOr<hal::KeyHandle> ImportPublicKey(hal::KeyAlgorithm algorithm, hal::KeyPurpose purpose,
                                           ByteView public_key_der) override;
  StatusOr<Bytes> PublicKeyDer(const hal::KeyHandle& key) override;
  StatusOr<hal::ExportedKeyPair> GenerateExportableKeyPair(hal::KeyAlgorithm algorithm) override;
  StatusOr<hal::GcmCiphertext> EncryptAesGcm(const hal::KeyHandle& key, ByteView plaintext,
                                             ByteView aad) override;
  StatusOr<SecretBytes> DecryptAesGcm(const hal::KeyHandle& key, ByteView iv, ByteView ciphertext,
                                      ByteView tag, ByteView aad) override;
  StatusOr<Bytes> SignDigest(const hal::KeyHandle& key, hal::SignatureAlgorithm algorithm,
                             ByteView digest) override;
  Status VerifyDigest(const hal::KeyHandle& key, hal::SignatureAlgorithm algorithm, ByteView digest,
                      ByteView signature) override;
  StatusOr<Bytes> ComputeMac(const hal::KeyHandle& key, ByteView message) override;
  Status VerifyMac(const hal::KeyHandle& key, ByteView message, ByteView mac) override;
  StatusOr<Bytes> EncryptRsaOaep(const hal::KeyHandle& key, hal::HashAlgorithm hash,
                                 ByteView plaintext) override;
  StatusOr<SecretBytes> DecryptRsaOaep(const hal::KeyHandle& key, hal::HashAlgorithm hash,
                                       ByteView ciphertext) override;
  StatusOr<SecretBytes> GenerateRandom(std::size_t size) override;
  Status CheckHealth() override;
  StatusOr<Bytes> ReadTokenData(std::string_view label) override;
  Status WriteTokenData(std::string_view label, ByteView value) override;

  struct State;  // DRBG, domain key, generation counter; shared only with the implementation

 private:
  FakeHsm(FakeHsmOptions options, std::shared_ptr<const SecretBytes> domain_key);

  hal::Capabilities capabilities_;
  std::unique_ptr<State> state_;
};

// The fake with every capability (or the given ones). Returns the concrete type so tests can reach
// the knobs; it converts to std::unique_ptr<hal::Hsm>.
std::unique_ptr<FakeHsm> NewFakeHsm(FakeHsmOptions options = {});

// RFC 5649 AES key wrap with padding under a caller-chosen AES KEK (16, 24 or 32 bytes): the fake's
// own implementation of the domain-key wrap (Debian's mbedTLS 2.28 is built without
// MBEDTLS_NIST_KW_C), exposed so the Wycheproof AES-KWP vectors can check it. Unwrap failures of
// any cause are InvalidArgument/kInvalidCiphertext.
StatusOr<Bytes> AesKwpWrap(const SecretBytes& kek, const SecretBytes& plaintext);
StatusOr<SecretBytes> AesKwpUnwrap(const SecretBytes& kek, ByteView wrapped);

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_FAKE_HSM_H_
