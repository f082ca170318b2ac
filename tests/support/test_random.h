// Random bytes for tests that need a RandomSource (firmware/custodian_shares.h) without an HSM:
// std::random_device, which is good enough to exercise share math and never used by the product.
#ifndef KMS_TESTS_SUPPORT_TEST_RANDOM_H_
#define KMS_TESTS_SUPPORT_TEST_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <random>

#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms::testing {

inline StatusOr<SecretBytes> TestRandom(std::size_t size) {
  static std::random_device device;
  SecretBytes out(size);
  for (auto& b : out.ExposeSecretMutable()) b = static_cast<std::uint8_t>(device());
  return out;
}

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_TEST_RANDOM_H_
