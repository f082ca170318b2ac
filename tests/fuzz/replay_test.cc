// Replays a fuzz target's committed corpus (tests/fuzz/corpus/<name>/, regression inputs
// included) through its LLVMFuzzerTestOneInput, in a plain build: g++ compiles the target as an
// ordinary object, so every unit run checks that the target still builds without Clang and that
// no committed input breaks an invariant again (a violation aborts the process, failing the test).
// tools/fuzz is where the targets are fuzzed; this only replays.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#ifndef KMS_FUZZ_CORPUS_DIR
#error "KMS_FUZZ_CORPUS_DIR must name the corpus folder"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

TEST_CASE("fuzz corpus replay: every committed input keeps the target's invariants", "[unit]") {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(KMS_FUZZ_CORPUS_DIR)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(!files.empty());
  for (const auto& file : files) {
    INFO(file.string());
    std::string bytes(static_cast<std::size_t>(std::filesystem::file_size(file)), '\0');
    std::ifstream in(file, std::ios::binary);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(bytes.size()));
    CHECK(LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) ==
          0);
  }
}
