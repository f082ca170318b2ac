#include "base/encoding.h"

#include <mbedtls/base64.h>

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

// Base64 with padding, no whitespace: mbedtls accepts line breaks inside the text, the wire formats
// we speak do not.
bool IsStrictBase64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || c == '+' || c == '/') continue;
    if (c == '=' && i + 2 >= text.size()) continue;
    return false;
  }
  return true;
}

template <typename Out>
Status DecodeInto(std::string_view text, Out& out) {
  if (!IsStrictBase64(text)) return InvalidArgumentError("invalid base64");
  std::size_t needed = 0;
  const auto* src = reinterpret_cast<const unsigned char*>(text.data());
  int rc = mbedtls_base64_decode(nullptr, 0, &needed, src, text.size());
  if (rc != 0 && rc != MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) {
    return InvalidArgumentError("invalid base64");
  }
  out.resize(needed);
  std::size_t written = 0;
  rc = mbedtls_base64_decode(out.data(), out.size(), &written, src, text.size());
  if (rc != 0) return InvalidArgumentError("invalid base64");
  out.resize(written);
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
  std::size_t needed = 0;
  mbedtls_base64_encode(nullptr, 0, &needed, bytes.data(), bytes.size());
  std::string out(needed, '\0');
  std::size_t written = 0;
  mbedtls_base64_encode(reinterpret_cast<unsigned char*>(out.data()), out.size(), &written,
                        bytes.data(), bytes.size());
  out.resize(written);
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

}  // namespace kms
