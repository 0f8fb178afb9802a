// The direct ONNX engine behind the quiver::Model interface.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::onnx {

struct CompileOptions {
  bool fold_constants = true;
  bool fuse = true;  // MatMul+Add, Gemm/Conv+activation, BatchNorm into Conv
  bool fuse_transposed_gemm = true;  // CPU-engine fusions (Transpose->Reshape->Gemm read transposed, GELU,
                                     // LayerNorm, EdgeConv): CPU targets only, off for the code emitter
  bool fuse_edge_conv = false;  // the code emitter's EdgeConv and its block (onnx/fusion.hpp), default numerics only
};

// Load an .onnx file (external data resolved next to it) to run on the CPU. Throws quiver::Error naming
// the file, node and tensor on malformed models and listing every unsupported operator by name.
// Running on a GPU is the backend layer's choice: quiver::load_model, or quiver::backends::load_onnx
// (include/quiver/backends/backends.hpp), with LoadOptions::params["device"].
std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options = {},
                                       const CompileOptions& compile = {});
std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options = {}, const CompileOptions& compile = {});

// Static facts for `quiver inspect`.
struct ModelSummary {
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opsets;    // domain ("" = ai.onnx) -> version
  std::map<std::string, int> op_counts;     // op type -> count (including subgraphs)
  int64_t parameter_count = 0;              // elements in initializers / Constant tensors
  int64_t parameter_bytes = 0;
  std::vector<std::string> unsupported_ops;  // op types with no kernel
  std::string producer;                      // "name version"
  // The ModelProto's own metadata (what ONNX Runtime's get_modelmeta() reports).
  std::string producer_name, producer_version, domain, doc_string, graph_name, graph_doc_string;
  int64_t model_version = 0;
  std::map<std::string, std::string> metadata_props;
};
ModelSummary summarize_onnx(const std::string& path);
ModelSummary summarize_onnx_bytes(const std::string& bytes, const std::string& what = "<memory>");

// Names of all operators the engine implements ("Add", "ai.onnx.ml::TreeEnsembleRegressor", ...).
std::vector<std::string> supported_ops();

// Bytes the engine's state owns for activations and scratch (subgraph states included): what a call
// has grown the state's arena to. 0 for a state of another backend (or of the GPU executor).
size_t state_arena_bytes(const RunState& state);

}  // namespace quiver::onnx
