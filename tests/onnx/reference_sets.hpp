// Test helper: the ONNX Runtime reference data sets of a shared HEP model
// (../shared/models/hep/NAME/test_data_set_*: input_<i>.pb and output_<i>.pb, see its README), so
// that whatever serves or runs the model (server, client fallback, flow) is compared with an
// independent engine, not with its own first answer. Needs quiver_onnx (the TensorProto reader).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "onnx/hep_models.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"

namespace quiver::test {

struct ReferenceSet {
  std::string name;                   // test_data_set_<k>
  std::vector<NamedTensor> inputs;    // in graph-input order
  std::vector<NamedTensor> outputs;   // ONNX Runtime's outputs, in graph-output order
};

// Every reference set of `model` (a folder name under models/hep), in set order; empty when the
// shared data is absent.
inline std::vector<ReferenceSet> reference_sets(const std::string& model) {
  namespace fs = std::filesystem;
  std::vector<ReferenceSet> sets;
  const fs::path dir = fs::path(kHep) / model;
  if (!fs::is_directory(dir)) return sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      ReferenceSet s;
      s.name = e.path().filename().string();
      for (const auto& f : onnx::numbered_files(e.path().string(), "input")) s.inputs.push_back(onnx::read_tensor_file(f));
      for (const auto& f : onnx::numbered_files(e.path().string(), "output")) s.outputs.push_back(onnx::read_tensor_file(f));
      sets.push_back(std::move(s));
    }
  std::sort(sets.begin(), sets.end(), [](const ReferenceSet& a, const ReferenceSet& b) { return a.name < b.name; });
  return sets;
}

// The models' READMEs give the tolerance: |actual - expected| <= 1e-5 + 1e-4 * |expected|. Values
// are compared whatever the shape (a served model may reshape [1, 5] to [5]); element count must match.
inline ::testing::AssertionResult matches_reference(const Tensor& actual, const Tensor& expected) {
  if (actual.numel() != expected.numel())
    return ::testing::AssertionFailure() << actual.numel() << " values, the reference has " << expected.numel();
  const int64_t n[] = {actual.numel()};
  const std::string diff = onnx::compare_tensors(actual.reshaped(n), expected.reshaped(n), {1e-4, 1e-5});
  if (diff.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "differs from ONNX Runtime: " << diff;
}

}  // namespace quiver::test
