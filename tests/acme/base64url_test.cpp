#include "base64url.hpp"

#include <gtest/gtest.h>

namespace edge::acme {
namespace {

std::string decode_text(std::string_view text) {
  auto bytes = base64url_decode(text);
  EXPECT_TRUE(bytes.has_value()) << text;
  return bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
}

TEST(Base64Url, Rfc4648Vectors) {
  // RFC 4648 section 10, without padding.
  EXPECT_EQ(base64url_encode(std::string_view("")), "");
  EXPECT_EQ(base64url_encode(std::string_view("f")), "Zg");
  EXPECT_EQ(base64url_encode(std::string_view("fo")), "Zm8");
  EXPECT_EQ(base64url_encode(std::string_view("foo")), "Zm9v");
  EXPECT_EQ(base64url_encode(std::string_view("foob")), "Zm9vYg");
  EXPECT_EQ(base64url_encode(std::string_view("fooba")), "Zm9vYmE");
  EXPECT_EQ(base64url_encode(std::string_view("foobar")), "Zm9vYmFy");
}

TEST(Base64Url, UsesUrlSafeAlphabet) {
  std::vector<std::uint8_t> const bytes{0xfb, 0xff, 0xbf};
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  auto const decoded = base64url_decode("-_-_");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, bytes);
}

TEST(Base64Url, Rfc7515ProtectedHeaderExample) {
  // RFC 7515 section 3.3: the JWS Protected Header {"typ":"JWT",\r\n "alg":"HS256"}.
  std::vector<std::uint8_t> const header{123, 34, 116, 121, 112, 34, 58, 34, 74, 87, 84, 34, 44,
                                         13, 10, 32, 34, 97, 108, 103, 34, 58, 34, 72, 83, 50,
                                         53, 54, 34, 125};
  EXPECT_EQ(base64url_encode(header), "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9");
}

TEST(Base64Url, RoundTripsAllLengths) {
  std::vector<std::uint8_t> data;
  for (int i = 0; i < 70; ++i) {
    auto const decoded = base64url_decode(base64url_encode(data));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<std::uint8_t>(i * 37 + 11));
  }
}

TEST(Base64Url, DecodesVectors) {
  EXPECT_EQ(decode_text("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode_text("Zm9vYg"), "foob");
  EXPECT_EQ(decode_text(""), "");
}

TEST(Base64Url, RejectsPaddingAndForeignCharacters) {
  EXPECT_FALSE(base64url_decode("Zg=="));
  EXPECT_FALSE(base64url_decode("Zm9v+g"));
  EXPECT_FALSE(base64url_decode("Zm9v/g"));
  EXPECT_FALSE(base64url_decode("Zm 9v"));
  EXPECT_FALSE(base64url_decode("Z"));   // 6 bits cannot be a byte
  EXPECT_FALSE(base64url_decode("Zh"));  // non-zero leftover bits
}

}  // namespace
}  // namespace edge::acme
