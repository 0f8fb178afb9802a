// Tile: output dim d = input dim d * repeats[d]. Each dim's block is written once and then
// replicated with memcpy.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

namespace {
template <class T>
void tile_rec(size_t d, const T* src, T* dst, const std::vector<int64_t>& in, const std::vector<int64_t>& rep,
              const std::vector<int64_t>& is, const std::vector<int64_t>& os) {
  const size_t r = in.size();
  if (d == r - 1) {
    if (in[d] == 1) {  // broadcast a single element: one fill instead of rep tiny copies
      std::fill_n(dst, rep[d], src[0]);
      return;
    }
    copy_n_elems(src, dst, in[d]);
  } else {
    for (int64_t i = 0; i < in[d]; ++i) tile_rec(d + 1, src + i * is[d], dst + i * os[d], in, rep, is, os);
  }
  const int64_t blk = in[d] * os[d];
  for (int64_t k = 1; k < rep[d]; ++k) copy_n_elems(dst, dst + k * blk, blk);
}
}  // namespace

// quiver compile: repeats read in the shape pass.
void emit_tile(Emit& e) {
  e.tin(0);
  const int r = e.rank_in(0);
  e.read_values(1);
  e.dims_only(1);
  e.shape("if (I1.n() != " + std::to_string(r) + ") fail(\"repeats must have one value per dim\");\nO0 = I0;\nfor (int j = 0; j < " +
          std::to_string(r) + "; ++j) { if (x1[j] < 0) fail(\"negative repeat\"); O0.d[j] = I0.d[j] * x1[j]; }\n");
  e.compute("rt::tile(x0, I0, y0, O0);\n");
}

QUIVER_REGISTER_OPS(tile) {
  registry.add({"", "Tile", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  std::optional<std::vector<int64_t>> shape;
                  const auto& in = ctx.input(0).shape;
                  if (in) {
                    shape = std::vector<int64_t>(in->size(), -1);
                    if (auto rep = ctx.const_ints(1); rep && rep->size() == in->size())
                      for (size_t i = 0; i < in->size(); ++i)
                        if ((*in)[i] >= 0) (*shape)[i] = (*in)[i] * (*rep)[i];
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const auto rep = read_ints(ec.input(1));
                    if (rep.size() != x.rank())
                      ec.fail("repeats has " + std::to_string(rep.size()) + " entries for rank " + std::to_string(x.rank()), "repeats");
                    std::vector<int64_t> od(x.rank());
                    for (size_t i = 0; i < x.rank(); ++i) {
                      if (rep[i] < 0) ec.fail("negative repeat", "repeats");
                      od[i] = x.dim(i) * rep[i];
                    }
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      if (x.rank() == 0) { y.data<T>()[0] = x.data<T>()[0]; return; }
                      // Merge adjacent dims that are both not repeated (fewer, longer memcpy runs).
                      std::vector<int64_t> in, rp;
                      for (size_t i = 0; i < x.rank(); ++i) {
                        if (!in.empty() && rp.back() == 1 && rep[i] == 1) { in.back() *= x.dim(i); continue; }
                        in.push_back(x.dim(i));
                        rp.push_back(rep[i]);
                      }
                      std::vector<int64_t> o(in.size());
                      for (size_t i = 0; i < in.size(); ++i) o[i] = in[i] * rp[i];
                      tile_rec<T>(0, x.data<T>(), y.data<T>(), in, rp, contiguous_strides(in), contiguous_strides(o));
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(tile) {
  emitters.add("", "Tile", exact(emit_tile));
}
}  // namespace quiver::onnx
