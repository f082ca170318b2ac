// Byte buffers for non-secret data (ciphertexts, public keys, signatures, wrapped blobs).
//
// `Bytes` owns, `ByteView` borrows. Anything secret (plaintext, data keys, PINs, shares) uses
// `SecretBytes` from base/secret_bytes.h instead, which wipes itself.
#ifndef KMS_BASE_BYTES_H_
#define KMS_BASE_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kms {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}
inline std::string_view AsStringView(ByteView b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string ToString(ByteView b) { return std::string(AsStringView(b)); }

// Compares in time that depends only on the lengths, never on where the first difference is.
bool ConstantTimeEquals(ByteView a, ByteView b);

}  // namespace kms

#endif  // KMS_BASE_BYTES_H_
