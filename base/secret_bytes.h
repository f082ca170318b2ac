// SecretBytes: the only container for plaintext secrets (data keys, plaintexts, PINs, shares).
//
// Storage is a heap vector whose allocator wipes every buffer with `mbedtls_platform_zeroize` (a wipe the
// compiler may not elide) before freeing it, including the old buffer on reallocation. The type is
// move-only (copies must be explicit: `Clone()`), has no stream operator and no implicit conversion to a
// string or a span, so a secret cannot slip into a log line by accident. Raw access has one greppable
// name, `ExposeSecret()`. Equality is constant-time.
//
// Not `std::string`: short strings live inline where no allocator wipes them. Protobuf `bytes` fields are
// std::string: copy into SecretBytes and wipe the field with `WipeString` before the message dies.
//
// Thread-safety: as std::vector.
#ifndef KMS_BASE_SECRET_BYTES_H_
#define KMS_BASE_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include "base/bytes.h"

namespace kms {

// Wipes [p, p+n) in a way the optimiser keeps.
void SecureWipe(void* p, std::size_t n);
// Wipes a std::string's whole capacity (covers the inline buffer of short strings) and clears it.
void WipeString(std::string& s);

template <typename T>
struct ZeroizingAllocator {
  using value_type = T;
  ZeroizingAllocator() = default;
  template <typename U>
  ZeroizingAllocator(const ZeroizingAllocator<U>&) noexcept {}  // NOLINT
  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    SecureWipe(p, n * sizeof(T));
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const ZeroizingAllocator<U>&) const noexcept {
    return true;
  }
};

class SecretBytes {
 public:
  using Storage = std::vector<std::uint8_t, ZeroizingAllocator<std::uint8_t>>;

  SecretBytes() = default;
  explicit SecretBytes(std::size_t size) : data_(size) {}
  explicit SecretBytes(Storage&& storage) : data_(std::move(storage)) {}
  // Copies `bytes` in; the caller stays responsible for wiping its own copy.
  static SecretBytes CopyFrom(ByteView bytes) {
    SecretBytes s;
    s.data_.assign(bytes.begin(), bytes.end());
    return s;
  }
  // Copies the string's bytes and wipes the string.
  static SecretBytes TakeFrom(std::string& s) {
    SecretBytes out = CopyFrom(AsBytes(s));
    WipeString(s);
    return out;
  }

  SecretBytes(SecretBytes&&) noexcept = default;
  SecretBytes& operator=(SecretBytes&&) noexcept = default;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes() = default;

  SecretBytes Clone() const { return CopyFrom(ExposeSecret()); }

  std::size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  void resize(std::size_t n) { data_.resize(n); }
  void clear() {
    SecureWipe(data_.data(), data_.size());
    data_.clear();
  }
  void Append(ByteView b) { data_.insert(data_.end(), b.begin(), b.end()); }

  // The raw secret. Every call site is a place where a secret leaves its container: keep them few.
  ByteView ExposeSecret() const { return ByteView(data_.data(), data_.size()); }
  std::span<std::uint8_t> ExposeSecretMutable() { return std::span(data_.data(), data_.size()); }

  friend bool operator==(const SecretBytes& a, const SecretBytes& b) {
    return ConstantTimeEquals(a.ExposeSecret(), b.ExposeSecret());
  }

 private:
  Storage data_;
};

}  // namespace kms

#endif  // KMS_BASE_SECRET_BYTES_H_
