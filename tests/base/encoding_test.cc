#include "base/encoding.h"

#include <catch2/catch.hpp>

namespace kms {
namespace {

TEST_CASE("hex round trip and rejects", "[unit][base]") {
  CHECK(HexEncode(AsBytes("\x01\xab")) == "01ab");
  CHECK(HexDecode("01AB").value() == Bytes{0x01, 0xab});
  CHECK_FALSE(HexDecode("abc").has_value());
  CHECK_FALSE(HexDecode("zz").has_value());
}

TEST_CASE("base64 follows RFC 4648 test vectors and is strict", "[unit][base]") {
  CHECK(Base64Encode(AsBytes("")) == "");
  CHECK(Base64Encode(AsBytes("f")) == "Zg==");
  CHECK(Base64Encode(AsBytes("fo")) == "Zm8=");
  CHECK(Base64Encode(AsBytes("foobar")) == "Zm9vYmFy");
  CHECK(ToString(Base64Decode("Zm9vYmE=").value()) == "fooba");
  CHECK_FALSE(Base64Decode("Zm9vYmE").has_value());     // missing padding
  CHECK_FALSE(Base64Decode("Zm9v\nYmFy").has_value());  // embedded newline
  CHECK_FALSE(Base64Decode("Zm=vYmFy").has_value());    // padding in the middle
  CHECK_FALSE(Base64Decode("Zm9v YmE=").has_value());
  auto secret = Base64DecodeSecret("c2VjcmV0").value();
  CHECK(AsStringView(secret.ExposeSecret()) == "secret");
}

}  // namespace
}  // namespace kms
