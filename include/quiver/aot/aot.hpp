// Ahead-of-time compilation (`quiver compile`): a model into dependency-free, reentrant C++17 source
// (NAME.hpp, NAME.cpp, NAME_weights.cpp, CMakeLists.txt) that builds with a plain C++ compiler into
// libNAME.so / libNAME.a, and the `aot` backend that loads such a library as a quiver::Model.
//
// The generated API has no hidden state: NAME::workspace_bytes(dims) sizes a caller-owned workspace,
// NAME::run(inputs, outputs, workspace) may be called by any number of threads at once with their own
// workspaces. Batch and symbolic dims (particle counts) are runtime values. docs/aot.md has the rest.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::aot {

struct CompileOptions {
  std::string name;                        // C++ identifier of the library (default: from the file name)
  std::map<std::string, int64_t> max_dims;  // symbolic dim -> largest value run() accepts
  std::string target = "native";           // native | x86-64-v3 | x86-64-v2 (the -march it builds with)
  // Load parameters of the model's backend, fixed at compile time (tree ensembles: round_begin,
  // round_end, use_best_iteration; see quiver/forest/forest.hpp).
  std::map<std::string, std::string> params;
  // Where the weights go: "source" (NAME_weights.cpp, constant data built into the library) or "file"
  // (NAME.weights, mapped read-only by the library on load_weights() or its first run()).
  std::string weights = "source";
};

struct CompileResult {
  std::string name;
  std::string dir;
  std::vector<std::string> files;  // written, relative to dir
  size_t steps = 0;
  size_t weight_bytes = 0;
  std::vector<std::string> dims;   // symbolic dims, in the order of the C ABI's dims arrays
  std::string weights_file;        // NAME.weights (weights = "file"), else empty
};

// Compiles an ONNX model or a tree-ensemble file (every format the forest backend loads: XGBoost JSON /
// UBJSON, LightGBM text, TMVA XML) into `out_dir` (created). Throws quiver::Error(Unsupported) naming every step
// that cannot be emitted (node, op and why) before writing anything.
CompileResult compile_model(const std::string& model_path, const std::string& out_dir, const CompileOptions& options = {});

// Builds libNAME.so in `dir` with the C++ compiler (`cxx`, default $CXX or g++), the flags the
// generated CMakeLists.txt uses. Returns the library's path; throws with the compiler's output.
std::string build_shared(const CompileResult& compiled, const std::string& cxx = "");

// Loads a compiled library (libNAME.so, or model.so in a repository) as a Model. A library compiled with
// weights = "file" loads its weights here: options.params["weights"] (a path), else NAME.weights next to
// the library; a missing, truncated, corrupted or foreign file is an error naming the file.
std::shared_ptr<const Model> load_library(const std::string& path, const LoadOptions& options = {});

// The `aot` backend of quiver::load_model (ELF files ending in .so; load_library checks the entry point).
Backend backend();

}  // namespace quiver::aot
