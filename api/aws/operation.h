// What one AWS door operation is, and what it runs under.
//
// An operation is declared once, as an `OperationSpec`: how its caller is authorized (`AccessRule`:
// which members name its key, which grant operation can allow it, where its encryption context
// is), whether it changes state (`mutating`: the door writes an audit intent before it runs), and
// the function that performs it. The function's signature takes an `Authorization`, and only the
// authorization step (api/aws/authorization.h, `KeyAuthorizer`) can make one: an operation cannot
// be reached without an explicit Allow decided for it, and it acts on the keys that decision was
// made on (`Authorization::key()`), never on what the body names a moment later. That is the
// appliance's one authorization rule, enforced by the type system rather than by each handler
// remembering to ask (docs/access-control.md).
//
// Thread-safety: OperationTable is immutable once the door holds it; an Authorization belongs to
// one request.
#ifndef KMS_API_AWS_OPERATION_H_
#define KMS_API_AWS_OPERATION_H_

#include <boost/json/object.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/aws/aws_error.h"
#include "api/aws/sigv4.h"
#include "firmware/authz/access_control.h"

namespace kms::api::aws {

// What the door learns about a request while serving it, for its audit record: filled by the
// authorization step, read by the door after the operation.
struct RequestNote {
  std::string key_arn;  // the key acted on ("" for none)
  std::map<std::string, std::string> encryption_context;  // not secret (AWS logs it too)
  std::string grant_id;  // the grant that allowed the call
  // "allow:<basis>", "deny:<basis>", or, when the request was refused before a decision,
  // "refused:<stage>" (the door fills that in); never empty in an audit record.
  std::string decision;
};

// What an operation knows about the call besides its body.
struct OperationContext {
  const sigv4::Caller& caller;
  std::string_view request_id;
  RequestNote* note = nullptr;  // never null when the door calls an operation
  std::string_view source_address;
};

// Where the key an operation acts on comes from.
enum class KeySource {
  kAccount,        // account-level action: the caller's identity policy decides
  kAnyForm,        // `key_member`: key id, key ARN, alias name or alias ARN
  kKeyOnly,        // `key_member`: key id or key ARN
  kCiphertext,     // Decrypt: KeyId when given, else the key the ciphertext blob names
  kReEncrypt,      // ReEncrypt: source as Decrypt (SourceKeyId), destination DestinationKeyId
  kAliasCreate,    // CreateAlias: the alias (identity policy) and TargetKeyId (key policy)
  kAliasDelete,    // DeleteAlias: the alias (identity policy) and the key it names now
  kAliasMove,      // UpdateAlias: the alias, the key it names now, and TargetKeyId
  kRetireGrant,    // RetireGrant: the grant's own rules (retiring principal, grantee, key policy)
  kAdministrator,  // the appliance admin API: administrator access keys only
  kUnsupported,    // answered UnsupportedOperationException before anything is decided
};

struct AccessRule {
  KeySource source = KeySource::kAccount;
  std::string_view key_member;       // the member naming the key ("" when none)
  // The GrantOperation that can allow the action; "" when no grant can. Only operations a grant
  // can allow have GrantTokens in their model, so only they read that member.
  std::string_view grant_operation;
  std::string_view context_member;  // the EncryptionContext member ("" when none)
};

// The decision an operation runs under. Made only by KeyAuthorizer::Authorize, after an explicit
// Allow; carries the keys it was made on, resolved (an alias in the request is already the key
// ARN it named when the decision was made).
class Authorization {
 public:
  const firmware::authz::Caller& caller() const { return caller_; }
  const firmware::authz::AccessDecision& decision() const { return decision_; }
  // The key the decision was made on (Decrypt: the key that decrypts; ReEncrypt: the source;
  // UpdateAlias/DeleteAlias: the key the alias named). Only for operations with one.
  bool has_key() const { return key_.has_value(); }
  const firmware::authz::KeyRef& key() const { return *key_; }
  // ReEncrypt's destination, UpdateAlias's new target.
  const firmware::authz::KeyRef& second_key() const { return *second_key_; }
  // CreateAlias, UpdateAlias, DeleteAlias: the alias the decision was made on.
  const std::string& alias_name() const { return alias_name_; }
  // RetireGrant: the grant the decision was made on.
  const std::string& grant_id() const { return grant_id_; }

 private:
  friend class KeyAuthorizer;
  Authorization() = default;

  firmware::authz::Caller caller_;
  firmware::authz::AccessDecision decision_;
  std::optional<firmware::authz::KeyRef> key_;
  std::optional<firmware::authz::KeyRef> second_key_;
  std::string alias_name_;
  std::string grant_id_;
};

// One AWS operation: request JSON object in, response JSON object or AwsError out. Runs on a
// worker thread (may block on the HSM). Must be thread-safe. The body is the door's own parsed
// copy.
using Operation = std::function<AwsResult<boost::json::object>(
    const OperationContext&, const Authorization&, boost::json::object&)>;

struct OperationSpec {
  AccessRule rule;
  // Changes stored state: the door writes the audit record's intent, and runs the operation only
  // once that is durable, so no change exists without a record.
  bool mutating = false;
  Operation run;  // empty exactly when rule.source is kUnsupported
};

// Operation name ("Encrypt") -> OperationSpec.
class OperationTable {
 public:
  void Add(std::string name, OperationSpec spec);
  const OperationSpec* Find(std::string_view name) const;
  std::size_t size() const { return ops_.size(); }
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, OperationSpec, std::less<>> ops_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_OPERATION_H_
