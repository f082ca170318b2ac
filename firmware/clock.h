// Clock: where the key service reads the time (key creation dates, deletion windows, rotation
// schedules). Injected so tests can move time forward instead of waiting days.
//
// Times are Unix epoch milliseconds, UTC, as the store records hold them.
//
// Thread-safety: NowMs may be called from any thread.
#ifndef KMS_FIRMWARE_CLOCK_H_
#define KMS_FIRMWARE_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kms::firmware {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t NowMs() const = 0;
};

// The system's wall clock.
class SystemClock final : public Clock {
 public:
  std::int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to: for tests and for tools that replay schedules.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_ms) : now_ms_(start_ms) {}
  std::int64_t NowMs() const override { return now_ms_.load(); }
  void Set(std::int64_t ms) { now_ms_.store(ms); }
  void Advance(std::int64_t ms) { now_ms_.fetch_add(ms); }
  void AdvanceDays(std::int64_t days) { Advance(days * 86'400'000); }

 private:
  std::atomic<std::int64_t> now_ms_;
};

inline constexpr std::int64_t kMsPerDay = 86'400'000;

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_CLOCK_H_
