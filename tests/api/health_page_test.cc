// /health, /readyz and /livez over the fake HSM: every state a load balancer can see, with its
// exact status code and body, and a failing HSM whose status text stays off the page.
#include "api/health/health_page.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "tests/support/fake_hsm.h"

namespace kms::api::health {
namespace {

namespace json = boost::json;

http::HttpRequest Get(std::string target, std::string method = "GET") {
  http::HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

TEST_CASE("health: serving, sealed, uninitialized and HSM degraded, with Vault's codes", "[unit]") {
  auto hsm = testing::NewFakeHsm();
  ApplianceState state{true, false, "dev", "0.7.0", {}};

  auto r = HealthPage(*hsm, state, Get("/health"));
  CHECK(r.status == 200);
  CHECK(json::parse(r.body) == json::parse(R"({"initialized":true,"sealed":false,"standby":false,)"
                                           R"("hsm":"ok","audit":"not checked","mode":"dev",)"
                                           R"("version":"0.7.0"})"));
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).body == "ok\n");

  hsm->InjectFailure(UnavailableError("slot 7 at /dev/secret-canary is gone"), 0, 2);
  r = HealthPage(*hsm, state, Get("/health"));
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("hsm") == "degraded");
  CHECK(r.body.find("canary") == std::string::npos);
  auto ready = ReadinessPage(*hsm, state, Get("/readyz"));
  CHECK(ready.status == 503);
  CHECK(ready.body == "hsm degraded\n");
  // The failure was injected for two calls: the HSM is healthy again on the next.
  CHECK(HealthPage(*hsm, state, Get("/health")).status == 200);

  state.sealed = true;
  r = HealthPage(*hsm, state, Get("/health"));
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("sealed") == true);
  CHECK(json::parse(r.body).at("hsm") == "not checked");
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).body == "sealed\n");

  state.initialized = false;
  CHECK(HealthPage(*hsm, state, Get("/health")).status == 501);
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).status == 503);
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).body == "not initialized\n");
  // Liveness knows nothing of seal or HSM: the process answers.
  CHECK(LivenessPage(Get("/livez")).status == 200);
  CHECK(LivenessPage(Get("/livez")).body == "ok\n");
}

TEST_CASE("health: an audit log that cannot be written makes the appliance unready", "[unit]") {
  auto hsm = testing::NewFakeHsm();
  bool audit_ok = true;
  ApplianceState state{true, false, "dev", "0.7.0", {}};
  state.audit_healthy = [&audit_ok] { return audit_ok; };
  auto r = HealthPage(*hsm, state, Get("/health"));
  CHECK(r.status == 200);
  CHECK(json::parse(r.body).at("audit") == "ok");
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).body == "ok\n");

  audit_ok = false;
  r = HealthPage(*hsm, state, Get("/health"));
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("audit") == "failing");
  CHECK(json::parse(r.body).at("hsm") == "ok");
  const auto ready = ReadinessPage(*hsm, state, Get("/readyz"));
  CHECK(ready.status == 503);
  CHECK(ready.body == "audit log failing\n");

  // An HSM that does not answer is named first: it is the more basic fault.
  hsm->InjectFailure(UnavailableError("gone"), 0, 1);
  CHECK(ReadinessPage(*hsm, state, Get("/readyz")).body == "hsm degraded\n");
  audit_ok = true;
  CHECK(HealthPage(*hsm, state, Get("/health")).status == 200);
}

TEST_CASE("health: a sealed appliance without an HSM session reads as sealed", "[unit]") {
  const ApplianceState sealed{true, true, "production", "0.7.0", {}};
  auto r = HealthPage(nullptr, sealed, Get("/health"));
  CHECK(r.status == 503);
  CHECK(json::parse(r.body) ==
        json::parse(R"({"initialized":true,"sealed":true,"standby":false,"hsm":"not checked",)"
                    R"("audit":"not checked","mode":"production","version":"0.7.0"})"));
  CHECK(ReadinessPage(nullptr, sealed, Get("/readyz")).body == "sealed\n");
  // No session means nothing can be served, whatever the state says.
  const ApplianceState claims_unsealed{true, false, "production", "0.7.0", {}};
  CHECK(HealthPage(nullptr, claims_unsealed, Get("/health")).status == 503);
}

TEST_CASE("health: HEAD has no body, other methods are 405 with Allow", "[unit]") {
  auto hsm = testing::NewFakeHsm();
  const ApplianceState state;
  auto head = HealthPage(*hsm, state, Get("/health", "HEAD"));
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  for (const auto& r :
       {HealthPage(*hsm, state, Get("/health", "POST")),
        ReadinessPage(*hsm, state, Get("/readyz", "PUT")), LivenessPage(Get("/livez", "DELETE"))}) {
    CHECK(r.status == 405);
    bool allow = false;
    for (const auto& [n, v] : r.headers) allow |= n == "Allow" && v == "GET, HEAD";
    CHECK(allow);
  }
  CHECK(HealthPage(*hsm, state, Get("/health", "POST")).body == R"({"errors":["GET /health"]})");
}

}  // namespace
}  // namespace kms::api::health
