#include "quiver/core/shape.hpp"

namespace quiver {

std::string shape_to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    if (s[i].is_fixed()) out += std::to_string(s[i].value);
    else out += s[i].symbol.empty() ? "?" : s[i].symbol;
  }
  return out + "]";
}

std::string dims_to_string(std::span<const int64_t> d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(d[i]);
  }
  return out + "]";
}

bool shape_matches(const Shape& s, std::span<const int64_t> dims) {
  if (s.size() != dims.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i].is_fixed() && s[i].value != dims[i]) return false;
  return true;
}

int64_t numel(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

}  // namespace quiver
