// Internal: graph rewrites applied before kernels are built (they pay on the HEP models):
//   Conv + BatchNormalization          -> Conv with folded weights/bias
//   MatMul(x, W) + Add(bias)           -> MatMul with a bias input (one GEMM with fused epilogue)
//   Gemm/Conv/MatMul (+ Reshape) + Relu/LeakyRelu/Sigmoid/Tanh/Clip -> same op with a fused activation
//   Transpose(p) (+ elementwise unary op) + Transpose(q) -> the unary op and Transpose(p o q), or a view
//   Transpose(0,2,1) -> Reshape(2-D) -> Gemm  -> Gemm reading the untransposed input (transA per block)
//   Div(sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)           -> Gelu
//   ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add (last axis) -> LayerNormalization
//   Conv1x1(Concat(Tile(x), Transpose(Reshape(Gather(f, idx))) - Tile(x))) -> ai.quiver::EdgeConv
//   EdgeConv -> 1x1 Conv ... -> ReduceMean over the edges                  -> EdgeConv with the block
//   runs of 1x1 Conv / BatchNormalization / Gelu with >= 2 Convs           -> ai.quiver::PointwiseChain
//   ScatterND(data, Concat(Unsqueeze(Expand(c, s), -1) ...), u)            -> ai.quiver::ScatterNDParts
//   Gather(Transpose(Squeeze(LSTM.Y)), -1) (the last step of a forward LSTM)  -> Flatten(LSTM.Y_h)
// Folding transposes that meet is the CPU engine's (every numerics: it only moves values). The
// Transpose -> Reshape -> Gemm one is the CPU engine's (`cpu_engine_fusions`, every numerics) and the code emitter's in
// default numerics (rt::gemm reads A transposed). Gelu and LayerNormalization are the CPU engine's and
// the code emitter's (`emitter_fusions`; rt::erf_v, rt::layer_norm): device targets have no kernels for
// them. Both also need `default_numerics`: they have no reproducible kernels, so
// numerics=reproducible keeps the unfused ops. EdgeConv without its block is also the CPU engine's in
// default numerics (`cpu_engine_fusions`: ops/edgeconv.cpp EdgeConvKernel, two products over the points
// and a gather-add over the edges). EdgeConv's block and PointwiseChain are the code emitter's only
// (`emitter_fusions`: CompileOptions::fuse_edge_conv, which quiver compile sets; default numerics only).
// These steps sum in another order than the unfused nodes; the emitter's run a tile of points or
// positions at a time, so the values between the nodes never exist whole (ops/edgeconv.cpp,
// ops/pointwisechain.cpp). ScatterNDParts is the CPU engine's (`cpu_engine_fusions`) and the code
// emitter's (`emitter_fusions`), every numerics: bit-exact, it spares both the index tuples
// (ops/scatterndparts.cpp). The LSTM's last step from Y_h is the CPU engine's, every numerics
// (the same floats; the LSTM then writes no Y).
#pragma once
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/tensor.hpp"

namespace onnx { class GraphProto; class NodeProto; }

namespace quiver::onnx {

struct FusedGraph {
  std::vector<const ::onnx::NodeProto*> nodes;
  std::deque<::onnx::NodeProto> owned;  // rewritten nodes
  std::vector<std::pair<std::string, std::shared_ptr<const Tensor>>> new_constants;
  int fused_count = 0;
};

// "name (OpType)" (the first output's name when the node has none): how errors, plans and generated
// code name a node.
std::string node_label(const ::onnx::NodeProto& n);

using ConstLookup = std::function<std::shared_ptr<const Tensor>(const std::string&)>;
FusedGraph fuse_graph(const ::onnx::GraphProto& g, bool enabled, const ConstLookup& lookup_const,
                      bool cpu_engine_fusions = true, bool default_numerics = true, bool emitter_fusions = false);

// Fused activation, carried on the rewritten node as attributes
// "_quiver_act" (string) and "_quiver_alpha"/"_quiver_beta" (floats).
// Every rewritten node also lists the nodes it absorbed, as their node_label()s, in attribute
// "_quiver_fused" (strings; quiver compile names them in the generated code).
// Inference BatchNormalization as y = x * scale + shift, scale = gamma / sqrt(var + eps) and shift =
// beta - mean * scale: how the code emitter runs it (emit_batchnorm, and the PointwiseChain fusion's
// Affine layers). fold_bn keeps its own order of operations for the Conv's bias.
inline void batchnorm_affine(const float* gamma, const float* beta, const float* mean, const float* var, float eps,
                             int64_t n, float* scale, float* shift) {
  for (int64_t c = 0; c < n; ++c) {
    scale[c] = gamma[c] / std::sqrt(var[c] + eps);
    shift[c] = beta[c] - mean[c] * scale[c];
  }
}

enum class Activation { None, Relu, LeakyRelu, Sigmoid, Tanh, Clip };
struct ActivationSpec {
  Activation kind = Activation::None;
  float alpha = 0, beta = 0;
};

}  // namespace quiver::onnx
