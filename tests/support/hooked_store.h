// HookedStore: a MetadataStore that forwards to a real one and runs a test's callback once, when
// the next transaction begins. A test hands it to one component (say the AccessControl a door
// consults) while the rest of the code under test keeps the real store, and so runs its own code at
// an exact point inside another component's work: between a decision and the action it allowed, for
// instance, to re-create a key there. Deterministic: no threads, no timing.
//
// The callback runs once per `ArmOnce` and may use the real store (never this one: it would not
// recurse, but it would be the component's own transaction order the test then changes).
// Lifetime: the real store outlives this. Thread-safety: as the real store; arm from one thread.
#ifndef KMS_TESTS_SUPPORT_HOOKED_STORE_H_
#define KMS_TESTS_SUPPORT_HOOKED_STORE_H_

#include <functional>
#include <memory>
#include <utility>

#include "firmware/store/metadata_store.h"

namespace kms::testing {

class HookedStore final : public firmware::store::MetadataStore {
 public:
  explicit HookedStore(firmware::store::MetadataStore& real) : real_(real) {}

  // Runs `hook` when the next transaction begins through this store, then disarms.
  void ArmOnce(std::function<void()> hook) { hook_ = std::move(hook); }
  bool armed() const { return static_cast<bool>(hook_); }

  StatusOr<std::unique_ptr<firmware::store::Transaction>> Begin(
      firmware::store::TransactionMode mode) override {
    if (hook_) std::exchange(hook_, nullptr)();
    return real_.Begin(mode);
  }
  Status CheckIntegrity() override { return real_.CheckIntegrity(); }
  int SchemaVersion() const override { return real_.SchemaVersion(); }

 private:
  firmware::store::MetadataStore& real_;
  std::function<void()> hook_;
};

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_HOOKED_STORE_H_
