// hal::MeteredHsm's own counts (the contract suite, compiled over it in this binary, shows it
// changes nothing): each call is counted once under its operation with its outcome, timed, and
// the in-flight gauge returns to zero.
#include "hal/metered_hsm.h"

#include <catch2/catch.hpp>
#include <string>

#include "base/metrics.h"
#include "tests/support/fake_hsm.h"

namespace kms::hal {
namespace {

std::uint64_t Calls(metrics::MetricsRegistry& registry, std::string_view operation,
                    std::string_view outcome) {
  return registry.AddCounter("kms_hsm_calls_total", "", {"operation", "outcome"})
      .With({operation, outcome})
      .value();
}

TEST_CASE("metered hsm: calls are counted by operation and outcome, and pass through", "[unit]") {
  auto fake = testing::NewFakeHsm();
  metrics::MetricsRegistry registry;
  MeteredHsm hsm(*fake, registry);

  auto key = hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
  REQUIRE(key.has_value());
  auto sealed = hsm.EncryptAesGcm(*key, AsBytes("canary-plaintext"), AsBytes("aad"));
  REQUIRE(sealed.has_value());
  auto opened =
      hsm.DecryptAesGcm(*key, sealed->iv, sealed->ciphertext, sealed->tag, AsBytes("aad"));
  REQUIRE(opened.has_value());
  CHECK(ToString(opened->ExposeSecret()) == "canary-plaintext");

  // A failed tag check keeps its status (and reason) and is counted as INVALID_ARGUMENT.
  auto refused =
      hsm.DecryptAesGcm(*key, sealed->iv, sealed->ciphertext, sealed->tag, AsBytes("other aad"));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().reason() == Reason::kInvalidCiphertext);
  CHECK(hsm.CheckHealth().ok());

  CHECK(Calls(registry, "GenerateKey", "ok") == 1);
  CHECK(Calls(registry, "EncryptAesGcm", "ok") == 1);
  CHECK(Calls(registry, "DecryptAesGcm", "ok") == 1);
  CHECK(Calls(registry, "DecryptAesGcm", "INVALID_ARGUMENT") == 1);
  CHECK(Calls(registry, "CheckHealth", "ok") == 1);
  CHECK(Calls(registry, "SignDigest", "ok") == 0);

  const std::string text = registry.Render();
  CHECK(text.find("kms_hsm_call_duration_seconds_count{operation=\"DecryptAesGcm\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("kms_hsm_calls_in_flight 0\n") != std::string::npos);
  CHECK(text.find("canary") == std::string::npos);
}

TEST_CASE("metered hsm: token data reads and writes are counted, their labels are not", "[unit]") {
  auto fake = testing::NewFakeHsm();
  metrics::MetricsRegistry registry;
  MeteredHsm hsm(*fake, registry);

  auto absent = hsm.ReadTokenData("canary-label");
  REQUIRE_FALSE(absent.has_value());
  CHECK(absent.error().code() == StatusCode::kNotFound);
  REQUIRE(hsm.WriteTokenData("canary-label", AsBytes("canary-value")).ok());
  auto read = hsm.ReadTokenData("canary-label");
  REQUIRE(read.has_value());
  CHECK(ToString(*read) == "canary-value");
  CHECK(hsm.WriteTokenData("canary-label", Bytes()).code() == StatusCode::kInvalidArgument);
  // The fake's injected device fault comes through as it is, and is counted under its code.
  fake->InjectFailure(UnavailableError("device gone"));
  CHECK(hsm.WriteTokenData("canary-label", AsBytes("lost")).code() == StatusCode::kUnavailable);

  CHECK(Calls(registry, "ReadTokenData", "NOT_FOUND") == 1);
  CHECK(Calls(registry, "ReadTokenData", "ok") == 1);
  CHECK(Calls(registry, "WriteTokenData", "ok") == 1);
  CHECK(Calls(registry, "WriteTokenData", "INVALID_ARGUMENT") == 1);
  CHECK(Calls(registry, "WriteTokenData", "UNAVAILABLE") == 1);

  const std::string text = registry.Render();
  CHECK(text.find("kms_hsm_call_duration_seconds_count{operation=\"ReadTokenData\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("kms_hsm_call_duration_seconds_count{operation=\"WriteTokenData\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("kms_hsm_calls_in_flight 0\n") != std::string::npos);
  CHECK(text.find("canary") == std::string::npos);
}

}  // namespace
}  // namespace kms::hal
