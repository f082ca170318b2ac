// The Vault door's answers are JSON, so valid UTF-8, whatever bytes the request carried: error
// messages that echo the request (an unknown route's path) replace what is not printable UTF-8
// with '?' (found by the vault_door fuzz target, tests/fuzz/corpus/vault_door/regress-*).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "api/vault/vault_door.h"
#include "base/bytes.h"
#include "firmware/transit_keyring.h"
#include "firmware/vault_tokens.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::api::vault {
namespace {

TEST_CASE("vault door: an unknown path that is not UTF-8 is echoed as valid UTF-8", "[unit]") {
  firmware::testing::ServiceFixture service;
  firmware::transit::TransitKeyring transit(service.svc(), *service.store, service.clock, "transit");
  firmware::VaultTokenRegistry tokens(service.Hsm(), *service.store, service.clock);
  firmware::VaultTokenSpec spec;
  spec.display_name = "test";
  spec.key_patterns = {"*"};
  spec.operations = {"*"};
  spec.administrator = true;
  auto token = tokens.Create(spec);
  REQUIRE(token.has_value());
  VaultDoorConfig config;
  config.clock = &service.clock;
  VaultDoor door(config, tokens, {&transit});

  http::HttpRequest req;
  req.method = "GET";
  req.target = "/v1/tra\xeesit/keys/app\xff\x01key";
  req.headers = {{"Host", "127.0.0.1:8200"},
                 {"X-Vault-Token", ToString(token->token.ExposeSecret())}};
  const auto r = door.Handle(req);
  CHECK(r.status == 404);
  CHECK(r.body ==
        R"({"errors":["no handler for route \"tra?sit/keys/app??key\". route entry not found."]})");
  boost::system::error_code ec;
  (void)boost::json::parse(r.body, ec);
  CHECK(!ec);
}

}  // namespace
}  // namespace kms::api::vault
