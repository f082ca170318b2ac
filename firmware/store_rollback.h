// The store's rollback guard: the metadata store's epoch (MetadataStore's commit counter) anchored
// in the HSM, so that an older copy of the store put in place of the current one is refused instead
// of resurrecting deleted keys and old states (docs/operations.md "Rollback of the store").
//
// The token keeps a watermark (hal::Hsm token data "kms-store-watermark", "v1 epoch=<n>"): the
// highest store epoch the appliance has vouched for. `CheckStoreEpoch` runs when the appliance
// opens (after login, before the key service touches the store): a store whose epoch is below the
// watermark is FailedPrecondition naming both numbers, unless the operator accepts the rollback,
// which sets the watermark to the store's epoch. Otherwise it raises the watermark to the store's
// epoch. `RaiseWatermark` moves it up to the current epoch (never down): kmsd calls it on the
// scheduler's tick and when it stops.
//
// What it catches, and what it cannot: any copy older than the last watermark. Between two raises
// (at most a scheduler tick, 60 s, plus a crash without a clean stop) a copy taken in that window
// is not detected. The watermark is written to the token at most once per tick, because a SoftHSM2
// token write rewrites its whole file (docs/softhsm2.md "The token's files").
//
// Thread-safety: as the Hsm and the store; RaiseWatermark calls are serialised by the caller (the
// scheduler's single thread, then the stop path after it has stopped).
#ifndef KMS_FIRMWARE_STORE_ROLLBACK_H_
#define KMS_FIRMWARE_STORE_ROLLBACK_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/status.h"
#include "firmware/store/metadata_store.h"
#include "hal/hsm.h"

namespace kms::firmware {

inline constexpr std::string_view kStoreWatermarkLabel = "kms-store-watermark";

struct StoreEpochCheck {
  std::uint64_t store_epoch = 0;
  std::optional<std::uint64_t> watermark;  // before the check; none on a token that never had one
  bool rollback_accepted = false;          // the store was older and the operator accepted it
};

StatusOr<StoreEpochCheck> CheckStoreEpoch(hal::Hsm& hsm, store::MetadataStore& store,
                                          bool accept_rollback);
// Raises the watermark to the store's current epoch when that is higher; returns the watermark.
StatusOr<std::uint64_t> RaiseWatermark(hal::Hsm& hsm, store::MetadataStore& store);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_STORE_ROLLBACK_H_
