#include "firmware/key_handle_cache.h"

namespace kms::firmware {

hal::KeyHandle KeyHandleCache::Get(const std::string& key_id, std::uint32_t version) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(Id(key_id, version));
  if (it == entries_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second.lru_position);
  return it->second.handle;
}

void KeyHandleCache::Put(const std::string& key_id, std::uint32_t version, hal::KeyHandle handle) {
  if (capacity_ == 0) return;
  hal::KeyHandle evicted;  // released outside the lock: dropping a handle may call into the device
  std::lock_guard lock(mu_);
  Id id(key_id, version);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    it->second.handle = std::move(handle);
    lru_.splice(lru_.begin(), lru_, it->second.lru_position);
    return;
  }
  lru_.push_front(id);
  entries_.emplace(std::move(id), Entry{std::move(handle), lru_.begin()});
  if (entries_.size() > capacity_) {
    auto victim = entries_.find(lru_.back());
    evicted = std::move(victim->second.handle);
    entries_.erase(victim);
    lru_.pop_back();
  }
}

void KeyHandleCache::Erase(const std::string& key_id, std::uint32_t version) {
  hal::KeyHandle evicted;
  std::lock_guard lock(mu_);
  auto it = entries_.find(Id(key_id, version));
  if (it == entries_.end()) return;
  evicted = std::move(it->second.handle);
  lru_.erase(it->second.lru_position);
  entries_.erase(it);
}

void KeyHandleCache::EraseKey(const std::string& key_id) {
  std::list<hal::KeyHandle> evicted;
  std::lock_guard lock(mu_);
  auto it = entries_.lower_bound(Id(key_id, 0));
  while (it != entries_.end() && it->first.first == key_id) {
    evicted.push_back(std::move(it->second.handle));
    lru_.erase(it->second.lru_position);
    it = entries_.erase(it);
  }
}

void KeyHandleCache::Clear() {
  std::map<Id, Entry> evicted;
  std::lock_guard lock(mu_);
  evicted.swap(entries_);
  lru_.clear();
}

std::size_t KeyHandleCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}
std::uint64_t KeyHandleCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}
std::uint64_t KeyHandleCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

}  // namespace kms::firmware
