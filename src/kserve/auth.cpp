#include "kserve/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <sstream>

#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"

namespace quiver::kserve {

namespace {
std::array<unsigned char, 32> digest(std::string_view s) {
  std::array<unsigned char, 32> d{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
}  // namespace

std::vector<std::string> read_token_file(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> tokens;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    bool visible = t.size() <= 4096;
    for (char c : t) visible = visible && c > ' ' && c < 127;
    if (!visible)
      throw Error(ErrorCode::InvalidArgument,
                  "line " + std::to_string(n) + " is not a token (1-4096 visible ASCII characters, no spaces)",
                  {"", "", "", path});
    tokens.emplace_back(t);
  }
  if (tokens.empty()) throw Error(ErrorCode::InvalidArgument, "no token in the file", {"", "", "", path});
  return tokens;
}

std::string authorization_from_token_file(const std::string& path) {
  return path.empty() ? std::string() : "Bearer " + read_token_file(path).front();
}

TokenSet::TokenSet(const std::vector<std::string>& tokens) {
  for (const auto& t : tokens) digests_.push_back(digest(t));
}

bool TokenSet::allows(std::string_view authorization) const {
  if (digests_.empty()) return true;
  std::string_view v = trim(authorization);
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (static_cast<char>(v[i] | 0x20) != kScheme[i]) return false;
  const auto d = digest(trim(v.substr(kScheme.size())));
  int match = 0;
  for (const auto& k : digests_) match |= CRYPTO_memcmp(d.data(), k.data(), d.size()) == 0;
  return match != 0;
}

}  // namespace quiver::kserve
