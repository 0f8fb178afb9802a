// ai.onnx.ml TreeEnsembleRegressor / TreeEnsembleClassifier, evaluated by the forest engine
// (src/forest): the node attributes become a quiver::forest::ForestSpec, compiled once at load.
#include "onnx/numerics.hpp"
#include "onnx/ops/common.hpp"

#ifdef QUIVER_ONNX_HAVE_FOREST
#include <map>

#include "quiver/forest/forest.hpp"
#include "quiver/forest/onnx_trees.hpp"

namespace quiver::onnx {

namespace {

// Reproducible numerics: the forest sums in tree order on every path and transforms with the ISA
// table's functions (quiver/forest/forest.hpp, Forest::set_reproducible).
std::shared_ptr<const forest::Forest> make_forest(const BuildContext& ctx, const forest::ForestSpec& spec) {
  forest::Forest f = forest::Forest::build(spec, ctx.node_name());
  if (ctx.target().reproducible()) f.set_reproducible(&repro_kernels(ctx.target()));
  return std::make_shared<const forest::Forest>(std::move(f));
}

using forest::ForestSpec;
using forest::Transform;

struct Leaves {
  std::vector<int64_t> tree, node, target;
  std::vector<float> weight;
};

// The node attributes shared by both ops, in the forest engine's adapter (quiver/forest/onnx_trees.hpp).
ForestSpec build_spec(BuildContext& ctx, const Leaves& lv, int n_outputs, int64_t n_features, const std::string& agg,
                      const std::string& post) {
  const auto& a = ctx.attrs();
  forest::OnnxTreeEnsemble e;
  e.nodes_treeids = a.get_ints("nodes_treeids");
  e.nodes_nodeids = a.get_ints("nodes_nodeids");
  e.nodes_featureids = a.get_ints("nodes_featureids");
  for (float v : a.get_floats("nodes_values")) e.nodes_values.push_back(v);
  if (e.nodes_values.empty() && a.has("nodes_values_as_tensor")) {
    auto t = a.get_tensor("nodes_values_as_tensor");
    for (int64_t i = 0; i < t->numel(); ++i)
      e.nodes_values.push_back(t->dtype() == DType::F64 ? t->data<double>()[i] : t->data<float>()[i]);
  }
  e.nodes_modes = a.get_strings("nodes_modes");
  e.nodes_truenodeids = a.get_ints("nodes_truenodeids");
  e.nodes_falsenodeids = a.get_ints("nodes_falsenodeids");
  e.nodes_missing_value_tracks_true = a.get_ints("nodes_missing_value_tracks_true");
  e.leaf_treeids = lv.tree;
  e.leaf_nodeids = lv.node;
  e.leaf_ids = lv.target;
  e.leaf_weights.assign(lv.weight.begin(), lv.weight.end());
  e.n_outputs = n_outputs;
  e.n_features = n_features;
  e.aggregate_function = agg;
  e.post_transform = post;
  try {
    return forest::forest_spec_from_onnx(e, ctx.node_name());
  } catch (const Error& err) {
    ctx.fail(err.message(), "", err.code());
  }
}

int64_t feature_count(BuildContext& ctx) {
  const auto& sh = ctx.input(0).shape;
  int64_t nf = 0;
  for (auto f : ctx.attrs().get_ints("nodes_featureids")) nf = std::max(nf, f + 1);
  if (sh && sh->size() == 2 && (*sh)[1] > 0) nf = std::max(nf, (*sh)[1]);
  return nf;
}

// Rows as float32 (the forest compares in float, like ORT does for float inputs).
const float* rows_f32(ExecContext& ec, const Tensor& x, int64_t nf, int64_t& n_rows) {
  if (x.rank() != 2 && x.rank() != 1) ec.fail("input must be [N, F], got " + dims_to_string(x.dims()));
  n_rows = x.rank() == 2 ? x.dim(0) : 1;
  const int64_t cols = x.rank() == 2 ? x.dim(1) : x.dim(0);
  if (cols < nf) ec.fail("input has " + std::to_string(cols) + " features, the trees use " + std::to_string(nf));
  if (x.dtype() == DType::F32 && cols == nf) return x.data<float>();
  float* buf = static_cast<float*>(ec.scratch(static_cast<size_t>(n_rows * nf) * sizeof(float)));
  visit_numeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t r = 0; r < n_rows; ++r)
      for (int64_t c = 0; c < nf; ++c) buf[r * nf + c] = static_cast<float>(x.data<T>()[r * cols + c]);
  });
  return buf;
}

std::unique_ptr<Kernel> build_regressor(BuildContext& ctx) {
  ctx.expect_inputs(1, 1);
  const auto& a = ctx.attrs();
  const int n_targets = static_cast<int>(a.get_int("n_targets", 1));
  const std::string agg = a.get_string("aggregate_function", "SUM");
  if (agg != "SUM" && agg != "AVERAGE") ctx.unsupported("aggregate_function " + agg + " is not supported");
  Leaves lv{a.get_ints("target_treeids"), a.get_ints("target_nodeids"), a.get_ints("target_ids"),
            a.get_floats("target_weights")};
  if (lv.node.size() != lv.tree.size() || lv.target.size() != lv.tree.size() || lv.weight.size() != lv.tree.size())
    ctx.fail("target_* attributes have different lengths");
  const int64_t nf = feature_count(ctx);
  ForestSpec spec = build_spec(ctx, lv, n_targets, nf, agg, a.get_string("post_transform", "NONE"));
  spec.base_margin.clear();
  for (float b : a.get_floats("base_values")) spec.base_margin.push_back(b);
  auto f = make_forest(ctx, spec);
  ctx.set_output(0, DType::F32);
  return make_kernel([f, nf](ExecContext& ec) {
    const Tensor& x = ec.input(0);
    int64_t n;
    const float* rows = rows_f32(ec, x, nf, n);
    Tensor& y = ec.output(0, DType::F32, {n, f->n_outputs()});
    f->predict(rows, static_cast<size_t>(n), y.data<float>(), f->transform() == Transform::Identity);
  });
}

std::unique_ptr<Kernel> build_classifier(BuildContext& ctx) {
  ctx.expect_inputs(1, 1);
  const auto& a = ctx.attrs();
  const auto labels_i = a.get_ints("classlabels_int64s");
  const auto labels_s = a.get_strings("classlabels_strings");
  const bool string_labels = labels_i.empty();
  const int n_classes = static_cast<int>(string_labels ? labels_s.size() : labels_i.size());
  if (n_classes == 0) ctx.fail("no class labels");
  Leaves lv{a.get_ints("class_treeids"), a.get_ints("class_nodeids"), a.get_ints("class_ids"),
            a.get_floats("class_weights")};
  if (lv.node.size() != lv.tree.size() || lv.target.size() != lv.tree.size() || lv.weight.size() != lv.tree.size())
    ctx.fail("class_* attributes have different lengths");
  // Binary case with a single weight column (class id 0 only): score of the positive class.
  bool binary_single = n_classes == 2;
  for (auto c : lv.target) binary_single &= c == 0;
  const int n_out = binary_single ? 1 : n_classes;
  const int64_t nf = feature_count(ctx);
  const std::string pt = a.get_string("post_transform", "NONE");
  ForestSpec spec = build_spec(ctx, lv, n_out, nf, "SUM", pt);
  spec.base_margin.clear();
  for (float b : a.get_floats("base_values")) spec.base_margin.push_back(b);
  if (binary_single && spec.base_margin.size() == 2) spec.base_margin = {spec.base_margin[1]};
  auto f = make_forest(ctx, spec);
  ctx.set_output(0, string_labels ? DType::String : DType::I64);
  ctx.set_output(1, DType::F32);
  return make_kernel([=](ExecContext& ec) {
    const Tensor& x = ec.input(0);
    int64_t n;
    const float* rows = rows_f32(ec, x, nf, n);
    Tensor& probs = ec.output(1, DType::F32, {n, n_classes});
    float* p = probs.data<float>();
    if (binary_single) {
      // ORT convention: column 1 = transformed score, column 0 = its complement (1 - p for
      // LOGISTIC/NONE probabilities, -score for raw scores).
      std::vector<float> s(static_cast<size_t>(n));
      f->predict(rows, static_cast<size_t>(n), s.data(), pt == "NONE");
      for (int64_t r = 0; r < n; ++r) {
        p[r * 2 + 1] = s[static_cast<size_t>(r)];
        p[r * 2] = pt == "LOGISTIC" ? 1.0f - s[static_cast<size_t>(r)] : -s[static_cast<size_t>(r)];
      }
    } else {
      f->predict(rows, static_cast<size_t>(n), p, pt == "NONE");
    }
    Tensor& label = ec.output(0, string_labels ? DType::String : DType::I64, {n});
    for (int64_t r = 0; r < n; ++r) {
      int best = 0;
      if (binary_single) best = p[r * 2 + 1] > (pt == "NONE" ? 0.0f : 0.5f) ? 1 : 0;
      else
        for (int c = 1; c < n_classes; ++c)
          if (p[r * n_classes + c] > p[r * n_classes + best]) best = c;
      if (string_labels) label.data<std::string>()[r] = labels_s[static_cast<size_t>(best)];
      else label.data<int64_t>()[r] = labels_i[static_cast<size_t>(best)];
    }
  });
}

}  // namespace

QUIVER_REGISTER_OPS(tree_ensemble) {
  registry.add({"ai.onnx.ml", "TreeEnsembleRegressor", build_regressor}, Repro::Variant);
  registry.add({"ai.onnx.ml", "TreeEnsembleClassifier", build_classifier}, Repro::Variant);
}

}  // namespace quiver::onnx

#else
namespace quiver::onnx {
QUIVER_REGISTER_OPS(tree_ensemble) { (void)registry; }
}  // namespace quiver::onnx
#endif
