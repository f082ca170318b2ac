// VerifyAuditLog: the offline check of an audit log written by AuditLog (audit_log.h has the
// format). Needs no HSM and no running appliance: only the files and the checkpoint public key (DER
// SubjectPublicKeyInfo, as the appliance's GetAuditPublicKey returns it).
//
// Contract:
//  * Every line is re-hashed and checked in order, across files: canonical v1 JSON with exactly the
//    fields of its type; seq = previous seq + 1; prev = SHA-256 of the previous line; a file named
//    audit-<N>.log starts at seq N; a zero prev only at seq 1; every checkpoint's head = its prev,
//    its key = the given key's fingerprint (a checkpoint signed by another key is a failure that
//    names that key), its signature valid under the given key, and its record count right.
//  * The report names the FIRST broken record (file, 1-based line, seq when readable, reason) and
//    stops there. Tampering is a report with ok = false, not an error status: the StatusOr fails
//    only when the check cannot run (unreadable file, no audit files, a public key that does not
//    parse).
//  * What a hash chain cannot show is reported as a warning, not a failure: records after the last
//    valid checkpoint are unsigned (deleting them, i.e. truncating the tail, is undetectable
//    without an outside anchor); a torn final line (no '\n': a crash mid-write, never
//    acknowledged to a client) is ignored; a log that starts after seq 1 (older files archived)
//    cannot have its first prev checked.
//  * The key may be of any type mbedTLS verifies with SHA-256: the appliance's is ECDSA P-256
//    (hsm_audit_signer.h); RSA PKCS#1 v1.5 works too (the tamper suite uses it for speed).
//  * Memory: each file is read whole (files are bounded by the writer's max_file_bytes).
//  * Thread-safety: free functions without shared state.
#ifndef KMS_FIRMWARE_AUDIT_AUDIT_VERIFY_H_
#define KMS_FIRMWARE_AUDIT_AUDIT_VERIFY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace kms::firmware::audit {

// One line, parsed and checked against its type's schema (not against its neighbours).
struct AuditLine {
  std::string type;  // "event", "checkpoint" or "recovered"
  std::uint64_t seq = 0;
  std::string prev;  // 64 lowercase hex characters
  std::int64_t time_ms = 0;
  // checkpoint only
  std::string head;
  std::uint64_t records = 0;
  std::string key;
  std::string sig;  // base64, as written
  // recovered only
  std::uint64_t truncated_bytes = 0;
};

// InvalidArgument whose message is the verifier's reason ("not JSON", "unknown field \"x\"", ...).
StatusOr<AuditLine> ParseAuditLine(std::string_view line);

// A file's name (for messages and the name/seq check: only its last path component counts) and
// its bytes.
struct AuditLogFile {
  std::string name;
  std::string contents;
};

struct AuditVerifyReport {
  bool ok = false;
  // The first broken record, when !ok.
  std::string broken_file;
  std::uint64_t broken_line = 0;  // 1-based, within broken_file
  std::optional<std::uint64_t> broken_seq;
  std::string reason;

  std::uint64_t files = 0;
  std::uint64_t lines = 0;        // lines checked before the first break (all types)
  std::uint64_t records = 0;      // event lines among them
  std::uint64_t checkpoints = 0;  // valid checkpoints
  std::uint64_t recoveries = 0;   // "recovered" lines (the writer restarted after a crash)
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t last_checkpoint_seq = 0;  // 0: none
  std::uint64_t unsigned_tail = 0;        // lines after the last valid checkpoint
  std::uint64_t torn_bytes = 0;           // an incomplete final line, ignored
  bool from_log_start = false;            // the first line is seq 1
  std::vector<std::string> warnings;

  // One line: "audit log intact: ..." or "audit log BROKEN at <file> line <n> (seq <s>): <reason>".
  std::string Verdict() const;
};

// Checks `files` as consecutive parts of one log, in order.
StatusOr<AuditVerifyReport> VerifyAuditContents(const std::vector<AuditLogFile>& files,
                                                ByteView public_key_der);
// Reads the files (paths, in log order) and checks them.
StatusOr<AuditVerifyReport> VerifyAuditLog(const std::vector<std::string>& files_in_order,
                                           ByteView public_key_der);
// Every audit-<seq>.log in `folder`, in name order (other files are ignored).
StatusOr<AuditVerifyReport> VerifyAuditFolder(const std::string& folder, ByteView public_key_der);
// The audit-<seq>.log paths of `folder` in name (= log) order (empty when there are none).
// NotFound when the folder does not exist, Unavailable when it cannot be read.
StatusOr<std::vector<std::string>> ListAuditFiles(const std::string& folder);

}  // namespace kms::firmware::audit

#endif  // KMS_FIRMWARE_AUDIT_AUDIT_VERIFY_H_
