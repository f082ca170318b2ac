// KeyHandleCache: a bounded LRU of unwrapped key versions, as HSM session objects (hal::KeyHandle),
// keyed by (key id, version). A hot key costs one HSM call per operation; a cold one an unwrap more
// (docs/softhsm2.md "Measured speed"). Evicting an entry drops the cache's reference; the device
// object is destroyed when the last in-flight operation using it lets go (hal/hsm.h handle
// contract).
//
// Thread-safety: every method may be called concurrently (one mutex; the critical sections are map
// operations only, never HSM calls).
#ifndef KMS_FIRMWARE_KEY_HANDLE_CACHE_H_
#define KMS_FIRMWARE_KEY_HANDLE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "hal/hsm.h"

namespace kms::firmware {

class KeyHandleCache {
 public:
  // capacity 0 disables caching.
  explicit KeyHandleCache(std::size_t capacity) : capacity_(capacity) {}

  // The cached handle, made most recently used; nullptr on a miss.
  hal::KeyHandle Get(const std::string& key_id, std::uint32_t version);
  // Inserts or replaces; evicts the least recently used entry beyond capacity.
  void Put(const std::string& key_id, std::uint32_t version, hal::KeyHandle handle);
  void Erase(const std::string& key_id, std::uint32_t version);
  // Drops every version of `key_id` (deletion).
  void EraseKey(const std::string& key_id);
  void Clear();

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }
  std::uint64_t hits() const;
  std::uint64_t misses() const;

 private:
  using Id = std::pair<std::string, std::uint32_t>;
  struct Entry {
    hal::KeyHandle handle;
    std::list<Id>::iterator lru_position;
  };

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::list<Id> lru_;  // front = most recently used
  std::map<Id, Entry> entries_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace kms::firmware

#endif  // KMS_FIRMWARE_KEY_HANDLE_CACHE_H_
