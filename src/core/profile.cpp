#include "quiver/core/profile.hpp"

#include <algorithm>

namespace quiver {

void OpProfile::add(const std::string& op, int64_t ns, double flops) {
  Row& r = rows_[op];
  if (r.op.empty()) r.op = op;
  r.ns += ns;
  r.calls++;
  r.flops += flops;
}

void OpProfile::merge(const OpProfile& other) {
  for (const auto& [op, o] : other.rows_) {
    Row& r = rows_[op];
    if (r.op.empty()) r.op = op;
    r.ns += o.ns;
    r.calls += o.calls;
    r.flops += o.flops;
  }
}

std::vector<OpProfile::Row> OpProfile::rows() const {
  std::vector<Row> out;
  out.reserve(rows_.size());
  for (const auto& [op, r] : rows_) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.ns != b.ns ? a.ns > b.ns : a.op < b.op; });
  return out;
}

}  // namespace quiver
