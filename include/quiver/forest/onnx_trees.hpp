// Adapter for the ONNX ai.onnx.ml TreeEnsembleRegressor / TreeEnsembleClassifier attributes: turns the
// operator's parallel node / target arrays into a ForestSpec evaluated by the same forest code.
// The ONNX engine wires the op; this header only depends on quiver::forest.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quiver/forest/forest.hpp"

namespace quiver::forest {

struct OnnxTreeEnsemble {
  // nodes_* (one entry per node, any order; node ids are per tree)
  std::vector<int64_t> nodes_treeids, nodes_nodeids, nodes_featureids;
  std::vector<double> nodes_values;               // nodes_values or nodes_values_as_tensor
  std::vector<std::string> nodes_modes;           // BRANCH_LEQ, ..., LEAF
  std::vector<int64_t> nodes_truenodeids, nodes_falsenodeids;
  std::vector<int64_t> nodes_missing_value_tracks_true;  // may be empty (= all 0)
  // leaf contributions: target_* (regressor) or class_* (classifier), one entry per (leaf, output)
  std::vector<int64_t> leaf_treeids, leaf_nodeids, leaf_ids;
  std::vector<double> leaf_weights;
  int64_t n_outputs = 1;                          // n_targets, or the number of classes
  int64_t n_features = 0;                         // input width
  std::vector<double> base_values;                // may be empty
  std::string aggregate_function = "SUM";         // SUM or AVERAGE (MIN / MAX are refused)
  std::string post_transform = "NONE";            // NONE, LOGISTIC, SOFTMAX (others are refused)
};

// Throws Error(InvalidArgument / Unsupported) naming the tree and node for inconsistent attributes.
ForestSpec forest_spec_from_onnx(const OnnxTreeEnsemble& e, const std::string& node_name = "");

}  // namespace quiver::forest
