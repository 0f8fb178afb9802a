// Bearer tokens (src/kserve/auth.hpp): the token file format and the check quiver serve's front ends share.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kserve/auth.hpp"
#include "quiver/core/error.hpp"

namespace {

std::string temp_file(const std::string& text) {
  std::string p = (std::filesystem::temp_directory_path() / ("quiver-tokens-" + std::to_string(::getpid()) + "-" +
                                                            std::to_string(std::rand()))).string();
  std::ofstream(p) << text;
  return p;
}

TEST(Auth, TokenFileSkipsCommentsAndBlankLinesAndTrims) {
  auto p = temp_file("# site tokens\n\n  first-token  \r\nsecond.token_2\n# old: revoked\n");
  auto t = quiver::kserve::read_token_file(p);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], "first-token");
  EXPECT_EQ(t[1], "second.token_2");
  std::filesystem::remove(p);
}

TEST(Auth, BadTokenFilesNameFileAndLineButNoToken) {
  auto empty = temp_file("# nothing here\n\n");
  try {
    quiver::kserve::read_token_file(empty);
    FAIL() << "no error";
  } catch (const quiver::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no token"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(empty), std::string::npos) << e.what();
  }
  auto spaced = temp_file("good\nsecret with spaces\n");
  try {
    quiver::kserve::read_token_file(spaced);
    FAIL() << "no error";
  } catch (const quiver::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << "the error shows the token: " << e.what();
  }
  EXPECT_THROW(quiver::kserve::read_token_file("/nonexistent/quiver-tokens"), quiver::Error);
  std::filesystem::remove(empty);
  std::filesystem::remove(spaced);
}

TEST(Auth, AllowsOnlyKnownBearerTokens) {
  quiver::kserve::TokenSet off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.allows(""));

  quiver::kserve::TokenSet s({"alpha-1", "beta-2"});
  EXPECT_TRUE(s.enabled());
  EXPECT_EQ(s.size(), 2u);
  EXPECT_TRUE(s.allows("Bearer alpha-1"));
  EXPECT_TRUE(s.allows("bearer beta-2"));     // the scheme is case-insensitive
  EXPECT_TRUE(s.allows("  BEARER   beta-2 "));  // surrounding space is not part of the token
  EXPECT_FALSE(s.allows(""));
  EXPECT_FALSE(s.allows("Bearer"));
  EXPECT_FALSE(s.allows("Bearer "));
  EXPECT_FALSE(s.allows("alpha-1"));          // no scheme
  EXPECT_FALSE(s.allows("Basic alpha-1"));
  EXPECT_FALSE(s.allows("Bearer alpha-"));    // a prefix of a token
  EXPECT_FALSE(s.allows("Bearer alpha-12"));  // a token plus more
  EXPECT_FALSE(s.allows("Bearer Alpha-1"));   // tokens are case-sensitive
}

}  // namespace
