// The unsealed appliance (firmware/app/appliance.h) on a real SoftHSM2 token and SQLite store: it
// opens and serves /health; a self-test that fails (a device error injected at one PKCS#11 call
// through the FaultInjector) stops the boot with the test's name, before anything is served; an
// older store is refused before the key service reads it.
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "firmware/app/appliance.h"
#include "firmware/store/sqlite_store.h"
#include "hal/pkcs11_hsm_functions.h"
#include "tests/support/softhsm_fixture.h"

namespace kms::app {
namespace {

namespace fs = std::filesystem;

struct Rig {
  std::unique_ptr<testing::SoftHsmFixture> token;
  fs::path dir;
  std::unique_ptr<firmware::store::MetadataStore> store;
  ApplianceConfig config;
  metrics::MetricsRegistry metrics;
  std::FILE* log_file = std::tmpfile();
  log::Logger logs{log_file, log::Level::kDebug};

  Rig() {
    testing::SoftHsmFixtureOptions options;
    options.inject_faults = true;
    options.open_hsm = false;
    auto made = testing::SoftHsmFixture::Create(options);
    REQUIRE(made.has_value());
    token = std::move(*made);
    std::string pattern = (fs::temp_directory_path() / "kms-appliance-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    firmware::store::SqliteStoreOptions store_options;
    store_options.path = (dir / "kms.db").string();
    auto opened = firmware::store::OpenSqliteStore(store_options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
  }
  ~Rig() {
    store.reset();
    fs::remove_all(dir);
    std::fclose(log_file);
  }
  ApplianceOptions Options() {
    ApplianceOptions o;
    o.config = &config;
    o.mode = "production";
    o.hsm = token->Config();
    o.store = store.get();
    o.audit_dir = (dir / "audit").string();
    o.metrics = &metrics;
    o.logs = &logs;
    testing::SoftHsmFixture* t = token.get();
    o.open_hsm = [t](hal::Pkcs11HsmConfig c) {
      return hal::OpenPkcs11Hsm(std::move(c), t->functions());
    };
    return o;
  }
};

api::http::HttpRequest Get(std::string target) {
  api::http::HttpRequest r;
  r.method = "GET";
  r.target = std::move(target);
  return r;
}

TEST_CASE("appliance: opens on a real token and serves health", "[softhsm]") {
  Rig rig;
  auto appliance = Appliance::Open(rig.Options());
  REQUIRE(appliance.has_value());
  CHECK((*appliance)->router()(Get("/health")).status == 200);
  CHECK((*appliance)->router()(Get("/livez")).status == 200);
  CHECK((*appliance)->router()(Get("/metrics")).body.find("kms_hsm_calls_total") !=
        std::string::npos);
}

TEST_CASE("appliance: probes are outside max_in_flight and /livez runs on the network thread",
          "[softhsm]") {
  Rig rig;
  auto appliance = Appliance::Open(rig.Options());
  REQUIRE(appliance.has_value());
  const api::http::Router& router = (*appliance)->router();
  using api::http::Lane;
  CHECK(router.LaneOf(Get("/livez")) == Lane::kInline);
  CHECK(router.LaneOf(Get("/readyz")) == Lane::kProbe);
  CHECK(router.LaneOf(Get("/health")) == Lane::kProbe);
  CHECK(router.LaneOf(Get("/v1/sys/health")) == Lane::kProbe);
  CHECK(router.LaneOf(Get("/v1/sys/health?standbyok=true")) == Lane::kProbe);
  CHECK(router.LaneOf(Get("/v1/transit/encrypt/k")) == Lane::kWorker);
  CHECK(router.LaneOf(Get("/")) == Lane::kWorker);
  CHECK(router.LaneOf(Get("/metrics")) == Lane::kWorker);
  // The exact route of sys/health is still the Vault door's.
  const auto health = router(Get("/v1/sys/health"));
  CHECK(health.status == 200);
  CHECK(boost::json::parse(health.body).at("sealed") == false);
}

TEST_CASE("appliance: server faults speak the format of the door the target names", "[softhsm]") {
  using api::http::ServerFault;
  const auto vault = DoorFaultResponse(ServerFault::kOverloaded, "x", "/v1/transit/encrypt/k");
  CHECK(vault.status == 503);
  CHECK(boost::json::parse(vault.body) ==
        boost::json::parse(R"({"errors":["the appliance is overloaded; retry the request"]})"));
  const auto too_large = DoorFaultResponse(ServerFault::kBodyTooLarge, "x", "/v1/sys/unseal");
  CHECK(too_large.status == 413);
  CHECK(boost::json::parse(too_large.body) ==
        boost::json::parse(R"({"errors":["http: request body too large"]})"));
  for (const std::string target : {"/", "", "/v1", "/health", "/x/v1/"}) {
    INFO(target);
    const auto aws = DoorFaultResponse(ServerFault::kOverloaded, "x", target);
    CHECK(aws.status == 400);
    CHECK(boost::json::parse(aws.body).at("__type") == "ThrottlingException");
  }
}

TEST_CASE("appliance: a failing self-test stops the boot with its name", "[softhsm]") {
  for (auto [function, test] :
       std::vector<std::pair<std::string, std::string>>{{"C_Decrypt", "aes-256-gcm-kat"},
                                                        {"C_WrapKey", "key-wrap"},
                                                        {"C_Verify", "ecdsa-p256-verify-kat"},
                                                        {"C_GenerateRandom", "rng"}}) {
    Rig rig;
    auto epoch = [&rig] {
      auto txn = rig.store->Begin(firmware::store::TransactionMode::kReadOnly);
      REQUIRE(txn.has_value());
      return (*txn)->Epoch().value();
    };
    const std::uint64_t before = epoch();
    rig.token->faults()->FailAlways(CKR_DEVICE_ERROR, function);
    auto appliance = Appliance::Open(rig.Options());
    INFO(function);
    REQUIRE_FALSE(appliance.has_value());
    CHECK(appliance.error().message().rfind("self-tests: self-test " + test + " failed: ", 0) == 0);
    // Nothing past the self-tests ran: the store was not touched.
    CHECK(epoch() == before);
  }
}

}  // namespace
}  // namespace kms::app
