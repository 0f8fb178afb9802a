// Internal: ONNX graph -> immutable Plan.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "onnx/plan.hpp"
#include "onnx/target.hpp"
#include "quiver/onnx/onnx_model.hpp"

namespace onnx { class GraphProto; class ModelProto; }

namespace quiver::onnx {

struct CompileEnv {
  std::string model_name;
  std::string base_dir;  // for external data
  std::map<std::string, int64_t> opsets;  // "" = ai.onnx
  CompileOptions options;
  Target target;  // what the plan is for: each step's kernel is chosen once for it
};

class GraphCompiler;

// Compiles a top-level graph. Throws quiver::Error.
std::shared_ptr<const Plan> compile_graph(const ::onnx::GraphProto& graph, const CompileEnv& env,
                                          const std::vector<ValueInfo>& input_infos);

// Every op type (with domain) used in the graph and its subgraphs that has no kernel.
std::vector<std::string> find_unsupported(const ::onnx::GraphProto& graph, bool with_nodes);

}  // namespace quiver::onnx
