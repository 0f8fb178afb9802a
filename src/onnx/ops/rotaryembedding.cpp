// RotaryEmbedding (opset 23): rotates the first rotary_embedding_dim features of each head by the
// cos/sin caches (indexed by position_ids when given), halves or interleaved pairs; the remaining
// features pass through. Input [B, S, hidden] (num_heads attribute) or [B, num_heads, S, head].
#include "onnx/ops/norm_common.hpp"

namespace quiver::onnx {

QUIVER_REGISTER_OPS(rotaryembedding) {
  registry.add({"", "RotaryEmbedding", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 4);
                  const DType t = ctx.input_dtype(0);
                  if (!is_float_family(t)) ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
                  ctx.expect_dtype(1, {t});
                  ctx.expect_dtype(2, {t});
                  if (ctx.has_input(3)) ctx.expect_dtype(3, {DType::I64, DType::I32});
                  const auto& at = ctx.attrs();
                  const bool interleaved = at.get_int("interleaved", 0) != 0;
                  const int64_t num_heads = at.get_int("num_heads", 0);
                  const int64_t rot_attr = at.get_int("rotary_embedding_dim", 0);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([=](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& cc = ec.input(1);
                    const Tensor& sc = ec.input(2);
                    const Tensor* pos = ec.has_input(3) ? ec.input_ptr(3) : nullptr;
                    int64_t B, S, NH, D;
                    const bool four = x.rank() == 4;
                    if (four) {
                      B = x.dim(0); NH = x.dim(1); S = x.dim(2); D = x.dim(3);
                    } else if (x.rank() == 3) {
                      if (num_heads <= 0) ec.fail("num_heads is required for 3-D input");
                      B = x.dim(0); S = x.dim(1); NH = num_heads;
                      if (x.dim(2) % NH != 0) ec.fail("hidden size not divisible by num_heads");
                      D = x.dim(2) / NH;
                    } else {
                      ec.fail("input must be 3-D or 4-D, got " + dims_to_string(x.dims()));
                    }
                    const int64_t rd = rot_attr > 0 ? rot_attr : D;
                    if (rd > D || rd % 2) ec.fail("rotary_embedding_dim " + std::to_string(rd) + " invalid for head size " + std::to_string(D));
                    const int64_t half = rd / 2;
                    if (cc.dims() != sc.dims() || cc.rank() == 0 || cc.dims().back() != half)
                      ec.fail("cos/sin caches must have equal shapes ending in " + std::to_string(half));
                    std::vector<int64_t> pv;
                    if (pos) {
                      pv = read_ints(*pos);
                      if (static_cast<int64_t>(pv.size()) != B * S && pv.size() != 1)
                        ec.fail("position_ids must have " + std::to_string(B * S) + " values");
                      if (cc.rank() != 2) ec.fail("with position_ids the caches must be [max_position, dim/2]");
                      for (int64_t p : pv)
                        if (p < 0 || p >= cc.dim(0)) ec.fail("position id " + std::to_string(p) + " out of range [0, " + std::to_string(cc.dim(0)) + ")");
                    } else if (cc.numel() != B * S * half) {
                      ec.fail("without position_ids the caches must be [batch, seq, dim/2]");
                    }
                    Tensor& y = ec.output(0, t, x.dims());
                    visit_float_family(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* xp = x.data<T>();
                      const T* cp = cc.data<T>();
                      const T* sp = sc.data<T>();
                      T* yp = y.data<T>();
                      for (int64_t b = 0; b < B; ++b)
                        for (int64_t s = 0; s < S; ++s) {
                          const int64_t row = pos ? pv[pv.size() == 1 ? 0 : b * S + s] : b * S + s;
                          const T* cr = cp + row * half;
                          const T* sr = sp + row * half;
                          for (int64_t h = 0; h < NH; ++h) {
                            const int64_t off = four ? ((b * NH + h) * S + s) * D : ((b * S + s) * NH + h) * D;
                            const T* xi = xp + off;
                            T* yo = yp + off;
                            for (int64_t i = 0; i < half; ++i) {
                              const int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
                              const double c = to_double(cr[i]), sn = to_double(sr[i]);
                              const double a = to_double(xi[i1]), bb = to_double(xi[i2]);
                              yo[i1] = static_cast<T>(static_cast<float>(c * a - sn * bb));
                              yo[i2] = static_cast<T>(static_cast<float>(sn * a + c * bb));
                            }
                            for (int64_t i = rd; i < D; ++i) yo[i] = xi[i];
                          }
                        }
                    });
                  });
                }});
}

}  // namespace quiver::onnx
