// Backup and restore of a sealed appliance: what `kms-provision backup` and
// `kms-provision restore` do, with the SO rights only kms-provision holds.
//
// A backup is one file holding everything a fresh token and store need to become the appliance
// again, and no plaintext key material: the domain key (DK) wrapped under the backup KEK, and a
// consistent snapshot of the store (which holds only DK-wrapped keys and sealed secrets). The
// backup KEK and the file's MAC key are derived from the unseal secret (firmware/seal.h
// BackupKekFromUnsealSecret, BackupMacKeyFromUnsealSecret), so only M custodian shares can open a
// backup, exactly as only they can unseal the appliance.
//
// The DK's template (hal/pkcs11_policy.h) makes it extractable only under a key with
// CKA_TRUSTED=TRUE, which only the SO can set, and the SO may not create private objects: so the
// KEK is installed by the SO as a public *session* object (CKA_TOKEN=FALSE, CKA_PRIVATE=FALSE,
// sensitive, not extractable, WRAP or UNWRAP only, CKM_AES_KEY_WRAP_PAD only). Public session
// objects survive the logout (PKCS#11 v2.40 §5.6 destroys only private ones), so the user, logged in
// next with the PIN the shares derive, can wrap (backup) or unwrap (restore) the DK under it; the
// KEK is destroyed at once after, and it never touches the token's storage.
//
// The file (all integers big-endian; the layout is written by EncodeBackup):
//
//   "KMSBACKUP1"                        10 bytes: magic and format version
//   header length u32 | header          "name=value\n" lines, in this order: token_label,
//                                       domain_key_label, split_id (16 hex), threshold, shares,
//                                       store_epoch, created (Unix seconds)
//   wrapped DK length u32 | wrapped DK  CKM_AES_KEY_WRAP_PAD (RFC 5649) of the DK: 40 bytes
//   store length u64 | store image      a SQLite database image (sqlite3_backup of store.path)
//   MAC                                 32 bytes: HMAC-SHA256(MAC key, everything before it)
//
// DecodeBackup checks the MAC before it reads a single field, so a backup with any byte changed,
// or one read with the shares of another split, is refused with one message: "the backup is
// damaged or was not made with these shares: its MAC does not match".
//
// RunBackup (kmsd may keep running: the snapshot is SQLite's online backup, one read transaction)
// rebuilds the secret with a ShareCombiner bound to the store's seal descriptor, so a share of
// another split is refused, and checks it against the descriptor's verifier before the user logs
// in with the PIN it derives (a store without a verifier leaves that to the login). RunRestore
// refuses, before touching anything, a token label that already exists or a store.path that exists:
// it restores onto a fresh token and store only. It then initialises the token as `init` does
// (provisioning/token_init.h: a fresh SO PIN, the user PIN again TokenPinFromUnsealSecret(secret),
// so the same shares unseal it), unwraps the DK as a token object with the policy template, writes
// the store image (0600, atomically), gives its seal descriptor the secret's verifier if it has
// none (the MAC proved the secret), opens the HAL with the derived PIN (which checks the DK against
// the policy) and anchors the store's epoch on the new token (firmware/store_rollback.h).
//
// Secrets: shares, the SO PIN, the unseal secret, the PIN and both derived keys live only in
// SecretBytes and are wiped before return, except the new SO PIN, returned once for printing.
// Nothing secret is written to any file. Errors keep their code; after a restore began
// initialising the token, the message ends with a note to delete that token and the store.
//
// Thread-safety: not thread-safe; loads and finalises the PKCS#11 module, so nothing else in the
// process may use it meanwhile.
#ifndef KMS_PROVISIONING_BACKUP_H_
#define KMS_PROVISIONING_BACKUP_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/app/appliance_config.h"
#include "firmware/custodian_shares.h"

namespace kms::provisioning {

inline constexpr std::string_view kBackupMagic = "KMSBACKUP1";
inline constexpr std::string_view kBackupMacMismatch =
    "the backup is damaged or was not made with these shares: its MAC does not match";

struct BackupHeader {
  std::string token_label;
  std::string domain_key_label;
  std::array<std::uint8_t, firmware::kSplitIdSize> split_id{};
  std::uint8_t threshold = 0;
  std::uint8_t shares = 0;
  std::uint64_t store_epoch = 0;
  std::int64_t created = 0;  // Unix seconds
};

struct BackupContents {
  BackupHeader header;
  Bytes wrapped_domain_key;
  Bytes store_image;
};

// The file's bytes, MAC included (see the layout in the contract).
Bytes EncodeBackup(const BackupContents& contents, const SecretBytes& mac_key);
// Checks the MAC first (InvalidArgument kBackupMacMismatch), then parses; a file whose MAC holds
// but whose fields do not parse is DataLoss naming the field.
StatusOr<BackupContents> DecodeBackup(ByteView file, const SecretBytes& mac_key);

struct BackupOptions {
  std::vector<SecretBytes> shares;  // text shares, at least the threshold
  SecretBytes so_pin;
  std::string out_path;  // must not exist; written 0600 through a temporary file and rename
};

struct BackupResult {
  std::string path;
  BackupHeader header;
  std::size_t file_size = 0;
  std::size_t store_size = 0;
};

struct RestoreOptions {
  std::vector<SecretBytes> shares;
  std::string backup_path;
};

struct RestoreResult {
  BackupHeader header;  // of the backup restored
  std::string token_label;
  std::string token_serial;  // of the new token: hsm.token_serial must be set to it
  SecretBytes so_pin;        // the new token's, shown once
  std::string store_path;
  std::uint64_t keys = 0;  // customer keys in the restored store
  std::vector<std::string> warnings;
};

// InvalidArgument naming the configuration file unless it is a production configuration with a
// token label (both commands).
Status CheckBackupConfig(const app::ApplianceConfig& config);

StatusOr<BackupResult> RunBackup(const app::ApplianceConfig& config, const BackupOptions& options);
StatusOr<RestoreResult> RunRestore(const app::ApplianceConfig& config,
                                   const RestoreOptions& options);

// Summaries. A backup's has no secret; a restore's holds the new SO PIN, hence SecretBytes.
std::string FormatBackupText(const BackupResult& result);
std::string FormatBackupJson(const BackupResult& result);
SecretBytes FormatRestoreText(const RestoreResult& result);
SecretBytes FormatRestoreJson(const RestoreResult& result);

}  // namespace kms::provisioning

#endif  // KMS_PROVISIONING_BACKUP_H_
