// Authorization of every operation of the AWS door (issue 7, "what must hold"), end to end through
// AwsDoor::Handle (SigV4, framing, KeyAuthorizer, the operation) over a real KeyService on the fake
// HSM and a SQLite store, with a real PrincipalRegistry and AccessControl.
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

#include "api/aws/authorization.h"
#include "api/aws/door.h"
#include "api/aws/key_service_operations.h"
#include "api/http/request_audit.h"
#include "base/encoding.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "tests/api/sign_request.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::api::aws {
namespace {

namespace json = boost::json;
namespace authz = firmware::authz;

constexpr std::string_view kAccount = "111122223333";
const std::string kAliceArn = "arn:aws:iam::111122223333:user/alice";
const std::string kAdminArn = "arn:aws:iam::111122223333:user/admin";
const std::string kBobArn = "arn:aws:iam::111122223333:user/bob";
const std::string kRootArn = "arn:aws:iam::111122223333:root";

struct Credentials {
  std::string id;
  std::string secret;
};
const Credentials kAdmin{"AKIAADMIN00000000001", "admin/secret/K7MDENG+bPxRfiCYEXAMPLEKEY"};
const Credentials kAlice{"AKIAALICE00000000001", "alice/secret/K7MDENG+bPxRfiCYEXAMPLEKEY"};

std::string KeyArn(std::string_view id) {
  return "arn:aws:kms:us-east-1:111122223333:key/" + std::string(id);
}
std::string B64(std::string_view s) { return Base64Encode(AsBytes(s)); }

// The three AccessDeniedException messages alice can get (authorization.cc Denied).
std::string NoKeyPolicy(std::string_view action, std::string_view key_id) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: " + KeyArn(key_id) + " because no resource-based policy allows the " +
         std::string(action) + " action";
}
std::string ExplicitKeyDeny(std::string_view action, std::string_view key_id) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: " + KeyArn(key_id) + " with an explicit deny in a resource-based policy";
}
std::string NoIdentityPolicy(std::string_view action) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: * because no identity-based policy allows the " + std::string(action) +
         " action";
}
std::string ExplicitIdentityDeny(std::string_view action) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: * with an explicit deny in an identity-based policy";
}

using Error = std::pair<std::string, std::string>;
Error AccessDenied(std::string message) { return {"AccessDeniedException", std::move(message)}; }

// One statement about alice; `actions` is a string or an array.
json::object AliceStatement(std::string_view effect, json::value actions,
                            json::object condition = {}) {
  json::object s{{"Sid", std::string(effect) + "Alice"},
                 {"Effect", effect},
                 {"Principal", {{"AWS", kAliceArn}}},
                 {"Action", std::move(actions)},
                 {"Resource", "*"}};
  if (!condition.empty()) s["Condition"] = std::move(condition);
  return s;
}
// A key policy: the account root's full access (what keeps the key manageable) plus `statements`.
std::string KeyPolicy(std::vector<json::object> statements) {
  json::array all{json::object{{"Sid", "Enable IAM User Permissions"},
                               {"Effect", "Allow"},
                               {"Principal", {{"AWS", kRootArn}}},
                               {"Action", "kms:*"},
                               {"Resource", "*"}}};
  for (auto& s : statements) all.push_back(std::move(s));
  return json::serialize(json::object{{"Version", "2012-10-17"}, {"Statement", std::move(all)}});
}
std::string IdentityPolicy(std::vector<json::object> statements) {
  json::array all;
  for (auto& s : statements) all.push_back(std::move(s));
  return json::serialize(json::object{{"Version", "2012-10-17"}, {"Statement", std::move(all)}});
}

authz::AccessControlConfig LongCache() {
  authz::AccessControlConfig c;
  // Long enough that only this door's own writes refresh its cache: a peer's grant is visible here
  // only through its token, which is what the token checks rely on.
  c.cache_ttl_ms = 3'600'000;
  return c;
}

struct AuthzDoorFixture {
  firmware::testing::ServiceFixture service;
  authz::PrincipalRegistry principals{*service.store, service.clock, std::string(kAccount)};
  authz::AccessControl access{service.Hsm(), *service.store, principals, service.clock,
                              LongCache()};
  // A second appliance over the same key database (a cluster peer): its writes bypass `access`.
  authz::AccessControl peer{service.Hsm(), *service.store, principals, service.clock, LongCache()};
  KeyAuthorizer authorizer{service.svc(), access};
  InMemoryAccessKeyStore keys;
  OperationTable operations;
  std::unique_ptr<AwsDoor> door;
  int serial = 0;

  AuthzDoorFixture() {
    REQUIRE(principals.CreateUser("admin", true, "").has_value());
    REQUIRE(principals.CreateUser("alice", false, "").has_value());
    REQUIRE(principals.CreateUser("bob", false, "").has_value());
    keys.Add(kAdmin.id, SecretBytes::CopyFrom(AsBytes(kAdmin.secret)), kAdminArn, true);
    keys.Add(kAlice.id, SecretBytes::CopyFrom(AsBytes(kAlice.secret)), kAliceArn, false);
    OperationTable ops;
    RegisterKeyServiceOperations(ops, service.svc(), authorizer);
    operations = ops;
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, std::move(ops));
  }

  http::HttpResponse Call(const Credentials& who, const std::string& op, const json::object& body) {
    auto req = testing::KmsRequest(op, json::serialize(body));
    testing::SigningParams p;
    p.access_key_id = who.id;
    p.secret = who.secret;
    testing::SignRequest(req, p);
    return door->Handle(req);
  }
  json::object Ok(const Credentials& who, const std::string& op, const json::object& body) {
    const auto r = Call(who, op, body);
    INFO(who.id << " " << op << " " << json::serialize(body) << " -> " << r.status << " "
                << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).as_object();
  }
  Error Err(const Credentials& who, const std::string& op, const json::object& body) {
    const auto r = Call(who, op, body);
    INFO(who.id << " " << op << " " << json::serialize(body) << " -> " << r.status << " "
                << r.body);
    CHECK(r.status == 400);
    const auto v = json::parse(r.body);
    if (!v.is_object() || !v.as_object().contains("__type")) return {"?", r.body};
    const auto& o = v.as_object();
    return {std::string(o.at("__type").as_string()),
            o.contains("message") ? std::string(o.at("message").as_string()) : ""};
  }

  // A key made by the administrator, with `policy` when given.
  std::string NewKey(std::string_view spec, const std::string& policy = "") {
    json::object body{{"KeySpec", spec}};
    if (spec.starts_with("ECC")) body["KeyUsage"] = "SIGN_VERIFY";
    if (spec.starts_with("HMAC")) body["KeyUsage"] = "GENERATE_VERIFY_MAC";
    if (!policy.empty()) body["Policy"] = policy;
    return std::string(Ok(kAdmin, "CreateKey", body).at("KeyMetadata").at("KeyId").as_string());
  }
  // A grant the administrator makes on this door; returns {grant id, token}.
  std::pair<std::string, std::string> Grant(const std::string& key, const std::string& grantee,
                                            std::vector<std::string> grant_ops,
                                            const std::string& retiring = "") {
    json::array ops;
    for (auto& o : grant_ops) ops.emplace_back(o);
    json::object body{{"KeyId", key}, {"GranteePrincipal", grantee}, {"Operations", ops}};
    if (!retiring.empty()) body["RetiringPrincipal"] = retiring;
    const auto g = Ok(kAdmin, "CreateGrant", body);
    return {std::string(g.at("GrantId").as_string()), std::string(g.at("GrantToken").as_string())};
  }
  // The same grant made by the peer appliance: only its token tells this door about it.
  std::string PeerGrantToken(const std::string& key, std::vector<std::string> grant_ops) {
    authz::GrantSpec spec;
    spec.key = authz::KeyRef{key, KeyArn(key)};
    spec.grantee_principal = kAliceArn;
    spec.operations = std::move(grant_ops);
    authz::Caller admin{kAdminArn, "admin", true};
    auto made = peer.CreateGrant(admin, spec, authz::AccessDecision{});
    REQUIRE(made.has_value());
    return made->grant_token;
  }
  std::string Unique(std::string_view prefix) { return std::string(prefix) + std::to_string(++serial); }
  // The same door, now sending every answer to `auditor`.
  void Audit(http::RequestAuditor& auditor) {
    AwsDoorConfig config;
    config.observers.audit = &auditor;
    door = std::make_unique<AwsDoor>(config, keys, operations);
  }
};

// What the door hands its RequestAuditor, copied; `fail` makes Record fail (a full disk).
struct RecordingAuditor final : http::RequestAuditor {
  struct Entry {
    std::string operation, principal, credential_id, key_arn, outcome, error_message, grant_id,
        decision;
    unsigned status;
    std::map<std::string, std::string> context;
  };
  std::vector<Entry> entries;
  bool fail = false;
  bool ready = true;
  bool Ready() const override { return ready; }
  Status Record(const http::AuditedRequest& r) override {
    entries.push_back({std::string(r.operation), std::string(r.principal),
                       std::string(r.credential_id), std::string(r.key_arn),
                       std::string(r.outcome), std::string(r.error_message),
                       std::string(r.grant_id), std::string(r.decision), r.status,
                       r.encryption_context ? *r.encryption_context
                                            : std::map<std::string, std::string>{}});
    if (fail) ready = false;
    return fail ? UnavailableError("audit log: No space left on device") : Status::Ok();
  }
};

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

void CheckKeyAdministration(const OpCase& c) {
  AuthzDoorFixture f;
  const std::string& action = c.actions.front();
  const json::object none;
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
  REQUIRE(auditor.entries.size() == 5);
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
  CHECK(e[4].outcome == "AccessDeniedException");
  CHECK(e[4].decision == "deny:implicit");
  CHECK(e[4].error_message == NoKeyPolicy("kms:Encrypt", key));
  CHECK(e[4].status == 400);
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
