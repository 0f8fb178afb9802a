// Gemm: Y = alpha * op(A) op(B) + beta * C (C unidirectionally broadcast), optional fused activation.
#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/shape_ops.hpp"
#include "onnx/simd.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace quiver::onnx {

namespace {

// A constant B of zeros and ones that only selects or sums columns of A (interaction networks'
// sender/receiver matrices: ParT-style graph models export message passing as products with them).
// Default numerics only: the sums run in another order than a GEMM's, and a NaN or inf in A reaches
// only the outputs that select it (in a GEMM, 0 x inf would also spread a NaN to the others).
struct OneHotB {
  int64_t K = 0, N = 0;         // B's shape
  bool gather = false;          // every column of B has one 1: y[m, n] = A[m, src[n]]
  std::vector<int32_t> src;     // gather: per column n, the row k of its 1
  std::vector<int64_t> begin;   // otherwise every row of B has one 1, in column order: y[m, n] is
                                // the sum of A[m, begin[n] .. begin[n + 1]) (N + 1 entries)
  // A gather's columns as runs, when they are long (see gather_runs); empty otherwise.
  struct Run {
    int32_t dst, len, src;
    bool step;  // y[m, dst + i] = A[m, src + i] (a block of columns), else A[m, src] (one repeated)
  };
  std::vector<Run> runs;
};

// The gather's columns as runs of one repeated source column or of consecutive ones, kept only when
// they average 4 or more columns: an interaction net's receiver matrix repeats each particle for its
// 59 partners, the sender matrix copies the others in blocks; per element the gather was 17 % of
// its time at batch 1, the runs are vector fills and copies.
void gather_runs(OneHotB& f) {
  std::vector<OneHotB::Run> runs;
  const int64_t N = static_cast<int64_t>(f.src.size());
  for (int64_t n = 0; n < N;) {
    OneHotB::Run r{static_cast<int32_t>(n), 1, f.src[static_cast<size_t>(n)], false};
    if (n + 1 < N) {
      const int32_t d = f.src[static_cast<size_t>(n + 1)] - r.src;
      if (d == 0 || d == 1) {
        r.step = d == 1;
        while (n + r.len < N && f.src[static_cast<size_t>(n + r.len)] == r.src + (r.step ? r.len : 0)) ++r.len;
      }
    }
    runs.push_back(r);
    n += r.len;
  }
  if (static_cast<int64_t>(runs.size()) * 4 <= N) f.runs = std::move(runs);
}

// B as [K, N] row-major; nullopt unless it is one of the two forms.
std::optional<OneHotB> one_hot_form(const float* b, int64_t K, int64_t N) {
  if (K <= 0 || N <= 0 || K > INT32_MAX) return std::nullopt;
  for (int64_t i = 0; i < K * N; ++i)
    if (b[i] != 0.0f && b[i] != 1.0f) return std::nullopt;
  OneHotB f;
  f.K = K;
  f.N = N;
  f.src.assign(static_cast<size_t>(N), -1);
  bool cols = true;
  for (int64_t k = 0; k < K && cols; ++k)
    for (int64_t n = 0; n < N; ++n)
      if (b[k * N + n] != 0.0f) {
        if (f.src[static_cast<size_t>(n)] >= 0) {
          cols = false;
          break;
        }
        f.src[static_cast<size_t>(n)] = static_cast<int32_t>(k);
      }
  if (cols && std::find(f.src.begin(), f.src.end(), -1) == f.src.end()) {
    f.gather = true;
    gather_runs(f);
    return f;
  }
  f.src.clear();
  // Segments: row k's single 1 is in column dst(k), and dst never decreases.
  f.begin.assign(static_cast<size_t>(N + 1), K);
  int64_t last = -1;
  for (int64_t k = 0; k < K; ++k) {
    int64_t dst = -1;
    for (int64_t n = 0; n < N; ++n)
      if (b[k * N + n] != 0.0f) {
        if (dst >= 0) return std::nullopt;
        dst = n;
      }
    if (dst < 0 || dst < last) return std::nullopt;
    for (int64_t n = last + 1; n <= dst; ++n) f.begin[static_cast<size_t>(n)] = k;
    last = dst;
  }
  return f;
}

QUIVER_HOT
void gather_columns(const float* a, int64_t M, int64_t K, const int32_t* src, int64_t N, float* y) {
  for (int64_t m = 0; m < M; ++m) {
    const float* am = a + m * K;
    float* ym = y + m * N;
    for (int64_t n = 0; n < N; ++n) ym[n] = am[src[n]];
  }
}

QUIVER_HOT
void gather_column_runs(const float* a, int64_t M, int64_t K, const std::vector<OneHotB::Run>& runs, int64_t N,
                        float* y) {
  for (int64_t m = 0; m < M; ++m) {
    const float* am = a + m * K;
    float* ym = y + m * N;
    for (const OneHotB::Run& r : runs) {
      float* d = ym + r.dst;
      if (r.step) {
        const float* s = am + r.src;
        for (int32_t i = 0; i < r.len; ++i) d[i] = s[i];
      } else {
        const float v = am[r.src];
        for (int32_t i = 0; i < r.len; ++i) d[i] = v;
      }
    }
  }
}

typedef float v16f __attribute__((vector_size(64)));

QUIVER_HOT
void segment_sums(const float* a, int64_t M, int64_t K, const int64_t* begin, int64_t N, float* y) {
  for (int64_t m = 0; m < M; ++m) {
    const float* am = a + m * K;
    for (int64_t n = 0; n < N; ++n) {
      int64_t k = begin[n];
      const int64_t e = begin[n + 1];
      float s = 0.0f;
      if (e - k >= 16) {  // 16 partial sums, then across them
        v16f acc = {};
        for (; k + 16 <= e; k += 16) {
          v16f v;
          std::memcpy(&v, am + k, sizeof v);
          acc += v;
        }
        for (int j = 0; j < 16; ++j) s += acc[j];
      }
      for (; k < e; ++k) s += am[k];
      y[m * N + n] = s;
    }
  }
}

class GemmKernel final : public Kernel {
 public:
  GemmKernel(float alpha, float beta, bool ta, bool tb, ActivationSpec act, std::shared_ptr<const Tensor> packed_b,
             Blas blas)
      : alpha_(alpha), beta_(beta), ta_(ta), tb_(tb), act_(act), packed_b_(std::move(packed_b)), blas_(blas) {}
  // Set by the builder for a constant one-hot B (OneHotB; default numerics, A not transposed).
  std::optional<OneHotB> one_hot_;
  // Set by the Transpose -> Reshape -> Gemm fusion: input 0 is X [B, C, L] and A is
  // reshape(transpose(X, 0,2,1), target).
  std::optional<std::array<int64_t, 2>> a_btrans_;

  void run(ExecContext& ec) const override {
    if (a_btrans_) {
      run_btrans(ec);
      return;
    }
    run_a(ec, ec.input(0));
  }

  // y = alpha * A B (+ bias row) with B one-hot: a gather or segment sums instead of the GEMM.
  // False (nothing written) when the operands are not the plain case; the caller runs the GEMM.
  bool run_one_hot(ExecContext& ec, const Tensor& a) const {
    const Tensor* c = ec.input_ptr(2);
    const bool has_c = c && beta_ != 0.0f && c->numel() > 0;
    const int64_t N = one_hot_->N;
    if (a.rank() != 2 || a.dim(1) != one_hot_->K || (has_c && !bias_row(c, N))) return false;
    const int64_t M = a.dim(0), Ka = a.dim(1);
    Tensor& y = ec.output(0, DType::F32, {M, N});
    float* yp = y.data<float>();
    if (!one_hot_->runs.empty()) gather_column_runs(a.data<float>(), M, Ka, one_hot_->runs, N, yp);
    else if (one_hot_->gather) gather_columns(a.data<float>(), M, Ka, one_hot_->src.data(), N, yp);
    else segment_sums(a.data<float>(), M, Ka, one_hot_->begin.data(), N, yp);
    ec.report_no_product(one_hot_->gather ? "one-hot gather" : "one-hot segment sums");
    if (alpha_ != 1.0f)
      for (int64_t i = 0; i < M * N; ++i) yp[i] *= alpha_;
    if (has_c) {
      const float* bias = c->data<float>();
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) yp[m * N + n] += bias[n];
    }
    blas_.activation(yp, M, N, N, act_);
    return true;
  }

  // The bias row case of C (broadcast along M, beta 1): added in the GEMM's fused epilogue.
  bool bias_row(const Tensor* c, int64_t N) const {
    return c->numel() == N && (c->rank() == 1 || (c->rank() == 2 && c->dim(0) == 1)) && beta_ == 1.0f;
  }

  void run_btrans(ExecContext& ec) const {
    const Tensor& x = ec.input(0);
    if (x.rank() != 3) ec.fail("input of the fused Transpose(0,2,1) must be 3-D, got " + dims_to_string(x.dims()));
    const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2);
    // The Reshape target against the transposed dims [B, L, C].
    const std::vector<int64_t> r = reshape_dims(std::vector<int64_t>{B, L, C},
                                                std::vector<int64_t>{(*a_btrans_)[0], (*a_btrans_)[1]}, false, &ec, nullptr);
    const Tensor* c = ec.input_ptr(2);
    const bool has_c = c && beta_ != 0.0f && c->numel() > 0;
    const int64_t N = packed_b_ ? packed_b_->dim(1) : (tb_ ? ec.input(1).dim(0) : ec.input(1).dim(1));
    if (r[0] != B * L || r[1] != C || (has_c && !bias_row(c, N))) {
      // General case: materialise the transpose, then the ordinary GEMM.
      float* t = static_cast<float*>(ec.scratch(static_cast<size_t>(B * L * C) * sizeof(float)));
      strided_copy(x.data<float>(), t, {B, L, C}, {C * L, 1, L});
      run_a(ec, Tensor::view(DType::F32, r, t));
      return;
    }
    // Fast path: block b of A is X[b]^T, i.e. X[b] [C, L] read with transA.
    const Tensor& w = packed_b_ ? *packed_b_ : ec.input(1);
    const bool tb = packed_b_ ? false : tb_;
    const int64_t Kb = tb ? w.dim(1) : w.dim(0);
    if (w.rank() != 2 || Kb != C)
      ec.fail("inner dimensions differ: " + dims_to_string(std::vector<int64_t>{B * L, C}) + " x " + dims_to_string(w.dims()));
    Tensor& y = ec.output(0, DType::F32, {B * L, N});
    for (int64_t bb = 0; bb < B; ++bb) {
      GemmArgs g;
      g.M = L; g.N = N; g.K = C;
      g.A = x.data<float>() + bb * C * L; g.lda = L; g.transA = true;
      g.B = w.data<float>(); g.ldb = w.dim(1); g.transB = tb;
      g.C = y.data<float>() + bb * L * N; g.ldc = N;
      g.alpha = alpha_;
      g.act = act_;
      if (has_c) g.bias = c->data<float>();
      blas_.gemm(g);
    }
  }

  void run_a(ExecContext& ec, const Tensor& a) const {
    if (one_hot_ && run_one_hot(ec, a)) return;
    const Tensor& b = packed_b_ ? *packed_b_ : ec.input(1);
    const bool tb = packed_b_ ? false : tb_;
    if (a.rank() != 2 || b.rank() != 2) ec.fail("A and B must be 2-D, got " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()));
    const int64_t M = ta_ ? a.dim(1) : a.dim(0), K = ta_ ? a.dim(0) : a.dim(1);
    const int64_t Kb = tb ? b.dim(1) : b.dim(0), N = tb ? b.dim(0) : b.dim(1);
    if (K != Kb) ec.fail("inner dimensions differ: " + dims_to_string(a.dims()) + " x " + dims_to_string(b.dims()));
    Tensor& y = ec.output(0, DType::F32, {M, N});
    GemmArgs g;
    g.M = M; g.N = N; g.K = K;
    g.A = a.data<float>(); g.lda = a.dim(1); g.transA = ta_;
    g.B = b.data<float>(); g.ldb = b.dim(1); g.transB = tb;
    g.C = y.data<float>(); g.ldc = N;
    g.alpha = alpha_;
    g.act = act_;
    const Tensor* c = ec.input_ptr(2);
    if (c && beta_ != 0.0f && c->numel() > 0) {
      if (bias_row(c, N)) {
        g.bias = c->data<float>();  // the usual bias row: fused epilogue
      } else {
        std::vector<int64_t> od;
        if (!broadcast_dims(std::vector<int64_t>{M, N}, c->dims(), od) || od != std::vector<int64_t>{M, N})
          ec.fail("C of shape " + dims_to_string(c->dims()) + " does not broadcast to " + dims_to_string(y.dims()));
        broadcast_binary<float, float, float>(y, *c, y, [](float, float cv) { return cv; });
        g.beta = beta_;
      }
    }
    blas_.gemm(g);
  }

 private:
  float alpha_, beta_;
  bool ta_, tb_;
  ActivationSpec act_;
  std::shared_ptr<const Tensor> packed_b_;  // constant B stored as [K, N] row-major
  Blas blas_;
};

}  // namespace

namespace {
// quiver compile --reproducible: the kernel's repro::gemm as rr::gemm, with the same choice of C's
// role (a bias row added after alpha * AB, else C broadcast into Y and fma(beta, C, alpha * AB)) made
// at run time from C's dims as the kernel makes it; a constant transposed B stored as [K, N].
void emit_gemm_repro(Emit& e) {
  const auto& at = e.attrs();
  const bool ta = at.get_int("transA", 0) != 0, tb = at.get_int("transB", 0) != 0;
  const float alpha = at.get_float("alpha", 1.0f), beta = at.get_float("beta", 1.0f);
  const std::string M = e.din(0, ta ? 1 : 0), K = e.din(0, ta ? 0 : 1), N = e.din(1, tb ? 0 : 1);
  std::string c = emit_repro_activation(e.node()) + "rr::Gemm g;\ng.M = " + M + ";\ng.N = " + N + ";\ng.K = " + K +
                  ";\ng.A = x0;\ng.am = " + (ta ? "1" : K) + ";\ng.ak = " + (ta ? M : "1") + ";\n";
  if (e.in(1).constant && tb) {
    const Tensor& w = *e.in(1).constant;
    const int64_t n = w.dim(0), k = w.dim(1);
    Tensor p = Tensor::empty(DType::F32, {k, n});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) p.data<float>()[j * n + i] = w.data<float>()[i * k + j];
    e.dims_only(1);
    c += "g.B = " + e.add_const(std::move(p)) + ";\ng.bk = " + N + ";\ng.bn = 1;\n";
  } else {
    c += "g.B = x1;\ng.bk = " + (tb ? std::string("1") : N) + ";\ng.bn = " + (tb ? K : std::string("1")) + ";\n";
  }
  c += "g.C = y0;\ng.ldc = " + N + ";\ng.alpha = " + cfloat(alpha) + ";\n";
  if (e.has_input(2) && beta != 0.0f) {
    if (e.in(2).dtype != DType::F32) e.refuse("Gemm's C must be float");
    if (e.rank_in(2) > 2) e.refuse("Gemm's C has rank above 2");
    // As GemmKernel::run_a: an empty C adds nothing; a bias row [N] or [1, N] with beta 1 is the
    // epilogue's bias; any other C is broadcast into Y first and added as fma(beta, C, y).
    c += "const int64_t nc = I2.n();\nif (nc > 0) {\n"
         "  if (nc == g.N && (I2.r == 1 || (I2.r == 2 && I2.d[0] == 1)) && " + std::string(beta == 1.0f ? "true" : "false") +
         ") {\n    g.bias = x2;\n  } else {\n"
         "    const int64_t rs = I2.r == 2 && I2.d[0] != 1 ? I2.d[1] : 0, cs = I2.r >= 1 && I2.d[I2.r - 1] != 1 ? 1 : 0;\n"
         "    if ((I2.r == 2 && I2.d[0] != 1 && I2.d[0] != g.M) || (I2.r >= 1 && I2.d[I2.r - 1] != 1 && I2.d[I2.r - 1] != g.N))\n"
         "      fail(\"C does not broadcast to [M, N]\");\n"
         "    for (int64_t i = 0; i < g.M; ++i)\n      for (int64_t j = 0; j < g.N; ++j) y0[i * g.N + j] = x2[i * rs + j * cs];\n"
         "    g.beta = " + cfloat(beta) + ";\n  }\n}\n";
  }
  e.compute(c + "rr::gemm(g);\nrr::act_n(y0, g.M * g.N, act);\n");
  e.bitwise();
}

// The engine's one-hot choice (GemmKernel::run_one_hot) for the emitter: a constant B that only
// selects or sums columns of A becomes rt::gather_columns / rt::segment_sums over index constants, and
// B itself is not stored (interaction networks: most of their weights are such matrices). Only where
// the engine takes it too (A not transposed, C absent or a bias row with beta 1), so that both run the
// same sums; false leaves the step to the GEMM.
bool emit_one_hot(Emit& e, bool ta, bool tb, float alpha, float beta, const std::string& M, const std::string& N,
                  const std::string& K) {
  if (ta || !e.in(1).constant || e.in(1).constant->rank() != 2 || e.in(1).constant->dtype() != DType::F32) return false;
  bool bias = false;
  if (e.has_input(2) && beta != 0.0f) {
    const auto& cs = e.in(2).shape;
    const int64_t n = e.in(1).constant->dim(tb ? 0 : 1);
    if (!cs || beta != 1.0f || !((cs->size() == 1 && (*cs)[0] == n) || (cs->size() == 2 && (*cs)[0] == 1 && (*cs)[1] == n)))
      return false;
    bias = true;
  }
  const Tensor& w = *e.in(1).constant;
  const int64_t k = w.dim(tb ? 1 : 0), n = w.dim(tb ? 0 : 1);
  std::vector<float> b(static_cast<size_t>(k * n));  // B as [K, N] row-major
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) b[static_cast<size_t>(i * n + j)] = w.data<float>()[tb ? j * k + i : i * n + j];
  const auto f = one_hot_form(b.data(), k, n);
  if (!f) return false;
  e.dims_only(1);
  std::string c;
  if (f->gather) {
    Tensor src = Tensor::empty(DType::I32, {n});
    std::copy(f->src.begin(), f->src.end(), src.data<int32_t>());
    c = "rt::gather_columns(x0, " + M + ", " + K + ", " + e.add_const(std::move(src)) + ", " + N + ", y0);\n";
    e.comment("B selects one column of A per output column: a gather");
  } else {
    Tensor begin = Tensor::empty(DType::I64, {n + 1});
    std::copy(f->begin.begin(), f->begin.end(), begin.data<int64_t>());
    c = "rt::segment_sums(x0, " + M + ", " + K + ", " + e.add_const(std::move(begin)) + ", " + N + ", y0);\n";
    e.comment("B sums runs of A's columns: segment sums");
  }
  const std::string mn = "(" + M + ") * (" + N + ")";
  if (alpha != 1.0f) c += "for (int64_t i = 0; i < " + mn + "; ++i) y0[i] *= " + cfloat(alpha) + ";\n";
  if (bias)
    c += "for (int64_t i = 0; i < " + M + "; ++i)\n  for (int64_t j = 0; j < " + N + "; ++j) y0[i * " + N + " + j] += x2[j];\n";
  e.compute(emit_activation(e.node()) + c + "rt::act_n(y0, " + mn + ", act);\n");
  return true;
}
}  // namespace

// Transpose(X [B, C, L], 0,2,1) -> Reshape(target) -> Gemm, fused (fusion.cpp, default numerics): as
// GemmKernel::run_btrans, block b of A is X[b] read transposed (a stride swap for rt::gemm) when the
// target gives [B*L, C]; otherwise the transpose is materialised in scratch first.
void emit_gemm_btrans(Emit& e) {
  const auto& at = e.attrs();
  const auto tgt = at.get_ints("_quiver_a_btrans");
  if (tgt.size() != 2) e.refuse("internal: _quiver_a_btrans needs 2 values");
  if (e.reproducible()) e.refuse("the transposed-A fusion is not in reproducible plans");
  if (e.rank_in(0) != 3 || e.rank_in(1) != 2) e.refuse("a fused transposed A must be 3-D and B 2-D");
  if (at.get_int("transA", 0) != 0) e.refuse("transA with the transposed-A fusion");
  const bool tb = at.get_int("transB", 0) != 0;
  const float alpha = at.get_float("alpha", 1.0f), beta = at.get_float("beta", 1.0f);
  const std::string N = e.din(1, tb ? 0 : 1), Kb = e.din(1, tb ? 1 : 0);
  // The Reshape target against the transposed dims [B, L, C]; r.d[1] is the GEMM's K.
  e.shape("const rt::Shp t{3, {I0.d[0], I0.d[2], I0.d[1]}};\nconst int64_t tg[2] = {" + cint(tgt[0]) + ", " +
          cint(tgt[1]) + "};\nrt::Shp r;\nif (const char* m = rt::reshape_dims(t, tg, 2, false, r)) fail(m);\n"
          "if (r.d[1] != " + Kb + ") fail(\"inner dims differ\");\n");
  e.shape("O0.r = 2; O0.d[0] = r.d[0]; O0.d[1] = " + N + ";\n");
  // Blocks read in place when the rows are (b, l): O0.d[0] == B * L (then K == C).
  const std::string inplace = "(O0.d[0] == I0.d[0] * I0.d[2])";
  std::string c = emit_activation(e.node()) + "rt::GemmArgs g;\ng.N = " + N + ";\n";
  if (e.in(1).constant) {
    const Tensor& w = *e.in(1).constant;
    const int64_t k = w.dim(tb ? 1 : 0), n = w.dim(tb ? 0 : 1);
    e.dims_only(1);
    c += "g.Bp = " + e.add_packed_b(w.data<float>(), k, n, tb ? 1 : n, tb ? k : 1) + ";\n";
    e.scratch("(" + inplace + " ? 0 : I0.n() * 4)");
  } else {
    c += "g.B = x1;\ng.ldb = " + (tb ? std::string("1") : N) + ";\ng.bk = " + (tb ? Kb : std::string("1")) + ";\n";
    e.scratch("(" + inplace + " ? 0 : I0.n() * 4) + rt::gemm_pack_bytes(" + Kb + ")");
    c += "g.pack = reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + (" + inplace + " ? 0 : I0.n() * 4));\n";
  }
  c += "g.alpha = " + cfloat(alpha) + ";\ng.act = act;\n";
  if (e.has_input(2) && beta != 0.0f) {
    // As the kernel: a bias row with beta 1 (anything else would have been a fused Gemm the engine
    // materialises; refused here rather than emitted differently).
    const auto& cs = e.in(2).shape;
    if (e.in(2).dtype != DType::F32 || !cs || beta != 1.0f || cs->empty() || cs->size() > 2 || (cs->size() == 2 && (*cs)[0] != 1))
      e.refuse("a fused transposed-A Gemm with a C other than a bias row");
    c += "if (I2.n() != g.N) fail(\"C is not a bias row of N values\");\ng.col_bias = x2;\n";
  }
  c += "const int64_t B = I0.d[0], C = I0.d[1], L = I0.d[2];\n"
       "if (" + inplace + ") {\n"
       "  for (int64_t b = 0; b < B; ++b) {\n"
       "    g.M = L; g.K = C; g.A = x0 + b * C * L; g.lda = 1; g.ak = L;\n"
       "    g.C = y0 + b * L * g.N; g.ldc = g.N;\n    rt::gemm(g);\n  }\n"
       "} else {\n"
       "  float* t = static_cast<float*>(scratch);\n"
       "  static const int perm[] = {0, 2, 1};\n  rt::transpose(x0, I0, t, perm);\n"
       "  g.M = O0.d[0]; g.K = " + Kb + "; g.A = t; g.lda = g.K; g.ak = 1; g.C = y0; g.ldc = g.N;\n  rt::gemm(g);\n}\n";
  e.compute(c);
  e.comment("Transpose(0,2,1) and Reshape fused: A read transposed per block");
}

// quiver compile: a constant B is packed into the runtime gemm's panels at compile time; a B computed
// at run time is packed panel by panel into the step's scratch.
void emit_gemm(Emit& e) {
  const auto& at = e.attrs();
  if (at.has("_quiver_a_btrans")) {
    emit_gemm_btrans(e);
    return;
  }
  if (e.rank_in(0) != 2 || e.rank_in(1) != 2) e.refuse("Gemm operands must be 2-D");
  const bool ta = at.get_int("transA", 0) != 0, tb = at.get_int("transB", 0) != 0;
  const float alpha = at.get_float("alpha", 1.0f), beta = at.get_float("beta", 1.0f);
  const std::string M = e.din(0, ta ? 1 : 0), K = e.din(0, ta ? 0 : 1), N = e.din(1, tb ? 0 : 1);
  e.shape("if (I0.d[" + std::string(ta ? "0" : "1") + "] != I1.d[" + (tb ? "1" : "0") +
          "]) fail(\"inner dims differ\");\n");
  e.set_dims(0, {M, N});
  if (e.reproducible()) {
    emit_gemm_repro(e);
    return;
  }
  if (emit_one_hot(e, ta, tb, alpha, beta, M, N, K)) return;
  std::string c = emit_activation(e.node()) + "rt::GemmArgs g;\ng.M = " + M + ";\ng.N = " + N + ";\ng.K = " + K +
                  ";\ng.A = x0;\ng.lda = " + (ta ? "1" : K) + ";\ng.ak = " + (ta ? M : "1") + ";\n";
  if (e.in(1).constant) {
    const Tensor& w = *e.in(1).constant;
    const int64_t k = w.dim(tb ? 1 : 0), n = w.dim(tb ? 0 : 1);
    e.dims_only(1);
    c += "g.Bp = " + e.add_packed_b(w.data<float>(), k, n, tb ? 1 : n, tb ? k : 1) + ";\n";
  } else {
    c += "g.B = x1;\ng.ldb = " + (tb ? std::string("1") : N) + ";\ng.bk = " + (tb ? K : std::string("1")) +
         ";\ng.pack = static_cast<float*>(scratch);\n";
    e.scratch("rt::gemm_pack_bytes(" + K + ")");
  }
  c += "g.C = y0;\ng.ldc = " + N + ";\ng.alpha = " + cfloat(alpha) + ";\ng.act = act;\n";
  if (e.has_input(2) && beta != 0.0f) {
    if (e.in(2).dtype != DType::F32) e.refuse("Gemm's C must be float");
    const int rc = e.rank_in(2);
    if (rc > 2) e.refuse("Gemm's C has rank above 2");
    if (beta == 1.0f && rc >= 1 && e.in(2).shape && (*e.in(2).shape)[static_cast<size_t>(rc - 1)] > 1 &&
        (rc == 1 || (*e.in(2).shape)[0] == 1)) {
      c += "g.col_bias = x2;\n";
    } else {
      c += "g.Cin = x2;\ng.beta_c = " + cfloat(beta) + ";\n";
      c += "g.cin_cs = I2.r >= 1 && I2.d[I2.r - 1] != 1 ? 1 : 0;\n";
      c += "g.cin_rs = I2.r == 2 && I2.d[0] != 1 ? I2.d[1] : 0;\n";
    }
  }
  e.compute(c + "rt::gemm(g);\n");
}

QUIVER_REGISTER_OPS(gemm) {
  registry.add({"", "Gemm", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  ctx.expect_dtype(0, {DType::F32});
                  ctx.expect_dtype(1, {DType::F32});
                  const auto& at = ctx.attrs();
                  const bool ta = at.get_int("transA", 0) != 0, tb = at.get_int("transB", 0) != 0;
                  std::shared_ptr<const Tensor> packed;
                  // Constant transposed weights: transpose once at load so the per-call kernel streams rows.
                  if (tb && ctx.input(1).constant && ctx.input(1).constant->rank() == 2) {
                    const Tensor& w = *ctx.input(1).constant;
                    const int64_t n = w.dim(0), k = w.dim(1);
                    Tensor p = Tensor::empty(DType::F32, {k, n});
                    for (int64_t i = 0; i < n; ++i)
                      for (int64_t j = 0; j < k; ++j) p.data<float>()[j * n + i] = w.data<float>()[i * k + j];
                    packed = std::make_shared<const Tensor>(std::move(p));
                  }
                  std::optional<std::vector<int64_t>> shape;
                  const bool btrans = at.has("_quiver_a_btrans");
                  if (!btrans && ctx.input(0).shape && ctx.input(1).shape && ctx.input(0).shape->size() == 2 &&
                      ctx.input(1).shape->size() == 2)
                    shape = std::vector<int64_t>{(*ctx.input(0).shape)[ta ? 1 : 0], (*ctx.input(1).shape)[tb ? 0 : 1]};
                  else if (btrans && ctx.input(1).shape && ctx.input(1).shape->size() == 2)
                    shape = std::vector<int64_t>{-1, (*ctx.input(1).shape)[tb ? 0 : 1]};  // rows from the target at run time
                  ctx.set_output(0, DType::F32, shape);
                  auto k = std::make_unique<GemmKernel>(at.get_float("alpha", 1.0f), at.get_float("beta", 1.0f), ta, tb,
                                                        fused_activation(ctx), std::move(packed), Blas(ctx.target()));
                  // A one-hot constant B (OneHotB): selected once here, in default numerics.
                  if (!ta && !btrans && !ctx.target().reproducible() && ctx.input(1).constant &&
                      ctx.input(1).constant->rank() == 2) {
                    const Tensor& b = packed ? *packed : *ctx.input(1).constant;
                    k->one_hot_ = one_hot_form(b.data<float>(), b.dim(0), b.dim(1));
                  }
                  if (btrans) {
                    const auto v = at.get_ints("_quiver_a_btrans");
                    if (v.size() != 2) ctx.fail("internal: _quiver_a_btrans needs 2 values");
                    k->a_btrans_ = std::array<int64_t, 2>{v[0], v[1]};
                  }
                  return k;
                }}, Repro::Variant);
}


QUIVER_REGISTER_EMITTERS(gemm) {
  emitters.add("", "Gemm", emit_gemm);
}
}  // namespace quiver::onnx
