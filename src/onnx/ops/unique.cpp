// Unique: unique elements (or slices along `axis`), sorted ascending (sorted=1) or in order of first
// occurrence, with first-occurrence indices, inverse indices and counts (all int64).
#include <numeric>

#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
template <class T>
auto key_of(const T& v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return v;
}

template <class T>
void unique_typed(ExecContext& ec, const Tensor& x, bool has_axis, int64_t a, bool sorted) {
  int64_t outer = 1, n, inner = 1;
  if (has_axis) {
    outer = product(x.dims(), 0, a);
    n = x.dim(a);
    inner = product(x.dims(), a + 1);
  } else {
    n = x.numel();
  }
  const T* px = x.data<T>();
  // Item k: elements px[(o*n + k)*inner + i] for o, i in order.
  auto cmp = [&](int64_t p, int64_t q) -> int {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const auto u = key_of(px[(o * n + p) * inner + i]), v = key_of(px[(o * n + q) * inner + i]);
        if (u < v) return -1;
        if (v < u) return 1;
      }
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return cmp(p, q) < 0; });
  // Groups in sorted order: first index (smallest, thanks to stable sort) and members.
  std::vector<int64_t> group_first, group_count, group_of(static_cast<size_t>(n));
  for (size_t s = 0; s < order.size(); ++s) {
    if (s == 0 || cmp(order[s - 1], order[s]) != 0) {
      group_first.push_back(order[s]);
      group_count.push_back(0);
    }
    group_of[order[s]] = static_cast<int64_t>(group_first.size() - 1);
    ++group_count.back();
  }
  const int64_t u = static_cast<int64_t>(group_first.size());
  // Output position of each group.
  std::vector<int64_t> gpos(static_cast<size_t>(u));
  std::iota(gpos.begin(), gpos.end(), 0);
  if (!sorted) {
    std::vector<int64_t> g(static_cast<size_t>(u));
    std::iota(g.begin(), g.end(), 0);
    std::sort(g.begin(), g.end(), [&](int64_t p, int64_t q) { return group_first[p] < group_first[q]; });
    for (int64_t j = 0; j < u; ++j) gpos[g[j]] = j;
  }
  std::vector<int64_t> first(static_cast<size_t>(u)), counts(static_cast<size_t>(u));
  for (int64_t g = 0; g < u; ++g) { first[gpos[g]] = group_first[g]; counts[gpos[g]] = group_count[g]; }
  std::vector<int64_t> yd;
  if (has_axis) { yd = x.dims(); yd[a] = u; }
  else yd = {u};
  Tensor& y = ec.output(0, x.dtype(), yd);
  T* py = y.data<T>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < u; ++j) copy_n_elems(px + (o * n + first[j]) * inner, py + (o * u + j) * inner, inner);
  if (ec.num_outputs() > 1 && ec.wants_output(1)) std::copy(first.begin(), first.end(), ec.output(1, DType::I64, {u}).data<int64_t>());
  if (ec.num_outputs() > 2 && ec.wants_output(2)) {
    int64_t* pi = ec.output(2, DType::I64, {n}).data<int64_t>();
    for (int64_t k = 0; k < n; ++k) pi[k] = gpos[group_of[k]];
  }
  if (ec.num_outputs() > 3 && ec.wants_output(3)) std::copy(counts.begin(), counts.end(), ec.output(3, DType::I64, {u}).data<int64_t>());
}
}  // namespace

QUIVER_REGISTER_OPS(unique) {
  registry.add({"", "Unique", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const DType t = ctx.input_dtype(0);
                  const bool has_axis = ctx.attrs().has("axis");
                  const int64_t axis = ctx.attrs().get_int("axis", 0);
                  const bool sorted = ctx.attrs().get_int("sorted", 1) != 0;
                  ctx.set_output(0, t);
                  for (size_t i = 1; i < ctx.num_outputs(); ++i)
                    if (!ctx.output_name(i).empty()) ctx.set_output(i, DType::I64, std::vector<int64_t>{-1});
                  return make_kernel([has_axis, axis, sorted](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t a = has_axis ? norm_axis(axis, static_cast<int64_t>(x.rank()), &ec) : 0;
                    visit_dtype(x.dtype(), [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      unique_typed<T>(ec, x, has_axis, a, sorted);
                    });
                  });
                }});
}
}  // namespace quiver::onnx
