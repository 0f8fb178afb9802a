// Shape (with start/end, opset 15) and Size. Folded to a constant when the input's dims are static.
#include "onnx/ops/common.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

static void shape_range(int64_t rank, int64_t start, int64_t end, bool has_end, int64_t& s, int64_t& e) {
  s = start < 0 ? start + rank : start;
  e = has_end ? (end < 0 ? end + rank : end) : rank;
  s = std::clamp<int64_t>(s, 0, rank);
  e = std::clamp<int64_t>(e, 0, rank);
  if (e < s) e = s;
}

// quiver compile: the runtime dims [start, end) as int64 (dims only: the shape pass computes it).
void emit_shape(Emit& e) {
  const int r = e.rank_in(0);
  int64_t s = 0, en = 0;
  shape_range(r, e.attrs().get_int("start", 0), e.attrs().get_int("end", 0), e.attrs().has("end"), s, en);
  e.dims_only(0);
  e.set_dims(0, {std::to_string(en - s)});
  e.compute("for (int j = 0; j < " + std::to_string(en - s) + "; ++j) y0[j] = I0.d[" + std::to_string(s) + " + j];\n");
}

QUIVER_REGISTER_OPS(shape) {
  OpDef shape{"", "Shape", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const int64_t start = ctx.attrs().get_int("start", 0);
                  const bool has_end = ctx.attrs().has("end");
                  const int64_t end = ctx.attrs().get_int("end", 0);
                  const auto& sh = ctx.input(0).shape;
                  if (sh) {
                    int64_t s, e;
                    shape_range(static_cast<int64_t>(sh->size()), start, end, has_end, s, e);
                    bool known = true;
                    for (int64_t i = s; i < e; ++i) known &= (*sh)[i] >= 0;
                    if (known) {
                      std::vector<int64_t> v(sh->begin() + s, sh->begin() + e);
                      ctx.set_output_constant(0, Tensor::from_vector(v, {static_cast<int64_t>(v.size())}));
                      return nullptr;
                    }
                    ctx.set_output(0, DType::I64, std::vector<int64_t>{e - s});
                  } else {
                    ctx.set_output(0, DType::I64, std::vector<int64_t>{-1});
                  }
                  return make_kernel([start, end, has_end](ExecContext& ec) {
                    const auto& d = ec.input(0).dims();
                    int64_t s, e;
                    shape_range(static_cast<int64_t>(d.size()), start, end, has_end, s, e);
                    Tensor& out = ec.output(0, DType::I64, {e - s});
                    for (int64_t i = s; i < e; ++i) out.data<int64_t>()[i - s] = d[i];
                  });
                }};
  shape.reads_dims_only = true;
  registry.add(shape, Repro::Exact);
  OpDef size{"", "Size", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  const auto& sh = ctx.input(0).shape;
                  if (sh && std::all_of(sh->begin(), sh->end(), [](int64_t x) { return x >= 0; })) {
                    ctx.set_output_constant(0, Tensor::scalar<int64_t>(product(*sh)));
                    return nullptr;
                  }
                  ctx.set_output(0, DType::I64, std::vector<int64_t>{});
                  return make_kernel([](ExecContext& ec) {
                    Tensor& out = ec.output(0, DType::I64, std::span<const int64_t>());
                    out.data<int64_t>()[0] = ec.input(0).numel();
                  });
                }};
  size.reads_dims_only = true;
  registry.add(size, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(shape) {
  emitters.add("", "Shape", exact(emit_shape));
}
}  // namespace quiver::onnx
