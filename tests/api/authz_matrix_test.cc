// The adversarial matrix of the AWS door and the appliance admin API, generated from data.
//
// What is generated: for every operation the door serves (kSpecs below: its members, each with its
// JSON shape and model bound, and a builder of a valid request the administrator's call succeeds
// with), every member gets the cases of kCases (wrong JSON type, null, empty, oversize, malformed,
// duplicate key in the JSON text, missing), and every operation the whole-request cases (an unknown
// member, the valid request itself). Each request is sent twice: by `alice`, who has no right on
// anything, and by `admin`, who has every right.
//
// What is asserted, for every row:
//  (a) the exact answer the client sees: status, __type and message, normalised (key ids, grant
//      ids, access key ids and generated names become placeholders) and compared with the
//      committed tests/api/authz_matrix.golden, one line per row. A new operation, member or case,
//      or any change of an answer, changes the file: run the suite with KMS_UPDATE_GOLDEN=1 to
//      rewrite it, and read the diff before committing it — each line is a promise to clients;
//  (b) the store's contents (every table, tests/support/store_digest.h) are byte for byte what
//      they were, unless the row is an allowed success; alice never succeeds and never changes
//      anything; no answer is a 5xx;
//  (c) the request's audit record names the caller, a decision ("allow:*", "deny:*",
//      "refused:*") and, where the request names an existing key and the case did not spoil the
//      member naming it, that key; an allowed change also has its intent record before it;
//  and no answer or audit field holds the run's canary plaintext.
// The table is checked against the door: an operation the door serves without a row in kSpecs
// fails, and so does a member of AWS's own model (botocore's service-2.json, when installed) that
// kSpecs does not declare.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "api/aws/appliance_operations.h"
#include "firmware/access_keys.h"
#include "firmware/vault_tokens.h"
#include "tests/api/authz_door_fixture.h"
#include "tests/support/store_digest.h"

#ifndef KMS_SOURCE_DIR
#define KMS_SOURCE_DIR "."
#endif

namespace kms::api::aws {
namespace {

using namespace authz_test;

constexpr std::string_view kCanary = "matrix-canary-plaintext";

enum class Shape { kString, kBlob, kInteger, kBoolean, kStringMap, kStringList, kObjectList, kObject };

struct Member {
  std::string name;
  Shape shape;
  std::size_t max = 0;     // the model's bound (characters, bytes, items); 0 = none declared
  bool names_key = false;  // the request's key (or alias, or grant) comes from this member
};

// A request the administrator's call succeeds with, and the key it acts on ("" for none).
struct Valid {
  json::object body;
  std::string key_arn;
};

struct MatrixFixture;
struct OpSpec {
  std::string target;  // "Encrypt" (TrentService) or "KmsAppliance.CreateUser"
  std::vector<Member> members;
  std::function<Valid(MatrixFixture&)> valid;
};

// The authorization door of the other suites, with the admin API and an auditor.
struct MatrixFixture : AuthzDoorFixture {
  firmware::AccessKeyRegistry registry{service.Hsm(), *service.store, service.clock};
  firmware::VaultTokenRegistry tokens{service.Hsm(), *service.store, service.clock};
  RecordingAuditor auditor;
  OperationTable appliance_ops;
  // Keys made once and reused by the operations that do not change them.
  std::map<std::string, std::string> shared;

  MatrixFixture() {
    RegisterApplianceOperations(appliance_ops, registry, service.svc(),
                                ApplianceInfo{"1.0.0", "dev", "us-east-1", "111122223333"}, &tokens,
                                &principals);
    AwsDoorConfig config;
    config.observers.audit = &auditor;
    door = std::make_unique<AwsDoor>(config, keys, authorizer, operations, appliance_ops);
  }
  std::string Shared(const std::string& spec) {
    auto it = shared.find(spec);
    if (it != shared.end()) return it->second;
    return shared[spec] = NewKey(spec);
  }
  std::string SharedBlob() {
    auto it = shared.find("blob");
    if (it != shared.end()) return it->second;
    return shared["blob"] = std::string(
               Ok(kAdmin, "Encrypt",
                  {{"KeyId", Shared("SYMMETRIC_DEFAULT")}, {"Plaintext", B64(kCanary)}})
                   .at("CiphertextBlob")
                   .as_string());
  }
  std::string FreshAlias(const std::string& key) {
    const std::string alias = Unique("alias/m-");
    Ok(kAdmin, "CreateAlias", {{"AliasName", alias}, {"TargetKeyId", key}});
    return alias;
  }
  // The whole target a spec names.
  static std::string Target(const std::string& target) {
    return target.find('.') == std::string::npos ? "TrentService." + target : target;
  }
};

std::string Arn(const std::string& key) { return KeyArn(key); }

json::value Message() { return json::value(B64(kCanary)); }

// ---- the table ---------------------------------------------------------------------------------

Member Str(std::string n, std::size_t max = 0, bool names_key = false) {
  return {std::move(n), Shape::kString, max, names_key};
}
Member KeyMember(std::string n = "KeyId") { return Str(std::move(n), 2048, true); }
Member Blob(std::string n, std::size_t max, bool names_key = false) {
  return {std::move(n), Shape::kBlob, max, names_key};
}
Member Int(std::string n) { return {std::move(n), Shape::kInteger, 0, false}; }
Member Bool(std::string n) { return {std::move(n), Shape::kBoolean, 0, false}; }
Member Map(std::string n) { return {std::move(n), Shape::kStringMap, 0, false}; }
Member List(std::string n, std::size_t max = 0) { return {std::move(n), Shape::kStringList, max, false}; }
Member Objects(std::string n) { return {std::move(n), Shape::kObjectList, 0, false}; }
Member Object(std::string n) { return {std::move(n), Shape::kObject, 0, false}; }
Member Tokens() { return List("GrantTokens", 10); }

// The model's operations the appliance refuses whole (api/aws/op_not_implemented.cc).
const std::set<std::string>& UnsupportedOperations() {
  static const std::set<std::string> ops = {
      "DeriveSharedSecret",     "GetKeyLastUsage",          "ConnectCustomKeyStore",
      "CreateCustomKeyStore",   "DeleteCustomKeyStore",     "DescribeCustomKeyStores",
      "DisconnectCustomKeyStore", "UpdateCustomKeyStore",   "ReplicateKey",
      "UpdatePrimaryRegion",    "GetParametersForImport",   "ImportKeyMaterial",
      "DeleteImportedKeyMaterial"};
  return ops;
}

std::vector<OpSpec> Specs() {
  using F = MatrixFixture;
  using O = json::object;
  const std::string sym = "SYMMETRIC_DEFAULT", ecc = "ECC_NIST_P256", hmac = "HMAC_256",
                    rsa = "RSA_2048";
  std::vector<OpSpec> s;
  auto on_key = [](std::string spec, std::function<O(F&, const std::string&)> body, bool fresh) {
    return [spec, body, fresh](F& f) {
      const std::string key = fresh ? f.NewKey(spec) : f.Shared(spec);
      return Valid{body(f, key), Arn(key)};
    };
  };
  auto key_only = [&](std::string op, std::vector<Member> extra, bool fresh,
                      std::function<O(F&, const std::string&)> body = nullptr) {
    std::vector<Member> members{KeyMember()};
    members.insert(members.end(), extra.begin(), extra.end());
    if (!body) body = [](F&, const std::string& k) { return O{{"KeyId", k}}; };
    s.push_back({std::move(op), members, on_key(sym, body, fresh)});
  };

  // Account-level operations.
  s.push_back({"CreateKey",
               {Str("Policy", 131072), Str("Description", 8192), Str("KeyUsage"), Str("KeySpec"),
                Str("CustomerMasterKeySpec"), Str("Origin"), Str("CustomKeyStoreId", 64),
                Bool("BypassPolicyLockoutSafetyCheck"), Objects("Tags"), Bool("MultiRegion"),
                Str("XksKeyId", 128)},
               [](F&) { return Valid{O{{"Description", "matrix"}, {"KeySpec", "SYMMETRIC_DEFAULT"}}, ""}; }});
  s.push_back({"ListKeys", {Int("Limit"), Str("Marker", 1024)},
               [](F&) { return Valid{O{{"Limit", 10}}, ""}; }});
  s.push_back({"ListAliases", {Str("KeyId", 2048), Int("Limit"), Str("Marker", 1024)},
               [](F& f) { return Valid{O{{"KeyId", f.Shared("SYMMETRIC_DEFAULT")}, {"Limit", 10}}, ""}; }});
  s.push_back({"GenerateRandom", {Int("NumberOfBytes"), Str("CustomKeyStoreId", 64), Object("Recipient")},
               [](F&) { return Valid{O{{"NumberOfBytes", 16}}, ""}; }});
  s.push_back({"ListRetirableGrants", {Int("Limit"), Str("Marker", 1024), Str("RetiringPrincipal", 256)},
               [](F&) { return Valid{O{{"RetiringPrincipal", kBobArn}}, ""}; }});

  // Cryptography.
  s.push_back({"DescribeKey", {KeyMember(), Tokens()},
               on_key(sym, [](F&, const std::string& k) { return O{{"KeyId", k}}; }, false)});
  s.push_back({"Encrypt",
               {KeyMember(), Blob("Plaintext", 4096), Map("EncryptionContext"), Tokens(),
                Str("EncryptionAlgorithm"), Bool("DryRun")},
               on_key(sym,
                      [](F&, const std::string& k) {
                        return O{{"KeyId", k},
                                 {"Plaintext", Message()},
                                 {"EncryptionContext", {{"app", "matrix"}}}};
                      },
                      false)});
  s.push_back({"Decrypt",
               {Blob("CiphertextBlob", 6144, true), Map("EncryptionContext"), Tokens(),
                Str("KeyId", 2048, true), Str("EncryptionAlgorithm"), Object("Recipient"),
                Bool("DryRun"), List("DryRunModifiers")},
               [](F& f) {
                 return Valid{O{{"CiphertextBlob", f.SharedBlob()}},
                              Arn(f.Shared("SYMMETRIC_DEFAULT"))};
               }});
  s.push_back({"ReEncrypt",
               {Blob("CiphertextBlob", 6144, true), Map("SourceEncryptionContext"),
                Str("SourceKeyId", 2048, true), KeyMember("DestinationKeyId"),
                Map("DestinationEncryptionContext"), Str("SourceEncryptionAlgorithm"),
                Str("DestinationEncryptionAlgorithm"), Tokens(), Bool("DryRun"),
                List("DryRunModifiers")},
               [](F& f) {
                 return Valid{O{{"CiphertextBlob", f.SharedBlob()},
                                {"DestinationKeyId", f.Shared("SYMMETRIC_DEFAULT")}},
                              Arn(f.Shared("SYMMETRIC_DEFAULT"))};
               }});
  for (const std::string op : {"GenerateDataKey", "GenerateDataKeyWithoutPlaintext"}) {
    s.push_back({op,
                 {KeyMember(), Map("EncryptionContext"), Int("NumberOfBytes"), Str("KeySpec"),
                  Tokens(), Object("Recipient"), Bool("DryRun")},
                 on_key(sym,
                        [](F&, const std::string& k) {
                          return O{{"KeyId", k}, {"KeySpec", "AES_256"}};
                        },
                        false)});
  }
  for (const std::string op : {"GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"}) {
    s.push_back({op,
                 {Map("EncryptionContext"), KeyMember(), Str("KeyPairSpec"), Tokens(),
                  Object("Recipient"), Bool("DryRun")},
                 on_key(sym,
                        [](F&, const std::string& k) {
                          return O{{"KeyId", k}, {"KeyPairSpec", "ECC_NIST_P256"}};
                        },
                        false)});
  }
  s.push_back({"Sign",
               {KeyMember(), Blob("Message", 4096), Str("MessageType"), Tokens(),
                Str("SigningAlgorithm"), Bool("DryRun")},
               on_key(ecc,
                      [](F&, const std::string& k) {
                        return O{{"KeyId", k}, {"Message", Message()},
                                 {"SigningAlgorithm", "ECDSA_SHA_256"}};
                      },
                      false)});
  s.push_back({"Verify",
               {KeyMember(), Blob("Message", 4096), Str("MessageType"), Blob("Signature", 6144),
                Str("SigningAlgorithm"), Tokens(), Bool("DryRun")},
               [](F& f) {
                 const std::string k = f.Shared("ECC_NIST_P256");
                 O body{{"KeyId", k}, {"Message", Message()}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
                 if (!f.shared.contains("signature")) {
                   f.shared["signature"] = std::string(f.Ok(kAdmin, "Sign", body).at("Signature").as_string());
                 }
                 body["Signature"] = f.shared["signature"];
                 return Valid{body, Arn(k)};
               }});
  s.push_back({"GetPublicKey", {KeyMember(), Tokens()},
               on_key(ecc, [](F&, const std::string& k) { return O{{"KeyId", k}}; }, false)});
  s.push_back({"GenerateMac",
               {Blob("Message", 4096), KeyMember(), Str("MacAlgorithm"), Tokens(), Bool("DryRun")},
               on_key(hmac,
                      [](F&, const std::string& k) {
                        return O{{"KeyId", k}, {"Message", Message()}, {"MacAlgorithm", "HMAC_SHA_256"}};
                      },
                      false)});
  s.push_back({"VerifyMac",
               {Blob("Message", 4096), KeyMember(), Str("MacAlgorithm"), Blob("Mac", 6144), Tokens(),
                Bool("DryRun")},
               [](F& f) {
                 const std::string k = f.Shared("HMAC_256");
                 O body{{"KeyId", k}, {"Message", Message()}, {"MacAlgorithm", "HMAC_SHA_256"}};
                 if (!f.shared.contains("mac")) {
                   f.shared["mac"] = std::string(f.Ok(kAdmin, "GenerateMac", body).at("Mac").as_string());
                 }
                 body["Mac"] = f.shared["mac"];
                 return Valid{body, Arn(k)};
               }});

  // Key administration: a fresh key when the operation changes it.
  key_only("UpdateKeyDescription", {Str("Description", 8192)}, true,
           [](F&, const std::string& k) { return O{{"KeyId", k}, {"Description", "renamed"}}; });
  key_only("EnableKey", {}, true);
  key_only("DisableKey", {}, true);
  key_only("ScheduleKeyDeletion", {Int("PendingWindowInDays")}, true,
           [](F&, const std::string& k) { return O{{"KeyId", k}, {"PendingWindowInDays", 7}}; });
  s.push_back({"CancelKeyDeletion", {KeyMember()}, [](F& f) {
                 const std::string k = f.NewKey("SYMMETRIC_DEFAULT");
                 f.Ok(kAdmin, "ScheduleKeyDeletion", {{"KeyId", k}, {"PendingWindowInDays", 7}});
                 return Valid{O{{"KeyId", k}}, Arn(k)};
               }});
  s.push_back({"CreateAlias", {Str("AliasName", 256, true), KeyMember("TargetKeyId")}, [](F& f) {
                 const std::string k = f.Shared("SYMMETRIC_DEFAULT");
                 return Valid{O{{"AliasName", f.Unique("alias/m-")}, {"TargetKeyId", k}}, Arn(k)};
               }});
  s.push_back({"DeleteAlias", {Str("AliasName", 256, true)}, [](F& f) {
                 const std::string k = f.Shared("SYMMETRIC_DEFAULT");
                 return Valid{O{{"AliasName", f.FreshAlias(k)}}, Arn(k)};
               }});
  s.push_back({"UpdateAlias", {Str("AliasName", 256, true), KeyMember("TargetKeyId")}, [](F& f) {
                 const std::string k = f.Shared("SYMMETRIC_DEFAULT");
                 return Valid{O{{"AliasName", f.FreshAlias(k)}, {"TargetKeyId", k}}, Arn(k)};
               }});
  key_only("TagResource", {Objects("Tags")}, true, [](F&, const std::string& k) {
    return O{{"KeyId", k}, {"Tags", json::array{O{{"TagKey", "team"}, {"TagValue", "kms"}}}}};
  });
  key_only("UntagResource", {List("TagKeys")}, true, [](F&, const std::string& k) {
    return O{{"KeyId", k}, {"TagKeys", json::array{"team"}}};
  });
  key_only("ListResourceTags", {Int("Limit"), Str("Marker", 1024)}, false);
  key_only("EnableKeyRotation", {Int("RotationPeriodInDays")}, true);
  key_only("DisableKeyRotation", {}, true);
  key_only("GetKeyRotationStatus", {}, false);
  key_only("RotateKeyOnDemand", {}, true);
  key_only("ListKeyRotations", {Str("IncludeKeyMaterial"), Int("Limit"), Str("Marker", 1024)}, false);
  key_only("GetKeyPolicy", {Str("PolicyName", 128)}, false,
           [](F&, const std::string& k) { return O{{"KeyId", k}, {"PolicyName", "default"}}; });
  key_only("PutKeyPolicy", {Str("PolicyName", 128), Str("Policy", 131072),
                            Bool("BypassPolicyLockoutSafetyCheck")},
           true, [](F&, const std::string& k) {
             return O{{"KeyId", k}, {"PolicyName", "default"}, {"Policy", KeyPolicy({})}};
           });
  key_only("ListKeyPolicies", {Int("Limit"), Str("Marker", 1024)}, false);
  key_only("CreateGrant",
           {Str("GranteePrincipal", 256), Str("RetiringPrincipal", 256), List("Operations"),
            Object("Constraints"), Tokens(), Str("Name", 256), Bool("DryRun")},
           false, [](F&, const std::string& k) {
             return O{{"KeyId", k}, {"GranteePrincipal", kBobArn}, {"Operations", json::array{"Encrypt"}}};
           });
  key_only("ListGrants", {Int("Limit"), Str("Marker", 1024), Str("GrantId", 128),
                          Str("GranteePrincipal", 256)},
           false);
  s.push_back({"RevokeGrant", {KeyMember(), Str("GrantId", 128), Bool("DryRun")}, [](F& f) {
                 const std::string k = f.Shared("SYMMETRIC_DEFAULT");
                 return Valid{O{{"KeyId", k}, {"GrantId", f.Grant(k, kBobArn, {"Encrypt"}).first}}, Arn(k)};
               }});
  s.push_back({"RetireGrant",
               {Str("GrantToken", 8192, true), Str("KeyId", 2048, true), Str("GrantId", 128, true),
                Bool("DryRun")},
               [](F& f) {
                 const std::string k = f.Shared("SYMMETRIC_DEFAULT");
                 return Valid{O{{"GrantToken", f.Grant(k, kBobArn, {"Encrypt"}).second}}, Arn(k)};
               }});

  // The model's operations this appliance does not offer: every case is refused the same way.
  for (const std::string& op : UnsupportedOperations()) {
    s.push_back({op, {KeyMember()}, [](F& f) {
                   return Valid{O{{"KeyId", f.Shared("SYMMETRIC_DEFAULT")}}, ""};
                 }});
  }

  // The appliance admin API.
  const std::string ka = "KmsAppliance.";
  s.push_back({ka + "CreateAccessKey", {Str("UserName", 64), Bool("Administrator")},
               [](F&) { return Valid{O{{"UserName", "alice"}}, ""}; }});
  s.push_back({ka + "ListAccessKeys", {Int("Limit"), Str("Marker", 1024)},
               [](F&) { return Valid{O{{"Limit", 10}}, ""}; }});
  s.push_back({ka + "UpdateAccessKey", {Str("AccessKeyId", 128), Str("Status", 16)}, [](F& f) {
                 auto made = f.registry.Create("bob", false);
                 REQUIRE(made.has_value());
                 return Valid{O{{"AccessKeyId", made->access_key_id}, {"Status", "Inactive"}}, ""};
               }});
  s.push_back({ka + "DeleteAccessKey", {Str("AccessKeyId", 128)}, [](F& f) {
                 auto made = f.registry.Create("bob", false);
                 REQUIRE(made.has_value());
                 return Valid{O{{"AccessKeyId", made->access_key_id}}, ""};
               }});
  s.push_back({ka + "GetApplianceStatus", {}, [](F&) { return Valid{O{}, ""}; }});
  s.push_back({ka + "CreateVaultToken",
               {Str("DisplayName", 128), List("KeyPatterns"), List("Operations"),
                Bool("Administrator"), Int("TtlSeconds"), Int("ExplicitMaxTtlSeconds"),
                Bool("Renewable"), List("Policies")},
               [](F&) {
                 return Valid{O{{"DisplayName", "matrix"},
                                {"KeyPatterns", json::array{"transit/app-*"}},
                                {"Operations", json::array{"encrypt"}},
                                {"TtlSeconds", 3600}},
                              ""};
               }});
  s.push_back({ka + "ListVaultTokens", {Int("Limit"), Str("Marker", 1024)},
               [](F&) { return Valid{O{{"Limit", 10}}, ""}; }});
  s.push_back({ka + "RevokeVaultToken", {Str("Accessor", 128)}, [](F& f) {
                 firmware::VaultTokenSpec spec;
                 spec.display_name = "revoked";
                 spec.key_patterns = {"transit/*"};
                 spec.operations = {"encrypt"};
                 auto made = f.tokens.Create(spec);
                 REQUIRE(made.has_value());
                 return Valid{O{{"Accessor", made->accessor}}, ""};
               }});
  s.push_back({ka + "CreateUser", {Str("UserName", 64), Bool("Administrator"), Str("Policy", 131072)},
               [](F& f) { return Valid{O{{"UserName", f.Unique("u")}}, ""}; }});
  s.push_back({ka + "GetUser", {Str("UserName", 64)},
               [](F&) { return Valid{O{{"UserName", "bob"}}, ""}; }});
  s.push_back({ka + "ListUsers", {Str("Marker", 64), Int("Limit")},
               [](F&) { return Valid{O{{"Limit", 10}}, ""}; }});
  s.push_back({ka + "PutUserPolicy", {Str("UserName", 64), Str("Policy", 131072)}, [](F&) {
                 return Valid{O{{"UserName", "bob"},
                                {"Policy", IdentityPolicy({O{{"Effect", "Allow"},
                                                             {"Action", "kms:ListKeys"},
                                                             {"Resource", "*"}}})}},
                              ""};
               }});
  s.push_back({ka + "DeleteUser", {Str("UserName", 64)}, [](F& f) {
                 const std::string name = f.Unique("u");
                 REQUIRE(f.principals.CreateUser(name, false, "").has_value());
                 return Valid{O{{"UserName", name}}, ""};
               }});
  return s;
}

// ---- the cases -----------------------------------------------------------------------------------

// The request text of one case, or nullopt when the case does not apply to the member.
using CaseFn = std::function<std::optional<std::string>(const json::object& valid, const Member&)>;

// `valid` with `member` set to `value` (the JSON text of the value), the member written last.
std::string With(const json::object& valid, const std::string& member, const std::string& value) {
  json::object rest = valid;
  rest.erase(member);
  std::string text = json::serialize(rest);
  text.pop_back();  // '}'
  if (text.size() > 1) text += ",";
  return text + json::serialize(json::value(member)) + ":" + value + "}";
}

std::string WrongType(Shape shape) {
  switch (shape) {
    case Shape::kString:
    case Shape::kBlob: return "7";
    case Shape::kInteger: return "\"7\"";
    case Shape::kBoolean: return "\"true\"";
    case Shape::kStringMap:
    case Shape::kObject:
    case Shape::kStringList:
    case Shape::kObjectList: return "\"x\"";
  }
  return "7";
}

std::optional<std::string> Empty(Shape shape) {
  switch (shape) {
    case Shape::kString:
    case Shape::kBlob: return "\"\"";
    case Shape::kInteger: return "0";
    case Shape::kBoolean: return std::nullopt;
    case Shape::kStringMap:
    case Shape::kObject: return "{}";
    case Shape::kStringList:
    case Shape::kObjectList: return "[]";
  }
  return std::nullopt;
}

std::optional<std::string> Oversize(const Member& m) {
  switch (m.shape) {
    case Shape::kString:
      return json::serialize(json::value(std::string(m.max ? m.max + 1 : 70000, 'z')));
    case Shape::kBlob: {
      const std::string bytes(m.max ? m.max + 1 : 70000, 'b');
      return json::serialize(json::value(B64(bytes)));
    }
    case Shape::kInteger: return "2147483648";
    case Shape::kBoolean: return std::nullopt;
    case Shape::kStringMap: return "{\"k\":" + json::serialize(json::value(std::string(9000, 'v'))) + "}";
    case Shape::kStringList: {
      json::array a;
      for (std::size_t i = 0; i < (m.max ? m.max + 1 : 1001); ++i) a.emplace_back("x");
      return json::serialize(a);
    }
    case Shape::kObjectList: {
      json::array a;
      for (int i = 0; i < 1001; ++i) a.emplace_back(json::object{{"TagKey", "k"}, {"TagValue", "v"}});
      return json::serialize(a);
    }
    case Shape::kObject: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> Malformed(const Member& m) {
  switch (m.shape) {
    case Shape::kString:
      if (m.name == "GrantToken") return "\"not-a-grant-token\"";
      if (m.names_key) return "\"arn:aws:kms:us-east-1:111122223333:key/not-a-key-id\"";
      return "\"bad\\u0000value\\u0007\"";
    case Shape::kBlob: return "\"@@not base64@@\"";
    case Shape::kInteger: return "1.5";
    case Shape::kBoolean: return "1";
    case Shape::kStringMap: return "{\"k\":5}";
    case Shape::kStringList:
      if (m.name == "GrantTokens") return "[\"not-a-grant-token\"]";
      return "[5]";
    case Shape::kObjectList: return "[5]";
    case Shape::kObject: return "{\"Unknown\":{\"k\":5}}";
  }
  return std::nullopt;
}

struct Case {
  std::string name;
  CaseFn text;
};

const std::vector<Case>& MemberCases() {
  static const std::vector<Case> cases = {
      {"wrong-type", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         return With(v, m.name, WrongType(m.shape));
       }},
      {"null", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         return With(v, m.name, "null");
       }},
      {"empty", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         auto e = Empty(m.shape);
         if (!e) return std::nullopt;
         return With(v, m.name, *e);
       }},
      {"oversize", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         auto e = Oversize(m);
         if (!e) return std::nullopt;
         return With(v, m.name, *e);
       }},
      {"malformed", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         auto e = Malformed(m);
         if (!e) return std::nullopt;
         return With(v, m.name, *e);
       }},
      // The member twice: the valid value (or a harmless one), then a hostile one. Whatever the
      // parser keeps, the decision and the operation must read the same.
      {"duplicate", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         const json::value* first = v.if_contains(m.name);
         const std::string head =
             With(v, m.name, first ? json::serialize(*first) : WrongType(m.shape));
         auto second = Malformed(m);
         return head.substr(0, head.size() - 1) + "," + json::serialize(json::value(m.name)) +
                ":" + (second ? *second : "null") + "}";
       }},
      {"missing", [](const json::object& v, const Member& m) -> std::optional<std::string> {
         if (!v.contains(m.name)) return std::nullopt;
         json::object rest = v;
         rest.erase(m.name);
         return json::serialize(rest);
       }},
  };
  return cases;
}

// ---- running a row -------------------------------------------------------------------------------

// Key ids, grant ids and tokens, access key ids, accessors and generated names as placeholders, so
// the golden file does not depend on the random values of one run.
std::string Normalize(std::string text) {
  static const std::regex kUuid("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  static const std::regex kHex64("[0-9a-f]{64}");
  static const std::regex kAkid("AKMS[A-Z0-9]{16}");
  static const std::regex kAccessor("acc\\.[A-Za-z0-9]{24}");
  static const std::regex kAlias("alias/m-[0-9]+");
  static const std::regex kUser("\\bu[0-9]+\\b");
  text = std::regex_replace(text, kUuid, "<uuid>");
  text = std::regex_replace(text, kHex64, "<hex64>");
  text = std::regex_replace(text, kAkid, "<access-key-id>");
  text = std::regex_replace(text, kAccessor, "<accessor>");
  text = std::regex_replace(text, kAlias, "alias/m-<n>");
  text = std::regex_replace(text, kUser, "u<n>");
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  // The oversize values some messages echo: a run of one character becomes "<N x c>".
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t j = i;
    while (j < text.size() && text[j] == text[i]) ++j;
    if (j - i >= 32) {
      out += "<" + std::to_string(j - i) + " x " + text[i] + ">";
    } else {
      out.append(text, i, j - i);
    }
    i = j;
  }
  return out;
}

const std::set<std::string>& KnownExceptions() {
  static const std::set<std::string> known = {
      "AccessDeniedException",         "AlreadyExistsException",
      "DeleteConflictException",       "DependencyTimeoutException",
      "DisabledException",             "DryRunOperationException",
      "IncorrectKeyException",         "InvalidArnException",
      "InvalidCiphertextException",    "InvalidGrantIdException",
      "InvalidGrantTokenException",    "InvalidKeyUsageException",
      "InvalidMarkerException",        "KMSInvalidMacException",
      "KMSInvalidSignatureException",  "KMSInvalidStateException",
      "LimitExceededException",        "MalformedPolicyDocumentException",
      "NotFoundException",             "SerializationException",
      "TagException",                  "UnknownOperationException",
      "UnsupportedOperationException", "ValidationException",
  };
  return known;
}

struct Row {
  std::string label;   // "<target> <member> <case> <caller>"
  std::string answer;  // normalised
};

struct Runner {
  MatrixFixture f;
  std::vector<Row> rows;
  std::size_t requests = 0;

  // Sends `text` to `target` as `who`; checks the invariants; records the row.
  void Send(const OpSpec& spec, const std::string& member, const std::string& case_name,
            const Credentials& who, const std::string& text, const Valid& valid,
            bool key_member_spoiled) {
    const std::string caller = who.id == kAdmin.id ? "admin" : "alice";
    const std::string label = spec.target + " " + member + " " + case_name + " " + caller;
    INFO(label << "\n  request: " << text.substr(0, 400));
    const std::string path = (f.service.dir.path() / "kms.db").string();
    const auto before = kms::testing::StoreContents(path);
    f.auditor.entries.clear();
    auto req = testing::KmsRequest(MatrixFixture::Target(spec.target), text);
    testing::SigningParams p;
    p.access_key_id = who.id;
    p.secret = who.secret;
    testing::SignRequest(req, p);
    const http::HttpResponse r = f.door->Handle(req);
    ++requests;
    INFO("  answer: " << r.status << " " << r.body.substr(0, 400));

    // (a) the answer, normalised.
    std::string answer = std::to_string(r.status);
    json::value parsed;
    try {
      parsed = json::parse(r.body);
    } catch (...) {
      FAIL_CHECK("the answer is not JSON");
      rows.push_back({label, answer + " <not JSON>"});
      return;
    }
    REQUIRE(parsed.is_object());
    const json::object& o = parsed.as_object();
    if (r.status == 200) {
      std::vector<std::string> names;
      for (const auto& [k, v] : o) names.emplace_back(k);
      std::sort(names.begin(), names.end());
      answer += " ok {";
      for (std::size_t i = 0; i < names.size(); ++i) answer += (i ? "," : "") + names[i];
      answer += "}";
    } else {
      REQUIRE(o.contains("__type"));
      const std::string type(o.at("__type").as_string());
      CHECK(KnownExceptions().contains(type));
      answer += " " + type + " " +
                (o.contains("message") ? std::string(o.at("message").as_string()) : "");
    }
    rows.push_back({label, Normalize(answer)});

    // (b) no 5xx; alice never succeeds; nothing changes without an allowed success.
    CHECK(r.status < 500);
    if (caller == "alice") CHECK(r.status != 200);
    const auto after = kms::testing::StoreContents(path);
    if (r.status != 200) {
      const auto changed = kms::testing::ChangedTables(before, after);
      INFO("changed tables: " << changed.size());
      CHECK(changed.empty());
    }
    // No secret of the run in any answer but a success's own.
    if (r.status != 200) {
      CHECK(r.body.find(kCanary) == std::string::npos);
      CHECK(r.body.find(B64(kCanary)) == std::string::npos);
    }

    // (c) the audit record.
    REQUIRE_FALSE(f.auditor.entries.empty());
    const auto& last = f.auditor.entries.back();
    CHECK(last.principal == (caller == "admin" ? kAdminArn : kAliceArn));
    const bool vocabulary = last.decision.starts_with("allow:") ||
                            last.decision.starts_with("deny:") ||
                            last.decision.starts_with("refused:");
    CHECK(vocabulary);
    if (!valid.key_arn.empty() && !key_member_spoiled && last.decision != "refused:unsupported") {
      CHECK(last.key_arn == valid.key_arn);
    }
    if (f.auditor.entries.size() == 2) {
      // An intent: only once allowed, before a change the operation may still refuse.
      CHECK(f.auditor.entries[0].outcome == "started");
      CHECK(f.auditor.entries[0].decision == last.decision);
      CHECK(f.auditor.entries[0].decision.starts_with("allow:"));
    } else {
      CHECK(f.auditor.entries.size() == 1);
    }
    for (const auto& e : f.auditor.entries) {
      for (const std::string* field : {&e.operation, &e.principal, &e.key_arn, &e.outcome,
                                       &e.error_message, &e.grant_id, &e.decision}) {
        CHECK(field->find(kCanary) == std::string::npos);
        CHECK(field->find(B64(kCanary)) == std::string::npos);
      }
    }
  }

  void Run(const OpSpec& spec) {
    for (const Credentials& who : {kAlice, kAdmin}) {
      {
        const Valid v = spec.valid(f);
        Send(spec, "-", "valid", who, json::serialize(v.body), v, false);
      }
      {
        const Valid v = spec.valid(f);
        Send(spec, "-", "unknown-member", who, With(v.body, "ZzUnknownMember", "\"x\""), v, false);
      }
      for (const Member& m : spec.members) {
        for (const Case& c : MemberCases()) {
          const Valid v = spec.valid(f);
          const auto text = c.text(v.body, m);
          if (!text) continue;
          Send(spec, m.name, c.name, who, *text, v, m.names_key);
        }
      }
    }
  }
};

std::string GoldenPath() { return std::string(KMS_SOURCE_DIR) + "/tests/api/authz_matrix.golden"; }

TEST_CASE("authz matrix: every operation and member, hostile values, two callers", "[unit][authz]") {
  Runner runner;
  const auto specs = Specs();
  std::set<std::string> declared;
  for (const auto& spec : specs) {
    declared.insert(MatrixFixture::Target(spec.target));
    runner.Run(spec);
  }
  // Every operation the door serves has rows.
  for (const auto& name : runner.f.operations.Names()) {
    INFO("TrentService." << name << " has no rows in the matrix");
    CHECK(declared.contains("TrentService." + name));
  }
  for (const auto& name : runner.f.appliance_ops.Names()) {
    INFO("KmsAppliance." << name << " has no rows in the matrix");
    CHECK(declared.contains("KmsAppliance." + name));
  }

  std::ostringstream text;
  for (const auto& row : runner.rows) text << row.label << " -> " << row.answer << "\n";
  const std::string path = GoldenPath();
  if (const char* update = std::getenv("KMS_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path) << text.str();
    WARN("rewrote " << path << ": review the diff before committing it");
  }
  std::ifstream in(path);
  REQUIRE(in.good());
  std::map<std::string, std::string> golden;
  std::vector<std::string> order;
  for (std::string line; std::getline(in, line);) {
    const auto arrow = line.find(" -> ");
    REQUIRE(arrow != std::string::npos);
    golden[line.substr(0, arrow)] = line.substr(arrow + 4);
  }
  std::size_t mismatches = 0;
  for (const auto& row : runner.rows) {
    auto it = golden.find(row.label);
    if (it == golden.end()) {
      ++mismatches;
      UNSCOPED_INFO("no golden line: " << row.label << " -> " << row.answer);
    } else if (it->second != row.answer) {
      ++mismatches;
      UNSCOPED_INFO(row.label << "\n    golden: " << it->second << "\n    now:    " << row.answer);
    }
  }
  CHECK(mismatches == 0);
  CHECK(golden.size() == runner.rows.size());
  WARN("authz matrix: " << specs.size() << " operations, " << runner.rows.size() << " rows, "
                        << runner.requests << " requests");
}

// The members of AWS's own model (Debian's botocore) that the table does not declare.
TEST_CASE("authz matrix: the table declares every member of AWS's model", "[unit][authz]") {
  const char* model_path =
      "/usr/lib/python3/dist-packages/botocore/data/kms/2014-11-01/service-2.json";
  std::ifstream in(model_path);
  if (!in.good()) {
    WARN("botocore's KMS model is not installed (" << model_path << "): cross-check skipped");
    return;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const json::value model = json::parse(buf.str());
  const auto& operations = model.at("operations").as_object();
  const auto& shapes = model.at("shapes").as_object();
  for (const auto& spec : Specs()) {
    if (spec.target.find('.') != std::string::npos) continue;  // the admin API is not AWS's
    const json::value* op = operations.if_contains(spec.target);
    if (op == nullptr || !op->as_object().contains("input")) continue;
    if (UnsupportedOperations().contains(spec.target)) continue;  // refused whole: no rows needed
    const std::string input(op->at("input").at("shape").as_string());
    std::set<std::string> declared;
    for (const auto& m : spec.members) declared.insert(m.name);
    for (const auto& [name, member] : shapes.at(input).at("members").as_object()) {
      INFO(spec.target << "." << std::string(name));
      CHECK(declared.contains(std::string(name)));
    }
  }
}

}  // namespace
}  // namespace kms::api::aws
