// ServiceFixture: a KeyService over an HSM and a SQLite store in a fresh temporary folder, with a manual
// clock. The HSM is the fake (unit suite) or, when compiled with KMS_TEST_HSM_SOFTHSM, a real SoftHSM2
// dev token opened through the PKCS#11 HAL (softhsm suite): the same test source runs against both.
// `Restart()` closes the service and the store and opens both again on the same database, with the HSM
// reopened (fake: a sibling with the same domain key; SoftHSM: the token closed and opened again), so no
// loaded key survives: what a restarted appliance sees.
#ifndef KMS_TESTS_FIRMWARE_KEY_SERVICE_FIXTURE_H_
#define KMS_TESTS_FIRMWARE_KEY_SERVICE_FIXTURE_H_

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "tests/support/fake_hsm.h"
#if defined(KMS_TEST_HSM_SOFTHSM)
#include "tests/support/softhsm_fixture.h"
#endif

namespace kms::firmware::testing {

// 2026-01-01T00:00:00Z
inline constexpr std::int64_t kStartMs = 1'767'225'600'000;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kms-fw-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct ServiceFixture {
#if defined(KMS_TEST_HSM_SOFTHSM)
  explicit ServiceFixture(KeyServiceConfig config = {}) : config_(std::move(config)), clock(kStartMs) {
    auto made = kms::testing::SoftHsmFixture::Create();
    if (!made) FAIL(made.error().ToString());
    softhsm = std::move(*made);
    Open();
  }
  hal::Hsm& Hsm() { return softhsm->hsm(); }
#else
  explicit ServiceFixture(KeyServiceConfig config = {}, kms::testing::FakeHsmOptions hsm_options = {})
      : config_(std::move(config)), clock(kStartMs) {
    hsm = kms::testing::NewFakeHsm(std::move(hsm_options));
    Open();
  }
  hal::Hsm& Hsm() { return *hsm; }
#endif
  ~ServiceFixture() {
    service.reset();
    store.reset();
  }

  void Open() {
    store::SqliteStoreOptions options;
    options.path = (dir.path() / "kms.db").string();
    auto opened = store::OpenSqliteStore(options);
    REQUIRE(opened.has_value());
    store = std::move(*opened);
    auto s = KeyService::Open(Hsm(), *store, clock, config_);
    if (!s) FAIL(s.error().ToString());
    service = std::move(*s);
  }

  void Restart() {
    service.reset();
    store.reset();
#if defined(KMS_TEST_HSM_SOFTHSM)
    softhsm->CloseHsm();
    Status reopened = softhsm->OpenHsm();
    if (!reopened.ok()) FAIL(reopened.ToString());
#else
    hsm = hsm->NewSibling();
#endif
    Open();
  }

  KeyService& svc() { return *service; }

  // A new key; fails the test on error.
  KeyMetadata Create(KeySpec spec = KeySpec::kSymmetricDefault,
                     std::optional<KeyUsage> usage = std::nullopt) {
    CreateKeyRequest r;
    r.key_spec = spec;
    r.key_usage = usage;
    if (!usage && spec != KeySpec::kSymmetricDefault) {
      r.key_usage = IsHmacSpec(spec) ? KeyUsage::kGenerateVerifyMac : KeyUsage::kSignVerify;
    }
    auto out = service->CreateKey(r);
    if (!out) FAIL(out.error().ToString());
    return out->key_metadata;
  }

  KeyServiceConfig config_;
  TempDir dir;
  ManualClock clock;
#if defined(KMS_TEST_HSM_SOFTHSM)
  std::unique_ptr<kms::testing::SoftHsmFixture> softhsm;
#else
  std::unique_ptr<kms::testing::FakeHsm> hsm;
#endif
  std::unique_ptr<store::MetadataStore> store;
  std::unique_ptr<KeyService> service;
};

inline SecretBytes Secret(std::string_view s) { return SecretBytes::CopyFrom(AsBytes(s)); }

}  // namespace kms::firmware::testing

#endif  // KMS_TESTS_FIRMWARE_KEY_SERVICE_FIXTURE_H_
