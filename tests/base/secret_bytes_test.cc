#include "base/secret_bytes.h"

#include <catch2/catch.hpp>
#include <type_traits>

namespace kms {
namespace {

static_assert(!std::is_copy_constructible_v<SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);

TEST_CASE("SecretBytes compares by content and moves", "[unit][base]") {
  auto a = SecretBytes::CopyFrom(AsBytes("secret-one"));
  auto b = SecretBytes::CopyFrom(AsBytes("secret-one"));
  auto c = SecretBytes::CopyFrom(AsBytes("secret-two"));
  CHECK(a == b);
  CHECK_FALSE(a == c);
  CHECK_FALSE(a == SecretBytes::CopyFrom(AsBytes("secret")));
  SecretBytes moved = std::move(a);
  CHECK(moved.size() == 10);
  CHECK(moved == b);
}

TEST_CASE("TakeFrom wipes the source string", "[unit][base]") {
  std::string s = "a short pin";
  auto secret = SecretBytes::TakeFrom(s);
  CHECK(s.empty());
  // The inline buffer that held the PIN was overwritten, not just truncated.
  CHECK(std::string_view(s.data(), 11).find("pin") == std::string_view::npos);
  CHECK(AsStringView(secret.ExposeSecret()) == "a short pin");
}

TEST_CASE("ConstantTimeEquals", "[unit][base]") {
  CHECK(ConstantTimeEquals(AsBytes(""), AsBytes("")));
  CHECK(ConstantTimeEquals(AsBytes("abc"), AsBytes("abc")));
  CHECK_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("abd")));
  CHECK_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("ab")));
}

}  // namespace
}  // namespace kms
