// Quiver's forest engine vs Debian's libxgboost 1.7 (the peer), same model files, same float32 rows.
//  1. every shared XGBoost model libxgboost 1.7 can load and whose semantics it implements;
//  2. models trained here in-process by libxgboost 1.7 (gbtree, dart, random forest, categorical,
//     several objectives), saved as JSON and UBJ, compared on fresh rows with NaN, incl. round ranges.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "forest_test_util.hpp"
#include "xgb_capi.hpp"

using namespace quiver::forest;
using namespace forest_test;
using json = nlohmann::json;

namespace {

struct Stat {
  size_t values = 0;
  double max_abs = 0;
};

void compare_with_peer(xgbref::Booster& b, const Forest& f, const std::vector<float>& x, size_t n, Stat& st,
                       const std::string& what, int it_begin = 0, int it_end = 0) {
  const size_t nf = static_cast<size_t>(f.n_features());
  for (int type : {1, 0}) {
    size_t len = 0;
    const float* ref = b.predict(x.data(), n, nf, type, &len, it_begin, it_end);
    std::vector<float> peer(ref, ref + len);
    const bool margin = type == 1;
    const size_t cols = margin ? static_cast<size_t>(f.n_outputs()) : static_cast<size_t>(f.n_prediction_columns());
    ASSERT_EQ(len, n * cols) << what;
    std::vector<float> ours(n * cols);
    f.predict(x.data(), n, ours.data(), margin, it_begin, it_end == 0 ? -1 : it_end);
    for (size_t i = 0; i < len; ++i) {
      ++st.values;
      st.max_abs = std::max(st.max_abs, static_cast<double>(std::fabs(ours[i] - peer[i])));
      ASSERT_TRUE(close(ours[i], peer[i], 1e-5, 1e-6))
          << what << (margin ? " margin" : " prediction") << " [" << i / cols << "," << i % cols << "]: quiver "
          << ours[i] << " libxgboost " << peer[i];
    }
  }
}

}  // namespace

TEST(ForestVsLibXGBoost, SharedModels) {
  XGBSetGlobalConfig("{\"verbosity\": 0}");
  size_t compared = 0, skipped = 0, as_17 = 0;
  Stat st;
  for (const char* folder : {"jpmml", "categorical", "xgb17", "compat-1.0"}) {
    const std::string dir = shared(std::string("xgboost/") + folder);
    json cases = json::parse(quiver::read_file(dir + "/cases.json"));
    for (const auto& cs : cases["cases"]) {
      for (const char* key : {"model_json", "model_ubj"}) {
        if (!cs.contains(key)) continue;
        const std::string file = cs[key].get<std::string>();
        const std::string path = dir + "/" + file;
        xgbref::Booster b;
        std::string err;
        if (!b.load(path, &err)) {
          std::printf("[peer] skip %s/%s: libxgboost 1.7 cannot load it (%s)\n", folder, file.c_str(),
                      err.substr(0, err.find('\n')).c_str());
          ++skipped;
          continue;
        }
        // 3.x files: 1.7 loads them but reads the vector base_score as its default 0.5 and ignores
        // weight_drop (README). Compare with the same model under those 1.7 semantics: this checks the
        // tree walk (numeric + categorical splits, NaN directions) against libxgboost itself.
        ForestSpec spec = parse_forest(quiver::read_file(path), Format::Auto, path);
        const bool v3 = cs.contains("xgboost_version") && cs["xgboost_version"][0].get<int>() >= 2;
        if (v3) {
          const std::string obj = cs["objective"].get<std::string>();
          double b = 0.5;
          if (obj == "binary:logistic" || obj == "reg:logistic") b = 0.0;
          else if (obj == "count:poisson" || obj == "reg:gamma" || obj == "reg:tweedie" || obj == "survival:aft") b = std::log(0.5);
          spec.base_margin = {b};
          for (auto& t : spec.trees) t.weight = 1.0;
          ++as_17;
        }
        Forest f = Forest::build(spec, path);
        auto table = parse_csv(quiver::read_file(dir + "/" + cs["input"].get<std::string>()), 1);
        auto x = csv_to_features(table, f.n_features(), cs["features"].get<std::vector<std::string>>(), &f, "csv");
        compare_with_peer(b, f, x, table.rows.size(), st, path);
        ++compared;
      }
    }
  }
  std::printf("[peer] shared models: %zu compared with libxgboost 1.7 (%zu of them 3.x files under 1.7's reading: "
              "base_score 0.5, no weight_drop), %zu values, max |diff| %.3g; %zu skipped (1.7 cannot load)\n",
              compared, as_17, st.values, st.max_abs, skipped);
  EXPECT_GE(compared, 18u);
}

TEST(ForestVsLibXGBoost, ModelsTrainedInProcess) {
  XGBSetGlobalConfig("{\"verbosity\": 0}");
  struct Cfg {
    const char* name;
    std::vector<std::pair<const char*, std::string>> params;
    int n_class;
    int rounds;
    bool categorical;
  };
  const std::vector<Cfg> cfgs = {
      {"binary_depth6", {{"objective", "binary:logistic"}, {"max_depth", "6"}, {"eta", "0.3"}, {"base_score", "0.3"}}, 2, 40, false},
      {"softprob", {{"objective", "multi:softprob"}, {"num_class", "3"}, {"max_depth", "4"}}, 3, 15, false},
      {"softmax", {{"objective", "multi:softmax"}, {"num_class", "3"}, {"max_depth", "3"}}, 3, 10, false},
      {"dart", {{"booster", "dart"}, {"objective", "reg:squarederror"}, {"rate_drop", "0.3"}, {"skip_drop", "0.0"}, {"max_depth", "5"}}, 0, 20, false},
      {"random_forest", {{"objective", "reg:squarederror"}, {"num_parallel_tree", "4"}, {"subsample", "0.7"}, {"colsample_bynode", "0.7"}, {"max_depth", "5"}}, 0, 6, false},
      {"pseudohuber_lossguide", {{"objective", "reg:pseudohubererror"}, {"tree_method", "hist"}, {"grow_policy", "lossguide"}, {"max_leaves", "20"}, {"max_depth", "0"}}, 0, 20, false},
      {"logitraw", {{"objective", "binary:logitraw"}, {"max_depth", "4"}}, 2, 20, false},
      {"categorical_hist", {{"objective", "binary:logistic"}, {"tree_method", "hist"}, {"max_cat_to_onehot", "1"}, {"max_depth", "5"}}, 2, 20, true},
  };
  const size_t nf = 8, n_train = 3000, n_test = 500;
  Stat st;
  for (const auto& c : cfgs) {
    SCOPED_TRACE(c.name);
    std::vector<float> x, y, xt, yt;
    xgbref::synthetic(n_train, nf, 0.1, 11, x, y, c.n_class);
    xgbref::synthetic(n_test, nf, 0.15, 12, xt, yt, c.n_class);
    if (c.categorical)  // feature 0 becomes a category code 0..11 (some NaN)
      for (auto* v : {&x, &xt})
        for (size_t r = 0; r < v->size() / nf; ++r)
          if (!std::isnan((*v)[r * nf])) (*v)[r * nf] = static_cast<float>(static_cast<int>(std::fabs((*v)[r * nf]) * 5) % 12);
    xgbref::DMatrix d(x, n_train, nf, &y);
    if (c.categorical) d.set_feature_types({"c", "q", "q", "q", "q", "q", "q", "q"});
    xgbref::Booster b(d.h);
    b.set("nthread", "1");
    b.set("seed", "3");
    for (auto& [k, v] : c.params) b.set(k, v);
    b.train(d.h, c.rounds);
    for (const char* ext : {".json", ".ubj"}) {
      const std::string path = (std::filesystem::temp_directory_path() /
                                (std::string("quiver_peer_") + std::to_string(::getpid()) + "_" + c.name + ext)).string();
      b.save(path);
      xgbref::Booster loaded;
      std::string err;
      ASSERT_TRUE(loaded.load(path, &err)) << err;
      Forest f = load_forest(path);
      compare_with_peer(loaded, f, xt, n_test, st, path);
      if (std::string(c.name) != "dart") compare_with_peer(loaded, f, xt, n_test, st, path + " rounds [2,5)", 2, 5);
      std::filesystem::remove(path);
    }
  }
  std::printf("[peer] %zu in-process models x {json, ubj}: %zu values, max |diff| %.3g\n", cfgs.size(), st.values, st.max_abs);
}
