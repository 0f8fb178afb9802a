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

}  // namespace quiver::onnx
