// ai.onnx.ml TreeEnsembleRegressor / TreeEnsembleClassifier, evaluated by the forest engine
// (src/forest): the node attributes become a quiver::forest::ForestSpec, compiled once at load. The
// emitter (quiver compile) writes the same forest out as flat arrays and a generated walk.
#include "onnx/emit.hpp"
#include "onnx/numerics.hpp"
#include "onnx/ops/common.hpp"

#ifdef QUIVER_ONNX_HAVE_FOREST
#include <map>
#include <optional>

#include "forest/codegen.hpp"
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
ForestSpec build_spec(const BuildContext& ctx, const Leaves& lv, int n_outputs, int64_t n_features, const std::string& agg,
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

int64_t feature_count(const BuildContext& ctx) {
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

ForestSpec regressor_spec(const BuildContext& ctx, int64_t nf) {
  const auto& a = ctx.attrs();
  const int n_targets = static_cast<int>(a.get_int("n_targets", 1));
  const std::string agg = a.get_string("aggregate_function", "SUM");
  if (agg != "SUM" && agg != "AVERAGE") ctx.unsupported("aggregate_function " + agg + " is not supported");
  Leaves lv{a.get_ints("target_treeids"), a.get_ints("target_nodeids"), a.get_ints("target_ids"),
            a.get_floats("target_weights")};
  if (lv.node.size() != lv.tree.size() || lv.target.size() != lv.tree.size() || lv.weight.size() != lv.tree.size())
    ctx.fail("target_* attributes have different lengths");
  ForestSpec spec = build_spec(ctx, lv, n_targets, nf, agg, a.get_string("post_transform", "NONE"));
  spec.base_margin.clear();
  for (float b : a.get_floats("base_values")) spec.base_margin.push_back(b);
  return spec;
}

std::unique_ptr<Kernel> build_regressor(BuildContext& ctx) {
  ctx.expect_inputs(1, 1);
  const int64_t nf = feature_count(ctx);
  auto f = make_forest(ctx, regressor_spec(ctx, nf));
  ctx.set_output(0, DType::F32);
  return make_kernel([f, nf](ExecContext& ec) {
    const Tensor& x = ec.input(0);
    int64_t n;
    const float* rows = rows_f32(ec, x, nf, n);
    Tensor& y = ec.output(0, DType::F32, {n, f->n_outputs()});
    f->predict(rows, static_cast<size_t>(n), y.data<float>(), f->transform() == Transform::Identity);
  });
}

struct ClassifierSpec {
  ForestSpec spec;
  std::vector<int64_t> labels_i;
  std::vector<std::string> labels_s;
  bool string_labels = false, binary_single = false;
  int n_classes = 0;
  std::string post;
};

ClassifierSpec classifier_spec(const BuildContext& ctx, int64_t nf) {
  const auto& a = ctx.attrs();
  ClassifierSpec c;
  c.labels_i = a.get_ints("classlabels_int64s");
  c.labels_s = a.get_strings("classlabels_strings");
  c.string_labels = c.labels_i.empty();
  c.n_classes = static_cast<int>(c.string_labels ? c.labels_s.size() : c.labels_i.size());
  if (c.n_classes == 0) ctx.fail("no class labels");
  Leaves lv{a.get_ints("class_treeids"), a.get_ints("class_nodeids"), a.get_ints("class_ids"),
            a.get_floats("class_weights")};
  if (lv.node.size() != lv.tree.size() || lv.target.size() != lv.tree.size() || lv.weight.size() != lv.tree.size())
    ctx.fail("class_* attributes have different lengths");
  // Binary case with a single weight column (class id 0 only): score of the positive class.
  c.binary_single = c.n_classes == 2;
  for (auto k : lv.target) c.binary_single &= k == 0;
  c.post = a.get_string("post_transform", "NONE");
  c.spec = build_spec(ctx, lv, c.binary_single ? 1 : c.n_classes, nf, "SUM", c.post);
  c.spec.base_margin.clear();
  for (float b : a.get_floats("base_values")) c.spec.base_margin.push_back(b);
  if (c.binary_single && c.spec.base_margin.size() == 2) c.spec.base_margin = {c.spec.base_margin[1]};
  return c;
}

std::unique_ptr<Kernel> build_classifier(BuildContext& ctx) {
  ctx.expect_inputs(1, 1);
  const int64_t nf = feature_count(ctx);
  ClassifierSpec cs = classifier_spec(ctx, nf);
  const auto labels_i = cs.labels_i;
  const auto labels_s = cs.labels_s;
  const bool string_labels = cs.string_labels, binary_single = cs.binary_single;
  const int n_classes = cs.n_classes;
  const std::string pt = cs.post;
  auto f = make_forest(ctx, cs.spec);
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

namespace {

// quiver compile: the forest built as the kernel builds it, written out as its flat layout and a walk
// generated for it (forest/codegen.hpp). Float32 [N, F] inputs with F static; integer labels.
void emit_trees(Emit& e, bool classifier) {
  if (e.in(0).dtype != DType::F32) e.refuse("input element type " + std::string(dtype_name(e.in(0).dtype)) + " (float32 only)");
  if (e.rank_in(0) != 2) e.refuse("input of rank " + std::to_string(e.rank_in(0)) + " (only [N, F])");
  const int64_t nf = feature_count(e.node());
  if (e.din(0, 1) != std::to_string(nf))
    e.refuse("the input's feature dim must be static and equal the trees' " + std::to_string(nf) + " features");
  ClassifierSpec cs;
  std::optional<forest::Forest> f;
  try {
    if (classifier) cs = classifier_spec(e.node(), nf);
    f.emplace(forest::Forest::build(classifier ? cs.spec : regressor_spec(e.node(), nf), e.node().node_name()));
  } catch (const Error& err) {
    e.refuse(err.message());
  }
  if (classifier && cs.string_labels) e.refuse("string class labels are not emitted");
  const std::string N = "I0.d[0]";
  const int64_t nc = classifier ? cs.n_classes : f->n_outputs();
  // The classifier's probabilities go to scratch when its output 1 is not wanted.
  const std::string probs = classifier ? "probs" : "y0";
  forest::ForestCode code = forest::emit_forest(*f, "x0", N, "static_cast<float*>(nullptr)", probs);
  for (auto& t : code.consts) e.add_const(std::move(t));
  const size_t fb = (code.scratch_bytes + 63) / 64 * 64;
  e.comment(std::to_string(f->n_trees()) + " trees, " + std::to_string(f->n_nodes()) + " nodes");
  if (!classifier) {
    e.set_dims(0, {N, std::to_string(nc)});
    e.scratch(std::to_string(fb));
    e.compute(code.compute);
    return;
  }
  e.set_dims(0, {N});
  e.set_dims(1, {N, std::to_string(nc)});
  e.scratch(std::to_string(fb) + " + " + N + " * " + std::to_string(nc * 4));
  std::string c = "float* probs = y1 ? y1 : reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + " + std::to_string(fb) + ");\n";
  c += "{\n" + code.compute + "}\n";
  if (cs.binary_single)  // column 1 = the score, column 0 its complement (the kernel's ORT convention)
    c += "for (int64_t r = " + N + " - 1; r >= 0; --r) {\n  const float s = probs[r];\n  probs[2 * r + 1] = s;\n  probs[2 * r] = " +
         std::string(cs.post == "LOGISTIC" ? "1.0f - s" : "-s") + ";\n}\n";
  c += "static constexpr int64_t labels[" + std::to_string(nc) + "] = {";
  for (int k = 0; k < cs.n_classes; ++k) c += (k ? ", " : "") + cint(cs.labels_i[static_cast<size_t>(k)]);
  c += "};\nif (y0)\n  for (int64_t r = 0; r < " + N + "; ++r) {\n    const float* p = probs + r * " + std::to_string(nc) + ";\n";
  if (cs.binary_single)
    c += "    y0[r] = labels[p[1] > " + std::string(cs.post == "NONE" ? "0.0f" : "0.5f") + " ? 1 : 0];\n  }\n";
  else
    c += "    int best = 0;\n    for (int k = 1; k < " + std::to_string(nc) + "; ++k)\n      if (p[k] > p[best]) best = k;\n"
         "    y0[r] = labels[best];\n  }\n";
  e.compute(c);
}

}  // namespace

QUIVER_REGISTER_EMITTERS(tree_ensemble) {
  emitters.add("ai.onnx.ml", "TreeEnsembleRegressor", [](Emit& e) { emit_trees(e, false); });
  emitters.add("ai.onnx.ml", "TreeEnsembleClassifier", [](Emit& e) { emit_trees(e, true); });
}

}  // namespace quiver::onnx

#else
namespace quiver::onnx {
QUIVER_REGISTER_OPS(tree_ensemble) { (void)registry; }
QUIVER_REGISTER_EMITTERS(tree_ensemble) { (void)emitters; }
}  // namespace quiver::onnx
#endif
