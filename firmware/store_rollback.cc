#include "firmware/store_rollback.h"

#include <string>

namespace kms::firmware {
namespace {

StatusOr<std::uint64_t> StoreEpoch(store::MetadataStore& store) {
  KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(store::TransactionMode::kReadOnly));
  return txn->Epoch();
}

StatusOr<std::optional<std::uint64_t>> ReadWatermark(hal::Hsm& hsm) {
  auto value = hsm.ReadTokenData(kStoreWatermarkLabel);
  if (!value.has_value()) {
    if (value.error().code() == StatusCode::kNotFound) return std::optional<std::uint64_t>();
    return value.error();
  }
  const std::string_view text = AsStringView(*value);
  constexpr std::string_view kPrefix = "v1 epoch=";
  if (!text.starts_with(kPrefix) || text.size() == kPrefix.size() ||
      text.size() > kPrefix.size() + 20) {
    return DataLossError("the token's store watermark is unreadable");
  }
  std::uint64_t epoch = 0;
  for (char c : text.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return DataLossError("the token's store watermark is unreadable");
    epoch = epoch * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return std::optional<std::uint64_t>(epoch);
}

Status WriteWatermark(hal::Hsm& hsm, std::uint64_t epoch) {
  const std::string text = "v1 epoch=" + std::to_string(epoch);
  return hsm.WriteTokenData(kStoreWatermarkLabel, AsBytes(text));
}

}  // namespace

StatusOr<StoreEpochCheck> CheckStoreEpoch(hal::Hsm& hsm, store::MetadataStore& store,
                                          bool accept_rollback) {
  StoreEpochCheck check;
  KMS_ASSIGN_OR_RETURN(check.store_epoch, StoreEpoch(store));
  KMS_ASSIGN_OR_RETURN(check.watermark, ReadWatermark(hsm));
  if (check.watermark.has_value() && *check.watermark > check.store_epoch) {
    if (!accept_rollback) {
      return FailedPreconditionError(
          "the store is older than this HSM has seen: its epoch is " +
          std::to_string(check.store_epoch) + ", the token's watermark " +
          std::to_string(*check.watermark) +
          ". It was replaced by an older copy, which could bring deleted keys back: put the newest "
          "store back, or start kmsd with --accept-store-rollback to take this one as it is");
    }
    check.rollback_accepted = true;
  }
  if (!check.watermark.has_value() || *check.watermark != check.store_epoch) {
    KMS_RETURN_IF_ERROR(WriteWatermark(hsm, check.store_epoch));
  }
  return check;
}

StatusOr<std::uint64_t> RaiseWatermark(hal::Hsm& hsm, store::MetadataStore& store) {
  KMS_ASSIGN_OR_RETURN(const std::uint64_t epoch, StoreEpoch(store));
  KMS_ASSIGN_OR_RETURN(const std::optional<std::uint64_t> watermark, ReadWatermark(hsm));
  if (watermark.has_value() && *watermark >= epoch) return *watermark;
  KMS_RETURN_IF_ERROR(WriteWatermark(hsm, epoch));
  return epoch;
}

}  // namespace kms::firmware
