#include "base/encoding.h"

#include <mbedtls/base64.h>

#include <catch2/catch.hpp>
#include <random>

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

TEST_CASE("base64 agrees with mbedTLS on every length and byte value", "[unit][base]") {
  std::mt19937 rng(7);
  for (std::size_t len = 0; len < 200; ++len) {
    Bytes data(len);
    for (auto& b : data) b = static_cast<std::uint8_t>(rng());
    if (len == 3) data = {0xfb, 0xff, 0xbf};  // '+' and '/' both appear
    std::string ours = Base64Encode(data);
    std::string ref(len / 3 * 4 + 8, '\0');
    std::size_t n = 0;
    REQUIRE(mbedtls_base64_encode(reinterpret_cast<unsigned char*>(ref.data()), ref.size(), &n,
                                  data.data(), data.size()) == 0);
    ref.resize(n);
    REQUIRE(ours == ref);
    auto back = Base64Decode(ours);
    REQUIRE(back.has_value());
    REQUIRE(*back == data);
  }
  CHECK(Base64Encode(Bytes{0xfb, 0xff, 0xbf}) == "+/+/");
}

TEST_CASE("base64 decode refuses every character outside the alphabet", "[unit][base]") {
  for (int c = 0; c < 256; ++c) {
    std::string text = "QUJD";
    text[1] = static_cast<char>(c);
    bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    CHECK(Base64Decode(text).has_value() == alphabet);
  }
  CHECK_FALSE(Base64Decode("====").has_value());
  CHECK_FALSE(Base64Decode("A===").has_value());
  CHECK_FALSE(Base64Decode("Zm9v=mE=").has_value());
  CHECK_FALSE(Base64Decode("ab=c").has_value());
  CHECK(Base64Decode("").value().empty());
}

}  // namespace
}  // namespace kms

TEST_CASE("PrintableUtf8 keeps valid UTF-8 and replaces the rest with '?'", "[unit]") {
  using kms::PrintableUtf8;
  CHECK(PrintableUtf8("plain ascii") == "plain ascii");
  CHECK(PrintableUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
  CHECK(PrintableUtf8("line\nbreak\ttab\x7f") == "line?break?tab?");
  CHECK(PrintableUtf8("\xff\xfe") == "??");
  CHECK(PrintableUtf8("\xc0\xaf") == "??");          // overlong '/'
  CHECK(PrintableUtf8("\xed\xa0\x80") == "???");     // a UTF-16 surrogate
  CHECK(PrintableUtf8("\xf4\x90\x80\x80") == "????");  // above U+10FFFF
  CHECK(PrintableUtf8("cut \xe2\x82") == "cut ??");  // truncated sequence
}
