#include "firmware/seal.h"

#include <mbedtls/md.h>

#include <algorithm>
#include <cstdio>

#include "base/encoding.h"

namespace kms::firmware {
namespace {

constexpr std::string_view kPinLabel = "kms token user PIN v1";
constexpr std::string_view kBackupKekLabel = "kms backup KEK v1";
constexpr std::string_view kBackupMacLabel = "kms backup MAC v1";

// HMAC-SHA256(key = secret, label), straight into wiped storage.
SecretBytes DeriveFromSecret(const SecretBytes& secret, std::string_view label) {
  SecretBytes out(32);
  // mbedtls_md_hmac fails only on bad parameters, which these are not.
  (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret.ExposeSecret().data(),
                        secret.size(), reinterpret_cast<const unsigned char*>(label.data()),
                        label.size(), out.ExposeSecretMutable().data());
  return out;
}

StatusOr<unsigned> Field(std::string_view text, std::string_view name) {
  const std::string key = " " + std::string(name) + "=";
  const auto at = text.find(key);
  if (at == std::string_view::npos)
    return DataLossError("seal descriptor lacks " + std::string(name));
  std::string_view value = text.substr(at + key.size());
  value = value.substr(0, value.find(' '));
  unsigned out = 0;
  if (value.empty() || value.size() > 3 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return DataLossError("seal descriptor has a malformed " + std::string(name));
  }
  for (char c : value) out = out * 10 + static_cast<unsigned>(c - '0');
  return out;
}

}  // namespace

SecretBytes TokenPinFromUnsealSecret(const SecretBytes& unseal_secret) {
  std::uint8_t mac[32];
  // mbedtls_md_hmac fails only on bad parameters, which these are not.
  (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                        unseal_secret.ExposeSecret().data(), unseal_secret.size(),
                        reinterpret_cast<const unsigned char*>(kPinLabel.data()), kPinLabel.size(),
                        mac);
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes pin(2 * sizeof mac);
  auto out = pin.ExposeSecretMutable();
  for (std::size_t i = 0; i < sizeof mac; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(kDigits[mac[i] >> 4]);
    out[2 * i + 1] = static_cast<std::uint8_t>(kDigits[mac[i] & 15]);
  }
  SecureWipe(mac, sizeof mac);
  return pin;
}

SecretBytes BackupKekFromUnsealSecret(const SecretBytes& unseal_secret) {
  return DeriveFromSecret(unseal_secret, kBackupKekLabel);
}

SecretBytes BackupMacKeyFromUnsealSecret(const SecretBytes& unseal_secret) {
  return DeriveFromSecret(unseal_secret, kBackupMacLabel);
}

std::string FormatSealDescriptor(const SealDescriptor& descriptor) {
  return "v1 threshold=" + std::to_string(descriptor.threshold) +
         " shares=" + std::to_string(descriptor.shares) +
         " split=" + HexEncode(descriptor.split_id);
}

StatusOr<SealDescriptor> ParseSealDescriptor(std::string_view text) {
  if (!text.starts_with("v1 ")) return DataLossError("seal descriptor has an unknown version");
  SealDescriptor d;
  KMS_ASSIGN_OR_RETURN(unsigned threshold, Field(text, "threshold"));
  KMS_ASSIGN_OR_RETURN(unsigned shares, Field(text, "shares"));
  if (threshold < 1 || shares < threshold || shares > kMaxShares) {
    return DataLossError("seal descriptor has an impossible threshold " +
                         std::to_string(threshold) + " of " + std::to_string(shares));
  }
  d.threshold = static_cast<std::uint8_t>(threshold);
  d.shares = static_cast<std::uint8_t>(shares);
  const auto at = text.find(" split=");
  if (at == std::string_view::npos) return DataLossError("seal descriptor lacks split");
  auto split = HexDecode(text.substr(at + 7, 2 * kSplitIdSize));
  if (!split.has_value() || split->size() != kSplitIdSize) {
    return DataLossError("seal descriptor has a malformed split");
  }
  std::copy(split->begin(), split->end(), d.split_id.begin());
  return d;
}

Status WriteSealDescriptor(store::MetadataStore& store, const SealDescriptor& descriptor) {
  KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(store::TransactionMode::kReadWrite));
  auto existing = txn->GetMeta(kSealDescriptorMeta);
  if (existing.has_value()) return AlreadyExistsError("the store already has a seal descriptor");
  if (existing.error().code() != StatusCode::kNotFound) return existing.error();
  KMS_RETURN_IF_ERROR(txn->PutMeta(kSealDescriptorMeta, FormatSealDescriptor(descriptor)));
  return txn->Commit();
}

StatusOr<std::optional<SealDescriptor>> ReadSealDescriptor(store::MetadataStore& store) {
  KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(store::TransactionMode::kReadOnly));
  auto value = txn->GetMeta(kSealDescriptorMeta);
  if (!value.has_value()) {
    if (value.error().code() == StatusCode::kNotFound) return std::optional<SealDescriptor>();
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(SealDescriptor d, ParseSealDescriptor(*value));
  return std::optional<SealDescriptor>(d);
}

}  // namespace kms::firmware
