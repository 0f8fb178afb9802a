// Bearer-token authentication of the KServe v2 protocol as Quiver speaks it, shared by
// `quiver serve --auth-token-file` (which tokens it accepts) and its clients (which token they send):
// one token file format, one check. Internal to the protocol layer (quiver_kserve).
//
// Token file: one token per line; blank lines and lines starting with '#' are ignored; surrounding
// whitespace is trimmed. A token is 1-4096 visible ASCII characters without spaces (RFC 6750's
// b64token and more). Errors name the file and line, never a token.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::kserve {

std::vector<std::string> read_token_file(const std::string& path);
// What a client sends: the HTTP Authorization header / gRPC "authorization" metadata value for the
// first token of `path` ("Bearer <token>"); "" when `path` is empty (no authentication).
std::string authorization_from_token_file(const std::string& path);

// The tokens a server accepts, kept as SHA-256 digests. allows() hashes the presented token and
// compares it with every digest in constant time (CRYPTO_memcmp, no early exit): the time taken
// tells nothing about how close a guess was or which token matched.
class TokenSet {
 public:
  TokenSet() = default;  // empty: authentication off, everything allowed
  explicit TokenSet(const std::vector<std::string>& tokens);
  static TokenSet from_file(const std::string& path) { return TokenSet(read_token_file(path)); }

  bool enabled() const { return !digests_.empty(); }
  size_t size() const { return digests_.size(); }
  // `authorization`: the HTTP Authorization header / gRPC "authorization" metadata value,
  // "Bearer <token>" (scheme case-insensitive). True when authentication is off or the token is known.
  bool allows(std::string_view authorization) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace quiver::kserve
