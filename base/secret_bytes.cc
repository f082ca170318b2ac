#include "base/secret_bytes.h"

#include <mbedtls/platform_util.h>

namespace kms {

void SecureWipe(void* p, std::size_t n) {
  if (p != nullptr && n != 0) mbedtls_platform_zeroize(p, n);
}

void WipeString(std::string& s) {
  // Wipe the full capacity: the bytes past size() may hold an earlier, longer secret.
  s.resize(s.capacity());
  SecureWipe(s.data(), s.size());
  s.clear();
}

bool ConstantTimeEquals(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  // Accumulate differences without branching on data; volatile keeps the loop from short-circuiting.
  volatile std::uint8_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace kms
