// Conformance of the forest engine against the shared expected predictions (tests/../shared/models/forest).
// Driven by each folder's cases.json: features in model order, missing token, rounds, column meanings.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "forest_expected.hpp"
#include "forest_test_util.hpp"
#include "quiver/core/error.hpp"

using namespace quiver::forest;
using namespace forest_test;
using json = nlohmann::json;

namespace {

// Checks one expected file: margins (expected_margin/ or margin columns) and predictions.
void check_expected(const std::string& dir, const json& cs, const json& ex, const std::string& model_file, Outcome& o) {
  SCOPED_TRACE(model_file + " vs " + ex["file"].get<std::string>());
  auto spec = parse_forest(quiver::read_file(dir + "/" + model_file), Format::Auto, model_file);
  Forest f = Forest::build(spec, model_file);
  std::vector<std::string> feats = cs["features"].get<std::vector<std::string>>();
  ASSERT_EQ(static_cast<int>(feats.size()), f.n_features());
  auto table = parse_csv(quiver::read_file(dir + "/" + cs["input"].get<std::string>()), 1);
  std::vector<float> x = csv_to_features(table, f.n_features(), feats, &f, cs["input"].get<std::string>());
  const size_t n = table.rows.size();
  int32_t rb = -1, re = -1;
  if (ex.contains("rounds") && ex["rounds"].is_array()) {
    rb = ex["rounds"][0].get<int32_t>();
    re = ex["rounds"][1].get<int32_t>();
  }
  const int no = f.n_outputs(), np = f.n_prediction_columns();
  std::vector<float> margin(n * no), pred(n * np);
  f.predict_both(x.data(), n, margin.data(), pred.data(), rb, re);

  // independent walk of the parsed trees (catches layout / threshold-conversion bugs)
  auto [t0, t1] = std::pair<size_t, size_t>{0, spec.trees.size()};
  if (rb >= 0) { t0 = spec.round_ptr[rb]; t1 = spec.round_ptr[re]; }
  for (size_t r = 0; r < n; r += 7) {
    auto m = ref_margin(spec, &x[r * f.n_features()], t0, t1);
    for (int k = 0; k < no; ++k) compare("reference walk row " + std::to_string(r), margin[r * no + k], m[k], o, 1e-6, 1e-6);
  }
  // single-row fast path agrees with the batch path
  for (size_t r = 0; r < n && rb < 0; r += 11) {
    std::vector<float> one(static_cast<size_t>(no));
    f.predict_row(&x[r * f.n_features()], one.data(), true);
    // (the batch path sums trees in another order: equal up to rounding)
    for (int k = 0; k < no; ++k) EXPECT_TRUE(close(one[k], margin[r * no + k], 1e-6, 1e-6)) << "row " << r;
    if (no == 1) {
      EXPECT_TRUE(close(f.predict_row(&x[r * f.n_features()], true), margin[r], 1e-6, 1e-6)) << "row " << r;
    }
  }

  check_expected_columns(dir, cs, ex, n, no, np, margin, pred, o);
}

void run_xgboost_folder(const std::string& folder, bool ubj) {
  const std::string dir = shared("xgboost/" + folder);
  json cases = json::parse(quiver::read_file(dir + "/cases.json"));
  size_t models = 0;
  Outcome o;
  for (const auto& cs : cases["cases"]) {
    std::string key = ubj ? "model_ubj" : "model_json";
    if (!cs.contains(key)) continue;
    ++models;
    for (const auto& ex : cs["expected"]) check_expected(dir, cs, ex, cs[key].get<std::string>(), o);
  }
  EXPECT_GT(models, 0u);
  std::printf("[forest] %s (%s): %zu models, %zu values checked, max relative difference %.3g (where |expected| >= 1e-3; %s)\n", folder.c_str(),
              ubj ? "ubj" : "json", models, o.checked, o.max_rel, o.worst.c_str());
}

}  // namespace

TEST(ForestXGBoost, Jpmml_Json) { run_xgboost_folder("jpmml", false); }
TEST(ForestXGBoost, Jpmml_Ubj) { run_xgboost_folder("jpmml", true); }
TEST(ForestXGBoost, Categorical_Json) { run_xgboost_folder("categorical", false); }
TEST(ForestXGBoost, Categorical_Ubj) { run_xgboost_folder("categorical", true); }
TEST(ForestXGBoost, Xgb17_Json) { run_xgboost_folder("xgb17", false); }
TEST(ForestXGBoost, Xgb17_Ubj) { run_xgboost_folder("xgb17", true); }
TEST(ForestXGBoost, Compat10_Json) { run_xgboost_folder("compat-1.0", false); }

// ---------------------------------------------------------------------------------------------
// LightGBM (LibSVM inputs)
// ---------------------------------------------------------------------------------------------
namespace {
std::vector<float> read_libsvm(const std::string& path, int n_features, size_t& n) {
  std::istringstream in(quiver::read_file(path));
  std::string line;
  std::vector<float> x;
  n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string tok;
    ls >> tok;  // label
    size_t base = x.size();
    x.resize(base + static_cast<size_t>(n_features), NAN);
    while (ls >> tok) {
      auto colon = tok.find(':');
      int idx = std::stoi(tok.substr(0, colon));
      if (idx < n_features) x[base + static_cast<size_t>(idx)] = static_cast<float>(std::stod(tok.substr(colon + 1)));
    }
    ++n;
  }
  return x;
}
}  // namespace

TEST(ForestLightGBM, CategoricalCases) {
  const std::string dir = shared("lightgbm/categorical");
  json cases = json::parse(quiver::read_file(dir + "/cases.json"));
  for (const auto& cs : cases["cases"]) {
    const std::string model = dir + "/" + cs["model"].get<std::string>();
    SCOPED_TRACE(model);
    auto spec = parse_forest(quiver::read_file(model), Format::Auto, model);
    Forest f = Forest::build(spec, model);
    size_t n = 0;
    auto x = read_libsvm(dir + "/" + cs["input"].get<std::string>(), f.n_features(), n);
    std::istringstream exp(quiver::read_file(dir + "/" + cs["expected"].get<std::string>()));
    std::vector<float> margin(n * f.n_outputs());
    f.predict(x.data(), n, margin.data(), true);
    for (size_t r = 0; r < n; ++r) {
      double want;
      ASSERT_TRUE(exp >> want);
      EXPECT_TRUE(close(margin[r], want)) << "row " << r << ": got " << margin[r] << ", expected " << want;
      auto m = ref_margin(spec, &x[r * f.n_features()], 0, spec.trees.size());
      EXPECT_TRUE(close(margin[r], m[0], 1e-6, 1e-6)) << "reference walk row " << r;
      float p = f.predict_row(&x[r * f.n_features()], false);
      if (spec.transform == Transform::Sigmoid) EXPECT_NEAR(p, 1.0 / (1.0 + std::exp(-want)), 1e-6);
      else EXPECT_TRUE(close(p, want));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// TMVA (no reference predictions exist: structure + the TMVA response formula on the parsed trees)
// ---------------------------------------------------------------------------------------------
TEST(ForestTmva, CmsBTagBdts) {
  struct Case { const char* file; size_t trees; size_t vars; const char* first_var; bool grad; };
  const Case cases[] = {
      {"tmva/CombinedMVAV2_13_07_2015.weights.xml.gz", 100, 6, "Jet_CSV", true},
      {"tmva/ChargeBTag_16_1_2016.weights.xml.gz", 700, 15, "tr_ch", false},
      {"tmva/ChargeBTag_4sep_2016.weights.xml.gz", 700, 15, "tr_ch_inc", false},
  };
  for (const auto& c : cases) {
    const std::string path = shared(c.file);
    SCOPED_TRACE(path);
    auto spec = parse_forest(quiver::read_file(path), Format::Auto, path);
    Forest f = Forest::build(spec, path);
    EXPECT_EQ(f.n_trees(), c.trees);
    EXPECT_EQ(static_cast<size_t>(f.n_features()), c.vars);
    EXPECT_EQ(f.feature_names().at(0), c.first_var);
    EXPECT_LE(f.max_depth(), 3);
    EXPECT_GE(f.max_depth(), 1);
    EXPECT_EQ(f.transform(), c.grad ? Transform::TmvaGrad : Transform::Identity);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.3f, 0.5f);
    std::vector<float> row(c.vars);
    for (int r = 0; r < 200; ++r) {
      for (auto& v : row) v = nd(rng);
      if (r % 5 == 0) row[r % c.vars] = NAN;
      double F = ref_margin(spec, row.data(), 0, spec.trees.size())[0];
      float got = f.predict_row(row.data(), false);
      if (c.grad) {
        EXPECT_NEAR(got, 2.0 / (1.0 + std::exp(-2.0 * F)) - 1.0, 1e-6);
      } else {
        EXPECT_NEAR(got, F, 1e-6);
        EXPECT_LE(std::fabs(got), 1.0 + 1e-6);  // AdaBoost YesNoLeaf: normalised vote in [-1, 1]
      }
    }
  }
}
