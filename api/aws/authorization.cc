#include "api/aws/authorization.h"

#include <boost/json/array.hpp>

#include <optional>
#include <string>
#include <vector>

#include "api/aws/error_table.h"
#include "api/aws/internal/operation_support.h"
#include "base/encoding.h"
#include "firmware/authz/access_control.h"
#include "firmware/ciphertext_blob.h"
#include "firmware/key_service.h"

namespace kms::api::aws {

namespace json = boost::json;
using firmware::authz::AccessDecision;
using firmware::authz::AccessRequest;
using firmware::authz::ConditionValues;
using firmware::authz::KeyRef;

namespace {

bool IsAliasForm(std::string_view key_id) {
  return key_id.starts_with("alias/") ||
         (key_id.starts_with("arn:") && key_id.find(":alias/") != std::string_view::npos);
}
std::string AliasNameOf(std::string_view key_id) {
  const auto at = key_id.find("alias/");
  return std::string(key_id.substr(at == std::string_view::npos ? 0 : at));
}

// A string member that is present and well typed, for condition keys only: the operation
// validates these members itself.
std::optional<std::string_view> ConditionMember(const json::object& body, std::string_view name) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr || !v->is_string() || v->get_string().empty()) return std::nullopt;
  return std::string_view(v->get_string());
}

// Condition keys read straight from the request's members (kms:EncryptionAlgorithm, ...).
void AddRequestConditions(const json::object& body, ConditionValues& c) {
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
    if (auto v = ConditionMember(body, member)) c.Set(key, std::string(*v));
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
                std::string_view resource, const AccessDecision& d, bool identity_only) {
  std::string why;
  if (d.basis == "deny:explicit") {
    why = identity_only ? "with an explicit deny in an identity-based policy"
                        : "with an explicit deny in a resource-based policy";
  } else {
    why = std::string(identity_only ? "because no identity-based policy allows the "
                                    : "because no resource-based policy allows the ") +
          std::string(action) + " action";
  }
  return ClientError("AccessDeniedException",
                     "User: " + caller.principal_arn + " is not authorized to perform: " +
                         std::string(action) + " on resource: " + std::string(resource) + " " +
                         why);
}

AwsError InvalidCiphertext() {
  return ErrorFromStatus(InvalidArgumentError("", Reason::kInvalidCiphertext));
}

// One request's decisions, made in order; the first refusal ends it.
class Decider {
 public:
  Decider(firmware::KeyService& service, firmware::authz::AccessControl& access,
          const OperationContext& ctx, const json::object& body)
      : service_(service), access_(access), ctx_(ctx), body_(body), reader_(body) {
    caller_ = AuthzCaller(ctx.caller);
  }

  RequestReader& reader() { return reader_; }
  const firmware::authz::Caller& caller() const { return caller_; }
  RequestNote* note() const { return ctx_.note; }

  // The first error a member read here met, if any.
  std::optional<AwsError> ReadError() const { return reader_.error(); }

  // The key a member names, with the errors the operation gives for it.
  AwsResult<firmware::KeyIdentity> Identify(std::string_view given, bool allow_alias) {
    auto id = service_.IdentifyKey(given, allow_alias);
    if (!id) return std::unexpected(ErrorFromStatus(id.error()));
    return *id;
  }

  // The condition keys of a decision on `key`, named in the request as `given`.
  ConditionValues KeyConditions(const firmware::KeyIdentity& key, std::string_view given) const {
    ConditionValues c;
    AddRequestConditions(body_, c);
    c.Set("kms:KeySpec", std::string(firmware::KeySpecName(key.key_spec)));
    c.Set("kms:KeyUsage", std::string(firmware::KeyUsageName(key.key_usage)));
    c.Set("kms:KeyOrigin", "AWS_KMS");
    if (IsAliasForm(given)) c.Set("kms:RequestAlias", AliasNameOf(given));
    return c;
  }
  ConditionValues AccountConditions(std::string_view operation) const {
    ConditionValues c;
    AddRequestConditions(body_, c);
    if (operation == "CreateKey") {
      if (auto spec = ConditionMember(body_, "KeySpec")) c.Set("kms:KeySpec", std::string(*spec));
      if (auto usage = ConditionMember(body_, "KeyUsage")) {
        c.Set("kms:KeyUsage", std::string(*usage));
      }
    }
    return c;
  }

  // One decision on `key` (key policy, identity, grants) or, with `key` null, by the identity
  // policy on `resource` ("" = "*"). Records it in the note; the denial is the error.
  std::optional<AwsError> Decide(const KeyRef* key, std::string_view action,
                                 std::string_view grant_operation,
                                 const firmware::EncryptionContext& context,
                                 const std::vector<std::string>& grant_tokens,
                                 ConditionValues conditions, std::string_view resource = {}) {
    AccessRequest req;
    req.action = std::string(action);
    req.key = key;
    req.resource = std::string(resource);
    req.grant_operation = std::string(grant_operation);
    req.encryption_context = &context;
    req.conditions = std::move(conditions);
    req.grant_tokens = grant_tokens;
    auto d = access_.Decide(caller_, req);
    if (!d) return ErrorFromStatus(d.error());
    decision_ = *d;
    if (RequestNote* n = note()) {
      n->decision = d->basis;
      n->grant_id = d->grant_id;
    }
    if (!d->allowed) {
      const std::string shown = key ? key->arn : (resource.empty() ? "*" : std::string(resource));
      return Denied(caller_, action, shown, *d, key == nullptr);
    }
    return std::nullopt;
  }

  const AccessDecision& decision() const { return decision_; }
  firmware::KeyService& service() { return service_; }
  firmware::authz::AccessControl& access() { return access_; }

 private:
  firmware::KeyService& service_;
  firmware::authz::AccessControl& access_;
  const OperationContext& ctx_;
  const json::object& body_;
  RequestReader reader_;
  firmware::authz::Caller caller_;
  AccessDecision decision_;
};

KeyRef RefOf(const firmware::KeyIdentity& id) { return KeyRef{id.key_id, id.arn}; }

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

AwsResult<Authorization> KeyAuthorizer::Authorize(std::string_view operation,
                                                  const AccessRule& rule,
                                                  const OperationContext& ctx,
                                                  const json::object& body) const {
  Decider d(service_, access_, ctx, body);
  Authorization out;
  out.caller_ = d.caller();
  const std::string action = "kms:" + std::string(operation);
  auto fail = [](AwsError e) -> AwsResult<Authorization> { return std::unexpected(std::move(e)); };
  auto done = [&]() -> AwsResult<Authorization> {
    out.decision_ = d.decision();
    return std::move(out);
  };
  // A request refused for a malformed member before its key was identified still names the key
  // in its audit record when the body names one that exists (best effort: only on this path).
  auto fail_read = [&](AwsError e) -> AwsResult<Authorization> {
    RequestNote* n = d.note();
    if (n == nullptr || !n->key_arn.empty()) return std::unexpected(std::move(e));
    for (std::string_view member : {rule.key_member, std::string_view("KeyId"),
                                    std::string_view("SourceKeyId"), std::string_view("AliasName")}) {
      if (member.empty()) continue;
      if (auto given = ConditionMember(body, member)) {
        if (auto key = d.Identify(*given, true)) {
          n->key_arn = key->arn;
          return std::unexpected(std::move(e));
        }
      }
    }
    if (auto text = ConditionMember(body, "CiphertextBlob")) {
      if (auto blob = Base64Decode(*text)) {
        if (auto parsed = firmware::ParseCiphertextBlob(*blob)) {
          if (auto key = d.Identify(firmware::FormatKeyId(parsed->key_id), false)) {
            n->key_arn = key->arn;
          }
        }
      }
    }
    return std::unexpected(std::move(e));
  };

  // The members every decision of this operation reads, validated first.
  RequestReader& r = d.reader();
  std::vector<std::string> tokens;
  if (!rule.grant_operation.empty()) tokens = internal::ReadGrantTokens(r);
  firmware::EncryptionContext context;
  if (!rule.context_member.empty()) context = r.StringMap(rule.context_member);
  if (auto e = d.ReadError()) return fail_read(*e);
  if (RequestNote* n = d.note()) n->encryption_context = context;

  switch (rule.source) {
    case KeySource::kUnsupported:
      // The door answers these before asking; reaching here is a wiring fault, refused.
      return fail(ClientError("UnsupportedOperationException",
                              std::string(operation) + " is not supported by this appliance."));

    case KeySource::kAdministrator: {
      if (!ctx.caller.administrator) {
        if (RequestNote* n = d.note()) n->decision = "deny:not-administrator";
        return fail(ClientError("AccessDeniedException",
                                "User: " + ctx.caller.principal +
                                    " is not authorized to perform: KmsAppliance." +
                                    std::string(operation) +
                                    " (appliance administration needs an administrator access "
                                    "key)"));
      }
      if (RequestNote* n = d.note()) n->decision = "allow:administrator";
      out.decision_.allowed = true;
      out.decision_.basis = "allow:administrator";
      return out;
    }

    case KeySource::kAccount: {
      if (auto denied =
              d.Decide(nullptr, action, "", context, tokens, d.AccountConditions(operation))) {
        return fail(*denied);
      }
      return done();
    }

    case KeySource::kAnyForm:
    case KeySource::kKeyOnly: {
      const std::string given = r.RequiredString(rule.key_member, 1, 2048);
      if (auto e = d.ReadError()) return fail_read(*e);
      auto key = d.Identify(given, rule.source == KeySource::kAnyForm);
      if (!key) return fail(key.error());
      const KeyRef ref = RefOf(*key);
      if (RequestNote* n = d.note()) n->key_arn = ref.arn;
      if (auto denied = d.Decide(&ref, action, rule.grant_operation, context, tokens,
                                 d.KeyConditions(*key, given))) {
        return fail(*denied);
      }
      out.key_ = ref;
      return done();
    }

    case KeySource::kCiphertext:
    case KeySource::kReEncrypt: {
      const bool reencrypt = rule.source == KeySource::kReEncrypt;
      const Bytes blob = r.RequiredBlob("CiphertextBlob", 1, 6144);
      const auto given = r.String(reencrypt ? "SourceKeyId" : "KeyId", 1, 2048);
      firmware::EncryptionContext source_context;
      firmware::EncryptionContext destination_context;
      std::string destination;
      if (reencrypt) {
        source_context = r.StringMap("SourceEncryptionContext");
        destination = r.RequiredString("DestinationKeyId", 1, 2048);
        destination_context = r.StringMap("DestinationEncryptionContext");
      }
      if (auto e = d.ReadError()) return fail_read(*e);
      if (!reencrypt) source_context = context;
      // The key that decrypts: KeyId when given (RSA ciphertexts name their key only there, and a
      // symmetric blob of another key is then IncorrectKeyException), else the blob's own key.
      std::optional<firmware::KeyIdentity> source;
      if (given) {
        auto key = d.Identify(*given, true);
        if (!key) return fail(key.error());
        source = *key;
      } else {
        auto parsed = firmware::ParseCiphertextBlob(blob);
        if (!parsed) return fail(InvalidCiphertext());
        auto key = d.Identify(firmware::FormatKeyId(parsed->key_id), false);
        // A blob of no existing key can never be decrypted (key ids are never reused); its answer
        // is the same as for any other ciphertext this appliance cannot open.
        if (!key) {
          if (key.error().type == "NotFoundException") return fail(InvalidCiphertext());
          return fail(key.error());
        }
        source = *key;
      }
      const KeyRef source_ref = RefOf(*source);
      if (RequestNote* n = d.note()) {
        n->key_arn = source_ref.arn;
        n->encryption_context = source_context;
      }
      if (auto denied = d.Decide(&source_ref, reencrypt ? "kms:ReEncryptFrom" : action,
                                 reencrypt ? "ReEncryptFrom" : rule.grant_operation,
                                 source_context, tokens,
                                 d.KeyConditions(*source, given.value_or("")))) {
        return fail(*denied);
      }
      out.key_ = source_ref;
      if (!reencrypt) return done();
      auto dest = d.Identify(destination, true);
      if (!dest) return fail(dest.error());
      const KeyRef dest_ref = RefOf(*dest);
      if (auto denied = d.Decide(&dest_ref, "kms:ReEncryptTo", "ReEncryptTo", destination_context,
                                 tokens, d.KeyConditions(*dest, destination))) {
        if (RequestNote* n = d.note()) n->key_arn = dest_ref.arn;
        return fail(*denied);
      }
      out.second_key_ = dest_ref;
      return done();
    }

    case KeySource::kAliasCreate:
    case KeySource::kAliasDelete:
    case KeySource::kAliasMove: {
      const std::string alias = r.RequiredString("AliasName", 1, 256);
      std::string target;
      if (rule.source != KeySource::kAliasDelete) target = r.RequiredString("TargetKeyId", 1, 2048);
      if (auto e = d.ReadError()) return fail_read(*e);
      if (Status valid = firmware::KeyService::CheckAliasName(
              alias, /*writable=*/rule.source != KeySource::kAliasDelete);
          !valid.ok()) {
        return fail(ErrorFromStatus(valid));
      }
      // The keys involved are looked up first, for the audit record only: whether the alias or
      // the target exists is not answered before the caller may use the name.
      auto current = rule.source == KeySource::kAliasCreate
                         ? AwsResult<firmware::KeyIdentity>(std::unexpected(AwsError{}))
                         : d.Identify(alias, true);
      auto next = rule.source == KeySource::kAliasDelete
                      ? AwsResult<firmware::KeyIdentity>(std::unexpected(AwsError{}))
                      : d.Identify(target, false);
      if (RequestNote* n = d.note()) {
        if (current) n->key_arn = current->arn;
        else if (next) n->key_arn = next->arn;
      }
      // The alias itself is a resource (AWS: kms:<Action> "for the alias" in an IAM policy), so a
      // caller may not take a name its identity policy does not give it, whatever key it owns.
      const std::string alias_arn = service_.AliasArn(alias);
      if (auto denied = d.Decide(nullptr, action, "", context, tokens,
                                 d.AccountConditions(operation), alias_arn)) {
        return fail(*denied);
      }
      out.alias_name_ = alias;
      if (rule.source != KeySource::kAliasCreate) {
        if (!current) return fail(current.error());
        const KeyRef ref = RefOf(*current);
        if (auto denied =
                d.Decide(&ref, action, "", context, tokens, d.KeyConditions(*current, alias))) {
          return fail(*denied);
        }
        out.key_ = ref;
        if (rule.source == KeySource::kAliasDelete) return done();
      }
      if (!next) return fail(next.error());
      const KeyRef next_ref = RefOf(*next);
      if (RequestNote* n = d.note(); n && rule.source == KeySource::kAliasMove) {
        n->key_arn = current->arn;  // the record names the key the alias leaves
      }
      if (auto denied =
              d.Decide(&next_ref, action, "", context, tokens, d.KeyConditions(*next, target))) {
        if (RequestNote* n = d.note()) n->key_arn = next_ref.arn;
        return fail(*denied);
      }
      if (rule.source == KeySource::kAliasCreate) {
        out.key_ = next_ref;
      } else {
        out.second_key_ = next_ref;
      }
      return done();
    }

    case KeySource::kRetireGrant: {
      const auto token = r.String("GrantToken", 1, 8192);
      const auto key_id = r.String("KeyId", 1, 2048);
      const auto grant_id = r.String("GrantId", 1, 128);
      if (auto e = d.ReadError()) return fail_read(*e);
      if (!token && !(key_id && grant_id)) {
        return fail(ValidationError("RetireGrant needs a GrantToken, or both KeyId and GrantId"));
      }
      std::optional<KeyRef> named;
      if (key_id) {
        auto key = d.Identify(*key_id, false);
        if (!key) return fail(key.error());
        named = RefOf(*key);
      }
      firmware::authz::AccessControl::RetireTarget target;
      auto decided = access_.DecideRetireGrant(
          d.caller(), token ? std::optional<std::string_view>(*token) : std::nullopt,
          named ? &*named : nullptr,
          grant_id ? std::optional<std::string_view>(*grant_id) : std::nullopt, target);
      if (!decided) return fail(ErrorFromStatus(decided.error()));
      // The grant's key, as the token or KeyId named it: it must still exist.
      auto key = d.Identify(target.key_id, false);
      if (!key) return fail(key.error());
      const KeyRef ref = RefOf(*key);
      if (RequestNote* n = d.note()) {
        n->key_arn = ref.arn;
        n->decision = decided->basis;
        n->grant_id = decided->grant_id;
      }
      if (!decided->allowed) {
        return fail(ClientError("AccessDeniedException",
                                "User: " + d.caller().principal_arn +
                                    " is not authorized to perform: kms:RetireGrant on this "
                                    "grant"));
      }
      out.key_ = ref;
      out.grant_id_ = target.grant_id;
      out.decision_ = *decided;
      return out;
    }
  }
  return fail(AwsError{"KMSInternalException", 500, "An internal error occurred; retry the request."});
}

}  // namespace kms::api::aws
