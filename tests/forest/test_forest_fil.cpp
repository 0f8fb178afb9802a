// The forest model's Triton FIL interface ("interface" = "triton_fil"): tensor names, and the
// output_class / predict_proba / threshold semantics, checked against the shared expected predictions.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "forest_test_util.hpp"
#include "quiver/core/error.hpp"

using namespace quiver;
using namespace quiver::forest;
using namespace forest_test;
using json = nlohmann::json;

namespace {

struct Case {
  std::string model_path;
  std::vector<float> x;  // n x features
  size_t n = 0;
  Columns expected;
};

Case load_case(const std::string& folder, const std::string& name) {
  const std::string dir = shared("xgboost/" + folder);
  json cases = json::parse(read_file(dir + "/cases.json"));
  for (const auto& cs : cases["cases"]) {
    if (cs["name"] != name) continue;
    Case c;
    c.model_path = dir + "/" + cs["model_json"].get<std::string>();
    Forest f = load_forest(c.model_path);
    auto table = parse_csv(read_file(dir + "/" + cs["input"].get<std::string>()), 1);
    c.x = csv_to_features(table, f.n_features(), cs["features"].get<std::vector<std::string>>(), &f,
                          cs["input"].get<std::string>());
    c.n = table.rows.size();
    c.expected = read_columns(dir + "/" + cs["expected"][0]["file"].get<std::string>());
    return c;
  }
  throw std::runtime_error("no case " + name + " in " + folder);
}

std::shared_ptr<const ForestModel> fil_model(const Case& c, std::map<std::string, std::string> params) {
  LoadOptions lo;
  lo.params = std::move(params);
  lo.params["interface"] = "triton_fil";
  return ForestModel::load(c.model_path, lo);
}

// Runs the model on all rows; returns output__0 and checks its shape is [n, cols].
std::vector<float> run_fil(const Model& m, const Case& c, int64_t cols) {
  const int64_t nf = static_cast<int64_t>(c.x.size() / c.n);
  Tensor in = Tensor::from_vector(std::vector<float>(c.x), {static_cast<int64_t>(c.n), nf});
  auto out = m.run_named({{"input__0", std::move(in)}});
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{static_cast<int64_t>(c.n), cols}));
  const float* p = out[0].data<float>();
  return {p, p + out[0].numel()};
}

}  // namespace

TEST(ForestFil, NamesAndShapesFollowTheParameters) {
  Case c = load_case("xgb17", "BinaryLogisticAudit17");
  auto m = fil_model(c, {});
  ASSERT_EQ(m->info().inputs.size(), 1u);
  EXPECT_EQ(m->info().inputs[0].name, "input__0");
  ASSERT_EQ(m->info().outputs.size(), 1u);
  EXPECT_EQ(m->info().outputs[0].name, "output__0");
  EXPECT_EQ(m->info().outputs[0].shape[1].value, 1);
  // Quiver's own interface is unchanged without the parameter.
  auto native = ForestModel::load(c.model_path);
  EXPECT_EQ(native->info().inputs[0].name, "input");
  EXPECT_EQ(native->info().outputs.size(), 2u);
  // the multiclass shapes: classes with predict_proba, one column for the class id
  Case iris = load_case("jpmml", "MultinomialClassificationIris");
  EXPECT_EQ(fil_model(iris, {{"output_class", "true"}, {"predict_proba", "true"}})->info().outputs[0].shape[1].value, 3);
  EXPECT_EQ(fil_model(iris, {{"output_class", "true"}})->info().outputs[0].shape[1].value, 1);
  // the old input name is refused with the name the model has
  Tensor in = Tensor::from_vector(std::vector<float>(c.x.begin(), c.x.begin() + 4), {1, 4});
  try {
    m->run_named({{"input", in}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input"), std::string::npos) << e.what();
  }
}

TEST(ForestFil, BinaryProbabilityClassAndThreshold) {
  Case c = load_case("xgb17", "BinaryLogisticAudit17");
  const auto& want = c.expected.values[c.expected.col("prediction")];
  auto proba = run_fil(*fil_model(c, {{"output_class", "true"}, {"predict_proba", "true"}}), c, 1);
  auto cls = run_fil(*fil_model(c, {{"output_class", "true"}}), c, 1);
  auto cls03 = run_fil(*fil_model(c, {{"output_class", "true"}, {"threshold", "0.3"}}), c, 1);
  auto alias = run_fil(*fil_model(c, {{"is_classifier", "true"}}), c, 1);
  size_t ones = 0, ones03 = 0;
  for (size_t r = 0; r < c.n; ++r) {
    EXPECT_TRUE(close(proba[r], want[r])) << "row " << r << ": " << proba[r] << " vs " << want[r];
    EXPECT_EQ(cls[r], proba[r] > 0.5f ? 1.0f : 0.0f) << "row " << r;
    EXPECT_EQ(cls03[r], proba[r] > 0.3f ? 1.0f : 0.0f) << "row " << r;
    EXPECT_EQ(alias[r], cls[r]) << "row " << r;
    ones += cls[r] == 1.0f;
    ones03 += cls03[r] == 1.0f;
  }
  // both classes occur, and a lower threshold says "yes" more often
  EXPECT_GT(ones, 0u);
  EXPECT_LT(ones, c.n);
  EXPECT_GT(ones03, ones);
}

TEST(ForestFil, MulticlassProbabilitiesAndArgmax) {
  Case c = load_case("jpmml", "MultinomialClassificationIris");
  auto proba = run_fil(*fil_model(c, {{"output_class", "true"}, {"predict_proba", "true"}}), c, 3);
  auto cls = run_fil(*fil_model(c, {{"output_class", "true"}}), c, 1);
  const auto& target = c.expected.values[c.expected.col("_target")];
  std::set<float> seen;
  for (size_t r = 0; r < c.n; ++r) {
    for (int k = 0; k < 3; ++k) {
      const double w = c.expected.values[c.expected.col("probability(" + std::to_string(k) + ")")][r];
      EXPECT_TRUE(close(proba[r * 3 + k], w)) << "row " << r << " class " << k;
    }
    EXPECT_EQ(cls[r], static_cast<float>(target[r])) << "row " << r;
    seen.insert(cls[r]);
  }
  EXPECT_EQ(seen.size(), 3u);
}

TEST(ForestFil, SoftmaxObjectiveGivesClassOrScores) {
  // multi:softmax predicts the class itself; predict_proba asks for the scores behind it.
  Case c = load_case("xgb17", "SoftmaxIrisNA17");
  auto cls = run_fil(*fil_model(c, {{"output_class", "true"}}), c, 1);
  auto proba = run_fil(*fil_model(c, {{"output_class", "true"}, {"predict_proba", "true"}}), c, 3);
  for (size_t r = 0; r < c.n; ++r) {
    EXPECT_EQ(cls[r], static_cast<float>(c.expected.values[c.expected.col("prediction")][r])) << "row " << r;
    double m[3], mx = -1e300, sum = 0;
    for (int k = 0; k < 3; ++k) mx = std::max(mx, m[k] = c.expected.values[c.expected.col("margin_" + std::to_string(k))][r]);
    for (double v : m) sum += std::exp(v - mx);
    float psum = 0;
    for (int k = 0; k < 3; ++k) {
      EXPECT_TRUE(close(proba[r * 3 + k], std::exp(m[k] - mx) / sum)) << "row " << r << " class " << k;
      psum += proba[r * 3 + k];
    }
    EXPECT_NEAR(psum, 1.0f, 1e-5f);
  }
}

TEST(ForestFil, RegressionReturnsThePrediction) {
  Case c = load_case("xgb17", "RegressionAutoNA17");
  auto y = run_fil(*fil_model(c, {{"output_class", "false"}}), c, 1);
  const auto& want = c.expected.values[c.expected.col("prediction")];
  for (size_t r = 0; r < c.n; ++r) EXPECT_TRUE(close(y[r], want[r])) << "row " << r;
}

TEST(ForestFil, BadParametersAreNamed) {
  Case c = load_case("xgb17", "BinaryLogisticAudit17");
  struct Bad {
    std::map<std::string, std::string> params;
    std::string key;
  };
  const Bad bad[] = {{{{"output_class", "yes"}}, "output_class"},
                     {{{"predict_proba", ""}}, "predict_proba"},
                     {{{"threshold", "half"}}, "threshold"},
                     {{{"threshold", "nan"}}, "threshold"}};
  for (const auto& b : bad) {
    try {
      fil_model(c, b.params);
      ADD_FAILURE() << "no error for " << b.key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find(b.key), std::string::npos) << e.what();
      EXPECT_EQ(e.where().file, c.model_path);
    }
  }
  LoadOptions lo;
  lo.params["interface"] = "tensorrt";
  EXPECT_THROW(ForestModel::load(c.model_path, lo), Error);
}
