// UnsealGate: what stands between sys/unseal (unauthenticated: anyone who reaches the port may
// call it) and the HSM's C_Login. kmsd's sealed boot hands it every share, from custodians and
// from [seal] auto_unseal_file alike; it decides, from the seal descriptor alone, whether a share
// counts, whether a rebuilt secret is the appliance's, and only then derives the token PIN and
// calls `open` with it.
//
//  * Shares: a ShareCombiner bound to the descriptor (firmware/seal.h ExpectedShares). A share of
//    another split, threshold, share count or commitment is refused without touching the shares
//    already entered; its message names no split id and no byte of the share.
//  * The secret: rebuilt at the descriptor's threshold, then checked against the descriptor's
//    verifier in constant time. A wrong secret is refused ("the shares do not rebuild this
//    appliance's unseal secret"), the shares entered are forgotten, and no PIN is derived: a real
//    HSM locks its user PIN after a few failed logins, so a guess must never reach it.
//  * A descriptor without a verifier (a store made before verifiers existed, firmware/seal.h v1):
//    the HSM login is the only judge left. The secret's PIN is tried; once the token accepts it,
//    the verifier is written into the descriptor (CompleteSealDescriptor) so the next unseal is
//    decided here. Until then a forged threshold-sized set of shares (which needs the split id)
//    reaches C_Login: the weaker window docs/operations.md describes. Those logins are rate
//    limited like any failed combination.
//  * Rate limit: failed combinations (a wrong secret, a commitment mismatch, a login a v1 store's
//    token refused) are counted in a row. The `limits.failures_before_lockout`-th (3) locks the
//    gate for `first_lockout` (60 s); each further one doubles the lockout, up to `max_lockout`
//    (1 h). While locked every share is refused (ResourceExhausted, "too many failed unseal
//    attempts ..."); a reset is still taken. A successful unseal clears the count. The count lives
//    in memory: restarting kmsd clears it, which only the appliance's operator can do. Refused
//    single shares (malformed, foreign, duplicate) do not count: they never reach the HSM and
//    disturb nothing.
//  * Logs: every refusal is a warning line with the reason (the same text the client sees, so no
//    share and no split id), every failed combination a warning with the count and the lockout.
//
// Thread-safety: none; kmsd serialises unseal calls under its own lock. `store` and `logs`
// outlive the gate.
#ifndef KMS_FIRMWARE_APP_UNSEAL_GATE_H_
#define KMS_FIRMWARE_APP_UNSEAL_GATE_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>

#include "base/log.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/custodian_shares.h"
#include "firmware/seal.h"
#include "firmware/store/metadata_store.h"

namespace kms::app {

struct UnsealLimits {
  std::size_t failures_before_lockout = 3;
  std::chrono::seconds first_lockout{60};
  std::chrono::seconds max_lockout{3600};
};

// What `open` reports: whether the appliance opened, and whether the token accepted the PIN (a
// later step may fail after a good login: the store's rollback check, a self-test).
struct OpenOutcome {
  Status status;
  bool pin_accepted = false;
};

class UnsealGate {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // Logs in with the PIN and opens the appliance. Called only with the PIN of a verified secret
  // (or, for a v1 descriptor, of a secret the token is about to judge).
  using Open = std::function<OpenOutcome(SecretBytes pin)>;

  // `clock` defaults to std::chrono::steady_clock; tests pin it.
  UnsealGate(firmware::store::MetadataStore& store, const firmware::SealDescriptor& descriptor,
             const log::Logger& logs, Clock clock = {}, UnsealLimits limits = {});

  // One share. False while more are needed; true when this share unsealed (open succeeded). An
  // error is what the client sees: InvalidArgument for a refused share or combination,
  // ResourceExhausted while locked, and open's own status when the appliance did not open.
  StatusOr<bool> Add(std::string_view share, const Open& open);
  // Forgets the shares entered (sys/unseal with reset); the failure count stays.
  void Reset();

  std::size_t progress() const { return combiner_.progress().entered; }
  std::size_t failed_attempts() const { return failures_; }
  const firmware::SealDescriptor& descriptor() const { return descriptor_; }

 private:
  // Counts a failed combination, locks when due, logs; returns `refused` with the lockout added.
  Status Fail(const Status& refused);

  firmware::store::MetadataStore& store_;
  firmware::SealDescriptor descriptor_;
  const log::Logger& logs_;
  Clock clock_;
  UnsealLimits limits_;
  firmware::ShareCombiner combiner_;
  std::size_t failures_ = 0;  // failed combinations in a row
  std::chrono::steady_clock::time_point locked_until_{};
};

}  // namespace kms::app

#endif  // KMS_FIRMWARE_APP_UNSEAL_GATE_H_
