#include "api/aws/authorization.h"

#include <boost/json/array.hpp>

#include <vector>

#include "api/aws/error_table.h"
#include "base/encoding.h"
#include "firmware/authz/access_control.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/key_service.h"

namespace kms::api::aws {

namespace json = boost::json;
using firmware::authz::AccessDecision;
using firmware::authz::AccessRequest;
using firmware::authz::KeyRef;

namespace {

// Where an operation's key comes from.
enum class KeySource {
  kNone,        // account-level action (identity policy only)
  kAnyForm,     // `field`: key id, key ARN, alias name or alias ARN
  kKeyOnly,     // `field`: key id or key ARN
  kCiphertext,  // Decrypt: the key the blob names (else KeyId)
  kReEncrypt,   // ReEncrypt: source from the blob (else SourceKeyId), destination DestinationKeyId
  kAlias,       // DeleteAlias: the key AliasName points at
  kAliasMove,   // UpdateAlias: the key AliasName points at now AND TargetKeyId
  kSelf,        // decided by the operation itself (RetireGrant)
};

struct Rule {
  std::string_view operation;
  KeySource source;
  std::string_view field;            // the member naming the key
  std::string_view grant_operation;  // "" = not grantable
  std::string_view context_field;    // the EncryptionContext member, "" = none
};

constexpr Rule kRules[] = {
    {"CreateKey", KeySource::kNone, "", "", ""},
    {"ListKeys", KeySource::kNone, "", "", ""},
    {"ListAliases", KeySource::kNone, "", "", ""},
    {"GenerateRandom", KeySource::kNone, "", "", ""},
    {"ListRetirableGrants", KeySource::kNone, "", "", ""},
    {"DescribeKey", KeySource::kAnyForm, "KeyId", "DescribeKey", ""},
    {"Encrypt", KeySource::kAnyForm, "KeyId", "Encrypt", "EncryptionContext"},
    {"Decrypt", KeySource::kCiphertext, "KeyId", "Decrypt", "EncryptionContext"},
    {"ReEncrypt", KeySource::kReEncrypt, "DestinationKeyId", "", ""},
    {"GenerateDataKey", KeySource::kAnyForm, "KeyId", "GenerateDataKey", "EncryptionContext"},
    {"GenerateDataKeyWithoutPlaintext", KeySource::kAnyForm, "KeyId",
     "GenerateDataKeyWithoutPlaintext", "EncryptionContext"},
    {"GenerateDataKeyPair", KeySource::kAnyForm, "KeyId", "GenerateDataKeyPair",
     "EncryptionContext"},
    {"GenerateDataKeyPairWithoutPlaintext", KeySource::kAnyForm, "KeyId",
     "GenerateDataKeyPairWithoutPlaintext", "EncryptionContext"},
    {"Sign", KeySource::kAnyForm, "KeyId", "Sign", ""},
    {"Verify", KeySource::kAnyForm, "KeyId", "Verify", ""},
    {"GetPublicKey", KeySource::kAnyForm, "KeyId", "GetPublicKey", ""},
    {"GenerateMac", KeySource::kAnyForm, "KeyId", "GenerateMac", ""},
    {"VerifyMac", KeySource::kAnyForm, "KeyId", "VerifyMac", ""},
    {"UpdateKeyDescription", KeySource::kKeyOnly, "KeyId", "", ""},
    {"EnableKey", KeySource::kKeyOnly, "KeyId", "", ""},
    {"DisableKey", KeySource::kKeyOnly, "KeyId", "", ""},
    {"ScheduleKeyDeletion", KeySource::kKeyOnly, "KeyId", "", ""},
    {"CancelKeyDeletion", KeySource::kKeyOnly, "KeyId", "", ""},
    {"CreateAlias", KeySource::kKeyOnly, "TargetKeyId", "", ""},
    {"DeleteAlias", KeySource::kAlias, "AliasName", "", ""},
    {"UpdateAlias", KeySource::kAliasMove, "TargetKeyId", "", ""},
    {"TagResource", KeySource::kKeyOnly, "KeyId", "", ""},
    {"UntagResource", KeySource::kKeyOnly, "KeyId", "", ""},
    {"ListResourceTags", KeySource::kKeyOnly, "KeyId", "", ""},
    {"EnableKeyRotation", KeySource::kKeyOnly, "KeyId", "", ""},
    {"DisableKeyRotation", KeySource::kKeyOnly, "KeyId", "", ""},
    {"GetKeyRotationStatus", KeySource::kKeyOnly, "KeyId", "", ""},
    {"RotateKeyOnDemand", KeySource::kKeyOnly, "KeyId", "", ""},
    {"ListKeyRotations", KeySource::kKeyOnly, "KeyId", "", ""},
    {"GetKeyPolicy", KeySource::kKeyOnly, "KeyId", "", ""},
    {"PutKeyPolicy", KeySource::kKeyOnly, "KeyId", "", ""},
    {"ListKeyPolicies", KeySource::kKeyOnly, "KeyId", "", ""},
    {"CreateGrant", KeySource::kKeyOnly, "KeyId", "CreateGrant", ""},
    {"ListGrants", KeySource::kKeyOnly, "KeyId", "", ""},
    {"RevokeGrant", KeySource::kKeyOnly, "KeyId", "", ""},
    {"RetireGrant", KeySource::kSelf, "", "", ""},
};

const Rule* FindRule(std::string_view operation) {
  for (const Rule& r : kRules) {
    if (r.operation == operation) return &r;
  }
  return nullptr;
}

// A string member, or nullopt when absent or of another type (the operation then refuses it).
std::optional<std::string_view> StringMember(const json::object& body, std::string_view name) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr || !v->is_string() || v->get_string().empty()) return std::nullopt;
  return std::string_view(v->get_string());
}

bool IsAliasForm(std::string_view key_id) {
  return key_id.starts_with("alias/") ||
         (key_id.starts_with("arn:") && key_id.find(":alias/") != std::string_view::npos);
}
std::string AliasNameOf(std::string_view key_id) {
  const auto at = key_id.find("alias/");
  return std::string(key_id.substr(at == std::string_view::npos ? 0 : at));
}

// The members the decision reads, when they are well formed; `malformed` when one is not.
struct Inputs {
  bool malformed = false;
  firmware::EncryptionContext context;
  std::vector<std::string> grant_tokens;
};

bool ReadContext(const json::object& body, std::string_view field,
                 firmware::EncryptionContext& out) {
  const json::value* v = body.if_contains(field);
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_object()) return false;
  for (const auto& [k, value] : v->get_object()) {
    if (!value.is_string()) return false;
    out.emplace(std::string(k), std::string(value.get_string()));
  }
  return true;
}

Inputs ReadInputs(const json::object& body, std::string_view context_field) {
  Inputs in;
  if (!context_field.empty() && !ReadContext(body, context_field, in.context)) {
    in.malformed = true;
  }
  if (const json::value* t = body.if_contains("GrantTokens"); t != nullptr && !t->is_null()) {
    if (!t->is_array() || t->get_array().size() > 10) {
      in.malformed = true;
    } else {
      for (const auto& token : t->get_array()) {
        if (!token.is_string() || token.get_string().empty() || token.get_string().size() > 8192) {
          in.malformed = true;
          break;
        }
        in.grant_tokens.emplace_back(token.get_string());
      }
    }
  }
  return in;
}

// Condition keys read straight from the request's members (kms:EncryptionAlgorithm, ...).
void AddRequestConditions(const json::object& body, firmware::authz::ConditionValues& c) {
  static constexpr std::pair<std::string_view, std::string_view> kMembers[] = {
      {"EncryptionAlgorithm", "kms:EncryptionAlgorithm"},
      {"SigningAlgorithm", "kms:SigningAlgorithm"},
      {"MacAlgorithm", "kms:MacAlgorithm"},
      {"MessageType", "kms:MessageType"},
      {"KeyPairSpec", "kms:DataKeyPairSpec"},
      {"GranteePrincipal", "kms:GranteePrincipal"},
      {"RetiringPrincipal", "kms:RetiringPrincipal"},
  };
  for (const auto& [member, key] : kMembers) {
    if (auto v = StringMember(body, member)) c.Set(key, std::string(*v));
  }
  if (const json::value* ops = body.if_contains("Operations"); ops && ops->is_array()) {
    std::vector<std::string> names;
    for (const auto& op : ops->get_array()) {
      if (op.is_string()) names.emplace_back(op.get_string());
    }
    c.Set("kms:GrantOperations", std::move(names));
  }
}

AwsError Denied(const firmware::authz::Caller& caller, std::string_view action,
                std::string_view resource, const AccessDecision& d, bool account_level) {
  std::string why;
  if (d.basis == "deny:explicit") {
    why = account_level ? "with an explicit deny in an identity-based policy"
                        : "with an explicit deny in a resource-based policy";
  } else {
    why = std::string(account_level ? "because no identity-based policy allows the "
                                    : "because no resource-based policy allows the ") +
          std::string(action) + " action";
  }
  return ClientError("AccessDeniedException",
                     "User: " + caller.principal_arn + " is not authorized to perform: " +
                         std::string(action) + " on resource: " + std::string(resource) + " " +
                         why);
}

}  // namespace

firmware::authz::Caller AuthzCaller(const sigv4::Caller& caller) {
  firmware::authz::Caller c;
  c.principal_arn = caller.principal;
  const auto slash = caller.principal.rfind(":user/");
  c.user_name = slash == std::string::npos ? caller.principal : caller.principal.substr(slash + 6);
  c.administrator = caller.administrator;
  return c;
}

KeyAuthorizer::KeyAuthorizer(firmware::KeyService& service, firmware::authz::AccessControl& access)
    : service_(service), access_(access) {}

std::optional<AwsError> KeyAuthorizer::Authorize(std::string_view operation,
                                                 const OperationContext& ctx,
                                                 json::object& body) const {
  const Rule* rule = FindRule(operation);
  // Operations outside the table (the not-implemented ones) touch no key.
  if (rule == nullptr || rule->source == KeySource::kSelf) return std::nullopt;
  const firmware::authz::Caller caller = AuthzCaller(ctx.caller);
  const std::string action = "kms:" + std::string(operation);
  RequestNote* note = ctx.note;

  // One decision on one key (or on none); errors as the client sees them.
  auto decide = [&](const KeyRef* key, std::string_view act, std::string_view grant_op,
                    const Inputs& in, firmware::authz::ConditionValues conditions)
      -> std::optional<AwsError> {
    AccessRequest req;
    req.action = std::string(act);
    req.key = key;
    req.grant_operation = std::string(grant_op);
    req.encryption_context = &in.context;
    req.conditions = std::move(conditions);
    req.grant_tokens = in.grant_tokens;
    auto d = access_.Decide(caller, req);
    if (!d) return ErrorFromStatus(d.error());
    if (note) {
      note->decision = d->basis;
      if (!d->grant_id.empty()) note->grant_id = d->grant_id;
    }
    if (!d->allowed) return Denied(caller, act, key ? key->arn : "*", *d, key == nullptr);
    return std::nullopt;
  };
  auto identify = [&](std::string_view given, bool allow_alias)
      -> std::expected<std::pair<KeyRef, firmware::KeyIdentity>, AwsError> {
    auto id = service_.IdentifyKey(given, allow_alias);
    if (!id) return std::unexpected(ErrorFromStatus(id.error()));
    return std::make_pair(KeyRef{id->key_id, id->arn}, *id);
  };
  auto key_conditions = [&](const firmware::KeyIdentity& id, std::string_view given) {
    firmware::authz::ConditionValues c;
    AddRequestConditions(body, c);
    c.Set("kms:KeySpec", std::string(firmware::KeySpecName(id.key_spec)));
    c.Set("kms:KeyUsage", std::string(firmware::KeyUsageName(id.key_usage)));
    c.Set("kms:KeyOrigin", "AWS_KMS");
    if (IsAliasForm(given)) c.Set("kms:RequestAlias", AliasNameOf(given));
    return c;
  };

  Inputs in = ReadInputs(body, rule->context_field);
  if (in.malformed) return std::nullopt;  // the operation refuses the request before any work
  if (note) note->encryption_context = in.context;

  switch (rule->source) {
    case KeySource::kSelf:
      return std::nullopt;
    case KeySource::kNone: {
      firmware::authz::ConditionValues c;
      AddRequestConditions(body, c);
      if (operation == "CreateKey") {
        if (auto spec = StringMember(body, "KeySpec")) c.Set("kms:KeySpec", std::string(*spec));
        if (auto usage = StringMember(body, "KeyUsage")) c.Set("kms:KeyUsage", std::string(*usage));
      }
      return decide(nullptr, action, "", in, std::move(c));
    }
    case KeySource::kAnyForm:
    case KeySource::kKeyOnly: {
      auto given = StringMember(body, rule->field);
      if (!given) return std::nullopt;  // missing or mistyped: the operation's ValidationException
      const std::string given_text(*given);
      auto found = identify(given_text, rule->source == KeySource::kAnyForm);
      if (!found) return found.error();
      if (note) note->key_arn = found->first.arn;
      if (auto denied = decide(&found->first, action, rule->grant_operation, in,
                               key_conditions(found->second, given_text))) {
        return denied;
      }
      // Run on the key that was decided, not on whatever the alias names a moment later.
      if (IsAliasForm(given_text)) body[rule->field] = found->first.arn;
      return std::nullopt;
    }
    case KeySource::kCiphertext: {
      std::optional<std::string> key_id;
      if (auto blob_text = StringMember(body, "CiphertextBlob")) {
        if (auto blob = Base64Decode(*blob_text)) {
          if (auto parsed = firmware::ParseCiphertextBlob(*blob)) {
            key_id = firmware::FormatKeyId(parsed->key_id);
          }
        }
      }
      std::string given_text;
      if (auto given = StringMember(body, "KeyId")) given_text = std::string(*given);
      if (!key_id) {
        // Not one of this appliance's symmetric blobs: an asymmetric ciphertext names its key in
        // KeyId; without one the operation refuses the blob.
        if (given_text.empty()) return std::nullopt;
        key_id = given_text;
      }
      auto found = identify(*key_id, true);
      if (!found) {
        // A key id is never reused: a blob naming no existing key cannot become decryptable, so
        // the operation may give its own answer (InvalidCiphertext / NotFound).
        if (found.error().type == "NotFoundException" && key_id != given_text) return std::nullopt;
        return found.error();
      }
      if (note) note->key_arn = found->first.arn;
      return decide(&found->first, action, rule->grant_operation, in,
                    key_conditions(found->second, given_text));
    }
    case KeySource::kReEncrypt: {
      Inputs source_in = ReadInputs(body, "SourceEncryptionContext");
      Inputs dest_in = ReadInputs(body, "DestinationEncryptionContext");
      if (source_in.malformed || dest_in.malformed) return std::nullopt;
      std::optional<std::string> source_id;
      if (auto blob_text = StringMember(body, "CiphertextBlob")) {
        if (auto blob = Base64Decode(*blob_text)) {
          if (auto parsed = firmware::ParseCiphertextBlob(*blob)) {
            source_id = firmware::FormatKeyId(parsed->key_id);
          }
        }
      }
      std::string source_given;
      if (auto given = StringMember(body, "SourceKeyId")) source_given = std::string(*given);
      if (!source_id && !source_given.empty()) source_id = source_given;
      if (source_id) {
        auto src = identify(*source_id, true);
        if (!src) {
          if (!(src.error().type == "NotFoundException" && source_id != source_given)) {
            return src.error();
          }
          return std::nullopt;  // the operation answers for a blob of no existing key
        }
        if (auto denied = decide(&src->first, "kms:ReEncryptFrom", "ReEncryptFrom", source_in,
                                 key_conditions(src->second, source_given))) {
          return denied;
        }
      } else {
        return std::nullopt;  // no key to decide on: the operation refuses the blob
      }
      auto dest_given = StringMember(body, "DestinationKeyId");
      if (!dest_given) return std::nullopt;
      const std::string dest_text(*dest_given);
      auto dst = identify(dest_text, true);
      if (!dst) return dst.error();
      if (note) {
        note->key_arn = dst->first.arn;
        note->encryption_context = dest_in.context;
      }
      if (auto denied = decide(&dst->first, "kms:ReEncryptTo", "ReEncryptTo", dest_in,
                               key_conditions(dst->second, dest_text))) {
        return denied;
      }
      if (IsAliasForm(dest_text)) body["DestinationKeyId"] = dst->first.arn;
      return std::nullopt;
    }
    case KeySource::kAlias:
    case KeySource::kAliasMove: {
      auto alias = StringMember(body, "AliasName");
      if (!alias || !alias->starts_with("alias/")) return std::nullopt;  // the operation's error
      const std::string alias_text(*alias);
      auto current = identify(alias_text, true);
      // An unknown alias is NotFoundException here rather than in the operation: running it would
      // race with a CreateAlias of that name.
      if (!current) return current.error();
      if (note) note->key_arn = current->first.arn;
      if (auto denied = decide(&current->first, action, "", in,
                               key_conditions(current->second, alias_text))) {
        return denied;
      }
      if (rule->source == KeySource::kAlias) return std::nullopt;
      auto target = StringMember(body, "TargetKeyId");
      if (!target) return std::nullopt;
      const std::string target_text(*target);
      auto next = identify(target_text, false);
      if (!next) return next.error();
      return decide(&next->first, action, "", in, key_conditions(next->second, target_text));
    }
  }
  return std::nullopt;
}

}  // namespace kms::api::aws
