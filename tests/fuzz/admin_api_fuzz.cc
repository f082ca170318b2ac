// libFuzzer target: the appliance admin API (`KmsAppliance.*`, api/aws/appliance_operations.h)
// through the real AWS door: users, access keys, Vault tokens, the appliance's status, on the fake
// HSM and a SQLite store. Input format and oracles: tests/fuzz/aws_door_harness.h (a non-
// administrator, alice, must get AccessDeniedException for every operation).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/aws_door_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& stack = kms::fuzz::DoorStack::Get();
  kms::fuzz::RunAwsDoorInput("admin_api", "KmsAppliance.", stack.appliance_operations(), data,
                             size);
  return 0;
}
