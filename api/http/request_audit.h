// RequestAuditor: where the doors send the audit record of every request they answer,
// before the answer leaves. The composition root implements it over the firmware's hash-chained
// audit log (firmware/audit/audit_log.h); the doors know only this seam.
//
// Contract:
//  * `Ready` is asked before a request does any work: false (the log could not be written last
//    time) makes the door refuse the request with a server error, so nothing is performed
//    unaudited while the sink is known to be broken.
//  * `Record` returns OK only once the record is durable. On an error the door replaces its answer
//    with a server error (AWS KMSInternalException 500, Vault 500): the caller never receives an
//    answer that has no record (fail closed). A state change the operation already committed stays
//    committed; its request id is in the kmsd log line of the failure.
//  * Intent: before an operation that changes stored state commits anything, the door records
//    the request with outcome `kAuditOutcomeStarted` (status 0, the decision and key filled) and
//    runs the operation only if that record is durable. The final record follows with the same
//    request id. So a change can exist without its final record (the answer was refused) but never
//    without a record at all; an intent with no final record marks a change whose answer was
//    lost (a crash, or the final write failing).
//  * Records carry only the allow-listed fields below: never a plaintext, data key, signature,
//    secret or token. The encryption context is not secret (AWS logs it too).
//  * Thread-safety: both methods are called concurrently from every worker thread.
#ifndef KMS_API_HTTP_REQUEST_AUDIT_H_
#define KMS_API_HTTP_REQUEST_AUDIT_H_

#include <map>
#include <string>
#include <string_view>

#include "base/status.h"

namespace kms::api::http {

// The outcome of an intent record (see the contract).
inline constexpr std::string_view kAuditOutcomeStarted = "started";

struct AuditedRequest {
  std::string_view door;        // "aws", "appliance", "vault"
  std::string_view operation;   // "Encrypt", "transit/encrypt", "unknown"
  std::string_view request_id;  // the id the client saw
  std::string_view principal;   // caller ARN / token display name; "" when not authenticated
  std::string_view credential_id;  // access key id or token accessor, never the secret
  std::string_view source_address;
  std::string_view key_arn;     // the key acted on, "" for none
  std::string_view outcome;     // "ok", the error the client saw, or kAuditOutcomeStarted
  std::string_view error_message;
  unsigned status = 200;
  std::string_view grant_id;
  // "allow:<basis>", "deny:<basis>" or "refused:<stage>" (docs/access-control.md); never empty.
  std::string_view decision;
  const std::map<std::string, std::string>* encryption_context = nullptr;
};

class RequestAuditor {
 public:
  virtual ~RequestAuditor() = default;
  virtual bool Ready() const = 0;
  virtual Status Record(const AuditedRequest& request) = 0;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_REQUEST_AUDIT_H_
