// Hsm: what the product core needs from a hardware security module, as operations on keys that stay
// inside it. Callers never see key bytes: they hold `KeyHandle`s to keys loaded in the device, and
// `WrappedKey`s (a key encrypted under the domain key) to store outside it.
//
// Contract:
//  * Keys are generated in the device as session objects and persisted only as `WrappedKey`s under the
//    domain key (PKCS#11 `CKM_AES_KEY_WRAP_PAD`, RFC 5649). `UnwrapKey` loads one back as a sensitive,
//    non-extractable session object. The device's object count does not grow with the number of keys.
//  * A `KeyHandle` keeps its device object alive; the object is destroyed when the last handle goes. A
//    handle that outlived a device re-initialisation answers `Unavailable` with `Reason::kHandleStale`:
//    unwrap again.
//  * The HAL enforces crypto policy itself, whatever the device would accept: AES-GCM IVs are 12 bytes drawn
//    from the device RNG, tags 16 bytes; every key gets a complete attribute template; no key can both wrap
//    and decrypt; a key whose attributes break the policy is refused when loaded (`kPolicyViolation`).
//  * Failures are Status values. A failed authentication (GCM tag, tampered wrapped blob) is
//    InvalidArgument with `Reason::kInvalidCiphertext` and no detail. A bad signature or MAC is
//    InvalidArgument with `kInvalidSignature` / `kInvalidMac`. A mechanism the device lacks is
//    Unimplemented with `kMechanismUnsupported`. Device faults are Unavailable or Internal.
//  * Thread-safety: every method may be called from any thread concurrently; implementations serialise
//    what their device requires.
#ifndef KMS_HAL_HSM_H_
#define KMS_HAL_HSM_H_

#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/key_types.h"

namespace kms::hal {

// A key loaded in the device. Opaque: each backend derives its own. Destroying the last reference
// destroys the device object.
class LoadedKey {
 public:
  LoadedKey(KeyAlgorithm algorithm, KeyPurpose purpose) : algorithm_(algorithm), purpose_(purpose) {}
  virtual ~LoadedKey() = default;
  LoadedKey(const LoadedKey&) = delete;
  LoadedKey& operator=(const LoadedKey&) = delete;

  KeyAlgorithm algorithm() const { return algorithm_; }
  KeyPurpose purpose() const { return purpose_; }

 private:
  KeyAlgorithm algorithm_;
  KeyPurpose purpose_;
};
using KeyHandle = std::shared_ptr<const LoadedKey>;

// A key as it may live outside the device: its secret (or private) part wrapped under the domain key,
// plus its public key for asymmetric keys. Carries no plaintext secret.
struct WrappedKey {
  KeyAlgorithm algorithm = KeyAlgorithm::kAes256;
  KeyPurpose purpose = KeyPurpose::kEncryptDecrypt;
  Bytes wrapped;         // C_WrapKey(domain key, CKM_AES_KEY_WRAP_PAD) of the secret or private key
  Bytes public_key_der;  // DER SubjectPublicKeyInfo; empty for symmetric keys
};

// An AES-GCM result. `iv` is 12 bytes from the device RNG, `tag` 16 bytes.
struct GcmCiphertext {
  Bytes iv;
  Bytes ciphertext;
  Bytes tag;
};

// A key pair made for handing to a caller (AWS GenerateDataKeyPair): the private key leaves the device
// once, as DER PKCS#8, and is never persisted by the appliance in plaintext.
struct ExportedKeyPair {
  SecretBytes private_key_pkcs8;
  Bytes public_key_der;
};

// What the device can do, asked of it at open time rather than assumed.
struct Capabilities {
  std::set<KeyAlgorithm> key_algorithms;
  std::set<SignatureAlgorithm> signature_algorithms;
  std::set<HashAlgorithm> oaep_hashes;  // RSA-OAEP hash (MGF1 with the same hash); may be empty
  bool aes_gcm = false;
  bool key_wrap_pad = false;
};

class Hsm {
 public:
  virtual ~Hsm() = default;

  virtual const Capabilities& capabilities() const = 0;

  // --- keys ---------------------------------------------------------------------------------------
  // Generates a key in the device, usable at once and wrappable under the domain key.
  virtual StatusOr<KeyHandle> GenerateKey(KeyAlgorithm algorithm, KeyPurpose purpose) = 0;
  // Wraps a key made by GenerateKey under the domain key, for storage outside the device.
  virtual StatusOr<WrappedKey> WrapKey(const KeyHandle& key) = 0;
  // Loads a wrapped key back into the device as a sensitive, non-extractable session key.
  virtual StatusOr<KeyHandle> UnwrapKey(const WrappedKey& wrapped) = 0;
  // Loads outside key material as a sensitive, non-extractable session key that cannot be wrapped.
  // For known-answer self-tests and test vectors; the only door through which key bytes enter.
  virtual StatusOr<KeyHandle> ImportKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                        const SecretBytes& material) = 0;
  // Loads a public key (DER SubjectPublicKeyInfo) for verification or RSA-OAEP encryption.
  virtual StatusOr<KeyHandle> ImportPublicKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                              ByteView public_key_der) = 0;
  // DER SubjectPublicKeyInfo of an asymmetric key.
  virtual StatusOr<Bytes> PublicKeyDer(const KeyHandle& key) = 0;
  // Generates an RSA or EC key pair whose private part is returned to the caller (GenerateDataKeyPair).
  virtual StatusOr<ExportedKeyPair> GenerateExportableKeyPair(KeyAlgorithm algorithm) = 0;

  // --- operations ---------------------------------------------------------------------------------
  virtual StatusOr<GcmCiphertext> EncryptAesGcm(const KeyHandle& key, ByteView plaintext,
                                                ByteView aad) = 0;
  virtual StatusOr<SecretBytes> DecryptAesGcm(const KeyHandle& key, ByteView iv, ByteView ciphertext,
                                              ByteView tag, ByteView aad) = 0;

  // Signs a digest already computed by the caller (the device lacks hash-and-sign for ECDSA). ECDSA
  // signatures are DER (ANSI X9.62 / RFC 3279 Ecdsa-Sig-Value); RSA ones the PKCS#1 octet string.
  virtual StatusOr<Bytes> SignDigest(const KeyHandle& key, SignatureAlgorithm algorithm,
                                     ByteView digest) = 0;
  // OK when valid; InvalidArgument/kInvalidSignature otherwise, including malformed DER.
  virtual Status VerifyDigest(const KeyHandle& key, SignatureAlgorithm algorithm, ByteView digest,
                              ByteView signature) = 0;

  // HMAC with the key's own hash.
  virtual StatusOr<Bytes> ComputeMac(const KeyHandle& key, ByteView message) = 0;
  // OK when `mac` is the full-length HMAC of `message`; InvalidArgument/kInvalidMac otherwise.
  virtual Status VerifyMac(const KeyHandle& key, ByteView message, ByteView mac) = 0;

  // RSA-OAEP with MGF1 over the same hash and an empty label.
  virtual StatusOr<Bytes> EncryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                         ByteView plaintext) = 0;
  virtual StatusOr<SecretBytes> DecryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                               ByteView ciphertext) = 0;

  // Bytes from the device RNG.
  virtual StatusOr<SecretBytes> GenerateRandom(std::size_t size) = 0;

  // A cheap round trip to the device, for health checks.
  virtual Status CheckHealth() = 0;

  // --- token data ---------------------------------------------------------------------------------
  // Small values kept on the token itself, beside the domain key, that survive restarts and that
  // only the logged-in user can read or change (PKCS#11 CKO_DATA, CKA_TOKEN and CKA_PRIVATE true):
  // the store's rollback watermark. Not for secrets and not for bulk data (a write may rewrite the
  // whole token file on SoftHSM2). NotFound when nothing is stored under `label`.
  virtual StatusOr<Bytes> ReadTokenData(std::string_view label) = 0;
  // Creates or replaces the value under `label` (label 1..64 bytes, value 1..1024 bytes;
  // InvalidArgument otherwise); durable on the token once it returns OK.
  virtual Status WriteTokenData(std::string_view label, ByteView value) = 0;
};

}  // namespace kms::hal

#endif  // KMS_HAL_HSM_H_
