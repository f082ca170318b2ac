// Authorization of every operation of the AWS door (refused unless a key policy, an identity
// policy or a grant allows it; an explicit Deny wins), end to end through AwsDoor::Handle (SigV4,
// framing, KeyAuthorizer, the operation) over a real KeyService on the fake HSM and a SQLite
// store, with a real PrincipalRegistry and AccessControl.
//
// Two callers: `admin` (an administrator: its identity policy allows everything, and the default key
// policy delegates to the account) and `alice` (a user with no identity policy). For every operation
// the door registers, one row of kCases says how to call it; each row runs the checks of its kind:
//  * key operations a grant can allow (Encrypt, Sign, CreateGrant, ...): alice is refused under the
//    default policy with the exact AccessDeniedException; a grant token from a peer appliance (whose
//    write this door's cache has not seen) makes the call pass at once; a grant made here makes it
//    pass; a key-policy statement makes it pass; an explicit Deny beats both an Allow and a grant;
//    where the operation takes an encryption context, a kms:EncryptionContext:app condition admits
//    app=ok and refuses app=other and no context.
//  * key operations no grant can allow (DisableKey, PutKeyPolicy, ...): refused by default; a grant
//    for every grant operation, with its token, still refuses (AWS's rule); the key policy allows;
//    an explicit Deny beats the Allow.
//  * account-level operations (CreateKey, ListKeys, ...): refused without an identity policy;
//    alice's identity policy allows; an explicit Deny in it beats its Allow.
//  * RetireGrant has its own rules (retiring principal, grantee with RetireGrant, key policy).
// The door's OperationTable is checked against kCases, so an operation added later without a row
// fails here.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <set>

#include "tests/api/authz_door_fixture.h"

namespace kms::api::aws {
namespace {

using namespace authz_test;

enum class Kind { kGrantable, kKeyAdministration, kAccountLevel };

struct OpCase {
  std::string operation;
  Kind kind;
  std::string key_spec;                  // of the key the call acts on
  std::vector<std::string> actions;      // the actions the door decides, in order
  std::vector<std::string> grant_ops;    // a grant that allows it
  bool takes_context = false;
  // The body alice sends for `key` (state it needs is made by the administrator first); `context`
  // goes wherever the operation takes an encryption context.
  std::function<json::object(AuthzDoorFixture&, const std::string& key, const json::object& context)>
      body;
};

json::object WithContext(json::object body, const json::object& context,
                         std::string_view member = "EncryptionContext") {
  if (!context.empty()) body[member] = context;
  return body;
}

std::vector<OpCase> Cases() {
  using F = AuthzDoorFixture;
  using O = json::object;
  const std::string sym = "SYMMETRIC_DEFAULT", ecc = "ECC_NIST_P256", hmac = "HMAC_256";
  std::vector<OpCase> c;
  auto grantable = [&](std::string op, std::string spec, bool ctx, auto body,
                       std::vector<std::string> grant_ops = {}) {
    if (grant_ops.empty()) grant_ops = {op};
    c.push_back({op, Kind::kGrantable, spec, {"kms:" + op}, grant_ops, ctx, body});
  };
  auto administration = [&](std::string op, auto body) {
    c.push_back({op, Kind::kKeyAdministration, "SYMMETRIC_DEFAULT", {"kms:" + op}, {}, false, body});
  };
  auto account = [&](std::string op, O body) {
    c.push_back({op, Kind::kAccountLevel, "", {"kms:" + op}, {}, false,
                 [body](F&, const std::string&, const O&) { return body; }});
  };

  grantable("DescribeKey", sym, false, [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}};
  });
  grantable("Encrypt", sym, true, [](F&, const std::string& k, const O& ctx) {
    return WithContext({{"KeyId", k}, {"Plaintext", B64("authorized plaintext")}}, ctx);
  });
  grantable("Decrypt", sym, true, [](F& f, const std::string& k, const O& ctx) {
    const auto blob = f.Ok(kAdmin, "Encrypt",
                           WithContext({{"KeyId", k}, {"Plaintext", B64("to decrypt")}}, ctx))
                          .at("CiphertextBlob");
    return WithContext({{"CiphertextBlob", blob}}, ctx);
  });
  c.push_back({"ReEncrypt", Kind::kGrantable, sym, {"kms:ReEncryptFrom", "kms:ReEncryptTo"},
               {"ReEncryptFrom", "ReEncryptTo"}, true,
               [](F& f, const std::string& k, const O& ctx) {
                 const auto blob =
                     f.Ok(kAdmin, "Encrypt",
                          WithContext({{"KeyId", k}, {"Plaintext", B64("to move")}}, ctx))
                         .at("CiphertextBlob");
                 return WithContext(
                     WithContext({{"CiphertextBlob", blob}, {"DestinationKeyId", k}}, ctx,
                                 "SourceEncryptionContext"),
                     ctx, "DestinationEncryptionContext");
               }});
  grantable("GenerateDataKey", sym, true, [](F&, const std::string& k, const O& ctx) {
    return WithContext({{"KeyId", k}, {"KeySpec", "AES_256"}}, ctx);
  });
  grantable("GenerateDataKeyWithoutPlaintext", sym, true,
            [](F&, const std::string& k, const O& ctx) {
              return WithContext({{"KeyId", k}, {"NumberOfBytes", 32}}, ctx);
            });
  grantable("GenerateDataKeyPair", sym, true, [](F&, const std::string& k, const O& ctx) {
    return WithContext({{"KeyId", k}, {"KeyPairSpec", "ECC_NIST_P256"}}, ctx);
  });
  grantable("GenerateDataKeyPairWithoutPlaintext", sym, true,
            [](F&, const std::string& k, const O& ctx) {
              return WithContext({{"KeyId", k}, {"KeyPairSpec", "ECC_NIST_P256"}}, ctx);
            });
  grantable("Sign", ecc, false, [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"Message", B64("sign me")}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  });
  grantable("Verify", ecc, false, [](F& f, const std::string& k, const O&) {
    O body{{"KeyId", k}, {"Message", B64("sign me")}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
    body["Signature"] = f.Ok(kAdmin, "Sign", body).at("Signature");
    return body;
  });
  grantable("GetPublicKey", ecc, false, [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}};
  });
  grantable("GenerateMac", hmac, false, [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"Message", B64("mac me")}, {"MacAlgorithm", "HMAC_SHA_256"}};
  });
  grantable("VerifyMac", hmac, false, [](F& f, const std::string& k, const O&) {
    O body{{"KeyId", k}, {"Message", B64("mac me")}, {"MacAlgorithm", "HMAC_SHA_256"}};
    body["Mac"] = f.Ok(kAdmin, "GenerateMac", body).at("Mac");
    return body;
  });
  // A child grant may give no more than the grant that allowed it: Encrypt out of {CreateGrant,
  // Encrypt}.
  grantable(
      "CreateGrant", sym, false,
      [](F&, const std::string& k, const O&) {
        return O{{"KeyId", k}, {"GranteePrincipal", kBobArn}, {"Operations", {"Encrypt"}}};
      },
      {"CreateGrant", "Encrypt"});

  administration("UpdateKeyDescription", [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"Description", "renamed"}};
  });
  administration("EnableKey", [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("DisableKey", [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("ScheduleKeyDeletion", [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"PendingWindowInDays", 7}};
  });
  administration("CancelKeyDeletion", [](F& f, const std::string& k, const O&) {
    f.Ok(kAdmin, "ScheduleKeyDeletion", {{"KeyId", k}, {"PendingWindowInDays", 7}});
    return O{{"KeyId", k}};
  });
  administration("CreateAlias", [](F& f, const std::string& k, const O&) {
    return O{{"AliasName", f.Unique("alias/new-")}, {"TargetKeyId", k}};
  });
  administration("DeleteAlias", [](F& f, const std::string& k, const O&) {
    const std::string alias = f.Unique("alias/doomed-");
    f.Ok(kAdmin, "CreateAlias", {{"AliasName", alias}, {"TargetKeyId", k}});
    return O{{"AliasName", alias}};
  });
  administration("UpdateAlias", [](F& f, const std::string& k, const O&) {
    const std::string alias = f.Unique("alias/moving-");
    f.Ok(kAdmin, "CreateAlias", {{"AliasName", alias}, {"TargetKeyId", k}});
    return O{{"AliasName", alias}, {"TargetKeyId", k}};
  });
  administration("TagResource", [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"Tags", {O{{"TagKey", "team"}, {"TagValue", "kms"}}}}};
  });
  administration("UntagResource", [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"TagKeys", {"team"}}};
  });
  administration("ListResourceTags",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("EnableKeyRotation",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("DisableKeyRotation",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("GetKeyRotationStatus",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("RotateKeyOnDemand",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("ListKeyRotations",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("GetKeyPolicy", [](F&, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"PolicyName", "default"}};
  });
  administration("PutKeyPolicy", [](F&, const std::string& k, const O&) {
    // A policy that keeps alice able to put the next one (the lockout check).
    return O{{"KeyId", k},
             {"PolicyName", "default"},
             {"Policy", KeyPolicy({AliceStatement("Allow", "kms:*")})}};
  });
  administration("ListKeyPolicies",
                 [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("ListGrants", [](F&, const std::string& k, const O&) { return O{{"KeyId", k}}; });
  administration("RevokeGrant", [](F& f, const std::string& k, const O&) {
    return O{{"KeyId", k}, {"GrantId", f.Grant(k, kBobArn, {"Encrypt"}).first}};
  });

  account("CreateKey", {{"Description", "alice's key"}});
  account("ListKeys", {});
  account("ListAliases", {});
  account("GenerateRandom", {{"NumberOfBytes", 16}});
  account("ListRetirableGrants", {{"RetiringPrincipal", kAliceArn}});
  return c;
}

// The operations the door answers "not supported" for everyone (op_not_implemented.cc): they touch
// no key, so there is nothing to authorize.
constexpr std::size_t kUnsupportedOperations = 13;

TEST_CASE("authz door: the cases cover every operation the AWS door registers", "[unit][authz]") {
  AuthzDoorFixture f;
  const auto cases = Cases();
  for (const auto& c : cases) {
    INFO(c.operation);
    CHECK(f.operations.Find(c.operation) != nullptr);
  }
  // + RetireGrant, tested by its own case below.
  CHECK(f.operations.size() == cases.size() + 1 + kUnsupportedOperations);
}

json::object WithTokens(json::object body, const std::string& token) {
  body["GrantTokens"] = json::array{json::value(token)};
  return body;
}

void CheckGrantable(const OpCase& c) {
  AuthzDoorFixture f;
  const std::string& first = c.actions.front();
  const json::object none;

  SECTION("the default key policy refuses alice") {
    const std::string key = f.NewKey(c.key_spec);
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) == AccessDenied(NoKeyPolicy(first, key)));
  }
  SECTION("a grant token from a peer appliance makes the call pass at once") {
    const std::string key = f.NewKey(c.key_spec);
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) == AccessDenied(NoKeyPolicy(first, key)));
    const std::string token = f.PeerGrantToken(key, c.grant_ops);
    // The peer's grant is not in this door's cache: without its token alice is still refused...
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) == AccessDenied(NoKeyPolicy(first, key)));
    // ...and with it she passes.
    f.Ok(kAlice, c.operation, WithTokens(c.body(f, key, none), token));
  }
  SECTION("a grant made here makes the call pass, and stops at once when revoked") {
    const std::string key = f.NewKey(c.key_spec);
    const auto [grant_id, token] = f.Grant(key, kAliceArn, c.grant_ops);
    f.Ok(kAlice, c.operation, c.body(f, key, none));
    f.Ok(kAdmin, "RevokeGrant", {{"KeyId", key}, {"GrantId", grant_id}});
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) == AccessDenied(NoKeyPolicy(first, key)));
    CHECK(f.Err(kAlice, c.operation, WithTokens(c.body(f, key, none), token)) ==
          AccessDenied(NoKeyPolicy(first, key)));
  }
  SECTION("a key-policy statement makes the call pass") {
    json::array actions;
    for (const auto& a : c.actions) actions.emplace_back(a);
    const std::string key =
        f.NewKey(c.key_spec, KeyPolicy({AliceStatement("Allow", actions)}));
    f.Ok(kAlice, c.operation, c.body(f, key, none));
  }
  SECTION("an explicit Deny beats the key policy's Allow and a grant") {
    const std::string key = f.NewKey(c.key_spec, KeyPolicy({AliceStatement("Allow", "kms:*"),
                                                            AliceStatement("Deny", json::value(first))}));
    const auto grant = f.Grant(key, kAliceArn, c.grant_ops);
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) ==
          AccessDenied(ExplicitKeyDeny(first, key)));
    CHECK(f.Err(kAlice, c.operation, WithTokens(c.body(f, key, none), grant.second)) ==
          AccessDenied(ExplicitKeyDeny(first, key)));
  }
  if (c.takes_context) {
    SECTION("an encryption-context condition admits app=ok and refuses app=other and none") {
      json::array actions;
      for (const auto& a : c.actions) actions.emplace_back(a);
      const json::object condition{
          {"StringEquals", {{"kms:EncryptionContext:app", "ok"}}}};
      const std::string key =
          f.NewKey(c.key_spec, KeyPolicy({AliceStatement("Allow", actions, condition)}));
      f.Ok(kAlice, c.operation, c.body(f, key, {{"app", "ok"}}));
      CHECK(f.Err(kAlice, c.operation, c.body(f, key, {{"app", "other"}})) ==
            AccessDenied(NoKeyPolicy(first, key)));
      CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) ==
            AccessDenied(NoKeyPolicy(first, key)));
    }
  }
}

bool IsAliasOperation(std::string_view op) {
  return op == "CreateAlias" || op == "DeleteAlias" || op == "UpdateAlias";
}

void CheckKeyAdministration(const OpCase& c) {
  AuthzDoorFixture f;
  const std::string& action = c.actions.front();
  const json::object none;
  if (IsAliasOperation(c.operation)) {
    // The alias half of the decision is the identity policy's (its own test case below); here
    // alice may name any alias, so what is checked is the key half.
    REQUIRE(f.principals
                .PutUserPolicy("alice", IdentityPolicy({json::object{
                                            {"Effect", "Allow"},
                                            {"Action", action},
                                            {"Resource", "arn:aws:kms:us-east-1:111122223333:alias/*"}}}))
                .ok());
  }
  SECTION("the default key policy refuses alice") {
    const std::string key = f.NewKey(c.key_spec);
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) ==
          AccessDenied(NoKeyPolicy(action, key)));
  }
  SECTION("no grant allows it, not even one for every grant operation, token given") {
    const std::string key = f.NewKey(c.key_spec);
    std::vector<std::string> every(std::begin(authz::kGrantOperations),
                                   std::end(authz::kGrantOperations));
    // DeriveSharedSecret is refused by CreateGrant on a symmetric key; all the others are given.
    std::erase(every, "DeriveSharedSecret");
    const auto grant = f.Grant(key, kAliceArn, every);
    CHECK(f.Err(kAlice, c.operation, WithTokens(c.body(f, key, none), grant.second)) ==
          AccessDenied(NoKeyPolicy(action, key)));
  }
  SECTION("a key-policy statement makes the call pass") {
    const std::string key = f.NewKey(c.key_spec, KeyPolicy({AliceStatement("Allow", json::value(action))}));
    f.Ok(kAlice, c.operation, c.body(f, key, none));
  }
  SECTION("an explicit Deny beats the key policy's Allow") {
    const std::string key = f.NewKey(c.key_spec, KeyPolicy({AliceStatement("Allow", "kms:*"),
                                                            AliceStatement("Deny", json::value(action))}));
    CHECK(f.Err(kAlice, c.operation, c.body(f, key, none)) ==
          AccessDenied(ExplicitKeyDeny(action, key)));
  }
}

void CheckAccountLevel(const OpCase& c) {
  AuthzDoorFixture f;
  const std::string& action = c.actions.front();
  const json::object body = c.body(f, "", {});
  SECTION("without an identity policy alice is refused") {
    CHECK(f.Err(kAlice, c.operation, body) == AccessDenied(NoIdentityPolicy(action)));
  }
  SECTION("alice's identity policy allows it") {
    REQUIRE(f.principals
                .PutUserPolicy("alice", IdentityPolicy({json::object{
                                            {"Effect", "Allow"}, {"Action", action},
                                            {"Resource", "*"}}}))
                .ok());
    f.Ok(kAlice, c.operation, body);
  }
  SECTION("an explicit Deny in the identity policy beats its Allow") {
    REQUIRE(f.principals
                .PutUserPolicy("alice",
                               IdentityPolicy({json::object{{"Effect", "Allow"},
                                                            {"Action", "kms:*"},
                                                            {"Resource", "*"}},
                                               json::object{{"Effect", "Deny"},
                                                            {"Action", action},
                                                            {"Resource", "*"}}}))
                .ok());
    CHECK(f.Err(kAlice, c.operation, body) == AccessDenied(ExplicitIdentityDeny(action)));
  }
}

TEST_CASE("authz door: key operations a grant can allow", "[unit][authz]") {
  for (const auto& c : Cases()) {
    if (c.kind != Kind::kGrantable) continue;
    DYNAMIC_SECTION(c.operation) { CheckGrantable(c); }
  }
}

TEST_CASE("authz door: key administration, which no grant can allow", "[unit][authz]") {
  for (const auto& c : Cases()) {
    if (c.kind != Kind::kKeyAdministration) continue;
    DYNAMIC_SECTION(c.operation) { CheckKeyAdministration(c); }
  }
}

TEST_CASE("authz door: account-level operations follow the identity policy", "[unit][authz]") {
  for (const auto& c : Cases()) {
    if (c.kind != Kind::kAccountLevel) continue;
    DYNAMIC_SECTION(c.operation) { CheckAccountLevel(c); }
  }
}

TEST_CASE("authz door: an alias is a resource of its own: the identity policy must allow its name",
          "[unit][authz]") {
  AuthzDoorFixture f;
  // A key alice fully controls through its key policy...
  const std::string mine =
      f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:*")}));
  const std::string alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/";
  auto refused = [&](std::string_view action, std::string_view name) {
    return AccessDenied("User: " + kAliceArn + " is not authorized to perform: " +
                        std::string(action) + " on resource: " + alias_arn + std::string(name) +
                        " because no identity-based policy allows the " + std::string(action) +
                        " action");
  };
  SECTION("without an identity policy she cannot take a name, even for her own key") {
    CHECK(f.Err(kAlice, "CreateAlias", {{"AliasName", "alias/payments"}, {"TargetKeyId", mine}}) ==
          refused("kms:CreateAlias", "payments"));
    // Nothing was made: the owner of the name can still create it.
    const std::string theirs = f.NewKey("SYMMETRIC_DEFAULT");
    f.Ok(kAdmin, "CreateAlias", {{"AliasName", "alias/payments"}, {"TargetKeyId", theirs}});
    // ...and alice can neither move nor delete it, although her key policy allows the actions.
    CHECK(f.Err(kAlice, "UpdateAlias", {{"AliasName", "alias/payments"}, {"TargetKeyId", mine}}) ==
          refused("kms:UpdateAlias", "payments"));
    CHECK(f.Err(kAlice, "DeleteAlias", {{"AliasName", "alias/payments"}}) ==
          refused("kms:DeleteAlias", "payments"));
    CHECK(f.Ok(kAdmin, "DescribeKey", {{"KeyId", "alias/payments"}})
              .at("KeyMetadata")
              .at("KeyId")
              .as_string() == theirs);
  }
  SECTION("an identity policy naming a pattern gives those names and no others") {
    REQUIRE(f.principals
                .PutUserPolicy("alice", IdentityPolicy({json::object{
                                            {"Effect", "Allow"},
                                            {"Action", json::array{"kms:CreateAlias",
                                                                   "kms:DeleteAlias"}},
                                            {"Resource", alias_arn + "team-a/*"}}}))
                .ok());
    f.Ok(kAlice, "CreateAlias", {{"AliasName", "alias/team-a/app"}, {"TargetKeyId", mine}});
    CHECK(f.Err(kAlice, "CreateAlias", {{"AliasName", "alias/team-b/app"}, {"TargetKeyId", mine}}) ==
          refused("kms:CreateAlias", "team-b/app"));
    f.Ok(kAlice, "DeleteAlias", {{"AliasName", "alias/team-a/app"}});
  }
  SECTION("a malformed or reserved name is refused before any decision") {
    CHECK(f.Err(kAlice, "CreateAlias", {{"AliasName", "payments"}, {"TargetKeyId", mine}}).first ==
          "ValidationException");
    CHECK(f.Err(kAlice, "CreateAlias", {{"AliasName", "alias/aws/ebs"}, {"TargetKeyId", mine}})
              .first == "ValidationException");
  }
}

TEST_CASE("authz door: RetireGrant by the retiring principal, the grantee or the key policy",
          "[unit][authz]") {
  AuthzDoorFixture f;
  const std::string retire_denied =
      "User: " + kAliceArn + " is not authorized to perform: kms:RetireGrant on this grant";
  const std::string encrypt = "authorized plaintext";

  SECTION("a stranger to the grant is refused") {
    const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
    const auto grant = f.Grant(key, kBobArn, {"Encrypt"});
    CHECK(f.Err(kAlice, "RetireGrant", {{"KeyId", key}, {"GrantId", grant.first}}) ==
          AccessDenied(retire_denied));
    CHECK(f.Err(kAlice, "RetireGrant", {{"GrantToken", grant.second}}) ==
          AccessDenied(retire_denied));
  }
  SECTION("the retiring principal retires by token, and the grant stops at once") {
    const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
    const auto grant = f.Grant(key, kAliceArn, {"Encrypt"}, kAliceArn);
    f.Ok(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64(encrypt)}});
    f.Ok(kAlice, "RetireGrant", {{"GrantToken", grant.second}});
    CHECK(f.Err(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64(encrypt)}}) ==
          AccessDenied(NoKeyPolicy("kms:Encrypt", key)));
    CHECK(f.Err(kAlice, "Encrypt",
                WithTokens({{"KeyId", key}, {"Plaintext", B64(encrypt)}}, grant.second)) ==
          AccessDenied(NoKeyPolicy("kms:Encrypt", key)));
  }
  SECTION("the grantee retires a grant that includes RetireGrant") {
    const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
    const auto grant = f.Grant(key, kAliceArn, {"Encrypt", "RetireGrant"});
    f.Ok(kAlice, "RetireGrant", {{"KeyId", key}, {"GrantId", grant.first}});
    CHECK(f.Ok(kAdmin, "ListGrants", {{"KeyId", key}}).at("Grants").as_array().empty());
  }
  SECTION("a grantee whose grant lacks RetireGrant is refused") {
    const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
    const auto grant = f.Grant(key, kAliceArn, {"Encrypt"});
    CHECK(f.Err(kAlice, "RetireGrant", {{"KeyId", key}, {"GrantId", grant.first}}) ==
          AccessDenied(retire_denied));
  }
  SECTION("a key policy that allows kms:RetireGrant lets alice retire bob's grant") {
    const std::string key =
        f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:RetireGrant")}));
    const auto grant = f.Grant(key, kBobArn, {"Encrypt"});
    f.Ok(kAlice, "RetireGrant", {{"KeyId", key}, {"GrantId", grant.first}});
  }
  SECTION("an explicit Deny of kms:RetireGrant beats the key policy's Allow") {
    const std::string key = f.NewKey("SYMMETRIC_DEFAULT",
                                     KeyPolicy({AliceStatement("Allow", "kms:*"),
                                                AliceStatement("Deny", "kms:RetireGrant")}));
    const auto grant = f.Grant(key, kBobArn, {"Encrypt"});
    CHECK(f.Err(kAlice, "RetireGrant", {{"KeyId", key}, {"GrantId", grant.first}}) ==
          AccessDenied(retire_denied));
  }
}

TEST_CASE("authz door: each answer's audit record names the caller, key, decision and grant",
          "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string plaintext = "audited plaintext canary";
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  const std::string allowed =
      f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:Encrypt")}));
  const auto grant = f.Grant(key, kAliceArn, {"Encrypt"});
  auditor.entries.clear();
  const json::object context{{"app", "billing"}};
  const auto by_grant =
      f.Ok(kAlice, "Encrypt",
           {{"KeyId", key}, {"Plaintext", B64(plaintext)}, {"EncryptionContext", context}});
  f.Ok(kAlice, "Encrypt", {{"KeyId", allowed}, {"Plaintext", B64(plaintext)}});
  f.Ok(kAdmin, "Encrypt", {{"KeyId", key}, {"Plaintext", B64(plaintext)}});
  f.Ok(kAdmin, "RevokeGrant", {{"KeyId", key}, {"GrantId", grant.first}});
  f.Err(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64(plaintext)}});
  // RevokeGrant changes state: its intent record precedes it.
  REQUIRE(auditor.entries.size() == 6);
  const auto& e = auditor.entries;
  CHECK(e[0].operation == "Encrypt");
  CHECK(e[0].principal == kAliceArn);
  CHECK(e[0].credential_id == kAlice.id);
  CHECK(e[0].key_arn == KeyArn(key));
  CHECK(e[0].decision == "allow:grant");
  CHECK(e[0].grant_id == grant.first);
  CHECK(e[0].outcome == "ok");
  CHECK(e[0].context == std::map<std::string, std::string>{{"app", "billing"}});
  CHECK(e[1].decision == "allow:key-policy");
  CHECK(e[1].key_arn == KeyArn(allowed));
  CHECK(e[1].grant_id.empty());
  CHECK(e[2].principal == kAdminArn);
  CHECK(e[2].decision == "allow:identity-policy");
  CHECK(e[3].operation == "RevokeGrant");
  CHECK(e[3].outcome == "started");
  CHECK(e[3].status == 0);
  CHECK(e[3].decision == "allow:identity-policy");
  CHECK(e[3].key_arn == KeyArn(key));
  CHECK(e[4].operation == "RevokeGrant");
  CHECK(e[4].outcome == "ok");
  CHECK(e[5].outcome == "AccessDeniedException");
  CHECK(e[5].decision == "deny:implicit");
  CHECK(e[5].error_message == NoKeyPolicy("kms:Encrypt", key));
  CHECK(e[5].status == 400);
  // Nothing secret or bulky: not the plaintext, not the ciphertext, not a secret key.
  const std::string ciphertext(by_grant.at("CiphertextBlob").as_string());
  for (const auto& entry : e) {
    for (const std::string* field :
         {&entry.operation, &entry.principal, &entry.credential_id, &entry.key_arn,
          &entry.outcome, &entry.error_message, &entry.grant_id, &entry.decision}) {
      CHECK(field->find("canary") == std::string::npos);
      CHECK(field->find(B64(plaintext)) == std::string::npos);
      CHECK(field->find(ciphertext) == std::string::npos);
      CHECK(field->find(kAlice.secret) == std::string::npos);
    }
  }
}

TEST_CASE("authz door: an audit record that cannot be written turns the answer into a 500",
          "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  const Error refused{"KMSInternalException",
                      "The request was not completed: the appliance could not write its audit "
                      "record. Retry the request."};
  auditor.fail = true;
  // The encryption ran, but its ciphertext never leaves.
  const auto r = f.Call(kAdmin, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("x")}});
  CHECK(r.status == 500);
  const auto body = json::parse(r.body).as_object();
  CHECK(body.at("__type").as_string() == refused.first);
  CHECK(body.at("message").as_string() == refused.second);
  CHECK_FALSE(body.contains("CiphertextBlob"));
  // From then on nothing is performed: this CreateKey makes no key.
  const auto created = f.Call(kAdmin, "CreateKey", {});
  CHECK(created.status == 500);
  CHECK(json::parse(created.body).at("message").as_string() == refused.second);
  auditor.fail = false;
  auditor.ready = true;
  CHECK(f.Ok(kAdmin, "ListKeys", {}).at("Keys").as_array().size() == 1);
}

TEST_CASE("authz door: grant and policy listings page, and refuse a marker they did not give",
          "[unit][authz]") {
  AuthzDoorFixture f;
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  std::set<std::string> made;
  for (int i = 0; i < 5; ++i) made.insert(f.Grant(key, kBobArn, {"Encrypt"}, kAliceArn).first);
  std::set<std::string> listed;
  std::string marker;
  int pages = 0;
  for (;;) {
    json::object body{{"KeyId", key}, {"Limit", 2}};
    if (!marker.empty()) body["Marker"] = marker;
    const auto page = f.Ok(kAdmin, "ListGrants", body);
    for (const auto& g : page.at("Grants").as_array()) {
      listed.insert(std::string(g.at("GrantId").as_string()));
    }
    ++pages;
    if (!page.at("Truncated").as_bool()) break;
    marker = std::string(page.at("NextMarker").as_string());
  }
  CHECK(listed == made);
  CHECK(pages == 3);
  const Error invalid{"InvalidMarkerException", "Invalid marker."};
  CHECK(f.Err(kAdmin, "ListGrants", {{"KeyId", key}, {"Marker", "not-a-marker"}}) == invalid);
  CHECK(f.Err(kAdmin, "ListGrants", {{"KeyId", key}, {"Marker", std::string(64, 'Z')}}) ==
        invalid);
  CHECK(f.Err(kAdmin, "ListKeyPolicies", {{"KeyId", key}, {"Marker", "anything"}}) == invalid);
  CHECK(f.Err(kAdmin, "ListRetirableGrants",
              {{"RetiringPrincipal", kAliceArn}, {"Marker", "not-a-marker"}}) == invalid);
  const auto retirable = f.Ok(kAdmin, "ListRetirableGrants", {{"RetiringPrincipal", kAliceArn}});
  CHECK(retirable.at("Grants").as_array().size() == 5);
  const auto policies = f.Ok(kAdmin, "ListKeyPolicies", {{"KeyId", key}});
  CHECK(policies.at("PolicyNames") == json::array{"default"});
  CHECK(policies.at("Truncated") == false);
}

}  // namespace
}  // namespace kms::api::aws
