// libFuzzer target: custodian share text (firmware/custodian_shares.h ParseShare/FormatShare) and
// the combiner fed hostile shares.
//
// The first byte picks a part. Invariants:
//  * raw text: ParseShare agrees with a direct reading of the format (separators trimmed, "kms1"
//    in any case, hex digits with '-' and whitespace ignored, a whole number of bytes, the size
//    bounds, the SHA-256 checksum, version 1, threshold and number >= 1) on acceptance and on every
//    field; an accepted share formats back to text that parses to the same share;
//  * a real split (secret, threshold, count and the RNG's bytes from the input) rebuilds its
//    secret from any threshold of its shares, entered in any order and in any spelling (case,
//    grouping, whitespace);
//  * hostile shares: shares altered and re-checksummed (so ParseShare takes them), duplicates,
//    shares of another split or another threshold, mixed in: the combiner never yields a secret
//    other than the split's, a refused share changes nothing, and every yielded secret matches the
//    shares' commitment.
#include <mbedtls/sha256.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret_bytes.h"
#include "firmware/custodian_shares.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

using kms::Bytes;
using kms::ByteView;
using kms::SecretBytes;
using kms::firmware::CustodianShare;

bool Separator(char c) { return c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

struct RefShare {
  std::array<std::uint8_t, 8> split_id{};
  std::uint8_t threshold = 0;
  std::uint8_t x = 0;
  std::array<std::uint8_t, 8> commitment{};
  Bytes y;
};

// The format read straight from the header comment.
std::optional<RefShare> ReferenceParse(std::string_view text) {
  while (!text.empty() && Separator(text.front())) text.remove_prefix(1);
  while (!text.empty() && Separator(text.back())) text.remove_suffix(1);
  if (text.size() < 4) return std::nullopt;
  for (std::size_t i = 0; i < 4; ++i) {
    if (Lower(text[i]) != "kms1"[i]) return std::nullopt;
  }
  text.remove_prefix(4);
  std::string digits;
  for (char c : text) {
    if (Separator(c)) continue;
    if (Hex(c) < 0) return std::nullopt;
    digits += c;
  }
  if (digits.size() % 2 != 0) return std::nullopt;
  Bytes record;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    record.push_back(static_cast<std::uint8_t>(Hex(digits[i]) * 16 + Hex(digits[i + 1])));
  }
  constexpr std::size_t kHeader = 1 + 8 + 1 + 1 + 8;
  if (record.size() < kHeader + 1 + 4 || record.size() > kHeader + 1024 + 4) return std::nullopt;
  std::uint8_t digest[32];
  mbedtls_sha256_ret(record.data(), record.size() - 4, digest, 0);
  if (!std::equal(digest, digest + 4, record.end() - 4)) return std::nullopt;
  if (record[0] != 1) return std::nullopt;
  RefShare s;
  std::copy_n(record.begin() + 1, 8, s.split_id.begin());
  s.threshold = record[9];
  s.x = record[10];
  std::copy_n(record.begin() + 11, 8, s.commitment.begin());
  s.y.assign(record.begin() + kHeader, record.end() - 4);
  if (s.threshold == 0 || s.x == 0) return std::nullopt;
  return s;
}

bool SameShare(const CustodianShare& a, const CustodianShare& b) {
  return a.split_id == b.split_id && a.threshold == b.threshold && a.x == b.x &&
         a.commitment == b.commitment && a.y.ExposeSecret().size() == b.y.ExposeSecret().size() &&
         std::equal(a.y.ExposeSecret().begin(), a.y.ExposeSecret().end(),
                    b.y.ExposeSecret().begin());
}

std::string Text(const SecretBytes& s) { return std::string(kms::AsStringView(s.ExposeSecret())); }

// The same share in another spelling: case, grouping and whitespace changed.
std::string Respell(const std::string& text, kms::fuzz::ByteReader& in) {
  std::string out;
  const bool upper = in.Bool();
  const std::size_t group = in.Range(0, 12);
  std::size_t n = 0;
  for (char c : text) {
    if (c == '-') continue;
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    out += c;
    if (group != 0 && ++n % group == 0) out += in.Bool() ? ' ' : '-';
  }
  return (in.Bool() ? "\n " : "") + out + (in.Bool() ? " \r\n" : "");
}

void RawText(std::string_view text) {
  auto got = kms::firmware::ParseShare(text);
  auto want = ReferenceParse(text);
  KMS_FUZZ_CHECK(got.has_value() == want.has_value(), "ParseShare accepts the documented format");
  if (!got) {
    KMS_FUZZ_CHECK(got.error().code() == kms::StatusCode::kInvalidArgument,
                   "a refused share is InvalidArgument");
    return;
  }
  KMS_FUZZ_CHECK(got->split_id == want->split_id && got->threshold == want->threshold &&
                     got->x == want->x && got->commitment == want->commitment &&
                     Bytes(got->y.ExposeSecret().begin(), got->y.ExposeSecret().end()) == want->y,
                 "ParseShare reads every field as documented");
  auto again = kms::firmware::ParseShare(Text(kms::firmware::FormatShare(*got)));
  KMS_FUZZ_CHECK(again && SameShare(*again, *got), "format -> parse is the identity");
}

// A split from the input, then a stream of shares (real, respelled, altered, foreign, duplicated)
// entered into a combiner.
void Combine(kms::fuzz::ByteReader& in) {
  const std::size_t count = in.Range(1, 8);
  const std::size_t threshold = count == 1 ? 1 : in.Range(2, count);
  Bytes secret_bytes = kms::ToBytes(in.String(40));
  if (secret_bytes.empty()) secret_bytes.push_back(0x5a);
  const SecretBytes secret = SecretBytes::CopyFrom(secret_bytes);
  auto random = [&in](std::size_t n) -> kms::StatusOr<SecretBytes> {
    SecretBytes out(n);
    for (auto& b : out.ExposeSecretMutable()) b = in.Byte();
    return out;
  };
  auto split = kms::firmware::SplitSecret(secret, threshold, count, random);
  KMS_FUZZ_CHECK(split.has_value() && split->size() == count, "a valid split succeeds");
  std::vector<std::string> shares;
  std::vector<CustodianShare> parsed_shares;
  for (const SecretBytes& s : *split) {
    shares.push_back(Text(s));
    auto parsed = kms::firmware::ParseShare(shares.back());
    KMS_FUZZ_CHECK(parsed.has_value(), "a split's share parses");
    parsed_shares.push_back(std::move(*parsed));
  }

  // A foreign split of the same secret and one of another secret, for hostile entries.
  auto foreign = kms::firmware::SplitSecret(secret, threshold, count, random);
  KMS_FUZZ_CHECK(foreign.has_value(), "a second split succeeds");

  const bool bound = in.Bool();
  std::optional<kms::firmware::ShareExpectation> expectation;
  if (bound) {
    const CustodianShare* first = &parsed_shares[0];
    kms::firmware::ShareExpectation e;
    e.split_id = first->split_id;
    e.threshold = first->threshold;
    e.shares = static_cast<std::uint8_t>(count);
    e.secret_size = secret.size();
    if (in.Bool()) e.commitment = first->commitment;
    expectation = e;
  }
  kms::firmware::ShareCombiner combiner =
      bound ? kms::firmware::ShareCombiner(*expectation) : kms::firmware::ShareCombiner();

  std::vector<std::size_t> entered;  // real shares (by x) entered since the last reset
  bool hostile_entered = false;      // an accepted share since the last reset was not genuine
  const std::size_t steps = in.Range(1, 16);
  for (std::size_t step = 0; step < steps && !combiner.secret().has_value(); ++step) {
    std::string text;
    const std::size_t pick = in.Range(0, count - 1);
    switch (in.Pick(6)) {
      case 0:
      case 1:
        text = shares[pick];
        break;
      case 2:
        text = Respell(shares[pick], in);
        break;
      case 3: {
        // Altered y (or header) and re-checksummed: what someone who can type a share can do.
        CustodianShare copy;
        copy.split_id = parsed_shares[pick].split_id;
        copy.threshold = parsed_shares[pick].threshold;
        copy.x = parsed_shares[pick].x;
        copy.commitment = parsed_shares[pick].commitment;
        copy.y = parsed_shares[pick].y.Clone();
        CustodianShare* share = &copy;
        const std::size_t field = in.Pick(4);
        if (field == 0) {
          auto y = share->y.ExposeSecretMutable();
          y[in.Range(0, y.size() - 1)] ^= static_cast<std::uint8_t>(in.Range(1, 255));
        } else if (field == 1) {
          share->x = static_cast<std::uint8_t>(in.Range(1, 255));
        } else if (field == 2) {
          share->threshold = static_cast<std::uint8_t>(in.Range(1, 255));
        } else {
          share->commitment[in.Range(0, 7)] ^= static_cast<std::uint8_t>(in.Range(1, 255));
        }
        text = Text(kms::firmware::FormatShare(*share));
        break;
      }
      case 4:
        text = Text((*foreign)[pick]);
        break;
      default:
        text = in.String(200);
        break;
    }
    const auto before = combiner.progress();
    const std::size_t failed_before = combiner.failed_combinations();
    const kms::Status added = combiner.Add(text);
    auto parsed = kms::firmware::ParseShare(text);
    if (!added.ok()) {
      const auto after = combiner.progress();
      const bool was_reset = combiner.failed_combinations() == failed_before + 1;
      KMS_FUZZ_CHECK(was_reset || (after.entered == before.entered &&
                                   after.threshold == before.threshold),
                     "a refused share changes nothing (unless the combination was refused)");
      if (was_reset) {
        KMS_FUZZ_CHECK(after.entered == 0, "a refused combination forgets every share");
        entered.clear();
        hostile_entered = false;
      }
      continue;
    }
    KMS_FUZZ_CHECK(parsed.has_value(), "the combiner takes only shares that parse");
    // Whether the text is a genuine share of the split, whatever the fuzzer meant.
    bool is_genuine = false;
    for (const CustodianShare& real : parsed_shares) is_genuine = is_genuine || SameShare(real, *parsed);
    if (is_genuine) {
      entered.push_back(parsed->x);
    } else {
      hostile_entered = true;
    }
  }

  if (combiner.secret().has_value()) {
    const SecretBytes& got = *combiner.secret();
    const bool right = got.size() == secret.size() &&
                       std::equal(got.ExposeSecret().begin(), got.ExposeSecret().end(),
                                  secret.ExposeSecret().begin());
    // The only secret a combination may yield is one whose commitment the shares carry; with a
    // genuine split, that is the split's secret (a commitment collision of 64 bits aside).
    KMS_FUZZ_CHECK(right, "a combination yields the split's secret or nothing");
  } else if (entered.size() >= threshold && !hostile_entered) {
    KMS_FUZZ_CHECK(false, "a threshold of genuine shares rebuilds the secret");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kms::fuzz::ByteReader in(data, size);
  if (in.Byte() % 2 == 0) {
    RawText(std::string_view(reinterpret_cast<const char*>(data), size).substr(size > 0 ? 1 : 0));
  } else {
    Combine(in);
  }
  return 0;
}
