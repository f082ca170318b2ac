// AccessKeyRegistry: the SigV4 access keys of the AWS door, created, listed,
// deactivated and deleted by operators, and looked up by the door on every request.
//
// Contract:
//  * An access key is an id ("AKMS" + 16 characters of A-Z 0-9, 20 in all, shaped like AWS's
//    "AKIA..." ids but with a prefix of its own) and a secret of 40 characters from A-Z a-z 0-9 / +
//    (AWS's secret alphabet), both drawn from the HSM RNG. The secret is returned once, by
//    `Create`, and is stored ONLY sealed: AES-256-GCM (hal::Hsm::EncryptAesGcm) under the appliance's
//    access-key sealing key, with AAD = "kms.access-key-secret.v1:" + access key id, so a sealed
//    secret copied onto another key's record does not open.
//  * The sealing key is generated in the HSM on first use and stored only as its hal::WrappedKey
//    under the domain key, in the store's meta table as a records::SealingKeyRecord named
//    "access_keys.sealing_key.<version>" (version 1 today; records carry the version that sealed
//    them, so a later rotation needs no format change). It is created inside one read-write
//    transaction that first re-reads the name, so two processes sharing a store never make two.
//  * Principals are IAM user NAMES (1..64 characters of A-Z a-z 0-9 + = , . @ _ -), never ARNs:
//    the ARN "arn:aws:iam::<account>:user/<name>" depends on appliance configuration and is built
//    at the door (api/aws/registry_access_key_store.h), as key ARNs are.
//  * `Lookup` reads the record on every call (so a deactivation or deletion made by any process
//    sharing the store takes effect at once) and answers NotFound with one message, "unknown access
//    key", for unknown AND inactive ids, so the door's UnrecognizedClientException cannot tell them
//    apart. Only the HSM decryption is cached: a bounded LRU of decrypted secrets (in SecretBytes)
//    keyed by id and valid only while the record's sealed bytes are unchanged; SetStatus and Delete
//    drop the entry.
//  * Errors: InvalidArgument for a malformed principal or page limit. NotFound for unknown ids
//    (and, on Lookup/RevealSecret, inactive ones). DataLoss when a sealed secret does not open (tampered,
//    moved between records, or sealed under another sealing key), or a stored sealing key is
//    malformed, missing, or does not unwrap under this appliance's domain key. Store and HSM
//    failures (Unavailable, Internal, ...) pass through. A failed seal never reads as success or as
//    "unknown key".
//  * Lifetime: the Hsm, MetadataStore and Clock must outlive the registry.
//  * Thread-safety: every method may be called concurrently from any thread; several processes may
//    share one store, each with its own registry.
#ifndef KMS_FIRMWARE_ACCESS_KEYS_H_
#define KMS_FIRMWARE_ACCESS_KEYS_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/clock.h"
#include "firmware/store/metadata_store.h"
#include "hal/hsm.h"

namespace kms::firmware {

// Lengths and prefix of the generated credentials.
inline constexpr std::string_view kAccessKeyIdPrefix = "AKMS";
inline constexpr std::size_t kAccessKeyIdLength = 20;
inline constexpr std::size_t kAccessKeySecretLength = 40;

struct AccessKeyRegistryOptions {
  // Decrypted secrets kept in memory (LRU). 0 disables the cache: every Lookup decrypts in the HSM.
  std::size_t secret_cache_capacity = 1024;
};

// What `Create` returns: the only time the secret leaves the registry in normal operation.
struct CreatedAccessKey {
  std::string access_key_id;
  SecretBytes secret;  // 40 ASCII characters
};

// One access key as listed to operators. Never carries the secret.
struct AccessKeyInfo {
  std::string access_key_id;
  std::string principal;  // IAM user name
  bool active = false;
  bool administrator = false;
  std::int64_t creation_time_ms = 0;
};

// What the door needs to verify a signature.
struct ResolvedAccessKey {
  SecretBytes secret;
  std::string principal;  // IAM user name
  bool administrator = false;
};

class AccessKeyRegistry {
 public:
  AccessKeyRegistry(hal::Hsm& hsm, store::MetadataStore& store, const Clock& clock,
                    AccessKeyRegistryOptions options = {});
  AccessKeyRegistry(const AccessKeyRegistry&) = delete;
  AccessKeyRegistry& operator=(const AccessKeyRegistry&) = delete;

  // Makes a new ACTIVE key for `principal` (an IAM user name). Durable before it returns.
  StatusOr<CreatedAccessKey> Create(std::string_view principal, bool administrator);
  // Keys ordered by id, after the id `after` ("" = from the start); limit 1..store::kMaxPageLimit.
  StatusOr<store::Page<AccessKeyInfo>> List(std::string_view after, std::size_t limit);
  // Activates or deactivates a key (an inactive key is kept and listed, but Lookup refuses it).
  // NotFound for an unknown id; setting the status it already has is OK.
  Status SetStatus(std::string_view access_key_id, bool active);
  // Removes a key for good. NotFound for an unknown id.
  Status Delete(std::string_view access_key_id);
  // The secret and principal of an ACTIVE key, for SigV4 verification. NotFound ("unknown access
  // key") for unknown or inactive ids; DataLoss if the sealed secret does not open.
  StatusOr<ResolvedAccessKey> Lookup(std::string_view access_key_id);

  // Dev-mode bootstrap: the id of an existing ACTIVE administrator key (the first by id, whatever
  // its principal), or of a new administrator key for `principal` made in the same transaction as
  // the search, so two processes starting together make at most one.
  StatusOr<std::string> EnsureBootstrapAdmin(std::string_view principal);
  // DEV MODE ONLY: the secret of an ACTIVE key, so the dev-mode composition root can print the
  // bootstrap key (as `vault server -dev` prints its root token). A production appliance never
  // calls it: there the secret is shown once, by Create. Errors as Lookup.
  StatusOr<SecretBytes> RevealSecret(std::string_view access_key_id);

 private:
  struct CachedSecret {
    std::string sealed_fingerprint;  // the record's sealing version, iv, ciphertext and tag
    SecretBytes secret;
    std::list<std::string>::iterator lru_position;
  };

  StatusOr<hal::KeyHandle> SealingKey(std::uint32_t version);
  StatusOr<hal::KeyHandle> LoadOrCreateSealingKey(std::uint32_t version);
  // A new record (id, sealed secret) for `principal`, and its secret. Does not touch the store.
  StatusOr<store::AccessKeyRecord> NewRecord(std::string_view principal, bool administrator,
                                             SecretBytes& secret_out);
  StatusOr<SecretBytes> Open(const store::AccessKeyRecord& record);
  StatusOr<SecretBytes> OpenCached(const store::AccessKeyRecord& record);
  StatusOr<store::AccessKeyRecord> ReadActive(std::string_view access_key_id);
  void ForgetSecret(std::string_view access_key_id);
  void ForgetSealingKey(std::uint32_t version);

  hal::Hsm& hsm_;
  store::MetadataStore& store_;
  const Clock& clock_;
  const AccessKeyRegistryOptions options_;

  std::mutex sealing_create_mu_;  // one creation attempt per process at a time
  std::mutex mu_;  // guards the two caches below; never held across HSM or store calls
  std::map<std::uint32_t, hal::KeyHandle> sealing_keys_;
  std::unordered_map<std::string, CachedSecret> secrets_;
  std::list<std::string> lru_;  // most recently used first
};

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_ACCESS_KEYS_H_
