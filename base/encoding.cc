#include "base/encoding.h"


namespace kms {

std::string HexEncode(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Base64 (RFC 4648 §4) in arithmetic that never branches on or indexes a table with the data, so
// encoding a data key or decoding a plaintext leaks nothing through timing or the cache (the technique
// of libsodium's sodium_bin2base64). It is also one pass, several times faster than mbedTLS 2.28's
// two-pass decode: base64 showed as a fifth of the AWS door's CPU under load (docs/performance.md).
char EncodeSextet(unsigned v) {
  int x = static_cast<int>(v);
  int c = x + 'A';
  c += ((25 - x) >> 8) & 6;    // 26..51 -> 'a'..'z'
  c -= ((51 - x) >> 8) & 75;   // 52..61 -> '0'..'9'
  c -= ((61 - x) >> 8) & 15;   // 62 -> '+'
  c += ((62 - x) >> 8) & 3;    // 63 -> '/'
  return static_cast<char>(c);
}

// The sextet of a base64 character, or -1 when it is not one.
int DecodeSextet(unsigned char ch) {
  int c = ch;
  int v = -1;
  v += (((64 - c) & (c - 91)) >> 8) & (c - 64);   // 'A'..'Z' -> 0..25
  v += (((96 - c) & (c - 123)) >> 8) & (c - 70);  // 'a'..'z' -> 26..51
  v += (((47 - c) & (c - 58)) >> 8) & (c + 5);    // '0'..'9' -> 52..61
  v += (((42 - c) & (c - 44)) >> 8) & 63;         // '+' -> 62
  v += (((46 - c) & (c - 48)) >> 8) & 64;         // '/' -> 63
  return v;
}

// Padded base64, no whitespace: the wire formats we speak never wrap lines.
template <typename Out>
Status DecodeInto(std::string_view text, Out& out) {
  if (text.size() % 4 != 0) return InvalidArgumentError("invalid base64");
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  out.resize(text.size() / 4 * 3 - padding);
  int invalid = 0;
  std::size_t o = 0;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int a = DecodeSextet(static_cast<unsigned char>(text[i]));
    int b = DecodeSextet(static_cast<unsigned char>(text[i + 1]));
    int c = (last && padding == 2) ? 0 : DecodeSextet(static_cast<unsigned char>(text[i + 2]));
    int d = (last && padding >= 1) ? 0 : DecodeSextet(static_cast<unsigned char>(text[i + 3]));
    invalid |= a | b | c | d;  // -1 anywhere sets the sign bit
    unsigned n = (static_cast<unsigned>(a) << 18) | (static_cast<unsigned>(b) << 12) |
                 (static_cast<unsigned>(c) << 6) | static_cast<unsigned>(d);
    out[o++] = static_cast<std::uint8_t>(n >> 16);
    if (!(last && padding == 2)) out[o++] = static_cast<std::uint8_t>(n >> 8);
    if (!(last && padding >= 1)) out[o++] = static_cast<std::uint8_t>(n);
  }
  if (invalid < 0) {
    SecureWipe(out.data(), out.size());
    out.clear();
    return InvalidArgumentError("invalid base64");
  }
  return Status();
}
}  // namespace

StatusOr<Bytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return InvalidArgumentError("hex string has odd length");
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgumentError("invalid hex digit");
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string Base64Encode(ByteView bytes) {
  std::string out;
  out.resize((bytes.size() + 2) / 3 * 4);
  std::size_t o = 0;
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned n = (unsigned{bytes[i]} << 16) | (unsigned{bytes[i + 1]} << 8) | bytes[i + 2];
    out[o++] = EncodeSextet(n >> 18);
    out[o++] = EncodeSextet((n >> 12) & 63);
    out[o++] = EncodeSextet((n >> 6) & 63);
    out[o++] = EncodeSextet(n & 63);
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    unsigned n = unsigned{bytes[i]} << 16;
    if (rest == 2) n |= unsigned{bytes[i + 1]} << 8;
    out[o++] = EncodeSextet(n >> 18);
    out[o++] = EncodeSextet((n >> 12) & 63);
    out[o++] = rest == 2 ? EncodeSextet((n >> 6) & 63) : '=';
    out[o++] = '=';
  }
  return out;
}

StatusOr<Bytes> Base64Decode(std::string_view text) {
  Bytes out;
  KMS_RETURN_IF_ERROR(DecodeInto(text, out));
  return out;
}

StatusOr<SecretBytes> Base64DecodeSecret(std::string_view text) {
  SecretBytes::Storage out;
  KMS_RETURN_IF_ERROR(DecodeInto(text, out));
  return SecretBytes(std::move(out));
}

std::string PrintableUtf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size();) {
    const auto c = static_cast<unsigned char>(in[i]);
    std::size_t len = 0;
    if (c >= 0x20 && c < 0x7f) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) len = 3;
    else if (c >= 0xf0 && c <= 0xf4) len = 4;
    bool valid = len != 0 && i + len <= in.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(in[i + k]) & 0xc0) == 0x80;
    }
    if (valid && len == 3) {  // no overlongs, no surrogates
      const auto c1 = static_cast<unsigned char>(in[i + 1]);
      valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
    }
    if (valid && len == 4) {  // no overlongs, nothing above U+10FFFF
      const auto c1 = static_cast<unsigned char>(in[i + 1]);
      valid = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (valid) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

}  // namespace kms
