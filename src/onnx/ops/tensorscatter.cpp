// TensorScatter (opset 24, KV-cache update): present = past with, for each batch b, the update's
// sequence (along `axis`, default -2) written from write_indices[b] on (linear) or wrapping modulo
// the cache length (circular). Rows are copied with memcpy.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(tensorscatter) {
  registry.add({"", "TensorScatter", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(1) != t) ctx.fail("update must have the cache's dtype", ctx.input_name(1));
                  if (ctx.has_input(2)) ctx.expect_dtype(2, {DType::I64});
                  const std::string mode = ctx.attrs().get_string("mode", "linear");
                  if (mode != "linear" && mode != "circular") ctx.fail("unknown mode '" + mode + "'");
                  const bool circular = mode == "circular";
                  const int64_t axis = ctx.attrs().get_int("axis", -2);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, circular, axis](ExecContext& ec) {
                    const Tensor& past = ec.input(0);
                    const Tensor& upd = ec.input(1);
                    const int64_t r = static_cast<int64_t>(past.rank());
                    if (r < 2) ec.fail("cache must have rank >= 2");
                    const int64_t a = norm_axis(axis, r, &ec);
                    if (a == 0) ec.fail("axis must not be the batch axis");
                    if (static_cast<int64_t>(upd.rank()) != r) ec.fail("update must have the cache's rank", "update");
                    for (int64_t d = 0; d < r; ++d)
                      if (d != a && upd.dim(d) != past.dim(d))
                        ec.fail("update dims " + dims_to_string(upd.dims()) + " differ from cache dims " +
                                    dims_to_string(past.dims()) + " outside the sequence axis",
                                "update");
                    const int64_t B = past.dim(0), L = past.dim(a), S = upd.dim(a);
                    std::vector<int64_t> wi(static_cast<size_t>(B), 0);
                    if (ec.has_input(2)) {
                      wi = read_ints(ec.input(2));
                      if (static_cast<int64_t>(wi.size()) != B) ec.fail("write_indices must have batch size entries", "write_indices");
                    }
                    Tensor& y = ec.output(0, t, past.dims());
                    const int64_t mid = product(past.dims(), 1, a), inner = product(past.dims(), a + 1);
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* pp = past.data<T>();
                      const T* pu = upd.data<T>();
                      T* py = y.data<T>();
                      if (pp != py) copy_n_elems(pp, py, past.numel());
                      for (int64_t b = 0; b < B; ++b) {
                        const int64_t start = wi[b];
                        if (S > 0 && L == 0) ec.fail("cannot write into a cache of length 0", "past_cache");
                        if (start < 0 || (!circular && start + S > L) || (circular && start >= L && L > 0))
                          ec.fail("write index " + std::to_string(start) + " out of range for cache length " + std::to_string(L) +
                                      " and update length " + std::to_string(S),
                                  "write_indices");
                        for (int64_t m = 0; m < mid; ++m)
                          for (int64_t j = 0; j < S; ++j) {
                            const int64_t pos = circular ? (start + j) % L : start + j;
                            copy_n_elems(pu + ((b * mid + m) * S + j) * inner, py + ((b * mid + m) * L + pos) * inner, inner);
                          }
                      }
                    });
                  });
                }});
}
}  // namespace quiver::onnx
