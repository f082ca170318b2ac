// What the parser fuzz targets that reach the key service share: a KeyService on the fake HSM and
// a SQLite store in a folder of its own.
//
// FuzzKeyService aborts when the service cannot be opened: a fuzz target without its service has
// nothing to run. It is made once per process and never destroyed (libFuzzer exits without
// unwinding); its folder is removed only when a replay test's process ends normally.
//
// Thread-safety: used by one call of LLVMFuzzerTestOneInput at a time.
#ifndef KMS_TESTS_FUZZ_PARSERS_KEY_SERVICE_FIXTURE_H_
#define KMS_TESTS_FUZZ_PARSERS_KEY_SERVICE_FIXTURE_H_

#include <cstdlib>
#include <memory>
#include <utility>

#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "tests/fuzz/parsers/fuzz_input.h"
#include "tests/support/fake_hsm.h"

namespace kms::fuzz {

struct FuzzKeyService {
  explicit FuzzKeyService(const char* folder_prefix) : dir(folder_prefix) {
    firmware::store::SqliteStoreOptions options;
    options.path = (dir.path() / "kms.db").string();
    auto opened = firmware::store::OpenSqliteStore(options);
    if (!opened) std::abort();
    store = std::move(*opened);
    auto made = firmware::KeyService::Open(*hsm, *store, clock);
    if (!made) std::abort();
    service = std::move(*made);
  }

  ProcessTempDir dir;
  std::unique_ptr<testing::FakeHsm> hsm = testing::NewFakeHsm();
  firmware::SystemClock clock;
  std::unique_ptr<firmware::store::MetadataStore> store;
  std::unique_ptr<firmware::KeyService> service;
};

}  // namespace kms::fuzz

#endif  // KMS_TESTS_FUZZ_PARSERS_KEY_SERVICE_FIXTURE_H_
