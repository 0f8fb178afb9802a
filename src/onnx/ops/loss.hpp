// Shared part of NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: the weighted, optionally
// ignore_index-masked gather of -logp[n, target[n, d], d] and its reduction.
#pragma once
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {

struct LossSpec {
  enum class Reduction { None, Sum, Mean } reduction = Reduction::Mean;
  bool has_ignore = false;
  int64_t ignore_index = 0;
};

inline LossSpec read_loss_spec(const BuildContext& ctx) {
  LossSpec s;
  const std::string r = ctx.attrs().get_string("reduction", "mean");
  if (r == "none") s.reduction = LossSpec::Reduction::None;
  else if (r == "sum") s.reduction = LossSpec::Reduction::Sum;
  else if (r == "mean") s.reduction = LossSpec::Reduction::Mean;
  else ctx.fail("reduction must be none, sum or mean, got '" + r + "'");
  s.has_ignore = ctx.attrs().has("ignore_index");
  s.ignore_index = ctx.attrs().get_int("ignore_index", 0);
  return s;
}

// logp: N x C x D values (D = product of the trailing dims, 1 for 2-D input). target: N x D integer
// classes. weight: optional [C]. Writes output 0 (dtype t): target's shape for reduction none, else a
// scalar.
inline void nll_loss(ExecContext& ec, const double* logp, int64_t N, int64_t C, int64_t D, const Tensor& target,
                     const Tensor* weight, const LossSpec& spec, DType t) {
  if (target.numel() != N * D)
    ec.fail("target shape " + dims_to_string(target.dims()) + " does not match the input's N and spatial dims", "target");
  if (weight && (weight->rank() != 1 || weight->dim(0) != C))
    ec.fail("weight must have shape [" + std::to_string(C) + "], got " + dims_to_string(weight->dims()), "weight");
  const std::vector<int64_t> tv = read_ints(target);
  std::vector<double> w;
  if (weight) {
    w.resize(static_cast<size_t>(C));
    visit_numeric_half(weight->dtype(), [&](auto tag) {
      using W = typename decltype(tag)::type;
      for (int64_t c = 0; c < C; ++c) w[static_cast<size_t>(c)] = static_cast<double>(to_compute(weight->data<W>()[c]));
    });
  }
  const bool none = spec.reduction == LossSpec::Reduction::None;
  std::vector<double> loss(none ? static_cast<size_t>(N * D) : 0);
  double total = 0, wsum = 0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = tv[static_cast<size_t>(n * D + d)];
      double l = 0, wt = 0;
      if (!(spec.has_ignore && k == spec.ignore_index)) {
        if (k < 0 || k >= C)
          ec.fail("target class " + std::to_string(k) + " out of range [0, " + std::to_string(C) + ")", "target");
        wt = weight ? w[static_cast<size_t>(k)] : 1.0;
        l = -logp[(n * C + k) * D + d] * wt;
      }
      if (none) loss[static_cast<size_t>(n * D + d)] = l;
      total += l;
      wsum += wt;
    }
  }
  double result = total;
  if (spec.reduction == LossSpec::Reduction::Mean) {
    // Weighted (or ignore_index-masked) mean divides by the weight total, plain mean by the count.
    result = (weight || spec.has_ignore) ? total / wsum : total / static_cast<double>(N * D);
  }
  if (none) {
    Tensor& out = ec.output(0, t, target.dims());
    visit_numeric_half(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* po = out.data<T>();
      for (size_t i = 0; i < loss.size(); ++i) po[i] = from_compute<T>(static_cast<compute_t<T>>(loss[i]));
    });
  } else {
    Tensor& out = ec.output(0, t, std::span<const int64_t>());
    visit_numeric_half(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      out.data<T>()[0] = from_compute<T>(static_cast<compute_t<T>>(result));
    });
  }
}

// Input tensor (N, C, d1, ...) as doubles, with N, C and D = d1 * ... .
inline std::vector<double> loss_input(ExecContext& ec, const Tensor& x, int64_t& N, int64_t& C, int64_t& D) {
  if (x.rank() < 2) ec.fail("input must have rank >= 2 (N, C, ...), got " + dims_to_string(x.dims()), "input");
  N = x.dim(0);
  C = x.dim(1);
  D = product(x.dims(), 2);
  std::vector<double> v(static_cast<size_t>(x.numel()));
  visit_numeric_half(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = x.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(to_compute(p[i]));
  });
  return v;
}

inline void loss_check_types(const BuildContext& ctx) {
  if (!dtype_is_float(ctx.input_dtype(0)))
    ctx.fail("unsupported input dtype " + dt_str(ctx.input_dtype(0)), ctx.input_name(0), ErrorCode::Unsupported);
  ctx.expect_dtype(1, {DType::I32, DType::I64});
  if (ctx.has_input(2) && !dtype_is_float(ctx.input_dtype(2))) ctx.fail("weight must be a float tensor", ctx.input_name(2));
}

}  // namespace quiver::onnx
