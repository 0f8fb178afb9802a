// Internal: a compiled Forest written out as C++17 (quiver compile): its flat layout as constant
// arrays and a traversal loop specialised for it (outputs, transform, which special nodes exist).
// Used by src/aot for tree-ensemble files and by the ONNX TreeEnsemble* emitters.
#pragma once
#include <string>
#include <vector>

#include "quiver/core/tensor.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {

struct ForestCode {
  // The constants the code reads, named K<first_k + j> in it: the nodes (4 x uint32 per node: value bits,
  // meta, left, right, as FlatNode), then per tree of the default rounds its root, depth and (several
  // outputs) output, then the categorical bitsets when the forest has any.
  std::vector<Tensor> consts;
  // Statements: rows `rows` (const float*, n x n_features) -> `margin` (float*, n x n_outputs, may be
  // null) and `prediction` (float*, n x n_prediction_columns, may be null). `scratch` (void*) holds
  // scratch_bytes bytes.
  std::string compute;
  size_t scratch_bytes = 0;
};

// The default round range of `f` (Forest::default_rounds) is baked in. For a reproducible forest
// (Forest::set_reproducible) the transforms call the reproducible runtime (rr::, src/aot/runtime_repro.inc),
// which the generated file must then include.
ForestCode emit_forest(const Forest& f, const std::string& rows, const std::string& n, const std::string& margin,
                       const std::string& prediction, size_t first_k = 0);

// Rows (n x n_features, float32) that take every kind of branch of `f`: per feature, values drawn from
// the thresholds of the nodes that test it (both signs: the layout stores some negated) and their
// neighbouring floats, small category codes and NaN. For checking generated code against the engine.
Tensor probe_rows(const Forest& f, int64_t n, uint32_t seed);

}  // namespace quiver::forest
