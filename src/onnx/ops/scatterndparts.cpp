// ai.quiver::ScatterNDParts(data, updates, part_0 [, shape_0], part_1 [, shape_1], ...) attribute
// expanded (one int per part: 1 when the part is followed by an Expand shape): ScatterND whose index
// tuples are the k int64 parts broadcast to one shape S (each part Expand-ed to its shape first, as
// Concat(Unsqueeze(Expand(part, shape), -1) ..., axis -1) would). Made by the fusion pass for the CPU
// engine and the code emitter (onnx/fusion.cpp, fuse_scatter_parts) from ParT's pair-embedding
// scatter; never found in a model file. The CPU kernel and the emitted step (rt::scatter_parts) read each tuple through the
// parts' broadcast strides, so no tuple tensor and no expanded part exists.
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

// The CPU kernel: y = x, then y[c_0(j), ..., c_{k-1}(j), ...] = updates[j, ...] for each position j
// of the parts' common dims S, each part read through its broadcast strides (0 along the dims it has
// as 1), as rt::scatter_parts does for the emitted code. Building the [S, k] tuples first, as the
// unfused Concat did, cost ParT at batch 64 more than the scatter (int64 tuples of 4 x 8 bytes per
// written float).
void scatter_parts(ExecContext& ec, DType t, const Tensor& x, const std::vector<Part>& ps, const Tensor& upd) {
  const int64_t K = static_cast<int64_t>(ps.size());
  if (K > static_cast<int64_t>(x.rank()))
    ec.fail(std::to_string(K) + " index parts exceed data rank " + std::to_string(x.rank()), "indices");
  // Every per-call array lives in one block of the call's scratch (no heap allocation per call): S
  // and a part's broadcast dims need r (the largest rank among the parts and their Expand shapes);
  // the row offsets need S's last dim, at most the largest last dim among them.
  int64_t r = 0, inner_max = 1;
  for (const Part& p : ps) {
    const Tensor& c = ec.input(p.value);
    r = std::max(r, static_cast<int64_t>(c.rank()));
    if (c.rank()) inner_max = std::max(inner_max, c.dim(c.rank() - 1));
    if (p.shape >= 0) {
      const Tensor& sh = ec.input(static_cast<size_t>(p.shape));
      r = std::max(r, sh.numel());
      if (sh.numel()) inner_max = std::max(inner_max, sh.data<int64_t>()[sh.numel() - 1]);
    }
  }
  const size_t n64 = static_cast<size_t>(2 * r + K * r + 4 * K + r + inner_max);
  int64_t* S = static_cast<int64_t*>(ec.scratch(n64 * sizeof(int64_t) + 2 * static_cast<size_t>(K) * sizeof(const int64_t*)));
  int64_t* d = S + r;           // a part's dims broadcast to its Expand shape
  int64_t* cs = d + r;          // [K, r]
  int64_t* base = cs + K * r;   // [K]
  int64_t* step = base + K;     // [K]
  int64_t* dims = step + K;     // [K]
  int64_t* ys = dims + K;       // [K]: y's strides along the indexed axes
  int64_t* idx = ys + K;        // [r]
  int64_t* offs = idx + r;      // [inner_max]
  const int64_t** c = reinterpret_cast<const int64_t**>(S + n64);  // [K]
  const int64_t** row = c + K;                                       // [K]
  // S: each part's dims right-aligned to r and broadcast to its Expand shape (numpy rules, as
  // broadcast_dims); every part must give the same S.
  for (int64_t p = 0; p < K; ++p) {
    const Part& pt = ps[static_cast<size_t>(p)];
    const Tensor& cp = ec.input(pt.value);
    const int64_t* spec = pt.shape >= 0 ? ec.input(static_cast<size_t>(pt.shape)).data<int64_t>() : nullptr;
    const int64_t ns = pt.shape >= 0 ? ec.input(static_cast<size_t>(pt.shape)).numel() : 0;
    const int64_t rp = pt.shape >= 0 ? std::max(static_cast<int64_t>(cp.rank()), ns) : static_cast<int64_t>(cp.rank());
    bool ok = true;
    for (int64_t i = 0; i < rp; ++i) {
      const int64_t ca = i - (rp - static_cast<int64_t>(cp.rank())), sa = i - (rp - ns);
      const int64_t da = ca < 0 ? 1 : cp.dim(static_cast<size_t>(ca));
      const int64_t db = !spec || sa < 0 ? 1 : spec[sa];
      if (da == db || db == 1) d[i] = da;
      else if (da == 1) d[i] = db;
      else ok = false;
    }
    const std::span<const int64_t> dp(d, static_cast<size_t>(rp));
    if (!ok)
      ec.fail("index part " + std::to_string(p) + " of dims " + dims_to_string(cp.dims()) + " does not broadcast to " +
              dims_to_string(std::vector<int64_t>(spec, spec + ns)));
    if (p == 0) {
      std::copy_n(d, rp, S);
      r = rp;
    } else if (rp != r || !std::equal(d, d + rp, S)) {
      ec.fail("index part " + std::to_string(p) + " has dims " + dims_to_string(std::vector<int64_t>(dp.begin(), dp.end())) +
              ", part 0 " + dims_to_string(std::vector<int64_t>(S, S + r)));
    }
  }
  bool ud_ok = static_cast<int64_t>(upd.rank()) == r + static_cast<int64_t>(x.rank()) - K;
  for (int64_t a = 0; ud_ok && a < r; ++a) ud_ok = upd.dim(static_cast<size_t>(a)) == S[a];
  for (int64_t a = K; ud_ok && a < static_cast<int64_t>(x.rank()); ++a)
    ud_ok = upd.dim(static_cast<size_t>(r + a - K)) == x.dim(static_cast<size_t>(a));
  if (!ud_ok) {
    std::vector<int64_t> ud(S, S + r);
    ud.insert(ud.end(), x.dims().begin() + K, x.dims().end());
    ec.fail("updates dims " + dims_to_string(upd.dims()) + " must be " + dims_to_string(ud), "updates");
  }
  Tensor& y = ec.output(0, t, x.dims());
  const int64_t n = product(std::span<const int64_t>(S, static_cast<size_t>(r))), slice = product(x.dims(), static_cast<size_t>(K));
  for (int64_t p = K - 1, st = slice; p >= 0; --p) {
    ys[p] = st;
    st *= x.dim(static_cast<size_t>(p));
  }
  // cs[p * r + a]: part p's stride along axis a of S (its dims right-aligned to S, 0 where it is 1).
  std::fill_n(cs, K * r, 0);
  std::fill_n(base, K, 0);
  std::fill_n(idx, r, 0);
  for (int64_t p = 0; p < K; ++p) {
    const Tensor& cp = ec.input(ps[static_cast<size_t>(p)].value);
    c[p] = cp.data<int64_t>();
    const int64_t off = r - static_cast<int64_t>(cp.rank());
    int64_t st = 1;
    for (int64_t a = r - 1; a >= std::max<int64_t>(off, 0); --a) {
      const int64_t dm = cp.dim(static_cast<size_t>(a - off));
      if (dm != 1) cs[p * r + a] = st;
      st *= dm;
    }
  }
  const int64_t inner = r ? S[static_cast<size_t>(r - 1)] : 1;
  // Per row of S (its last axis): the offsets into y, then the copy, so that only the offsets'
  // loop depends on the number of parts (unrolled for up to 4) and only the copy on the dtype.
  for (int64_t p = 0; p < K; ++p) {
    step[p] = r ? cs[p * r + r - 1] : 0;
    dims[p] = x.dim(static_cast<size_t>(p));
  }
  auto offsets = [&](auto kc) {  // the first column whose tuple is out of range, else inner
    constexpr int KC = decltype(kc)::value;
    const int64_t k = KC ? KC : K;
    // Locals (K <= 8, read_parts): the stores into offs could otherwise alias these int64 arrays.
    const int64_t* rw[8];
    int64_t st[8], dm[8], yy[8];
    for (int64_t p = 0; p < k; ++p) {
      rw[p] = row[p];
      st[p] = step[p];
      dm[p] = dims[p];
      yy[p] = ys[p];
    }
    int64_t* __restrict out = offs;
    for (int64_t i = 0; i < inner; ++i) {
      int64_t off = 0;
      bool ok = true;
      for (int64_t p = 0; p < k; ++p) {
        const int64_t v0 = rw[p][i * st[p]];
        const int64_t v = v0 < 0 ? v0 + dm[p] : v0;
        ok &= static_cast<uint64_t>(v) < static_cast<uint64_t>(dm[p]);
        off += v * yy[p];
      }
      if (!ok) return i;
      out[i] = off;
    }
    return inner;
  };
  visit_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* py = y.data<T>();
    if (x.data<T>() != py) copy_n_elems(x.data<T>(), py, x.numel());
    const T* pu = upd.data<T>();
    for (int64_t o = 0; o < n; o += inner) {
      for (int64_t p = 0; p < K; ++p) row[p] = c[p] + base[p];
      int64_t done;
      switch (K) {
        case 1: done = offsets(std::integral_constant<int, 1>{}); break;
        case 2: done = offsets(std::integral_constant<int, 2>{}); break;
        case 3: done = offsets(std::integral_constant<int, 3>{}); break;
        case 4: done = offsets(std::integral_constant<int, 4>{}); break;
        default: done = offsets(std::integral_constant<int, 0>{}); break;
      }
      if (done != inner) {
        std::string bad;
        for (int64_t p = 0; p < K; ++p)
          bad += (p ? ", " : "") + std::to_string(row[p][done * step[p]]);
        ec.fail("index tuple (" + bad + ") of the index parts is out of range for data dims " + dims_to_string(x.dims()),
                "indices");
      }
      if (slice == 1)
        for (int64_t i = 0; i < inner; ++i) py[offs[i]] = pu[o + i];
      else
        for (int64_t i = 0; i < inner; ++i) copy_n_elems(pu + (o + i) * slice, py + offs[i], slice);
      for (int64_t a = r - 2; a >= 0; --a) {
        for (int64_t p = 0; p < K; ++p) base[p] += cs[p * r + a];
        if (++idx[a] < S[a]) break;
        for (int64_t p = 0; p < K; ++p) base[p] -= cs[p * r + a] * S[a];
        idx[a] = 0;
      }
    }
  });
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
                  return make_kernel([t, ps](ExecContext& ec) { scatter_parts(ec, t, ec.input(0), ps, ec.input(1)); });
                }}, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(scatterndparts) { emitters.add("ai.quiver", "ScatterNDParts", exact(emit_scatter_parts)); }

}  // namespace quiver::onnx
