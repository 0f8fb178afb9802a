// Shapes in model metadata: each dimension is a fixed size or a symbol ("batch", "n_pf") / unknown.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace quiver {

struct Dim {
  int64_t value = -1;  // >= 0 when fixed; -1 when dynamic
  std::string symbol;  // name of a dynamic dim, may be empty (unknown)
  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: implicit from a size is convenient
  static Dim sym(std::string s) { Dim d; d.symbol = std::move(s); return d; }
  bool is_fixed() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};

using Shape = std::vector<Dim>;

std::string shape_to_string(const Shape& s);            // "[batch, 25, 16]"
std::string dims_to_string(std::span<const int64_t> d);  // "[3, 25, 16]"
// Do concrete dims match a metadata shape (fixed dims equal, dynamic dims anything)?
bool shape_matches(const Shape& s, std::span<const int64_t> dims);
int64_t numel(std::span<const int64_t> dims);

}  // namespace quiver
