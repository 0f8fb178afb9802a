// Concat: joins inputs along `axis` (negative allowed from opset 11). Each output row is a sequence
// of contiguous memcpy runs, one per input.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

// quiver compile: copies of contiguous chunks along the axis.
void emit_concat(Emit& e) {
  const int r = e.rank_in(0);
  int64_t a = e.attrs().get_int("axis", 0);
  if (a < 0) a += r;
  if (a < 0 || a >= r) e.refuse("axis out of range");
  const size_t n = e.num_inputs();
  const std::string t = e.tin(0);
  std::string s = "O0 = I0;\n";
  std::string xs, ss;
  for (size_t i = 0; i < n; ++i) {
    if (!e.has_input(i)) e.refuse("absent input");
    if (e.rank_in(i) != r) e.refuse("inputs differ in rank");
    const std::string I = "I" + std::to_string(i);
    if (i > 0) {
      s += "O0.d[" + std::to_string(a) + "] += " + I + ".d[" + std::to_string(a) + "];\n";
      s += "for (int j = 0; j < " + std::to_string(r) + "; ++j) if (j != " + std::to_string(a) + " && " + I +
           ".d[j] != I0.d[j]) fail(\"inputs differ off the axis\");\n";
    }
    xs += (i ? ", " : "") + std::string("x") + std::to_string(i);
    ss += (i ? ", " : "") + std::string("&") + I;
  }
  e.shape(s);
  e.compute("const " + t + "* const xs[] = {" + xs + "};\nconst rt::Shp* const ss[] = {" + ss + "};\nrt::concat(xs, ss, " +
            std::to_string(n) + ", " + std::to_string(a) + ", y0, O0);\n");
}

QUIVER_REGISTER_OPS(concat) {
  registry.add({"", "Concat", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  if (ctx.num_inputs() < 1) ctx.fail("expects at least one input");
                  if (ctx.opset() >= 4 && !ctx.attrs().has("axis")) ctx.fail("required attribute 'axis' is missing");
                  const int64_t axis = ctx.attrs().get_int("axis", 1);
                  const DType t = ctx.input_dtype(0);
                  for (size_t i = 1; i < ctx.num_inputs(); ++i)
                    if (ctx.input_dtype(i) != t) ctx.fail("all inputs must have the same dtype", ctx.input_name(i));
                  // Static shape when every input shape is known.
                  std::optional<std::vector<int64_t>> shape;
                  bool ranks_known = true;
                  for (size_t i = 0; i < ctx.num_inputs(); ++i) ranks_known &= ctx.input(i).shape.has_value();
                  if (ranks_known) {
                    const int64_t r = static_cast<int64_t>(ctx.input(0).shape->size());
                    if (r > 0) {
                      const int64_t a = norm_axis(axis, r, nullptr, &ctx);
                      std::vector<int64_t> s = *ctx.input(0).shape;
                      for (size_t i = 1; i < ctx.num_inputs(); ++i) {
                        const auto& si = *ctx.input(i).shape;
                        if (static_cast<int64_t>(si.size()) != r) { s.assign(r, -1); break; }
                        for (int64_t d = 0; d < r; ++d) {
                          if (d == a) s[d] = (s[d] < 0 || si[d] < 0) ? -1 : s[d] + si[d];
                          else if (s[d] < 0) s[d] = si[d];
                        }
                      }
                      shape = s;
                    }
                  }
                  ctx.set_output(0, t, shape);
                  return make_kernel([axis, t](ExecContext& ec) {
                    const size_t n = ec.num_inputs();
                    const Tensor& x0 = ec.input(0);
                    const int64_t r = static_cast<int64_t>(x0.rank());
                    if (r == 0) ec.fail("cannot concatenate scalars");
                    const int64_t a = norm_axis(axis, r, &ec);
                    std::vector<int64_t> od = x0.dims();
                    od[a] = 0;
                    for (size_t i = 0; i < n; ++i) {
                      const Tensor& x = ec.input(i);
                      if (static_cast<int64_t>(x.rank()) != r) ec.fail("input rank mismatch", ec.node_name());
                      for (int64_t d = 0; d < r; ++d)
                        if (d != a && x.dim(d) != od[d])
                          ec.fail("input " + std::to_string(i) + " has dims " + dims_to_string(x.dims()) +
                                  ", incompatible with " + dims_to_string(x0.dims()) + " for concat on axis " +
                                  std::to_string(a));
                      od[a] += x.dim(a);
                    }
                    Tensor& y = ec.output(0, t, od);
                    if (y.numel() == 0) return;
                    const int64_t outer = product(od, 0, a);
                    const int64_t row = product(od, a);
                    visit_width(t, [&](auto tag) {
                      using T = typename decltype(tag)::type;
                      T* py = y.data<T>();
                      if (outer > 1 && row <= 64 && n <= 16) {
                        // Narrow rows (e.g. concatenating [..., 1] features on the last axis): fill each
                        // output row from all inputs in turn instead of n strided passes.
                        const T* src[16];
                        int64_t blk[16];
                        for (size_t i = 0; i < n; ++i) {
                          src[i] = ec.input(i).data<T>();
                          blk[i] = product(ec.input(i).dims(), a);
                        }
                        for (int64_t o = 0; o < outer; ++o)
                          for (size_t i = 0; i < n; ++i) {
                            const int64_t b = blk[i];
                            const T* s = src[i] + o * b;
                            for (int64_t e = 0; e < b; ++e) *py++ = s[e];
                          }
                        return;
                      }
                      int64_t col = 0;
                      for (size_t i = 0; i < n; ++i) {
                        const Tensor& x = ec.input(i);
                        const int64_t blk = product(x.dims(), a);
                        if (blk == 0) continue;
                        const T* px = x.data<T>();
                        if (outer == 1) copy_n_elems(px, py + col, blk);
                        else
                          for (int64_t o = 0; o < outer; ++o) copy_n_elems(px + o * blk, py + o * row + col, blk);
                        col += blk;
                      }
                    });
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(concat) {
  emitters.add("", "Concat", exact(emit_concat));
}
}  // namespace quiver::onnx
