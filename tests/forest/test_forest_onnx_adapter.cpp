// The ONNX TreeEnsemble adapter: an XGBoost model re-expressed as ONNX attributes (shuffled node ids,
// root not first, BRANCH_LT / BRANCH_GTE with swapped children, missing_value_tracks_true) must predict
// exactly like the model loaded directly.
#include <gtest/gtest.h>

#include <random>

#include "forest_test_util.hpp"
#include "quiver/core/error.hpp"
#include "quiver/forest/onnx_trees.hpp"

using namespace quiver::forest;
using namespace forest_test;

TEST(ForestOnnxAdapter, XGBoostModelAsOnnxAttributes) {
  const std::string path = shared("xgboost/xgb17/SoftmaxIrisNA17.json");
  ForestSpec xs = parse_forest(quiver::read_file(path), Format::Auto, path);
  Forest direct = Forest::build(xs, path);
  OnnxTreeEnsemble e;
  e.n_features = xs.n_features;
  e.n_outputs = xs.n_outputs;
  e.base_values = direct.base_margin();
  e.post_transform = "SOFTMAX";
  for (size_t t = 0; t < xs.trees.size(); ++t) {
    const auto& tr = xs.trees[t];
    const int64_t tid = 100 + static_cast<int64_t>(t) * 3;
    auto id = [&](int32_t k) { return static_cast<int64_t>(tr.size() - 1 - k) * 5 + 11; };  // reversed, sparse
    for (int32_t k = static_cast<int32_t>(tr.size()) - 1; k >= 0; --k) {
      e.nodes_treeids.push_back(tid);
      e.nodes_nodeids.push_back(id(k));
      e.nodes_featureids.push_back(tr.mode[k] == SplitMode::Leaf ? 0 : tr.feature[k]);
      e.nodes_values.push_back(tr.threshold[k]);
      if (tr.mode[k] == SplitMode::Leaf) {
        e.nodes_modes.push_back("LEAF");
        e.nodes_truenodeids.push_back(0);
        e.nodes_falsenodeids.push_back(0);
        e.nodes_missing_value_tracks_true.push_back(0);
        e.leaf_treeids.push_back(tid);
        e.leaf_nodeids.push_back(id(k));
        e.leaf_ids.push_back(tr.output);
        e.leaf_weights.push_back(tr.leaf_value[k]);
      } else if (k % 2) {  // x < t  ==  !(x >= t): express half of the splits as BRANCH_GTE
        e.nodes_modes.push_back("BRANCH_GTE");
        e.nodes_truenodeids.push_back(id(tr.right[k]));
        e.nodes_falsenodeids.push_back(id(tr.left[k]));
        e.nodes_missing_value_tracks_true.push_back(tr.default_left[k] ? 0 : 1);
      } else {
        e.nodes_modes.push_back("BRANCH_LT");
        e.nodes_truenodeids.push_back(id(tr.left[k]));
        e.nodes_falsenodeids.push_back(id(tr.right[k]));
        e.nodes_missing_value_tracks_true.push_back(tr.default_left[k]);
      }
    }
  }
  Forest onnx = Forest::build(forest_spec_from_onnx(e, "TreeEnsembleClassifier_0"));
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(3.5f, 2.0f);
  const size_t n = 500;
  std::vector<float> x(n * 4);
  for (auto& v : x) v = rng() % 9 == 0 ? NAN : nd(rng);
  std::vector<float> m1(n * 3), m2(n * 3), p1(n * 3), p2(n * 3);
  direct.predict_both(x.data(), n, m1.data(), nullptr);
  onnx.predict_both(x.data(), n, m2.data(), p2.data());
  for (size_t i = 0; i < m1.size(); ++i) EXPECT_NEAR(m1[i], m2[i], 1e-6) << i;
  for (size_t r = 0; r < n; ++r) {
    double s = 0;
    for (int k = 0; k < 3; ++k) s += p2[r * 3 + k];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }

  // bad attributes name the node
  OnnxTreeEnsemble bad = e;
  size_t first_branch = 0;
  while (bad.nodes_modes[first_branch] == "LEAF") ++first_branch;
  bad.nodes_truenodeids[first_branch] = 99999;
  try {
    forest_spec_from_onnx(bad, "TreeEnsembleClassifier_0");
    ADD_FAILURE() << "no error";
  } catch (const quiver::Error& err) {
    std::string w = err.what();
    EXPECT_NE(w.find("TreeEnsembleClassifier_0"), std::string::npos) << w;
    EXPECT_NE(w.find("99999"), std::string::npos) << w;
  }
  bad = e;
  bad.aggregate_function = "MAX";
  EXPECT_THROW(forest_spec_from_onnx(bad), quiver::Error);
}
