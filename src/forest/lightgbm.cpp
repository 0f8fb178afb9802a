// LightGBM text models (model.txt, "version=v2" .. "v4").
//
// Node semantics (LightGBM Tree::NumericalDecision / CategoricalDecision):
//   numeric: left iff x <= threshold; decision_type bit 1 = default left, bits 2-3 = missing type
//            (0 None: NaN is treated as 0; 1 Zero: 0 and NaN are missing; 2 NaN: NaN is missing)
//   categorical (bit 0): left iff bit (int)x is set in cat_threshold[cat_boundaries[t] ..
//            cat_boundaries[t+1]); NaN, negative and out-of-range values go right.
#include <charconv>
#include <cmath>
#include <map>
#include <string>

#include "quiver/core/error.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {
namespace {

struct Lines {
  std::string_view text;
  size_t pos = 0;
  int64_t line_no = 0;
  bool next(std::string_view& line) {
    if (pos >= text.size()) return false;
    size_t e = text.find('\n', pos);
    if (e == std::string_view::npos) e = text.size();
    line = text.substr(pos, e - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = e + 1;
    ++line_no;
    return true;
  }
};

std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

struct Reader {
  const std::string& source;
  [[noreturn]] void fail(const std::string& msg, int64_t line, const std::string& where = "") const {
    throw_error(ErrorCode::Parse, msg, {"", where, "", source, line});
  }
  double num(std::string_view s, int64_t line, const std::string& where) const {
    std::string tmp(s);
    char* end = nullptr;
    double d = std::strtod(tmp.c_str(), &end);
    if (tmp.empty() || end != tmp.c_str() + tmp.size()) fail("not a number: '" + tmp.substr(0, 40) + "'", line, where);
    return d;
  }
  int64_t integer(std::string_view s, int64_t line, const std::string& where) const {
    int64_t v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail("not an integer: '" + std::string(s.substr(0, 40)) + "'", line, where);
    return v;
  }
};

}  // namespace

ForestSpec parse_lightgbm(std::string_view text, const std::string& source) {
  Reader rd{source};
  Lines lines{text};
  std::string_view line;
  std::map<std::string, std::pair<std::string, int64_t>> header;
  bool average_output = false;
  // header: key=value lines until the first "Tree=" line
  bool saw_tree = false;
  while (lines.next(line)) {
    if (line.rfind("Tree=", 0) == 0) { saw_tree = true; break; }
    if (line == "end of trees") break;
    if (line == "average_output") { average_output = true; continue; }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    header[std::string(line.substr(0, eq))] = {std::string(line.substr(eq + 1)), lines.line_no};
  }
  auto hget = [&](const char* k) -> const std::pair<std::string, int64_t>* {
    auto it = header.find(k);
    return it == header.end() ? nullptr : &it->second;
  };
  if (!hget("version") && !hget("max_feature_idx"))
    rd.fail("not a LightGBM text model (no 'version=' / 'max_feature_idx=' header)", 1);
  if (!hget("max_feature_idx")) rd.fail("missing 'max_feature_idx' in the header", 1);
  ForestSpec spec;
  spec.format = std::string(format_name(Format::LightGBM));
  int64_t max_feature = rd.integer(hget("max_feature_idx")->first, hget("max_feature_idx")->second, "header");
  if (max_feature < -1 || max_feature >= (1 << 26)) rd.fail("max_feature_idx out of range", hget("max_feature_idx")->second);
  spec.n_features = static_cast<int>(max_feature + 1);
  int64_t num_class = hget("num_class") ? rd.integer(hget("num_class")->first, hget("num_class")->second, "header") : 1;
  int64_t per_iter = hget("num_tree_per_iteration")
                         ? rd.integer(hget("num_tree_per_iteration")->first, hget("num_tree_per_iteration")->second, "header")
                         : num_class;
  if (num_class < 1 || num_class > 65535 || per_iter < 1 || per_iter > 65535)
    rd.fail("num_class / num_tree_per_iteration out of range", 1);
  spec.n_outputs = static_cast<int>(per_iter);
  spec.average = average_output;
  if (auto* fn = hget("feature_names"))
    for (auto s : split_ws(fn->first)) spec.feature_names.emplace_back(s);
  if (!spec.feature_names.empty() && spec.feature_names.size() != static_cast<size_t>(spec.n_features))
    rd.fail("feature_names has " + std::to_string(spec.feature_names.size()) + " names for " +
                std::to_string(spec.n_features) + " features", hget("feature_names")->second);

  // objective
  std::string objective = hget("objective") ? hget("objective")->first : std::string("regression");
  spec.objective = objective;
  {
    auto toks = split_ws(objective);
    std::string name = toks.empty() ? "regression" : std::string(toks[0]);
    double sigmoid = 1.0;
    for (auto tk : toks)
      if (tk.rfind("sigmoid:", 0) == 0) sigmoid = rd.num(tk.substr(8), hget("objective") ? hget("objective")->second : 0, "objective");
    static const char* identity[] = {"regression", "regression_l2", "regression_l1", "l1", "l2", "mse", "mae", "huber",
                                     "fair", "quantile", "mape", "lambdarank", "rank_xendcg", "custom", "none"};
    bool done = false;
    for (const char* o : identity)
      if (name == o) { spec.transform = Transform::Identity; done = true; }
    if (!done) {
      if (name == "binary" || name == "multiclassova" || name == "multiclass_ova" || name == "ova" || name == "ovr") {
        spec.transform = Transform::Sigmoid;
        spec.sigmoid_alpha = sigmoid;
      } else if (name == "cross_entropy" || name == "xentropy") {
        spec.transform = Transform::Sigmoid;
      } else if (name == "multiclass" || name == "softmax") {
        spec.transform = Transform::Softmax;
      } else if (name == "poisson" || name == "gamma" || name == "tweedie") {
        spec.transform = Transform::Exp;
      } else {
        throw_error(ErrorCode::Unsupported, "unsupported LightGBM objective '" + objective + "'",
                    {"", "header", "", source, hget("objective") ? hget("objective")->second : 0});
      }
    }
  }

  // trees
  size_t n_cat = 0;
  while (saw_tree) {
    const int64_t tree_line = lines.line_no;
    const std::string where = std::string(line);  // "Tree=N"
    std::map<std::string, std::pair<std::string_view, int64_t>> kv;
    saw_tree = false;
    while (lines.next(line)) {
      if (line.rfind("Tree=", 0) == 0) { saw_tree = true; break; }
      if (line == "end of trees") break;
      size_t eq = line.find('=');
      if (eq == std::string_view::npos) continue;
      kv[std::string(line.substr(0, eq))] = {line.substr(eq + 1), lines.line_no};
    }
    auto get = [&](const char* k, bool required) -> std::pair<std::string_view, int64_t> {
      auto it = kv.find(k);
      if (it == kv.end()) {
        if (required) rd.fail(std::string("missing '") + k + "'", tree_line, where);
        return {std::string_view(), tree_line};
      }
      return it->second;
    };
    auto ints = [&](const char* k, size_t expect) {
      auto [v, ln] = get(k, true);
      std::vector<int64_t> out;
      for (auto s : split_ws(v)) out.push_back(rd.integer(s, ln, where));
      if (expect != SIZE_MAX && out.size() != expect)
        rd.fail(std::string("'") + k + "' has " + std::to_string(out.size()) + " values, expected " + std::to_string(expect), ln, where);
      return out;
    };
    auto nums = [&](const char* k, size_t expect) {
      auto [v, ln] = get(k, true);
      std::vector<double> out;
      for (auto s : split_ws(v)) out.push_back(rd.num(s, ln, where));
      if (expect != SIZE_MAX && out.size() != expect)
        rd.fail(std::string("'") + k + "' has " + std::to_string(out.size()) + " values, expected " + std::to_string(expect), ln, where);
      return out;
    };
    if (auto [v, ln] = get("is_linear", false); !v.empty() && v != "0")
      throw_error(ErrorCode::Unsupported, "linear trees (linear_tree=true) are not supported", {"", where, "", source, ln});
    int64_t num_leaves = ints("num_leaves", 1)[0];
    if (num_leaves < 1 || num_leaves > (1 << 24)) rd.fail("num_leaves out of range", get("num_leaves", true).second, where);
    const size_t L = static_cast<size_t>(num_leaves);
    auto leaf_value = nums("leaf_value", L);
    TreeArrays tr;
    tr.output = static_cast<int>(spec.trees.size() % static_cast<size_t>(per_iter));
    if (L == 1) {
      tr.add_leaf(leaf_value[0]);
      spec.trees.push_back(std::move(tr));
      continue;
    }
    const size_t I = L - 1;
    auto split_feature = ints("split_feature", I);
    auto threshold = nums("threshold", I);
    auto decision_type = ints("decision_type", I);
    auto left_child = ints("left_child", I);
    auto right_child = ints("right_child", I);
    int64_t num_cat = 0;
    if (auto [v, ln] = get("num_cat", false); !v.empty()) num_cat = rd.integer(v, ln, where);
    std::vector<int64_t> cat_boundaries, cat_threshold;
    if (num_cat > 0) {
      cat_boundaries = ints("cat_boundaries", static_cast<size_t>(num_cat) + 1);
      cat_threshold = ints("cat_threshold", SIZE_MAX);
    }
    // node ids: internal 0..I-1, leaf k -> I + k
    const size_t n = I + L;
    tr.feature.assign(n, 0);
    tr.threshold.assign(n, 0.0);
    tr.left.assign(n, -1);
    tr.right.assign(n, -1);
    tr.default_left.assign(n, 0);
    tr.mode.assign(n, SplitMode::Leaf);
    tr.leaf_value.assign(n, 0.0);
    tr.zero_is_missing.assign(n, 0);
    for (size_t k = 0; k < L; ++k) tr.leaf_value[I + k] = leaf_value[k];
    auto child = [&](int64_t c, size_t node) -> int32_t {
      if (c >= 0) {
        if (static_cast<size_t>(c) >= I) rd.fail("child " + std::to_string(c) + " out of range", get("left_child", true).second, where + ", node " + std::to_string(node));
        return static_cast<int32_t>(c);
      }
      int64_t leaf = ~c;
      if (leaf < 0 || static_cast<size_t>(leaf) >= L)
        rd.fail("leaf child " + std::to_string(c) + " out of range", get("left_child", true).second, where + ", node " + std::to_string(node));
      return static_cast<int32_t>(I + static_cast<size_t>(leaf));
    };
    for (size_t i = 0; i < I; ++i) {
      const std::string nwhere = where + ", node " + std::to_string(i);
      if (split_feature[i] < 0 || split_feature[i] >= spec.n_features)
        rd.fail("split feature " + std::to_string(split_feature[i]) + " out of range (max_feature_idx " +
                    std::to_string(max_feature) + ")", get("split_feature", true).second, nwhere);
      tr.feature[i] = static_cast<int32_t>(split_feature[i]);
      tr.left[i] = child(left_child[i], i);
      tr.right[i] = child(right_child[i], i);
      const int64_t dt = decision_type[i];
      const bool is_cat = dt & 1;
      const bool dleft = (dt >> 1) & 1;
      const int missing_type = static_cast<int>((dt >> 2) & 3);
      if (is_cat) {
        int64_t ci = static_cast<int64_t>(threshold[i]);
        if (ci < 0 || ci >= num_cat) rd.fail("categorical threshold index " + std::to_string(ci) + " out of range", get("threshold", true).second, nwhere);
        int64_t b = cat_boundaries[static_cast<size_t>(ci)], e = cat_boundaries[static_cast<size_t>(ci) + 1];
        if (b < 0 || e < b || static_cast<size_t>(e) > cat_threshold.size() || e - b > (1 << 23))
          rd.fail("cat_boundaries out of range", get("cat_boundaries", true).second, nwhere);
        if (tr.cat_begin.empty()) {
          tr.cat_begin.assign(n, 0);
          tr.cat_size.assign(n, 0);
          tr.cat_invalid_left.assign(n, 0);
        }
        tr.mode[i] = SplitMode::CatIn;
        tr.cat_begin[i] = static_cast<uint32_t>(tr.categories.size());
        for (int64_t w = b; w < e; ++w) {
          uint64_t word = static_cast<uint64_t>(cat_threshold[static_cast<size_t>(w)]) & 0xffffffffu;
          for (int bit = 0; bit < 32; ++bit)
            if (word >> bit & 1u) tr.categories.push_back(static_cast<int32_t>((w - b) * 32 + bit));
        }
        tr.cat_size[i] = static_cast<uint32_t>(tr.categories.size() - tr.cat_begin[i]);
        tr.default_left[i] = 0;  // NaN -> right
        ++n_cat;
      } else {
        tr.mode[i] = SplitMode::LEQ;
        tr.threshold[i] = threshold[i];
        if (missing_type == 0) {
          tr.default_left[i] = 0.0 <= threshold[i] ? 1 : 0;  // NaN is treated as 0
        } else if (missing_type == 1) {
          tr.default_left[i] = dleft;
          tr.zero_is_missing[i] = 1;
        } else {
          tr.default_left[i] = dleft;
        }
      }
    }
    // LightGBM numbers internal nodes so that node 0 is the root.
    spec.trees.push_back(std::move(tr));
  }
  if (spec.trees.size() % static_cast<size_t>(per_iter) != 0)
    rd.fail(std::to_string(spec.trees.size()) + " trees is not a multiple of num_tree_per_iteration " + std::to_string(per_iter), lines.line_no);
  for (size_t r = 0; r * static_cast<size_t>(per_iter) <= spec.trees.size(); ++r)
    spec.round_ptr.push_back(static_cast<int32_t>(r * static_cast<size_t>(per_iter)));
  if (hget("version")) spec.notes.emplace_back("lightgbm version", hget("version")->first);
  if (n_cat) spec.notes.emplace_back("categorical splits", std::to_string(n_cat));
  if (average_output) spec.notes.emplace_back("average_output", "yes (random forest)");
  return spec;
}

}  // namespace quiver::forest
