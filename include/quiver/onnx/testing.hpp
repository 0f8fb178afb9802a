// Comparison and conformance helpers shared by `quiver onnx-test`, `quiver infer --compare` and tests.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver::onnx {

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-7;
};

// Empty string when equal within |a-e| <= atol + rtol*|e| (NaN == NaN, exact for ints/bools/strings);
// otherwise a description of the first mismatch and the max error.
std::string compare_tensors(const Tensor& actual, const Tensor& expected, Tolerance tol);

enum class CaseStatus { Passed, Failed, Skipped };
struct CaseResult {
  std::string name;
  CaseStatus status = CaseStatus::Failed;
  std::string message;  // why it failed / which op is unsupported
};

// Repeats the rows (dim 0) of every tensor up to `batch` rows (a reference data set as a bigger batch);
// scalars, empty tensors and tensors already of that batch are kept as they are.
std::vector<Tensor> tile_batch(const std::vector<Tensor>& src, int64_t batch);

// Runs one ONNX backend test case folder (model.onnx + test_data_set_*/), the model loaded by `load`
// (default: the CPU engine, load_onnx; `quiver onnx-test --device` passes the backend layer's loader).
using ModelLoader = std::function<std::shared_ptr<const Model>(const std::string& path)>;
CaseResult run_test_case(const std::string& dir, Tolerance tol = {}, const ModelLoader& load = {});

}  // namespace quiver::onnx
