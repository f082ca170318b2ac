// TransitKeyring: Vault transit's key model (docs/vault-door.md "Transit keys") over the key
// service, for the Vault door (api/vault/). A transit key is a NAME under a mount bound to one
// customer key of the KeyService, so the two doors share one key store and one HSM hierarchy: a
// transit key is also an AWS key (with the alias "alias/vault/<mount>/<name>" and the description
// "Vault transit key <mount>/<name>"), and every cryptographic operation goes through KeyService.
//
// Contract:
//  * Names: 1..128 characters of [A-Za-z0-9_-] (the AWS alias alphabet, so every transit key has an
//    alias); anything else is InvalidArgument "invalid key name". Mounts: 1..64 characters of
//    [A-Za-z0-9_-/], no leading, trailing or doubled '/' (else "invalid mount", on every call).
//  * Types: aes256-gcm96 -> SYMMETRIC_DEFAULT; ecdsa-p256/384/521 -> ECC_NIST_P256/384/521
//    SIGN_VERIFY; rsa-2048/3072/4096 -> RSA_* SIGN_VERIFY; hmac -> HMAC_256 GENERATE_VERIFY_MAC.
//    `derived` and `auto_rotate_period` are for aes256-gcm96 only; hmac `key_size` is 32 only.
//  * Records: records::TransitKeyRecord in the meta table under "vault.transit.<mount>.key.<name>".
//    CreateKey makes the KeyService key first, then the alias, then the record in a transaction
//    that re-reads the name; when another writer won the race, the loser's KeyService key is
//    scheduled for deletion and the winner's key is returned. Winner and loser then both point the
//    alias at the record's key, so racers converge and an alias a crash left behind is repaired. A
//    crash between the steps leaves at worst an unbound KeyService key (visible to the AWS door,
//    harmless), never a record without a key. DeleteKey removes the record, then the alias (if it
//    still names the key), then schedules the key's deletion.
//  * Versions: transit version N IS key-service version N (versions start at 1 and only grow; the
//    GCM bound's forced rotations add versions as any rotation does). `Rotate` adds a version
//    without AWS's on-demand quota (KeyService::RotateKeyUnbounded). Only aes256-gcm96 keys rotate:
//    the key service signs and MACs with the current version only, so rotating an asymmetric or
//    hmac key would orphan old signatures; Rotate on them is InvalidArgument naming the type.
//    `key_version` on encrypt/rewrap/datakey: absent or 0 = latest; negative "invalid key
//    version"; Vault's "requested version for encryption is higher than the latest key version" /
//    "... is less than the minimum encryption key version". An explicit version is pinned in the
//    key service (still GCM-counted; a spent pinned version is FailedPrecondition).
//  * Ciphertexts, HMACs and signatures are "vault:v<N>:<standard base64>" ("v0" reads as v1, as in
//    Vault). For aes256-gcm96 keys the payload is the key service's ciphertext blob
//    (docs/ciphertext-format.md), which names its key and version; Decrypt checks that the blob's
//    key is this key and its version is N. RSA keys are SIGN_VERIFY keys: Vault's RSA encryption
//    needs RSA-OAEP with SHA-256, which SoftHSM2 lacks, so encrypt/decrypt/datakey on them are
//    InvalidArgument saying so (and supports_encryption is false), never another hash.
//  * Sizes: encrypt plaintexts and hmac inputs are 1..4096 bytes (the key service's bound;
//    InvalidArgument naming it). Sign/verify inputs are unbounded: the digest is computed here
//    (mbedTLS; hashing guards no key) and signed as a DIGEST. `prehashed` input must be exactly the
//    hash's digest length. context (derived keys) and associated_data are bound in the key
//    service's encryption context, which holds at most 6000 of their bytes together
//    (InvalidArgument "context and associated_data must be at most 6000 bytes together on this
//    appliance", never the key service's own validation text). A signature or HMAC longer than
//    the key service verifies (6144 bytes) is `false`.
//  * Context: a `derived` key requires a non-empty `context` on every encrypt, decrypt, rewrap and
//    datakey call (Vault's "missing 'context' for key derivation; ..." text), and the ciphertext is
//    bound to it. Vault derives a key per context (HKDF); here the context is bound as an
//    encryption-context pair {"vault:context": base64(context)} in the blob's AAD instead, which
//    gives the property callers rely on (a ciphertext opens only with the same context) while every
//    key operation stays in the HSM. `associated_data` binds likewise as
//    {"vault:associated_data": base64}. A non-derived key ignores `context`, as Vault does.
//  * Signatures: ecdsa-p256 signs sha2-256 only, p384 sha2-384 only, p521 sha2-512 only (the AWS
//    specs' one algorithm each); RSA sha2-256/384/512 with pss (default) or pkcs1v15. Marshaling
//    asn1 (DER, standard base64) or jws (ECDSA: raw r||s; both: URL-safe base64 without padding).
//  * Unsupported Vault features answer InvalidArgument with a message naming them, never a silent
//    default: other key types (aes128-gcm96, chacha20-poly1305, ed25519, ...), convergent
//    encryption, exportable / allow_plaintext_backup = true, `nonce`, hash algorithms the key's
//    spec does not sign with, HMAC on a non-hmac key or with another hash than sha2-256, and sha1 /
//    sha2-224 / sha3 for signatures (sha3 also for Hash).
//  * Errors are kms::Status whose message is Vault's text (the door shows it verbatim in
//    {"errors": [...]}). NotFound for an unknown key, with Vault's per-path text: "key not found"
//    (read, rotate), "no existing key named <name> could be found" (config), "could not delete
//    key; not found" (delete), "encryption key not found" (encrypt, decrypt, rewrap, datakey, hmac),
//    "signing key not found" (sign), "signature verification key not found" (verify); the door
//    answers 400 on crypto paths and 404 on keys/<name> reads, as Vault. InvalidArgument for bad
//    input (400), FailedPrecondition for state refusals such as "deletion is not allowed for this
//    key", a disabled / pending-deletion KeyService key (the key service's text) or a record whose
//    KeyService key no longer exists (400), Unavailable / Internal pass through (503/500).
//    Decrypt of a ciphertext that does not open gives InvalidArgument "cipher: message
//    authentication failed" whatever the cause (no oracle). Vault's ciphertext-format messages,
//    exactly:
//      "invalid ciphertext: no prefix"                    (no "vault:v")
//      "invalid ciphertext: wrong number of fields"       (no ':' after the version)
//      "invalid ciphertext: version number could not be decoded"
//      "invalid ciphertext: version is too new"           (N > latest version)
//      "ciphertext or signature version is disallowed by policy (too old)"  (N < min_decryption)
//      "invalid ciphertext: could not decode base64"
//    HMACs and signatures parse the same way with "invalid HMAC: ..." / "invalid signature: ..."
//    (base64: "invalid HMAC: could not decode base64", "invalid base64 signature value"). A
//    well-formed HMAC or signature that does not verify is `false`.
//  * Bindings: every per-key method takes a KeyBinding. By name (a plain name converts to one:
//    operators' tools, scheduled work) it acts on whatever key-service key the name is bound to
//    when it runs. As decided (KeyBinding::Decided, what the Vault door's decision names) it acts
//    on the key-service key the name was bound to when the request was authorized, or on none,
//    and only on that: a name unbound since is the path's NotFound (as if the request had come
//    after the delete); a name bound to another key since (deleted and created again, or created
//    by another request after a decision on the unbound name) is FailedPrecondition "the key name
//    "<name>" was bound to another key while this request ran; retry the request", checked in
//    the same transaction as the change for changes. CreateKey decided on a key is a no-op when
//    the name still names it and creates when the name is unbound; decided on no key it creates,
//    and losing the creation race to another creator is that FailedPrecondition (its own
//    key-service key is scheduled for deletion, as for any loser). By name, racers converge.
//  * Thread-safety: every method may be called concurrently (the keyring keeps no mutable state).
//    Lifetime: the KeyService, store and clock must outlive the keyring.
#ifndef KMS_FIRMWARE_TRANSIT_KEYRING_H_
#define KMS_FIRMWARE_TRANSIT_KEYRING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/metadata_store.h"

namespace kms::firmware::transit {

// Which key a per-key operation acts on (the contract's "Bindings"). Holds views: the strings it
// was made from must outlive the call it is passed to.
class KeyBinding {
 public:
  // By name: whatever key the name is bound to when the operation runs.
  KeyBinding(std::string_view name) : name_(name) {}  // NOLINT(google-explicit-constructor)
  KeyBinding(const char* name) : name_(name) {}       // NOLINT(google-explicit-constructor)
  KeyBinding(const std::string& name) : name_(name) {}  // NOLINT(google-explicit-constructor)
  // As decided: `key_id` is the key-service key the name was bound to then, "" for none.
  static KeyBinding Decided(std::string_view name, std::string_view key_id) {
    KeyBinding b(name);
    b.decided_key_id_ = key_id;
    return b;
  }

  std::string_view name() const { return name_; }
  // nullopt: by name; "": decided on an unbound name; else the decided key-service key id.
  const std::optional<std::string_view>& decided_key_id() const { return decided_key_id_; }

 private:
  std::string_view name_;
  std::optional<std::string_view> decided_key_id_;
};

// Stable codes (stored in records::TransitKeyRecord::key_type).
enum class TransitKeyType : std::uint32_t {
  kAes256Gcm96 = 1,
  kEcdsaP256 = 2,
  kEcdsaP384 = 3,
  kEcdsaP521 = 4,
  kRsa2048 = 5,
  kRsa3072 = 6,
  kRsa4096 = 7,
  kHmac = 8,
};

// Vault's names: "aes256-gcm96", "ecdsa-p256", ..., "rsa-4096", "hmac".
std::string_view TransitKeyTypeName(TransitKeyType type);
// InvalidArgument for a Vault type this appliance lacks ("key type aes128-gcm96 is not supported by this
// appliance") and for a name Vault does not have ("unknown key type <name>").
StatusOr<TransitKeyType> ParseTransitKeyType(std::string_view name);

struct CreateTransitKeyOptions {
  TransitKeyType type = TransitKeyType::kAes256Gcm96;
  bool derived = false;
  bool convergent_encryption = false;  // refused
  bool exportable = false;             // refused when true
  bool allow_plaintext_backup = false; // refused when true
  std::int64_t auto_rotate_period_ms = 0;  // 0 = off, else >= 1 h
  std::optional<std::int64_t> key_size;    // hmac only: 32 (default) -> HMAC_256; others refused
};

struct TransitKeyVersion {
  std::uint32_t version = 0;
  std::int64_t creation_time_ms = 0;
  std::string public_key_pem;  // asymmetric keys: the version's SubjectPublicKeyInfo as PEM
};

// What keys/<name> reads report (the door renders Vault's field names).
struct TransitKeyInfo {
  std::string name;
  TransitKeyType type = TransitKeyType::kAes256Gcm96;
  bool derived = false;
  bool deletion_allowed = false;
  std::uint32_t latest_version = 0;
  std::uint32_t min_decryption_version = 1;
  std::uint32_t min_encryption_version = 0;
  std::uint32_t min_available_version = 0;
  std::int64_t auto_rotate_period_ms = 0;
  std::vector<TransitKeyVersion> versions;  // ascending, from min_available_version (or 1)
  std::string key_id;  // the KeyService key id
  std::string arn;
  bool supports_encryption = false;
  bool supports_decryption = false;
  bool supports_signing = false;
  bool supports_derivation = false;
};

// The key-service key behind a transit key, as the Vault door decides on it (Locate).
struct TransitKeyRef {
  std::string key_id;  // the KeyService key id
  std::string arn;
  TransitKeyType type = TransitKeyType::kAes256Gcm96;
  KeySpec key_spec = KeySpec::kSymmetricDefault;
  KeyUsage key_usage = KeyUsage::kEncryptDecrypt;
  std::string alias;  // "alias/vault/<mount>/<name>"
};

struct TransitKeyConfigUpdate {
  std::optional<std::int64_t> min_decryption_version;  // 1..latest
  std::optional<std::int64_t> min_encryption_version;  // 0 or min_decryption..latest
  std::optional<bool> deletion_allowed;
  std::optional<bool> exportable;              // true refused
  std::optional<bool> allow_plaintext_backup;  // true refused
  std::optional<std::int64_t> auto_rotate_period_ms;  // 0 or >= 1 h
};

struct EncryptInput {
  SecretBytes plaintext;
  Bytes context;          // derived keys: required
  Bytes associated_data;  // optional AEAD AAD
  std::optional<std::int64_t> key_version;  // absent or 0: latest; else >= min_encryption_version
};

// The appliance's bound on a plaintext to encrypt: 1 to 4096 bytes (the key service's; Vault
// itself takes an empty one). It depends on no key, so a caller that may create the key first (the
// Vault door's upsert) checks it before, and a request refused for it changes nothing.
Status CheckEncryptPlaintext(const SecretBytes& plaintext);

struct DecryptInput {
  std::string ciphertext;  // "vault:vN:..."
  Bytes context;
  Bytes associated_data;
};

struct TransitCiphertext {
  std::string ciphertext;  // "vault:vN:..."
  std::uint32_t key_version = 0;
};

struct TransitDataKey {
  std::string ciphertext;
  std::uint32_t key_version = 0;
  SecretBytes plaintext;  // empty for the "wrapped" variant
};

enum class SignatureScheme { kPss, kPkcs1v15 };

struct SignOptions {
  std::string hash_algorithm = "sha2-256";  // sha2-256, sha2-384, sha2-512 (Vault's names)
  bool prehashed = false;                   // input is already the digest
  SignatureScheme signature_algorithm = SignatureScheme::kPss;  // RSA only
  std::string marshaling_algorithm = "asn1";  // asn1 | jws (ECDSA)
  std::optional<std::int64_t> key_version;
};

struct TransitSignature {
  std::string signature;  // "vault:vN:..."
  std::uint32_t key_version = 0;
};

class TransitKeyring {
 public:
  TransitKeyring(KeyService& service, store::MetadataStore& store, const Clock& clock,
                 std::string mount);
  TransitKeyring(const TransitKeyring&) = delete;
  TransitKeyring& operator=(const TransitKeyring&) = delete;

  const std::string& mount() const { return mount_; }

  // ---- keys ----
  // Creating a name that exists is OK and changes nothing (Vault answers the existing key).
  StatusOr<TransitKeyInfo> CreateKey(const KeyBinding& key, const CreateTransitKeyOptions& options);
  StatusOr<TransitKeyInfo> ReadKey(const KeyBinding& key);
  // The key-service key a name is bound to, from one store read (no HSM, no key-service call):
  // NotFound "key not found" for an unbound name, InvalidArgument for a malformed name or mount.
  StatusOr<TransitKeyRef> Locate(std::string_view name);
  // Names in byte order.
  StatusOr<std::vector<std::string>> ListKeys();
  // Needs deletion_allowed. Unbinds the name at once and schedules the KeyService key for deletion
  // after AWS's shortest window (7 days), which keeps a recovery window Vault does not have.
  Status DeleteKey(const KeyBinding& key);
  StatusOr<TransitKeyInfo> UpdateConfig(const KeyBinding& key, const TransitKeyConfigUpdate& update);
  StatusOr<TransitKeyInfo> Rotate(const KeyBinding& key);

  // ---- cryptography ----
  StatusOr<TransitCiphertext> Encrypt(const KeyBinding& key, const EncryptInput& input);
  StatusOr<SecretBytes> Decrypt(const KeyBinding& key, const DecryptInput& input);
  // Decrypt, then Encrypt with `key_version` (latest when absent), in one call.
  StatusOr<TransitCiphertext> Rewrap(const KeyBinding& key, const DecryptInput& input,
                                     std::optional<std::int64_t> key_version);
  // bits: 128, 256 or 512. with_plaintext: the "plaintext" variant of datakey/<type>/<name>.
  StatusOr<TransitDataKey> GenerateDataKey(const KeyBinding& key, std::int64_t bits,
                                           const Bytes& context, const Bytes& associated_data,
                                           std::optional<std::int64_t> key_version,
                                           bool with_plaintext);
  // hmac keys only. algorithm: Vault's name (sha2-256 default); must be the key's.
  StatusOr<std::string> Hmac(const KeyBinding& key, const SecretBytes& input,
                             std::string_view algorithm, std::optional<std::int64_t> key_version);
  StatusOr<bool> VerifyHmac(const KeyBinding& key, const SecretBytes& input, std::string_view hmac,
                            std::string_view algorithm);
  StatusOr<TransitSignature> Sign(const KeyBinding& key, const SecretBytes& input,
                                  const SignOptions& options);
  // A well-formed signature that does not verify is `false`, not an error.
  StatusOr<bool> Verify(const KeyBinding& key, const SecretBytes& input, std::string_view signature,
                        const SignOptions& options);

  // random: 1..131072 bytes from the HSM RNG.
  StatusOr<SecretBytes> Random(std::int64_t bytes);
  // sha2-224/256/384/512 (software, mbedTLS: no key is involved). sha3-*: InvalidArgument.
  static StatusOr<Bytes> Hash(std::string_view algorithm, ByteView input);

  // ---- scheduled work ----
  // Rotates every key whose auto_rotate_period has passed since its last rotation. Returns how many
  // were rotated; failures are left for the next pass.
  StatusOr<std::size_t> RotateDue(std::int64_t now_ms);

 private:
  KeyService& service_;
  store::MetadataStore& store_;
  const Clock& clock_;
  const std::string mount_;
};

}  // namespace kms::firmware::transit

#endif  // KMS_FIRMWARE_TRANSIT_KEYRING_H_
