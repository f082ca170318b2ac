#include "firmware/custodian_shares.h"

#include <mbedtls/sha256.h>

#include <algorithm>
#include <string>

namespace kms::firmware {
namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::string_view kTextPrefix = "kms1";
constexpr std::string_view kCommitmentLabel = "kms custodian share commitment v1";
constexpr std::size_t kChecksumSize = 4;
// version | split id | threshold | x | commitment, before y.
constexpr std::size_t kHeaderSize = 1 + kSplitIdSize + 1 + 1 + 8;
constexpr std::size_t kGroup = 8;  // hex digits per group in the text form

// GF(2^8) multiplication modulo x^8+x^4+x^3+x^2+1, without branches or tables on the operands: y
// values are secret, and a log/exp table lookup indexed by them would leak through the cache.
std::uint8_t GfMul(std::uint8_t a, std::uint8_t b) {
  std::uint8_t product = 0;
  for (int i = 0; i < 8; ++i) {
    product ^= static_cast<std::uint8_t>(-(b & 1u)) & a;
    const auto carry = static_cast<std::uint8_t>(-(a >> 7));
    a = static_cast<std::uint8_t>((static_cast<unsigned>(a) << 1) ^ (carry & 0x1du));
    b >>= 1;
  }
  return product;
}

// a^254 = a^-1 for a != 0. Only ever applied to public x values, but branch-free all the same.
std::uint8_t GfInverse(std::uint8_t a) {
  std::uint8_t result = 1;
  std::uint8_t power = a;
  for (int bit = 0; bit < 8; ++bit) {
    if ((254 >> bit) & 1) result = GfMul(result, power);
    power = GfMul(power, power);
  }
  return result;
}

void Sha256Parts(std::initializer_list<ByteView> parts, std::uint8_t out[32]) {
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  (void)mbedtls_sha256_starts_ret(&ctx, 0);
  for (ByteView part : parts) (void)mbedtls_sha256_update_ret(&ctx, part.data(), part.size());
  (void)mbedtls_sha256_finish_ret(&ctx, out);
  mbedtls_sha256_free(&ctx);
}

// The binary record, checksum included.
SecretBytes Encode(const CustodianShare& share) {
  SecretBytes record;
  const std::uint8_t version = kVersion;
  record.Append(ByteView(&version, 1));
  record.Append(share.split_id);
  record.Append(ByteView(&share.threshold, 1));
  record.Append(ByteView(&share.x, 1));
  record.Append(share.commitment);
  record.Append(share.y.ExposeSecret());
  std::uint8_t digest[32];
  Sha256Parts({record.ExposeSecret()}, digest);
  record.Append(ByteView(digest, kChecksumSize));
  return record;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsSeparator(char c) { return c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Status CheckSplitShape(std::size_t secret_size, std::size_t threshold, std::size_t shares) {
  if (secret_size == 0 || secret_size > kMaxSharedSecretSize) {
    return InvalidArgumentError("the secret to split must be 1 to " +
                                std::to_string(kMaxSharedSecretSize) + " bytes, got " +
                                std::to_string(secret_size));
  }
  if (shares == 0 || shares > kMaxShares) {
    return InvalidArgumentError("the number of shares must be 1 to 255, got " +
                                std::to_string(shares));
  }
  if (threshold == 0 || threshold > shares) {
    return InvalidArgumentError("the threshold must be 1 to the number of shares (" +
                                std::to_string(shares) + "), got " + std::to_string(threshold));
  }
  if (threshold == 1 && shares > 1) {
    return InvalidArgumentError(
        "a threshold of 1 with more than one share hands every custodian the whole secret: use a "
        "threshold of at least 2, or a single share");
  }
  return Status();
}

// Lagrange interpolation at x = 0 over `shares` (a threshold's worth, distinct x).
SecretBytes Interpolate(const std::vector<CustodianShare>& shares) {
  const std::size_t size = shares.front().y.size();
  SecretBytes secret(size);
  auto out = secret.ExposeSecretMutable();
  for (std::size_t i = 0; i < shares.size(); ++i) {
    // basis_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR in GF(2^8).
    std::uint8_t numerator = 1;
    std::uint8_t denominator = 1;
    for (std::size_t j = 0; j < shares.size(); ++j) {
      if (j == i) continue;
      numerator = GfMul(numerator, shares[j].x);
      denominator = GfMul(denominator, shares[j].x ^ shares[i].x);
    }
    const std::uint8_t basis = GfMul(numerator, GfInverse(denominator));
    ByteView y = shares[i].y.ExposeSecret();
    for (std::size_t b = 0; b < size; ++b) out[b] ^= GfMul(y[b], basis);
  }
  return secret;
}

}  // namespace

std::array<std::uint8_t, 8> ShareCommitment(const std::array<std::uint8_t, kSplitIdSize>& split_id,
                                            std::uint8_t threshold, const SecretBytes& secret) {
  std::uint8_t digest[32];
  Sha256Parts({AsBytes(kCommitmentLabel), split_id, ByteView(&threshold, 1), secret.ExposeSecret()},
              digest);
  std::array<std::uint8_t, 8> out{};
  std::copy_n(digest, out.size(), out.begin());
  SecureWipe(digest, sizeof digest);
  return out;
}

StatusOr<std::vector<SecretBytes>> SplitSecret(const SecretBytes& secret, std::size_t threshold,
                                               std::size_t shares, const RandomSource& random) {
  KMS_RETURN_IF_ERROR(CheckSplitShape(secret.size(), threshold, shares));
  KMS_ASSIGN_OR_RETURN(SecretBytes split_id, random(kSplitIdSize));
  // Coefficients 1..M-1 of every byte's polynomial, byte-major.
  const std::size_t degree = threshold - 1;
  KMS_ASSIGN_OR_RETURN(SecretBytes coefficients, random(secret.size() * degree));
  if (split_id.size() != kSplitIdSize || coefficients.size() != secret.size() * degree) {
    return InternalError("the random source returned the wrong number of bytes");
  }

  CustodianShare share;
  std::copy_n(split_id.ExposeSecret().begin(), kSplitIdSize, share.split_id.begin());
  share.threshold = static_cast<std::uint8_t>(threshold);
  share.commitment = ShareCommitment(share.split_id, share.threshold, secret);

  ByteView s = secret.ExposeSecret();
  ByteView c = coefficients.ExposeSecret();
  std::vector<SecretBytes> out;
  out.reserve(shares);
  for (std::size_t x = 1; x <= shares; ++x) {
    share.x = static_cast<std::uint8_t>(x);
    share.y = SecretBytes(s.size());
    auto y = share.y.ExposeSecretMutable();
    for (std::size_t b = 0; b < s.size(); ++b) {
      // Horner: ((c_{M-1} x + c_{M-2}) x + ... + c_1) x + s.
      std::uint8_t acc = 0;
      for (std::size_t k = degree; k >= 1; --k) acc = GfMul(acc, share.x) ^ c[b * degree + k - 1];
      y[b] = GfMul(acc, share.x) ^ s[b];
    }
    out.push_back(FormatShare(share));
  }
  return out;
}

SecretBytes FormatShare(const CustodianShare& share) {
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes record = Encode(share);
  SecretBytes text;
  text.Append(AsBytes(kTextPrefix));
  std::size_t digits = 0;
  for (std::uint8_t byte : record.ExposeSecret()) {
    for (std::uint8_t nibble :
         {static_cast<std::uint8_t>(byte >> 4), static_cast<std::uint8_t>(byte & 15)}) {
      if (digits % kGroup == 0) text.Append(AsBytes("-"));
      const auto ch = static_cast<std::uint8_t>(kDigits[nibble]);
      text.Append(ByteView(&ch, 1));
      ++digits;
    }
  }
  return text;
}

StatusOr<CustodianShare> ParseShare(std::string_view text) {
  while (!text.empty() && IsSeparator(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSeparator(text.back())) text.remove_suffix(1);
  // The prefix in either case: only ASCII letters are folded ('1' | 0x20 is '1', but so is
  // 0x11 | 0x20, which is no '1').
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  if (text.size() < kTextPrefix.size() ||
      !std::equal(kTextPrefix.begin(), kTextPrefix.end(), text.begin(),
                  [&lower](char a, char b) { return a == lower(b); })) {
    return InvalidArgumentError("not a custodian share: a share starts with 'kms1-'");
  }
  text.remove_prefix(kTextPrefix.size());

  SecretBytes record;
  int high = -1;
  for (char ch : text) {
    if (IsSeparator(ch)) continue;
    const int value = HexValue(ch);
    if (value < 0) {
      return InvalidArgumentError(
          "not a custodian share: after 'kms1-' a share holds only hex digits and '-'");
    }
    if (high < 0) {
      high = value;
    } else {
      const auto byte = static_cast<std::uint8_t>(high << 4 | value);
      record.Append(ByteView(&byte, 1));
      high = -1;
    }
  }
  if (high >= 0 || record.size() < kHeaderSize + 1 + kChecksumSize ||
      record.size() > kHeaderSize + kMaxSharedSecretSize + kChecksumSize) {
    return InvalidArgumentError(
        "the share is damaged or mistyped: it has the wrong number of digits (check for a missing "
        "or extra character)");
  }
  ByteView bytes = record.ExposeSecret();
  const std::size_t body = bytes.size() - kChecksumSize;
  std::uint8_t digest[32];
  Sha256Parts({bytes.first(body)}, digest);
  if (!ConstantTimeEquals(ByteView(digest, kChecksumSize), bytes.subspan(body))) {
    return InvalidArgumentError(
        "the share is damaged or mistyped: its checksum does not match (compare it with the "
        "printed "
        "share character by character)");
  }
  if (bytes[0] != kVersion) {
    return InvalidArgumentError("share format version " + std::to_string(bytes[0]) +
                                " is not supported (this appliance reads version 1)");
  }
  CustodianShare share;
  std::copy_n(bytes.begin() + 1, kSplitIdSize, share.split_id.begin());
  share.threshold = bytes[1 + kSplitIdSize];
  share.x = bytes[2 + kSplitIdSize];
  std::copy_n(bytes.begin() + 3 + kSplitIdSize, share.commitment.size(), share.commitment.begin());
  share.y = SecretBytes::CopyFrom(bytes.subspan(kHeaderSize, body - kHeaderSize));
  if (share.threshold == 0 || share.x == 0) {
    return InvalidArgumentError(
        "the share is malformed: its threshold and number must be 1 to 255");
  }
  return share;
}

Status ShareCombiner::Add(std::string_view text) {
  if (secret_.has_value()) {
    return FailedPreconditionError("the threshold is already reached: no more shares are needed");
  }
  KMS_ASSIGN_OR_RETURN(CustodianShare share, ParseShare(text));
  if (expected_.has_value()) {
    // One message for every mismatch, naming neither split nor number: the share may be forged, and
    // whatever it carries is the caller's own input, not something to confirm or echo back.
    const ShareExpectation& e = *expected_;
    if (share.split_id != e.split_id || share.threshold != e.threshold || share.x > e.shares ||
        share.y.size() != e.secret_size ||
        (e.commitment.has_value() && share.commitment != *e.commitment)) {
      return InvalidArgumentError(
          "the share does not belong to this appliance (a foreign split, or another threshold or "
          "number of shares): it was refused, and the shares entered so far are kept");
    }
  }
  const std::string name = "share " + std::to_string(share.x);
  if (!shares_.empty()) {
    const CustodianShare& first = shares_.front();
    if (share.split_id != first.split_id) {
      return InvalidArgumentError(name +
                                  " belongs to another split than the shares entered so far");
    }
    if (share.threshold != first.threshold || share.commitment != first.commitment ||
        share.y.size() != first.y.size()) {
      return InvalidArgumentError(
          name +
          " does not match the shares entered so far: one of them was altered (reset and "
          "enter the shares again)");
    }
    for (const CustodianShare& entered : shares_) {
      if (entered.x == share.x) return InvalidArgumentError(name + " was already entered");
    }
  }
  shares_.push_back(std::move(share));
  if (shares_.size() < shares_.front().threshold) return Status();

  SecretBytes secret = Interpolate(shares_);
  const CustodianShare& first = shares_.front();
  if (ShareCommitment(first.split_id, first.threshold, secret) != first.commitment) {
    Reset();
    ++failed_combinations_;
    return InvalidArgumentError(
        "the shares do not rebuild the secret they were split from: one of them was altered; every "
        "share entered was forgotten, start again");
  }
  secret_ = std::move(secret);
  return Status();
}

ShareCombiner::Progress ShareCombiner::progress() const {
  Progress p;
  p.entered = shares_.size();
  if (expected_.has_value()) {
    p.threshold = expected_->threshold;
  } else {
    p.threshold = shares_.empty() ? 0 : shares_.front().threshold;
  }
  return p;
}

void ShareCombiner::Reset() {
  shares_.clear();
  secret_.reset();
}

StatusOr<SecretBytes> CombineShares(const std::vector<std::string_view>& texts) {
  ShareCombiner combiner;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (combiner.secret().has_value()) break;  // extra shares beyond the threshold are not needed
    Status added = combiner.Add(texts[i]);
    if (!added.ok()) {
      return InvalidArgumentError("share " + std::to_string(i + 1) + " of " +
                                  std::to_string(texts.size()) + " entered: " + added.message());
    }
  }
  if (!combiner.secret().has_value()) {
    const auto p = combiner.progress();
    return InvalidArgumentError("not enough shares: " + std::to_string(p.entered) + " of the " +
                                std::to_string(p.threshold) + " needed");
  }
  return combiner.secret()->Clone();
}

}  // namespace kms::firmware
