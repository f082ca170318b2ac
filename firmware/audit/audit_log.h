// AuditLog: the appliance's tamper-evident audit log: one JSON line per request,
// hash-chained, with checkpoints signed by a key that lives in the HSM (the CloudTrail digest
// model), written fail-closed: "no audit record, no answer" (docs/access-control.md "What fails
// closed"; Vault blocks requests when no audit device can write; docs/access-control.md "Audit
// records").
//
// Contract:
//  * `Append` returns OK only once the record's line is written AND fdatasync'd. Concurrent
//    appenders are group-committed: they queue their lines, the first to find the file free
//    writes the whole queue with one write and one fdatasync and wakes the others. A failed
//    write or sync fails every appender of that batch with Unavailable "audit log: <path>:
//    <strerror>" (ENOSPC, EFBIG, EIO, ...); nothing is ever dropped silently. The failed batch
//    never existed: its bytes are truncated off (back to the last synced offset) and its sequence
//    numbers are reused.
//  * After a failure the writer is unhealthy (`healthy()` false) until a later write succeeds. The
//    next Append or Tick first re-establishes a known state: truncate back to the last good offset,
//    sync, and re-check that the file's last line is still the chain head in memory; if that fails
//    (the file changed under the writer) every Append keeps failing until the log is re-opened. So
//    a door can refuse work BEFORE doing it while `healthy()` is false; it should still Append the
//    refusal (or rely on Tick, which writes a checkpoint as a probe while unhealthy): that write is
//    what restores health once the disk has room again.
//  * Records carry only the typed fields of `AuditEvent`, an allow-list: there is no free-form
//    field, so no plaintext, data key, signature, token or secret can enter the log unless a door
//    puts it into one of these named fields. Every string passes through PrintableUtf8 (invalid
//    UTF-8 and control characters become '?') so a line is always valid JSON on one line.
//  * Checkpoints: once `checkpoint_every` lines have followed the last checkpoint (of any cause,
//    so the count restarts at each rotation), when `checkpoint_interval` has passed since the last
//    checkpoint and records were added (checked by Append and by Tick), before rotation, at Close,
//    and at Open when the previous run left unsigned records. A checkpoint signs (seq, chain
//    head, record count, time) with the AuditSigner. A signer failure never fails an Append (the
//    record is durable and chained; only the unsigned tail grows): the checkpoint is retried at the
//    next record and Tick returns the signer's error so the caller can log it. Open and Close do
//    return signer errors.
//  * Rotation: when the current file has reached `max_file_bytes`, the next write first appends a
//    checkpoint to it, then starts "audit-<seq of its first line, 20 digits>.log" in the same
//    folder. Sequence numbers and the chain continue across files. Files are created 0600 (O_EXCL),
//    the folder 0700 if missing; a new file's directory entry is fsync'd before it is used. A
//    folder or file that cannot be created (EACCES, EROFS, ...) fails Open or the Append that
//    needed it.
//  * Open of an existing folder continues the newest file: the last line gives seq and chain head.
//    A torn final line (no '\n': a crash mid-write; such a line was never acknowledged) is
//    truncated off, and a "recovered" line recording the dropped byte count is chained after the
//    last good line (deviation from a plain truncate: the verifier and the operator see that a
//    crash happened). A last line that is complete but does not parse is DataLoss: the writer never
//    continues a chain it cannot read. One process at a time: Open takes an exclusive flock on the
//    folder (FailedPrecondition while another writer holds it).
//  * Thread-safety: Append, Tick, healthy, last_seq, stats and public_key_der may be called from
//    any thread concurrently. Close once, after the last Append has returned; the destructor
//    closes.
//  * Lifetime: the AuditSigner must outlive the log.
//  * Deviations from the brief, and why: the chain hashes a line WITHOUT its '\n' (so a line can be
//    hashed as the verifier reads it); the "recovered" record above; a signer failure does not
//    fail Append (above); "records" counts event lines only; after a failure Tick writes a
//    checkpoint as a probe, since a door refusing work might never Append again; a group-commit
//    leader yields once when its batch is smaller than the previous one (on this machine's disk,
//    8 appenders went from ~4 to ~7 records per fdatasync).
//
// File format, version 1 (docs: this paragraph; kmsctl audit verify checks it offline). One JSON
// object per line, '\n' terminated, written by Boost.JSON (no whitespace; the verifier requires
// that canonical form). Every line starts with "v":1, "type", "seq" (1, 2, ... over all lines of
// all files, never reset) and "prev": the lowercase hex SHA-256 of the previous line's bytes
// without its '\n' (the last line of the previous file for a file's first line; 64 zeros for
// seq 1).
//   event:      {"v":1,"type":"event","seq":N,"prev":H,"time_ms":T,"request_id":"",
//                "door":"","operation":"","principal":"","credential_id":"","source_address":"",
//                "key_arn":"","outcome":"","error_message":"","http_status":200,
//                "encryption_context":{"k":"v",...},"grant_id":"","decision":""}
//   checkpoint: {"v":1,"type":"checkpoint","seq":N,"prev":H,"head":H,"records":R,"time_ms":T,
//                "key":K,"sig":S}
//               head = prev (the chain head the checkpoint covers); records = number of "event"
//               lines before it since the log's first line; K = hex SHA-256 of the signer's DER
//               SubjectPublicKeyInfo; S = base64 of the signer's signature (ECDSA P-256, DER) over
//               CheckpointDigest(seq, head, records, time_ms) below.
//   recovered:  {"v":1,"type":"recovered","seq":N,"prev":H,"time_ms":T,"truncated_bytes":B}
#ifndef KMS_FIRMWARE_AUDIT_AUDIT_LOG_H_
#define KMS_FIRMWARE_AUDIT_AUDIT_LOG_H_

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace kms::firmware::audit {

// What one request did, as the doors report it. Every field is metadata the client sent or saw;
// the struct deliberately has no payload field (no plaintext, ciphertext, data key, signature, MAC,
// token or secret), so such values cannot reach the log by accident.
struct AuditEvent {
  std::int64_t time_ms = 0;    // when the request was answered; 0 = the log's clock at Append
  std::string request_id;      // the id the client saw (x-amzn-RequestId / Vault request_id)
  std::string door;            // "aws", "appliance", "vault"
  std::string operation;       // "Encrypt", "transit/encrypt", ...
  std::string principal;       // ARN of the caller ("" when authentication failed)
  std::string credential_id;   // access key id or Vault token accessor (never the secret/token)
  std::string source_address;  // peer IP
  std::string key_arn;         // the key acted on, "" if none
  std::string outcome;         // "ok" or the error name (AccessDeniedException, ...)
  std::string error_message;   // the message the client saw ("" on success)
  int http_status = 200;
  std::map<std::string, std::string> encryption_context;  // not secret; AWS logs it too
  std::string grant_id;  // the grant that authorized the call, if any
  std::string decision;  // "allow:key-policy", "allow:grant", "deny:explicit", ...
};

// Signs checkpoint digests. The production signer keeps its key in the HSM (hsm_audit_signer.h).
// Thread-safety: SignDigest may be called from any thread (the log calls it from one at a time).
class AuditSigner {
 public:
  virtual ~AuditSigner() = default;
  // A signature over a 32-byte SHA-256 digest (ECDSA P-256: DER Ecdsa-Sig-Value).
  virtual StatusOr<Bytes> SignDigest(ByteView sha256_digest) = 0;
  // DER SubjectPublicKeyInfo of the verification key.
  virtual const Bytes& public_key_der() const = 0;
};

// ---- format helpers, shared by the writer and the verifier (audit_verify.h) -------------------
inline constexpr int kAuditFormatVersion = 1;
// The largest line the writer produces; longer records are refused (InvalidArgument), longer lines
// are refused by the verifier and by Open.
inline constexpr std::size_t kMaxAuditLineBytes = 256 * 1024;
// Domain label of checkpoint signatures: a signature made for anything else never verifies here.
inline constexpr std::string_view kCheckpointDomain = "kms.audit.checkpoint.v1";

// SHA-256 of a line's bytes (without its '\n').
std::array<std::uint8_t, 32> AuditLineHash(std::string_view line);
// The digest a checkpoint signs: SHA-256 of kCheckpointDomain || 0x00 || be64(seq) || head (32 raw
// bytes) || be64(records) || be64(time_ms as two's complement).
std::array<std::uint8_t, 32> CheckpointDigest(std::uint64_t seq, ByteView head,
                                              std::uint64_t records, std::int64_t time_ms);
// "audit-00000000000000000001.log" for 1; ParseAuditFileName inverts it (nullopt for other names).
std::string AuditFileName(std::uint64_t first_seq);
std::optional<std::uint64_t> ParseAuditFileName(std::string_view file_name);

struct AuditLogOptions {
  std::string folder;                                  // created 0700 if missing
  std::uint64_t max_file_bytes = 64ull * 1024 * 1024;  // rotate once a file has reached this
  std::uint64_t checkpoint_every = 1000;               // records between checkpoints (>= 1)
  std::chrono::milliseconds checkpoint_interval{60'000};
  std::function<std::int64_t()> now_ms;  // Unix ms; empty = the system clock
};

// Counters since Open, for benchmarks and metrics.
struct AuditLogStats {
  std::uint64_t lines = 0;     // lines written (events, checkpoints, recovered)
  std::uint64_t batches = 0;   // successful write+fdatasync rounds of Append (group commits)
  std::uint64_t syncs = 0;     // fdatasync/fsync calls that succeeded, rotation included
  std::uint64_t failures = 0;  // failed writes or syncs
};

class AuditLog {
 public:
  // Opens or creates the log in `options.folder` (see the contract). InvalidArgument for bad
  // options; Unavailable when the folder or file cannot be created or written; DataLoss when the
  // newest file's tail cannot be read back as a record; FailedPrecondition when another writer
  // holds the folder.
  static StatusOr<std::unique_ptr<AuditLog>> Open(AuditLogOptions options, AuditSigner& signer);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writes one record durably. OK only after write + fdatasync. Unavailable when the sink fails;
  // InvalidArgument for a record over kMaxAuditLineBytes; FailedPrecondition after Close.
  Status Append(const AuditEvent& event);
  // For a timer (every few seconds): writes a checkpoint when checkpoint_interval has passed with
  // records unsigned; while unhealthy, re-checks the file and writes a checkpoint as a probe.
  // Returns the write or signer error, OK otherwise.
  Status Tick();
  // Writes a final checkpoint (when records are unsigned), syncs and closes. Further Appends answer
  // FailedPrecondition. Idempotent.
  Status Close();

  // False after a failed write or sync, until a later one succeeds.
  bool healthy() const { return healthy_.load(); }
  // The seq of the last durable line (0 for an empty log).
  std::uint64_t last_seq() const { return last_seq_.load(); }
  // The checkpoint verification key (DER SubjectPublicKeyInfo), for GetAuditPublicKey.
  Bytes public_key_der() const;
  AuditLogStats stats() const;
  // The file being written (empty before the first file exists).
  std::string current_file() const;

 private:
  // The chain as the last durable line left it (or, while a batch is being built, as it will).
  struct Chain {
    std::uint64_t seq = 0;
    std::array<std::uint8_t, 32> head{};  // hash of line `seq`; zeros for an empty log
    std::uint64_t records = 0;            // event lines since the log's first line
    std::uint64_t since_checkpoint = 0;   // lines since the last checkpoint
    std::int64_t last_checkpoint_ms = 0;
    bool last_is_checkpoint = false;  // line `seq` is a checkpoint (nothing to sign again)
  };
  struct Batch {
    std::vector<std::string> fragments;  // event fields after "prev" (see EventLine)
    bool done = false;
    Status status;
  };

  AuditLog(AuditLogOptions options, AuditSigner& signer, int folder_fd);

  std::int64_t Now() const;
  // The I/O role: exactly one thread at a time holds it (io_busy_), and only it touches the file
  // and chain state below.
  void AcquireIo(std::unique_lock<std::mutex>& lock);
  void ReleaseIo(std::unique_lock<std::mutex>& lock);

  Status OpenExisting(const std::vector<std::string>& files);
  Status WriteEvents(const std::vector<std::string>& fragments);
  Status TickIo();
  Status CloseIo();
  // Recovery after a failure, then a file to write into (creating or rotating as needed).
  Status PrepareFile();
  Status Recover();
  Status Rotate();
  Status StartFile(std::uint64_t first_seq);
  enum class LineKind { kEvent, kCheckpoint, kRecovered };
  static void AddLine(Chain& next, std::string& buffer, std::string line, LineKind kind);
  Status AddCheckpoint(Chain& next, std::string& buffer);
  // Writes `buffer` at the good offset and syncs; on success adopts `next` as the chain.
  Status Commit(const Chain& next, const std::string& buffer);
  Status Fail(std::string_view what, int error);
  // Closes the files without writing anything (Open failed half-way).
  void Abandon();

  const AuditLogOptions options_;
  AuditSigner& signer_;
  const std::string key_id_;  // hex SHA-256 of the signer's public key

  mutable std::mutex mu_;  // guards the queue, io_busy_, closed_, current path
  std::condition_variable cv_;
  std::shared_ptr<Batch> pending_;
  bool io_busy_ = false;
  std::size_t last_batch_size_ = 0;
  bool closed_ = false;
  std::string path_;  // current file

  // Owned by the I/O role.
  int folder_fd_ = -1;  // holds the folder flock; fsync'd after creating a file
  int fd_ = -1;
  std::uint64_t offset_ = 0;      // bytes of the current file known good (synced)
  bool broken_ = false;           // a write or sync failed: recover before writing
  bool truncate_synced_ = false;  // Fail's cut back to offset_ is durable
  Chain chain_;
  std::string io_path_;  // current file, as the I/O role sees it

  std::atomic<bool> healthy_{true};
  std::atomic<std::uint64_t> last_seq_{0};
  std::atomic<std::uint64_t> stat_lines_{0}, stat_batches_{0}, stat_syncs_{0}, stat_failures_{0};
};

}  // namespace kms::firmware::audit

#endif  // KMS_FIRMWARE_AUDIT_AUDIT_LOG_H_
