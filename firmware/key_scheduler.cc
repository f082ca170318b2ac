#include "firmware/key_scheduler.h"

namespace kms::firmware {

void KeyLifecycleScheduler::Start(std::chrono::milliseconds period) {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this, period] {
    std::unique_lock guard(mu_);
    while (!stop_) {
      guard.unlock();
      // A failed pass (store busy, HSM unavailable) is retried on the next tick; RunDue leaves the
      // work due in the store.
      (void)RunDue();
      for (const auto& pass : extra_passes_) pass(clock_.NowMs());
      guard.lock();
      wake_.wait_for(guard, period, [this] { return stop_; });
    }
  });
}

void KeyLifecycleScheduler::Stop() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  wake_.notify_all();
  if (t.joinable()) t.join();
}

bool KeyLifecycleScheduler::running() const {
  std::lock_guard lock(mu_);
  return thread_.joinable();
}

}  // namespace kms::firmware
