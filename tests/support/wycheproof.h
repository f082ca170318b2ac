// Project Wycheproof test-vector files (C2SP/wycheproof testvectors_v1), read into plain structs.
//
// Contract: `LoadWycheproof(dir, name)` parses `dir/name` and keeps, for the file, its groups and
// its tests, every scalar field (strings verbatim, hex still hex; numbers as int64) so runners can
// ask for what their schema has (`key`, `iv`, `publicKeyDer`, `sha`, ...). A missing folder or file
// is NotFound (callers skip, saying so); a file that is not the expected JSON shape is
// InvalidArgument. `WycheproofDir()` is ../shared/vectors/wycheproof relative to the working
// directory (the project root, where CTest runs the suites), or $KMS_WYCHEPROOF_DIR when set.
// `WycheproofTally` counts what a runner did with a file and prints one line for it.
//
// Thread-safety: plain values; no shared state.
#ifndef KMS_TESTS_SUPPORT_WYCHEPROOF_H_
#define KMS_TESTS_SUPPORT_WYCHEPROOF_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace kms::testing {

// Scalar fields of a JSON object (strings and integers); arrays of strings (flags) are joined by
// ','.
struct WycheproofFields {
  std::map<std::string, std::string, std::less<>> strings;
  std::map<std::string, std::int64_t, std::less<>> numbers;

  // The named string field, or NotFound.
  StatusOr<std::string> String(std::string_view name) const;
  // The named string field hex-decoded, or NotFound / InvalidArgument.
  StatusOr<Bytes> Hex(std::string_view name) const;
  // The named integer field, or NotFound.
  StatusOr<std::int64_t> Number(std::string_view name) const;
};

struct WycheproofTest {
  std::int64_t tc_id = 0;
  std::string result;  // "valid", "invalid" or "acceptable"
  std::string comment;
  WycheproofFields fields;
};

struct WycheproofGroup {
  WycheproofFields fields;
  std::vector<WycheproofTest> tests;
};

struct WycheproofFile {
  std::string name;
  std::string algorithm;
  std::int64_t number_of_tests = 0;
  std::vector<WycheproofGroup> groups;
};

std::filesystem::path WycheproofDir();
StatusOr<WycheproofFile> LoadWycheproof(const std::filesystem::path& dir, std::string_view name);
// Parses JSON text (exposed for the reader's own negative tests).
StatusOr<WycheproofFile> ParseWycheproof(std::string_view name, std::string_view json_text);

// What a runner did with one file's vectors.
struct WycheproofTally {
  std::size_t total = 0;       // vectors in the file
  std::size_t run = 0;         // valid + invalid vectors put through the HSM
  std::size_t passed = 0;      // of those, the ones with the expected outcome
  std::size_t acceptable = 0;  // "acceptable" vectors run; outcome recorded, not judged
  std::size_t acceptable_accepted = 0;
  std::map<std::string, std::size_t> skipped;  // reason -> count

  std::size_t skipped_total() const;
  // "<file> [backend]: N vectors, run R, passed P, failed F, acceptable A (accepted X), skipped S
  // (...)"
  std::string Summary(std::string_view file, std::string_view backend) const;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_WYCHEPROOF_H_
