// Reads the fused activation the fusion pass attached to Gemm/Conv/MatMul nodes.
#pragma once
#include "onnx/fusion.hpp"
#include "onnx/kernel.hpp"

namespace quiver::onnx {

// The activation fuse_act names `kind` ("Relu", ...; empty or unknown: none).
inline ActivationSpec activation_named(const std::string& kind, float alpha, float beta) {
  ActivationSpec a;
  if (kind == "Relu") a.kind = Activation::Relu;
  else if (kind == "LeakyRelu") a.kind = Activation::LeakyRelu;
  else if (kind == "Sigmoid") a.kind = Activation::Sigmoid;
  else if (kind == "Tanh") a.kind = Activation::Tanh;
  else if (kind == "Clip") a.kind = Activation::Clip;
  else return a;
  a.alpha = alpha;
  a.beta = beta;
  return a;
}

inline ActivationSpec fused_activation(const BuildContext& ctx) {
  return activation_named(ctx.attrs().get_string("_quiver_act", ""), ctx.attrs().get_float("_quiver_alpha", 0.f),
                          ctx.attrs().get_float("_quiver_beta", 0.f));
}

// The activations of the `n` layers of a fused chain (attributes acts / alphas / betas, written by the
// fusion pass: EdgeConv's block, PointwiseChain).
inline std::vector<ActivationSpec> layer_activations(const BuildContext& ctx, size_t n) {
  const auto acts = ctx.attrs().get_strings("acts");
  const auto alphas = ctx.attrs().get_floats("alphas");
  const auto betas = ctx.attrs().get_floats("betas");
  if (acts.size() != n || alphas.size() != n || betas.size() != n) ctx.fail("acts, alphas and betas must have one entry per layer");
  std::vector<ActivationSpec> r;
  for (size_t l = 0; l < n; ++l) r.push_back(activation_named(acts[l], alphas[l], betas[l]));
  return r;
}

}  // namespace quiver::onnx
