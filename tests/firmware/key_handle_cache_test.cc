#include "firmware/key_handle_cache.h"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace kms::firmware {
namespace {

hal::KeyHandle MakeHandle() {
  return std::make_shared<hal::LoadedKey>(hal::KeyAlgorithm::kAes256, hal::KeyPurpose::kEncryptDecrypt);
}

TEST_CASE("the cache evicts the least recently used version", "[unit]") {
  KeyHandleCache cache(2);
  auto a = MakeHandle(), b = MakeHandle(), c = MakeHandle();
  cache.Put("k1", 1, a);
  cache.Put("k1", 2, b);
  CHECK(cache.Get("k1", 1) == a);  // k1/1 now most recent
  cache.Put("k2", 1, c);           // evicts k1/2
  CHECK(cache.size() == 2);
  CHECK(cache.Get("k1", 2) == nullptr);
  CHECK(cache.Get("k1", 1) == a);
  CHECK(cache.Get("k2", 1) == c);
  CHECK(cache.hits() == 3);
  CHECK(cache.misses() == 1);
  // Eviction drops the cache's reference.
  CHECK(b.use_count() == 1);
}

TEST_CASE("erasing one key drops all its versions only", "[unit]") {
  KeyHandleCache cache(10);
  cache.Put("k1", 1, MakeHandle());
  cache.Put("k1", 2, MakeHandle());
  cache.Put("k10", 1, MakeHandle());
  cache.Put("k2", 1, MakeHandle());
  cache.EraseKey("k1");
  CHECK(cache.size() == 2);
  CHECK(cache.Get("k10", 1) != nullptr);
  cache.Erase("k2", 1);
  CHECK(cache.Get("k2", 1) == nullptr);
  cache.Clear();
  CHECK(cache.size() == 0);
}

TEST_CASE("a zero-capacity cache caches nothing", "[unit]") {
  KeyHandleCache cache(0);
  cache.Put("k", 1, MakeHandle());
  CHECK(cache.Get("k", 1) == nullptr);
}

TEST_CASE("the cache stays bounded under concurrent use", "[unit][concurrency]") {
  KeyHandleCache cache(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (std::uint32_t i = 0; i < 2000; ++i) {
        std::string id = "k" + std::to_string((i * 7 + static_cast<std::uint32_t>(t)) % 40);
        if (!cache.Get(id, i % 3)) cache.Put(id, i % 3, MakeHandle());
        if (i % 97 == 0) cache.EraseKey(id);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(cache.size() <= 16);
}

}  // namespace
}  // namespace kms::firmware
