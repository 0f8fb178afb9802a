// XGBoost JSON / UBJSON models (schema of XGBoost 1.0 to 3.x), parsed with nlohmann::json.
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <string>

#include "quiver/core/error.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {
namespace {

using json = nlohmann::json;

struct Ctx {
  const std::string& source;
  std::string where;  // "tree 3" etc.
  [[noreturn]] void fail(const std::string& msg, int64_t node = -1) const {
    std::string w = where;
    if (node >= 0) w += (w.empty() ? "" : ", ") + std::string("node ") + std::to_string(node);
    throw_error(ErrorCode::Parse, msg, {"", w, "", source});
  }
};

const json& need(const Ctx& c, const json& obj, const char* key, const std::string& path) {
  if (!obj.is_object())
    c.fail("expected an object at '" + (path.empty() ? std::string("<top level>") : path) + "' holding '" + key + "'");
  auto it = obj.find(key);
  if (it == obj.end()) c.fail("missing '" + path + (path.empty() ? "" : ".") + key + "'");
  return *it;
}
const json* maybe(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

double to_double(const Ctx& c, const json& v, const std::string& what) {
  if (v.is_number()) return v.get<double>();
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();  // NaN written by XGBoost < 2
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size()) c.fail("'" + what + "' is not a number: \"" + s.substr(0, 40) + "\"");
    return d;
  }
  c.fail("'" + what + "' is not a number");
}
int64_t to_int(const Ctx& c, const json& v, const std::string& what) {
  double d = to_double(c, v, what);
  if (!(d >= -9.2e18 && d <= 9.2e18) || d != std::floor(d)) c.fail("'" + what + "' is not an integer");
  return static_cast<int64_t>(d);
}

template <class T>
std::vector<T> num_array(const Ctx& c, const json& v, const std::string& what) {
  if (!v.is_array()) c.fail("'" + what + "' is not an array");
  std::vector<T> out;
  out.reserve(v.size());
  for (const auto& e : v) {
    if constexpr (std::is_floating_point_v<T>) {
      out.push_back(static_cast<T>(to_double(c, e, what)));
    } else {
      int64_t x = to_int(c, e, what);
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) || x > static_cast<int64_t>(std::numeric_limits<T>::max()))
        c.fail("'" + what + "' value " + std::to_string(x) + " out of range");
      out.push_back(static_cast<T>(x));
    }
  }
  return out;
}

// "5E-1", "[2.3538704E-1]", "[1.55E1,2.34E1]", 0.5
std::vector<double> parse_base_score(const Ctx& c, const json& v) {
  if (v.is_number()) return {v.get<double>()};
  if (!v.is_string()) c.fail("'base_score' is neither a number nor a string");
  std::string s = v.get<std::string>();
  std::vector<double> out;
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  if (b == std::string::npos) c.fail("'base_score' is empty");
  s = s.substr(b, e - b + 1);
  if (s.front() == '[') {
    if (s.back() != ']') c.fail("'base_score' vector is not closed: \"" + s.substr(0, 60) + "\"");
    s = s.substr(1, s.size() - 2);
  }
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    double d = std::strtod(item.c_str(), &end);
    if (item.empty() || end == item.c_str()) c.fail("'base_score' entry is not a number: \"" + item.substr(0, 40) + "\"");
    out.push_back(d);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

enum class BaseLink { Identity, Logit, Log };

void objective_semantics(const Ctx& c, const std::string& obj, Transform& tr, BaseLink& link) {
  static const char* identity[] = {"reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
                                   "reg:absoluteerror", "reg:quantileerror", "reg:expectileerror", "binary:logitraw",
                                   "rank:pairwise", "rank:ndcg", "rank:map"};
  for (const char* o : identity)
    if (obj == o) { tr = Transform::Identity; link = BaseLink::Identity; return; }
  if (obj == "binary:logistic" || obj == "reg:logistic") { tr = Transform::Sigmoid; link = BaseLink::Logit; return; }
  if (obj == "binary:hinge") { tr = Transform::Hinge; link = BaseLink::Identity; return; }
  if (obj == "count:poisson" || obj == "reg:gamma" || obj == "reg:tweedie" || obj == "survival:aft" ||
      obj == "survival:cox") {
    tr = Transform::Exp; link = BaseLink::Log; return;
  }
  if (obj == "multi:softprob") { tr = Transform::Softmax; link = BaseLink::Identity; return; }
  if (obj == "multi:softmax") { tr = Transform::SoftmaxClass; link = BaseLink::Identity; return; }
  throw_error(ErrorCode::Unsupported, "unknown XGBoost objective '" + obj + "'", {"", "learner.objective.name", "", c.source});
}

ForestSpec from_json_doc(const json& doc, const std::string& source, Format fmt) {
  Ctx c{source, ""};
  const json& learner = need(c, doc, "learner", "");
  const json& lmp = need(c, learner, "learner_model_param", "learner");
  const json& objective = need(c, learner, "objective", "learner");
  const json& objname = need(c, objective, "name", "learner.objective");
  if (!objname.is_string()) c.fail("'learner.objective.name' is not a string");
  const std::string obj = objname.get<std::string>();
  const json& gb = need(c, learner, "gradient_booster", "learner");
  std::string booster = maybe(gb, "name") && gb["name"].is_string() ? gb["name"].get<std::string>() : "gbtree";
  const json* model = nullptr;
  const json* weight_drop = nullptr;
  if (booster == "gbtree") {
    model = &need(c, gb, "model", "learner.gradient_booster");
    weight_drop = maybe(*model, "weight_drop");
  } else if (booster == "dart") {
    const json& inner = need(c, gb, "gbtree", "learner.gradient_booster");
    model = &need(c, inner, "model", "learner.gradient_booster.gbtree");
    weight_drop = maybe(gb, "weight_drop");
    if (!weight_drop) weight_drop = maybe(*model, "weight_drop");
  } else if (booster == "gblinear") {
    throw_error(ErrorCode::Unsupported, "gblinear (linear booster) models are not tree ensembles", {"", "", "", source});
  } else {
    throw_error(ErrorCode::Unsupported, "unknown gradient booster '" + booster + "'", {"", "", "", source});
  }

  ForestSpec spec;
  spec.format = std::string(format_name(fmt));
  spec.objective = obj;
  BaseLink link;
  objective_semantics(c, obj, spec.transform, link);

  int64_t num_feature = to_int(c, need(c, lmp, "num_feature", "learner.learner_model_param"), "num_feature");
  int64_t num_class = maybe(lmp, "num_class") ? to_int(c, lmp["num_class"], "num_class") : 0;
  int64_t num_target = maybe(lmp, "num_target") ? to_int(c, lmp["num_target"], "num_target") : 1;
  if (num_feature < 0 || num_feature > (1 << 26)) c.fail("num_feature " + std::to_string(num_feature) + " out of range");
  if (num_class < 0 || num_class > 65535 || num_target < 1 || num_target > 65535) c.fail("num_class / num_target out of range");
  int n_out = static_cast<int>(num_class > 0 ? num_class : num_target);
  if (num_class > 0 && num_target > 1) c.fail("both num_class and num_target > 1 are set");
  if ((spec.transform == Transform::Softmax || spec.transform == Transform::SoftmaxClass) && num_class < 1)
    c.fail("objective '" + obj + "' needs num_class");
  spec.n_features = static_cast<int>(num_feature);
  spec.n_outputs = n_out;

  // base_score: prediction space -> margin space
  std::vector<double> base = maybe(lmp, "base_score") ? parse_base_score(c, lmp["base_score"]) : std::vector<double>{0.5};
  for (double& b : base) {
    if (link == BaseLink::Logit) {
      if (!(b > 0.0 && b < 1.0)) c.fail("base_score " + std::to_string(b) + " must be in (0, 1) for " + obj);
      b = std::log(b / (1.0 - b));
    } else if (link == BaseLink::Log) {
      if (!(b > 0.0)) c.fail("base_score " + std::to_string(b) + " must be > 0 for " + obj);
      b = std::log(b);
    }
  }
  if (base.size() != 1 && base.size() != static_cast<size_t>(n_out))
    c.fail("base_score has " + std::to_string(base.size()) + " entries for " + std::to_string(n_out) + " outputs");
  spec.base_margin = base;

  // features
  if (const json* fn = maybe(learner, "feature_names"); fn && fn->is_array()) {
    for (const auto& s : *fn) spec.feature_names.push_back(s.is_string() ? s.get<std::string>() : std::string());
    if (!spec.feature_names.empty() && spec.feature_names.size() != static_cast<size_t>(num_feature))
      c.fail("feature_names has " + std::to_string(spec.feature_names.size()) + " entries, num_feature is " +
             std::to_string(num_feature));
  }
  if (const json* ft = maybe(learner, "feature_types"); ft && ft->is_array()) {
    for (const auto& s : *ft) spec.feature_types.push_back(s.is_string() ? s.get<std::string>() : std::string());
  }

  // trees
  const json& trees = need(c, *model, "trees", "gradient_booster.model");
  if (!trees.is_array()) c.fail("'trees' is not an array");
  std::vector<int32_t> tree_info;
  if (const json* ti = maybe(*model, "tree_info")) tree_info = num_array<int32_t>(c, *ti, "tree_info");
  if (tree_info.size() != trees.size())
    c.fail("tree_info has " + std::to_string(tree_info.size()) + " entries for " + std::to_string(trees.size()) + " trees");
  std::vector<double> weights;
  if (weight_drop && !weight_drop->is_null()) {
    weights = num_array<double>(c, *weight_drop, "weight_drop");
    if (weights.size() != trees.size())
      c.fail("weight_drop has " + std::to_string(weights.size()) + " entries for " + std::to_string(trees.size()) + " trees");
  }
  int64_t num_parallel_tree = 1;
  if (const json* p = maybe(*model, "gbtree_model_param"); p && maybe(*p, "num_parallel_tree"))
    num_parallel_tree = to_int(c, (*p)["num_parallel_tree"], "num_parallel_tree");
  if (num_parallel_tree < 1) c.fail("num_parallel_tree < 1");

  spec.trees.resize(trees.size());
  size_t n_cat_splits = 0;
  for (size_t t = 0; t < trees.size(); ++t) {
    Ctx tc{source, "tree " + std::to_string(t)};
    const json& tj = trees[t];
    if (!tj.is_object()) tc.fail("tree is not an object");
    if (const json* tp = maybe(tj, "tree_param"); tp && maybe(*tp, "size_leaf_vector")) {
      int64_t slv = to_int(tc, (*tp)["size_leaf_vector"], "size_leaf_vector");
      if (slv > 1)
        throw_error(ErrorCode::Unsupported, "multi-output trees (multi_strategy=multi_output_tree, vector leaves) are not supported",
                    {"", tc.where, "", source});
    }
    auto lc = num_array<int32_t>(tc, need(tc, tj, "left_children", "tree"), "left_children");
    auto rc = num_array<int32_t>(tc, need(tc, tj, "right_children", "tree"), "right_children");
    auto si = num_array<int64_t>(tc, need(tc, tj, "split_indices", "tree"), "split_indices");
    auto sc = num_array<double>(tc, need(tc, tj, "split_conditions", "tree"), "split_conditions");
    auto dl = num_array<int32_t>(tc, need(tc, tj, "default_left", "tree"), "default_left");
    std::vector<int32_t> st;
    if (const json* s = maybe(tj, "split_type")) st = num_array<int32_t>(tc, *s, "split_type");
    const size_t n = lc.size();
    if (n == 0) tc.fail("tree has no nodes");
    if (rc.size() != n || si.size() != n || sc.size() != n || dl.size() != n || (!st.empty() && st.size() != n))
      tc.fail("node arrays have different lengths (left_children has " + std::to_string(n) + ")");
    TreeArrays& tr = spec.trees[t];
    tr.output = tree_info[t];
    if (tr.output < 0 || tr.output >= n_out)
      tc.fail("tree_info " + std::to_string(tr.output) + " out of range for " + std::to_string(n_out) + " outputs");
    tr.weight = weights.empty() ? 1.0 : static_cast<float>(weights[t]);
    tr.feature.resize(n);
    tr.threshold.resize(n);
    tr.left = lc;
    tr.right = rc;
    tr.default_left.resize(n);
    tr.mode.resize(n);
    tr.leaf_value.assign(n, 0.0);
    bool has_cat = false;
    for (size_t i = 0; i < n; ++i) {
      if (lc[i] == -1) {
        tr.mode[i] = SplitMode::Leaf;
        tr.leaf_value[i] = static_cast<float>(sc[i]);  // XGBoost stores float32; JSON prints shortest decimals
        continue;
      }
      if (si[i] < 0 || si[i] >= num_feature)
        tc.fail("split feature " + std::to_string(si[i]) + " out of range (num_feature " + std::to_string(num_feature) + ")",
                static_cast<int64_t>(i));
      tr.feature[i] = static_cast<int32_t>(si[i]);
      tr.threshold[i] = static_cast<float>(sc[i]);
      tr.default_left[i] = dl[i] ? 1 : 0;
      if (!st.empty() && st[i] == 1) {
        has_cat = true;
        tr.mode[i] = SplitMode::CatIn;  // filled below
      } else if (!st.empty() && st[i] != 0) {
        tc.fail("unknown split_type " + std::to_string(st[i]), static_cast<int64_t>(i));
      } else {
        tr.mode[i] = SplitMode::LT;
      }
    }
    if (has_cat) {
      auto cn = num_array<int32_t>(tc, need(tc, tj, "categories_nodes", "tree"), "categories_nodes");
      auto cs = num_array<int64_t>(tc, need(tc, tj, "categories_segments", "tree"), "categories_segments");
      auto cz = num_array<int64_t>(tc, need(tc, tj, "categories_sizes", "tree"), "categories_sizes");
      auto cats = num_array<int32_t>(tc, need(tc, tj, "categories", "tree"), "categories");
      if (cs.size() != cn.size() || cz.size() != cn.size()) tc.fail("categories_* arrays have different lengths");
      tr.cat_begin.assign(n, 0);
      tr.cat_size.assign(n, 0);
      tr.cat_invalid_left.assign(n, 0);
      tr.categories = cats;
      std::vector<uint8_t> seen(n, 0);
      for (size_t j = 0; j < cn.size(); ++j) {
        int32_t node = cn[j];
        if (node < 0 || static_cast<size_t>(node) >= n || tr.mode[node] != SplitMode::CatIn)
          tc.fail("categories_nodes entry " + std::to_string(node) + " is not a categorical split");
        if (cs[j] < 0 || cz[j] < 0 || static_cast<size_t>(cs[j] + cz[j]) > cats.size())
          tc.fail("category segment out of range", node);
        tr.cat_begin[node] = static_cast<uint32_t>(cs[j]);
        tr.cat_size[node] = static_cast<uint32_t>(cz[j]);
        seen[node] = 1;
      }
      for (size_t i = 0; i < n; ++i) {
        if (tr.mode[i] != SplitMode::CatIn) continue;
        if (!seen[i]) tc.fail("categorical split without a category set", static_cast<int64_t>(i));
        // XGBoost: category in the set -> right; missing -> default_left; invalid -> left.
        // CatIn's true branch is `left`, so swap the children.
        std::swap(tr.left[i], tr.right[i]);
        tr.default_left[i] = tr.default_left[i] ? 0 : 1;
        tr.cat_invalid_left[i] = 0;  // invalid -> XGBoost left = the false branch now
        ++n_cat_splits;
      }
    }
  }

  // rounds
  if (const json* ip = maybe(*model, "iteration_indptr"); ip && ip->is_array() && !ip->empty()) {
    spec.round_ptr = num_array<int32_t>(c, *ip, "iteration_indptr");
  } else {
    int64_t per_round = num_parallel_tree * n_out;
    if (per_round <= 0 || trees.size() % static_cast<size_t>(per_round) != 0)
      c.fail(std::to_string(trees.size()) + " trees is not a multiple of num_parallel_tree x outputs = " +
             std::to_string(per_round));
    for (size_t r = 0; r <= trees.size() / static_cast<size_t>(per_round); ++r)
      spec.round_ptr.push_back(static_cast<int32_t>(r * static_cast<size_t>(per_round)));
  }

  // categories (XGBoost >= 3.1 stores the training categories: code = position in the list)
  if (const json* cats = maybe(*model, "cats"); cats && maybe(*cats, "enc") && (*cats)["enc"].is_array()) {
    const json& enc = (*cats)["enc"];
    spec.category_names.resize(static_cast<size_t>(num_feature));
    for (size_t f = 0; f < enc.size() && f < static_cast<size_t>(num_feature); ++f) {
      const json& e = enc[f];
      if (!e.is_object() || !maybe(e, "offsets") || !maybe(e, "values")) continue;
      auto off = num_array<int64_t>(c, e["offsets"], "cats.enc.offsets");
      const json& vals = e["values"];
      if (!vals.is_array()) continue;  // numeric category encodings: codes are the values themselves
      std::string bytes;
      bool is_bytes = true;
      for (const auto& b : vals) {
        if (!b.is_number_integer() && !b.is_number_unsigned()) { is_bytes = false; break; }
        int64_t x = b.get<int64_t>();
        if (x < 0 || x > 255) { is_bytes = false; break; }
        bytes.push_back(static_cast<char>(x));
      }
      if (!is_bytes) continue;
      auto& names = spec.category_names[f];
      for (size_t i = 0; i + 1 < off.size(); ++i) {
        if (off[i] < 0 || off[i + 1] < off[i] || static_cast<size_t>(off[i + 1]) > bytes.size())
          c.fail("cats.enc offsets out of range for feature " + std::to_string(f));
        names.push_back(bytes.substr(static_cast<size_t>(off[i]), static_cast<size_t>(off[i + 1] - off[i])));
      }
    }
  }

  // metadata
  if (const json* attrs = maybe(learner, "attributes"); attrs && maybe(*attrs, "best_iteration"))
    spec.notes.emplace_back("best_iteration", (*attrs)["best_iteration"].is_string()
                                                  ? (*attrs)["best_iteration"].get<std::string>()
                                                  : (*attrs)["best_iteration"].dump());
  if (const json* ver = maybe(doc, "version"); ver && ver->is_array()) {
    std::string v;
    for (const auto& x : *ver) v += (v.empty() ? "" : ".") + x.dump();
    spec.notes.emplace_back("xgboost version", v);
  }
  spec.notes.emplace_back("booster", booster + (weights.empty() ? "" : " (per-tree weight_drop)"));
  if (num_parallel_tree > 1) spec.notes.emplace_back("num_parallel_tree", std::to_string(num_parallel_tree));
  if (n_cat_splits) spec.notes.emplace_back("categorical splits", std::to_string(n_cat_splits));
  return spec;
}

// XGBoost < 2 writes non-JSON literals NaN / Infinity / -Infinity (e.g. split_conditions of categorical
// nodes). Outside string literals, rewrite them to null / +-1e308 so a strict JSON parser accepts the file.
std::string sanitize_nonfinite(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  bool in_str = false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_str) {
      out.push_back(c);
      if (c == '\\' && i + 1 < in.size()) out.push_back(in[++i]);
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') { in_str = true; out.push_back(c); continue; }
    if (in.compare(i, 3, "NaN") == 0) { out += "null"; i += 2; continue; }
    if (in.compare(i, 8, "Infinity") == 0) { out += "1e308"; i += 7; continue; }
    out.push_back(c);
  }
  return out;
}

}  // namespace

ForestSpec parse_xgboost_json(std::string_view bytes, const std::string& source) {
  json doc;
  try {
    doc = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    bool retried = false;
    if (bytes.find("NaN") != std::string_view::npos || bytes.find("Infinity") != std::string_view::npos) {
      std::string clean = sanitize_nonfinite(bytes);
      try {
        doc = json::parse(clean);
        retried = true;
      } catch (const json::exception&) {
      }
    }
    if (!retried) throw_error(ErrorCode::Parse, std::string("malformed JSON: ") + e.what(), {"", "", "", source});
  }
  try {
    return from_json_doc(doc, source, Format::XGBoostJson);
  } catch (const json::exception& e) {
    throw_error(ErrorCode::Parse, std::string("unexpected XGBoost JSON content: ") + e.what(), {"", "", "", source});
  }
}

ForestSpec parse_xgboost_ubj(std::string_view bytes, const std::string& source) {
  json doc;
  try {
    doc = json::from_ubjson(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw_error(ErrorCode::Parse, std::string("malformed UBJSON: ") + e.what(), {"", "", "", source});
  } catch (const std::bad_alloc&) {
    throw_error(ErrorCode::ResourceExhausted, "UBJSON document too large for memory", {"", "", "", source});
  } catch (const std::length_error&) {
    throw_error(ErrorCode::Parse, "malformed UBJSON: container size out of range", {"", "", "", source});
  }
  try {
    return from_json_doc(doc, source, Format::XGBoostUbj);
  } catch (const json::exception& e) {
    throw_error(ErrorCode::Parse, std::string("unexpected XGBoost UBJSON content: ") + e.what(), {"", "", "", source});
  }
}

}  // namespace quiver::forest
