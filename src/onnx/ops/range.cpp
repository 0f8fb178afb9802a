// Range: start, start+delta, ... up to (excluding) limit; n = max(ceil((limit-start)/delta), 0).
#include <cmath>
#include <string>

#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {
namespace {
// ceil(span / delta) as an element count, refused past 2^32 elements (or NaN) before it becomes an
// integer: converting such a double to int64 is undefined.
int64_t element_count(double count, ExecContext& ec) {
  if (std::isnan(count)) ec.fail("start, limit and delta give no element count (NaN)");
  if (count > 4294967296.0) ec.fail("Range would produce " + std::to_string(count) + " elements");
  return count <= 0 ? 0 : static_cast<int64_t>(count);
}
}  // namespace

// quiver compile: the length from start/limit/delta read in the shape pass.
void emit_range(Emit& e) {
  const std::string t = e.tin(0);
  if (e.in(0).dtype != DType::F32 && e.in(0).dtype != DType::I64 && e.in(0).dtype != DType::I32) e.refuse("element type");
  for (size_t i = 0; i < 3; ++i) e.read_values(i);
  const bool fl = e.in(0).dtype == DType::F32;
  e.shape("if (x2[0] == 0) fail(\"delta must not be zero\");\nO0.r = 1;\nO0.d[0] = " +
          std::string(fl ? "std::max<int64_t>(static_cast<int64_t>(std::ceil((x1[0] - x0[0]) / x2[0])), 0)"
                         : "std::max<int64_t>((static_cast<int64_t>(x1[0]) - x0[0] + x2[0] + (x2[0] > 0 ? -1 : 1)) / x2[0], 0)") + ";\n");
  e.compute(t + " v = x0[0];\nfor (int64_t j = 0; j < O0.d[0]; ++j, v += x2[0]) y0[j] = v;\n");
  if (!fl) e.bitwise();  // integers: exact; a float range's running sum is not the kernel's yet
}

QUIVER_REGISTER_OPS(range) {
  registry.add({"", "Range", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  const DType t = ctx.input_dtype(0);
                  ctx.expect_dtype(0, {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I16, DType::I32, DType::I64});
                  for (size_t i = 1; i < 3; ++i)
                    if (ctx.input_dtype(i) != t) ctx.fail("start, limit and delta must have the same dtype", ctx.input_name(i));
                  ctx.set_output(0, t, std::vector<int64_t>{-1});
                  return make_kernel([t](ExecContext& ec) {
                    for (size_t i = 0; i < 3; ++i)
                      if (ec.input(i).numel() != 1) ec.fail("inputs must be scalars");
                    if (t == DType::F16 || t == DType::BF16) {
                      const float start = static_cast<float>(read_scalar_f64(ec.input(0)));
                      const float limit = static_cast<float>(read_scalar_f64(ec.input(1)));
                      const float delta = static_cast<float>(read_scalar_f64(ec.input(2)));
                      if (delta == 0.f) ec.fail("delta must not be zero");
                      const int64_t n = element_count(std::ceil((static_cast<double>(limit) - start) / delta), ec);
                      Tensor& y = ec.output(0, t, {n});
                      float v = start;
                      for (int64_t i = 0; i < n; ++i, v += delta) {
                        if (t == DType::F16) y.data<Half>()[i] = Half(v);
                        else y.data<BFloat16>()[i] = BFloat16(v);
                      }
                      return;
                    }
                    visit_numeric(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      const T start = ec.input(0).data<T>()[0], limit = ec.input(1).data<T>()[0],
                              delta = ec.input(2).data<T>()[0];
                      if (delta == T(0)) ec.fail("delta must not be zero");
                      int64_t n;
                      if constexpr (std::is_floating_point_v<T>) {
                        n = element_count(std::ceil((static_cast<double>(limit) - start) / delta), ec);
                      } else {
                        // Exact integer ceil((limit - start) / delta): the span may not fit int64.
                        const __int128 span = static_cast<__int128>(limit) - start, d = delta;
                        __int128 q = span / d;
                        if (span % d != 0 && ((span % d > 0) == (d > 0))) ++q;
                        n = element_count(static_cast<double>(q), ec);
                      }
                      Tensor& y = ec.output(0, t, {n});
                      T* p = y.data<T>();
                      // Accumulate like the reference (start + i*delta for ints; repeated addition for floats).
                      if constexpr (std::is_floating_point_v<T>) {
                        T v = start;
                        for (int64_t i = 0; i < n; ++i) { p[i] = v; v += delta; }
                      } else {
                        // Modulo 2^64 like the reference's wrap-around, without signed overflow.
                        for (int64_t i = 0; i < n; ++i)
                          p[i] = static_cast<T>(static_cast<uint64_t>(static_cast<int64_t>(start)) +
                                                static_cast<uint64_t>(i) * static_cast<uint64_t>(static_cast<int64_t>(delta)));
                      }
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(range) {
  emitters.add("", "Range", emit_range);
}
}  // namespace quiver::onnx
