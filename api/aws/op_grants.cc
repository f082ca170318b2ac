// AWS KMS CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant
// (docs/aws-kms-protocol.md, "Rules per operation") over firmware::authz::AccessControl.
#include <regex>

#include "api/aws/internal/policy_support.h"

namespace kms::api::aws::internal {

namespace {

using firmware::authz::GrantInfo;
using firmware::authz::KeyRef;

// GranteePrincipal / RetiringPrincipal: /^[\w+=,.@:/-]+$/ of 1..256 (the model), and, here, an IAM
// principal ARN or an AWS service principal, the only principals a grant can name.
bool IsPrincipal(std::string_view p) {
  static const std::regex kArn(R"(arn:aws:(iam|sts)::\d{12}:(root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+|assumed-role/[\w+=,.@/-]+))");
  static const std::regex kService(R"([a-z0-9.-]+\.amazonaws\.com)");
  const std::string s(p);
  return std::regex_match(s, kArn) || std::regex_match(s, kService);
}

std::optional<std::string> ReadPrincipal(RequestReader& r, std::string_view name, bool required,
                                         std::string_view path) {
  auto v = required ? std::optional<std::string>(r.RequiredString(name, 1, 256))
                    : r.String(name, 1, 256);
  if (r.error() || !v) return v;
  if (!IsPrincipal(*v)) {
    r.Fail(ValidationError("Value '" + *v + "' at '" + std::string(path) +
                           "' failed to satisfy constraint: Member must be an IAM principal ARN "
                           "(arn:aws:iam::<account>:user/<name>, :role/<name>, :root) or an AWS "
                           "service principal"));
    return std::nullopt;
  }
  return v;
}

std::optional<std::int64_t> ReadLimit(RequestReader& r, std::int64_t max) {
  const auto limit = r.Integer("Limit");
  if (!r.error() && limit && (*limit < 1 || *limit > max)) {
    r.Fail(ValidationError("Value '" + std::to_string(*limit) +
                           "' at 'limit' failed to satisfy constraint: Member must have value "
                           "between 1 and " + std::to_string(max)));
  }
  return limit;
}

boost::json::object ContextJson(const firmware::EncryptionContext& c) {
  boost::json::object o;
  for (const auto& [k, v] : c) o[k] = v;
  return o;
}

boost::json::object GrantJson(const GrantInfo& g, std::string_view key_arn) {
  boost::json::object e;
  e["KeyId"] = key_arn;
  e["GrantId"] = g.grant_id;
  if (!g.name.empty()) e["Name"] = g.name;
  PutTimestamp(e, "CreationDate", g.creation_time_ms);
  e["GranteePrincipal"] = g.grantee_principal;
  if (!g.retiring_principal.empty()) e["RetiringPrincipal"] = g.retiring_principal;
  e["IssuingAccount"] = g.issuing_account;
  PutStringList(e, "Operations", g.operations);
  if (g.constraints.encryption_context_subset || g.constraints.encryption_context_equals) {
    boost::json::object c;
    if (g.constraints.encryption_context_subset) {
      c["EncryptionContextSubset"] = ContextJson(*g.constraints.encryption_context_subset);
    }
    if (g.constraints.encryption_context_equals) {
      c["EncryptionContextEquals"] = ContextJson(*g.constraints.encryption_context_equals);
    }
    e["Constraints"] = std::move(c);
  }
  return e;
}

std::string ArnOf(const firmware::KeyService& service, std::string_view key_id) {
  return service.KeyArn(key_id);
}

// CreateGrant on a Disabled or PendingDeletion key is refused (docs/aws-kms-protocol.md "Key
// states").
std::optional<AwsError> CheckGrantable(const firmware::KeyIdentity& key) {
  if (key.key_state == firmware::KeyState::kDisabled) {
    return ErrorFromStatus(
        FailedPreconditionError(key.arn + " is disabled.", Reason::kKeyDisabled));
  }
  if (key.key_state == firmware::KeyState::kPendingDeletion) {
    return ErrorFromStatus(
        FailedPreconditionError(key.arn + " is pending deletion.", Reason::kKeyInvalidState));
  }
  return std::nullopt;
}

AwsError DryRun() {
  return ErrorFromStatus(FailedPreconditionError(
      "The request would have succeeded, but the DryRun option is set.",
      Reason::kDryRunOperation));
}

}  // namespace

OpResult CreateGrant(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  firmware::authz::GrantSpec spec;
  if (auto g = ReadPrincipal(r, "GranteePrincipal", true, "granteePrincipal")) {
    spec.grantee_principal = *g;
  }
  if (auto rp = ReadPrincipal(r, "RetiringPrincipal", false, "retiringPrincipal")) {
    spec.retiring_principal = *rp;
  }
  spec.operations = r.StringList("Operations", /*required=*/true);
  if (!r.error()) {
    if (spec.operations.empty()) {
      r.Fail(ValidationError("Value '[]' at 'operations' failed to satisfy constraint: Member "
                             "must have length greater than or equal to 1"));
    }
    for (const auto& op : spec.operations) {
      if (!firmware::authz::IsGrantOperation(op)) {
        r.Fail(ValidationError("Value '[" + op +
                               "]' at 'operations' failed to satisfy constraint: Member must "
                               "satisfy constraint: [Member must satisfy enum value set: "
                               "[Decrypt, Encrypt, GenerateDataKey, "
                               "GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, Sign, "
                               "Verify, GetPublicKey, CreateGrant, RetireGrant, DescribeKey, "
                               "GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext, "
                               "GenerateMac, VerifyMac, DeriveSharedSecret]]"));
        break;
      }
    }
  }
  if (const auto* c = body.if_contains("Constraints"); c != nullptr && !c->is_null()) {
    if (!c->is_object()) {
      r.Fail(ClientError("SerializationException", "Constraints must be a structure."));
    } else {
      RequestReader cr(c->get_object());
      if (c->get_object().contains("EncryptionContextSubset")) {
        spec.constraints.encryption_context_subset = cr.StringMap("EncryptionContextSubset");
      }
      if (c->get_object().contains("EncryptionContextEquals")) {
        spec.constraints.encryption_context_equals = cr.StringMap("EncryptionContextEquals");
      }
      if (cr.error()) r.Fail(*cr.error());
      if (spec.constraints.encryption_context_subset &&
          spec.constraints.encryption_context_equals) {
        r.Fail(ValidationError("Constraints may hold EncryptionContextSubset or "
                               "EncryptionContextEquals, not both"));
      }
    }
  }
  if (auto name = r.String("Name", 1, 256)) {
    static const std::regex kName(R"([a-zA-Z0-9:/_-]+)");
    if (!std::regex_match(*name, kName)) {
      r.Fail(ValidationError("Value '" + *name +
                             "' at 'name' failed to satisfy constraint: Member must satisfy "
                             "regular expression pattern: ^[a-zA-Z0-9:/_-]+$"));
    }
    spec.name = *name;
  }
  const bool dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto key, p.service.IdentifyKey(p.authorization.key().arn, false));
  if (auto e = CheckGrantable(key)) return std::unexpected(*e);
  if (dry_run) return std::unexpected(DryRun());
  spec.key = p.authorization.key();
  // A grant that allowed this call bounds what the new grant may give.
  KMS_AWS_ASSIGN_OR_FAIL(auto made, p.access.CreateGrant(p.authorization.caller(), spec,
                                                         p.authorization.decision()));
  boost::json::object out;
  out["GrantToken"] = made.grant_token;
  out["GrantId"] = made.grant_id;
  return out;
}

OpResult ListGrants(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const auto limit = ReadLimit(r, 100);
  const auto marker = r.String("Marker", 1, 1024);
  const auto grant_id = r.String("GrantId", 1, 128);
  const auto grantee = r.String("GranteePrincipal", 1, 256);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  const KeyRef& key = p.authorization.key();
  if (marker && (marker->size() != 64 ||
                 marker->find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return std::unexpected(ClientError("InvalidMarkerException", "Invalid marker."));
  }
  KMS_AWS_ASSIGN_OR_FAIL(auto page, p.access.ListGrants(key, grant_id.value_or(""),
                                                        grantee.value_or(""), marker.value_or(""),
                                                        static_cast<std::size_t>(limit.value_or(50))));
  boost::json::array grants;
  for (const auto& g : page.items) grants.emplace_back(GrantJson(g, key.arn));
  boost::json::object out;
  out["Grants"] = std::move(grants);
  out["Truncated"] = page.truncated;
  if (page.truncated) out["NextMarker"] = page.next_marker;
  return out;
}

OpResult ListRetirableGrants(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const auto limit = ReadLimit(r, 100);
  const auto marker = r.String("Marker", 1, 1024);
  const auto retiring = ReadPrincipal(r, "RetiringPrincipal", true, "retiringPrincipal");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (marker && (marker->size() != 36 + 1 + 64 || (*marker)[36] != '.')) {
    return std::unexpected(ClientError("InvalidMarkerException", "Invalid marker."));
  }
  KMS_AWS_ASSIGN_OR_FAIL(auto page,
                         p.access.ListRetirableGrants(*retiring, marker.value_or(""),
                                                      static_cast<std::size_t>(limit.value_or(50))));
  boost::json::array grants;
  for (const auto& g : page.items) grants.emplace_back(GrantJson(g, ArnOf(p.service, g.key_id)));
  boost::json::object out;
  out["Grants"] = std::move(grants);
  out["Truncated"] = page.truncated;
  if (page.truncated) out["NextMarker"] = page.next_marker;
  return out;
}

// The grant (by token, or key and id) was read and decided by the authorization step.
OpResult RetireGrant(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const bool dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (dry_run) return std::unexpected(DryRun());
  KMS_AWS_RETURN_IF_ERROR(
      p.access.RetireGrant(p.authorization.key(), p.authorization.grant_id()));
  return boost::json::object();
}

OpResult RevokeGrant(const PolicyContext& p, const boost::json::object& body) {
  RequestReader r(body);
  const std::string grant_id = r.RequiredString("GrantId", 1, 128);
  const bool dry_run = r.Boolean("DryRun");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (dry_run) return std::unexpected(DryRun());
  KMS_AWS_RETURN_IF_ERROR(p.access.RevokeGrant(p.authorization.key(), grant_id));
  return boost::json::object();
}

}  // namespace kms::api::aws::internal
