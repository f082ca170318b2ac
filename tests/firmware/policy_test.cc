// The policy language engine (firmware/authz/policy.h) on its own: the default key policy's shape
// and delegation, Decide's precedence (explicit deny, principal, account delegation), Action /
// NotAction, Resource / NotResource, principal forms, every condition operator family with the
// KMS condition keys the doors set (encryption context, CallerAccount, GrantIsForAWSResource,
// RequestAlias, KeySpec, ...), IfExists / Null / set qualifiers on missing keys, the exact
// message of every malformed-document refusal, the size limit, a pathological glob, a
// ten-statement policy, and concurrent evaluation.
#include "firmware/authz/policy.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"

namespace kms::firmware::authz {
namespace {

constexpr std::string_view kAccount = "111122223333";
const std::string kKeyArn =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const std::string kOtherKeyArn =
    "arn:aws:kms:us-east-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321";
const std::string kAlice = "arn:aws:iam::111122223333:user/alice";
const std::string kBob = "arn:aws:iam::111122223333:user/bob";
const std::string kAppRole = "arn:aws:iam::111122223333:role/app";
const std::string kRoot = "arn:aws:iam::111122223333:root";
const std::string kStranger = "arn:aws:iam::444455556666:user/mallory";

std::shared_ptr<const CompiledPolicy> MustParse(std::string_view json,
                                                PolicyKind kind = PolicyKind::kKeyPolicy) {
  auto parsed = CompiledPolicy::Parse(json, kind, kAccount);
  if (!parsed) FAIL("Parse failed: " << parsed.error().ToString());
  return *parsed;
}

Status ParseError(std::string_view json, PolicyKind kind = PolicyKind::kKeyPolicy) {
  auto parsed = CompiledPolicy::Parse(json, kind, kAccount);
  REQUIRE_FALSE(parsed.has_value());
  return parsed.error();
}

// The message of a malformed-document refusal, after checking its code and reason.
std::string MalformedMessage(std::string_view json, PolicyKind kind = PolicyKind::kKeyPolicy) {
  const Status status = ParseError(json, kind);
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK(status.reason() == Reason::kMalformedPolicy);
  return status.message();
}

PolicyRequest Request(std::string principal, std::string action, std::string resource = kKeyArn) {
  PolicyRequest request;
  request.principal_arn = std::move(principal);
  request.account_id = std::string(kAccount);
  request.action = std::move(action);
  request.resource_arn = std::move(resource);
  return request;
}

// A key policy of one statement: Allow for alice on `actions` with `extra` members appended.
std::string AliceStatement(std::string_view effect, std::string_view actions,
                           std::string_view extra = "") {
  std::string policy = R"({"Version":"2012-10-17","Statement":[{"Effect":")";
  policy += effect;
  policy += R"(","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":)";
  policy += actions;
  policy += R"(,"Resource":"*")";
  if (!extra.empty()) {
    policy += ",";
    policy += extra;
  }
  policy += "}]}";
  return policy;
}

// Alice may Encrypt when `condition` (a JSON object) holds.
std::shared_ptr<const CompiledPolicy> AliceEncryptWhen(std::string_view condition) {
  return MustParse(AliceStatement("Allow", R"("kms:Encrypt")",
                                  std::string(R"("Condition":)") + std::string(condition)));
}

bool AliceMayEncrypt(const CompiledPolicy& policy, const ConditionValues& conditions) {
  PolicyRequest request = Request(kAlice, "kms:Encrypt");
  request.conditions = conditions;
  return policy.Evaluate(request).allows_principal;
}

ConditionValues Context(const std::map<std::string, std::string>& context) {
  ConditionValues values;
  values.SetEncryptionContext(context);
  return values;
}

ConditionValues One(std::string_view key, std::string value) {
  ConditionValues values;
  values.Set(key, std::move(value));
  return values;
}

const std::vector<std::string> kKmsActions = {"kms:CancelKeyDeletion",
                                              "kms:ConnectCustomKeyStore",
                                              "kms:CreateAlias",
                                              "kms:CreateCustomKeyStore",
                                              "kms:CreateGrant",
                                              "kms:CreateKey",
                                              "kms:Decrypt",
                                              "kms:DeleteAlias",
                                              "kms:DeleteCustomKeyStore",
                                              "kms:DeleteImportedKeyMaterial",
                                              "kms:DeriveSharedSecret",
                                              "kms:DescribeCustomKeyStores",
                                              "kms:DescribeKey",
                                              "kms:DisableKey",
                                              "kms:DisableKeyRotation",
                                              "kms:DisconnectCustomKeyStore",
                                              "kms:EnableKey",
                                              "kms:EnableKeyRotation",
                                              "kms:Encrypt",
                                              "kms:GenerateDataKey",
                                              "kms:GenerateDataKeyPair",
                                              "kms:GenerateDataKeyPairWithoutPlaintext",
                                              "kms:GenerateDataKeyWithoutPlaintext",
                                              "kms:GenerateMac",
                                              "kms:GenerateRandom",
                                              "kms:GetKeyPolicy",
                                              "kms:GetKeyRotationStatus",
                                              "kms:GetParametersForImport",
                                              "kms:GetPublicKey",
                                              "kms:ImportKeyMaterial",
                                              "kms:ListAliases",
                                              "kms:ListGrants",
                                              "kms:ListKeyPolicies",
                                              "kms:ListKeyRotations",
                                              "kms:ListKeys",
                                              "kms:ListResourceTags",
                                              "kms:ListRetirableGrants",
                                              "kms:PutKeyPolicy",
                                              "kms:ReEncryptFrom",
                                              "kms:ReEncryptTo",
                                              "kms:ReplicateKey",
                                              "kms:RetireGrant",
                                              "kms:RevokeGrant",
                                              "kms:RotateKeyOnDemand",
                                              "kms:ScheduleKeyDeletion",
                                              "kms:Sign",
                                              "kms:TagResource",
                                              "kms:UntagResource",
                                              "kms:UpdateAlias",
                                              "kms:UpdateCustomKeyStore",
                                              "kms:UpdateKeyDescription",
                                              "kms:UpdatePrimaryRegion",
                                              "kms:Verify",
                                              "kms:VerifyMac"};

// ---------------------------------------------------------------------------------------------
// The default key policy

TEST_CASE("DefaultKeyPolicy has the shape GetKeyPolicy returns", "[policy]") {
  const std::string expected =
      "{\n"
      "  \"Version\" : \"2012-10-17\",\n"
      "  \"Id\" : \"key-default-1\",\n"
      "  \"Statement\" : [ {\n"
      "    \"Sid\" : \"Enable IAM User Permissions\",\n"
      "    \"Effect\" : \"Allow\",\n"
      "    \"Principal\" : {\n"
      "      \"AWS\" : \"arn:aws:iam::111122223333:root\"\n"
      "    },\n"
      "    \"Action\" : \"kms:*\",\n"
      "    \"Resource\" : \"*\"\n"
      "  } ]\n"
      "}";
  CHECK(DefaultKeyPolicy(kAccount) == expected);
  const auto policy = MustParse(DefaultKeyPolicy(kAccount));
  CHECK(policy->text() == expected);  // verbatim, whitespace and all
  CHECK(policy->statement_count() == 1);
  CHECK(policy->kind() == PolicyKind::kKeyPolicy);
}

TEST_CASE("The default key policy delegates every kms action to the account", "[policy]") {
  const auto policy = MustParse(DefaultKeyPolicy(kAccount));
  for (const std::string& action : kKmsActions) {
    INFO(action);
    const PolicyVerdict verdict = policy->Evaluate(Request(kAlice, action));
    CHECK(verdict.allows_account);
    CHECK_FALSE(verdict.allows_principal);
    CHECK_FALSE(verdict.explicit_deny);
    CHECK(verdict.deny_sid.empty());
    // No identity-policy layer for alice: the delegation alone allows (see Decide's contract).
    CHECK(Decide(policy.get(), nullptr, Request(kAlice, action)) == Decision::kAllow);
  }
  // Not an AWS action of this service: kms:* does not reach it.
  CHECK_FALSE(policy->Evaluate(Request(kAlice, "s3:GetObject")).allows_account);
  // The account root itself is named exactly.
  CHECK(policy->Evaluate(Request(kRoot, "kms:Encrypt")).allows_principal);
  // A principal of another account is not delegated to.
  const PolicyVerdict stranger = policy->Evaluate(Request(kStranger, "kms:Encrypt"));
  CHECK_FALSE(stranger.allows_account);
  CHECK_FALSE(stranger.allows_principal);
  CHECK(Decide(policy.get(), nullptr, Request(kStranger, "kms:Encrypt")) ==
        Decision::kImplicitDeny);
}

TEST_CASE("Account delegation needs the identity policy when there is one", "[policy]") {
  const auto key_policy = MustParse(DefaultKeyPolicy(kAccount));
  const auto identity = MustParse(
      R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["kms:Encrypt","kms:Describe*"],"Resource":")" +
          kKeyArn + R"("}})",
      PolicyKind::kIdentityPolicy);
  CHECK(identity->Evaluate(Request(kAlice, "kms:Encrypt")).allows_principal);
  CHECK(Decide(key_policy.get(), identity.get(), Request(kAlice, "kms:Encrypt")) ==
        Decision::kAllow);
  CHECK(Decide(key_policy.get(), identity.get(), Request(kAlice, "kms:DescribeKey")) ==
        Decision::kAllow);
  CHECK(Decide(key_policy.get(), identity.get(), Request(kAlice, "kms:Decrypt")) ==
        Decision::kImplicitDeny);
  // The identity policy names one key; another key is not covered.
  CHECK(Decide(key_policy.get(), identity.get(), Request(kAlice, "kms:Encrypt", kOtherKeyArn)) ==
        Decision::kImplicitDeny);
  // An identity policy alone cannot open a key whose policy does not delegate to the account.
  const auto bob_only = MustParse(
      R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*"}})");
  CHECK(Decide(bob_only.get(), identity.get(), Request(kAlice, "kms:Encrypt")) ==
        Decision::kImplicitDeny);
}

TEST_CASE("Without a key only the identity policy can allow", "[policy]") {
  const auto identity =
      MustParse(R"({"Statement":{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"}})",
                PolicyKind::kIdentityPolicy);
  CHECK(Decide(nullptr, identity.get(), Request(kAlice, "kms:CreateKey", "*")) == Decision::kAllow);
  CHECK(Decide(nullptr, identity.get(), Request(kAlice, "kms:ListKeys", "*")) ==
        Decision::kImplicitDeny);
  CHECK(Decide(nullptr, nullptr, Request(kAlice, "kms:CreateKey", "*")) == Decision::kImplicitDeny);
}

// ---------------------------------------------------------------------------------------------
// Precedence

TEST_CASE("An explicit deny beats any allow", "[policy]") {
  const auto policy = MustParse(R"({
    "Version": "2012-10-17",
    "Statement": [
      {"Sid": "Everything", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*",
       "Resource": "*"},
      {"Sid": "NoDecryptForAlice", "Effect": "Deny",
       "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:Decrypt",
       "Resource": "*"}
    ]})");
  const PolicyVerdict verdict = policy->Evaluate(Request(kAlice, "kms:Decrypt"));
  CHECK(verdict.explicit_deny);
  CHECK(verdict.allows_principal);  // the Allow matched too; Decide weighs them
  CHECK(verdict.deny_sid == "NoDecryptForAlice");
  CHECK(Decide(policy.get(), nullptr, Request(kAlice, "kms:Decrypt")) == Decision::kExplicitDeny);
  CHECK(Decide(policy.get(), nullptr, Request(kAlice, "kms:Encrypt")) == Decision::kAllow);
  CHECK(Decide(policy.get(), nullptr, Request(kBob, "kms:Decrypt")) == Decision::kAllow);

  // A Deny in the identity policy beats the key policy's allow of the principal.
  const auto identity = MustParse(
      R"({"Statement":{"Sid":"NoEncrypt","Effect":"Deny","Action":"kms:Encrypt","Resource":"*"}})",
      PolicyKind::kIdentityPolicy);
  const PolicyVerdict identity_verdict = identity->Evaluate(Request(kBob, "kms:Encrypt"));
  CHECK(identity_verdict.explicit_deny);
  CHECK(identity_verdict.deny_sid == "NoEncrypt");
  CHECK(Decide(policy.get(), identity.get(), Request(kBob, "kms:Encrypt")) ==
        Decision::kExplicitDeny);
}

TEST_CASE("An unnamed deny reports an empty Sid", "[policy]") {
  const auto policy = MustParse(AliceStatement("Deny", R"("kms:*")"));
  const PolicyVerdict verdict = policy->Evaluate(Request(kAlice, "kms:Sign"));
  CHECK(verdict.explicit_deny);
  CHECK(verdict.deny_sid.empty());
}

TEST_CASE("No matching statement is an implicit deny", "[policy]") {
  const auto policy = MustParse(AliceStatement("Allow", R"("kms:Encrypt")"));
  const PolicyVerdict verdict = policy->Evaluate(Request(kAlice, "kms:Decrypt"));
  CHECK_FALSE(verdict.explicit_deny);
  CHECK_FALSE(verdict.allows_principal);
  CHECK_FALSE(verdict.allows_account);
  CHECK(Decide(policy.get(), nullptr, Request(kAlice, "kms:Decrypt")) == Decision::kImplicitDeny);
  CHECK(Decide(policy.get(), nullptr, Request(kBob, "kms:Encrypt")) == Decision::kImplicitDeny);
}

// ---------------------------------------------------------------------------------------------
// Action, Resource

TEST_CASE("Actions match with wildcards and ignore case", "[policy]") {
  const auto policy = MustParse(AliceStatement(
      "Allow", R"(["kms:Generate*", "KMS:ENCRYPT", "kms:ReEncrypt????", "kms:*Key"])"));
  const auto allows = [&](const std::string& action) {
    return policy->Evaluate(Request(kAlice, action)).allows_principal;
  };
  CHECK(allows("kms:GenerateDataKey"));
  CHECK(allows("kms:GenerateDataKeyWithoutPlaintext"));
  CHECK(allows("kms:GenerateRandom"));
  CHECK(allows("kms:Encrypt"));
  CHECK(allows("kms:encrypt"));
  CHECK(allows("kms:ReEncryptFrom"));      // "????" is exactly four characters
  CHECK_FALSE(allows("kms:ReEncryptTo"));  // two
  CHECK(allows("kms:DescribeKey"));
  CHECK(allows("kms:DisableKey"));
  CHECK_FALSE(allows("kms:Decrypt"));
  CHECK_FALSE(allows("kms:EncryptX"));
  CHECK_FALSE(allows("s3:GenerateDataKey"));

  const auto star = MustParse(AliceStatement("Allow", R"("*")"));
  CHECK(star->Evaluate(Request(kAlice, "kms:Decrypt")).allows_principal);
  CHECK(star->Evaluate(Request(kAlice, "s3:GetObject")).allows_principal);
  const auto other_service = MustParse(AliceStatement("Allow", R"("s3:*")"));
  CHECK_FALSE(other_service->Evaluate(Request(kAlice, "kms:Decrypt")).allows_principal);
}

TEST_CASE("NotAction matches every action it does not list", "[policy]") {
  const auto policy = MustParse(R"({"Statement":[
    {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
     "NotAction":["kms:ScheduleKeyDeletion","kms:Delete*"],"Resource":"*"},
    {"Sid":"OnlyDecryptForBob","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},
     "NotAction":"kms:Decrypt","Resource":"*"}]})");
  CHECK(policy->Evaluate(Request(kAlice, "kms:Encrypt")).allows_principal);
  CHECK_FALSE(policy->Evaluate(Request(kAlice, "kms:ScheduleKeyDeletion")).allows_principal);
  CHECK_FALSE(policy->Evaluate(Request(kAlice, "kms:DeleteAlias")).allows_principal);
  CHECK(policy->Evaluate(Request(kBob, "kms:Encrypt")).explicit_deny);
  CHECK_FALSE(policy->Evaluate(Request(kBob, "kms:Decrypt")).explicit_deny);
}

TEST_CASE("Resource star, a specific key ARN and another key's ARN", "[policy]") {
  const auto any_key = MustParse(AliceStatement("Allow", R"("kms:Encrypt")"));
  CHECK(any_key->Evaluate(Request(kAlice, "kms:Encrypt", kKeyArn)).allows_principal);
  CHECK(any_key->Evaluate(Request(kAlice, "kms:Encrypt", kOtherKeyArn)).allows_principal);
  CHECK(any_key->Evaluate(Request(kAlice, "kms:CreateKey", "*")).allows_principal ==
        false);  // action differs; resource "*" itself is matched below
  const auto any_for_create = MustParse(AliceStatement("Allow", R"("kms:CreateKey")"));
  CHECK(any_for_create->Evaluate(Request(kAlice, "kms:CreateKey", "*")).allows_principal);

  const std::string one_key =
      R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":")" +
      kKeyArn + R"("}})";
  const auto specific = MustParse(one_key);
  CHECK(specific->Evaluate(Request(kAlice, "kms:Encrypt", kKeyArn)).allows_principal);
  CHECK_FALSE(specific->Evaluate(Request(kAlice, "kms:Encrypt", kOtherKeyArn)).allows_principal);
  CHECK_FALSE(specific->Evaluate(Request(kAlice, "kms:Encrypt", "*")).allows_principal);

  const auto wildcard = MustParse(
      R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
          "Action":"kms:Encrypt","Resource":"arn:aws:kms:us-east-1:111122223333:key/*"}})");
  CHECK(wildcard->Evaluate(Request(kAlice, "kms:Encrypt", kKeyArn)).allows_principal);
  CHECK(wildcard->Evaluate(Request(kAlice, "kms:Encrypt", kOtherKeyArn)).allows_principal);
  CHECK_FALSE(
      wildcard->Evaluate(Request(kAlice, "kms:Encrypt", "arn:aws:kms:eu-west-1:111122223333:key/x"))
          .allows_principal);

  const auto not_resource = MustParse(
      R"({"Statement":{"Effect":"Deny","Principal":"*","Action":"kms:*","NotResource":")" +
      kKeyArn + R"("}})");
  CHECK_FALSE(not_resource->Evaluate(Request(kAlice, "kms:Encrypt", kKeyArn)).explicit_deny);
  CHECK(not_resource->Evaluate(Request(kAlice, "kms:Encrypt", kOtherKeyArn)).explicit_deny);
}

// ---------------------------------------------------------------------------------------------
// Principals

TEST_CASE("A principal ARN matches exactly that principal", "[policy]") {
  const auto policy = MustParse(AliceStatement("Allow", R"("kms:Encrypt")"));
  CHECK(policy->Evaluate(Request(kAlice, "kms:Encrypt")).allows_principal);
  CHECK_FALSE(policy->Evaluate(Request(kBob, "kms:Encrypt")).allows_principal);
  CHECK_FALSE(policy->Evaluate(Request("arn:aws:iam::111122223333:user/Alice", "kms:Encrypt"))
                  .allows_principal);
  CHECK_FALSE(policy->Evaluate(Request("arn:aws:iam::111122223333:user/alice2", "kms:Encrypt"))
                  .allows_principal);
  CHECK_FALSE(policy->Evaluate(Request(kAlice, "kms:Encrypt")).allows_account);

  const auto several = MustParse(R"({"Statement":{"Effect":"Allow","Principal":{"AWS":[
      "arn:aws:iam::111122223333:role/app",
      "arn:aws:iam::111122223333:user/ops/bob",
      "arn:aws:sts::111122223333:assumed-role/app/session-1"]},
    "Action":"kms:Decrypt","Resource":"*"}})");
  CHECK(several->Evaluate(Request(kAppRole, "kms:Decrypt")).allows_principal);
  CHECK(several->Evaluate(Request("arn:aws:iam::111122223333:user/ops/bob", "kms:Decrypt"))
            .allows_principal);
  CHECK(
      several
          ->Evaluate(Request("arn:aws:sts::111122223333:assumed-role/app/session-1", "kms:Decrypt"))
          .allows_principal);
  CHECK_FALSE(several->Evaluate(Request(kBob, "kms:Decrypt")).allows_principal);
}

TEST_CASE("The star principal matches everyone", "[policy]") {
  for (const std::string_view principal : {R"("*")", R"({"AWS":"*"})", R"({"AWS":["*"]})"}) {
    INFO(principal);
    const auto policy =
        MustParse(std::string(R"({"Statement":{"Effect":"Allow","Principal":)") +
                  std::string(principal) + R"(,"Action":"kms:Encrypt","Resource":"*"}})");
    for (const std::string& who : {kAlice, kBob, kAppRole, kRoot, kStranger}) {
      const PolicyVerdict verdict = policy->Evaluate(Request(who, "kms:Encrypt"));
      CHECK(verdict.allows_principal);
      CHECK_FALSE(verdict.allows_account);
    }
  }
}

TEST_CASE("Account principals: this root, a bare id, another account", "[policy]") {
  const auto bare = MustParse(
      R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}})");
  CHECK(bare->Evaluate(Request(kAlice, "kms:Encrypt")).allows_account);
  CHECK(bare->Evaluate(Request(kAppRole, "kms:Encrypt")).allows_account);
  CHECK_FALSE(bare->Evaluate(Request(kAlice, "kms:Encrypt")).allows_principal);
  CHECK_FALSE(bare->Evaluate(Request(kStranger, "kms:Encrypt")).allows_account);

  // Another account's root is valid and names nobody here, not even that account's users.
  const auto other = MustParse(
      R"({"Statement":{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::444455556666:root","444455556666"]},"Action":"kms:*","Resource":"*"}})");
  for (const std::string& who : {kAlice, kRoot, kStranger}) {
    const PolicyVerdict verdict = other->Evaluate(Request(who, "kms:Encrypt"));
    CHECK_FALSE(verdict.allows_account);
    CHECK_FALSE(verdict.allows_principal);
  }

  // A Deny naming the account covers its principals.
  const auto deny_account = MustParse(
      R"({"Statement":{"Sid":"Freeze","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt","Resource":"*"}})");
  CHECK(deny_account->Evaluate(Request(kAlice, "kms:Decrypt")).explicit_deny);
  CHECK(deny_account->Evaluate(Request(kRoot, "kms:Decrypt")).explicit_deny);
  CHECK_FALSE(deny_account->Evaluate(Request(kStranger, "kms:Decrypt")).explicit_deny);
}

TEST_CASE("Service principals are valid and match nobody", "[policy]") {
  const auto policy = MustParse(R"({"Statement":{"Effect":"Allow",
    "Principal":{"Service":["logs.us-east-1.amazonaws.com","s3.amazonaws.com"]},
    "Action":"kms:*","Resource":"*"}})");
  for (const std::string& who : {kAlice, kRoot, kStranger}) {
    const PolicyVerdict verdict = policy->Evaluate(Request(who, "kms:Encrypt"));
    CHECK_FALSE(verdict.allows_principal);
    CHECK_FALSE(verdict.allows_account);
  }
}

TEST_CASE("NotPrincipal applies to everyone it does not list", "[policy]") {
  const auto policy = MustParse(R"({"Statement":{"Sid":"OnlyAlice","Effect":"Deny",
    "NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
    "Action":"kms:Decrypt","Resource":"*"}})");
  CHECK_FALSE(policy->Evaluate(Request(kAlice, "kms:Decrypt")).explicit_deny);
  CHECK(policy->Evaluate(Request(kBob, "kms:Decrypt")).explicit_deny);
  CHECK(policy->Evaluate(Request(kStranger, "kms:Decrypt")).explicit_deny);

  // NotPrincipal naming the account excludes all of its principals.
  const auto outsiders = MustParse(R"({"Statement":{"Effect":"Deny",
    "NotPrincipal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}})");
  CHECK_FALSE(outsiders->Evaluate(Request(kAlice, "kms:Decrypt")).explicit_deny);
  CHECK(outsiders->Evaluate(Request(kStranger, "kms:Decrypt")).explicit_deny);
}

// ---------------------------------------------------------------------------------------------
// Conditions

TEST_CASE("StringEquals on kms:EncryptionContext:purpose", "[policy][condition]") {
  const auto policy =
      AliceEncryptWhen(R"({"StringEquals":{"kms:EncryptionContext:purpose":"backup"}})");
  CHECK(AliceMayEncrypt(*policy, Context({{"purpose", "backup"}})));
  CHECK(AliceMayEncrypt(*policy, Context({{"purpose", "backup"}, {"owner", "ops"}})));
  CHECK_FALSE(AliceMayEncrypt(*policy, Context({{"purpose", "other"}})));
  CHECK_FALSE(AliceMayEncrypt(*policy, Context({{"purpose", "Backup"}})));  // values keep case
  CHECK_FALSE(AliceMayEncrypt(*policy, Context({{"owner", "ops"}})));
  CHECK_FALSE(AliceMayEncrypt(*policy, Context({})));  // no encryption context at all
  // AWS: "the condition key, which consists of the kms:EncryptionContext: prefix and the
  // context-key replacement, is not case sensitive".
  CHECK(AliceMayEncrypt(*policy, Context({{"Purpose", "backup"}})));
  const auto capitalised =
      AliceEncryptWhen(R"({"StringEquals":{"KMS:EncryptionContext:PURPOSE":"backup"}})");
  CHECK(AliceMayEncrypt(*capitalised, Context({{"purpose", "backup"}})));
}

TEST_CASE("Encryption-context pairs differing only in case are all seen", "[policy][condition]") {
  const auto policy = MustParse(R"({"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
    {"Sid":"NoRestricted","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
     "Condition":{"StringEquals":{"kms:EncryptionContext:stage":"Restricted"}}}]})");
  for (const auto& context : std::vector<std::map<std::string, std::string>>{
           {{"Stage", "Restricted"}, {"stage", "test"}},
           {{"Stage", "test"}, {"stage", "Restricted"}}}) {
    PolicyRequest request = Request(kAlice, "kms:Decrypt");
    request.conditions.SetEncryptionContext(context);
    const PolicyVerdict verdict = policy->Evaluate(request);
    CHECK(verdict.explicit_deny);
    CHECK(verdict.deny_sid == "NoRestricted");
  }
  PolicyRequest fine = Request(kAlice, "kms:Decrypt");
  fine.conditions.SetEncryptionContext({{"Stage", "test"}});
  CHECK_FALSE(policy->Evaluate(fine).explicit_deny);
  CHECK(policy->Evaluate(fine).allows_principal);
}

TEST_CASE("ForAllValues and ForAnyValue on kms:EncryptionContextKeys", "[policy][condition]") {
  const auto all_of = AliceEncryptWhen(
      R"({"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","owner"]}})");
  CHECK(AliceMayEncrypt(*all_of, Context({{"purpose", "x"}})));
  CHECK(AliceMayEncrypt(*all_of, Context({{"purpose", "x"}, {"owner", "y"}})));
  CHECK_FALSE(AliceMayEncrypt(*all_of, Context({{"purpose", "x"}, {"extra", "y"}})));
  CHECK_FALSE(AliceMayEncrypt(*all_of, Context({{"Purpose", "x"}})));  // the key's case counts here
  // IAM: ForAllValues "also returns true if there are no context keys in the request".
  CHECK(AliceMayEncrypt(*all_of, Context({})));

  // With a Null check the context becomes required, as the KMS guide recommends.
  const auto required = AliceEncryptWhen(
      R"({"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","owner"]},
          "Null":{"kms:EncryptionContextKeys":"false"}})");
  CHECK(AliceMayEncrypt(*required, Context({{"owner", "y"}})));
  CHECK_FALSE(AliceMayEncrypt(*required, Context({})));

  const auto any_of =
      AliceEncryptWhen(R"({"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"AppName"}})");
  CHECK(AliceMayEncrypt(*any_of, Context({{"AppName", "x"}, {"Project", "y"}})));
  CHECK_FALSE(AliceMayEncrypt(*any_of, Context({{"appname", "x"}})));
  CHECK_FALSE(AliceMayEncrypt(*any_of, Context({{"Project", "y"}})));
  CHECK_FALSE(AliceMayEncrypt(*any_of, Context({})));  // ForAnyValue on a missing key is false
}

TEST_CASE("ForAllValues with a negated operator follows the IAM examples", "[policy][condition]") {
  // IAM User Guide, "Multivalued context keys examples": Deny ForAllValues:StringNotLike
  // aws:TagKeys "key1*".
  const auto policy = MustParse(R"({"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"kms:TagResource","Resource":"*"},
    {"Effect":"Deny","Principal":"*","Action":"kms:TagResource","Resource":"*",
     "Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}]})");
  const auto denied = [&](std::vector<std::string> tag_keys) {
    PolicyRequest request = Request(kAlice, "kms:TagResource");
    request.conditions.Set("aws:TagKeys", std::move(tag_keys));
    return policy->Evaluate(request).explicit_deny;
  };
  CHECK_FALSE(denied({"key1:legal"}));
  CHECK_FALSE(denied({"key1:hr", "key1:personnel"}));
  CHECK(denied({"key2:audit"}));
  CHECK(denied({}));  // no aws:TagKeys in the request: matches
}

TEST_CASE("Null tests whether a condition key is present", "[policy][condition]") {
  const auto present = AliceEncryptWhen(R"({"Null":{"kms:EncryptionContextKeys":false}})");
  CHECK(AliceMayEncrypt(*present, Context({{"a", "b"}})));
  CHECK_FALSE(AliceMayEncrypt(*present, Context({})));
  const auto absent = AliceEncryptWhen(R"({"Null":{"kms:GranteePrincipal":"true"}})");
  CHECK(AliceMayEncrypt(*absent, ConditionValues()));
  CHECK_FALSE(AliceMayEncrypt(*absent, One("kms:GranteePrincipal", kBob)));
}

TEST_CASE("IfExists passes a missing key and checks a present one", "[policy][condition]") {
  const auto if_exists = AliceEncryptWhen(
      R"({"StringEqualsIfExists":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}})");
  CHECK(AliceMayEncrypt(*if_exists, ConditionValues()));
  CHECK(AliceMayEncrypt(*if_exists, One("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")));
  CHECK_FALSE(AliceMayEncrypt(*if_exists, One("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256")));
  const auto plain =
      AliceEncryptWhen(R"({"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}})");
  CHECK_FALSE(AliceMayEncrypt(*plain, ConditionValues()));

  // ForAnyValue with IfExists: the missing key passes.
  const auto any_if_exists =
      AliceEncryptWhen(R"({"ForAnyValue:StringLikeIfExists":{"kms:GrantOperations":"Encrypt*"}})");
  CHECK(AliceMayEncrypt(*any_if_exists, ConditionValues()));
}

TEST_CASE("Negated operators on a missing key are true", "[policy][condition]") {
  // The KMS guide's "only one encryption algorithm" Deny: StringNotEquals.
  const auto policy = MustParse(R"({"Statement":[
    {"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
    {"Sid":"OnlyOaep","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
     "Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
     "Condition":{"StringNotEquals":{"kms:EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}}]})");
  const auto denied = [&](const ConditionValues& values) {
    PolicyRequest request = Request(kAlice, "kms:Encrypt");
    request.conditions = values;
    return policy->Evaluate(request).explicit_deny;
  };
  CHECK_FALSE(denied(One("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256")));
  CHECK(denied(One("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")));
  CHECK(denied(ConditionValues()));  // missing: the negated operator is true

  const auto not_like =
      AliceEncryptWhen(R"({"StringNotLike":{"kms:RequestAlias":"alias/secret-*"}})");
  CHECK(AliceMayEncrypt(*not_like, ConditionValues()));
  CHECK(AliceMayEncrypt(*not_like, One("kms:RequestAlias", "alias/app")));
  CHECK_FALSE(AliceMayEncrypt(*not_like, One("kms:RequestAlias", "alias/secret-1")));
}

TEST_CASE("Bool on kms:GrantIsForAWSResource", "[policy][condition]") {
  for (const std::string_view literal : {"false", R"("false")", R"("False")"}) {
    INFO(literal);
    const auto policy = AliceEncryptWhen(std::string(R"({"Bool":{"kms:GrantIsForAWSResource":)") +
                                         std::string(literal) + "}}");
    CHECK(AliceMayEncrypt(*policy, One("kms:GrantIsForAWSResource", "false")));
    CHECK(AliceMayEncrypt(*policy, One("kms:GrantIsForAWSResource", "FALSE")));
    CHECK_FALSE(AliceMayEncrypt(*policy, One("kms:GrantIsForAWSResource", "true")));
    CHECK_FALSE(AliceMayEncrypt(*policy, ConditionValues()));
  }
}

TEST_CASE("kms:CallerAccount with the star principal", "[policy][condition]") {
  // The KMS guide's "all identities in the account" pattern; a JSON number works as well.
  for (const std::string_view value : {R"("111122223333")", "111122223333"}) {
    INFO(value);
    const auto policy = MustParse(
        std::string(
            R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt",
        "Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":)") +
        std::string(value) + R"(,"kms:ViaService":"ec2.us-west-2.amazonaws.com"}}}})");
    PolicyRequest request = Request(kAlice, "kms:Decrypt");
    request.conditions.Set(condition_keys::kCallerAccount, "111122223333");
    request.conditions.Set(condition_keys::kViaService, "ec2.us-west-2.amazonaws.com");
    CHECK(policy->Evaluate(request).allows_principal);
    request.conditions.Set(condition_keys::kCallerAccount, "444455556666");
    CHECK_FALSE(policy->Evaluate(request).allows_principal);
    request.conditions.Set(condition_keys::kCallerAccount, "111122223333");
    request.conditions.Set(condition_keys::kViaService, "s3.us-west-2.amazonaws.com");
    CHECK_FALSE(policy->Evaluate(request).allows_principal);  // keys in one operator are ANDed
  }
}

TEST_CASE("kms:RequestAlias with StringLike", "[policy][condition]") {
  const auto policy = AliceEncryptWhen(R"({"StringLike":{"kms:RequestAlias":"alias/app-*"}})");
  CHECK(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, "alias/app-prod")));
  CHECK(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, "alias/app-")));
  CHECK_FALSE(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, "alias/App-prod")));
  CHECK_FALSE(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, "alias/other")));
  CHECK_FALSE(AliceMayEncrypt(*policy, ConditionValues()));
}

TEST_CASE("kms:KeySpec and kms:KeyUsage on CreateKey", "[policy][condition]") {
  const auto identity = MustParse(R"({"Version":"2012-10-17","Statement":{"Effect":"Allow",
      "Action":"kms:CreateKey","Resource":"*",
      "Condition":{"StringEquals":{"kms:KeySpec":["RSA_2048","RSA_3072"]},
                   "StringEqualsIgnoreCase":{"kms:KeyUsage":"sign_verify"}}}})",
                                  PolicyKind::kIdentityPolicy);
  const auto allowed = [&](std::string spec, std::string usage) {
    PolicyRequest request = Request(kAlice, "kms:CreateKey", "*");
    request.conditions.Set(condition_keys::kKeySpec, std::move(spec));
    request.conditions.Set(condition_keys::kKeyUsage, std::move(usage));
    return Decide(nullptr, identity.get(), request) == Decision::kAllow;
  };
  CHECK(allowed("RSA_2048", "SIGN_VERIFY"));
  CHECK(allowed("RSA_3072", "sign_verify"));  // values of one key are ORed
  CHECK_FALSE(allowed("RSA_4096", "SIGN_VERIFY"));
  CHECK_FALSE(allowed("rsa_2048", "SIGN_VERIFY"));  // StringEquals keeps case
  CHECK_FALSE(allowed("RSA_2048", "ENCRYPT_DECRYPT"));
}

TEST_CASE("Grant condition keys: GrantOperations, GranteePrincipal, RetiringPrincipal",
          "[policy][condition]") {
  const auto policy = MustParse(R"({"Statement":{"Effect":"Allow","Principal":"*",
    "Action":"kms:CreateGrant","Resource":"*","Condition":{
      "ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","Decrypt"]},
      "ArnLike":{"kms:GranteePrincipal":"arn:aws:iam::111122223333:role/*"},
      "ArnNotEquals":{"kms:RetiringPrincipal":"arn:aws:iam::111122223333:user/bob"}}}})");
  const auto allowed = [&](std::vector<std::string> operations, std::string grantee,
                           std::string retiring) {
    PolicyRequest request = Request(kAlice, "kms:CreateGrant");
    request.conditions.Set(condition_keys::kGrantOperations, std::move(operations));
    request.conditions.Set(condition_keys::kGranteePrincipal, std::move(grantee));
    if (!retiring.empty()) request.conditions.Set(condition_keys::kRetiringPrincipal, retiring);
    return policy->Evaluate(request).allows_principal;
  };
  CHECK(allowed({"Encrypt"}, kAppRole, ""));
  CHECK(allowed({"Encrypt", "Decrypt"}, kAppRole, kAlice));
  CHECK_FALSE(allowed({"Encrypt", "CreateGrant"}, kAppRole, ""));
  CHECK_FALSE(allowed({"Encrypt"}, kAlice, ""));  // a user, not a role
  CHECK_FALSE(allowed({"Encrypt"}, "arn:aws:iam::444455556666:role/app", ""));
  CHECK_FALSE(allowed({"Encrypt"}, kAppRole, kBob));
  // The last ARN field keeps its colons, so "role/*" covers "role/x:y".
  CHECK(allowed({"Encrypt"}, "arn:aws:iam::111122223333:role/x:y", ""));
}

TEST_CASE("ArnLike matches each ARN field on its own", "[policy][condition]") {
  const auto policy = AliceEncryptWhen(
      R"({"ArnLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}})");
  // IAM User Guide: StringLike would match this value, ArnLike does not.
  CHECK_FALSE(AliceMayEncrypt(*policy, One("aws:SourceArn",
                                           "arn:aws:someservice:us-east-2:999999999999:store/"
                                           "abc:111122223333:finance/document.txt")));
  CHECK(AliceMayEncrypt(
      *policy, One("aws:SourceArn", "arn:aws:someservice:us-east-2:111122223333:finance/a.txt")));
  CHECK_FALSE(AliceMayEncrypt(*policy, One("aws:SourceArn", "not-an-arn")));
}

TEST_CASE("Numeric and Date operators", "[policy][condition]") {
  const auto numeric = AliceEncryptWhen(
      R"({"NumericLessThanEquals":{"aws:MultiFactorAuthAge":"3600"},"NumericGreaterThan":{"aws:MultiFactorAuthAge":0}})");
  CHECK(AliceMayEncrypt(*numeric, One("aws:MultiFactorAuthAge", "3600")));
  CHECK(AliceMayEncrypt(*numeric, One("aws:MultiFactorAuthAge", "12.5")));
  CHECK_FALSE(AliceMayEncrypt(*numeric, One("aws:MultiFactorAuthAge", "3601")));
  CHECK_FALSE(AliceMayEncrypt(*numeric, One("aws:MultiFactorAuthAge", "0")));
  CHECK_FALSE(AliceMayEncrypt(*numeric, One("aws:MultiFactorAuthAge", "soon")));
  const auto not_equal =
      AliceEncryptWhen(R"({"NumericNotEquals":{"aws:MultiFactorAuthAge":[1,2]}})");
  CHECK(AliceMayEncrypt(*not_equal, One("aws:MultiFactorAuthAge", "3")));
  CHECK_FALSE(AliceMayEncrypt(*not_equal, One("aws:MultiFactorAuthAge", "2")));

  const auto date = AliceEncryptWhen(
      R"({"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"DateGreaterThanEquals":{"aws:CurrentTime":"2026-01-01"}})");
  CHECK(AliceMayEncrypt(*date, One("aws:CurrentTime", "2026-06-15T12:30:00Z")));
  CHECK(AliceMayEncrypt(*date, One("aws:CurrentTime", "2026-01-01T00:00:00Z")));
  CHECK(AliceMayEncrypt(*date, One("aws:CurrentTime", "2029-12-31T23:59:59.999Z")));
  CHECK(AliceMayEncrypt(*date, One("aws:CurrentTime", "1767225600")));  // epoch 2026-01-01
  CHECK_FALSE(AliceMayEncrypt(*date, One("aws:CurrentTime", "2025-12-31T23:59:59Z")));
  CHECK_FALSE(AliceMayEncrypt(*date, One("aws:CurrentTime", "2030-01-01T00:00:00Z")));
  // 2030-01-01T01:00+02:00 is 2029-12-31T23:00Z.
  CHECK(AliceMayEncrypt(*date, One("aws:CurrentTime", "2030-01-01T01:00+02:00")));
  CHECK_FALSE(AliceMayEncrypt(*date, One("aws:CurrentTime", "tomorrow")));
}

TEST_CASE("Operators are ANDed, keys ANDed, values ORed", "[policy][condition]") {
  const auto policy = AliceEncryptWhen(R"({
      "StringEquals":{"kms:EncryptionContext:dept":["IT","Ops"],"kms:EncryptionContext:project":"Alpha"},
      "StringLike":{"kms:RequestAlias":"alias/*"}})");
  const auto allowed = [&](std::map<std::string, std::string> context, std::string alias) {
    ConditionValues values;
    values.SetEncryptionContext(context);
    values.Set(condition_keys::kRequestAlias, std::move(alias));
    return AliceMayEncrypt(*policy, values);
  };
  CHECK(allowed({{"dept", "IT"}, {"project", "Alpha"}}, "alias/a"));
  CHECK(allowed({{"dept", "Ops"}, {"project", "Alpha"}}, "alias/a"));
  CHECK_FALSE(allowed({{"dept", "HR"}, {"project", "Alpha"}}, "alias/a"));
  CHECK_FALSE(allowed({{"dept", "IT"}}, "alias/a"));
  CHECK_FALSE(allowed({{"dept", "IT"}, {"project", "Alpha"}}, "key/a"));
}

TEST_CASE("ConditionValues lookups ignore the key's case", "[policy][condition]") {
  ConditionValues values;
  CHECK(values.empty());
  CHECK(values.Find("kms:CallerAccount") == nullptr);
  values.Set("kms:CallerAccount", "111122223333");
  REQUIRE(values.Find("KMS:CALLERACCOUNT") != nullptr);
  CHECK(*values.Find("kms:calleraccount") == std::vector<std::string>{"111122223333"});
  values.Set("KMS:CallerAccount", std::vector<std::string>{"1", "2"});  // replaces
  CHECK(*values.Find("kms:CallerAccount") == std::vector<std::string>{"1", "2"});
  values.Add("kms:calleraccount", "3");
  CHECK(values.Find("kms:CallerAccount")->size() == 3);
  values.Set("kms:CallerAccount", std::vector<std::string>{});  // removes
  CHECK(values.Find("kms:CallerAccount") == nullptr);

  ConditionValues context;
  context.SetEncryptionContext({});
  CHECK(context.empty());
  context.SetEncryptionContext({{"Purpose", "a"}, {"purpose", "b"}});
  REQUIRE(context.Find("kms:EncryptionContext:PURPOSE") != nullptr);
  CHECK(context.Find("kms:EncryptionContext:purpose")->size() == 2);
  CHECK(*context.Find(condition_keys::kEncryptionContextKeys) ==
        std::vector<std::string>{"Purpose", "purpose"});
}

// ---------------------------------------------------------------------------------------------
// Policy kinds

TEST_CASE("An identity policy with a principal is refused", "[policy][malformed]") {
  CHECK(MalformedMessage(
            R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}})",
            PolicyKind::kIdentityPolicy) ==
        "Policy document should not specify a principal. (Statement[0], element Principal)");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Sid":"S","Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}})",
          PolicyKind::kIdentityPolicy) ==
      "Policy document should not specify a principal. (Statement[0], Sid \"S\", element "
      "NotPrincipal)");
  CHECK(MalformedMessage(R"({"Statement":{"Effect":"Allow","Action":"kms:*"}})",
                         PolicyKind::kIdentityPolicy) ==
        "Policy contains a statement with no Resource or NotResource. (Statement[0], element "
        "Resource)");
}

TEST_CASE("A key policy statement without a principal is refused", "[policy][malformed]") {
  CHECK(
      MalformedMessage(
          R"({"Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
                             {"Sid":"B","Effect":"Allow","Action":"kms:*","Resource":"*"}]})") ==
      "Policy contains a statement with no Principal or NotPrincipal. (Statement[1], Sid \"B\", "
      "element Principal)");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"kms:*","Resource":"*"}})") ==
      "Policy contains a statement with both Principal and NotPrincipal. (Statement[0], element "
      "Principal)");
}

// ---------------------------------------------------------------------------------------------
// Malformed documents: the exact message a client sees

TEST_CASE("Malformed JSON", "[policy][malformed]") {
  const std::string message = MalformedMessage(R"({"Version":"2012-10-17","Statement":)");
  CHECK(message.starts_with("Policy document is not valid JSON: "));
  CHECK(message.find(" at byte ") != std::string::npos);
  CHECK(MalformedMessage("").starts_with("Policy document is not valid JSON: "));
  CHECK(MalformedMessage(R"({"Statement":[]} trailing)")
            .starts_with("Policy document is not valid JSON: "));
  CHECK(MalformedMessage(R"({"Statement":[],})")
            .starts_with("Policy document is not valid JSON: "));  // no trailing commas
  CHECK(MalformedMessage("[1,2]") == "Policy document is not a JSON object.");
  CHECK(MalformedMessage(std::string(40, '[') + std::string(40, ']')) ==
        "Policy document nests JSON deeper than 32 levels.");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Effect":"Allow","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}})") ==
      "Policy document contains the JSON key \"Effect\" twice in one object.");
}

TEST_CASE("Malformed top level", "[policy][malformed]") {
  CHECK(MalformedMessage(R"({"Version":"2012-10-17"})") ==
        "Policy document is missing the required Statement element.");
  CHECK(MalformedMessage(R"({"Version":"2012-10-17","Statement":[]})") ==
        "Policy document has an empty Statement array.");
  CHECK(MalformedMessage(R"({"Version":"2012-10-17","Statement":[],"Comment":"x"})") ==
        "Policy document contains an unknown element \"Comment\".");
  CHECK(MalformedMessage(R"({"Version":"2020-01-01","Statement":[]})") ==
        "Policy document has an invalid Version; it must be \"2012-10-17\" or \"2008-10-17\".");
  CHECK(MalformedMessage(R"({"Id":7,"Statement":[]})") ==
        "Policy document has an Id that is not a string.");
  CHECK(MalformedMessage(R"({"Statement":["Allow"]})") ==
        "Policy contains a statement that is not a JSON object. (Statement[0])");
}

TEST_CASE("Malformed statements", "[policy][malformed]") {
  CHECK(MalformedMessage(AliceStatement("allow", R"("kms:Encrypt")")) ==
        "Policy contains a statement with an invalid Effect; it must be \"Allow\" or \"Deny\". "
        "(Statement[0], element Effect)");
  CHECK(MalformedMessage(R"({"Statement":{"Principal":"*","Action":"kms:*","Resource":"*"}})") ==
        "Policy contains a statement with no Effect. (Statement[0], element Effect)");
  CHECK(MalformedMessage(AliceStatement("Allow", R"("kms:Encrypt")", R"("Condtion":{})")) ==
        "Policy contains a statement with an unknown element \"Condtion\". (Statement[0])");
  CHECK(
      MalformedMessage(
          R"({"Statement":[{"Sid":"Same","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
                             {"Sid":"Other","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},
                             {"Sid":"Same","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]})") ==
      "Statement IDs (SID) in a single policy must be unique; Statement[0] has the same Sid. "
      "(Statement[2], Sid \"Same\", element Sid)");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Sid":5,"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}})") ==
      "Policy contains a statement whose Sid is not a string. (Statement[0], element Sid)");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Sign","Resource":"*"}})") ==
      "Policy contains a statement with both Action and NotAction. (Statement[0], element "
      "Action)");
  CHECK(MalformedMessage(R"({"Statement":{"Effect":"Allow","Principal":"*","Resource":"*"}})") ==
        "Policy contains a statement with no Action or NotAction. (Statement[0], element Action)");
}

TEST_CASE("Malformed principals", "[policy][malformed]") {
  const std::string expected =
      "Policy contains a statement with one or more invalid principals. (Statement[0], Sid "
      "\"P\", element Principal)";
  for (
      const std::string_view principal : {
          R"({"AWS":"arn:aws:iam::111122223333:user/*"})",      // partial wildcard
          R"({"AWS":"arn:aws:iam::1111222233*:root"})",         // partial wildcard
          R"({"AWS":"arn:aws:iam::111122223333:group/devs"})",  // groups are not principals
          R"({"AWS":"alice"})",
          R"({"AWS":"11112222333"})",                                    // 11 digits
          R"({"AWS":"arn:aws:iam:us-east-1:111122223333:user/alice"})",  // region set
          R"({"AWS":"arn:aws-cn:iam::111122223333:user/alice"})",        // other partition
          R"({"AWS":"arn:aws:iam::111122223333:user/"})",
          R"({"AWS":"arn:aws:sts::111122223333:assumed-role/app"})",  // no session
          R"({"AWS":"arn:aws:kms:us-east-1:111122223333:key/x"})",
          R"({"AWS":"arn:aws:iam::111122223333:user/al ice"})",
          R"({"Federated":"cognito-identity.amazonaws.com"})",
          R"({"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"})",
          R"({"Service":"Not A Service"})",
          R"({})",
          R"("arn:aws:iam::111122223333:user/alice")",  // only "*" may stand without a type
          R"(42)",
      }) {
    INFO(principal);
    CHECK(MalformedMessage(std::string(R"({"Statement":{"Sid":"P","Effect":"Allow","Principal":)") +
                           std::string(principal) + R"(,"Action":"kms:*","Resource":"*"}})") ==
          expected);
  }
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*","Resource":"*"}})") ==
      "Policy contains a statement with an empty Principal. (Statement[0], element Principal)");
  CHECK(
      MalformedMessage(
          R"({"Statement":{"Effect":"Allow","Principal":{"AWS":[7]},"Action":"kms:*","Resource":"*"}})") ==
      "Policy contains a statement whose Principal is not a string or an array of strings. "
      "(Statement[0], element Principal)");
}

TEST_CASE("Malformed actions and resources", "[policy][malformed]") {
  const std::string invalid_action =
      "Policy contains a statement with one or more invalid actions; an action is \"*\" or "
      "\"<service>:<action>\", for example \"kms:Encrypt\" or \"kms:*\". (Statement[0], element "
      "Action)";
  CHECK(MalformedMessage(AliceStatement("Allow", R"("Encrypt")")) == invalid_action);
  CHECK(MalformedMessage(AliceStatement("Allow", R"(["kms:Encrypt","kms:"])")) == invalid_action);
  CHECK(MalformedMessage(AliceStatement("Allow", R"(":Encrypt")")) == invalid_action);
  CHECK(MalformedMessage(AliceStatement("Allow", R"("kms:En crypt")")) == invalid_action);
  CHECK(MalformedMessage(AliceStatement("Allow", R"("")")) == invalid_action);
  CHECK(MalformedMessage(AliceStatement("Allow", R"(42)")) ==
        "Policy contains a statement whose Action is not a string or an array of strings. "
        "(Statement[0], element Action)");
  CHECK(MalformedMessage(AliceStatement("Allow", R"(["kms:Encrypt", 42])")) ==
        "Policy contains a statement whose Action is not a string or an array of strings. "
        "(Statement[0], element Action)");
  CHECK(MalformedMessage(AliceStatement("Allow", R"([])")) ==
        "Policy contains a statement with an empty Action. (Statement[0], element Action)");

  const std::string invalid_resource =
      "Policy contains a statement with one or more invalid resources; a resource is \"*\" or an "
      "ARN, for example \"arn:aws:kms:us-east-1:111122223333:key/*\". (Statement[0], element "
      "Resource)";
  for (const std::string_view resource :
       {R"("key/1234")", R"("arn:aws:kms")", R"("arn:aws:kms:us-east-1:111122223333:")", R"("")"}) {
    INFO(resource);
    CHECK(
        MalformedMessage(
            std::string(
                R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":)") +
            std::string(resource) + "}}") == invalid_resource);
  }
}

TEST_CASE("Malformed conditions", "[policy][malformed]") {
  const auto message = [](std::string_view condition) {
    return MalformedMessage(AliceStatement(
        "Allow", R"("kms:Encrypt")", std::string(R"("Condition":)") + std::string(condition)));
  };
  const std::string where = " (Statement[0], element Condition)";
  CHECK(message(R"({"StringEqualz":{"kms:CallerAccount":"111122223333"}})") ==
        "Policy contains an unknown condition operator: \"StringEqualz\"." + where);
  CHECK(message(R"({"ForSomeValues:StringEquals":{"kms:CallerAccount":"1"}})") ==
        "Policy contains an unknown condition operator: \"ForSomeValues:StringEquals\"." + where);
  CHECK(message(R"({"stringequals":{"kms:CallerAccount":"1"}})") ==
        "Policy contains an unknown condition operator: \"stringequals\"." + where);
  CHECK(message(R"({"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}})") ==
        "Policy contains a condition operator that this appliance does not support: "
        "\"IpAddress\"." +
            where);
  CHECK(message(R"({"NullIfExists":{"kms:CallerAccount":true}})") ==
        "Policy contains a Null condition with IfExists or a set qualifier." + where);
  CHECK(message(R"({"Bool":{"kms:GrantIsForAWSResource":"yes"}})") ==
        "Policy contains a Bool condition on \"kms:GrantIsForAWSResource\" whose value is not true "
        "or false." +
            where);
  CHECK(message(R"({"NumericLessThan":{"aws:MultiFactorAuthAge":"ten"}})") ==
        "Policy contains a numeric condition on \"aws:MultiFactorAuthAge\" whose value is not a "
        "number." +
            where);
  CHECK(message(R"({"DateLessThan":{"aws:CurrentTime":"next week"}})") ==
        "Policy contains a date condition on \"aws:CurrentTime\" whose value is not an ISO 8601 "
        "date or epoch time." +
            where);
  CHECK(message(R"({"StringEquals":{"CallerAccount":"1"}})") ==
        "Policy contains an invalid condition key \"CallerAccount\"; a condition key is "
        "\"<service>:<key>\", for example \"kms:CallerAccount\"." +
            where);
  CHECK(message(R"({"StringEquals":{"kms:CallerAccount":{"a":1}}})") ==
        "Policy contains a condition value for \"kms:CallerAccount\" that is not a string, number "
        "or boolean." +
            where);
  CHECK(message(R"({"StringEquals":{"kms:CallerAccount":[]}})") ==
        "Policy contains an empty list of values for \"kms:CallerAccount\"." + where);
  CHECK(message(R"({"StringEquals":"kms:CallerAccount"})") ==
        "Policy contains a condition operator \"StringEquals\" whose value is not an object of "
        "condition keys." +
            where);
  CHECK(message(R"(["StringEquals"])") ==
        "Policy contains a statement whose Condition is not a JSON object." + where);
  // AWS KMS refuses ForAllValues on the single-valued encryption-context key.
  CHECK(message(R"({"ForAllValues:StringEquals":{"kms:EncryptionContext:dept":"IT"}})")
            .starts_with("OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set "
                         "operator with a single-valued condition key"));
}

TEST_CASE("Policy variables are refused under 2012-10-17 and literal under 2008-10-17",
          "[policy][malformed]") {
  const std::string statement =
      R"("Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*",
         "Condition":{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}"}}}})";
  CHECK(MalformedMessage(R"({"Version":"2012-10-17",)" + statement) ==
        "Policy contains a policy variable (\"${...}\"), which this appliance does not support. "
        "(Statement[0], element Condition)");
  const auto literal = MustParse(R"({"Version":"2008-10-17",)" + statement);
  PolicyRequest request = Request(kAlice, "kms:Encrypt");
  request.conditions.SetEncryptionContext({{"user", "${aws:username}"}});
  CHECK(literal->Evaluate(request).allows_principal);
  request.conditions = Context({{"user", "alice"}});
  CHECK_FALSE(literal->Evaluate(request).allows_principal);
}

TEST_CASE("Oversize policies are LimitExceeded", "[policy][malformed]") {
  const std::string base =
      R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}})";
  std::string exact = base;
  exact.insert(1, kMaxPolicyBytes - base.size(), ' ');  // whitespace pads to exactly 32768
  REQUIRE(exact.size() == kMaxPolicyBytes);
  CHECK(CompiledPolicy::Parse(exact, PolicyKind::kKeyPolicy, kAccount).has_value());

  const std::string over = " " + exact;
  for (const PolicyKind kind : {PolicyKind::kKeyPolicy, PolicyKind::kIdentityPolicy}) {
    const Status status = ParseError(over, kind);
    CHECK(status.code() == StatusCode::kResourceExhausted);
    CHECK(status.reason() == Reason::kLimitExceeded);
    CHECK(status.message() == "Policy exceeds the maximum size of 32768 bytes");
  }
}

TEST_CASE("Messages never echo large chunks of the input", "[policy][malformed]") {
  const std::string long_name(12000, 'x');  // two of them stay under 32 KB
  const std::string message =
      MalformedMessage(R"({"Statement":{"Sid":")" + long_name +
                       R"(","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*",")" +
                       long_name + R"(":1}})");
  CHECK(message.size() < 300);
  CHECK(message.find(std::string(65, 'x')) == std::string::npos);
  // Control characters are not echoed either.
  const std::string control = MalformedMessage(R"({"Statement":[],"bad\u0001name":1})");
  CHECK(control == "Policy document contains an unknown element \"bad?name\".");
}

TEST_CASE("Parse accepts the optional shapes", "[policy]") {
  // No Version, a single statement object, an Id, a 2008 Version, an empty Condition.
  CHECK(MustParse(
            R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}})")
            ->statement_count() == 1);
  CHECK(
      MustParse(
          R"({"Version":"2008-10-17","Id":"x","Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{}}]})")
          ->statement_count() == 1);
  // An account id that is not 12 digits is a caller bug, not a malformed document.
  const auto bad_account =
      CompiledPolicy::Parse(DefaultKeyPolicy("1"), PolicyKind::kKeyPolicy, "1");
  REQUIRE_FALSE(bad_account.has_value());
  CHECK(bad_account.error().code() == StatusCode::kInvalidArgument);
  CHECK(bad_account.error().reason() == Reason::kNone);
}

// ---------------------------------------------------------------------------------------------
// Lockout safety check

TEST_CASE("The lockout safety check", "[policy]") {
  const auto default_policy = MustParse(DefaultKeyPolicy(kAccount));
  CHECK(CheckPolicyLockoutSafety(*default_policy, nullptr, Request(kAlice, "kms:CreateKey", "*"))
            .ok());
  const auto bob_admin = MustParse(R"({"Statement":[
    {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*"},
    {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":"*"}]})");
  CHECK(CheckPolicyLockoutSafety(*bob_admin, nullptr, Request(kBob, "kms:PutKeyPolicy")).ok());
  const Status locked_out =
      CheckPolicyLockoutSafety(*bob_admin, nullptr, Request(kAlice, "kms:PutKeyPolicy"));
  CHECK(locked_out.code() == StatusCode::kInvalidArgument);
  CHECK(locked_out.reason() == Reason::kMalformedPolicy);
  CHECK(locked_out.message() ==
        "The new key policy will not allow you to update the key policy in the future.");
}

// ---------------------------------------------------------------------------------------------
// Wildcard cost

TEST_CASE("A pathological wildcard pattern is matched without backtracking blow-up", "[policy]") {
  // With naive recursive backtracking "a*a*...*b" against "aaa...a" explores exponentially many
  // splits; the two-pointer matcher does at most |pattern| x |text| steps.
  std::string pattern;
  for (int i = 0; i < 30; ++i) pattern += "a*";
  pattern += "b";
  const std::string haystack(20000, 'a');
  const auto policy =
      AliceEncryptWhen(R"({"StringLike":{"kms:RequestAlias":")" + pattern + R"("}})");
  CHECK_FALSE(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, haystack)));
  CHECK(AliceMayEncrypt(*policy, One(condition_keys::kRequestAlias, haystack + "b")));

  // The same through Resource and Action patterns.
  const auto resource = MustParse(
      R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:*:key/)" +
      pattern + R"("}})");
  CHECK_FALSE(resource
                  ->Evaluate(Request(kAlice, "kms:Encrypt",
                                     "arn:aws:kms:us-east-1:111122223333:key/" + haystack))
                  .allows_principal);
  CHECK(resource
            ->Evaluate(Request(kAlice, "kms:Encrypt",
                               "arn:aws:kms:us-east-1:111122223333:key/" + haystack + "b"))
            .allows_principal);
  const auto action = MustParse(AliceStatement("Allow", R"("kms:)" + pattern + R"(")"));
  CHECK_FALSE(action->Evaluate(Request(kAlice, "kms:" + haystack)).allows_principal);
  CHECK(action->Evaluate(Request(kAlice, "kms:" + haystack + "B")).allows_principal);

  // '?' and '*' edge cases.
  const auto edges = AliceEncryptWhen(R"({"StringLike":{"kms:RequestAlias":["*","?"]}})");
  CHECK(AliceMayEncrypt(*edges, One(condition_keys::kRequestAlias, "")));
  const auto question = AliceEncryptWhen(R"({"StringLike":{"kms:RequestAlias":"a?c"}})");
  CHECK(AliceMayEncrypt(*question, One(condition_keys::kRequestAlias, "abc")));
  CHECK_FALSE(AliceMayEncrypt(*question, One(condition_keys::kRequestAlias, "ac")));
  CHECK_FALSE(AliceMayEncrypt(*question, One(condition_keys::kRequestAlias, "abbc")));
}

// ---------------------------------------------------------------------------------------------
// A realistic policy

constexpr std::string_view kTenStatements = R"({
  "Version": "2012-10-17",
  "Id": "key-consolepolicy-3",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/admin"},
     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"],
     "Resource": "*"},
    {"Sid": "Allow use of the key", "Effect": "Allow",
     "Principal": {"AWS": ["arn:aws:iam::111122223333:role/app", "arn:aws:iam::111122223333:user/alice"]},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
     "Resource": "*"},
    {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    {"Sid": "Backups need their context", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/backup"},
     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "backup"}}},
    {"Sid": "Aliases of the app", "Effect": "Allow", "Principal": "*",
     "Action": "kms:Sign", "Resource": "*",
     "Condition": {"StringLike": {"kms:RequestAlias": "alias/app-*"},
                   "StringEquals": {"kms:CallerAccount": "111122223333"}}},
    {"Sid": "Symmetric only", "Effect": "Deny", "Principal": {"AWS": "*"},
     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringNotEqualsIfExists": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}},
    {"Sid": "Nobody deletes", "Effect": "Deny", "Principal": "*",
     "Action": "kms:ScheduleKeyDeletion", "Resource": "*",
     "Condition": {"Null": {"aws:MultiFactorAuthAge": "true"}}},
    {"Sid": "No strangers", "Effect": "Deny",
     "NotPrincipal": {"AWS": "111122223333"}, "Action": "*", "Resource": "*"},
    {"Sid": "Only known context keys", "Effect": "Deny", "Principal": "*",
     "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": ["purpose", "owner"]}}}
  ]})";

struct Case {
  std::string principal;
  std::string action;
  std::map<std::string, std::string> context;
  std::vector<std::pair<std::string, std::string>> conditions;
  Decision expected;
  std::string deny_sid;
};

std::vector<Case> TenStatementCases() {
  const std::string admin = "arn:aws:iam::111122223333:user/admin";
  const std::string backup = "arn:aws:iam::111122223333:user/backup";
  // The door sets kms:EncryptionAlgorithm on every Encrypt/Decrypt, defaulted or not (KMS guide).
  const std::pair<std::string, std::string> symmetric = {"kms:EncryptionAlgorithm",
                                                         "SYMMETRIC_DEFAULT"};
  return {
      {admin, "kms:PutKeyPolicy", {}, {}, Decision::kAllow, ""},
      {admin, "kms:ScheduleKeyDeletion", {}, {}, Decision::kExplicitDeny, "Nobody deletes"},
      {admin,
       "kms:ScheduleKeyDeletion",
       {},
       {{"aws:MultiFactorAuthAge", "30"}},
       Decision::kAllow,
       ""},
      {admin, "kms:Decrypt", {}, {symmetric}, Decision::kAllow, ""},  // via the account delegation
      {kAlice, "kms:Encrypt", {}, {symmetric}, Decision::kAllow, ""},
      // IAM: a Deny with StringNotEqualsIfExists still denies when the key is missing.
      {kAlice, "kms:Encrypt", {}, {}, Decision::kExplicitDeny, "Symmetric only"},
      {kAlice,
       "kms:Encrypt",
       {},
       {{"kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}},
       Decision::kExplicitDeny,
       "Symmetric only"},
      {kAlice, "kms:Decrypt", {{"purpose", "x"}}, {symmetric}, Decision::kAllow, ""},
      {kAlice,
       "kms:Decrypt",
       {{"team", "x"}},
       {symmetric},
       Decision::kExplicitDeny,
       "Only known context keys"},
      {kAppRole,
       "kms:CreateGrant",
       {},
       {{"kms:GrantIsForAWSResource", "true"}},
       Decision::kAllow,
       ""},
      {kAppRole,
       "kms:CreateGrant",
       {},
       {{"kms:GrantIsForAWSResource", "false"}},
       Decision::kAllow,
       ""},  // still allowed through the account delegation (no identity layer)
      {backup, "kms:Encrypt", {{"purpose", "backup"}}, {symmetric}, Decision::kAllow, ""},
      // Statement 5 does not match, but the root delegation does (no identity layer).
      {backup, "kms:Encrypt", {{"purpose", "other"}}, {symmetric}, Decision::kAllow, ""},
      {kBob,
       "kms:Sign",
       {},
       {{"kms:RequestAlias", "alias/app-1"}, {"kms:CallerAccount", "111122223333"}},
       Decision::kAllow,
       ""},
      {kStranger,
       "kms:Sign",
       {},
       {{"kms:RequestAlias", "alias/app-1"}, {"kms:CallerAccount", "111122223333"}},
       Decision::kExplicitDeny,
       "No strangers"},
      {kStranger, "kms:DescribeKey", {}, {}, Decision::kExplicitDeny, "No strangers"},
  };
}

PolicyRequest CaseRequest(const Case& c) {
  PolicyRequest request = Request(c.principal, c.action);
  request.conditions.SetEncryptionContext(c.context);
  for (const auto& [key, value] : c.conditions) request.conditions.Set(key, value);
  return request;
}

TEST_CASE("A ten-statement policy is evaluated statement by statement", "[policy]") {
  const auto policy = MustParse(kTenStatements);
  REQUIRE(policy->statement_count() == 10);
  for (const Case& c : TenStatementCases()) {
    INFO(c.principal << " " << c.action);
    const PolicyRequest request = CaseRequest(c);
    CHECK(Decide(policy.get(), nullptr, request) == c.expected);
    CHECK(policy->Evaluate(request).deny_sid == c.deny_sid);
  }
  // With an identity layer, account delegation needs the identity policy's allow.
  const auto identity =
      MustParse(R"({"Statement":{"Effect":"Allow","Action":"kms:Describe*","Resource":"*"}})",
                PolicyKind::kIdentityPolicy);
  const std::string admin = "arn:aws:iam::111122223333:user/admin";
  PolicyRequest admin_decrypt = Request(admin, "kms:Decrypt");
  admin_decrypt.conditions.Set(condition_keys::kEncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  CHECK(Decide(policy.get(), identity.get(), admin_decrypt) == Decision::kImplicitDeny);
  CHECK(Decide(policy.get(), identity.get(), Request(admin, "kms:PutKeyPolicy")) ==
        Decision::kAllow);  // named directly
  CHECK(Decide(policy.get(), identity.get(), Request(kBob, "kms:DescribeKey")) == Decision::kAllow);
  // ...and the backup user's statement 5 now decides alone.
  PolicyRequest backup = Request("arn:aws:iam::111122223333:user/backup", "kms:Encrypt");
  backup.conditions.Set(condition_keys::kEncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  backup.conditions.SetEncryptionContext({{"purpose", "backup"}});
  CHECK(Decide(policy.get(), identity.get(), backup) == Decision::kAllow);
  backup.conditions = ConditionValues();
  backup.conditions.Set(condition_keys::kEncryptionAlgorithm, "SYMMETRIC_DEFAULT");
  backup.conditions.SetEncryptionContext({{"purpose", "other"}});
  CHECK(Decide(policy.get(), identity.get(), backup) == Decision::kImplicitDeny);
}

TEST_CASE("Evaluate is deterministic across threads", "[policy][concurrency]") {
  const auto policy = MustParse(kTenStatements);
  const std::vector<Case> cases = TenStatementCases();
  std::vector<PolicyRequest> requests;
  std::vector<Decision> expected;
  std::vector<std::string> expected_sids;
  for (const Case& c : cases) {
    requests.push_back(CaseRequest(c));
    expected.push_back(Decide(policy.get(), nullptr, requests.back()));
    expected_sids.push_back(policy->Evaluate(requests.back()).deny_sid);
  }
  constexpr int kThreads = 4;
  constexpr int kEvaluations = 10000;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEvaluations; ++i) {
        const std::size_t n = static_cast<std::size_t>(i + t) % requests.size();
        const PolicyVerdict verdict = policy->Evaluate(requests[n]);
        if (Decide(policy.get(), nullptr, requests[n]) != expected[n] ||
            verdict.deny_sid != expected_sids[n]) {
          ++mismatches[static_cast<std::size_t>(t)];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
}

}  // namespace
}  // namespace kms::firmware::authz
