#include "firmware/app/unseal_gate.h"

#include <algorithm>
#include <string>
#include <utility>

namespace kms::app {
namespace {

std::int64_t CeilSeconds(std::chrono::steady_clock::duration d) {
  return std::chrono::ceil<std::chrono::seconds>(d).count();
}

}  // namespace

UnsealGate::UnsealGate(firmware::store::MetadataStore& store,
                       const firmware::SealDescriptor& descriptor, const log::Logger& logs,
                       Clock clock, UnsealLimits limits)
    : store_(store),
      descriptor_(descriptor),
      logs_(logs),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      limits_(limits),
      combiner_(firmware::ExpectedShares(descriptor)) {}

void UnsealGate::Reset() { combiner_.Reset(); }

Status UnsealGate::Fail(const Status& refused) {
  ++failures_;
  std::string message = refused.message();
  std::int64_t locked_for = 0;
  if (failures_ >= limits_.failures_before_lockout) {
    // first_lockout, doubled for each failure after the one that first locked, up to max_lockout.
    // The shift is bounded so that it cannot overflow before the cap applies.
    const std::size_t doublings =
        std::min<std::size_t>(failures_ - limits_.failures_before_lockout, 20);
    const auto lockout = std::min<std::chrono::seconds>(
        limits_.first_lockout * (std::int64_t{1} << doublings), limits_.max_lockout);
    locked_until_ = clock_() + lockout;
    locked_for = lockout.count();
    message += " (" + std::to_string(failures_) +
               " failed attempts in a row: shares are refused for the next " +
               std::to_string(locked_for) + " s)";
  }
  logs_.Warn("unseal attempt failed", {{"reason", refused.message()},
                                       {"failed_attempts", static_cast<std::int64_t>(failures_)},
                                       {"locked_for_s", locked_for}});
  return Status(refused.code(), message, refused.reason(), refused.device_code());
}

StatusOr<bool> UnsealGate::Add(std::string_view share, const Open& open) {
  if (const auto now = clock_(); now < locked_until_) {
    const Status locked =
        ResourceExhaustedError("too many failed unseal attempts (" + std::to_string(failures_) +
                               " in a row): shares are refused for another " +
                               std::to_string(CeilSeconds(locked_until_ - now)) + " s");
    logs_.Warn("unseal share refused", {{"reason", locked.message()}});
    return locked;
  }
  const std::size_t failed_before = combiner_.failed_combinations();
  if (Status added = combiner_.Add(share); !added.ok()) {
    // The combiner's messages name no split id and no byte of the share.
    if (combiner_.failed_combinations() != failed_before) return Fail(added);
    logs_.Warn("unseal share refused", {{"reason", added.message()}});
    return added;
  }
  const auto progress = combiner_.progress();
  logs_.Info("unseal share accepted",
             {{"progress", static_cast<std::int64_t>(progress.entered)},
              {"threshold", static_cast<std::int64_t>(progress.threshold)}});
  if (!combiner_.secret().has_value()) return false;

  // The secret leaves the combiner here; from now on it lives only in this frame.
  SecretBytes secret = combiner_.secret()->Clone();
  combiner_.Reset();
  const bool has_verifier = descriptor_.verifier.has_value();
  if (has_verifier && !firmware::VerifyUnsealSecret(descriptor_, secret)) {
    return Fail(InvalidArgumentError(
        "the shares do not rebuild this appliance's unseal secret: every share entered was "
        "forgotten, start again"));
  }
  if (!has_verifier) {
    logs_.Warn(
        "the seal descriptor has no verifier (a store made before verifiers existed): the HSM "
        "login decides this unseal, and the verifier is written once it succeeds");
  }
  const OpenOutcome opened = open(firmware::TokenPinFromUnsealSecret(secret));
  if (!has_verifier && opened.pin_accepted) {
    // Proven by the token: from now on this appliance's descriptor decides.
    auto completed = firmware::CompleteSealDescriptor(store_, secret);
    if (completed.has_value()) {
      descriptor_ = *completed;
      combiner_ = firmware::ShareCombiner(firmware::ExpectedShares(descriptor_));
      logs_.Info("seal descriptor completed with the unseal secret's verifier");
    } else {
      const std::string status = completed.error().ToString();
      logs_.Error(
          "seal descriptor not completed: the next unseal is decided by the HSM login again",
          {{"status", status}});
    }
  }
  if (!opened.status.ok()) {
    // A verified secret that failed to open (HSM away, self-test, store rollback) is not the
    // shares' fault; a v1 secret the token refused is a failed combination like any other.
    if (!has_verifier && !opened.pin_accepted) return Fail(opened.status);
    return opened.status;
  }
  failures_ = 0;
  return true;
}

}  // namespace kms::app
