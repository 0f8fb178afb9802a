// MatMul (numpy semantics: 1-D promotion, broadcast batch dims). The fusion pass may add a bias
// input (index 2, length N) and an activation; float runs on the engine GEMM, other types on a
// plain loop.
#include "onnx/blas.hpp"
#include "onnx/emit.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/activation_attr.hpp"
#include "onnx/ops/common.hpp"

namespace quiver::onnx {

namespace {

struct MatMulShape {
  std::vector<int64_t> out, batch;
  int64_t M, N, K;
  bool a1d, b1d;
};

bool matmul_shape(std::span<const int64_t> ad, std::span<const int64_t> bd, MatMulShape& s) {
  if (ad.empty() || bd.empty()) return false;
  s.a1d = ad.size() == 1;
  s.b1d = bd.size() == 1;
  std::vector<int64_t> a(ad.begin(), ad.end()), b(bd.begin(), bd.end());
  if (s.a1d) a.insert(a.begin(), 1);
  if (s.b1d) b.push_back(1);
  s.M = a[a.size() - 2];
  s.K = a.back();
  s.N = b.back();
  if (b[b.size() - 2] != s.K) return false;
  std::span<const int64_t> ab(a.data(), a.size() - 2), bb(b.data(), b.size() - 2);
  if (!broadcast_dims(ab, bb, s.batch)) return false;
  s.out = s.batch;
  if (!s.a1d) s.out.push_back(s.M);
  if (!s.b1d) s.out.push_back(s.N);
  return true;
}

template <class T>
void naive_matmul(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) C[m * N + n] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T a = A[m * K + k];
      for (int64_t n = 0; n < N; ++n) C[m * N + n] += a * B[k * N + n];
    }
  }
}

class MatMulKernel final : public Kernel {
 public:
  MatMulKernel(DType t, ActivationSpec act, bool has_bias, Blas blas)
      : t_(t), act_(act), has_bias_(has_bias), blas_(blas) {}
  void run(ExecContext& ec) const override {
    const Tensor& a = ec.input(0);
    const Tensor& b = ec.input(1);
    MatMulShape s;
    if (!matmul_shape(a.dims(), b.dims(), s))
      ec.fail("incompatible shapes " + dims_to_string(a.dims()) + " x " + dims_to_string(b.dims()));
    Tensor& out = ec.output(0, t_, s.out);
    if (out.numel() == 0) return;
    if (t_ == DType::F16 || t_ == DType::BF16) {
      // Half precision: compute in float (as ORT's CPU provider does), round once at the end.
      auto widen = [&](const Tensor& x) {
        Tensor f = Tensor::empty(DType::F32, x.dims());
        for (int64_t i = 0; i < x.numel(); ++i)
          f.data<float>()[i] = t_ == DType::F16 ? Half::to_float(x.data<uint16_t>()[i]) : BFloat16::to_float(x.data<uint16_t>()[i]);
        return f;
      };
      Tensor a32 = widen(a), b32 = widen(b), o32 = Tensor::empty(DType::F32, s.out);
      compute(ec, a32, b32, o32, s, DType::F32);
      for (int64_t i = 0; i < o32.numel(); ++i)
        out.data<uint16_t>()[i] = t_ == DType::F16 ? Half::from_float(o32.data<float>()[i]) : BFloat16::from_float(o32.data<float>()[i]);
      return;
    }
    compute(ec, a, b, out, s, t_);
  }

 private:
  void compute(ExecContext& ec, const Tensor& a, const Tensor& b, Tensor& out, const MatMulShape& s, DType t) const {
    const float* bias = nullptr;
    if (has_bias_) {
      const Tensor& bt = ec.input(2);
      if (bt.numel() != s.N) ec.fail("fused bias has " + std::to_string(bt.numel()) + " values, N=" + std::to_string(s.N));
      bias = bt.data<float>();
    }
    const int64_t nb = product(s.batch);
    const size_t ar = std::max<size_t>(a.rank(), 2), br = std::max<size_t>(b.rank(), 2);
    // Fast path: B has no batch dims (weights) -> one GEMM over all rows of A.
    const bool b_flat = b.rank() <= 2;
    int64_t sa[16], sb[16];
    std::vector<int64_t> abatch(a.dims().begin(), a.dims().end() - std::min<size_t>(a.rank(), 2));
    std::vector<int64_t> bbatch(b.dims().begin(), b.dims().end() - std::min<size_t>(b.rank(), 2));
    if (s.batch.size() > 16) ec.fail("rank too large");
    broadcast_strides(abatch, s.batch, sa);
    broadcast_strides(bbatch, s.batch, sb);
    (void)ar; (void)br;
    visit_numeric(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* A = a.data<T>();
      const T* B = b.data<T>();
      T* C = out.data<T>();
      if (b_flat && a.numel() == nb * s.M * s.K) {
        run_one<T>(A, B, C, nb * s.M, s.N, s.K, bias);
        return;
      }
      std::vector<int64_t> idx(s.batch.size(), 0);
      for (int64_t i = 0; i < nb; ++i) {
        int64_t oa = 0, ob = 0;
        for (size_t d = 0; d < s.batch.size(); ++d) { oa += idx[d] * sa[d]; ob += idx[d] * sb[d]; }
        run_one<T>(A + oa * s.M * s.K, B + ob * s.K * s.N, C + i * s.M * s.N, s.M, s.N, s.K, bias);
        for (size_t d = s.batch.size(); d-- > 0;) {
          if (++idx[d] < s.batch[d]) break;
          idx[d] = 0;
        }
      }
    });
  }

  template <class T>
  void run_one(const T* A, const T* B, T* C, int64_t M, int64_t N, int64_t K, const float* bias) const {
    if constexpr (std::is_same_v<T, float>) {
      GemmArgs g;
      g.M = M; g.N = N; g.K = K;
      g.A = A; g.lda = K; g.B = B; g.ldb = N; g.C = C; g.ldc = N;
      g.bias = bias;
      g.act = act_;
      blas_.gemm(g);
    } else {
      naive_matmul<T>(A, B, C, M, N, K);
    }
  }
  DType t_;
  ActivationSpec act_;
  bool has_bias_;
  Blas blas_;  // chosen for the target at load
};

}  // namespace

// quiver compile: numpy MatMul as gemm calls (a 2-D B folds the batch into the rows). A constant B is
// packed into the gemm's panels at compile time (each matrix of a batched one); a B computed at run
// time is packed panel by panel into the step's scratch.
void emit_matmul(Emit& e) {
  if (e.in(0).dtype != DType::F32) e.refuse("MatMul is emitted for float only");
  e.rank_in(0);
  const int rb = e.rank_in(1);
  e.shape("if (!rt::matmul_shape(I0, I1, O0)) fail(\"operand dims do not multiply\");\n");
  if (e.reproducible()) {  // the kernel's repro::gemm chains, bias and activation (rr::matmul)
    e.compute(emit_repro_activation(e.node()) + "rr::matmul(x0, I0, x1, I1, y0, " + (e.has_input(2) ? "x2" : "nullptr") +
              ", act);\n");
    e.bitwise();
    return;
  }
  std::string b = "x1", packed = "nullptr", pack = "nullptr";
  if (e.in(1).constant) {
    const Tensor& w = *e.in(1).constant;
    const int64_t K = rb == 1 ? w.dim(0) : w.dim(rb - 2), N = rb == 1 ? 1 : w.dim(rb - 1);
    const int64_t count = N * K == 0 ? 0 : w.numel() / (N * K);
    e.dims_only(1);
    b = "nullptr";
    packed = e.add_packed_b(w.data<float>(), K, N, N, 1, count, K * N);
  } else {
    pack = "static_cast<float*>(scratch)";
    e.scratch("rt::gemm_pack_bytes(" + e.din(1, rb == 1 ? 0 : rb - 2) + ")");
  }
  e.compute(emit_activation(e.node()) + "rt::matmul(x0, I0, " + b + ", I1, " + packed + ", " + pack + ", y0, " +
            (e.has_input(2) ? "x2" : "nullptr") + ", act);\n");
}

QUIVER_REGISTER_OPS(matmul) {
  registry.add({"", "MatMul", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(2, 3);
                  const DType t = ctx.input_dtype(0);
                  if (ctx.input_dtype(1) != t) ctx.fail("input dtypes differ");
                  if (!(t == DType::F32 || t == DType::F64 || t == DType::I32 || t == DType::I64 ||
                        t == DType::U32 || t == DType::U64 || t == DType::F16 || t == DType::BF16))
                    ctx.fail("unsupported dtype " + std::string(dtype_name(t)), ctx.input_name(0), ErrorCode::Unsupported);
                  std::optional<std::vector<int64_t>> shape;
                  if (ctx.input(0).shape && ctx.input(1).shape) {
                    MatMulShape s;
                    const auto& ad = *ctx.input(0).shape;
                    const auto& bd = *ctx.input(1).shape;
                    if (matmul_shape(ad, bd, s)) {
                      shape = s.out;
                    } else if (!ad.empty() && !bd.empty()) {
                      // Dynamic dims leave the sizes open, not the rank.
                      const size_t batch = std::max(ad.size() - std::min<size_t>(ad.size(), 2),
                                                    bd.size() - std::min<size_t>(bd.size(), 2));
                      shape = std::vector<int64_t>(batch + (ad.size() > 1) + (bd.size() > 1), -1);
                    }
                  }
                  ctx.set_output(0, t, shape);
                  const bool bias = ctx.has_input(2);
                  if (bias && t != DType::F32) ctx.fail("fused bias only for float");
                  return std::make_unique<MatMulKernel>(t, fused_activation(ctx), bias, Blas(ctx.target()));
                }}, Repro::Variant);
}


QUIVER_REGISTER_EMITTERS(matmul) {
  emitters.add("", "MatMul", emit_matmul);
}
}  // namespace quiver::onnx
