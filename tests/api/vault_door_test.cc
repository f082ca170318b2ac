// The Vault door end to end through VaultDoor::Handle (routing, tokens, envelope, batch) into a
// real TransitKeyring and VaultTokenRegistry over a KeyService on the fake HSM and a SQLite store
// in a temporary folder. Every client-reachable error asserts the exact status and body a client
// sees.
#include "api/vault/vault_door.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "api/http/request_audit.h"
#include "base/encoding.h"
#include "firmware/authz/access_control.h"
#include "firmware/authz/principals.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "tests/firmware/key_service_fixture.h"
#include "tests/support/hooked_store.h"

namespace kms::api::vault {
namespace {

namespace json = boost::json;

std::string B64(std::string_view s) { return Base64Encode(AsBytes(s)); }
std::string Unb64(const json::value& v) {
  return ToString(Base64Decode(std::string_view(v.as_string())).value());
}

struct VaultFixture {
  firmware::testing::ServiceFixture service;
  std::unique_ptr<firmware::transit::TransitKeyring> transit;
  std::unique_ptr<firmware::transit::TransitKeyring> nested;
  std::unique_ptr<firmware::VaultTokenRegistry> tokens;
  std::unique_ptr<firmware::authz::PrincipalRegistry> principals;
  std::unique_ptr<firmware::authz::AccessControl> access;
  metrics::MetricsRegistry registry;
  std::unique_ptr<VaultDoor> door;
  VaultHealth health{true, false, false, "1.0.0-kms"};
  std::string admin;

  VaultFixture() {
    transit = std::make_unique<firmware::transit::TransitKeyring>(service.svc(), *service.store,
                                                                  service.clock, "transit");
    nested = std::make_unique<firmware::transit::TransitKeyring>(service.svc(), *service.store,
                                                                 service.clock, "apps/transit");
    tokens = std::make_unique<firmware::VaultTokenRegistry>(service.Hsm(), *service.store,
                                                            service.clock);
    principals = std::make_unique<firmware::authz::PrincipalRegistry>(*service.store, service.clock,
                                                                      "111122223333");
    access = std::make_unique<firmware::authz::AccessControl>(service.Hsm(), *service.store,
                                                              *principals, service.clock);
    VaultDoorConfig config;
    config.access = access.get();
    config.mounts = {"transit", "/apps/transit/"};
    config.clock = &service.clock;
    config.health = [this] { return health; };
    config.request_id = [] { return std::string("11111111-2222-4333-8444-555555555555"); };
    config.cluster_id = "cluster-1";
    config.observers.metrics = &registry;
    door = std::make_unique<VaultDoor>(
        config, *tokens,
        std::vector<firmware::transit::TransitKeyring*>{transit.get(), nested.get()});
    admin = NewToken({"*"}, {"*"}, /*administrator=*/true);
  }

  std::string NewToken(std::vector<std::string> patterns, std::vector<std::string> operations,
                       bool administrator = false, std::int64_t ttl_ms = 0,
                       std::string display_name = "test") {
    firmware::VaultTokenSpec spec;
    spec.display_name = std::move(display_name);
    spec.key_patterns = std::move(patterns);
    spec.operations = std::move(operations);
    spec.administrator = administrator;
    spec.ttl_ms = ttl_ms;
    spec.renewable = ttl_ms != 0;
    auto made = tokens->Create(spec);
    if (!made) FAIL(made.error().ToString());
    return ToString(made->token.ExposeSecret());
  }

  http::HttpResponse Raw(std::string method, std::string target, std::string body = "",
                         std::optional<std::string> token = std::nullopt,
                         http::HeaderList extra = {}) {
    http::HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    // What the Go client sends: X-Vault-Request, no Content-Type.
    r.headers.emplace_back("X-Vault-Request", "true");
    const std::string t = token ? *token : admin;
    if (!t.empty()) r.headers.emplace_back("X-Vault-Token", t);
    for (auto& h : extra) r.headers.push_back(std::move(h));
    auto resp = door->Handle(r);
    CHECK(resp.headers.size() >= 2);
    bool json_type = false, no_store = false;
    for (const auto& [n, v] : resp.headers) {
      json_type |= n == "Content-Type" && v == "application/json";
      no_store |= n == "Cache-Control" && v == "no-store";
    }
    CHECK(json_type);
    CHECK(no_store);
    return resp;
  }
  json::object Ok(std::string method, std::string target, const json::object& body = {},
                  std::optional<std::string> token = std::nullopt) {
    const auto r = Raw(std::move(method), target, json::serialize(body), std::move(token));
    INFO(target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).as_object();
  }
  json::object Data(std::string method, std::string target, const json::object& body = {},
                    std::optional<std::string> token = std::nullopt) {
    auto o = Ok(std::move(method), std::move(target), body, std::move(token));
    return o.at("data").as_object();
  }
  // The whole error body, after checking the status.
  json::value Err(unsigned status, std::string method, std::string target,
                  const json::object& body = {}, std::optional<std::string> token = std::nullopt) {
    const auto r = Raw(std::move(method), target, json::serialize(body), std::move(token));
    INFO(target << " -> " << r.status << " " << r.body);
    CHECK(r.status == status);
    return json::parse(r.body);
  }
  // The single error message of a failing call.
  std::string ErrMsg(unsigned status, std::string method, std::string target,
                     const json::object& body = {},
                     std::optional<std::string> token = std::nullopt) {
    const auto v = Err(status, std::move(method), std::move(target), body, std::move(token));
    const auto& errors = v.at("errors").as_array();
    REQUIRE(errors.size() == 1);
    return std::string(errors[0].as_string());
  }
  std::string Encrypt(std::string_view key, std::string_view plaintext) {
    return std::string(
        Data("PUT", "/v1/transit/encrypt/" + std::string(key), {{"plaintext", B64(plaintext)}})
            .at("ciphertext")
            .as_string());
  }
  void CreateKey(std::string_view name, const json::object& body = {}) {
    Data("POST", "/v1/transit/keys/" + std::string(name), body);
  }
};

json::value Errors(std::initializer_list<std::string_view> messages) {
  json::array a;
  for (auto m : messages) a.emplace_back(m);
  return json::object{{"errors", std::move(a)}};
}

std::size_t CountColons(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), ':'));
}

// ---------------------------------------------------------------------------------------------

TEST_CASE("vault door: the transit seal's exact sequence", "[unit]") {
  VaultFixture f;
  f.CreateKey("autounseal");
  // The seal's token: encrypt and decrypt on its key only, with a ttl so renew-self extends it.
  const std::string token = f.NewToken({"autounseal"}, {"encrypt", "decrypt"}, false, 3'600'000);

  // 1. PUT auth/token/renew-self {"increment":0}
  const auto renew = f.Ok("PUT", "/v1/auth/token/renew-self", {{"increment", 0}}, token);
  const auto& auth = renew.at("auth").as_object();
  CHECK(auth.at("client_token").as_string() == token);
  CHECK(auth.at("renewable").as_bool());
  CHECK(auth.at("lease_duration").as_int64() == 3600);
  CHECK(renew.at("data").is_null());

  // 2. PUT <mount>/encrypt/<key> {"plaintext":"YQ=="}: exactly three ':'-separated fields.
  const auto enc = f.Data("PUT", "/v1/transit/encrypt/autounseal", {{"plaintext", "YQ=="}}, token);
  const std::string ct(enc.at("ciphertext").as_string());
  CHECK(CountColons(ct) == 2);
  CHECK(ct.starts_with("vault:v1:"));
  CHECK(enc.at("key_version").as_int64() == 1);

  // 4. decrypt the exact string back.
  const auto dec = f.Data("PUT", "/v1/transit/decrypt/autounseal", {{"ciphertext", ct}}, token);
  CHECK(dec.at("plaintext").as_string() == "YQ==");

  // The health check: Encrypt("Heartbeat 123") + Decrypt + compare.
  const auto hb =
      f.Data("PUT", "/v1/transit/encrypt/autounseal", {{"plaintext", B64("Heartbeat 123")}}, token);
  const auto hb_back =
      f.Data("PUT", "/v1/transit/decrypt/autounseal", {{"ciphertext", hb.at("ciphertext")}}, token);
  CHECK(Unb64(hb_back.at("plaintext")) == "Heartbeat 123");
  // Vault's key-id refresh: Encrypt([0x00]).
  const auto zero = f.Data("PUT", "/v1/transit/encrypt/autounseal",
                           {{"plaintext", Base64Encode(Bytes{0x00})}}, token);
  CHECK(CountColons(std::string_view(zero.at("ciphertext").as_string())) == 2);
}

TEST_CASE("vault door: requests are counted by endpoint and outcome, and paths cannot mint labels",
          "[unit]") {
  VaultFixture f;
  f.CreateKey("k1");
  f.Encrypt("k1", "canary-plaintext");
  f.Encrypt("k1", "canary-plaintext");
  f.ErrMsg(403, "PUT", "/v1/transit/encrypt/k1", {{"plaintext", B64("x")}}, "not-a-token");
  f.Data("POST", "/v1/transit/keys/k1/rotate");
  f.Data("POST", "/v1/apps/transit/keys/k2");
  f.Raw("GET", "/v1/sys/health");
  f.Raw("GET", "/v1/transit/no-such-endpoint-canary");
  f.Raw("GET", "/v1/secret-canary/data/x");
  auto& requests =
      f.registry.AddCounter("kms_requests_total", "", {"door", "operation", "outcome"});
  auto count = [&](std::string_view op, std::string_view outcome) {
    return requests.With({"vault", op, outcome}).value();
  };
  CHECK(count("keys", "ok") == 2);
  CHECK(count("encrypt", "ok") == 2);
  CHECK(count("encrypt", "403") == 1);
  CHECK(count("keys/rotate", "ok") == 1);
  CHECK(count("sys/health", "ok") == 1);
  CHECK(count("unknown", "404") == 2);
  const std::string text = f.registry.Render();
  CHECK(text.find("canary") == std::string::npos);
}

TEST_CASE("vault door: success envelope, PUT and POST alike, headers", "[unit]") {
  VaultFixture f;
  f.CreateKey("k1");
  for (const char* method : {"PUT", "POST"}) {
    INFO(method);
    const auto r = f.Ok(method, "/v1/transit/encrypt/k1", {{"plaintext", B64("hello")}});
    CHECK(r.at("request_id").as_string() == "11111111-2222-4333-8444-555555555555");
    CHECK(r.at("lease_id").as_string() == "");
    CHECK(r.at("renewable").as_bool() == false);
    CHECK(r.at("lease_duration").as_int64() == 0);
    CHECK(r.at("wrap_info").is_null());
    CHECK(r.at("warnings").is_null());
    CHECK(r.at("auth").is_null());
    CHECK(r.at("mount_type").as_string() == "transit");
    const std::string ct(r.at("data").at("ciphertext").as_string());
    CHECK(f.Data(method, "/v1/transit/decrypt/k1", {{"ciphertext", ct}})
              .at("plaintext")
              .as_string() == B64("hello"));
  }
  // Authorization: Bearer instead of X-Vault-Token; X-Vault-Namespace is ignored.
  const auto r = f.Raw("PUT", "/v1/transit/encrypt/k1", R"({"plaintext":"YQ=="})", "",
                       {{"Authorization", "Bearer " + f.admin}, {"X-Vault-Namespace", "ns1/"}});
  CHECK(r.status == 200);
  // Empty body = {} (and then the missing plaintext is the user error).
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k1") == "missing plaintext to encrypt");
  // Vault allows an empty plaintext; the key service's blobs need 1..4096 bytes (the keyring's
  // text).
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k1", {{"plaintext", ""}}) ==
        "plaintext must be 1 to 4096 bytes on this appliance");
}

TEST_CASE("vault door: tokens: missing, wrong, scope, revoke", "[unit]") {
  VaultFixture f;
  f.CreateKey("app-1");
  f.CreateKey("other");
  const json::object body{{"plaintext", "YQ=="}};
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/app-1", body, "") == Errors({"permission denied"}));
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/app-1", body,
              "hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") == Errors({"permission denied"}));
  // A caller without a token learns nothing about routes: 403 before 404, 501 or 405.
  CHECK(f.Err(403, "GET", "/v1/no/such/path", {}, "") == Errors({"permission denied"}));
  CHECK(f.Err(403, "GET", "/v1/transit/export/encryption-key/app-1", {}, "bogus") ==
        Errors({"permission denied"}));
  CHECK(f.Err(403, "GET", "/v1/transit/encrypt/app-1", {}, "bogus") ==
        Errors({"permission denied"}));
  const auto bad_json = f.Raw("PUT", "/v1/transit/encrypt/app-1", "not json", "");
  CHECK(bad_json.status == 403);
  CHECK(json::parse(bad_json.body) == Errors({"permission denied"}));

  const std::string scoped = f.NewToken({"app-*"}, {"encrypt"});
  const std::string ct = std::string(
      f.Data("PUT", "/v1/transit/encrypt/app-1", body, scoped).at("ciphertext").as_string());
  // Operation outside the scope, key outside the scope, key management.
  CHECK(f.Err(403, "PUT", "/v1/transit/decrypt/app-1", {{"ciphertext", ct}}, scoped) ==
        Errors({"permission denied"}));
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/other", body, scoped) ==
        Errors({"permission denied"}));
  CHECK(f.Err(403, "POST", "/v1/transit/keys/app-2", {}, scoped) == Errors({"permission denied"}));
  CHECK(f.Err(403, "GET", "/v1/transit/keys/app-1", {}, scoped) == Errors({"permission denied"}));
  CHECK(f.Err(403, "PUT", "/v1/transit/random", {}, scoped) == Errors({"permission denied"}));
  // Upsert without "manage": Vault's 400 for a missing key (the token may encrypt to the name).
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/app-new", body, scoped) ==
        "encryption key not found");

  // revoke-self: 204, then the token is dead.
  const auto revoked = f.Raw("PUT", "/v1/auth/token/revoke-self", "", scoped);
  CHECK(revoked.status == 204);
  CHECK(revoked.body.empty());
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/app-1", body, scoped) ==
        Errors({"permission denied"}));
  CHECK(f.Err(403, "GET", "/v1/auth/token/lookup-self", {}, scoped) ==
        Errors({"permission denied"}));
}

// What the door hands its RequestAuditor, copied; `fail` makes Record fail (a full disk), and
// `fail_at` only the Record call of that index (counting from 0, `entries` included).
struct RecordingAuditor final : http::RequestAuditor {
  struct Entry {
    std::string operation, principal, credential_id, outcome, key_arn, decision;
    unsigned status;
  };
  std::vector<Entry> entries;
  bool fail = false;
  int fail_at = -1;
  bool ready = true;
  // Runs once, when the next intent record ("started") is written: between a request's decision
  // and the change it was decided for.
  std::function<void()> on_intent;
  bool Ready() const override { return ready; }
  Status Record(const http::AuditedRequest& r) override {
    if (r.outcome == "started" && on_intent) std::exchange(on_intent, nullptr)();
    entries.push_back({std::string(r.operation), std::string(r.principal),
                       std::string(r.credential_id), std::string(r.outcome), std::string(r.key_arn),
                       std::string(r.decision), r.status});
    const bool failing = fail || static_cast<int>(entries.size()) - 1 == fail_at;
    if (fail) ready = false;
    return failing ? UnavailableError("audit log: No space left on device") : Status::Ok();
  }
};

void AttachAuditor(VaultFixture& f, RecordingAuditor& auditor) {
  VaultDoorConfig config = f.door->config();
  config.observers.audit = &auditor;
  f.door = std::make_unique<VaultDoor>(
      config, *f.tokens,
      std::vector<firmware::transit::TransitKeyring*>{f.transit.get(), f.nested.get()});
}

TEST_CASE("vault door: every answer is audited with the token's accessor, never the token",
          "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("app-1");
  const std::string scoped = f.NewToken({"app-*"}, {"encrypt"});
  const auto accessor = std::string(
      f.Data("GET", "/v1/auth/token/lookup-self", {}, scoped).at("accessor").as_string());
  auditor.entries.clear();

  f.Encrypt("app-1", "audited");  // the admin token
  f.Data("PUT", "/v1/transit/encrypt/app-1", {{"plaintext", "YQ=="}}, scoped);
  f.Err(403, "PUT", "/v1/transit/decrypt/app-1", {{"ciphertext", "vault:v1:AAAA"}}, scoped);
  f.Err(403, "PUT", "/v1/transit/encrypt/app-1", {{"plaintext", "YQ=="}},
        "hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  // A path without a route: refused to a token that is not an administrator, as Vault's ACLs.
  f.Err(403, "GET", "/v1/no/such/path", {}, scoped);
  f.Raw("PUT", "/v1/auth/token/revoke-self", "", scoped);
  // revoke-self changes state: its intent record, then its final record.
  REQUIRE(auditor.entries.size() == 7);
  const auto& e = auditor.entries;
  CHECK(e[0].operation == "encrypt");
  CHECK(e[0].principal == "vault-token:test");
  CHECK(!e[0].credential_id.empty());
  CHECK(e[0].credential_id != accessor);  // the admin token's own accessor
  // The scoped token: allowed, refused by scope (still named), a route that does not exist.
  for (const std::size_t i : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    INFO(i);
    CHECK(e[i].principal == "vault-token:test");
    CHECK(e[i].credential_id == accessor);
  }
  CHECK(e[1].outcome == "ok");
  CHECK(e[2].outcome == "403");
  CHECK(e[4].outcome == "403");
  // A token that does not exist names nobody; revoke-self names the token it revoked.
  CHECK(e[3].principal.empty());
  CHECK(e[3].credential_id.empty());
  CHECK(e[3].status == 403);
  CHECK(e[5].operation == "auth/token/revoke-self");
  CHECK(e[5].credential_id == accessor);
  CHECK(e[5].outcome == "started");
  CHECK(e[5].status == 0);
  CHECK(e[6].operation == "auth/token/revoke-self");
  CHECK(e[6].credential_id == accessor);
  CHECK(e[6].status == 204);
  for (const auto& entry : e) {
    CHECK(entry.credential_id.find("hvs.") == std::string::npos);
    CHECK(entry.principal.find(scoped) == std::string::npos);
  }
}

TEST_CASE("vault door: an audit record that cannot be written turns the answer into a 500",
          "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("app-1");
  const json::value refused = Errors({"internal error: the audit log cannot be written"});
  auditor.fail = true;
  // The encryption ran, but its ciphertext never leaves: the answer is the audit error.
  const auto r = f.Raw("PUT", "/v1/transit/encrypt/app-1",
                       json::serialize(json::object{{"plaintext", B64("secret")}}));
  CHECK(r.status == 500);
  CHECK(json::parse(r.body) == refused);
  // From then on nothing is performed: the key is not created.
  CHECK(f.Err(500, "POST", "/v1/transit/keys/app-2") == refused);
  auditor.fail = false;
  auditor.ready = true;
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/app-2", {{"plaintext", "YQ=="}},
                 f.NewToken({"app-*"}, {"encrypt"})) == "encryption key not found");
}

TEST_CASE("vault door: lookup-self and renew-self shapes", "[unit]") {
  VaultFixture f;
  const std::string token = f.NewToken({"*"}, {"encrypt"}, false, 7'200'000);
  for (const char* method : {"GET", "POST"}) {
    INFO(method);
    const auto r = f.Ok(method, "/v1/auth/token/lookup-self", {}, token);
    CHECK(r.at("mount_type").as_string() == "token");
    CHECK(r.at("auth").is_null());
    const auto& d = r.at("data").as_object();
    CHECK(d.at("id").as_string() == token);
    CHECK(d.at("accessor").as_string().starts_with("acc."));
    CHECK(d.at("creation_time").as_int64() == firmware::testing::kStartMs / 1000);
    CHECK(d.at("creation_ttl").as_int64() == 7200);
    CHECK(d.at("display_name").as_string() == "test");
    CHECK(d.at("expire_time").as_string() == "2026-01-01T02:00:00Z");
    CHECK(d.at("issue_time").as_string() == "2026-01-01T00:00:00Z");
    CHECK(d.at("explicit_max_ttl").as_int64() == 0);
    CHECK(d.at("meta").is_null());
    CHECK(d.at("num_uses").as_int64() == 0);
    CHECK(d.at("orphan").as_bool());
    CHECK(d.at("path").as_string() == "auth/token/create");
    CHECK(d.at("policies").is_array());
    CHECK(d.at("renewable").as_bool());
    CHECK(d.at("ttl").as_int64() == 7200);
    CHECK(d.at("type").as_string() == "service");
  }
  // Half an hour later: ttl counts down; renew-self with "increment" (seconds or a duration).
  f.service.clock.Advance(1'800'000);
  CHECK(f.Data("GET", "/v1/auth/token/lookup-self", {}, token).at("ttl").as_int64() == 5400);
  const auto r = f.Ok("POST", "/v1/auth/token/renew-self", {{"increment", "1h"}}, token);
  const auto& a = r.at("auth").as_object();
  CHECK(a.at("client_token").as_string() == token);
  CHECK(a.at("lease_duration").as_int64() == 3600);
  CHECK(a.at("renewable").as_bool());
  CHECK(a.at("token_type").as_string() == "service");
  CHECK(a.at("orphan").as_bool());
  CHECK(a.at("num_uses").as_int64() == 0);
  CHECK(a.at("entity_id").as_string() == "");
  CHECK(a.at("policies").is_array());
  CHECK(a.at("token_policies").is_array());
  CHECK(a.contains("metadata"));
  CHECK(a.at("accessor").as_string().starts_with("acc."));
  CHECK(f.Ok("PUT", "/v1/auth/token/renew-self", {{"increment", 0}}, token)
            .at("auth")
            .at("lease_duration")
            .as_int64() == 7200);
  // A token without ttl is not renewable (the registry's Vault text).
  CHECK(f.Err(400, "PUT", "/v1/auth/token/renew-self", {{"increment", 0}}) ==
        Errors({"lease is not renewable"}));
  CHECK(f.ErrMsg(400, "PUT", "/v1/auth/token/renew-self", {{"increment", "soon"}}, token) ==
        "error converting input for field \"increment\": expected a duration");
  // Durations past what an int64 of milliseconds holds are not durations (they overflowed).
  std::string many_days;
  for (int i = 0; i < 120; ++i) many_days += "1000000000d";
  for (const std::string& huge : {std::string("9223372036854776"),
                                  std::string("000000000000000000000350780370976301968"),
                                  many_days}) {
    INFO(huge.substr(0, 40));
    CHECK(f.ErrMsg(400, "PUT", "/v1/auth/token/renew-self", {{"increment", huge}}, token) ==
          "error converting input for field \"increment\": expected a duration");
  }
  // renew-self is a write; other auth/token paths are operators' (501); other auth/ is 404.
  CHECK(f.ErrMsg(405, "GET", "/v1/auth/token/renew-self", {}, token) == "unsupported operation");
  CHECK(f.Raw("POST", "/v1/auth/token/create", "{}").status == 501);
  CHECK(f.ErrMsg(404, "POST", "/v1/auth/userpass/login/x") ==
        "no handler for route \"auth/userpass/login/x\". route entry not found.");
  // Expired tokens are dead.
  f.service.clock.Advance(3 * 3'600'000);
  CHECK(f.Err(403, "GET", "/v1/auth/token/lookup-self", {}, token) ==
        Errors({"permission denied"}));
}

TEST_CASE("vault door: keys create, read, LIST, ?list=true, config, rotate, delete", "[unit]") {
  VaultFixture f;
  // LIST with no results: 404 {"errors":[]}.
  CHECK(f.Err(404, "LIST", "/v1/transit/keys") == json::parse(R"({"errors":[]})"));
  // Read of a missing key: 404 {"errors":[]}.
  CHECK(f.Err(404, "GET", "/v1/transit/keys/nope") == json::parse(R"({"errors":[]})"));

  const auto created = f.Data("POST", "/v1/transit/keys/aes");
  CHECK(created.at("name").as_string() == "aes");
  CHECK(created.at("type").as_string() == "aes256-gcm96");
  f.Data("PUT", "/v1/transit/keys/ec", {{"type", "ecdsa-p256"}});
  const auto d = f.Data("GET", "/v1/transit/keys/aes");
  CHECK(d.at("type").as_string() == "aes256-gcm96");
  CHECK(d.at("derived").as_bool() == false);
  CHECK(d.at("deletion_allowed").as_bool() == false);
  CHECK(d.at("exportable").as_bool() == false);
  CHECK(d.at("latest_version").as_int64() == 1);
  CHECK(d.at("min_decryption_version").as_int64() == 1);
  CHECK(d.at("min_encryption_version").as_int64() == 0);
  CHECK(d.at("supports_encryption").as_bool());
  CHECK(d.at("supports_signing").as_bool() == false);
  CHECK(d.at("auto_rotate_period").as_int64() == 0);
  CHECK(d.at("keys").at("1").as_int64() == firmware::testing::kStartMs / 1000);
  const auto ec = f.Data("GET", "/v1/transit/keys/ec");
  CHECK(ec.at("supports_signing").as_bool());
  const auto& v1 = ec.at("keys").at("1").as_object();
  CHECK(v1.at("name").as_string() == "P-256");
  CHECK(v1.at("public_key").as_string().starts_with("-----BEGIN PUBLIC KEY-----"));
  CHECK(v1.at("creation_time").as_string() == "2026-01-01T00:00:00Z");

  // Creating an existing name changes nothing.
  CHECK(f.Data("POST", "/v1/transit/keys/aes").at("latest_version").as_int64() == 1);
  CHECK(f.Raw("POST", "/v1/transit/keys/bad", R"({"type":"no-such-type"})").status == 400);
  CHECK(f.Raw("POST", "/v1/transit/keys/bad", R"({"exportable":true})").status == 400);
  CHECK(f.ErrMsg(400, "POST", "/v1/transit/keys/bad", {{"managed_key_name", "m"}}) ==
        "managed_key_name is not supported by this appliance");

  // LIST verb, GET ?list=true, trailing slash (the CLI's form).
  const json::value names = json::array{"aes", "ec"};
  CHECK(f.Data("LIST", "/v1/transit/keys").at("keys") == names);
  CHECK(f.Data("GET", "/v1/transit/keys?list=true").at("keys") == names);
  CHECK(f.Data("LIST", "/v1/transit/keys/").at("keys") == names);
  // A scoped reader lists only its keys.
  const std::string reader = f.NewToken({"e*"}, {"read"});
  CHECK(f.Data("LIST", "/v1/transit/keys", {}, reader).at("keys") == json::array{"ec"});
  CHECK(f.Err(403, "LIST", "/v1/transit/keys", {}, f.NewToken({"*"}, {"encrypt"})) ==
        Errors({"permission denied"}));
  CHECK(f.ErrMsg(405, "GET", "/v1/transit/keys") == "unsupported operation");

  // Rotate: version 2.
  const auto rotated = f.Data("POST", "/v1/transit/keys/aes/rotate");
  CHECK(rotated.at("latest_version").as_int64() == 2);
  CHECK(f.Data("GET", "/v1/transit/keys/aes").at("keys").as_object().size() == 2);

  // Delete needs deletion_allowed.
  CHECK(f.Raw("DELETE", "/v1/transit/keys/aes").status == 400);
  CHECK(f.ErrMsg(405, "GET", "/v1/transit/keys/aes/config") == "unsupported operation");
  const auto cfg = f.Data("POST", "/v1/transit/keys/aes/config",
                          {{"deletion_allowed", "true"}, {"min_decryption_version", "1"}});
  CHECK(cfg.at("deletion_allowed").as_bool());
  const auto del = f.Raw("DELETE", "/v1/transit/keys/aes");
  CHECK(del.status == 204);
  CHECK(del.body.empty());
  CHECK(f.Err(404, "GET", "/v1/transit/keys/aes") == json::parse(R"({"errors":[]})"));
  CHECK(f.Data("LIST", "/v1/transit/keys").at("keys") == json::array{"ec"});
}

TEST_CASE("vault door: decrypt errors are Vault's exact messages", "[unit]") {
  VaultFixture f;
  f.CreateKey("k");
  const std::string ct = f.Encrypt("k", "secret");
  const std::string payload = ct.substr(ct.rfind(':') + 1);
  auto dec = [&](std::string c) {
    return f.ErrMsg(400, "PUT", "/v1/transit/decrypt/k", {{"ciphertext", c}});
  };
  CHECK(dec(payload) == "invalid ciphertext: no prefix");
  CHECK(dec("vault:v1") == "invalid ciphertext: wrong number of fields");
  CHECK(dec("vault:vx:" + payload) == "invalid ciphertext: version number could not be decoded");
  CHECK(dec("vault:v7:" + payload) == "invalid ciphertext: version is too new");
  CHECK(dec("vault:v1:!!!notbase64") == "invalid ciphertext: could not decode base64");
  // Tampering: one message whatever the cause.
  std::string tampered = ct;
  // Inside the tag, and a change in a high bit of the sextet (the last characters before '='
  // padding carry unused low bits).
  char& c = tampered[tampered.size() - 6];
  c = c == 'A' ? 'g' : 'A';
  CHECK(dec(tampered) == "cipher: message authentication failed");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/decrypt/k") == "missing ciphertext to decrypt");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/decrypt/missing", {{"ciphertext", ct}}) ==
        "encryption key not found");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}, {"nonce", "AAAA"}}) ==
        "provided nonce not allowed for this key");

  // min_decryption_version: v1 ciphertexts are refused after raising it.
  f.Data("POST", "/v1/transit/keys/k/rotate");
  f.Data("POST", "/v1/transit/keys/k/config", {{"min_decryption_version", 2}});
  CHECK(dec(ct) == "ciphertext or signature version is disallowed by policy (too old)");
}

TEST_CASE("vault door: rewrap to the newest version, key_version as number or string", "[unit]") {
  VaultFixture f;
  f.CreateKey("k");
  const std::string v1 = f.Encrypt("k", "payload");
  f.Data("POST", "/v1/transit/keys/k/rotate");
  const auto rewrapped = f.Data("POST", "/v1/transit/rewrap/k", {{"ciphertext", v1}});
  CHECK(rewrapped.at("ciphertext").as_string().starts_with("vault:v2:"));
  CHECK(rewrapped.at("key_version").as_int64() == 2);
  CHECK(Unb64(f.Data("PUT", "/v1/transit/decrypt/k", {{"ciphertext", rewrapped.at("ciphertext")}})
                  .at("plaintext")) == "payload");
  // OpenBao sends key_version as a string.
  for (const json::value& version : {json::value(1), json::value("1")}) {
    const auto e =
        f.Data("PUT", "/v1/transit/encrypt/k", {{"plaintext", B64("x")}, {"key_version", version}});
    CHECK(e.at("ciphertext").as_string().starts_with("vault:v1:"));
    CHECK(e.at("key_version").as_int64() == 1);
  }
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k",
                 {{"plaintext", B64("x")}, {"key_version", "one"}}) ==
        "error converting input for field \"key_version\": expected an integer");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k", {{"plaintext", "not base64!"}}) ==
        "failed to base64-decode plaintext");
}

TEST_CASE("vault door: batch encrypt and decrypt with a partly failing batch", "[unit]") {
  VaultFixture f;
  f.CreateKey("k");
  const json::object body{
      {"plaintext", "ignored-when-batch"},
      {"batch_input", json::array{json::object{{"plaintext", B64("one")}, {"reference", "a"}},
                                  json::object{{"plaintext", "%%%"}, {"reference", "b"}}}}};
  const auto r = f.Raw("POST", "/v1/transit/encrypt/k", json::serialize(body));
  REQUIRE(r.status == 400);
  const auto full = json::parse(r.body).as_object();
  CHECK(full.at("request_id").is_string());  // the full envelope, not {"errors":...}
  const auto& results = full.at("data").at("batch_results").as_array();
  REQUIRE(results.size() == 2);
  CHECK(results[0].at("reference").as_string() == "a");
  CHECK(results[0].at("ciphertext").as_string().starts_with("vault:v1:"));
  CHECK(results[0].at("key_version").as_int64() == 1);
  CHECK(results[1].at("reference").as_string() == "b");
  CHECK(results[1].at("error").as_string() == "failed to base64-decode plaintext");
  CHECK_FALSE(results[1].as_object().contains("ciphertext"));

  // partial_failure_response_code overrides when at least one succeeded.
  json::object with_code = body;
  with_code["partial_failure_response_code"] = 207;
  CHECK(f.Raw("POST", "/v1/transit/encrypt/k", json::serialize(with_code)).status == 207);
  with_code["partial_failure_response_code"] = 9999;
  const auto reverted = f.Raw("POST", "/v1/transit/encrypt/k", json::serialize(with_code));
  CHECK(reverted.status == 400);
  CHECK(json::parse(reverted.body).at("warnings").as_array().size() == 1);

  // All good: 200; decrypt batch, in order, references echoed (absent -> "").
  const std::string ct = std::string(results[0].at("ciphertext").as_string());
  const auto ok =
      f.Data("PUT", "/v1/transit/decrypt/k",
             {{"batch_input", json::array{json::object{{"ciphertext", ct}, {"reference", "x"}},
                                          json::object{{"ciphertext", f.Encrypt("k", "two")}}}}});
  const auto& out = ok.at("batch_results").as_array();
  REQUIRE(out.size() == 2);
  CHECK(Unb64(out[0].at("plaintext")) == "one");
  CHECK(out[0].at("reference").as_string() == "x");
  CHECK(Unb64(out[1].at("plaintext")) == "two");
  CHECK(out[1].at("reference").as_string() == "");
  // Decrypt batch with one bad ciphertext: 400 and both results.
  const auto bad = f.Raw("PUT", "/v1/transit/decrypt/k",
                         json::serialize(json::object{
                             {"batch_input", json::array{json::object{{"ciphertext", ct}},
                                                         json::object{{"ciphertext", "x"}}}}}));
  CHECK(bad.status == 400);
  const json::value bad_body = json::parse(bad.body);
  const auto& bad_results = bad_body.at("data").at("batch_results").as_array();
  CHECK(Unb64(bad_results[0].at("plaintext")) == "one");
  CHECK(bad_results[1].at("error").as_string() == "invalid ciphertext: no prefix");
  // Rewrap batch.
  const auto rw = f.Data("PUT", "/v1/transit/rewrap/k",
                         {{"batch_input", json::array{json::object{{"ciphertext", ct}}}}});
  CHECK(rw.at("batch_results").at(0).at("ciphertext").as_string().starts_with("vault:v1:"));
  // Malformed batch_input fails the whole request.
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k", {{"batch_input", json::array{}}}) ==
        "missing batch input to process");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k", {{"batch_input", json::array{1}}}) ==
        "failed to parse batch input: each item must be an object");
}

TEST_CASE("vault door: encrypt upsert creates a missing key with manage scope", "[unit]") {
  VaultFixture f;
  const std::string ct = f.Encrypt("fresh", "x");
  CHECK(ct.starts_with("vault:v1:"));
  CHECK(f.Data("GET", "/v1/transit/keys/fresh").at("type").as_string() == "aes256-gcm96");
  // A context on the upserting request makes the key derived; context then required.
  const auto d = f.Data("PUT", "/v1/transit/encrypt/derived",
                        {{"plaintext", B64("x")}, {"context", B64("tenant-1")}});
  CHECK(f.Data("GET", "/v1/transit/keys/derived").at("derived").as_bool());
  CHECK(Unb64(f.Data("PUT", "/v1/transit/decrypt/derived",
                     {{"ciphertext", d.at("ciphertext")}, {"context", B64("tenant-1")}})
                  .at("plaintext")) == "x");
  CHECK(f.Raw("PUT", "/v1/transit/decrypt/derived",
              json::serialize(
                  json::object{{"ciphertext", d.at("ciphertext")}, {"context", B64("tenant-2")}}))
            .status == 400);
  // Mixed contexts in an upserting batch: Vault's refusal.
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/mixed",
                 {{"batch_input",
                   json::array{json::object{{"plaintext", B64("a")}, {"context", B64("c")}},
                               json::object{{"plaintext", B64("b")}}}}}) ==
        "context should be set either in all the request blocks or in none");
  // A plaintext the appliance refuses (empty, which Vault itself takes, or over 4096 bytes) is
  // refused before the upsert: no key is left behind.
  for (const std::string& plaintext : {std::string(), B64(std::string(4097, 'p'))}) {
    CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/never", {{"plaintext", plaintext}}) ==
          "plaintext must be 1 to 4096 bytes on this appliance");
    CHECK(f.Raw("GET", "/v1/transit/keys/never", "").status == 404);
  }
  // A scoped token with encrypt and manage may upsert.
  const std::string token = f.NewToken({"svc-*"}, {"encrypt", "manage"});
  CHECK(f.Data("PUT", "/v1/transit/encrypt/svc-1", {{"plaintext", "YQ=="}}, token)
            .at("ciphertext")
            .as_string()
            .starts_with("vault:v1:"));
}

TEST_CASE("vault door: sign and verify, wrong key type, hmac", "[unit]") {
  VaultFixture f;
  f.CreateKey("ec", {{"type", "ecdsa-p256"}});
  f.CreateKey("aes");
  f.CreateKey("mac", {{"type", "hmac"}});
  const std::string input = B64("message");
  const auto s = f.Data("POST", "/v1/transit/sign/ec", {{"input", input}});
  const std::string sig(s.at("signature").as_string());
  CHECK(sig.starts_with("vault:v1:"));
  CHECK(s.at("key_version").as_int64() == 1);
  CHECK(f.Data("POST", "/v1/transit/verify/ec", {{"input", input}, {"signature", sig}})
            .at("valid")
            .as_bool());
  CHECK(f.Data("POST", "/v1/transit/verify/ec/sha2-256",
               {{"input", B64("other")}, {"signature", sig}})
            .at("valid")
            .as_bool() == false);
  // The path's hash.
  CHECK(f.Data("PUT", "/v1/transit/sign/ec/sha2-256", {{"input", input}})
            .at("signature")
            .as_string()
            .starts_with("vault:v1:"));
  // Sign on an AES key: 400 with the keyring's Vault text.
  const auto wrong =
      f.Raw("POST", "/v1/transit/sign/aes", json::serialize(json::object{{"input", input}}));
  CHECK(wrong.status == 400);
  INFO(wrong.body);
  CHECK(json::parse(wrong.body).at("errors").at(0).as_string().find("aes256-gcm96") !=
        std::string::npos);
  CHECK(f.ErrMsg(400, "POST", "/v1/transit/verify/ec", {{"input", input}}) ==
        "neither a 'signature' nor an 'hmac' were given to verify");
  CHECK(f.ErrMsg(400, "POST", "/v1/transit/verify/ec",
                 {{"input", input}, {"signature", sig}, {"hmac", "vault:v1:AA=="}}) ==
        "provide one of 'signature' or 'hmac'");
  CHECK(f.ErrMsg(400, "POST", "/v1/transit/sign/ec",
                 {{"input", input}, {"signature_algorithm", "bogus"}}) ==
        "unsupported signature algorithm bogus");

  // Batch sign, then batch verify with one tampered item.
  const auto batch =
      f.Data("POST", "/v1/transit/sign/ec",
             {{"batch_input", json::array{json::object{{"input", B64("a")}, {"reference", "1"}},
                                          json::object{{"input", B64("b")}, {"reference", "2"}}}}});
  const auto& sigs = batch.at("batch_results").as_array();
  REQUIRE(sigs.size() == 2);
  CHECK(sigs[1].at("reference").as_string() == "2");
  const auto verified = f.Data(
      "POST", "/v1/transit/verify/ec",
      {{"batch_input",
        json::array{json::object{{"input", B64("a")}, {"signature", sigs[0].at("signature")}},
                    json::object{{"input", B64("a")}, {"signature", sigs[1].at("signature")}}}}});
  CHECK(verified.at("batch_results").at(0).at("valid").as_bool());
  CHECK(verified.at("batch_results").at(1).at("valid").as_bool() == false);

  // HMAC on an hmac key; verify through verify/<name> with `hmac`.
  const auto h = f.Data("PUT", "/v1/transit/hmac/mac", {{"input", input}});
  const std::string mac(h.at("hmac").as_string());
  CHECK(mac.starts_with("vault:v1:"));
  CHECK(f.Data("PUT", "/v1/transit/hmac/mac/sha2-256", {{"input", input}}).at("hmac").as_string() ==
        mac);
  CHECK(f.Data("PUT", "/v1/transit/verify/mac", {{"input", input}, {"hmac", mac}})
            .at("valid")
            .as_bool());
  CHECK(f.Data("PUT", "/v1/transit/verify/mac", {{"input", B64("x")}, {"hmac", mac}})
            .at("valid")
            .as_bool() == false);
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/hmac/mac") == "missing input for HMAC");
  const auto hb =
      f.Data("PUT", "/v1/transit/hmac/mac",
             {{"batch_input", json::array{json::object{{"input", input}, {"reference", "r"}}}}});
  CHECK(hb.at("batch_results").at(0).at("hmac").as_string() == mac);
  CHECK(hb.at("batch_results").at(0).at("reference") == "r");
}

TEST_CASE("vault door: datakey, random, hash", "[unit]") {
  VaultFixture f;
  f.CreateKey("k");
  const auto pk = f.Data("POST", "/v1/transit/datakey/plaintext/k", {{"bits", "256"}});
  const std::string key = std::string(pk.at("plaintext").as_string());
  CHECK(Base64Decode(key).value().size() == 32);
  CHECK(pk.at("key_version").as_int64() == 1);
  // The wrapped data key decrypts to the same bytes.
  CHECK(f.Data("PUT", "/v1/transit/decrypt/k", {{"ciphertext", pk.at("ciphertext")}})
            .at("plaintext")
            .as_string() == key);
  const auto wrapped = f.Data("POST", "/v1/transit/datakey/wrapped/k", {{"bits", 512}});
  CHECK_FALSE(wrapped.contains("plaintext"));
  CHECK(wrapped.at("ciphertext").as_string().starts_with("vault:v1:"));
  CHECK(f.ErrMsg(400, "POST", "/v1/transit/datakey/both/k") ==
        "Invalid path, must be 'plaintext' or 'wrapped'");
  CHECK(f.Raw("POST", "/v1/transit/datakey/plaintext/k", R"({"bits":100})").status == 400);

  CHECK(Base64Decode(
            std::string_view(f.Data("PUT", "/v1/transit/random").at("random_bytes").as_string()))
            .value()
            .size() == 32);
  CHECK(f.Data("PUT", "/v1/transit/random/16", {{"format", "hex"}})
            .at("random_bytes")
            .as_string()
            .size() == 32);
  CHECK(Base64Decode(
            std::string_view(
                f.Data("PUT", "/v1/transit/random/platform/8").at("random_bytes").as_string()))
            .value()
            .size() == 8);
  CHECK(f.Data("PUT", "/v1/transit/random", {{"bytes", "4"}, {"format", "hex"}})
            .at("random_bytes")
            .as_string()
            .size() == 8);
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/random/moon/8") ==
        "unsupported entropy source \"moon\"; must be \"platform\" or \"seal\", or \"all\"");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/random", {{"format", "b32"}}) ==
        "unsupported encoding format \"b32\"; must be \"hex\" or \"base64\"");

  // sha2-256("abc"), FIPS 180-2 appendix B.1.
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  CHECK(f.Data("PUT", "/v1/transit/hash", {{"input", B64("abc")}}).at("sum").as_string() == abc);
  CHECK(f.Data("PUT", "/v1/transit/hash/sha2-256", {{"input", B64("abc")}}).at("sum").as_string() ==
        abc);
  CHECK(f.Data("PUT", "/v1/transit/hash", {{"input", B64("abc")}, {"format", "base64"}})
            .at("sum")
            .as_string() == Base64Encode(HexDecode(abc).value()));
  CHECK(f.Data("PUT", "/v1/transit/hash/sha2-512", {{"input", B64("abc")}})
            .at("sum")
            .as_string()
            .size() == 128);
  CHECK(f.Raw("PUT", "/v1/transit/hash/md5", R"({"input":"YQ=="})").status == 400);
}

TEST_CASE("vault door: methods, unknown paths, unimplemented endpoints, bad JSON", "[unit]") {
  VaultFixture f;
  f.CreateKey("k");
  CHECK(f.ErrMsg(405, "GET", "/v1/transit/encrypt/k") == "unsupported operation");
  CHECK(f.ErrMsg(405, "DELETE", "/v1/transit/decrypt/k") == "unsupported operation");
  CHECK(f.Err(405, "PATCH", "/v1/transit/keys/k") == json::parse(R"({"errors":[]})"));
  CHECK(f.ErrMsg(404, "GET", "/v1/transit/nothing/here") ==
        "no handler for route \"transit/nothing/here\". route entry not found.");
  CHECK(f.ErrMsg(404, "GET", "/v1/secret/data/x") ==
        "no handler for route \"secret/data/x\". route entry not found.");
  CHECK(f.ErrMsg(404, "GET", "/v1/transit/keys/k/extra/more") ==
        "no handler for route \"transit/keys/k/extra/more\". route entry not found.");
  CHECK(f.ErrMsg(404, "PUT", "/v1/transit") ==
        "no handler for route \"transit\". route entry not found.");
  CHECK(f.ErrMsg(501, "GET", "/v1/transit/export/encryption-key/k") ==
        "export is not implemented by this appliance: transit key material never leaves the HSM");
  for (const char* path :
       {"/v1/transit/backup/k", "/v1/transit/restore", "/v1/transit/restore/k",
        "/v1/transit/keys/k/import", "/v1/transit/keys/k/import_version", "/v1/transit/keys/k/trim",
        "/v1/transit/wrapping_key", "/v1/transit/cache-config", "/v1/transit/byok-export/a/k",
        "/v1/transit/keys/k/csr", "/v1/transit/keys/k/set-certificate", "/v1/transit/config/keys",
        "/v1/transit/cmac/k", "/v1/transit/export/signing-key/k/1"}) {
    INFO(path);
    const auto r = f.Raw("POST", path, "{}");
    CHECK(r.status == 501);
    CHECK(json::parse(r.body).at("errors").at(0).as_string().find("not implemented") !=
          std::string::npos);
  }
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/k", {}, std::nullopt) ==
        "missing plaintext to encrypt");
  const auto bad = f.Raw("PUT", "/v1/transit/encrypt/k", "{\"plaintext\":");
  CHECK(bad.status == 400);
  CHECK(json::parse(bad.body).at("errors").at(0).as_string().starts_with(
      "failed to parse JSON input: "));
  CHECK(f.Raw("PUT", "/v1/transit/encrypt/k", "[1,2]").status == 400);
  // A plaintext never comes back in an error.
  const auto r =
      f.Raw("PUT", "/v1/transit/encrypt/k", R"({"plaintext":"c2VjcmV0LXZhbHVl","key_version":99})");
  CHECK(r.status == 400);
  CHECK(r.body.find("c2VjcmV0LXZhbHVl") == std::string::npos);
}

TEST_CASE("vault door: nested mounts", "[unit]") {
  VaultFixture f;
  const std::string ct =
      std::string(f.Data("PUT", "/v1/apps/transit/encrypt/k", {{"plaintext", B64("nested")}})
                      .at("ciphertext")
                      .as_string());
  CHECK(Unb64(f.Data("PUT", "/v1/apps/transit/decrypt/k", {{"ciphertext", ct}}).at("plaintext")) ==
        "nested");
  CHECK(f.Data("LIST", "/v1/apps/transit/keys").at("keys") == json::array{"k"});
  // The other mount's names are its own.
  CHECK(f.Err(404, "LIST", "/v1/transit/keys") == json::parse(R"({"errors":[]})"));
  CHECK(f.Err(404, "GET", "/v1/apps/other/keys/k").at("errors").at(0).is_string());
}

TEST_CASE("vault door: sys/health and sys/seal-status, sealed", "[unit]") {
  VaultFixture f;
  auto health = [&](std::string method, std::string query = "") {
    return f.Raw(std::move(method), "/v1/sys/health" + query, "", "");
  };
  auto r = health("GET");
  CHECK(r.status == 200);
  auto b = json::parse(r.body).as_object();
  CHECK(b.at("initialized").as_bool());
  CHECK(b.at("sealed").as_bool() == false);
  CHECK(b.at("standby").as_bool() == false);
  CHECK(b.at("performance_standby").as_bool() == false);
  CHECK(b.at("replication_performance_mode").as_string() == "disabled");
  CHECK(b.at("replication_dr_mode").as_string() == "disabled");
  CHECK(b.at("server_time_utc").as_int64() == firmware::testing::kStartMs / 1000);
  CHECK(b.at("version").as_string() == "1.0.0-kms");
  CHECK(b.at("cluster_name").as_string() == "kms-appliance");
  CHECK(b.at("cluster_id").as_string() == "cluster-1");
  CHECK(health("GET", "?activecode=299").status == 299);
  auto head = health("HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(health("PUT").status == 405);
  CHECK(health("GET", "?activecode=abc").status == 400);

  f.health.standby = true;
  CHECK(health("GET").status == 429);
  CHECK(health("GET", "?standbyok=true").status == 200);
  CHECK(health("GET", "?standbycode=200").status == 200);
  f.health.standby = false;

  f.health.sealed = true;
  r = health("GET");
  CHECK(r.status == 503);
  b = json::parse(r.body).as_object();
  CHECK(b.at("sealed").as_bool());
  CHECK_FALSE(b.contains("cluster_id"));
  CHECK(health("GET", "?sealedcode=200").status == 200);
  CHECK(health("HEAD").status == 503);
  // Everything else is 503 while sealed, before the token is looked at.
  CHECK(f.Err(503, "PUT", "/v1/transit/encrypt/k", {{"plaintext", "YQ=="}}) ==
        Errors({"Vault is sealed"}));
  CHECK(f.Err(503, "GET", "/v1/auth/token/lookup-self", {}, "") == Errors({"Vault is sealed"}));
  const auto ss = f.Raw("GET", "/v1/sys/seal-status", "", "");
  CHECK(ss.status == 200);
  CHECK(json::parse(ss.body).at("sealed").as_bool());
  CHECK(json::parse(ss.body).at("type").is_string());

  f.health.sealed = false;
  f.health.initialized = false;
  CHECK(health("GET").status == 501);
  CHECK(health("GET", "?uninitcode=200").status == 200);
  f.health.initialized = true;
  const auto ok = f.Raw("GET", "/v1/sys/seal-status", "", "");
  CHECK(json::parse(ok.body).at("sealed").as_bool() == false);
  CHECK(f.Raw("PUT", "/v1/sys/seal-status", "", "").status == 405);
}

TEST_CASE("vault door: a throw below the door is a 500, never an escape", "[unit]") {
  VaultFixture f;
  VaultDoorConfig config;
  config.clock = &f.service.clock;
  config.request_id = []() -> std::string { throw std::runtime_error("boom"); };
  VaultDoor door(config, *f.tokens, {f.transit.get()});
  http::HttpRequest r;
  r.method = "GET";
  r.target = "/v1/sys/health";
  const auto resp = door.Handle(r);
  CHECK(resp.status == 500);
  CHECK(json::parse(resp.body) == Errors({"internal error"}));
}

TEST_CASE("vault door: fault responses are Vault errors", "[unit]") {
  const auto r = VaultDoor::FaultResponse(http::ServerFault::kBodyTooLarge, "x");
  CHECK(r.status == 413);
  CHECK(json::parse(r.body) == Errors({"http: request body too large"}));
  CHECK(VaultDoor::FaultResponse(http::ServerFault::kHandlerFailed, "").status == 500);
  CHECK(VaultDoor::FaultResponse(http::ServerFault::kOverloaded, "").status == 503);
}

// A sealed appliance's door (production, before the custodian shares): no tokens, no keys.
http::HttpResponse Call(const VaultDoor& door, std::string method, std::string target,
                        std::string body = "", std::string token = "") {
  http::HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  if (!token.empty()) r.headers.emplace_back("X-Vault-Token", token);
  return door.Handle(r);
}

TEST_CASE("vault door: a sealed door answers health and seal status, and 503 everywhere else",
          "[unit]") {
  VaultDoorConfig config;
  config.health = [] {
    VaultHealth h{true, true, false, "1.0.0-kms"};
    h.seal_type = "shamir";
    h.threshold = 3;
    h.shares = 5;
    h.progress = 1;
    h.recovery_seal = false;
    return h;
  };
  config.request_id = [] { return std::string("11111111-2222-4333-8444-555555555555"); };
  VaultDoor door(config);
  CHECK(Call(door, "GET", "/v1/sys/health").status == 503);
  const auto status = Call(door, "GET", "/v1/sys/seal-status");
  REQUIRE(status.status == 200);
  const json::object s = json::parse(status.body).as_object();
  CHECK(s.at("type") == "shamir");
  CHECK(s.at("sealed") == true);
  CHECK(s.at("t") == 3);
  CHECK(s.at("n") == 5);
  CHECK(s.at("progress") == 1);
  CHECK(s.at("recovery_seal") == false);
  CHECK_FALSE(s.contains("cluster_id"));
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"PUT", "/v1/transit/encrypt/k"},
                                                        {"GET", "/v1/auth/token/lookup-self"},
                                                        {"PUT", "/v1/sys/seal"},
                                                        {"LIST", "/v1/transit/keys"}}) {
    const auto r = Call(door, method, target, "{}", "some-token");
    INFO(method << " " << target << " -> " << r.body);
    CHECK(r.status == 503);
    CHECK(json::parse(r.body) == Errors({"Vault is sealed"}));
  }
  // Without an unseal callback, sys/unseal only reports the state.
  const auto u = Call(door, "PUT", "/v1/sys/unseal", R"({"key":"kms1-00"})");
  CHECK(u.status == 200);
  CHECK(json::parse(u.body).at("sealed") == true);
}

TEST_CASE("vault door: sys/unseal hands each share to the appliance and answers Vault's errors",
          "[unit]") {
  std::vector<std::pair<std::string, bool>> calls;
  VaultDoorConfig config;
  config.unseal = [&calls](std::string_view share, bool reset) -> StatusOr<VaultHealth> {
    calls.emplace_back(std::string(share), reset);
    if (share == "bad") return InvalidArgumentError("the share is damaged or mistyped: x");
    VaultHealth h{true, share != "last", false, "1.0.0-kms"};
    h.seal_type = "shamir";
    h.threshold = 2;
    h.shares = 3;
    h.progress = reset ? 0 : 1;
    return h;
  };
  VaultDoor door(config);
  auto body = [](const http::HttpResponse& r) { return json::parse(r.body); };

  const auto first = Call(door, "PUT", "/v1/sys/unseal", R"({"key":"kms1-aa"})");
  CHECK(first.status == 200);
  CHECK(body(first).at("progress") == 1);
  CHECK(body(first).at("sealed") == true);
  const auto last = Call(door, "POST", "/v1/sys/unseal", R"({"key":"last"})");
  CHECK(body(last).at("sealed") == false);
  const auto reset = Call(door, "PUT", "/v1/sys/unseal", R"({"reset":true})");
  CHECK(body(reset).at("progress") == 0);
  REQUIRE(calls.size() == 3);
  CHECK(calls[2] == std::pair<std::string, bool>{"", true});

  const auto bad = Call(door, "PUT", "/v1/sys/unseal", R"({"key":"bad"})");
  CHECK(bad.status == 400);
  CHECK(body(bad) == Errors({"the share is damaged or mistyped: x"}));
  const auto none = Call(door, "PUT", "/v1/sys/unseal", "{}");
  CHECK(none.status == 400);
  CHECK(body(none) ==
        Errors({"'key' must be specified in request body as JSON, or 'reset' set to true"}));
  CHECK(body(Call(door, "PUT", "/v1/sys/unseal", R"({"key":5})")) ==
        Errors({"'key' must be a string"}));
  CHECK(body(Call(door, "PUT", "/v1/sys/unseal", R"({"reset":"yes"})")) ==
        Errors({"'reset' must be a boolean"}));
  CHECK(body(Call(door, "PUT", "/v1/sys/unseal", R"({"key":"x","migrate":true})")) ==
        Errors({"seal migration is not supported by this appliance"}));
  const auto garbage = Call(door, "PUT", "/v1/sys/unseal", "not json");
  CHECK(garbage.status == 400);
  CHECK(Call(door, "GET", "/v1/sys/unseal").status == 405);
  CHECK(calls.size() == 4);  // only the "bad" share reached the appliance among the errors
}

TEST_CASE("vault door: sys/seal needs an administrator token and seals through the appliance",
          "[unit]") {
  VaultFixture f;
  int sealed = 0;
  VaultDoorConfig config = f.door->config();
  config.seal = [&sealed] {
    ++sealed;
    return Status();
  };
  VaultDoor door(config, *f.tokens, {f.transit.get()});
  const std::string reader = f.NewToken({"*"}, {"encrypt"});
  const auto denied = Call(door, "PUT", "/v1/sys/seal", "", reader);
  CHECK(denied.status == 403);
  CHECK(json::parse(denied.body) == Errors({"permission denied"}));
  CHECK(Call(door, "PUT", "/v1/sys/seal", "", "").status == 403);
  CHECK(sealed == 0);
  const auto ok = Call(door, "PUT", "/v1/sys/seal", "", f.admin);
  CHECK(ok.status == 204);
  CHECK(ok.body.empty());
  CHECK(sealed == 1);
  // Dev mode's door has no seal: a clear 400.
  const auto dev = f.Raw("PUT", "/v1/sys/seal", "", f.admin);
  CHECK(dev.status == 400);
  CHECK(json::parse(dev.body) ==
        Errors({"this appliance cannot be sealed: dev mode unseals itself at start"}));
}

// ---- decisions, key ARNs, key policies, mounts, status codes, intent records ----------------

// A door with `auditor` attached, as AttachAuditor, and the ARN of a transit key.
std::string ArnOf(VaultFixture& f, std::string_view name,
                  firmware::transit::TransitKeyring* keyring = nullptr) {
  auto key = (keyring ? keyring : f.transit.get())->Locate(name);
  REQUIRE(key.has_value());
  return key->arn;
}

// The last record's decision, key and status (the final record of the last request).
struct LastRecord {
  std::string decision, key_arn;
  unsigned status;
};
LastRecord Last(const RecordingAuditor& auditor) {
  REQUIRE_FALSE(auditor.entries.empty());
  const auto& e = auditor.entries.back();
  return {e.decision, e.key_arn, e.status};
}

TEST_CASE("vault door: every answer's audit record names its decision, never empty", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("k");
  const std::string arn = ArnOf(f, "k");
  const std::string scoped = f.NewToken({"k"}, {"encrypt"});
  const json::object body{{"plaintext", "YQ=="}};
  auto decided = [&](std::string_view decision, std::string_view key_arn = "") {
    const LastRecord last = Last(auditor);
    CHECK(last.decision == decision);
    CHECK(last.key_arn == key_arn);
  };

  // Allowed: by the token's scope, as an administrator, or a public route.
  f.Data("PUT", "/v1/transit/encrypt/k", body, scoped);
  decided("allow:token-scope", arn);
  f.Data("PUT", "/v1/transit/encrypt/k", body);
  decided("allow:administrator", arn);
  f.Raw("GET", "/v1/sys/health", "", "");
  decided("allow:public");
  f.Raw("GET", "/v1/sys/seal-status", "", "");
  decided("allow:public");
  // An allowed request that then fails keeps its decision; the outcome tells the rest.
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/decrypt/k", {{"ciphertext", "x"}}) ==
        "invalid ciphertext: no prefix");
  decided("allow:administrator", arn);
  // Denied by the scope: operation, key, listing, administrator-only (still naming the key).
  CHECK(f.Err(403, "PUT", "/v1/transit/decrypt/k", {{"ciphertext", "x"}}, scoped) ==
        Errors({"permission denied"}));
  decided("deny:token-scope", arn);
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/other", body, scoped) ==
        Errors({"permission denied"}));
  decided("deny:token-scope");
  CHECK(f.Err(403, "LIST", "/v1/transit/keys", {}, scoped) == Errors({"permission denied"}));
  decided("deny:token-scope");
  CHECK(f.Err(403, "PUT", "/v1/sys/seal", {}, scoped) == Errors({"permission denied"}));
  decided("deny:token-scope");
  // Refused before any decision, by stage.
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/k", body, "") == Errors({"permission denied"}));
  decided("refused:unauthenticated");
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/k", body, "hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") ==
        Errors({"permission denied"}));
  decided("refused:unauthenticated");
  CHECK(f.Raw("PUT", "/v1/transit/encrypt/k", "{\"plaintext\":", scoped).status == 400);
  decided("refused:invalid-request");
  CHECK(f.ErrMsg(405, "GET", "/v1/transit/encrypt/k", {}, scoped) == "unsupported operation");
  decided("refused:invalid-request");
  CHECK(f.Err(405, "PATCH", "/v1/transit/keys/k") == json::parse(R"({"errors":[]})"));
  decided("refused:invalid-request");
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/bad.name", body) == "invalid key name");
  decided("refused:invalid-request");
  CHECK(f.ErrMsg(404, "GET", "/v1/transit/nothing/here") ==
        "no handler for route \"transit/nothing/here\". route entry not found.");
  decided("refused:not-found");
  CHECK(f.Raw("GET", "/v1/transit/export/encryption-key/k").status == 501);
  decided("refused:not-found");
  CHECK(f.Raw("POST", "/v1/auth/token/create", "{}").status == 501);
  decided("refused:not-found");
  f.health.sealed = true;
  CHECK(f.Err(503, "PUT", "/v1/transit/encrypt/k", body) == Errors({"Vault is sealed"}));
  decided("refused:sealed");
  f.health.sealed = false;
  auditor.ready = false;
  CHECK(f.Err(500, "PUT", "/v1/transit/encrypt/k", body) ==
        Errors({"internal error: the audit log cannot be written"}));
  decided("refused:audit");
  for (const auto& e : auditor.entries) CHECK_FALSE(e.decision.empty());
}

TEST_CASE("vault door: every route is decided before its endpoint runs", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("k");
  f.CreateKey("ec", {{"type", "ecdsa-p256"}});
  f.CreateKey("mac", {{"type", "hmac"}});
  const std::string ct = f.Encrypt("k", "secret-canary");
  const std::string k = ArnOf(f, "k"), ec = ArnOf(f, "ec"), mac = ArnOf(f, "mac");
  auditor.entries.clear();
  // Every operation on key "other" only: no route reaches its endpoint for the keys above, and
  // nothing changes. The refusals still name the key they were about.
  const std::string outsider = f.NewToken({"other"}, {"*"});
  const std::string b64 = B64("x");
  struct Case {
    std::string method, path;
    json::object body;
    std::string arn;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/transit/keys/k", {}, k},
      {"POST", "/v1/transit/keys/k", {}, k},
      {"POST", "/v1/transit/keys/new", {}, ""},
      {"DELETE", "/v1/transit/keys/k", {}, k},
      {"POST", "/v1/transit/keys/k/config", {{"deletion_allowed", true}}, k},
      {"POST", "/v1/transit/keys/k/rotate", {}, k},
      {"PUT", "/v1/transit/encrypt/k", {{"plaintext", b64}}, k},
      {"PUT", "/v1/transit/encrypt/upserted", {{"plaintext", b64}}, ""},
      {"PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}}, k},
      {"PUT", "/v1/transit/rewrap/k", {{"ciphertext", ct}}, k},
      {"PUT", "/v1/transit/datakey/plaintext/k", {}, k},
      {"PUT", "/v1/transit/datakey/wrapped/k", {}, k},
      {"PUT", "/v1/transit/hmac/mac", {{"input", b64}}, mac},
      {"PUT", "/v1/transit/hmac/mac/sha2-256", {{"input", b64}}, mac},
      {"PUT", "/v1/transit/sign/ec", {{"input", b64}}, ec},
      {"PUT", "/v1/transit/sign/ec/sha2-256", {{"input", b64}}, ec},
      {"PUT", "/v1/transit/verify/ec", {{"input", b64}, {"signature", "vault:v1:AA=="}}, ec},
      {"PUT",
       "/v1/transit/verify/ec/sha2-256",
       {{"input", b64}, {"signature", "vault:v1:AA=="}},
       ec},
      {"PUT", "/v1/sys/seal", {}, ""},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path);
    CHECK(f.Err(403, c.method, c.path, c.body, outsider) == Errors({"permission denied"}));
    CHECK(Last(auditor).decision == "deny:token-scope");
    CHECK(Last(auditor).key_arn == c.arn);
  }
  // Without the operation: random and hash have no key, and are decided on the operation alone.
  const std::string no_ops = f.NewToken({"*/*"}, {"read"});
  for (const char* path :
       {"/v1/transit/random", "/v1/transit/random/16", "/v1/transit/random/platform/8",
        "/v1/transit/hash", "/v1/transit/hash/sha2-256"}) {
    INFO(path);
    CHECK(f.Err(403, "PUT", path, {{"input", b64}}, no_ops) == Errors({"permission denied"}));
    CHECK(Last(auditor).decision == "deny:token-scope");
  }
  // Nothing changed: no key created, rotated, reconfigured or deleted.
  CHECK(f.Data("LIST", "/v1/transit/keys").at("keys") == json::array{"ec", "k", "mac"});
  const auto key = f.Data("GET", "/v1/transit/keys/k");
  CHECK(key.at("latest_version").as_int64() == 1);
  CHECK(key.at("deletion_allowed").as_bool() == false);
  // Denied requests never get an intent record: every record above is a final one.
  for (const auto& e : auditor.entries) CHECK(e.outcome != "started");
}

TEST_CASE("vault door: audit records carry the key-service key's ARN", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("k");
  f.CreateKey("ec", {{"type", "ecdsa-p256"}});
  f.CreateKey("mac", {{"type", "hmac"}});
  const std::string k = ArnOf(f, "k"), ec = ArnOf(f, "ec"), mac = ArnOf(f, "mac");
  CHECK(k != ec);
  // The ARN is the key service's: the AWS door names the same key.
  CHECK(k == f.Data("GET", "/v1/transit/keys/k").at("kms_key_arn").as_string());
  const std::string ct = f.Encrypt("k", "x");
  CHECK(Last(auditor).key_arn == k);
  const std::string b64 = B64("x");
  struct Case {
    std::string method, path;
    json::object body;
    std::string arn;
  };
  const std::string sig(
      f.Data("PUT", "/v1/transit/sign/ec", {{"input", b64}}).at("signature").as_string());
  const std::vector<Case> cases = {
      {"PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}}, k},
      {"PUT", "/v1/transit/rewrap/k", {{"ciphertext", ct}}, k},
      {"PUT", "/v1/transit/datakey/wrapped/k", {}, k},
      {"PUT", "/v1/transit/hmac/mac", {{"input", b64}}, mac},
      {"PUT", "/v1/transit/sign/ec", {{"input", b64}}, ec},
      {"PUT", "/v1/transit/verify/ec", {{"input", b64}, {"signature", sig}}, ec},
      {"GET", "/v1/transit/keys/k", {}, k},
      {"POST", "/v1/transit/keys/k/rotate", {}, k},
      {"POST", "/v1/transit/keys/k/config", {{"deletion_allowed", true}}, k},
      {"PUT", "/v1/transit/random", {}, ""},
      {"PUT", "/v1/transit/hash", {{"input", b64}}, ""},
      {"LIST", "/v1/transit/keys", {}, ""},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path);
    f.Ok(c.method, c.path, c.body);
    CHECK(Last(auditor).key_arn == c.arn);
  }
  // A key that does not exist: no ARN (the operation names the endpoint).
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/decrypt/missing", {{"ciphertext", ct}}) ==
        "encryption key not found");
  CHECK(Last(auditor).key_arn.empty());
  // A key the request created: the intent record has none yet, the final record the new key's.
  auditor.entries.clear();
  f.Data("POST", "/v1/transit/keys/made");
  REQUIRE(auditor.entries.size() == 2);
  CHECK(auditor.entries[0].outcome == "started");
  CHECK(auditor.entries[0].key_arn.empty());
  CHECK(auditor.entries[1].key_arn == ArnOf(f, "made"));
  auditor.entries.clear();
  f.Encrypt("upserted", "x");
  REQUIRE(auditor.entries.size() == 2);
  CHECK(auditor.entries[0].key_arn.empty());
  CHECK(auditor.entries[1].key_arn == ArnOf(f, "upserted"));
  // A deleted key: the ARN of the key that was unbound, in both records.
  auditor.entries.clear();
  CHECK(f.Raw("DELETE", "/v1/transit/keys/k").status == 204);
  REQUIRE(auditor.entries.size() == 2);
  CHECK(auditor.entries[0].key_arn == k);
  CHECK(auditor.entries[1].key_arn == k);
  // Nested mounts: the mount's own key.
  f.Data("POST", "/v1/apps/transit/keys/k");
  const std::string nested = ArnOf(f, "k", f.nested.get());
  f.Data("PUT", "/v1/apps/transit/encrypt/k", {{"plaintext", b64}});
  CHECK(Last(auditor).key_arn == nested);
  // No record holds a secret: the plaintext's base64, the token.
  for (const auto& e : auditor.entries) {
    for (const std::string* field :
         {&e.operation, &e.principal, &e.credential_id, &e.outcome, &e.key_arn, &e.decision}) {
      CHECK(field->find(b64) == std::string::npos);
      CHECK(field->find(f.admin) == std::string::npos);
    }
  }
}

// A key policy for the tests below: the default's account delegation plus `deny` statements.
std::string PolicyWithDenies(std::string_view deny_statements) {
  return std::string(R"({"Version":"2012-10-17","Statement":[
    {"Sid":"Enable IAM User Permissions","Effect":"Allow",
     "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},)") +
         std::string(deny_statements) + "]}";
}

void PutPolicy(VaultFixture& f, std::string_view name, const std::string& policy,
               firmware::transit::TransitKeyring* keyring = nullptr) {
  auto key = (keyring ? keyring : f.transit.get())->Locate(name);
  REQUIRE(key.has_value());
  firmware::authz::Caller admin;
  admin.principal_arn = "arn:aws:iam::111122223333:user/admin";
  admin.user_name = "admin";
  admin.administrator = true;
  const Status put = f.access->PutKeyPolicy(admin, {key->key_id, key->arn}, policy, true);
  INFO(put.ToString());
  REQUIRE(put.ok());
}

TEST_CASE("vault door: an explicit Deny in the key policy refuses the Vault caller", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("k");
  f.CreateKey("free");
  const std::string ct = f.Encrypt("k", "x");
  const std::string free_ct = f.Encrypt("free", "x");
  // No Vault caller may decrypt with k (any token: matched by the path every Vault caller's ARN
  // has), whatever the token's scope says, the administrator's included.
  PutPolicy(f, "k", PolicyWithDenies(R"(
    {"Sid":"NoVaultDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt",
     "Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":
       "arn:aws:iam::111122223333:user/vault-token/*"}}})"));
  const std::string scoped = f.NewToken({"k", "free"}, {"encrypt", "decrypt"});
  for (const std::string& token : {scoped, f.admin}) {
    CHECK(f.Err(403, "PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}}, token) ==
          Errors({"permission denied"}));
    const LastRecord last = Last(auditor);
    CHECK(last.decision == "deny:explicit");
    CHECK(last.key_arn == ArnOf(f, "k"));
    // Another action on the key, and the same action on another key, are not denied.
    CHECK(f.Data("PUT", "/v1/transit/encrypt/k", {{"plaintext", "YQ=="}}, token)
              .at("ciphertext")
              .as_string()
              .starts_with("vault:v1:"));
    CHECK(Unb64(f.Data("PUT", "/v1/transit/decrypt/free", {{"ciphertext", free_ct}}, token)
                    .at("plaintext")) == "x");
  }
  // A batch on the denied key: refused whole, before any item.
  CHECK(f.Err(403, "PUT", "/v1/transit/decrypt/k",
              {{"batch_input", json::array{json::object{{"ciphertext", ct}}}}}) ==
        Errors({"permission denied"}));
}

TEST_CASE(
    "vault door: a Deny names Vault callers by display name and Vault's operations by "
    "their KMS actions",
    "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  f.CreateKey("k");
  f.CreateKey("ec", {{"type", "ecdsa-p256"}});
  f.CreateKey("mac", {{"type", "hmac"}});
  const std::string ct = f.Encrypt("k", "x");
  const std::string seal = f.NewToken({"*"}, {"*"}, false, 0, "seal");
  const std::string other = f.NewToken({"*"}, {"*"}, false, 0, "other");
  const json::value denied = Errors({"permission denied"});
  // The principal "arn:aws:iam::<account>:user/vault-token/<display name>".
  PutPolicy(f, "k", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/vault-token/seal"},
     "Action":["kms:Encrypt","kms:ReEncrypt*","kms:GenerateDataKeyWithoutPlaintext",
               "kms:DescribeKey","kms:ScheduleKeyDeletion"],"Resource":"*"})"));
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/k", {{"plaintext", "YQ=="}}, seal) == denied);
  CHECK(Last(auditor).decision == "deny:explicit");
  f.Data("PUT", "/v1/transit/encrypt/k", {{"plaintext", "YQ=="}}, other);
  CHECK(Last(auditor).decision == "allow:token-scope");
  // rewrap is kms:ReEncryptFrom and kms:ReEncryptTo; datakey/wrapped is
  // kms:GenerateDataKeyWithoutPlaintext (datakey/plaintext is kms:GenerateDataKey); keys/<name>
  // reads are kms:DescribeKey; every "manage" request is a key administrator's action.
  CHECK(f.Err(403, "PUT", "/v1/transit/rewrap/k", {{"ciphertext", ct}}, seal) == denied);
  CHECK(f.Err(403, "PUT", "/v1/transit/datakey/wrapped/k", {}, seal) == denied);
  f.Data("PUT", "/v1/transit/datakey/plaintext/k", {}, seal);
  CHECK(f.Err(403, "GET", "/v1/transit/keys/k", {}, seal) == denied);
  CHECK(f.Err(403, "POST", "/v1/transit/keys/k/rotate", {}, seal) == denied);
  CHECK(f.Err(403, "POST", "/v1/transit/keys/k/config", {{"deletion_allowed", true}}, seal) ==
        denied);
  CHECK(f.Err(403, "POST", "/v1/transit/keys/k", {}, seal) == denied);
  CHECK(f.Data("GET", "/v1/transit/keys/k", {}, other).at("latest_version").as_int64() ==
        1);  // nothing rotated
  CHECK(Unb64(f.Data("PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}}, seal).at("plaintext")) ==
        "x");

  // verify is kms:Verify on signing keys and kms:VerifyMac on hmac keys; hmac is kms:GenerateMac;
  // sign kms:Sign; a read of an asymmetric key also kms:GetPublicKey.
  PutPolicy(f, "ec", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":"*","Action":["kms:Verify","kms:GetPublicKey"],"Resource":"*"})"));
  PutPolicy(f, "mac", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":"*","Action":"kms:GenerateMac","Resource":"*"})"));
  const std::string b64 = B64("m");
  const std::string sig(
      f.Data("PUT", "/v1/transit/sign/ec", {{"input", b64}}, other).at("signature").as_string());
  CHECK(f.Err(403, "PUT", "/v1/transit/verify/ec", {{"input", b64}, {"signature", sig}}, other) ==
        denied);
  CHECK(f.Err(403, "GET", "/v1/transit/keys/ec", {}, other) == denied);
  CHECK(f.Err(403, "PUT", "/v1/transit/hmac/mac", {{"input", b64}}, other) == denied);
  CHECK(f.Data("PUT", "/v1/transit/verify/mac", {{"input", b64}, {"hmac", "vault:v1:AAAA"}}, other)
            .at("valid")
            .as_bool() == false);
  PutPolicy(f, "mac", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":"*","Action":"kms:VerifyMac","Resource":"*"})"));
  CHECK(f.Err(403, "PUT", "/v1/transit/verify/mac", {{"input", b64}, {"hmac", "vault:v1:AAAA"}},
              other) == denied);

  // Conditions see the alias the transit key is reached through (kms:RequestAlias), and a Deny
  // of the account root covers every caller of the account, Vault callers included.
  f.CreateKey("aliased");
  PutPolicy(f, "aliased", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Encrypt",
     "Resource":"*",
     "Condition":{"StringEquals":{"kms:RequestAlias":"alias/vault/transit/aliased"}}})"));
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/aliased", {{"plaintext", "YQ=="}}, other) == denied);
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/aliased", {{"plaintext", "YQ=="}}) == denied);
  // Denied upsert targets do not exist yet; a Deny for "manage" on an existing key stops delete.
  PutPolicy(f, "k", PolicyWithDenies(R"(
    {"Effect":"Deny","Principal":"*","Action":"kms:ScheduleKeyDeletion","Resource":"*"})"));
  f.Data("POST", "/v1/transit/keys/free");
  CHECK(f.Err(403, "DELETE", "/v1/transit/keys/k") == denied);
  CHECK(f.Data("GET", "/v1/transit/keys/k").at("name").as_string() == "k");
}

TEST_CASE("vault door: token key patterns are mount-aware", "[unit]") {
  VaultFixture f;
  f.Data("POST", "/v1/transit/keys/app-1");
  f.Data("POST", "/v1/apps/transit/keys/app-1");
  f.Data("POST", "/v1/apps/transit/keys/app-2");
  const json::object body{{"plaintext", "YQ=="}};
  const json::value denied = Errors({"permission denied"});
  // "app-*" names the default mount only: the same name under another mount is another key.
  const std::string plain = f.NewToken({"app-*"}, {"encrypt", "read"});
  f.Data("PUT", "/v1/transit/encrypt/app-1", body, plain);
  CHECK(f.Err(403, "PUT", "/v1/apps/transit/encrypt/app-1", body, plain) == denied);
  CHECK(f.Err(403, "GET", "/v1/apps/transit/keys/app-1", {}, plain) == denied);
  // Listing on a mount shows only what the patterns reach on that mount.
  CHECK(f.Data("LIST", "/v1/transit/keys", {}, plain).at("keys") == json::array{"app-1"});
  CHECK(f.Err(404, "LIST", "/v1/apps/transit/keys", {}, plain) == json::parse(R"({"errors":[]})"));
  // "<mount>/<pattern>" names that mount; "*/<pattern>" every mount.
  const std::string nested = f.NewToken({"apps/transit/app-1"}, {"encrypt", "read"});
  f.Data("PUT", "/v1/apps/transit/encrypt/app-1", body, nested);
  CHECK(f.Err(403, "PUT", "/v1/transit/encrypt/app-1", body, nested) == denied);
  CHECK(f.Err(403, "PUT", "/v1/apps/transit/encrypt/app-2", body, nested) == denied);
  CHECK(f.Data("LIST", "/v1/apps/transit/keys", {}, nested).at("keys") == json::array{"app-1"});
  const std::string everywhere = f.NewToken({"*/app-*"}, {"encrypt"});
  f.Data("PUT", "/v1/transit/encrypt/app-1", body, everywhere);
  f.Data("PUT", "/v1/apps/transit/encrypt/app-2", body, everywhere);
  // lookup-self shows the stored, explicit form.
  CHECK(f.Data("GET", "/v1/auth/token/lookup-self", {}, plain).contains("id"));
  CHECK(f.tokens->Lookup(plain)->key_patterns == std::vector<std::string>{"transit/app-*"});
}

TEST_CASE("vault door: caller-chosen status codes must be able to carry the body", "[unit]") {
  VaultFixture f;
  const json::value vault_400 = json::parse(R"({"errors":[]})");
  for (const char* param :
       {"activecode", "standbycode", "sealedcode", "uninitcode", "performancestandbycode",
        "drsecondarycode", "removedcode", "haunhealthycode"}) {
    for (const char* code :
         {"101", "100", "199", "204", "205", "304", "600", "0", "-200", "1000", "20x", ""}) {
      const std::string target = "/v1/sys/health?" + std::string(param) + "=" + code;
      INFO(target);
      const auto get = f.Raw("GET", target, "", "");
      CHECK(get.status == 400);
      CHECK(json::parse(get.body) == vault_400);
      const auto head = f.Raw("HEAD", target, "", "");
      CHECK(head.status == 400);
      CHECK(head.body.empty());
    }
  }
  for (const char* param : {"standbyok", "perfstandbyok"}) {
    const auto r = f.Raw("GET", "/v1/sys/health?" + std::string(param) + "=maybe", "", "");
    CHECK(r.status == 400);
    CHECK(json::parse(r.body) == vault_400);
  }
  // The edges that carry a body are taken.
  CHECK(f.Raw("GET", "/v1/sys/health?activecode=200", "", "").status == 200);
  CHECK(f.Raw("GET", "/v1/sys/health?activecode=206", "", "").status == 206);
  CHECK(f.Raw("GET", "/v1/sys/health?activecode=599", "", "").status == 599);
  CHECK(f.Raw("GET", "/v1/sys/health?standbyok=true&perfstandbyok=f", "", "").status == 200);
  f.health.sealed = true;
  CHECK(f.Raw("GET", "/v1/sys/health?sealedcode=299", "", "").status == 299);
  f.health.sealed = false;

  // A batch's partial_failure_response_code: Vault's warning and the failure code instead.
  f.CreateKey("k");
  json::object body{{"batch_input", json::array{json::object{{"plaintext", B64("one")}},
                                                json::object{{"plaintext", "%%%"}}}}};
  for (const int code : {101, 100, 199, 204, 205, 304, 600, 0, -1}) {
    INFO(code);
    body["partial_failure_response_code"] = code;
    const auto r = f.Raw("POST", "/v1/transit/encrypt/k", json::serialize(body));
    CHECK(r.status == 400);
    const json::object answer = json::parse(r.body).as_object();
    CHECK(answer.at("warnings") ==
          json::array{"invalid HTTP response code override from partial_failure_response_code, "
                      "reverting to 400"});
    CHECK(answer.at("data").at("batch_results").as_array().size() == 2);
  }
  for (const int code : {200, 207, 299, 422, 599}) {
    INFO(code);
    body["partial_failure_response_code"] = code;
    CHECK(f.Raw("POST", "/v1/transit/encrypt/k", json::serialize(body)).status ==
          static_cast<unsigned>(code));
  }
}

TEST_CASE("vault door: state changes are recorded as intents before they commit", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  int sealed = 0;
  {
    VaultDoorConfig config = f.door->config();
    config.seal = [&sealed] {
      ++sealed;
      return Status();
    };
    f.door = std::make_unique<VaultDoor>(
        config, *f.tokens,
        std::vector<firmware::transit::TransitKeyring*>{f.transit.get(), f.nested.get()});
  }
  f.CreateKey("k");
  const std::string renewable = f.NewToken({"k"}, {"encrypt"}, false, 3'600'000);
  const std::string ct = f.Encrypt("k", "x");

  // Read-only and pure cryptography: one record each, no intent.
  auditor.entries.clear();
  f.Encrypt("k", "x");
  f.Data("PUT", "/v1/transit/decrypt/k", {{"ciphertext", ct}});
  f.Data("GET", "/v1/transit/keys/k");
  f.Data("PUT", "/v1/transit/random");
  f.Data("GET", "/v1/auth/token/lookup-self");
  CHECK(auditor.entries.size() == 5);
  for (const auto& e : auditor.entries) CHECK(e.outcome == "ok");

  // Each state change: the intent (outcome "started", status 0, caller, key and decision filled),
  // then the final record.
  struct Change {
    std::string method, path;
    json::object body;
    std::string token;
  };
  const std::vector<Change> changes = {
      {"POST", "/v1/transit/keys/new", {}, f.admin},
      {"POST", "/v1/transit/keys/k/config", {{"deletion_allowed", true}}, f.admin},
      {"POST", "/v1/transit/keys/k/rotate", {}, f.admin},
      {"PUT", "/v1/transit/encrypt/upserted", {{"plaintext", "YQ=="}}, f.admin},
      {"PUT", "/v1/auth/token/renew-self", {{"increment", 0}}, renewable},
      {"DELETE", "/v1/transit/keys/k", {}, f.admin},
      {"PUT", "/v1/auth/token/revoke-self", {}, renewable},
      {"PUT", "/v1/sys/seal", {}, f.admin},
  };
  for (const auto& c : changes) {
    INFO(c.method << " " << c.path);
    auditor.entries.clear();
    const auto r = f.Raw(c.method, c.path, json::serialize(c.body), c.token);
    CHECK(r.status < 300);
    REQUIRE(auditor.entries.size() == 2);
    const auto& intent = auditor.entries[0];
    CHECK(intent.outcome == "started");
    CHECK(intent.status == 0);
    CHECK_FALSE(intent.credential_id.empty());
    CHECK(intent.principal == "vault-token:test");
    CHECK(intent.decision == (c.token == f.admin ? "allow:administrator" : "allow:token-scope"));
    CHECK(intent.operation == auditor.entries[1].operation);
    CHECK(auditor.entries[1].outcome == "ok");
  }
  CHECK(sealed == 1);
}

TEST_CASE("vault door: nothing changes when the intent record cannot be written", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  int sealed = 0;
  {
    VaultDoorConfig config = f.door->config();
    config.seal = [&sealed] {
      ++sealed;
      return Status();
    };
    f.door = std::make_unique<VaultDoor>(
        config, *f.tokens,
        std::vector<firmware::transit::TransitKeyring*>{f.transit.get(), f.nested.get()});
  }
  f.CreateKey("k");
  f.Data("POST", "/v1/transit/keys/k/config", {{"deletion_allowed", true}});
  const std::string renewable = f.NewToken({"k"}, {"encrypt"}, false, 3'600'000);
  f.service.clock.Advance(600'000);
  auditor.entries.clear();
  const json::value refused = Errors({"internal error: the audit log cannot be written"});
  // The next Record call (the intent) fails; the log is back for the final record.
  auto fail_next = [&] { auditor.fail_at = static_cast<int>(auditor.entries.size()); };

  fail_next();
  CHECK(f.Err(500, "POST", "/v1/transit/keys/new") == refused);
  fail_next();
  CHECK(f.Err(500, "PUT", "/v1/transit/encrypt/upserted", {{"plaintext", "YQ=="}}) == refused);
  fail_next();
  CHECK(f.Err(500, "POST", "/v1/transit/keys/k/rotate") == refused);
  fail_next();
  CHECK(f.Err(500, "POST", "/v1/transit/keys/k/config",
              {{"min_decryption_version", 1}, {"deletion_allowed", false}}) == refused);
  fail_next();
  CHECK(f.Err(500, "DELETE", "/v1/transit/keys/k") == refused);
  fail_next();
  CHECK(f.Err(500, "PUT", "/v1/auth/token/renew-self", {{"increment", 0}}, renewable) == refused);
  fail_next();
  CHECK(f.Err(500, "PUT", "/v1/auth/token/revoke-self", {}, renewable) == refused);
  fail_next();
  CHECK(f.Err(500, "PUT", "/v1/sys/seal") == refused);
  auditor.fail_at = -1;

  // Nothing happened: no key made, k not rotated, reconfigured or deleted, the token neither
  // renewed nor revoked, the appliance not sealed.
  CHECK(f.Data("LIST", "/v1/transit/keys").at("keys") == json::array{"k"});
  const auto k = f.Data("GET", "/v1/transit/keys/k");
  CHECK(k.at("latest_version").as_int64() == 1);
  CHECK(k.at("deletion_allowed").as_bool());
  const auto self = f.Data("GET", "/v1/auth/token/lookup-self", {}, renewable);
  CHECK(self.at("ttl").as_int64() == 3000);
  CHECK(sealed == 0);
  // Each refused request left its failed intent and its final 500 record, nothing else.
  std::size_t started = 0;
  for (const auto& e : auditor.entries) {
    if (e.outcome == "started") ++started;
  }
  CHECK(started == 8);

  // A change whose final record fails: committed, its intent on record, the answer a 500.
  auditor.entries.clear();
  auditor.fail_at = 1;
  CHECK(f.Err(500, "POST", "/v1/transit/keys/late") == refused);
  REQUIRE(auditor.entries.size() == 2);
  CHECK(auditor.entries[0].outcome == "started");
  CHECK(auditor.entries[0].decision == "allow:administrator");
  CHECK(auditor.entries[1].outcome == "ok");  // what was being recorded when the write failed
  CHECK(f.transit->Locate("late").has_value());
}

TEST_CASE("vault door: encrypt's upsert is decided before the work and recorded", "[unit]") {
  VaultFixture f;
  RecordingAuditor auditor;
  AttachAuditor(f, auditor);
  const json::object body{{"plaintext", "YQ=="}};
  // encrypt without manage: the missing key is not created (Vault's 400), and the record says the
  // create the request needed was denied by the scope.
  const std::string encrypt_only = f.NewToken({"svc-*"}, {"encrypt"});
  auditor.entries.clear();
  CHECK(f.ErrMsg(400, "PUT", "/v1/transit/encrypt/svc-1", body, encrypt_only) ==
        "encryption key not found");
  REQUIRE(auditor.entries.size() == 1);  // no intent: nothing will change
  CHECK(auditor.entries[0].decision == "deny:token-scope");
  CHECK_FALSE(f.transit->Locate("svc-1").has_value());
  // With manage: intent, creation, final record with the new key.
  const std::string manager = f.NewToken({"svc-*"}, {"encrypt", "manage"});
  auditor.entries.clear();
  f.Data("PUT", "/v1/transit/encrypt/svc-1", body, manager);
  REQUIRE(auditor.entries.size() == 2);
  CHECK(auditor.entries[0].outcome == "started");
  CHECK(auditor.entries[1].decision == "allow:token-scope");
  CHECK(auditor.entries[1].key_arn == ArnOf(f, "svc-1"));
  // The key exists now: the encrypt-only token encrypts with it, no create involved.
  auditor.entries.clear();
  f.Data("PUT", "/v1/transit/encrypt/svc-1", body, encrypt_only);
  REQUIRE(auditor.entries.size() == 1);
  CHECK(auditor.entries[0].decision == "allow:token-scope");
}

// ---- a request acts on the key it was decided on ---------------------------------------------

// A door whose key-policy checks read the store through `hooked`: a test runs its own code inside
// the decision, after the name was resolved to its key-service key and before the endpoint acts.
struct RebindFixture {
  VaultFixture f;
  kms::testing::HookedStore hooked{*f.service.store};
  std::unique_ptr<firmware::authz::AccessControl> access;
  RecordingAuditor auditor;

  RebindFixture() {
    // Uncached, so every decision on a key reads its policy (through `hooked`).
    firmware::authz::AccessControlConfig config;
    config.cache_ttl_ms = 0;
    access = std::make_unique<firmware::authz::AccessControl>(
        f.service.Hsm(), hooked, *f.principals, f.service.clock, config);
    VaultDoorConfig door_config = f.door->config();
    door_config.access = access.get();
    door_config.observers.audit = &auditor;
    f.door = std::make_unique<VaultDoor>(
        door_config, *f.tokens,
        std::vector<firmware::transit::TransitKeyring*>{f.transit.get(), f.nested.get()});
  }

  // What a caller with "manage" can do between a decision and its action: delete `name` and create
  // it again, which binds it to a new key-service key. The new key allows deletion, so a DELETE
  // that reached it would succeed. Returns the new key's id.
  std::string Rebind(const std::string& name, firmware::transit::TransitKeyType type) {
    REQUIRE(f.transit->DeleteKey(name).ok());
    firmware::transit::CreateTransitKeyOptions options;
    options.type = type;
    auto made = f.transit->CreateKey(name, options);
    REQUIRE(made.has_value());
    firmware::transit::TransitKeyConfigUpdate update;
    update.deletion_allowed = true;
    REQUIRE(f.transit->UpdateConfig(name, update).has_value());
    return made->key_id;
  }
};

std::string RebindError(std::string_view name) {
  return "the key name \"" + std::string(name) +
         "\" was bound to another key while this request ran; retry the request";
}

TEST_CASE("vault door: a request acts on the key it was decided on, never on a name re-bound since",
          "[unit]") {
  RebindFixture r;
  VaultFixture& f = r.f;
  using firmware::transit::TransitKeyType;
  struct Case {
    std::string method, path, name;
    TransitKeyType type;
    // The body, given the name's key before the race (its ciphertext or signature).
    std::function<json::object(const std::string& name)> body;
  };
  const std::string b64 = B64("race-canary");
  auto none = [](const std::string&) { return json::object{}; };
  auto input = [&](const std::string&) { return json::object{{"input", b64}}; };
  auto ciphertext = [&](const std::string& n) {
    return json::object{{"ciphertext", f.Encrypt(n, "race-canary")}};
  };
  auto signature = [&](const std::string& n) {
    const auto sig = f.Data("PUT", "/v1/transit/sign/" + n, {{"input", b64}}).at("signature");
    return json::object{{"input", b64}, {"signature", sig}};
  };
  const std::vector<Case> cases = {
      {"GET", "keys/", "read", TransitKeyType::kAes256Gcm96, none},
      {"POST", "keys/", "create", TransitKeyType::kAes256Gcm96, none},
      {"DELETE", "keys/", "delete", TransitKeyType::kAes256Gcm96, none},
      {"POST", "keys/{}/config", "config", TransitKeyType::kAes256Gcm96,
       [](const std::string&) { return json::object{{"min_encryption_version", 1}}; }},
      {"POST", "keys/{}/rotate", "rotate", TransitKeyType::kAes256Gcm96, none},
      {"PUT", "encrypt/", "encrypt", TransitKeyType::kAes256Gcm96,
       [&](const std::string&) { return json::object{{"plaintext", b64}}; }},
      {"PUT", "decrypt/", "decrypt", TransitKeyType::kAes256Gcm96, ciphertext},
      {"PUT", "rewrap/", "rewrap", TransitKeyType::kAes256Gcm96, ciphertext},
      {"PUT", "datakey/plaintext/", "datakey", TransitKeyType::kAes256Gcm96, none},
      {"PUT", "hmac/", "hmac", TransitKeyType::kHmac, input},
      {"PUT", "sign/", "sign", TransitKeyType::kEcdsaP256, input},
      {"PUT", "verify/", "verify", TransitKeyType::kEcdsaP256, signature},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path << " " << c.name);
    f.CreateKey(c.name, {{"type", std::string(firmware::transit::TransitKeyTypeName(c.type))},
                         {"deletion_allowed", true}});
    f.Data("POST", "/v1/transit/keys/" + c.name + "/config", {{"deletion_allowed", true}});
    const std::string decided_arn = ArnOf(f, c.name);
    const json::object body = c.body(c.name);
    std::string rebound;
    r.hooked.ArmOnce([&] { rebound = r.Rebind(c.name, c.type); });
    std::string path = c.path;
    if (auto at = path.find("{}"); at != std::string::npos) {
      path.replace(at, 2, c.name);
    } else {
      path += c.name;
    }
    CHECK(f.Err(400, c.method, "/v1/transit/" + path, body) == Errors({RebindError(c.name)}));
    REQUIRE_FALSE(rebound.empty());  // the hook ran inside the decision
    // The record names the key that was decided, and the new key is as it was made.
    CHECK(Last(r.auditor).key_arn == decided_arn);
    auto now = f.transit->ReadKey(c.name);
    REQUIRE(now.has_value());
    CHECK(now->key_id == rebound);
    CHECK(now->latest_version == 1);
    CHECK(now->min_encryption_version == 0);
    CHECK(now->deletion_allowed);
  }

  // Decided on a name bound to no key (a create, encrypt's upsert) while another request creates
  // it before the change: the request does not take over the other's key.
  for (const auto& [path, body] : std::vector<std::pair<std::string, json::object>>{
           {"keys/fresh-1", {}}, {"encrypt/fresh-2", {{"plaintext", b64}}}}) {
    INFO(path);
    const std::string name = path.substr(path.find('/') + 1);
    std::string created;
    r.auditor.on_intent = [&] { created = f.transit->CreateKey(name, {})->key_id; };
    CHECK(f.Err(400, "POST", "/v1/transit/" + path, body) == Errors({RebindError(name)}));
    REQUIRE_FALSE(created.empty());
    CHECK(f.transit->Locate(name)->key_id == created);
    CHECK(f.transit->ReadKey(name)->latest_version == 1);
  }
}

}  // namespace
}  // namespace kms::api::vault
