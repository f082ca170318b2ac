// libFuzzer target: the AWS door's request path per operation (every `TrentService.*` operation
// the appliance serves), through the real door, authorization included, on the fake HSM and a
// SQLite store. Input format and oracles: tests/fuzz/aws_door_harness.h.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/aws_door_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& stack = kms::fuzz::DoorStack::Get();
  kms::fuzz::RunAwsDoorInput("aws_door", "TrentService.", stack.aws_operations(), data, size);
  return 0;
}
