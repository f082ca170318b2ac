#include <catch2/catch.hpp>

#include "tests/support/softhsm_fixture.h"

namespace kms::testing {
namespace {

TEST_CASE("smoke", "[softhsm]") {
  auto f = SoftHsmFixture::Create();
  INFO((f.has_value() ? std::string("ok") : f.error().ToString()));
  REQUIRE(f.has_value());
  hal::Hsm& hsm = (*f)->hsm();
  const auto& caps = hsm.capabilities();
  CHECK(caps.aes_gcm);
  CHECK(caps.key_wrap_pad);
  CHECK(caps.key_algorithms.size() == 12);
  CHECK(caps.oaep_hashes == std::set<hal::HashAlgorithm>{hal::HashAlgorithm::kSha1});
  for (auto a : {hal::KeyAlgorithm::kAes256}) {
    auto k = hsm.GenerateKey(a, hal::KeyPurpose::kEncryptDecrypt);
    INFO((k.has_value() ? std::string("ok") : k.error().ToString()));
    REQUIRE(k.has_value());
    auto c = hsm.EncryptAesGcm(*k, AsBytes("hello"), AsBytes("aad"));
    INFO((c.has_value() ? std::string("ok") : c.error().ToString()));
    REQUIRE(c.has_value());
    auto p = hsm.DecryptAesGcm(*k, c->iv, c->ciphertext, c->tag, AsBytes("aad"));
    REQUIRE(p.has_value());
    CHECK(AsStringView(p->ExposeSecret()) == "hello");
    auto w = hsm.WrapKey(*k);
    INFO((w.has_value() ? std::string("ok") : w.error().ToString()));
    REQUIRE(w.has_value());
    auto u = hsm.UnwrapKey(*w);
    INFO((u.has_value() ? std::string("ok") : u.error().ToString()));
    REQUIRE(u.has_value());
    auto p2 = hsm.DecryptAesGcm(*u, c->iv, c->ciphertext, c->tag, AsBytes("aad"));
    REQUIRE(p2.has_value());
  }
}

}  // namespace
}  // namespace kms::testing
