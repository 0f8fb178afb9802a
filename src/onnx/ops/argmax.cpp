// ArgMax / ArgMin: index (int64) of the largest / smallest element along `axis` (default 0);
// keepdims (default 1); select_last_index (opset 12+, default 0) picks the last of equal extremes.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

template <bool IsMax>
KernelBuilder arg_builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    const DType t = ctx.input_dtype(0);
    if (!dtype_is_float(t) && !dtype_is_integer(t))
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    const int64_t axis = ctx.attrs().get_int("axis", 0);
    const bool keepdims = ctx.attrs().get_int("keepdims", 1) != 0;
    const bool last = ctx.attrs().get_int("select_last_index", 0) != 0;
    std::optional<std::vector<int64_t>> oshape;
    if (const auto& s = ctx.input(0).shape) {
      oshape = *s;
      if (!s->empty()) {  // a scalar gives the scalar index 0, as the kernel does
        const int64_t a = norm_axis(axis, static_cast<int64_t>(s->size()), nullptr, &ctx);
        if (keepdims) (*oshape)[static_cast<size_t>(a)] = 1;
        else oshape->erase(oshape->begin() + a);
      }
    }
    ctx.set_output(0, DType::I64, oshape);
    return make_kernel([t, axis, keepdims, last](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      const int64_t r = static_cast<int64_t>(x.rank());
      const size_t a = static_cast<size_t>(norm_axis(axis, r, &ec));
      std::vector<int64_t> od = x.dims();
      if (r == 0) od.clear();
      else if (keepdims) od[a] = 1;
      else od.erase(od.begin() + static_cast<int64_t>(a));
      Tensor& y = ec.output(0, DType::I64, od);
      if (r == 0) { y.data<int64_t>()[0] = 0; return; }
      const int64_t outer = product(x.dims(), 0, a), n = x.dim(a), inner = product(x.dims(), a + 1);
      if (y.numel() == 0) return;
      if (n == 0) ec.fail("cannot take the arg" + std::string(IsMax ? "max" : "min") + " of an empty axis");
      int64_t* py = y.data<int64_t>();
      visit_numeric_half(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = compute_t<T>;
        const T* px = x.data<T>();
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) {
            const T* p = px + o * n * inner + i;
            C best = to_compute(p[0]);
            int64_t bi = 0;
            bool nan = false;
            if constexpr (std::is_floating_point_v<C>) nan = std::isnan(best);
            for (int64_t k = 1; k < n && !nan; ++k) {
              const C v = to_compute(p[k * inner]);
              if constexpr (std::is_floating_point_v<C>)
                if (std::isnan(v)) { bi = k; nan = true; break; }  // numpy: the first NaN wins
              const bool better = IsMax ? (v > best) : (v < best);
              if (better || (last && v == best)) { best = v; bi = k; }
            }
            py[o * inner + i] = bi;
          }
        }
      });
    });
  };
}

}  // namespace

QUIVER_REGISTER_OPS(argmax) {
  registry.add({"", "ArgMax", arg_builder<true>()}, Repro::Exact);
  registry.add({"", "ArgMin", arg_builder<false>()}, Repro::Exact);
}
}  // namespace quiver::onnx
