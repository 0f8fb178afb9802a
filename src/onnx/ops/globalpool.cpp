// GlobalAveragePool / GlobalMaxPool / GlobalLpPool: reduce all spatial dims of [N, C, ...] to 1.
#include "onnx/ops/common.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {

namespace {

enum class GKind { Avg, Max, Lp };

template <GKind K>
KernelBuilder global_pool_builder() {
  return [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    ctx.expect_inputs(1, 1);
    ctx.expect_dtype(0, {DType::F32, DType::F64, DType::F16, DType::BF16});
    const DType t = ctx.input_dtype(0);
    const int64_t p = ctx.attrs().get_int("p", 2);
    std::optional<std::vector<int64_t>> shape;
    if (ctx.input(0).shape && ctx.input(0).shape->size() >= 2) {
      shape = *ctx.input(0).shape;
      for (size_t i = 2; i < shape->size(); ++i) (*shape)[i] = 1;
    }
    ctx.set_output(0, t, shape);
    return make_kernel([t, p](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      if (x.rank() < 2) ec.fail("X must have rank >= 2, got " + dims_to_string(x.dims()));
      std::vector<int64_t> od(x.dims());
      for (size_t i = 2; i < od.size(); ++i) od[i] = 1;
      Tensor& y = ec.output(0, t, od);
      const int64_t NC = x.dim(0) * x.dim(1), L = product(x.dims(), 2);
      auto body = [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* xp = x.data<T>();
        T* yp = y.data<T>();
        for (int64_t i = 0; i < NC; ++i) {
          const T* s = xp + i * L;
          if constexpr (K == GKind::Avg) {
            float acc = 0;
            for (int64_t j = 0; j < L; ++j) acc += static_cast<float>(s[j]);
            yp[i] = static_cast<T>(L ? acc / static_cast<float>(L) : 0.f);
          } else if constexpr (K == GKind::Max) {
            float m = L ? static_cast<float>(s[0]) : 0.f;
            for (int64_t j = 1; j < L; ++j) m = std::max(m, static_cast<float>(s[j]));
            yp[i] = static_cast<T>(m);
          } else {
            double acc = 0;
            for (int64_t j = 0; j < L; ++j) acc += std::pow(std::abs(static_cast<double>(static_cast<float>(s[j]))), double(p));
            yp[i] = static_cast<T>(static_cast<float>(std::pow(acc, 1.0 / double(p))));
          }
        }
      };
      switch (t) {
        case DType::F32: body(TypeTag<float>{}); break;
        case DType::F64: body(TypeTag<double>{}); break;
        case DType::F16: body(TypeTag<Half>{}); break;
        default: body(TypeTag<BFloat16>{}); break;
      }
    });
  };
}

}  // namespace

// quiver compile: the mean over the spatial dims of each (image, channel).
void emit_global_average(Emit& e) {
  if (e.in(0).dtype != DType::F32) e.refuse("emitted for float only");
  const int r = e.rank_in(0);
  if (r < 3) e.refuse("rank below 3");
  std::vector<std::string> d = {"I0.d[0]", "I0.d[1]"};
  for (int i = 2; i < r; ++i) d.push_back("1");
  e.set_dims(0, d);
  e.compute("const int64_t nc = I0.d[0] * I0.d[1], L = " + e.span_in(0, 2, r) +
            ";\nfor (int64_t j = 0; j < nc; ++j) {\n  float s = 0.f;\n  for (int64_t i = 0; i < L; ++i) s += x0[j * L + i];\n"
            "  y0[j] = L ? s / static_cast<float>(L) : 0.f;\n}\n");
  e.bitwise();  // the kernel's sum in index order, then one division
}

QUIVER_REGISTER_OPS(globalpool) {
  registry.add({"", "GlobalAveragePool", global_pool_builder<GKind::Avg>()}, Repro::Exact);
  registry.add({"", "GlobalMaxPool", global_pool_builder<GKind::Max>()}, Repro::Exact);
  registry.add({"", "GlobalLpPool", global_pool_builder<GKind::Lp>()});
}


QUIVER_REGISTER_EMITTERS(globalpool) {
  emitters.add("", "GlobalAveragePool", emit_global_average);
}
}  // namespace quiver::onnx
