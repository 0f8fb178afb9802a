#include "quiver/forest/onnx_trees.hpp"

#include <map>

#include "quiver/core/error.hpp"

namespace quiver::forest {

ForestSpec forest_spec_from_onnx(const OnnxTreeEnsemble& e, const std::string& node_name) {
  auto fail = [&](ErrorCode code, const std::string& msg, int64_t tree = -1, int64_t node = -1) {
    std::string where = node_name;
    if (tree >= 0) where += (where.empty() ? "" : ": ") + std::string("tree ") + std::to_string(tree);
    if (node >= 0) where += ", node " + std::to_string(node);
    throw_error(code, msg, {"", where});
  };
  const size_t n = e.nodes_nodeids.size();
  if (e.nodes_treeids.size() != n || e.nodes_featureids.size() != n || e.nodes_values.size() != n ||
      e.nodes_modes.size() != n || e.nodes_truenodeids.size() != n || e.nodes_falsenodeids.size() != n ||
      (!e.nodes_missing_value_tracks_true.empty() && e.nodes_missing_value_tracks_true.size() != n))
    fail(ErrorCode::InvalidArgument, "nodes_* attributes have different lengths");
  const size_t nl = e.leaf_ids.size();
  if (e.leaf_treeids.size() != nl || e.leaf_nodeids.size() != nl || e.leaf_weights.size() != nl)
    fail(ErrorCode::InvalidArgument, "target_* / class_* attributes have different lengths");
  if (e.n_outputs < 1 || e.n_outputs > 65535) fail(ErrorCode::InvalidArgument, "number of outputs out of range");
  if (e.n_features < 0) fail(ErrorCode::InvalidArgument, "number of features out of range");

  ForestSpec spec;
  spec.format = "onnx-tree-ensemble";
  spec.n_features = static_cast<int>(e.n_features);
  spec.n_outputs = static_cast<int>(e.n_outputs);
  if (e.aggregate_function == "AVERAGE") spec.average = true;
  else if (e.aggregate_function != "SUM")
    fail(ErrorCode::Unsupported, "aggregate_function '" + e.aggregate_function + "' is not supported (SUM, AVERAGE)");
  if (e.post_transform == "NONE") spec.transform = Transform::Identity;
  else if (e.post_transform == "LOGISTIC") spec.transform = Transform::Sigmoid;
  else if (e.post_transform == "SOFTMAX") spec.transform = Transform::Softmax;
  else fail(ErrorCode::Unsupported, "post_transform '" + e.post_transform + "' is not supported (NONE, LOGISTIC, SOFTMAX)");
  spec.objective = "onnx " + e.aggregate_function + " / " + e.post_transform;
  if (!e.base_values.empty()) {
    if (e.base_values.size() != static_cast<size_t>(e.n_outputs) && e.base_values.size() != 1)
      fail(ErrorCode::InvalidArgument, "base_values has " + std::to_string(e.base_values.size()) + " entries for " +
                                           std::to_string(e.n_outputs) + " outputs");
    spec.base_margin = e.base_values;
  }

  // trees in order of first appearance; (tree id, node id) -> index within the tree
  std::map<int64_t, size_t> tree_index;
  std::vector<std::map<int64_t, int32_t>> node_index;
  for (size_t i = 0; i < n; ++i) {
    auto [it, fresh] = tree_index.emplace(e.nodes_treeids[i], tree_index.size());
    if (fresh) node_index.emplace_back();
    auto& m = node_index[it->second];
    if (!m.emplace(e.nodes_nodeids[i], static_cast<int32_t>(m.size())).second)
      fail(ErrorCode::InvalidArgument, "duplicate node id", e.nodes_treeids[i], e.nodes_nodeids[i]);
  }
  spec.trees.resize(tree_index.size());
  for (auto& tr : spec.trees) tr.leaf_width = spec.n_outputs;
  for (size_t t = 0; t < spec.trees.size(); ++t) {
    auto& tr = spec.trees[t];
    const size_t nn = node_index[t].size();
    tr.feature.assign(nn, 0);
    tr.threshold.assign(nn, 0.0);
    tr.left.assign(nn, -1);
    tr.right.assign(nn, -1);
    tr.default_left.assign(nn, 0);
    tr.mode.assign(nn, SplitMode::Leaf);
    tr.leaf_value.assign(nn * static_cast<size_t>(spec.n_outputs), 0.0);
  }
  // the root of each tree must be index 0: ONNX trees are rooted at the node no other node points to
  std::vector<std::vector<uint8_t>> has_parent(spec.trees.size());
  for (size_t t = 0; t < spec.trees.size(); ++t) has_parent[t].assign(spec.trees[t].size(), 0);
  for (size_t i = 0; i < n; ++i) {
    const size_t t = tree_index[e.nodes_treeids[i]];
    auto& m = node_index[t];
    auto& tr = spec.trees[t];
    const int32_t k = m[e.nodes_nodeids[i]];
    SplitMode mode;
    try {
      mode = split_mode_from_onnx(e.nodes_modes[i]);
    } catch (const Error&) {
      fail(ErrorCode::Unsupported, "unknown node mode '" + e.nodes_modes[i] + "'", e.nodes_treeids[i], e.nodes_nodeids[i]);
    }
    tr.mode[k] = mode;
    if (mode == SplitMode::Leaf) continue;
    auto child = [&](int64_t id) {
      auto it = m.find(id);
      if (it == m.end())
        fail(ErrorCode::InvalidArgument, "child node id " + std::to_string(id) + " does not exist", e.nodes_treeids[i],
             e.nodes_nodeids[i]);
      has_parent[t][static_cast<size_t>(it->second)] = 1;
      return it->second;
    };
    if (e.nodes_featureids[i] < 0 || e.nodes_featureids[i] >= e.n_features)
      fail(ErrorCode::InvalidArgument, "feature id " + std::to_string(e.nodes_featureids[i]) + " out of range (" +
                                           std::to_string(e.n_features) + " features)", e.nodes_treeids[i], e.nodes_nodeids[i]);
    tr.feature[k] = static_cast<int32_t>(e.nodes_featureids[i]);
    tr.threshold[k] = e.nodes_values[i];
    tr.left[k] = child(e.nodes_truenodeids[i]);
    tr.right[k] = child(e.nodes_falsenodeids[i]);
    tr.default_left[k] = !e.nodes_missing_value_tracks_true.empty() && e.nodes_missing_value_tracks_true[i] != 0;
  }
  for (size_t j = 0; j < nl; ++j) {
    auto ti = tree_index.find(e.leaf_treeids[j]);
    if (ti == tree_index.end()) fail(ErrorCode::InvalidArgument, "leaf weight for an unknown tree", e.leaf_treeids[j]);
    auto& m = node_index[ti->second];
    auto ni = m.find(e.leaf_nodeids[j]);
    if (ni == m.end()) fail(ErrorCode::InvalidArgument, "leaf weight for an unknown node", e.leaf_treeids[j], e.leaf_nodeids[j]);
    if (e.leaf_ids[j] < 0 || e.leaf_ids[j] >= e.n_outputs)
      fail(ErrorCode::InvalidArgument, "target / class id " + std::to_string(e.leaf_ids[j]) + " out of range",
           e.leaf_treeids[j], e.leaf_nodeids[j]);
    auto& tr = spec.trees[ti->second];
    if (tr.mode[ni->second] != SplitMode::Leaf)
      fail(ErrorCode::InvalidArgument, "leaf weight on a branch node", e.leaf_treeids[j], e.leaf_nodeids[j]);
    tr.leaf_value[static_cast<size_t>(ni->second) * static_cast<size_t>(e.n_outputs) + static_cast<size_t>(e.leaf_ids[j])] +=
        e.leaf_weights[j];
  }
  // move each tree's root (the node without a parent) to index 0
  for (size_t t = 0; t < spec.trees.size(); ++t) {
    auto& tr = spec.trees[t];
    int32_t root = -1;
    for (size_t k = 0; k < tr.size(); ++k)
      if (!has_parent[t][k]) {
        if (root >= 0) fail(ErrorCode::InvalidArgument, "tree has more than one root", static_cast<int64_t>(t));
        root = static_cast<int32_t>(k);
      }
    if (root < 0) fail(ErrorCode::InvalidArgument, "tree has no root (cycle)", static_cast<int64_t>(t));
    if (root == 0) continue;
    auto swap_ids = [&](int32_t& x) { x = x == 0 ? root : x == root ? 0 : x; };
    for (size_t k = 0; k < tr.size(); ++k) {
      if (tr.mode[k] == SplitMode::Leaf) continue;
      swap_ids(tr.left[k]);
      swap_ids(tr.right[k]);
    }
    const size_t r = static_cast<size_t>(root), w = static_cast<size_t>(tr.leaf_width);
    std::swap(tr.feature[0], tr.feature[r]);
    std::swap(tr.threshold[0], tr.threshold[r]);
    std::swap(tr.left[0], tr.left[r]);
    std::swap(tr.right[0], tr.right[r]);
    std::swap(tr.default_left[0], tr.default_left[r]);
    std::swap(tr.mode[0], tr.mode[r]);
    for (size_t q = 0; q < w; ++q) std::swap(tr.leaf_value[q], tr.leaf_value[r * w + q]);
  }
  return spec;
}

}  // namespace quiver::forest
