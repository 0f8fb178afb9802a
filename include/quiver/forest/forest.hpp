// Tree ensembles (boosted decision trees, random forests): one flat, cache-friendly evaluator for
// XGBoost (JSON / UBJSON), LightGBM (text) and TMVA BDT (XML, .xml.gz) models, and for any other
// producer (the ONNX ai.onnx.ml TreeEnsemble ops) through the flat-array builder `ForestSpec`.
//
// Evaluation model (what every loader reduces its format to):
//   margin[k] = base_margin[k] + scale[k] * sum over trees t with output(t) == k of leaf_t(x)
//   prediction = transform(margin)       (sigmoid, softmax, exp, ... per objective)
// Inputs are float32 (as XGBoost and LightGBM compare them); NaN = missing and follows each node's
// default direction. Thresholds of formats that compare in double (LightGBM, TMVA) are converted
// exactly to an equivalent float32 comparison at load time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::repro { struct Kernels; }

namespace quiver::forest {

// ---------------------------------------------------------------------------------------------
// Flat-array description of a forest (the builder input; also what the ONNX TreeEnsemble ops map to)
// ---------------------------------------------------------------------------------------------

// Test a split node applies. The node's `left` child is taken when the test is TRUE, `right` when
// it is FALSE (ONNX: left = nodes_truenodeids, right = nodes_falsenodeids).
enum class SplitMode : uint8_t {
  Leaf,         // no test; leaf value(s) used
  LT,           // x <  threshold   (XGBoost)
  LEQ,          // x <= threshold   (LightGBM, ONNX BRANCH_LEQ)
  GT,           // x >  threshold
  GTE,          // x >= threshold
  EQ,           // x == threshold
  NEQ,          // x != threshold
  CatIn,        // (int)x is one of the node's categories (LightGBM categorical, XGBoost inverted)
};
std::string_view split_mode_name(SplitMode m);
// ONNX attribute spelling: "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ",
// "BRANCH_NEQ", "LEAF". Throws InvalidArgument for anything else.
SplitMode split_mode_from_onnx(std::string_view s);

// One tree as parallel arrays indexed by node id; node 0 is the root.
struct TreeArrays {
  std::vector<int32_t> feature;        // split feature (ignored for leaves)
  std::vector<double> threshold;       // split value (compared after rounding x to float32)
  std::vector<int32_t> left, right;    // children (true / false branch); ignored for leaves
  std::vector<uint8_t> default_left;   // missing (NaN) goes to `left` when 1 (ONNX: missing_value_tracks_true)
  std::vector<SplitMode> mode;         // per node; Leaf marks leaves
  // Leaf values: leaf_width values per node (entries of internal nodes ignored). leaf_width == 1:
  // the tree adds to output `output`; leaf_width == n_outputs: a vector leaf adding to every output.
  std::vector<double> leaf_value;
  int leaf_width = 1;
  int output = 0;
  double weight = 1.0;                 // multiplies every leaf value (XGBoost dart weight_drop)
  // CatIn nodes: the category set of node n is categories[cat_begin[n] .. cat_begin[n] + cat_size[n]).
  // Only needed when the tree has CatIn nodes (then sized like the node arrays).
  std::vector<uint32_t> cat_begin, cat_size;
  std::vector<int32_t> categories;
  // CatIn: where a value that is not a valid category (negative, beyond the largest category) goes.
  std::vector<uint8_t> cat_invalid_left;
  // LightGBM "zero as missing" nodes: |x| <= 1e-35 counts as missing too (optional, may be empty).
  std::vector<uint8_t> zero_is_missing;

  size_t size() const { return mode.size(); }
  // Convenience: appends a node and returns its id.
  int32_t add_split(int32_t feature, double threshold, SplitMode mode, bool default_left);
  int32_t add_leaf(double value);
};

enum class Transform : uint8_t {
  Identity,       // prediction = margin
  Sigmoid,        // 1 / (1 + exp(-alpha * m)) per output
  Softmax,        // softmax over outputs
  SoftmaxClass,   // argmax over outputs, as float (XGBoost multi:softmax)
  Exp,            // exp(m)  (poisson, gamma, tweedie, aft, cox)
  Hinge,          // m > 0 ? 1 : 0  (binary:hinge)
  TmvaGrad,       // 2 / (1 + exp(-2 m)) - 1  (TMVA gradient boost classifier)
};
std::string_view transform_name(Transform t);

struct ForestSpec {
  int n_features = 0;
  int n_outputs = 1;
  std::vector<double> base_margin;     // per output, margin space (empty = zeros)
  Transform transform = Transform::Identity;
  double sigmoid_alpha = 1.0;
  bool average = false;                // divide each output's tree sum by its tree count (random forests)
  std::vector<TreeArrays> trees;
  // Boosting rounds: round r = trees [round_ptr[r], round_ptr[r+1]). Empty = one tree per round.
  std::vector<int32_t> round_ptr;
  int32_t default_round_begin = 0, default_round_end = -1;  // rounds used by default (-1 = all)
  // Metadata (for inspect and CSV input).
  std::string objective;
  std::string format;
  std::vector<std::string> feature_names;
  std::vector<std::string> feature_types;            // XGBoost spelling ("float", "int", "c", "i", "q") or empty
  std::vector<std::vector<std::string>> category_names;  // per feature: code -> training category (may be empty)
  std::vector<std::pair<std::string, std::string>> notes;  // free-form key/value for inspect
};

// ---------------------------------------------------------------------------------------------
// The compiled forest
// ---------------------------------------------------------------------------------------------

// A node of the flat layout (16 bytes, four per cache line). Leaves loop to themselves, so a fixed
// number of steps (the tree depth) reaches the leaf with no data-dependent branch.
// Plain split: next = right if (s * x) < value else left, s = -1 when meta's top bit is set; NaN takes
// `left` (build() orders the children and negates thresholds so this equals the model's test).
// Special splits (categorical, ==, zero-as-missing): left/right are the true/false children, value is
// the threshold or the category-set index, meta's top bit is default-left.
struct FlatNode {
  float value;      // threshold, leaf value, or CatIn: index of the category set
  uint32_t meta;    // feature index | flags
  int32_t left;     // absolute node index
  int32_t right;
};

class Forest {
 public:
  static constexpr uint32_t kDefaultLeft = 1u << 31;
  static constexpr uint32_t kSpecial = 1u << 30;      // not a plain "x < value" node
  static constexpr uint32_t kCat = 1u << 29;          // special: categorical
  static constexpr uint32_t kEq = 1u << 28;           // special: x == value goes left
  static constexpr uint32_t kZeroMissing = 1u << 27;  // special: |x| <= 1e-35 is missing
  static constexpr uint32_t kCatInvalidLeft = 1u << 26;
  static constexpr uint32_t kFeatureMask = (1u << 26) - 1;

  // Validates and compiles. Throws Error(Parse/InvalidArgument) naming the tree and node on bad input
  // (child out of range, cycles, feature out of range, non-finite leaf, ...).
  static Forest build(const ForestSpec& spec, const std::string& source = "");

  int n_features() const { return n_features_; }
  int n_outputs() const { return n_outputs_; }
  // Columns of the transformed prediction: 1 for SoftmaxClass, else n_outputs.
  int n_prediction_columns() const { return transform_ == Transform::SoftmaxClass ? 1 : n_outputs_; }
  size_t n_trees() const { return tree_root_.size(); }
  size_t n_rounds() const { return round_ptr_.size() - 1; }
  size_t n_nodes() const { return nodes_.size(); }
  int max_depth() const { return max_depth_; }
  Transform transform() const { return transform_; }
  bool has_special_nodes() const { return has_special_; }
  const std::vector<double>& base_margin() const { return base_margin_; }
  const std::string& objective() const { return objective_; }
  const std::string& format() const { return format_; }
  const std::vector<std::string>& feature_names() const { return feature_names_; }
  const std::vector<std::string>& feature_types() const { return feature_types_; }
  // Category code of `text` for feature f (-1 if unknown or the feature has no category names).
  int category_code(int f, std::string_view text) const;
  bool has_category_names(int f) const {
    return f >= 0 && static_cast<size_t>(f) < category_names_.size() && !category_names_[f].empty();
  }
  const std::vector<std::pair<std::string, std::string>>& notes() const { return notes_; }
  // Default round range [begin, end) in effect when none is given.
  std::pair<int32_t, int32_t> default_rounds() const { return {round_begin_, round_end_}; }

  // Evaluation. `rows` is n x n_features() row-major float32. Round range [round_begin, round_end)
  // (-1 = the default range). margin: out is n x n_outputs(); else n x n_prediction_columns().
  void predict(const float* rows, size_t n, float* out, bool margin = false, int32_t round_begin = -1,
               int32_t round_end = -1) const;
  // Both at once (used by Model::run).
  void predict_both(const float* rows, size_t n, float* margin_out, float* pred_out, int32_t round_begin = -1,
                    int32_t round_end = -1) const;
  // The per-event fast path: margin (margin=true) or prediction of output 0 for one row.
  float predict_row(const float* row, bool margin = false) const;
  // Reproducible numerics (LoadOptions::params["numerics"] = "reproducible"): every path sums a row's
  // leaves in tree order (the same bits per row and blocked, at any position in the batch) and the
  // transforms use `kernels` (the engine's own exp/sigmoid/tanh, the same bits on every ISA).
  // Set once, before the forest is shared.
  void set_reproducible(const repro::Kernels* kernels) { repro_ = kernels; }
  const repro::Kernels* reproducible() const { return repro_; }
  // All outputs of one row; `out` has n_outputs() (margin) or n_prediction_columns() floats.
  void predict_row(const float* row, float* out, bool margin) const;
  // Applies the transform to one row of margins.
  void transform_row(const float* margin, float* pred) const;

  // Bytes of the node arrays, and of everything the loaded forest holds.
  size_t node_bytes() const { return nodes_.size() * sizeof(FlatNode); }
  size_t memory_bytes() const;
  void describe(std::ostream& os) const;

  // Low-level access (benchmarks, tests).
  const std::vector<FlatNode>& nodes() const { return nodes_; }
  const std::vector<int32_t>& tree_roots() const { return tree_root_; }
  const std::vector<uint8_t>& tree_depths() const { return tree_depth_; }
  // The rest of the layout, for code generators that write it out (quiver compile, src/forest/codegen).
  const std::vector<uint16_t>& tree_outputs() const { return tree_output_; }
  const std::vector<int32_t>& round_ptr() const { return round_ptr_; }
  const std::vector<uint32_t>& category_words() const { return cat_words_; }
  const std::vector<uint32_t>& category_sets() const { return cat_sets_; }  // per set: first word, bits
  bool average() const { return average_; }
  double sigmoid_alpha() const { return sigmoid_alpha_; }

 private:
  template <bool Special>
  void accumulate(const float* rows, size_t n, double* acc, int32_t t0, int32_t t1) const;
  template <bool Special>
  double row_sum_single(const float* row, int32_t t0, int32_t t1) const;
  std::pair<int32_t, int32_t> tree_range(int32_t rb, int32_t re) const;
  void finish(double* acc, size_t n, int32_t t0, int32_t t1, float* margin_out, float* pred_out) const;

  std::vector<FlatNode> nodes_;
  std::vector<int32_t> tree_root_;
  std::vector<uint8_t> tree_depth_;
  std::vector<uint16_t> tree_output_;
  std::vector<int32_t> round_ptr_;
  std::vector<uint32_t> cat_words_;   // bitsets of CatIn nodes
  std::vector<uint32_t> cat_sets_;    // per set: word begin, n bits (pairs)
  std::vector<double> base_margin_;
  int n_features_ = 0, n_outputs_ = 1, max_depth_ = 0;
  int32_t round_begin_ = 0, round_end_ = 0;
  bool has_special_ = false, single_output_ = true, average_ = false;
  Transform transform_ = Transform::Identity;
  double sigmoid_alpha_ = 1.0;
  const repro::Kernels* repro_ = nullptr;
  std::string objective_, format_;
  std::vector<std::string> feature_names_, feature_types_;
  std::vector<std::vector<std::string>> category_names_;
  std::vector<std::pair<std::string, std::string>> notes_;
};

// ---------------------------------------------------------------------------------------------
// Loaders. `source` names the file in error messages. All throw quiver::Error, never crash.
// ---------------------------------------------------------------------------------------------
enum class Format { Auto, XGBoostJson, XGBoostUbj, LightGBM, TmvaXml };
std::string_view format_name(Format f);  // "xgboost-json", "xgboost-ubj", "lightgbm", "tmva-xml"

ForestSpec parse_xgboost_json(std::string_view bytes, const std::string& source = "");
ForestSpec parse_xgboost_ubj(std::string_view bytes, const std::string& source = "");
ForestSpec parse_lightgbm(std::string_view text, const std::string& source = "");
// Plain XML, or gzip-compressed XML (detected by its magic bytes).
ForestSpec parse_tmva_xml(std::string_view bytes, const std::string& source = "");
// Sniffs the format from the path and content.
Format detect_format(const std::string& path, std::string_view head);
ForestSpec parse_forest(std::string_view bytes, Format format, const std::string& source = "");
Forest load_forest(const std::string& path, Format format = Format::Auto);

// ---------------------------------------------------------------------------------------------
// The Model interface: input 0 "input" F32 [batch, n_features]; outputs "prediction" F32
// [batch, n_prediction_columns] (objective transform applied, as Booster.predict) and "margin" F32
// [batch, n_outputs] (raw scores, base_score included).
// LoadOptions.params: "round_begin", "round_end" (boosting-round range; default all rounds),
// "use_best_iteration" = "1" (XGBoost: rounds [0, best_iteration + 1)), "max_batch".
//
// "interface" = "triton_fil": Triton's FIL backend interface instead, so that an existing Triton
// FIL repository is served unchanged: input "input__0" F32 [batch, n_features], one output
// "output__0" F32 [batch, C] shaped by FIL's parameters:
//   "output_class" (alias "is_classifier") = "false" (default): the prediction (C = its columns);
//   "output_class" = "true": the class id (C = 1): one-column models p > "threshold" (default 0.5),
//       several columns argmax (multi:softmax's prediction already is the class);
//   "predict_proba" = "true": per-class scores (C = classes; multi:softmax gives the softmax of its
//       margins). A binary model gives its probability p (C = 1), or [1 - p, p] (C = 2, what
//       Triton's FIL backend writes and its test configs declare) with "binary_proba_columns" = "2"
//       (quiver serve sets it from a FIL config whose output__0 has dims [2]).
// ---------------------------------------------------------------------------------------------
// What run() produces under "interface" = "triton_fil" (see above).
struct FilOutput {
  bool enabled = false;
  bool output_class = false;
  bool predict_proba = false;
  float threshold = 0.5f;
  bool binary_proba_pair = false;  // binary predict_proba as [1 - p, p]
};

class ForestModel : public Model {
 public:
  ForestModel(Forest forest, ModelInfo info, FilOutput fil = {});
  static std::shared_ptr<const ForestModel> load(const std::string& path, const LoadOptions& options = {});

  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override;
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override;
  void describe(std::ostream& os) const override;

  const Forest& forest() const { return forest_; }
  // Direct fast paths (physics code calls these; Model::run uses predict_both).
  float predict_row(const float* row, bool margin = false) const { return forest_.predict_row(row, margin); }
  void predict(const float* rows, size_t n, float* out, bool margin = false) const {
    forest_.predict(rows, n, out, margin);
  }

 private:
  void run_fil(const Tensor& x, Tensor& out, RunState& state) const;
  Forest forest_;
  ModelInfo info_;
  FilOutput fil_;
};

// The "forest" backend of quiver::load_model (accepts .json/.ubj/.txt/.xml/.xml.gz whose content
// looks like a tree model).
Backend backend();

}  // namespace quiver::forest
