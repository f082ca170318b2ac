// What the parser fuzz targets share: a reader that turns the fuzz input into structured choices
// (the job of libFuzzer's FuzzedDataProvider, written here so every target also compiles with g++ 12,
// which lacks <fuzzer/FuzzedDataProvider.h>), the invariant check, and a temporary folder.
//
// A ByteReader never fails: once the input is spent it answers zeros and empty strings, so a
// generator driven by it always terminates and the same input always gives the same structure.
//
// KMS_FUZZ_CHECK(cond, "what") aborts with "fuzz invariant failed: <what>" on stderr when cond is
// false: libFuzzer then keeps the input as a crash, and the message names the broken invariant.
//
// Thread-safety: a ByteReader is used by one call of LLVMFuzzerTestOneInput.
#ifndef KMS_TESTS_FUZZ_PARSERS_FUZZ_INPUT_H_
#define KMS_TESTS_FUZZ_PARSERS_FUZZ_INPUT_H_

#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace kms::fuzz {

[[noreturn]] inline void InvariantFailed(const char* file, int line, std::string_view what,
                                         std::string_view detail) {
  std::fprintf(stderr, "fuzz invariant failed: %.*s (%s:%d)\n", static_cast<int>(what.size()),
               what.data(), file, line);
  if (!detail.empty()) {
    std::fprintf(stderr, "  detail: %.*s\n", static_cast<int>(detail.size()), detail.data());
  }
  std::abort();
}

#define KMS_FUZZ_CHECK(cond, what)                                           \
  do {                                                                       \
    if (!(cond)) ::kms::fuzz::InvariantFailed(__FILE__, __LINE__, what, ""); \
  } while (0)
#define KMS_FUZZ_CHECK_DETAIL(cond, what, detail)                                \
  do {                                                                           \
    if (!(cond)) ::kms::fuzz::InvariantFailed(__FILE__, __LINE__, what, detail); \
  } while (0)

class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  std::size_t remaining() const { return size_ - pos_; }

  std::uint8_t Byte() { return empty() ? 0 : data_[pos_++]; }
  bool Bool() { return (Byte() & 1) != 0; }
  std::uint32_t U32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | Byte();
    return v;
  }
  // An integer in [lo, hi] (hi - lo < 2^16): one byte when the range fits in one, else two.
  std::size_t Range(std::size_t lo, std::size_t hi) {
    if (hi <= lo) return lo;
    const std::size_t span = hi - lo + 1;
    std::size_t v = Byte();
    if (span > 256) v = (v << 8) | Byte();
    return lo + v % span;
  }
  // One of `n` choices.
  std::size_t Pick(std::size_t n) { return n == 0 ? 0 : Range(0, n - 1); }
  template <typename T, std::size_t N>
  const T& PickFrom(const T (&choices)[N]) {
    return choices[Pick(N)];
  }
  // A length (one byte, at most `max`) and then that many bytes (fewer when the input runs out).
  std::string String(std::size_t max) {
    const std::size_t n = Range(0, max);
    return Take(n);
  }
  std::string Take(std::size_t n) {
    n = std::min(n, remaining());
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  std::string Rest() { return Take(remaining()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// A folder made once per process under the system's temporary folder, removed at exit.
class ProcessTempDir {
 public:
  explicit ProcessTempDir(const char* prefix) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ProcessTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ProcessTempDir(const ProcessTempDir&) = delete;
  ProcessTempDir& operator=(const ProcessTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace kms::fuzz

#endif  // KMS_TESTS_FUZZ_PARSERS_FUZZ_INPUT_H_
