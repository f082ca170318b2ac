// The appliance admin API (KmsAppliance.<Op>, api/aws/appliance_operations.h) end to end: through
// AwsDoor::Handle (SigV4 + framing + handler) into a real firmware::AccessKeyRegistry and
// KeyService over the fake HSM and a SQLite store, with the door verifying against the registry
// itself (RegistryAccessKeyStore); and once over loopback through AwsServer, as kmsd wires it.
// Every error a client can reach asserts the exact exception.
#include "api/aws/appliance_operations.h"

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "api/aws/aws_server.h"
#include "api/aws/key_service_operations.h"
#include "api/aws/registry_access_key_store.h"
#include "firmware/access_keys.h"
#include "firmware/authz/principals.h"
#include "firmware/vault_tokens.h"
#include "tests/api/door_authz_fixture.h"
#include "tests/api/http_client.h"
#include "tests/api/sign_request.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::api::aws {
namespace {

namespace json = boost::json;

struct Credentials {
  std::string id;
  std::string secret;
};

struct AdminFixture {
  firmware::testing::ServiceFixture service;
  testing::DoorAuthz authz{service};
  firmware::AccessKeyRegistry registry{service.Hsm(), *service.store, service.clock};
  RegistryAccessKeyStore keys{registry, "111122223333"};
  std::unique_ptr<AwsDoor> door;
  Credentials admin;
  Credentials user;

  AdminFixture() {
    OperationTable ops;
    RegisterKeyServiceOperations(ops, service.svc(), authz.access);
    OperationTable appliance;
    RegisterApplianceOperations(appliance, registry, service.svc(),
                                ApplianceInfo{"9.8.7", "dev", "us-east-1", "111122223333"});
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, authz.authorizer, std::move(ops),
                                     std::move(appliance));
    admin = Make("root", true);
    user = Make("alice", false);
  }

  Credentials Make(const std::string& name, bool administrator) {
    auto made = registry.Create(name, administrator);
    REQUIRE(made.has_value());
    return {made->access_key_id, ToString(made->secret.ExposeSecret())};
  }

  http::HttpResponse Raw(const std::string& target, const json::object& body,
                         const Credentials& who) {
    auto req = testing::KmsRequest("", json::serialize(body));
    for (auto& [name, value] : req.headers) {
      if (name == "X-Amz-Target") value = target;
    }
    testing::SigningParams p;
    p.access_key_id = who.id;
    p.secret = who.secret;
    testing::SignRequest(req, p);
    return door->Handle(req);
  }
  json::object Ok(const std::string& op, const json::object& body = {}) {
    return OkAs(admin, op, body);
  }
  json::object OkAs(const Credentials& who, const std::string& op, const json::object& body = {}) {
    const auto r = Raw("KmsAppliance." + op, body, who);
    INFO(op << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).as_object();
  }
  std::pair<std::string, std::string> ErrAs(const Credentials& who, const std::string& target,
                                            const json::object& body) {
    const auto r = Raw(target, body, who);
    INFO(target << " -> " << r.status << " " << r.body);
    CHECK(r.status == 400);
    const auto o = json::parse(r.body).as_object();
    return {std::string(o.at("__type").as_string()), std::string(o.at("message").as_string())};
  }
  std::pair<std::string, std::string> Err(const std::string& op, const json::object& body = {}) {
    return ErrAs(admin, "KmsAppliance." + op, body);
  }
};

TEST_CASE("appliance: CreateAccessKey answers a working credential once", "[unit]") {
  AdminFixture f;
  const auto out = f.Ok("CreateAccessKey", {{"UserName", "bob"}});
  const auto& k = out.at("AccessKey").as_object();
  const std::string id(k.at("AccessKeyId").as_string());
  CHECK(id.size() == 20);
  CHECK(id.starts_with("AKMS"));
  CHECK(k.at("SecretAccessKey").as_string().size() == 40);
  CHECK(k.at("UserName").as_string() == "bob");
  CHECK(k.at("Status").as_string() == "Active");
  CHECK(k.at("CreateDate").as_int64() == firmware::testing::kStartMs / 1000);
  CHECK(k.at("Administrator").as_bool() == false);
  // The new key signs KMS calls at once: bob is authenticated, and refused only for want of
  // rights (he has no identity policy).
  const Credentials bob{id, std::string(k.at("SecretAccessKey").as_string())};
  const auto r = f.Raw("TrentService.ListKeys", {}, bob);
  CHECK(r.status == 400);
  CHECK(json::parse(r.body).at("__type").as_string() == "AccessDeniedException");
  CHECK(json::parse(r.body).at("message").as_string().starts_with(
      "User: arn:aws:iam::111122223333:user/bob is not authorized to perform: kms:ListKeys"));
  // ...and is not an administrator.
  CHECK(f.ErrAs(bob, "KmsAppliance.ListAccessKeys", {}).first == "AccessDeniedException");

  const auto adm = f.Ok("CreateAccessKey", {{"UserName", "ops"}, {"Administrator", true}});
  CHECK(adm.at("AccessKey").at("Administrator").as_bool());
  const Credentials ops{std::string(adm.at("AccessKey").at("AccessKeyId").as_string()),
                        std::string(adm.at("AccessKey").at("SecretAccessKey").as_string())};
  CHECK(f.OkAs(ops, "GetApplianceStatus").at("Sealed").as_bool() == false);
}

TEST_CASE("appliance: CreateAccessKey validation", "[unit]") {
  AdminFixture f;
  CHECK(f.Err("CreateAccessKey", {}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value null at 'userName' failed to satisfy constraint: "
            "Member must not be null"));
  CHECK(f.Err("CreateAccessKey", {{"UserName", "has space"}}).first == "ValidationException");
  CHECK(f.Err("CreateAccessKey", {{"UserName", std::string(65, 'a')}}).first ==
        "ValidationException");
  CHECK(f.Err("CreateAccessKey", {{"UserName", 7}}).first == "SerializationException");
  CHECK(f.Err("CreateAccessKey", {{"UserName", "x"}, {"Administrator", "yes"}}).first ==
        "SerializationException");
}

TEST_CASE("appliance: ListAccessKeys pages by id and never shows secrets", "[unit]") {
  AdminFixture f;
  for (int i = 0; i < 3; ++i) f.Make("u" + std::to_string(i), false);  // 5 keys in all
  const auto all = f.Ok("ListAccessKeys");
  const auto& items = all.at("AccessKeyMetadata").as_array();
  REQUIRE(items.size() == 5);
  CHECK(all.at("Truncated").as_bool() == false);
  CHECK_FALSE(all.contains("NextMarker"));
  for (const auto& v : items) {
    const auto& o = v.as_object();
    CHECK_FALSE(o.contains("SecretAccessKey"));
    CHECK(o.at("Status").as_string() == "Active");
    CHECK(o.at("CreateDate").is_number());
    if (o.at("AccessKeyId").as_string() == f.admin.id) {
      CHECK(o.at("UserName").as_string() == "root");
      CHECK(o.at("Administrator").as_bool());
    }
  }
  std::vector<std::string> paged;
  json::object req{{"Limit", 2}};
  for (int guard = 0; guard < 10; ++guard) {
    const auto page = f.Ok("ListAccessKeys", req);
    for (const auto& v : page.at("AccessKeyMetadata").as_array()) {
      paged.emplace_back(v.at("AccessKeyId").as_string());
    }
    if (!page.at("Truncated").as_bool()) break;
    req["Marker"] = page.at("NextMarker");
  }
  REQUIRE(paged.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) CHECK(paged[i] == items[i].at("AccessKeyId").as_string());
  CHECK(
      f.Err("ListAccessKeys", {{"Limit", 0}}) ==
      std::pair<std::string, std::string>(
          "ValidationException",
          "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member "
          "must have value greater than or equal to 1"));
  CHECK(f.Err("ListAccessKeys", {{"Limit", 1001}}).first == "ValidationException");
  CHECK(f.Err("ListAccessKeys", {{"Limit", "2"}}).first == "SerializationException");
}

TEST_CASE("appliance: UpdateAccessKey disables and enables a key", "[unit]") {
  AdminFixture f;
  f.Ok("UpdateAccessKey", {{"AccessKeyId", f.user.id}, {"Status", "Inactive"}});
  const auto denied = f.Raw("TrentService.ListKeys", {}, f.user);
  CHECK(denied.status == 400);
  CHECK(json::parse(denied.body).at("__type").as_string() == "UnrecognizedClientException");
  bool listed_inactive = false;
  const auto listed = f.Ok("ListAccessKeys");
  for (const auto& v : listed.at("AccessKeyMetadata").as_array()) {
    if (v.at("AccessKeyId").as_string() == f.user.id) {
      listed_inactive = v.at("Status").as_string() == "Inactive";
    }
  }
  CHECK(listed_inactive);
  f.Ok("UpdateAccessKey", {{"AccessKeyId", f.user.id}, {"Status", "Active"}});
  // Authenticated again (refused only for want of rights: alice has no identity policy).
  CHECK(json::parse(f.Raw("TrentService.ListKeys", {}, f.user).body).at("__type").as_string() ==
        "AccessDeniedException");

  CHECK(f.Err("UpdateAccessKey", {{"AccessKeyId", f.user.id}, {"Status", "Disabled"}}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value 'Disabled' at 'status' failed to satisfy "
            "constraint: Member must satisfy enum value set: [Active, Inactive]"));
  CHECK(f.Err("UpdateAccessKey", {{"AccessKeyId", f.user.id}}).first == "ValidationException");
  CHECK(f.Err("UpdateAccessKey", {{"AccessKeyId", "AKMSAAAAAAAAAAAAAAAA"}, {"Status", "Active"}})
            .first == "NotFoundException");
}

TEST_CASE("appliance: DeleteAccessKey removes a key for good", "[unit]") {
  AdminFixture f;
  f.Ok("DeleteAccessKey", {{"AccessKeyId", f.user.id}});
  const auto gone = f.Raw("TrentService.ListKeys", {}, f.user);
  CHECK(json::parse(gone.body).at("__type").as_string() == "UnrecognizedClientException");
  CHECK(f.Ok("ListAccessKeys").at("AccessKeyMetadata").as_array().size() == 1);
  CHECK(f.Err("DeleteAccessKey", {{"AccessKeyId", f.user.id}}).first == "NotFoundException");
  CHECK(f.Err("DeleteAccessKey", {}).first == "ValidationException");
}

TEST_CASE("appliance: GetApplianceStatus", "[unit]") {
  AdminFixture f;
  f.service.Create();
  f.service.Create();
  const auto s = f.Ok("GetApplianceStatus");
  CHECK(s.at("Version").as_string() == "9.8.7");
  CHECK(s.at("Sealed").as_bool() == false);
  CHECK(s.at("Mode").as_string() == "dev");
  CHECK(s.at("Region").as_string() == "us-east-1");
  CHECK(s.at("AccountId").as_string() == "111122223333");
  CHECK(s.at("KeyCount").as_int64() == 2);
}

TEST_CASE("appliance: a non-administrator key gets AccessDeniedException for every admin op",
          "[unit]") {
  AdminFixture f;
  for (const char* op : {"CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey",
                         "GetApplianceStatus", "NoSuchOperation"}) {
    INFO(op);
    const auto e = f.ErrAs(f.user, std::string("KmsAppliance.") + op,
                           {{"UserName", "mallory"},
                            {"Administrator", true},
                            {"AccessKeyId", f.admin.id},
                            {"Status", "Inactive"}});
    CHECK(e.first == "AccessDeniedException");
    CHECK(e.second.find("arn:aws:iam::111122223333:user/alice") != std::string::npos);
  }
  // Nothing happened: still two keys, the admin still active.
  const auto list = f.Ok("ListAccessKeys").at("AccessKeyMetadata").as_array();
  CHECK(list.size() == 2);
  // An administrator asking for an unknown admin op gets UnknownOperationException.
  CHECK(f.Err("NoSuchOperation").first == "UnknownOperationException");
  // The KMS table is not reachable through the admin prefix, nor the admin ops through
  // TrentService.
  CHECK(f.Err("Encrypt").first == "UnknownOperationException");
  CHECK(f.ErrAs(f.admin, "TrentService.ListAccessKeys", {}).first == "UnknownOperationException");
  // Unsigned or badly signed admin calls fail SigV4 first.
  CHECK(f.ErrAs(Credentials{f.admin.id, "wrong"}, "KmsAppliance.ListAccessKeys", {}).first ==
        "InvalidSignatureException");
}

// The admin API with the principal registry (users): CreateUser ... DeleteUser, and CreateAccessKey
// checking its user.
struct UsersFixture : AdminFixture {
  firmware::authz::PrincipalRegistry users{*service.store, service.clock, "111122223333"};
  // `root_is_admin`: whether the user behind the fixture's administrator access key is itself an
  // administrator user (the key's own flag is what the admin API checks).
  explicit UsersFixture(bool root_is_admin = true) {
    REQUIRE(users.CreateUser("root", root_is_admin, "").has_value());
    OperationTable ops;
    RegisterKeyServiceOperations(ops, service.svc(), authz.access);
    OperationTable appliance;
    RegisterApplianceOperations(appliance, registry, service.svc(), ApplianceInfo{}, nullptr,
                                &users);
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, authz.authorizer, std::move(ops),
                                     std::move(appliance));
  }
};

TEST_CASE("appliance: users: create, get, list, policy, delete and their exact errors", "[unit]") {
  UsersFixture f;
  const std::string policy =
      R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt",)"
      R"("Resource":"*"}]})";
  const auto made = f.Ok("CreateUser", {{"UserName", "bob"}, {"Policy", policy}});
  CHECK(made.at("User").at("Arn").as_string() == "arn:aws:iam::111122223333:user/bob");
  CHECK(made.at("User").at("Administrator").as_bool() == false);
  CHECK(made.at("User").at("HasPolicy").as_bool());
  CHECK(f.Ok("GetUser", {{"UserName", "bob"}}).at("User").at("Policy").as_string() == policy);
  CHECK(f.Err("CreateUser", {{"UserName", "bob"}}) ==
        std::pair<std::string, std::string>("AlreadyExistsException",
                                            "User with name bob already exists."));
  CHECK(f.Err("GetUser", {{"UserName", "carol"}}) ==
        std::pair<std::string, std::string>("NotFoundException",
                                            "The user with name carol cannot be found."));
  CHECK(f.Err("CreateUser", {{"UserName", "has space"}}) ==
        std::pair<std::string, std::string>(
            "ValidationException", "user name must use only A-Z a-z 0-9 + = , . @ _ -"));

  // Malformed identity policies, on CreateUser and PutUserPolicy: nothing is stored.
  for (const char* bad : {"not json", R"({"Version":"2012-10-17"})",
                          R"({"Version":"2012-10-17","Statement":[{"Effect":"Maybe",)"
                          R"("Action":"kms:*","Resource":"*"}]})"}) {
    INFO(bad);
    const auto created = f.Err("CreateUser", {{"UserName", "dave"}, {"Policy", bad}});
    CHECK(created.first == "MalformedPolicyDocumentException");
    CHECK_FALSE(created.second.empty());
    const auto put = f.Err("PutUserPolicy", {{"UserName", "bob"}, {"Policy", bad}});
    CHECK(put.first == "MalformedPolicyDocumentException");
    CHECK(put.second == created.second);
  }
  CHECK(f.Err("GetUser", {{"UserName", "dave"}}).first == "NotFoundException");
  CHECK(f.Ok("GetUser", {{"UserName", "bob"}}).at("User").at("Policy").as_string() == policy);
  CHECK(f.Err("PutUserPolicy", {{"UserName", "carol"}, {"Policy", policy}}).first ==
        "NotFoundException");

  // Access keys belong to existing users; administrator keys to administrator users.
  CHECK(f.Err("CreateAccessKey", {{"UserName", "carol"}}) ==
        std::pair<std::string, std::string>("NotFoundException",
                                            "The user with name carol cannot be found."));
  CHECK(f.Err("CreateAccessKey", {{"UserName", "bob"}, {"Administrator", true}}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Administrator access keys belong to administrator "
            "users; bob is not one"));
  const std::string key_id(
      f.Ok("CreateAccessKey", {{"UserName", "bob"}}).at("AccessKey").at("AccessKeyId").as_string());

  // A user that still owns an access key is not deleted; then it is.
  CHECK(f.Err("DeleteUser", {{"UserName", "bob"}}) ==
        std::pair<std::string, std::string>(
            "DeleteConflictException", "Cannot delete user bob: it still owns access key " +
                                           key_id + "; delete its access keys first."));
  f.Ok("DeleteAccessKey", {{"AccessKeyId", key_id}});
  f.Ok("DeleteUser", {{"UserName", "bob"}});
  CHECK(f.Err("GetUser", {{"UserName", "bob"}}).first == "NotFoundException");
  CHECK(f.Err("DeleteUser", {{"UserName", "bob"}}).first == "NotFoundException");

  // ListUsers pages; its Limit is bounded.
  for (const char* name : {"u1", "u2", "u3"}) f.Ok("CreateUser", {{"UserName", name}});
  const auto page = f.Ok("ListUsers", {{"Limit", 2}});
  CHECK(page.at("Users").as_array().size() == 2);
  CHECK(page.at("Truncated").as_bool());
  const auto rest = f.Ok("ListUsers", {{"Limit", 2}, {"Marker", page.at("NextMarker")}});
  CHECK(rest.at("Users").as_array().size() == 2);  // root + u1..u3 = 4
  CHECK_FALSE(rest.at("Truncated").as_bool());
  CHECK(f.Err("ListUsers", {{"Limit", 0}}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
            "Member must have value between 1 and 1000"));
}

TEST_CASE("appliance: the last administrator cannot be deleted", "[unit]") {
  UsersFixture f(/*root_is_admin=*/false);
  f.Ok("CreateUser", {{"UserName", "solo"}, {"Administrator", true}});
  const std::pair<std::string, std::string> last{
      "KMSInvalidStateException", "User solo is the last administrator and cannot be deleted."};
  CHECK(f.Err("DeleteUser", {{"UserName", "solo"}}) == last);
  f.Ok("CreateUser", {{"UserName", "second"}, {"Administrator", true}});
  f.Ok("DeleteUser", {{"UserName", "solo"}});
  CHECK(f.Err("DeleteUser", {{"UserName", "second"}}) ==
        std::pair<std::string, std::string>(
            last.first, "User second is the last administrator and cannot be deleted."));
  // A non-administrator goes whenever it owns no key.
  f.Ok("CreateUser", {{"UserName", "temp"}});
  f.Ok("DeleteUser", {{"UserName", "temp"}});
}

// The admin API with the Vault door's token registry (RegisterApplianceOperations' last argument).
struct VaultTokenFixture : AdminFixture {
  firmware::VaultTokenRegistry tokens{service.Hsm(), *service.store, service.clock};
  VaultTokenFixture() {
    OperationTable ops;
    RegisterKeyServiceOperations(ops, service.svc(), authz.access);
    OperationTable appliance;
    RegisterApplianceOperations(appliance, registry, service.svc(), ApplianceInfo{}, &tokens);
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, authz.authorizer, std::move(ops),
                                     std::move(appliance));
  }
};

TEST_CASE("appliance: CreateVaultToken answers a working token once", "[unit]") {
  VaultTokenFixture f;
  const auto out = f.Ok("CreateVaultToken", {{"DisplayName", "transit seal"},
                                             {"KeyPatterns", json::array{"autounseal", "app-*"}},
                                             {"Operations", json::array{"encrypt", "decrypt"}},
                                             {"TtlSeconds", 86400},
                                             {"ExplicitMaxTtlSeconds", 172800}});
  const auto& t = out.at("VaultToken").as_object();
  const std::string token(t.at("Token").as_string());
  CHECK(token.size() == 36);
  CHECK(token.starts_with("hvs."));
  const std::string accessor(t.at("Accessor").as_string());
  CHECK(accessor.starts_with("acc."));
  CHECK(t.at("DisplayName").as_string() == "transit seal");
  // Patterns without a mount are the default mount's, and answered saying so.
  CHECK(t.at("KeyPatterns").as_array() == json::array{"transit/autounseal", "transit/app-*"});
  CHECK(t.at("Operations").as_array() == json::array{"encrypt", "decrypt"});
  CHECK(t.at("Policies").as_array() == json::array{"default"});
  CHECK(t.at("Administrator").as_bool() == false);
  CHECK(t.at("Renewable").as_bool() == true);
  CHECK(t.at("CreateDate").as_int64() == firmware::testing::kStartMs / 1000);
  CHECK(t.at("TtlSeconds").as_int64() == 86400);
  CHECK(t.at("ExplicitMaxTtlSeconds").as_int64() == 172800);
  CHECK(t.at("ExpireDate").as_int64() == firmware::testing::kStartMs / 1000 + 86400);
  // The token works at the registry the Vault door asks.
  auto info = f.tokens.Authorize(token, "encrypt", "transit", "app-billing");
  REQUIRE(info.has_value());
  CHECK(info->accessor == accessor);

  // Defaults: never expires (no ExpireDate), so not renewable; explicit flags are honoured.
  const auto root = f.Ok("CreateVaultToken", {{"DisplayName", "root"},
                                              {"KeyPatterns", json::array{"*"}},
                                              {"Operations", json::array{"*"}},
                                              {"Administrator", true},
                                              {"Policies", json::array{"root"}}});
  const auto& r = root.at("VaultToken").as_object();
  CHECK(r.at("Administrator").as_bool());
  CHECK(r.at("Renewable").as_bool() == false);
  CHECK(r.at("TtlSeconds").as_int64() == 0);
  CHECK_FALSE(r.contains("ExpireDate"));
  CHECK(r.at("Policies").as_array() == json::array{"root"});
  const auto fixed = f.Ok("CreateVaultToken", {{"DisplayName", "fixed"},
                                               {"KeyPatterns", json::array{"k"}},
                                               {"Operations", json::array{"read"}},
                                               {"TtlSeconds", 60},
                                               {"Renewable", false}});
  CHECK(fixed.at("VaultToken").at("Renewable").as_bool() == false);
}

TEST_CASE("appliance: CreateVaultToken validation", "[unit]") {
  VaultTokenFixture f;
  const json::object ok{{"DisplayName", "app"},
                        {"KeyPatterns", json::array{"*"}},
                        {"Operations", json::array{"encrypt"}}};
  auto with = [&](std::string_view name, json::value v) {
    json::object o = ok;
    o[name] = std::move(v);
    return o;
  };
  auto without = [&](std::string_view name) {
    json::object o = ok;
    o.erase(name);
    return o;
  };
  CHECK(f.Err("CreateVaultToken", without("DisplayName")) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value null at 'displayName' failed to satisfy "
            "constraint: Member must not be null"));
  CHECK(f.Err("CreateVaultToken", without("KeyPatterns")).first == "ValidationException");
  CHECK(f.Err("CreateVaultToken", without("Operations")).first == "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("KeyPatterns", json::array{})).first ==
        "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("KeyPatterns", json::array{"a*b"})).first ==
        "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("Operations", json::array{"delete"})) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "unknown token operation \"delete\" (expected one of encrypt, decrypt, rewrap, "
            "datakey, hmac, sign, verify, read, manage, random, hash, or *)"));
  CHECK(f.Err("CreateVaultToken", with("TtlSeconds", -1)).first == "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("ExplicitMaxTtlSeconds", 60)).first ==
        "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("DisplayName", json::string(std::string(129, 'a')))).first ==
        "ValidationException");
  CHECK(f.Err("CreateVaultToken", with("DisplayName", 7)).first == "SerializationException");
  CHECK(f.Err("CreateVaultToken", with("KeyPatterns", "*")).first == "SerializationException");
  CHECK(f.Err("CreateVaultToken", with("Renewable", "yes")).first == "SerializationException");
  CHECK(f.Err("CreateVaultToken", with("TtlSeconds", "1h")).first == "SerializationException");
  // Nothing was created.
  CHECK(f.Ok("ListVaultTokens").at("VaultTokens").as_array().empty());
}

TEST_CASE("appliance: ListVaultTokens pages by accessor and never shows tokens", "[unit]") {
  VaultTokenFixture f;
  std::vector<std::string> accessors;
  std::vector<std::string> secrets;
  for (int i = 0; i < 5; ++i) {
    const auto out = f.Ok("CreateVaultToken", {{"DisplayName", "t" + std::to_string(i)},
                                               {"KeyPatterns", json::array{"*"}},
                                               {"Operations", json::array{"*"}}});
    accessors.emplace_back(out.at("VaultToken").at("Accessor").as_string());
    secrets.emplace_back(out.at("VaultToken").at("Token").as_string());
  }
  std::sort(accessors.begin(), accessors.end());
  const auto all = f.Ok("ListVaultTokens");
  const auto& items = all.at("VaultTokens").as_array();
  REQUIRE(items.size() == 5);
  CHECK(all.at("Truncated").as_bool() == false);
  CHECK_FALSE(all.contains("NextMarker"));
  const std::string text = json::serialize(all);
  for (const auto& s : secrets) CHECK(text.find(s.substr(4)) == std::string::npos);
  for (std::size_t i = 0; i < items.size(); ++i) {
    CHECK_FALSE(items[i].as_object().contains("Token"));
    CHECK(items[i].at("Accessor").as_string() == accessors[i]);
  }

  std::vector<std::string> paged;
  json::object req{{"Limit", 2}};
  for (int pages = 0; pages < 10; ++pages) {
    const auto page = f.Ok("ListVaultTokens", req);
    for (const auto& v : page.at("VaultTokens").as_array()) {
      paged.emplace_back(v.at("Accessor").as_string());
    }
    if (!page.at("Truncated").as_bool()) break;
    req["Marker"] = page.at("NextMarker");
  }
  CHECK(paged == accessors);

  CHECK(f.Err("ListVaultTokens", {{"Limit", 0}}).first == "ValidationException");
  CHECK(f.Err("ListVaultTokens", {{"Limit", 1001}}).first == "ValidationException");
  CHECK(f.Err("ListVaultTokens", {{"Limit", "ten"}}).first == "SerializationException");
}

TEST_CASE("appliance: RevokeVaultToken revokes by accessor", "[unit]") {
  VaultTokenFixture f;
  const auto out = f.Ok("CreateVaultToken", {{"DisplayName", "app"},
                                             {"KeyPatterns", json::array{"*"}},
                                             {"Operations", json::array{"*"}}});
  const std::string token(out.at("VaultToken").at("Token").as_string());
  const std::string accessor(out.at("VaultToken").at("Accessor").as_string());
  REQUIRE(f.tokens.Lookup(token).has_value());
  CHECK(f.Ok("RevokeVaultToken", {{"Accessor", accessor}}).empty());
  CHECK(f.tokens.Lookup(token).error().code() == StatusCode::kPermissionDenied);
  CHECK(f.Ok("ListVaultTokens").at("VaultTokens").as_array().empty());
  CHECK(f.Err("RevokeVaultToken", {{"Accessor", accessor}}) ==
        std::pair<std::string, std::string>("NotFoundException", "unknown token accessor"));
  CHECK(f.Err("RevokeVaultToken", {{"Accessor", "acc.nope"}}).first == "NotFoundException");
  CHECK(f.Err("RevokeVaultToken", {}).first == "ValidationException");
  CHECK(f.Err("RevokeVaultToken", {{"Accessor", 1}}).first == "SerializationException");
}

TEST_CASE("appliance: Vault token ops are for administrators, and absent without a registry",
          "[unit]") {
  VaultTokenFixture f;
  for (const char* op : {"CreateVaultToken", "ListVaultTokens", "RevokeVaultToken"}) {
    INFO(op);
    const auto e = f.ErrAs(f.user, std::string("KmsAppliance.") + op,
                           {{"DisplayName", "mallory"},
                            {"KeyPatterns", json::array{"*"}},
                            {"Operations", json::array{"*"}},
                            {"Administrator", true},
                            {"Accessor", "acc.x"}});
    CHECK(e.first == "AccessDeniedException");
  }
  CHECK(f.Ok("ListVaultTokens").at("VaultTokens").as_array().empty());

  AdminFixture plain;  // RegisterApplianceOperations without a token registry
  for (const char* op : {"CreateVaultToken", "ListVaultTokens", "RevokeVaultToken"}) {
    INFO(op);
    CHECK(plain.Err(op, {{"Accessor", "acc.x"}}).first == "UnknownOperationException");
  }
}

TEST_CASE("appliance: AwsServer serves the admin API over loopback with a registry",
          "[unit][concurrency]") {
  firmware::testing::ServiceFixture service;
  testing::DoorAuthz authz(service);
  firmware::AccessKeyRegistry registry(service.Hsm(), *service.store, service.clock);
  RegistryAccessKeyStore keys(registry, "111122223333");
  auto admin = registry.Create("root", true);
  auto user = registry.Create("alice", false);
  REQUIRE(admin.has_value());
  REQUIRE(user.has_value());
  AwsServerConfig cfg;
  cfg.appliance.version = "1.2.3";
  auto made = AwsServer::Create(cfg, keys, authz.authorizer, &registry);
  REQUIRE(made.has_value());
  auto server = std::move(*made);
  REQUIRE(server->Start().ok());

  auto call = [&](const firmware::CreatedAccessKey& who, const std::string& op) {
    auto req = testing::KmsRequest("", "{}");
    const std::string host = "127.0.0.1:" + std::to_string(server->port());
    for (auto& [name, value] : req.headers) {
      if (name == "X-Amz-Target") value = "KmsAppliance." + op;
      if (name == "Host") value = host;
    }
    testing::SigningParams p;
    p.access_key_id = who.access_key_id;
    p.secret = ToString(who.secret.ExposeSecret());
    testing::SignRequest(req, p);
    std::string wire = "POST / HTTP/1.1\r\n";
    for (const auto& [name, value] : req.headers) wire += name + ": " + value + "\r\n";
    wire += "\r\n" + req.body;
    testing::RawClient client(server->port());
    REQUIRE(client.Send(wire));
    auto response = client.Read();
    REQUIRE(response.has_value());
    return *response;
  };
  const auto ok = call(*admin, "GetApplianceStatus");
  CHECK(ok.status == 200);
  CHECK(json::parse(ok.body).at("Version").as_string() == "1.2.3");
  const auto denied = call(*user, "GetApplianceStatus");
  CHECK(denied.status == 400);
  CHECK(json::parse(denied.body).at("__type").as_string() == "AccessDeniedException");
  server->Stop();
}

}  // namespace
}  // namespace kms::api::aws
