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
constexpr std::string_view kVerifierLabel = "kms unseal secret verifier v1";

// HMAC-SHA256(key = secret, label), straight into wiped storage.
SecretBytes DeriveFromSecret(const SecretBytes& secret, std::string_view label) {
  SecretBytes out(32);
  // mbedtls_md_hmac fails only on bad parameters, which these are not.
  (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret.ExposeSecret().data(),
                        secret.size(), reinterpret_cast<const unsigned char*>(label.data()),
                        label.size(), out.ExposeSecretMutable().data());
  return out;
}

// The raw value of the field `name` (" name=<value>", ended by a space or the text's end).
StatusOr<std::string_view> RawField(std::string_view text, std::string_view name) {
  const std::string key = " " + std::string(name) + "=";
  const auto at = text.find(key);
  if (at == std::string_view::npos)
    return DataLossError("seal descriptor lacks " + std::string(name));
  std::string_view value = text.substr(at + key.size());
  return value.substr(0, value.find(' '));
}

StatusOr<unsigned> Field(std::string_view text, std::string_view name) {
  KMS_ASSIGN_OR_RETURN(std::string_view value, RawField(text, name));
  unsigned out = 0;
  if (value.empty() || value.size() > 3 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return DataLossError("seal descriptor has a malformed " + std::string(name));
  }
  for (char c : value) out = out * 10 + static_cast<unsigned>(c - '0');
  return out;
}

// The fixed-size hex field `name` (" name=<2*N hex>", ended by a space or the text's end).
template <std::size_t N>
StatusOr<std::array<std::uint8_t, N>> HexField(std::string_view text, std::string_view name) {
  KMS_ASSIGN_OR_RETURN(std::string_view value, RawField(text, name));
  auto bytes = HexDecode(value);
  if (value.size() != 2 * N || !bytes.has_value() || bytes->size() != N) {
    return DataLossError("seal descriptor has a malformed " + std::string(name));
  }
  std::array<std::uint8_t, N> out{};
  std::copy(bytes->begin(), bytes->end(), out.begin());
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

std::array<std::uint8_t, kSealVerifierSize> UnsealSecretVerifier(const SecretBytes& unseal_secret) {
  const SecretBytes mac = DeriveFromSecret(unseal_secret, kVerifierLabel);
  std::array<std::uint8_t, kSealVerifierSize> out{};
  std::copy_n(mac.ExposeSecret().begin(), out.size(), out.begin());
  return out;
}

bool VerifyUnsealSecret(const SealDescriptor& descriptor, const SecretBytes& unseal_secret) {
  if (!descriptor.verifier.has_value()) return false;
  const auto computed = UnsealSecretVerifier(unseal_secret);
  return ConstantTimeEquals(computed, *descriptor.verifier);
}

SealDescriptor MakeSealDescriptor(const std::array<std::uint8_t, kSplitIdSize>& split_id,
                                  std::uint8_t threshold, std::uint8_t shares,
                                  const SecretBytes& unseal_secret) {
  SealDescriptor d;
  d.threshold = threshold;
  d.shares = shares;
  d.split_id = split_id;
  d.commitment = ShareCommitment(split_id, threshold, unseal_secret);
  d.verifier = UnsealSecretVerifier(unseal_secret);
  return d;
}

ShareExpectation ExpectedShares(const SealDescriptor& descriptor) {
  ShareExpectation e;
  e.split_id = descriptor.split_id;
  e.threshold = descriptor.threshold;
  e.shares = descriptor.shares;
  e.secret_size = kUnsealSecretSize;
  e.commitment = descriptor.commitment;
  return e;
}

std::string FormatSealDescriptor(const SealDescriptor& descriptor) {
  const bool v2 = descriptor.commitment.has_value() && descriptor.verifier.has_value();
  std::string text =
      std::string(v2 ? "v2" : "v1") + " threshold=" + std::to_string(descriptor.threshold) +
      " shares=" + std::to_string(descriptor.shares) + " split=" + HexEncode(descriptor.split_id);
  if (v2) {
    text += " commitment=" + HexEncode(*descriptor.commitment) +
            " verifier=" + HexEncode(*descriptor.verifier);
  }
  return text;
}

StatusOr<SealDescriptor> ParseSealDescriptor(std::string_view text) {
  const bool v2 = text.starts_with("v2 ");
  if (!v2 && !text.starts_with("v1 ")) {
    return DataLossError("seal descriptor has an unknown version");
  }
  SealDescriptor d;
  KMS_ASSIGN_OR_RETURN(unsigned threshold, Field(text, "threshold"));
  KMS_ASSIGN_OR_RETURN(unsigned shares, Field(text, "shares"));
  if (threshold < 1 || shares < threshold || shares > kMaxShares) {
    return DataLossError("seal descriptor has an impossible threshold " +
                         std::to_string(threshold) + " of " + std::to_string(shares));
  }
  d.threshold = static_cast<std::uint8_t>(threshold);
  d.shares = static_cast<std::uint8_t>(shares);
  KMS_ASSIGN_OR_RETURN(d.split_id, HexField<kSplitIdSize>(text, "split"));
  if (v2) {
    KMS_ASSIGN_OR_RETURN(d.commitment, (HexField<8>(text, "commitment")));
    KMS_ASSIGN_OR_RETURN(d.verifier, HexField<kSealVerifierSize>(text, "verifier"));
  }
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

namespace kms::firmware {

StatusOr<SealDescriptor> CompleteSealDescriptor(store::MetadataStore& store,
                                                const SecretBytes& unseal_secret) {
  KMS_ASSIGN_OR_RETURN(auto txn, store.Begin(store::TransactionMode::kReadWrite));
  auto value = txn->GetMeta(kSealDescriptorMeta);
  if (!value.has_value()) {
    if (value.error().code() == StatusCode::kNotFound) {
      return NotFoundError("the store has no seal descriptor");
    }
    return value.error();
  }
  KMS_ASSIGN_OR_RETURN(SealDescriptor d, ParseSealDescriptor(*value));
  if (d.verifier.has_value()) {
    if (!VerifyUnsealSecret(d, unseal_secret)) {
      return FailedPreconditionError(
          "the store's seal descriptor has a verifier of another unseal secret");
    }
    return d;
  }
  const SealDescriptor complete =
      MakeSealDescriptor(d.split_id, d.threshold, d.shares, unseal_secret);
  KMS_RETURN_IF_ERROR(txn->PutMeta(kSealDescriptorMeta, FormatSealDescriptor(complete)));
  KMS_RETURN_IF_ERROR(txn->Commit());
  return complete;
}

}  // namespace kms::firmware
