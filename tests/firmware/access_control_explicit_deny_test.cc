// AccessControl::ExplicitlyDenies on the fake HSM and a real SQLite store: the Deny-only check for
// callers whose rights come from outside the key policy (the Vault door's tokens). Only a matching
// Deny statement counts: principal ("*", the account root, the caller's ARN), action (wildcards,
// NotAction), resource and conditions (the caller's and the ones given); Allows, grants and the
// default key policy never deny.
#include <catch2/catch.hpp>
#include <string>

#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::firmware::authz {
namespace {

constexpr std::string_view kAccount = "111122223333";

struct DenyFixture : testing::ServiceFixture {
  DenyFixture()
      : principals(*store, clock, std::string(kAccount)),
        access(Hsm(), *store, principals, clock) {}

  void Put(const KeyRef& key, std::string_view deny_statements) {
    const std::string policy = std::string(R"({"Version":"2012-10-17","Statement":[
      {"Sid":"Enable IAM User Permissions","Effect":"Allow",
       "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"})") +
                               std::string(deny_statements) + "]}";
    const Status put = access.PutKeyPolicy(Admin(), key, policy, /*bypass_lockout_check=*/true);
    INFO(put.ToString());
    REQUIRE(put.ok());
  }
  static Caller Admin() {
    Caller c;
    c.principal_arn = "arn:aws:iam::111122223333:user/admin";
    c.user_name = "admin";
    c.administrator = true;
    return c;
  }
  static Caller Vault(std::string_view name) {
    Caller c;
    c.principal_arn = "arn:aws:iam::111122223333:user/vault-token/" + std::string(name);
    c.user_name = std::string(name);
    return c;
  }
  bool Denies(const Caller& caller, std::string_view action, const KeyRef& key,
              const ConditionValues& conditions = {}) {
    auto denied = access.ExplicitlyDenies(caller, action, key, conditions);
    INFO(StatusOf(denied).ToString());
    REQUIRE(denied.has_value());
    return *denied;
  }

  PrincipalRegistry principals;
  AccessControl access;
};

const KeyRef kKey{"1234abcd-12ab-34cd-56ef-1234567890ab",
                  "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"};
const KeyRef kOther{"0000abcd-12ab-34cd-56ef-1234567890ab",
                    "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab"};

TEST_CASE("access control: the default key policy and Allows deny nobody", "[unit]") {
  DenyFixture f;
  // No policy stored: the default, which only allows.
  CHECK_FALSE(f.Denies(DenyFixture::Vault("seal"), "kms:Decrypt", kKey));
  CHECK_FALSE(f.Denies(DenyFixture::Admin(), "kms:ScheduleKeyDeletion", kKey));
  // An Allow naming the caller changes nothing: only a Deny counts.
  f.Put(kKey, R"(,{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"})");
  CHECK_FALSE(f.Denies(DenyFixture::Vault("seal"), "kms:Decrypt", kKey));
}

TEST_CASE("access control: an explicit Deny matches by principal, action and resource", "[unit]") {
  DenyFixture f;
  f.Put(kKey, R"(,
    {"Sid":"NoDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
    {"Sid":"SealOnly","Effect":"Deny",
     "Principal":{"AWS":"arn:aws:iam::111122223333:user/vault-token/seal"},
     "Action":["kms:Encrypt","kms:ReEncrypt*"],"Resource":"*"},
    {"Sid":"Root","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
     "Action":"kms:ScheduleKeyDeletion","Resource":"*"},
    {"Sid":"AllButSign","Effect":"Deny","Principal":"*","NotAction":["kms:Sign","kms:Decrypt",
     "kms:Encrypt","kms:ReEncrypt*","kms:ScheduleKeyDeletion","kms:DescribeKey"],
     "Resource":"arn:aws:kms:us-east-1:111122223333:key/*"})");
  const Caller seal = DenyFixture::Vault("seal");
  const Caller other = DenyFixture::Vault("other");
  // "*": everyone, administrators included.
  CHECK(f.Denies(seal, "kms:Decrypt", kKey));
  CHECK(f.Denies(DenyFixture::Admin(), "kms:Decrypt", kKey));
  // A principal ARN: that caller only; wildcard actions match.
  CHECK(f.Denies(seal, "kms:Encrypt", kKey));
  CHECK(f.Denies(seal, "kms:ReEncryptFrom", kKey));
  CHECK(f.Denies(seal, "kms:ReEncryptTo", kKey));
  CHECK_FALSE(f.Denies(other, "kms:Encrypt", kKey));
  // The account root: every principal of the account.
  CHECK(f.Denies(other, "kms:ScheduleKeyDeletion", kKey));
  // NotAction: everything but the listed actions.
  CHECK(f.Denies(other, "kms:GenerateMac", kKey));
  CHECK_FALSE(f.Denies(other, "kms:Sign", kKey));
  CHECK_FALSE(f.Denies(other, "kms:DescribeKey", kKey));
  // Another key has its own (default) policy.
  CHECK_FALSE(f.Denies(seal, "kms:Decrypt", kOther));
}

TEST_CASE("access control: an explicit Deny's conditions see the caller and the given keys",
          "[unit]") {
  DenyFixture f;
  f.Put(kKey, R"(,
    {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
     "Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/vault-token/*"}}},
    {"Effect":"Deny","Principal":"*","Action":"kms:Encrypt","Resource":"*",
     "Condition":{"StringEquals":{"kms:RequestAlias":"alias/vault/transit/k"}}})");
  // aws:PrincipalArn is the caller's.
  CHECK(f.Denies(DenyFixture::Vault("any"), "kms:Decrypt", kKey));
  CHECK_FALSE(f.Denies(DenyFixture::Admin(), "kms:Decrypt", kKey));
  // A condition key the caller passes; missing, the positive operator does not hold.
  ConditionValues alias;
  alias.Set("kms:RequestAlias", "alias/vault/transit/k");
  CHECK(f.Denies(DenyFixture::Vault("any"), "kms:Encrypt", kKey, alias));
  ConditionValues elsewhere;
  elsewhere.Set("kms:RequestAlias", "alias/vault/apps/k");
  CHECK_FALSE(f.Denies(DenyFixture::Vault("any"), "kms:Encrypt", kKey, elsewhere));
  CHECK_FALSE(f.Denies(DenyFixture::Vault("any"), "kms:Encrypt", kKey));
}

TEST_CASE("access control: a new key policy's Deny applies at once", "[unit]") {
  DenyFixture f;
  const Caller seal = DenyFixture::Vault("seal");
  CHECK_FALSE(f.Denies(seal, "kms:Decrypt", kKey));  // cached: the default policy
  f.Put(kKey, R"(,{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"})");
  CHECK(f.Denies(seal, "kms:Decrypt", kKey));
  f.Put(kKey, "");
  CHECK_FALSE(f.Denies(seal, "kms:Decrypt", kKey));
}

}  // namespace
}  // namespace kms::firmware::authz
