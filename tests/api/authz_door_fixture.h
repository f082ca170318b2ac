// The door every authorization test drives: AwsDoor::Handle (SigV4, framing, KeyAuthorizer, the
// operation) over a real KeyService on the fake HSM and a SQLite store, with a real
// PrincipalRegistry and AccessControl; two callers (`admin`, an administrator, and `alice`, a user
// with no identity policy), the exact AccessDeniedException texts, policy builders, and an auditor
// that keeps what the door records.
//
// Thread-safety: a fixture belongs to one test.
#ifndef KMS_TESTS_API_AUTHZ_DOOR_FIXTURE_H_
#define KMS_TESTS_API_AUTHZ_DOOR_FIXTURE_H_

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

namespace kms::api::aws::authz_test {

namespace json = boost::json;
namespace authz = firmware::authz;

constexpr std::string_view kAccount = "111122223333";
inline const std::string kAliceArn = "arn:aws:iam::111122223333:user/alice";
inline const std::string kAdminArn = "arn:aws:iam::111122223333:user/admin";
inline const std::string kBobArn = "arn:aws:iam::111122223333:user/bob";
inline const std::string kRootArn = "arn:aws:iam::111122223333:root";

struct Credentials {
  std::string id;
  std::string secret;
};
inline const Credentials kAdmin{"AKIAADMIN00000000001", "admin/secret/K7MDENG+bPxRfiCYEXAMPLEKEY"};
inline const Credentials kAlice{"AKIAALICE00000000001", "alice/secret/K7MDENG+bPxRfiCYEXAMPLEKEY"};

inline std::string KeyArn(std::string_view id) {
  return "arn:aws:kms:us-east-1:111122223333:key/" + std::string(id);
}
inline std::string B64(std::string_view s) { return Base64Encode(AsBytes(s)); }

// The three AccessDeniedException messages alice can get (authorization.cc Denied).
inline std::string NoKeyPolicy(std::string_view action, std::string_view key_id) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: " + KeyArn(key_id) + " because no resource-based policy allows the " +
         std::string(action) + " action";
}
inline std::string ExplicitKeyDeny(std::string_view action, std::string_view key_id) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: " + KeyArn(key_id) + " with an explicit deny in a resource-based policy";
}
inline std::string NoIdentityPolicy(std::string_view action) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: * because no identity-based policy allows the " + std::string(action) +
         " action";
}
inline std::string ExplicitIdentityDeny(std::string_view action) {
  return "User: " + kAliceArn + " is not authorized to perform: " + std::string(action) +
         " on resource: * with an explicit deny in an identity-based policy";
}

using Error = std::pair<std::string, std::string>;
inline Error AccessDenied(std::string message) { return {"AccessDeniedException", std::move(message)}; }

// One statement about alice; `actions` is a string or an array.
inline json::object AliceStatement(std::string_view effect, json::value actions,
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
inline std::string KeyPolicy(std::vector<json::object> statements) {
  json::array all{json::object{{"Sid", "Enable IAM User Permissions"},
                               {"Effect", "Allow"},
                               {"Principal", {{"AWS", kRootArn}}},
                               {"Action", "kms:*"},
                               {"Resource", "*"}}};
  for (auto& s : statements) all.push_back(std::move(s));
  return json::serialize(json::object{{"Version", "2012-10-17"}, {"Statement", std::move(all)}});
}
inline std::string IdentityPolicy(std::vector<json::object> statements) {
  json::array all;
  for (auto& s : statements) all.push_back(std::move(s));
  return json::serialize(json::object{{"Version", "2012-10-17"}, {"Statement", std::move(all)}});
}

inline authz::AccessControlConfig LongCache() {
  authz::AccessControlConfig c;
  // Long enough that only this door's own writes refresh its cache: a peer's grant is visible here
  // only through its token, which is what the token checks rely on.
  c.cache_ttl_ms = 3'600'000;
  return c;
}

// The key service as the appliance configures it: a destroyed key takes its policy and grants.
inline firmware::KeyServiceConfig ApplianceServiceConfig() {
  firmware::KeyServiceConfig c;
  c.on_destroy = &authz::AccessControl::DeleteKeyRecords;
  return c;
}

struct AuthzDoorFixture {
  firmware::testing::ServiceFixture service{ApplianceServiceConfig()};
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
    RegisterKeyServiceOperations(ops, service.svc(), access);
    operations = ops;
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, authorizer, std::move(ops));
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
    if (spec.starts_with("RSA")) body["KeyUsage"] = "ENCRYPT_DECRYPT";
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
    door = std::make_unique<AwsDoor>(config, keys, authorizer, operations);
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
  bool fail = false;        // every write fails
  bool fail_intent = false;  // only intent records ("started") fail
  bool fail_final = false;   // only the records of answers fail
  bool ready = true;
  bool Ready() const override { return ready; }
  Status Record(const http::AuditedRequest& r) override {
    entries.push_back({std::string(r.operation), std::string(r.principal),
                       std::string(r.credential_id), std::string(r.key_arn),
                       std::string(r.outcome), std::string(r.error_message),
                       std::string(r.grant_id), std::string(r.decision), r.status,
                       r.encryption_context ? *r.encryption_context
                                            : std::map<std::string, std::string>{}});
    const bool intent = r.outcome == http::kAuditOutcomeStarted;
    const bool failed = fail || (intent && fail_intent) || (!intent && fail_final);
    if (failed) ready = false;
    return failed ? UnavailableError("audit log: No space left on device") : Status::Ok();
  }
};

}  // namespace kms::api::aws::authz_test

#endif  // KMS_TESTS_API_AUTHZ_DOOR_FIXTURE_H_
