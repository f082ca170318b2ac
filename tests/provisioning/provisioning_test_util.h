// Helpers the provisioning suites share: unwrapping results, the suites' labels, files, a
// temporary folder, and a SoftHSM2 configuration of the test's own (SOFTHSM2_CONF is
// process-global: one per test case, which CTest runs in its own process).
#ifndef KMS_TESTS_PROVISIONING_PROVISIONING_TEST_UTIL_H_
#define KMS_TESTS_PROVISIONING_PROVISIONING_TEST_UTIL_H_

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/status.h"
#include "provisioning/ceremony.h"
#include "tests/hal/softhsm_test_util.h"

namespace kms::provisioning::test {

namespace fs = std::filesystem;

using kms::testing::Must;  // with Status printed in Catch2 messages (tests/hal/softhsm_test_util.h)
using kms::testing::MustOk;

// The token and domain-key labels of the suites' production configurations.
inline constexpr char kLabel[] = "kms-prod";
inline constexpr char kDomainKeyLabel[] = "kms-domain-key";

inline std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

inline fs::path MakeTempDir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// Writes <dir>/softhsm2.conf for the token directory `tokens` (made if missing), in the format
// provisioning/dev_token.cc writes, and points SOFTHSM2_CONF at it (read at the module's next
// C_Initialize).
inline void UseSoftHsmTokenDir(const fs::path& dir, const fs::path& tokens) {
  fs::create_directories(tokens);
  WriteFile(dir / "softhsm2.conf", "directories.tokendir = " + tokens.string() +
                                       "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                       "slots.removable = false\nlibrary.reset_on_fork = true\n");
  REQUIRE(::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1) == 0);
}

inline CeremonyOptions FiveOfThree() {
  CeremonyOptions options;
  options.shares = 5;
  options.threshold = 3;
  return options;
}

}  // namespace kms::provisioning::test

#endif  // KMS_TESTS_PROVISIONING_PROVISIONING_TEST_UTIL_H_
