// GatherND with batch_dims: for each batch and each index tuple (last indices dim k), copies the
// contiguous slice data[batch, idx...] of prod(data.shape[batch_dims + k:]) elements.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(gathernd) {
  registry.add({"", "GatherND", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 2);
                  ctx.expect_dtype(1, {DType::I64});
                  const int64_t b = ctx.attrs().get_int("batch_dims", 0);
                  if (b < 0) ctx.fail("batch_dims must be >= 0");
                  const DType t = ctx.input_dtype(0);
                  ctx.set_output(0, t);
                  return make_kernel([b, t](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& ind = ec.input(1);
                    const int64_t r = static_cast<int64_t>(x.rank()), q = static_cast<int64_t>(ind.rank());
                    if (q < 1 || r < 1) ec.fail("data and indices must have rank >= 1");
                    if (b >= std::min(q, r)) ec.fail("batch_dims must be smaller than both ranks");
                    for (int64_t d = 0; d < b; ++d)
                      if (x.dim(d) != ind.dim(d)) ec.fail("batch dims of data and indices differ", "indices");
                    const int64_t k = ind.dim(q - 1);
                    if (k < 1 || k > r - b) ec.fail("indices last dim " + std::to_string(k) + " out of range", "indices");
                    std::vector<int64_t> od(ind.dims().begin(), ind.dims().end() - 1);
                    od.insert(od.end(), x.dims().begin() + b + k, x.dims().end());
                    Tensor& y = ec.output(0, t, od);
                    const int64_t batches = product(x.dims(), 0, b);
                    const int64_t per_batch = product(ind.dims(), b, q - 1);  // index tuples per batch
                    const int64_t slice = product(x.dims(), b + k);
                    const int64_t batch_stride = product(x.dims(), b);
                    const auto xs = contiguous_strides(x.dims());
                    const int64_t* pi = ind.data<int64_t>();
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t bi = 0; bi < batches; ++bi)
                        for (int64_t j = 0; j < per_batch; ++j) {
                          const int64_t* tup = pi + (bi * per_batch + j) * k;
                          int64_t off = bi * batch_stride;
                          for (int64_t d = 0; d < k; ++d) {
                            const int64_t dim = x.dim(b + d);
                            int64_t v = tup[d];
                            if (v < 0) v += dim;
                            if (v < 0 || v >= dim)
                              ec.fail("index " + std::to_string(tup[d]) + " out of range for dim of size " + std::to_string(dim),
                                      "indices");
                            off += v * xs[b + d];
                          }
                          copy_n_elems(px + off, py + (bi * per_batch + j) * slice, slice);
                        }
                    });
                  });
                }}, Repro::Exact);
}
}  // namespace quiver::onnx
