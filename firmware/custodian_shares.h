// Custodian shares: Shamir's secret sharing over GF(2^8) for the unseal secret, with integrity, so
// a mistyped, damaged or foreign share is named instead of silently producing a wrong secret.
//
// `SplitSecret` cuts a secret into N shares of which any M (the threshold) rebuild it and any M-1
// reveal nothing about it. Each byte of the secret is the constant term of its own random
// polynomial of degree M-1 over GF(2^8) (reduction polynomial x^8+x^4+x^3+x^2+1, 0x11d, the one
// libgfshare uses, so `gfsplit`/`gfcombine` serve as an independent oracle in the tests); share i
// holds the polynomials' values at x = i (1..N). The coefficients come from `random`, which kmsd
// and the provisioning tool back with the HSM's RNG.
//
// A share is a small binary record, printed for its custodian as text:
//
//   version(1)=1 | split id(8) | threshold(1) | x(1) | commitment(8) | y(len) | checksum(4)
//   text: "kms1-" then the record in lowercase hex, in groups of 8 joined by '-'
//
//  * The checksum (first 4 bytes of SHA-256 over everything before it) catches a typo or a damaged
//    share on its own, before any other share is entered: ParseShare names it.
//  * The split id (random per split) ties the shares of one split together: a share from another
//    split, or another appliance, is refused by name instead of mixing into garbage.
//  * The commitment (first 8 bytes of SHA-256 over a domain label, the split id, the threshold and
//    the secret) lets the combiner check the rebuilt secret, which catches a share someone altered
//    AND re-checksummed. It is a hash of the secret, so secrets must be high-entropy (the unseal
//    secret is 32 random bytes): never split a password with this.
//
// `ShareCombiner` takes shares one at a time, as `vault operator unseal` does: it reports progress,
// refuses a duplicate or foreign share without losing the ones already entered, and can be reset.
// A combiner bound to an appliance (`ShareExpectation`, from its seal descriptor) takes the
// threshold, the split, the number of shares and the secret's size from the descriptor, never from
// the first share entered: whoever may call sys/unseal can forge a share with a valid checksum, and
// a share that chose its own threshold would choose when the secret is rebuilt. Messages never
// echo a split id or any byte of a refused share. Arithmetic on secret bytes is branch-free and
// table-free (no secret-indexed lookups).
//
// Shares and the secret live only in SecretBytes. Thread-safety: functions are pure; a
// ShareCombiner is not thread-safe (its owner serialises unseal calls).
#ifndef KMS_FIRMWARE_CUSTODIAN_SHARES_H_
#define KMS_FIRMWARE_CUSTODIAN_SHARES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms::firmware {

inline constexpr std::size_t kMaxShares = 255;
inline constexpr std::size_t kMaxSharedSecretSize = 1024;
inline constexpr std::size_t kSplitIdSize = 8;

// One parsed, checksum-verified share. `y` is secret: M of them rebuild the secret.
struct CustodianShare {
  std::array<std::uint8_t, kSplitIdSize> split_id{};
  std::uint8_t threshold = 0;
  std::uint8_t x = 0;  // 1..255: the share's number, shown to custodians as "share x"
  std::array<std::uint8_t, 8> commitment{};
  SecretBytes y;
};

// Bytes from a cryptographic RNG (the HSM's in production).
using RandomSource = std::function<StatusOr<SecretBytes>(std::size_t size)>;

// Splits `secret` (1..kMaxSharedSecretSize bytes) into `shares` text shares, any `threshold` of
// which rebuild it. 1 <= threshold <= shares <= 255, and threshold >= 2 unless shares == 1 (one
// share of threshold 1 is the secret itself, which has its uses for a single-operator lab). The
// result holds share x = 1..N in order, each as its text form.
StatusOr<std::vector<SecretBytes>> SplitSecret(const SecretBytes& secret, std::size_t threshold,
                                               std::size_t shares, const RandomSource& random);

// Parses and checks one text share. Whitespace and '-' between groups are ignored, so a share may
// be typed in any grouping. InvalidArgument with a message a custodian can act on: not a share, not
// hex, wrong length, or "checksum does not match (mistyped or damaged)".
StatusOr<CustodianShare> ParseShare(std::string_view text);

// The text form of a share (what SplitSecret hands out).
SecretBytes FormatShare(const CustodianShare& share);

// The commitment every share of a split carries. SplitSecret computes it; it is public so that y
// values made elsewhere (the libgfshare oracle in the tests) can be packed into shares.
std::array<std::uint8_t, 8> ShareCommitment(const std::array<std::uint8_t, kSplitIdSize>& split_id,
                                            std::uint8_t threshold, const SecretBytes& secret);

// What a combiner bound to an appliance accepts, all of it from the appliance's seal descriptor
// (firmware/seal.h ExpectedShares): shares of this split, made for this threshold and number of
// shares, of this secret size and, when the descriptor records it, with this commitment.
struct ShareExpectation {
  std::array<std::uint8_t, kSplitIdSize> split_id{};
  std::uint8_t threshold = 0;
  std::uint8_t shares = 0;  // a share's number x must be 1..shares
  std::size_t secret_size = 0;
  std::optional<std::array<std::uint8_t, 8>> commitment;
};

// Collects shares toward a threshold, one at a time.
class ShareCombiner {
 public:
  struct Progress {
    std::size_t entered = 0;
    std::size_t threshold = 0;  // unbound: 0 until the first share is entered
  };

  // Unbound (kms-provision restore, where no store exists yet): the first share entered sets the
  // split, threshold and commitment the others must match.
  ShareCombiner() = default;
  // Bound to an appliance: every share must match `expected`, from the first one on.
  explicit ShareCombiner(const ShareExpectation& expected) : expected_(expected) {}

  // Adds one text share. Refuses (InvalidArgument) a malformed or damaged share, a share that does
  // not match the expectation or the shares entered so far, a share entered before, and any share
  // once the threshold is reached; a refused share changes nothing. When this share reaches the
  // threshold, the secret is rebuilt and checked against the shares' commitment: a mismatch is
  // InvalidArgument ("the shares do not rebuild the secret they were split from") and resets the
  // combiner, since it cannot tell which share lies; failed_combinations() counts those.
  Status Add(std::string_view text);

  Progress progress() const;
  // The rebuilt secret, once the threshold is reached; empty before.
  const std::optional<SecretBytes>& secret() const { return secret_; }
  // Combinations refused by the commitment check since the combiner was made.
  std::size_t failed_combinations() const { return failed_combinations_; }
  // Forgets every share entered (and the rebuilt secret).
  void Reset();

 private:
  std::optional<ShareExpectation> expected_;
  std::vector<CustodianShare> shares_;
  std::optional<SecretBytes> secret_;
  std::size_t failed_combinations_ = 0;
};

// Rebuilds the secret from exactly-threshold or more shares at once (the provisioning tool's
// restore path). Errors name the share by position ("share 2 of 3 entered: ...").
StatusOr<SecretBytes> CombineShares(const std::vector<std::string_view>& texts);

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_CUSTODIAN_SHARES_H_
