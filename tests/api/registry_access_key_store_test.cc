// RegistryAccessKeyStore: the AWS door's access-key seam over the firmware's AccessKeyRegistry
// (fake HSM, SQLite store in a temporary folder): principals become IAM user ARNs; unknown and
// inactive keys are NotFound; a sealed secret that does not open is a server failure, not "unknown
// key".
#include "api/aws/registry_access_key_store.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "firmware/access_keys.h"
#include "firmware/clock.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"

namespace kms::api::aws {
namespace {

TEST_CASE("registry access key store: lookups through the registry", "[unit][api]") {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kms-rak-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  const std::filesystem::path dir = tmpl;
  {
    auto hsm = kms::testing::NewFakeHsm();
    firmware::store::SqliteStoreOptions options;
    options.path = (dir / "kms.db").string();
    auto store = firmware::store::OpenSqliteStore(options);
    REQUIRE(store.has_value());
    firmware::ManualClock clock(1'767'225'600'000);
    firmware::AccessKeyRegistry registry(*hsm, **store, clock);
    RegistryAccessKeyStore keys(registry, "111122223333");

    auto made = registry.Create("alice", false);
    REQUIRE(made.has_value());
    auto found = keys.Lookup(made->access_key_id);
    REQUIRE(found.has_value());
    CHECK(found->secret == made->secret);
    CHECK(found->principal == "arn:aws:iam::111122223333:user/alice");

    auto unknown = keys.Lookup("AKMSAAAAAAAAAAAAAAAA");
    REQUIRE_FALSE(unknown.has_value());
    CHECK(unknown.error().code() == StatusCode::kNotFound);

    REQUIRE(registry.SetStatus(made->access_key_id, false).ok());
    auto inactive = keys.Lookup(made->access_key_id);
    REQUIRE_FALSE(inactive.has_value());
    CHECK(inactive.error() == unknown.error());  // indistinguishable, message included

    REQUIRE(registry.SetStatus(made->access_key_id, true).ok());
    auto txn = (*store)->Begin();
    REQUIRE(txn.has_value());
    auto record = (*txn)->GetAccessKey(made->access_key_id);
    REQUIRE(record.has_value());
    std::string tag = record->sealed_tag();
    tag[0] = static_cast<char>(tag[0] ^ 1);
    record->set_sealed_tag(tag);
    REQUIRE((*txn)->UpdateAccessKey(*record).ok());
    REQUIRE((*txn)->Commit().ok());
    auto broken = keys.Lookup(made->access_key_id);
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error().code() == StatusCode::kDataLoss);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace kms::api::aws
