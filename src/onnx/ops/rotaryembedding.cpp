// RotaryEmbedding (opset 23): rotates the first rotary_embedding_dim features of every head by the
// cos/sin caches (indexed by position_ids when given), either as two halves or interleaved pairs.
// Input [B, heads, S, head_size] or [B, S, hidden] with num_heads.
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

namespace {
template <class T> float ld(T v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<float>(v);
}
template <class T> T st(float v) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) return T(v);
  else return static_cast<T>(v);
}

template <class T>
void rotary(const Tensor& x, const Tensor& cosc, const Tensor& sinc, const std::vector<int64_t>* pos, Tensor& y, int64_t B,
            int64_t S, int64_t H, int64_t D, int64_t rd, bool four_d, bool interleaved, ExecContext& ec) {
  const T* px = x.data<T>();
  const T* pc = cosc.data<T>();
  const T* ps = sinc.data<T>();
  T* py = y.data<T>();
  const int64_t half = rd / 2;
  const int64_t max_pos = pos ? cosc.dim(0) : 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      int64_t row;
      if (pos) {
        row = (*pos)[static_cast<size_t>(b * S + s)];
        if (row < 0 || row >= max_pos)
          ec.fail("position id " + std::to_string(row) + " out of range for cache of " + std::to_string(max_pos) + " rows",
                  "position_ids");
      } else {
        row = b * S + s;
      }
      const T* c = pc + row * half;
      const T* sn = ps + row * half;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t off = four_d ? ((b * H + h) * S + s) * D : ((b * S + s) * H + h) * D;
        const T* xi = px + off;
        T* yo = py + off;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
          const float x1 = ld(xi[i1]), x2 = ld(xi[i2]), cv = ld(c[i]), sv = ld(sn[i]);
          yo[i1] = st<T>(cv * x1 - sv * x2);
          yo[i2] = st<T>(sv * x1 + cv * x2);
        }
        for (int64_t i = rd; i < D; ++i) yo[i] = xi[i];
      }
    }
}
}  // namespace

QUIVER_REGISTER_OPS(rotaryembedding) {
  registry.add({"", "RotaryEmbedding", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 4);
                  const DType t = ctx.input_dtype(0);
                  ctx.expect_dtype(0, {DType::F32, DType::F16, DType::BF16});
                  if (ctx.input_dtype(1) != t || ctx.input_dtype(2) != t) ctx.fail("cos_cache and sin_cache must have the input's dtype");
                  if (ctx.has_input(3)) ctx.expect_dtype(3, {DType::I64});
                  const bool interleaved = ctx.attrs().get_int("interleaved", 0) != 0;
                  const int64_t rd_attr = ctx.attrs().get_int("rotary_embedding_dim", 0);
                  const int64_t num_heads = ctx.attrs().get_int("num_heads", 0);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, interleaved, rd_attr, num_heads](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& cosc = ec.input(1);
                    const Tensor& sinc = ec.input(2);
                    int64_t B = 0, S = 0, H = 0, D = 0;
                    const bool four_d = x.rank() == 4;
                    if (four_d) {
                      B = x.dim(0); H = x.dim(1); S = x.dim(2); D = x.dim(3);
                    } else if (x.rank() == 3) {
                      if (num_heads <= 0) ec.fail("num_heads is required for 3-D input");
                      B = x.dim(0); S = x.dim(1); H = num_heads;
                      if (x.dim(2) % H != 0) ec.fail("hidden size not divisible by num_heads");
                      D = x.dim(2) / H;
                    } else {
                      ec.fail("input must be 3-D or 4-D");
                    }
                    const int64_t rd = rd_attr == 0 ? D : rd_attr;
                    if (rd > D || rd % 2 != 0) ec.fail("rotary_embedding_dim must be even and <= head size");
                    std::vector<int64_t> pos;
                    const bool has_pos = ec.has_input(3);
                    if (cosc.dims() != sinc.dims()) ec.fail("cos_cache and sin_cache must have the same shape", "sin_cache");
                    if (has_pos) {
                      pos = read_ints(ec.input(3));
                      if (static_cast<int64_t>(pos.size()) != B * S) ec.fail("position_ids must be [batch, sequence]", "position_ids");
                      if (cosc.rank() != 2 || cosc.dim(1) != rd / 2) ec.fail("cos_cache must be [max_position, rotary_dim / 2]", "cos_cache");
                    } else if (cosc.rank() != 3 || cosc.dim(0) != B || cosc.dim(1) != S || cosc.dim(2) != rd / 2) {
                      ec.fail("cos_cache must be [batch, sequence, rotary_dim / 2] without position_ids", "cos_cache");
                    }
                    Tensor& y = ec.output(0, t, x.dims());
                    if (y.numel() == 0) return;
                    const std::vector<int64_t>* pp = has_pos ? &pos : nullptr;
                    if (t == DType::F32) rotary<float>(x, cosc, sinc, pp, y, B, S, H, D, rd, four_d, interleaved, ec);
                    else if (t == DType::F16) rotary<Half>(x, cosc, sinc, pp, y, B, S, H, D, rd, four_d, interleaved, ec);
                    else rotary<BFloat16>(x, cosc, sinc, pp, y, B, S, H, D, rd, four_d, interleaved, ec);
                  });
                }});
}
}  // namespace quiver::onnx
