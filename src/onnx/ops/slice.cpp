// Slice: starts/ends/axes as attributes (opset < 10) or inputs with optional steps (opset >= 10).
// Negative starts/ends count from the end, values are clamped per the spec (differently for negative
// steps). The result is a strided view copied with contiguous memcpy runs where the step is 1.
#include "onnx/ops/slice.hpp"

#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

SliceAxis slice_axis(int64_t d, int64_t b, int64_t e, int64_t st) {
  if (b < 0) b += d;
  if (e < 0) e += d;
  if (st > 0) {
    b = std::clamp<int64_t>(b, 0, d);
    e = std::clamp<int64_t>(e, 0, d);
  } else {
    b = std::clamp<int64_t>(b, 0, std::max<int64_t>(d - 1, 0));
    e = std::clamp<int64_t>(e, -1, d - 1);
  }
  int64_t c = 0;
  if (st > 0 && e > b) c = (e - b + st - 1) / st;
  else if (st < 0 && b > e) c = (b - e + (-st) - 1) / (-st);
  if (d == 0) c = 0;
  return {b, c};
}

namespace {
struct SliceSpec {
  std::vector<int64_t> starts, ends, axes, steps;  // axes empty = 0..n-1, steps empty = 1
};

// Per-dim start and count/step for data dims; fails on bad specs.
void resolve(const SliceSpec& s, std::span<const int64_t> dims, std::vector<int64_t>& start, std::vector<int64_t>& count,
             std::vector<int64_t>& step, const ExecContext* ec, const BuildContext* bc) {
  auto fail = [&](const std::string& m) {
    if (ec) ec->fail(m);
    if (bc) bc->fail(m);
    throw_error(ErrorCode::InvalidArgument, m);
  };
  const int64_t r = static_cast<int64_t>(dims.size());
  const size_t n = s.starts.size();
  if (s.ends.size() != n) fail("starts and ends must have the same length");
  if (!s.axes.empty() && s.axes.size() != n) fail("axes must have the same length as starts");
  if (!s.steps.empty() && s.steps.size() != n) fail("steps must have the same length as starts");
  start.assign(r, 0);
  step.assign(r, 1);
  count.assign(dims.begin(), dims.end());
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < n; ++i) {
    int64_t a = s.axes.empty() ? static_cast<int64_t>(i) : s.axes[i];
    if (a < 0) a += r;
    if (a < 0 || a >= r) fail("axis " + std::to_string(s.axes.empty() ? i : s.axes[i]) + " out of range for rank " + std::to_string(r));
    if (seen[a]) fail("duplicate axis " + std::to_string(a));
    seen[a] = true;
    const int64_t d = dims[a];
    const int64_t st = s.steps.empty() ? 1 : s.steps[i];
    if (st == 0) fail("step must not be zero");
    const SliceAxis sa = slice_axis(d, s.starts[i], s.ends[i], st);
    start[a] = sa.start;
    step[a] = st;
    count[a] = sa.count;
  }
}

void run_slice(ExecContext& ec, const SliceSpec& s, DType t) {
  const Tensor& x = ec.input(0);
  std::vector<int64_t> start, count, step;
  resolve(s, x.dims(), start, count, step, &ec, nullptr);
  Tensor& y = ec.output(0, t, count);
  if (y.numel() == 0) return;
  const auto xs = contiguous_strides(x.dims());
  int64_t off = 0;
  std::vector<int64_t> strides(x.rank());
  for (size_t d = 0; d < x.rank(); ++d) {
    off += start[d] * xs[d];
    strides[d] = xs[d] * step[d];
  }
  visit_width(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    strided_copy(x.data<T>() + off, y.data<T>(), count, strides);
  });
}
}  // namespace

// quiver compile: starts/ends/axes/steps read in the shape pass (constants or computed from dims).
void emit_slice(Emit& e) {
  e.tin(0);
  e.rank_in(0);
  if (e.node().opset() < 10) e.refuse("Slice before opset 10 (attributes) is not emitted");
  if (!e.in(1).shape || e.in(1).shape->size() != 1 || (*e.in(1).shape)[0] < 0) e.refuse("starts' length is not static");
  const std::string n = std::to_string((*e.in(1).shape)[0]);
  for (size_t i = 1; i < e.num_inputs(); ++i)
    if (e.has_input(i)) {
      e.read_values(i);
      e.dims_only(i);
      if (e.in(i).dtype != e.in(1).dtype) e.refuse("index inputs of different types");
    }
  const std::string call = "rt::slice_setup(I0, x1, x2, " + std::string(e.has_input(3) ? "x3" : "decltype(x1)(nullptr)") + ", " +
                           (e.has_input(4) ? "x4" : "decltype(x1)(nullptr)") + ", " + n + ", start, step, ";
  e.shape("int64_t start[8] = {}, step[8] = {};\nif (!" + call + "O0)) fail(\"bad starts/ends/axes/steps\");\n");
  e.compute("int64_t start[8] = {}, step[8] = {};\nrt::Shp o{};\n" + call + "o);\nrt::slice_copy(x0, I0, start, step, y0, O0);\n");
}

QUIVER_REGISTER_OPS(slice) {
  registry.add({"", "Slice", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const DType t = ctx.input_dtype(0);
                  const auto& in = ctx.input(0).shape;
                  if (ctx.opset() < 10) {
                    ctx.expect_inputs(1, 1);
                    SliceSpec s;
                    s.starts = ctx.attrs().req_ints("starts");
                    s.ends = ctx.attrs().req_ints("ends");
                    s.axes = ctx.attrs().get_ints("axes");
                    std::optional<std::vector<int64_t>> shape;
                    if (all_known(in)) {
                      std::vector<int64_t> st, c, sp;
                      resolve(s, *in, st, c, sp, nullptr, &ctx);
                      shape = c;
                    } else if (in) {
                      shape = std::vector<int64_t>(in->size(), -1);
                    }
                    ctx.set_output(0, t, shape);
                    return make_kernel([s, t](ExecContext& ec) { run_slice(ec, s, t); });
                  }
                  ctx.expect_inputs(3, 5);
                  for (size_t i = 1; i < 5; ++i)
                    if (ctx.has_input(i)) ctx.expect_dtype(i, {DType::I32, DType::I64});
                  auto starts = ctx.const_ints(1), ends = ctx.const_ints(2);
                  std::optional<std::vector<int64_t>> axes, steps;
                  bool all_const = starts && ends;
                  if (ctx.has_input(3)) { axes = ctx.const_ints(3); all_const &= axes.has_value(); }
                  if (ctx.has_input(4)) { steps = ctx.const_ints(4); all_const &= steps.has_value(); }
                  std::optional<std::vector<int64_t>> shape;
                  if (in) shape = std::vector<int64_t>(in->size(), -1);
                  if (all_const) {
                    SliceSpec s{*starts, *ends, axes.value_or(std::vector<int64_t>{}), steps.value_or(std::vector<int64_t>{})};
                    if (all_known(in)) {
                      std::vector<int64_t> st, c, sp;
                      resolve(s, *in, st, c, sp, nullptr, &ctx);
                      shape = c;
                    } else if (in) {
                      // Dims not sliced keep their (possibly dynamic) size.
                      const int64_t r = static_cast<int64_t>(in->size());
                      shape = *in;
                      for (size_t i = 0; i < s.starts.size(); ++i) {
                        int64_t a = s.axes.empty() ? static_cast<int64_t>(i) : s.axes[i];
                        if (a < 0) a += r;
                        if (a >= 0 && a < r) (*shape)[a] = -1;
                      }
                    }
                    ctx.set_output(0, t, shape);
                    return make_kernel([s = std::move(s), t](ExecContext& ec) { run_slice(ec, s, t); });
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([t](ExecContext& ec) {
                    SliceSpec s;
                    s.starts = read_ints(ec.input(1));
                    s.ends = read_ints(ec.input(2));
                    if (ec.has_input(3)) s.axes = read_ints(ec.input(3));
                    if (ec.has_input(4)) s.steps = read_ints(ec.input(4));
                    run_slice(ec, s, t);
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(slice) {
  emitters.add("", "Slice", exact(emit_slice));
}
}  // namespace quiver::onnx
