// ScatterND: out = copy of data; for each index tuple in indices[..., :k], the slice
// data[idx] (prod(data.shape[k:]) elements) is replaced/reduced with the matching updates slice.
#include "onnx/emit.hpp"
#include "onnx/ops/scatter_reduce.hpp"
namespace quiver::onnx {

// ScatterND's kernel, shared with ScatterNDParts (ops/scatterndparts.cpp), which builds the tuples.
void scatter_nd(ExecContext& ec, DType t, ScatterReduce red, const Tensor& x, const int64_t* pi,
                const std::vector<int64_t>& tuple_dims, int64_t k, const Tensor& upd) {
  const int64_t r = static_cast<int64_t>(x.rank());
  if (k > r) ec.fail("indices last dim " + std::to_string(k) + " exceeds data rank " + std::to_string(r), "indices");
  // updates.shape must be indices.shape[:-1] + data.shape[k:]
  std::vector<int64_t> ud = tuple_dims;
  ud.insert(ud.end(), x.dims().begin() + k, x.dims().end());
  if (ud != upd.dims())
    ec.fail("updates dims " + dims_to_string(upd.dims()) + " must be " + dims_to_string(ud), "updates");
  Tensor& y = ec.output(0, t, x.dims());
  const int64_t n = product(tuple_dims);
  const int64_t slice = product(x.dims(), k);
  const auto strides = contiguous_strides(x.dims());
  visit_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const T* pu = upd.data<T>();
    if (px != py) copy_n_elems(px, py, x.numel());
    // Fast path (element-wise scatter, e.g. ParT's pair matrices: k == rank, no reduction):
    // unrolled offset computation, branch-free bounds check per tuple.
    if (slice == 1 && red == ScatterReduce::None && k >= 1 && k <= 4) {
      int64_t dims[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0};
      for (int64_t d = 0; d < k; ++d) { dims[d] = x.dim(d); st[d] = strides[d]; }
      auto run = [&](auto kc) {
        constexpr int K = decltype(kc)::value;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t* tup = pi + j * K;
          int64_t off = 0;
          bool ok = true;
          for (int d = 0; d < K; ++d) {
            const int64_t v = tup[d] + (tup[d] < 0 ? dims[d] : 0);
            ok &= static_cast<uint64_t>(v) < static_cast<uint64_t>(dims[d]);
            off += v * st[d];
          }
          if (!ok) return j;
          py[off] = pu[j];
        }
        return n;
      };
      int64_t done;
      switch (k) {
        case 1: done = run(std::integral_constant<int, 1>{}); break;
        case 2: done = run(std::integral_constant<int, 2>{}); break;
        case 3: done = run(std::integral_constant<int, 3>{}); break;
        default: done = run(std::integral_constant<int, 4>{}); break;
      }
      if (done == n) return;
      ec.fail("index tuple " + std::to_string(done) + " of indices is out of range for data dims " +
                  dims_to_string(x.dims()),
              "indices");
    }
    for (int64_t j = 0; j < n; ++j) {
      int64_t off = 0;
      for (int64_t d = 0; d < k; ++d) {
        int64_t v = pi[j * k + d];
        const int64_t dim = x.dim(d);
        if (v < 0) v += dim;
        if (v < 0 || v >= dim)
          ec.fail("index " + std::to_string(pi[j * k + d]) + " out of range for dim " + std::to_string(d) +
                  " of size " + std::to_string(dim), "indices");
        off += v * strides[d];
      }
      T* dst = py + off;
      const T* src = pu + j * slice;
      if (red == ScatterReduce::None) copy_n_elems(src, dst, slice);
      else
        for (int64_t e = 0; e < slice; ++e) scatter_apply(dst[e], src[e], red);
    }
  });
}

QUIVER_REGISTER_OPS(scatternd) {
  registry.add({"", "ScatterND", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(3, 3);
                  ctx.expect_dtype(1, {DType::I64});
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(2) != t) ctx.fail("updates must have the data's dtype", ctx.input_name(2));
                  const ScatterReduce red = parse_scatter_reduction(ctx);
                  ctx.set_output(0, t, ctx.input(0).shape);
                  return make_kernel([t, red](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const Tensor& ind = ec.input(1);
                    const Tensor& upd = ec.input(2);
                    const int64_t q = static_cast<int64_t>(ind.rank());
                    if (q < 1) ec.fail("indices must have rank >= 1", "indices");
                    const std::vector<int64_t> tuple_dims(ind.dims().begin(), ind.dims().end() - 1);
                    scatter_nd(ec, t, red, x, ind.data<int64_t>(), tuple_dims, ind.dim(q - 1), upd);
                  });
                }}, Repro::Exact);
}

namespace {

// quiver compile: data copied, then each index tuple's slice replaced (one memcpy) or reduced as the
// kernel does (scatter_apply); every index is checked against its runtime dim.
void emit_scatternd(Emit& e) {
  e.rank_in(0);
  e.rank_in(2);
  const int q = e.rank_in(1);
  if (q < 1) e.refuse("indices must have rank >= 1");
  if (e.in(1).dtype != DType::I64) e.refuse("indices must be int64");
  const std::string t = e.tin(0);
  const std::string red = e.attrs().get_string("reduction", "none");
  std::string apply;
  if (red == "none") apply = "";
  else if (e.in(0).dtype == DType::Bool) {
    if (red == "add" || red == "max") apply = "dst[i] = dst[i] || src[i];";
    else if (red == "mul" || red == "min") apply = "dst[i] = dst[i] && src[i];";
  } else if (red == "add") apply = "dst[i] = static_cast<" + t + ">(dst[i] + src[i]);";
  else if (red == "mul") apply = "dst[i] = static_cast<" + t + ">(dst[i] * src[i]);";
  else if (red == "max") apply = "dst[i] = std::max(dst[i], src[i]);";
  else if (red == "min") apply = "dst[i] = std::min(dst[i], src[i]);";
  if (red != "none" && apply.empty()) e.refuse("unknown reduction '" + red + "'");
  e.same_dims(0, 0);
  e.shape("const int k = static_cast<int>(I1.d[I1.r - 1]);\n"
          "if (k > I0.r) fail(\"the last dim of indices exceeds the rank of data\");\n"
          "bool ok = I2.r == I1.r - 1 + I0.r - k;\n"
          "for (int a = 0; ok && a < I1.r - 1; ++a) ok = I2.d[a] == I1.d[a];\n"
          "for (int a = k; ok && a < I0.r; ++a) ok = I2.d[I1.r - 1 + a - k] == I0.d[a];\n"
          "if (!ok) fail(\"updates dims must be indices.shape[:-1] + data.shape[k:]\");\n");
  e.compute("std::memcpy(y0, x0, static_cast<size_t>(I0.n()) * sizeof(*x0));\n"
            "const int k = static_cast<int>(I1.d[I1.r - 1]);\n"
            "const int64_t n = I1.span(0, I1.r - 1), slice = I0.span(k, I0.r);\n"
            "int64_t st[8], acc = 1;\nfor (int a = I0.r - 1; a >= 0; --a) {\n  st[a] = acc;\n  acc *= I0.d[a];\n}\n"
            "for (int64_t j = 0; j < n; ++j) {\n  int64_t off = 0;\n  for (int a = 0; a < k; ++a) {\n"
            "    int64_t v = x1[j * k + a];\n    if (v < 0) v += I0.d[a];\n"
            "    if (v < 0 || v >= I0.d[a]) fail(\"an index of indices is out of range for data\");\n"
            "    off += v * st[a];\n  }\n" +
            (apply.empty() ? std::string("  if (slice == 1) y0[off] = x2[j];  // element tuples (ParT's pairs): no memcpy call each\n"
                                           "  else std::memcpy(y0 + off, x2 + j * slice, static_cast<size_t>(slice) * sizeof(*x0));\n")
                           : "  auto* dst = y0 + off;\n  const auto* src = x2 + j * slice;\n  for (int64_t i = 0; i < slice; ++i) " +
                                 apply + "\n") +
            "}\n");
  // Copies are the kernel's operations; the reductions are left to the refusal under --reproducible
  // (the kernel's scatter_apply decides NaN and signed-zero ties its own way).
  if (red == "none") e.bitwise();
  e.comment("reduction " + red);
}

}  // namespace

QUIVER_REGISTER_EMITTERS(scatternd) { emitters.add("", "ScatterND", emit_scatternd); }

}  // namespace quiver::onnx
