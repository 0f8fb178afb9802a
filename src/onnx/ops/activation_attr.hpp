// Reads the fused activation the fusion pass attached to Gemm/Conv/MatMul nodes.
#pragma once
#include "onnx/fusion.hpp"
#include "onnx/kernel.hpp"

namespace quiver::onnx {

inline ActivationSpec fused_activation(const BuildContext& ctx) {
  ActivationSpec a;
  const std::string k = ctx.attrs().get_string("_quiver_act", "");
  if (k.empty()) return a;
  if (k == "Relu") a.kind = Activation::Relu;
  else if (k == "LeakyRelu") a.kind = Activation::LeakyRelu;
  else if (k == "Sigmoid") a.kind = Activation::Sigmoid;
  else if (k == "Tanh") a.kind = Activation::Tanh;
  else if (k == "Clip") a.kind = Activation::Clip;
  a.alpha = ctx.attrs().get_float("_quiver_alpha", 0.f);
  a.beta = ctx.attrs().get_float("_quiver_beta", 0.f);
  return a;
}

}  // namespace quiver::onnx
