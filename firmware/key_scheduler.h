// KeyLifecycleScheduler: runs the key service's time-driven work, automatic rotations and the
// destruction of keys whose deletion window ended (KeyService::RunDue), on demand or from a
// background thread. The work lives in the store (due times are indexed columns), so it resumes
// after a restart: whatever came due while the appliance was down is done on the first pass.
//
// Other doors' time-driven work rides on the same thread: `AlsoRun` adds a pass (the Vault door's
// transit auto-rotation, TransitKeyring::RotateDue) that runs after the key service's on every
// tick.
//
// Thread-safety: RunDue may be called from any thread, also while the background thread runs
// (RunDue is idempotent). AlsoRun, Start and Stop are for one owner thread; AlsoRun only before
// Start. The destructor stops the thread.
#ifndef KMS_FIRMWARE_KEY_SCHEDULER_H_
#define KMS_FIRMWARE_KEY_SCHEDULER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/status.h"
#include "firmware/clock.h"
#include "firmware/key_service.h"

namespace kms::firmware {

class KeyLifecycleScheduler {
 public:
  // `service` and `clock` must outlive the scheduler.
  KeyLifecycleScheduler(KeyService& service, const Clock& clock)
      : service_(service), clock_(clock) {}
  ~KeyLifecycleScheduler() { Stop(); }
  KeyLifecycleScheduler(const KeyLifecycleScheduler&) = delete;
  KeyLifecycleScheduler& operator=(const KeyLifecycleScheduler&) = delete;

  // One pass at `now_ms` (tests pass a moved clock's time).
  StatusOr<ScheduledWorkReport> RunDue(std::int64_t now_ms) { return service_.RunDue(now_ms); }
  // One pass at the clock's time.
  StatusOr<ScheduledWorkReport> RunDue() { return RunDue(clock_.NowMs()); }

  // Adds work to every background pass, after the key service's (before Start). The pass must be
  // idempotent and leave failed work for the next tick, as RunDue does.
  void AlsoRun(std::function<void(std::int64_t now_ms)> pass) {
    extra_passes_.push_back(std::move(pass));
  }

  // Starts a thread that runs a pass every `period` (and one at once). No-op if already running.
  void Start(std::chrono::milliseconds period);
  // Stops and joins the thread; a pass in progress completes first.
  void Stop();
  bool running() const;

 private:
  KeyService& service_;
  const Clock& clock_;
  std::vector<std::function<void(std::int64_t)>> extra_passes_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_KEY_SCHEDULER_H_
