// ai.quiver::ScatterNDParts(data, updates, part_0 [, shape_0], part_1 [, shape_1], ...) attribute
// expanded (one int per part: 1 when the part is followed by an Expand shape): ScatterND whose index
// tuples are the k int64 parts broadcast to one shape S (each part Expand-ed to its shape first, as
// Concat(Unsqueeze(Expand(part, shape), -1) ..., axis -1) would). Made by the code emitter's fusion
// pass (onnx/fusion.cpp, fuse_scatter_parts) from ParT's pair-embedding scatter; never found in a
// model file. The CPU kernel builds the [S, k] tuples and runs ScatterND's kernel; the emitted step
// reads each tuple through the parts' broadcast strides (rt::scatter_parts), so no tuple tensor and
// no expanded part exists.
#include "onnx/emit.hpp"
#include "onnx/ops/scatter_reduce.hpp"

namespace quiver::onnx {

namespace {

struct Part {
  size_t value = 0;
  int shape = -1;  // input index of the Expand's shape; -1: the part has the tuples' dims as is
};

std::vector<Part> read_parts(const BuildContext& ctx) {
  const std::vector<int64_t> ex = ctx.attrs().get_ints("expanded");
  if (ex.empty() || ex.size() > 8) ctx.fail("ScatterNDParts needs 1 to 8 index parts (attribute expanded)");
  std::vector<Part> ps;
  size_t at = 2;
  for (int64_t e : ex) {
    Part p;
    p.value = at++;
    if (e != 0) p.shape = static_cast<int>(at++);
    ps.push_back(p);
  }
  if (at != ctx.num_inputs()) ctx.fail("inputs do not match attribute expanded");
  for (const Part& p : ps) {
    ctx.expect_dtype(p.value, {DType::I64});
    if (p.shape >= 0) ctx.expect_dtype(static_cast<size_t>(p.shape), {DType::I64});
  }
  return ps;
}

// quiver compile: the parts' dims (after their Expand) must agree, as Concat requires; updates must be
// S + data.shape[k:]; every index is checked against its runtime dim by rt::scatter_parts.
void emit_scatter_parts(Emit& e) {
  const std::vector<Part> ps = read_parts(e.node());
  const int rx = e.rank_in(0);
  e.rank_in(1);
  e.tin(0);
  const int K = static_cast<int>(ps.size());
  if (K > rx) e.refuse("more index parts than data dims");
  std::string sh = "rt::Shp S{}, E{};\n", ptrs, dims;
  for (int p = 0; p < K; ++p) {
    const std::string v = std::to_string(ps[p].value), pn = std::to_string(p);
    e.rank_in(ps[p].value);
    if (ps[p].shape >= 0) {
      const size_t si = static_cast<size_t>(ps[p].shape);
      const auto& ss = e.in(si).shape;
      if (!ss || ss->size() != 1 || (*ss)[0] < 0) e.refuse("the length of part " + pn + "'s shape is not static");
      if ((*ss)[0] > 8) e.refuse("part " + pn + "'s shape has rank above 8");
      e.read_values(si);
      e.dims_only(si);
      sh += "{\n  rt::Shp s{};\n  s.r = " + std::to_string((*ss)[0]) + ";\n  for (int j = 0; j < s.r; ++j) s.d[j] = x" +
            std::to_string(si) + "[j];\n  if (!rt::broadcast(I" + v + ", s, E)) fail(\"index part " + pn +
            " does not broadcast to its shape\");\n}\n";
    } else {
      sh += "E = I" + v + ";\n";
    }
    sh += p == 0 ? "S = E;\n" : "if (!rt::same(E, S)) fail(\"index parts differ in dims\");\n";
    ptrs += (p ? ", x" : "x") + v;
    dims += (p ? ", I" : "I") + v;
  }
  const std::string Ks = std::to_string(K);
  sh += "bool ok = I1.r == S.r + I0.r - " + Ks + ";\nfor (int a = 0; ok && a < S.r; ++a) ok = I1.d[a] == S.d[a];\n"
        "for (int a = " + Ks + "; ok && a < I0.r; ++a) ok = I1.d[S.r + a - " + Ks + "] == I0.d[a];\n"
        "if (!ok) fail(\"updates dims must be the index parts' dims + data.shape[k:]\");\nO0 = I0;\n";
  e.shape(sh);
  e.compute("const int64_t* parts[] = {" + ptrs + "};\nconst rt::Shp dims[] = {" + dims + "};\nrt::Shp S = I1;\nS.r = I1.r - (I0.r - " +
            Ks + ");\nif (!rt::scatter_parts(x0, I0, y0, x1, S, " + Ks + ", parts, dims))\n"
            "  fail(\"an index of the index parts is out of range for data\");\n");
  e.comment("ScatterND with " + Ks + " index parts read through broadcast strides (no index tuples built)");
}

}  // namespace

QUIVER_REGISTER_OPS(scatterndparts) {
  registry.add({"ai.quiver", "ScatterNDParts", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  const std::vector<Part> ps = read_parts(ctx);
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(1) != t) ctx.fail("updates must have the data's dtype", ctx.input_name(1));
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, ps](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& upd = ec.input(1);
                    std::vector<int64_t> S;
                    for (size_t p = 0; p < ps.size(); ++p) {
                      const Tensor& c = ec.input(ps[p].value);
                      std::vector<int64_t> d(c.dims().begin(), c.dims().end());
                      if (ps[p].shape >= 0) {
                        const std::vector<int64_t> spec = read_ints(ec.input(static_cast<size_t>(ps[p].shape)));
                        if (!broadcast_dims(c.dims(), spec, d))
                          ec.fail("index part " + std::to_string(p) + " of dims " + dims_to_string(c.dims()) +
                                  " does not broadcast to " + dims_to_string(spec));
                      }
                      if (p == 0) S = d;
                      else if (d != S)
                        ec.fail("index part " + std::to_string(p) + " has dims " + dims_to_string(d) + ", part 0 " +
                                dims_to_string(S));
                    }
                    // The tuples as the unfused Concat would hold them.
                    const int64_t K = static_cast<int64_t>(ps.size()), n = product(S);
                    std::vector<int64_t> tuples(static_cast<size_t>(n * K)), one(static_cast<size_t>(n));
                    for (int64_t p = 0; p < K; ++p) {
                      const Tensor& c = ec.input(ps[static_cast<size_t>(p)].value);
                      broadcast_copy(c.data<int64_t>(), c.dims(), one.data(), S);
                      for (int64_t j = 0; j < n; ++j) tuples[static_cast<size_t>(j * K + p)] = one[static_cast<size_t>(j)];
                    }
                    scatter_nd(ec, t, ScatterReduce::None, x, tuples.data(), S, K, upd);
                  });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(scatterndparts) { emitters.add("ai.quiver", "ScatterNDParts", exact(emit_scatter_parts)); }

}  // namespace quiver::onnx
