// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims, zeroing
// the rest. Row-wise: one memcpy of the kept run and one fill of the zeroed run per row.
#include "onnx/emit.hpp"
#include "onnx/ops/shape_ops.hpp"
namespace quiver::onnx {

QUIVER_REGISTER_OPS(trilu) {
  registry.add({"", "Trilu", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 2);
                  if (ctx.has_input(1)) ctx.expect_dtype(1, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  if (t == DType::String) ctx.fail("string input is not supported");
                  const bool upper = ctx.attrs().get_int("upper", 1) != 0;
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, upper](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() < 2) ec.fail("input must have rank >= 2");
                    int64_t k = 0;
                    if (ec.has_input(1)) {
                      const auto kv = read_ints(ec.input(1));
                      if (kv.size() != 1) ec.fail("k must be a scalar", "k");
                      k = kv[0];
                    }
                    Tensor& y = ec.output(0, t, x.dims());
                    const int64_t n = x.dim(x.rank() - 2), m = x.dim(x.rank() - 1);
                    const int64_t batch = product(x.dims(), 0, x.rank() - 2);
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T* px = x.data<T>();
                      T* py = y.data<T>();
                      for (int64_t b = 0; b < batch; ++b)
                        for (int64_t i = 0; i < n; ++i) {
                          const T* xr = px + (b * n + i) * m;
                          T* yr = py + (b * n + i) * m;
                          // Kept columns: upper j >= i+k; lower j <= i+k.
                          const int64_t c = std::clamp<int64_t>(upper ? i + k : i + k + 1, 0, m);
                          if (upper) {
                            std::fill_n(yr, c, T{});
                            copy_n_elems(xr + c, yr + c, m - c);
                          } else {
                            copy_n_elems(xr, yr, c);
                            std::fill_n(yr + c, m - c, T{});
                          }
                        }
                    });
                  });
                }}, Repro::Exact);
}

namespace {

// quiver compile: the same row-wise copy/fill; k is a literal when constant, else read at run time.
void emit_trilu(Emit& e) {
  const int r = e.rank_in(0);
  if (r < 2) e.refuse("input must have rank >= 2");
  e.tin(0);
  const bool upper = e.attrs().get_int("upper", 1) != 0;
  std::string k = "0";
  if (e.has_input(1)) {
    if (const auto kv = e.node().const_ints(1)) {
      if (kv->size() != 1) e.refuse("k must be a scalar");
      k = cint((*kv)[0]);
      e.dims_only(1);
    } else {
      e.shape("if (I1.n() != 1) fail(\"k must be a scalar\");\n");
      k = "x1[0]";
    }
  }
  e.same_dims(0, 0);
  const std::string n = e.din(0, r - 2), m = e.din(0, r - 1);
  // k clamped to [-n - 1, m + 1] first: the same kept columns, and i + k cannot overflow.
  e.compute("const int64_t n = " + n + ", m = " + m + ", batch = " + e.span_in(0, 0, r - 2) +
            ";\nconst int64_t k = std::max<int64_t>(-n - 1, std::min<int64_t>(" + k + ", m + 1));\n"
            "for (int64_t b = 0; b < batch; ++b)\n  for (int64_t i = 0; i < n; ++i) {\n"
            "    const auto* xr = x0 + (b * n + i) * m;\n    auto* yr = y0 + (b * n + i) * m;\n"
            "    const int64_t c = std::max<int64_t>(0, std::min<int64_t>(m, i + k" + (upper ? "" : " + 1") + "));\n" +
            (upper ? "    std::fill_n(yr, c, std::remove_pointer_t<decltype(yr)>{});\n"
                     "    std::memcpy(yr + c, xr + c, static_cast<size_t>(m - c) * sizeof(*xr));\n"
                   : "    std::memcpy(yr, xr, static_cast<size_t>(c) * sizeof(*xr));\n"
                     "    std::fill_n(yr + c, m - c, std::remove_pointer_t<decltype(yr)>{});\n") +
            "  }\n");
  e.comment(upper ? "upper triangle" : "lower triangle");
}

}  // namespace

QUIVER_REGISTER_EMITTERS(trilu) { emitters.add("", "Trilu", exact(emit_trilu)); }

}  // namespace quiver::onnx
