// Unit tests: flat-array builder (ONNX-style modes), bad input, CSV mode, Model interface, memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "forest_test_util.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/error.hpp"
#include "quiver/forest/csv.hpp"

using namespace quiver::forest;
using namespace forest_test;
using quiver::Error;
using quiver::ErrorCode;

namespace {

// Expects `fn` to throw quiver::Error whose text contains every string in `needles`.
template <class F>
void expect_error(F&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' not in: " << what;
  }
}

std::string tmp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("quiver_forest_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// A stump: feature f, mode, threshold -> leaves (true: 1, false: 2)
ForestSpec stump(SplitMode m, double thr, bool dl) {
  ForestSpec s;
  s.n_features = 2;
  TreeArrays t;
  int32_t root = t.add_split(1, thr, m, dl);
  int32_t a = t.add_leaf(1.0), b = t.add_leaf(2.0);
  t.left[root] = a;
  t.right[root] = b;
  s.trees.push_back(t);
  return s;
}

}  // namespace

TEST(ForestBuilder, OnnxModesExactOnFloat32) {
  // threshold 0.1 is not a float: x <= 0.1 holds for float(0.1)? float(0.1) = 0.100000001 > 0.1 -> false.
  const float f01 = 0.1f, below = std::nextafter(f01, 0.0f);
  struct C { SplitMode m; double thr; float x; double want; };
  const C cases[] = {
      {SplitMode::LEQ, 0.1, below, 1}, {SplitMode::LEQ, 0.1, f01, 2},  {SplitMode::LT, 0.1, below, 1},
      {SplitMode::LT, 0.1, f01, 2},    {SplitMode::GT, 0.1, f01, 1},   {SplitMode::GT, 0.1, below, 2},
      {SplitMode::GTE, 0.1, f01, 1},   {SplitMode::GTE, 0.1, below, 2}, {SplitMode::EQ, 2.5, 2.5f, 1},
      {SplitMode::EQ, 2.5, 2.0f, 2},   {SplitMode::NEQ, 2.5, 2.5f, 2}, {SplitMode::NEQ, 2.5, 3.0f, 1},
      {SplitMode::LEQ, 3.0, 3.0f, 1},  {SplitMode::LT, 3.0, 3.0f, 2},  {SplitMode::GTE, 3.0, 3.0f, 1},
      {SplitMode::LEQ, 1e300, 3e38f, 1},
  };
  for (const auto& c : cases) {
    Forest f = Forest::build(stump(c.m, c.thr, false));
    float row[2] = {0.0f, c.x};
    EXPECT_EQ(f.predict_row(row, true), c.want) << split_mode_name(c.m) << " " << c.thr << " x=" << c.x;
  }
  // NaN follows default_left (missing tracks the true branch)
  for (auto m : {SplitMode::LEQ, SplitMode::LT, SplitMode::GT, SplitMode::GTE, SplitMode::EQ, SplitMode::NEQ}) {
    for (bool dl : {false, true}) {
      Forest f = Forest::build(stump(m, 0.5, dl));
      float row[2] = {0.0f, NAN};
      EXPECT_EQ(f.predict_row(row, true), dl ? 1.0f : 2.0f) << split_mode_name(m) << " dl=" << dl;
    }
  }
  EXPECT_EQ(split_mode_from_onnx("BRANCH_GTE"), SplitMode::GTE);
  expect_error([] { split_mode_from_onnx("BRANCH_XX"); }, {"BRANCH_XX"});
}

TEST(ForestBuilder, VectorLeavesAveragingAndRandomAgreement) {
  // Random deep trees with vector leaves (ONNX classifier style) vs the reference walk.
  std::mt19937 rng(1);
  ForestSpec s;
  s.n_features = 5;
  s.n_outputs = 3;
  s.base_margin = {0.5, -0.5, 0.25};
  s.average = true;
  s.transform = Transform::Softmax;
  std::uniform_real_distribution<double> u(-1, 1);
  for (int t = 0; t < 23; ++t) {
    TreeArrays tr;
    tr.leaf_width = 3;
    std::function<int32_t(int)> grow = [&](int depth) -> int32_t {
      if (depth >= 1 + static_cast<int>(rng() % 7)) {
        int32_t id = tr.add_leaf(0);
        for (int k = 0; k < 3; ++k) tr.leaf_value[id * 3 + k] = (k == t % 3 && t % 2) ? 0.0 : u(rng);
        return id;
      }
      SplitMode modes[] = {SplitMode::LT, SplitMode::LEQ, SplitMode::GT, SplitMode::GTE};
      int32_t id = tr.add_split(static_cast<int32_t>(rng() % 5), u(rng), modes[rng() % 4], rng() % 2);
      int32_t l = grow(depth + 1), r = grow(depth + 1);
      tr.left[id] = l;
      tr.right[id] = r;
      return id;
    };
    grow(0);
    s.trees.push_back(tr);
  }
  Forest f = Forest::build(s);
  EXPECT_EQ(f.n_outputs(), 3);
  std::vector<float> rows(64 * 5);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = (i % 7 == 3) ? NAN : static_cast<float>(u(rng));
  std::vector<float> m(64 * 3), p(64 * 3);
  f.predict_both(rows.data(), 64, m.data(), p.data());
  for (int r = 0; r < 64; ++r) {
    auto want = ref_margin(s, &rows[r * 5], 0, s.trees.size());
    double sum = 0;
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(m[r * 3 + k], want[k], 1e-5) << "row " << r;
      sum += p[r * 3 + k];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

TEST(ForestBuilder, RejectsBadTreesNamingTreeAndNode) {
  auto s = stump(SplitMode::LT, 1.0, false);
  s.trees[0].feature[0] = 7;
  expect_error([&] { Forest::build(s, "m.onnx"); }, {"m.onnx", "tree 0", "node 0", "feature 7"});
  s = stump(SplitMode::LT, 1.0, false);
  s.trees[0].left[0] = 0;  // cycle
  expect_error([&] { Forest::build(s, "m.onnx"); }, {"tree 0", "node 0"});
  s = stump(SplitMode::LT, 1.0, false);
  s.trees[0].right[0] = 99;
  expect_error([&] { Forest::build(s); }, {"tree 0", "node 0", "99"});
  s = stump(SplitMode::LT, NAN, false);
  expect_error([&] { Forest::build(s); }, {"NaN"});
  s = stump(SplitMode::LT, 1.0, false);
  s.trees[0].output = 3;
  expect_error([&] { Forest::build(s); }, {"output 3"});
}

TEST(ForestBuilder, RowPathBatchPathAndRoundsAgree) {
  auto spec = parse_forest(quiver::read_file(shared("xgboost/xgb17/BinaryLogisticAudit17.json")), Format::Auto, "x");
  Forest f = Forest::build(spec);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(50, 30);
  const size_t n = 1000;
  std::vector<float> rows(n * 4);
  for (auto& v : rows) v = (rng() % 10 == 0) ? NAN : nd(rng);
  std::vector<float> batch(n);
  f.predict(rows.data(), n, batch.data(), false);
  for (size_t r = 0; r < n; ++r) EXPECT_TRUE(close(f.predict_row(&rows[r * 4]), batch[r], 1e-6, 1e-7)) << r;
  // the batch kernels (8 rows at a time + remainder rows) agree with one-row calls for every batch size
  for (size_t m : {1, 7, 8, 9, 17, 300}) {
    std::vector<float> part(m);
    f.predict(rows.data(), m, part.data(), false);
    for (size_t r = 0; r < m; ++r) EXPECT_TRUE(close(part[r], batch[r], 1e-6, 1e-7)) << m << " " << r;
  }
  // rounds [0, 10) + [10, 60) margins add up (minus one base margin)
  std::vector<float> a(n), b(n), all(n);
  f.predict(rows.data(), n, a.data(), true, 0, 10);
  f.predict(rows.data(), n, b.data(), true, 10, -1);
  f.predict(rows.data(), n, all.data(), true);
  for (size_t r = 0; r < n; ++r) EXPECT_NEAR(a[r] + b[r] - f.base_margin()[0], all[r], 1e-5);
  expect_error([&] { f.predict(rows.data(), 1, a.data(), true, 5, 999); }, {"round range", "999"});
}

// ---------------------------------------------------------------------------------------------
// bad files: clear errors naming file and position, never a crash
// ---------------------------------------------------------------------------------------------
TEST(ForestBadInput, MalformedFiles) {
  const std::string good = quiver::read_file(shared("xgboost/xgb17/RegressionAutoNA17.json"));
  expect_error([&] { parse_xgboost_json(good.substr(0, good.size() / 2), "trunc.json"); }, {"trunc.json", "malformed JSON"});
  std::string bad_obj = good;
  bad_obj.replace(bad_obj.find("reg:squarederror"), 16, "reg:whatever0000");
  expect_error([&] { parse_xgboost_json(bad_obj, "obj.json"); }, {"obj.json", "unknown XGBoost objective", "reg:whatever0000"});
  std::string bad_feat = good;
  size_t p = bad_feat.find("\"split_indices\":[");
  ASSERT_NE(p, std::string::npos);
  bad_feat.replace(p + 17, 1, "9");  // first split of tree 0 -> feature 9x (out of range)
  expect_error([&] { Forest::build(parse_xgboost_json(bad_feat, "feat.json"), "feat.json"); },
               {"feat.json", "tree 0", "node 0", "out of range"});
  const std::string ubj = quiver::read_file(shared("xgboost/xgb17/RegressionAutoNA17.ubj"));
  expect_error([&] { parse_xgboost_ubj(ubj.substr(0, ubj.size() - 100), "t.ubj"); }, {"t.ubj", "UBJSON"});
  expect_error([&] { parse_xgboost_json("{\"learner\": 3}", "x.json"); }, {"x.json"});
  expect_error([&] { parse_xgboost_json("[]", "x.json"); }, {"x.json", "learner"});

  // LightGBM: child out of range, non-numeric value
  std::string lgb = quiver::read_file(shared("lightgbm/categorical/toy_categorical/toy_categorical_model.txt"));
  std::string l1 = lgb;
  l1.replace(l1.find("right_child=1 -3"), 16, "right_child=5 -3");
  expect_error([&] { Forest::build(parse_lightgbm(l1, "lgb.txt"), "lgb.txt"); }, {"lgb.txt", "Tree=0", "node 0"});
  std::string l2 = lgb;
  l2.replace(l2.find("leaf_value=-8.8"), 15, "leaf_value=abc8");
  expect_error([&] { parse_lightgbm(l2, "lgb.txt"); }, {"lgb.txt", "Tree=0", "not a number"});

  // TMVA: malformed XML, corrupt gzip, IVar out of range
  const std::string gz = quiver::read_file(shared("tmva/CombinedMVAV2_13_07_2015.weights.xml.gz"));
  expect_error([&] { parse_tmva_xml(gz.substr(0, gz.size() / 2), "b.xml.gz"); }, {"b.xml.gz", "gzip"});
  expect_error([&] { parse_tmva_xml("<MethodSetup Method=\"BDT::x\"><Weights><BinaryTree>", "b.xml"); }, {"b.xml", "XML"});
  std::string xml = R"(<MethodSetup Method="BDT::bdt"><Options><Option name="BoostType">Grad</Option></Options>
<Variables NVar="1"><Variable VarIndex="0" Expression="a"/></Variables><Weights>
<BinaryTree boostWeight="1" itree="0"><Node pos="s" IVar="4" Cut="0.5" cType="1" res="0" nType="0">
<Node pos="l" IVar="-1" Cut="0" cType="1" res="1" nType="1"/><Node pos="r" IVar="-1" Cut="0" cType="1" res="-1" nType="-1"/>
</Node></BinaryTree></Weights></MethodSetup>)";
  expect_error([&] { parse_tmva_xml(xml, "v.xml"); }, {"v.xml", "tree 0", "node 0", "IVar 4"});
  std::string ok = xml;
  ok.replace(ok.find("IVar=\"4\""), 8, "IVar=\"0\"");
  Forest f = Forest::build(parse_tmva_xml(ok, "v.xml"));
  float lo = 0.25f, hi = 0.75f, mid = 0.5f;
  EXPECT_NEAR(f.predict_row(&lo, true), 1.0, 1e-7);   // x < cut -> left
  EXPECT_NEAR(f.predict_row(&mid, true), -1.0, 1e-7);  // x >= cut -> right (cType 1)
  EXPECT_NEAR(f.predict_row(&hi, false), 2.0 / (1.0 + std::exp(2.0)) - 1.0, 1e-6);
  expect_error([&] { parse_forest("hello world", Format::Auto, "x.bin"); }, {"x.bin", "not a recognised"});
}

TEST(ForestBadInput, ModelRunWrongWidthAndDtype) {
  auto m = ForestModel::load(shared("xgboost/xgb17/RegressionAutoNA17.ubj"));
  std::vector<float> x(3 * 6, 1.0f);
  const int64_t dims[2] = {3, 6};
  std::vector<quiver::Tensor> in{quiver::Tensor::view(quiver::DType::F32, dims, x.data())};
  expect_error([&] { m->run_once(in); }, {"input", "7"});
  std::vector<double> xd(3 * 7, 1.0);
  const int64_t d7[2] = {3, 7};
  std::vector<quiver::Tensor> in2{quiver::Tensor::view(quiver::DType::F64, d7, xd.data())};
  expect_error([&] { m->run_once(in2); }, {"input", "dtype"});
}

// ---------------------------------------------------------------------------------------------
// Model interface, registry, describe, memory
// ---------------------------------------------------------------------------------------------
TEST(ForestModel, RegistryLoadsEveryFormatAndRuns) {
  const std::pair<std::string, std::string> files[] = {
      {"xgboost/xgb17/SoftmaxIrisNA17.json", "xgboost-json"},
      {"xgboost/xgb17/SoftmaxIrisNA17.ubj", "xgboost-ubj"},
      {"lightgbm/categorical/toy_categorical/toy_categorical_model.txt", "lightgbm"},
      {"tmva/ChargeBTag_16_1_2016.weights.xml.gz", "tmva-xml"},
  };
  for (const auto& [rel, fmt] : files) {
    auto m = quiver::load_model(shared(rel));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->info().backend, "forest");
    EXPECT_EQ(m->info().format, fmt);
    EXPECT_FALSE(m->info().sha256.empty());
    std::ostringstream os;
    m->describe(os);
    EXPECT_NE(os.str().find("trees:"), std::string::npos) << os.str();
    EXPECT_NE(os.str().find("max depth:"), std::string::npos);
    const auto& in = m->info().inputs.at(0);
    const int64_t nf = in.shape.at(1).value;
    std::vector<float> x(static_cast<size_t>(5 * nf), 0.5f);
    const int64_t dims[2] = {5, nf};
    std::vector<quiver::Tensor> inputs{quiver::Tensor::view(quiver::DType::F32, dims, x.data())};
    auto state = m->make_state();
    std::vector<quiver::Tensor> outs;
    m->run(inputs, outs, *state);
    m->run(inputs, outs, *state);  // storage reuse
    ASSERT_EQ(outs.size(), 2u);
    EXPECT_EQ(outs[0].dim(0), 5);
    EXPECT_EQ(outs[1].dim(0), 5);
    auto* fm = dynamic_cast<const ForestModel*>(m.get());
    ASSERT_TRUE(fm);
    std::vector<float> direct(static_cast<size_t>(5 * fm->forest().n_prediction_columns()));
    fm->predict(x.data(), 5, direct.data(), false);
    for (size_t i = 0; i < direct.size(); ++i) EXPECT_EQ(direct[i], outs[0].data<float>()[i]);
  }
  // softmax (multi:softmax): prediction = class index, margin has 3 columns
  auto m = quiver::load_model(shared("xgboost/xgb17/SoftmaxIrisNA17.json"));
  EXPECT_EQ(m->info().outputs[0].shape[1].value, 1);
  EXPECT_EQ(m->info().outputs[1].shape[1].value, 3);
}

TEST(ForestModel, BestIterationParameter) {
  quiver::LoadOptions o;
  o.params["use_best_iteration"] = "1";
  auto m = ForestModel::load(shared("xgboost/categorical/LinearRegressionAuto.json"), o);
  EXPECT_EQ(m->forest().default_rounds().second, 25);
  o.params = {{"round_end", "11"}};
  EXPECT_EQ(ForestModel::load(shared("xgboost/categorical/LinearRegressionAuto.json"), o)->forest().default_rounds().second, 11);
  o.params = {{"use_best_iteration", "1"}};
  expect_error([&] { ForestModel::load(shared("xgboost/compat-1.0/xgboost-1.0.0rc1.reg.json"), o); }, {"best_iteration"});
  o.params = {{"round_end", "x"}};
  expect_error([&] { ForestModel::load(shared("xgboost/categorical/LinearRegressionAuto.json"), o); }, {"round_end"});
}

TEST(ForestModel, MemoryWithinOneAndAHalfNodeArrays) {
  for (const char* rel : {"xgboost/categorical/MultiRandomForestAutoNA.json", "tmva/ChargeBTag_4sep_2016.weights.xml.gz",
                          "xgboost/xgb17/PoissonVisitNA17.ubj"}) {
    Forest f = load_forest(shared(rel));
    EXPECT_LE(static_cast<double>(f.memory_bytes()), 1.5 * static_cast<double>(f.node_bytes()))
        << rel << ": " << f.memory_bytes() << " bytes for " << f.node_bytes() << " node bytes";
  }
}

// ---------------------------------------------------------------------------------------------
// CSV mode
// ---------------------------------------------------------------------------------------------
TEST(ForestCsv, InferCsvMatchesExpectedMarginsAndPredictions) {
  auto m = ForestModel::load(shared("xgboost/xgb17/PoissonVisitNA17.json"));
  const std::string out_m = tmp_path("margin.csv"), out_p = tmp_path("pred.csv");
  std::ostringstream log;
  size_t n = infer_csv(*m, shared("xgboost/xgb17/data/VisitNA.csv"), out_m, true, log);
  EXPECT_GT(n, 100u);
  infer_csv(*m, shared("xgboost/xgb17/data/VisitNA.csv"), out_p, false, log);
  Columns got_m = read_columns(out_m), got_p = read_columns(out_p);
  Columns want = read_columns(shared("xgboost/xgb17/expected/PoissonVisitNA17.csv"));
  ASSERT_EQ(got_m.names, std::vector<std::string>{"margin"});
  ASSERT_EQ(got_p.names, std::vector<std::string>{"prediction"});
  ASSERT_EQ(got_m.values[0].size(), want.values[0].size());
  for (size_t r = 0; r < n; ++r) {
    EXPECT_TRUE(close(got_m.values[0][r], want.values[want.col("margin")][r])) << r;
    EXPECT_TRUE(close(got_p.values[0][r], want.values[want.col("prediction")][r])) << r;
  }
  // to a stream, categorical strings mapped through the model's category names
  auto mc = ForestModel::load(shared("xgboost/categorical/MultinomialClassificationAudit.ubj"));
  std::ostringstream os;
  size_t n2 = infer_csv(*mc, shared("xgboost/categorical/data/Audit.csv"), "", false, os);
  auto t = parse_csv(os.str(), 1);
  ASSERT_EQ(t.rows.size(), n2);
  EXPECT_EQ(t.header, (std::vector<std::string>{"prediction_0", "prediction_1"}));
  Columns want2 = read_columns(shared("xgboost/categorical/expected/MultinomialClassificationAudit.csv"));
  for (size_t r = 0; r < n2; ++r) EXPECT_NEAR(std::stod(t.rows[r][1]), want2.values[want2.col("probability(1)")][r], 1e-6);
}

TEST(ForestCsv, PositionalHeaderlessAndErrors) {
  auto m = ForestModel::load(shared("xgboost/compat-1.0/xgboost-1.0.0rc1.reg.json"));  // no feature names
  const std::string in = tmp_path("pos.csv");
  quiver::write_file(in, "0.5,NA,1.5,-2\n1,2,3,4\n,,,\n");
  std::ostringstream os;
  EXPECT_EQ(infer_csv(*m, in, "", true, os), 3u);
  auto t = parse_csv(os.str(), 1);
  std::vector<float> rows = {0.5f, NAN, 1.5f, -2.0f, 1, 2, 3, 4, NAN, NAN, NAN, NAN};
  for (int r = 0; r < 3; ++r)
    EXPECT_NEAR(std::stod(t.rows[r][0]), m->forest().predict_row(&rows[r * 4], true), 1e-6);
  quiver::write_file(in, "f0,f1,f2,f3\n0.5,NA,1.5,-2\n");
  std::ostringstream os2;
  EXPECT_EQ(infer_csv(*m, in, "", true, os2), 1u);
  quiver::write_file(in, "0.5,1,2\n");
  expect_error([&] { std::ostringstream o; infer_csv(*m, in, "", true, o); }, {in, "3 fields", "4 features"});
  quiver::write_file(in, "0.5,1,2,3\n1,2,x3,4\n");
  expect_error([&] { std::ostringstream o; infer_csv(*m, in, "", true, o); }, {in, "x3"});
  auto named = ForestModel::load(shared("xgboost/xgb17/RegressionAutoNA17.json"));
  quiver::write_file(in, "cylinders,weight\n4,3000\n");
  expect_error([&] { std::ostringstream o; infer_csv(*named, in, "", true, o); }, {in, "displacement"});
  // quoted fields and CRLF
  auto q = parse_csv("\"a,b\",c\r\n\"x \"\"y\"\"\",2\r\n", 1);
  ASSERT_EQ(q.rows.size(), 1u);
  EXPECT_EQ(q.header[0], "a,b");
  EXPECT_EQ(q.rows[0][0], "x \"y\"");
}

// LightGBM numeric splits: x <= threshold (double), missing types None (NaN -> 0), NaN, Zero; sigmoid:2.
TEST(ForestLightGBM, NumericMissingTypesByHand) {
  const std::string model = R"(tree
version=v3
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:2
feature_names=a b
feature_infos=[0:1] [-2:2]
tree_sizes=1

Tree=0
num_leaves=4
num_cat=0
split_feature=0 1 1
split_gain=1 1 1
threshold=0.5 -1 1.0000000000000002
decision_type=0 10 4
left_child=1 -1 -3
right_child=2 -2 -4
leaf_value=1 2 3 4
leaf_count=1 1 1 1
internal_value=0 0 0
internal_count=4 2 2
shrinkage=1


end of trees
)";
  Forest f = Forest::build(parse_lightgbm(model, "hand.txt"), "hand.txt");
  EXPECT_EQ(f.feature_names(), (std::vector<std::string>{"a", "b"}));
  struct C { float a, b, want; };
  const float above1 = std::nextafter(1.0f, 2.0f);
  const C cases[] = {{NAN, NAN, 1}, {0.7f, 0.0f, 4}, {0.7f, 1.0f, 3}, {0.7f, above1, 4}, {0.7f, NAN, 4},
                     {0.5f, -1.0f, 1}, {0.5f, -0.5f, 2}, {0.7f, -1e-36f, 4}, {0.7f, 0.25f, 3}};
  for (const auto& c : cases) {
    float row[2] = {c.a, c.b};
    EXPECT_EQ(f.predict_row(row, true), c.want) << "a=" << c.a << " b=" << c.b;
    EXPECT_NEAR(f.predict_row(row, false), 1.0 / (1.0 + std::exp(-2.0 * c.want)), 1e-7);
  }
}

// TMVA node test: right iff (x >= Cut) == (cType == 1); NaN compares false. AdaBoost + YesNoLeaf:
// sum(w * nType) / sum(w).
TEST(ForestTmva, CutTypesAndAdaBoostByHand) {
  const std::string xml = R"(
   <?xml version="1.0"?>
<MethodSetup Method="BDT::BDT"><GeneralInfo><Info name="AnalysisType" value="Classification"/></GeneralInfo>
<Options><Option name="BoostType" modified="Yes">AdaBoost</Option><Option name="UseYesNoLeaf" modified="No">True</Option></Options>
<Variables NVar="2"><Variable VarIndex="0" Expression="a" Label="a"/><Variable VarIndex="1" Expression="b/c" Label="b"/></Variables>
<Weights NTrees="2" AnalysisType="0">
<BinaryTree type="DecisionTree" boostWeight="0.75" itree="0"><Node pos="s" depth="0" NCoef="0" IVar="0" Cut="0.1" cType="0" res="-99" purity="0.5" nType="0">
<Node pos="l" depth="1" NCoef="0" IVar="-1" Cut="0" cType="1" res="-99" purity="0.8" nType="1"/>
<Node pos="r" depth="1" NCoef="0" IVar="-1" Cut="0" cType="1" res="-99" purity="0.2" nType="-1"/></Node></BinaryTree>
<BinaryTree type="DecisionTree" boostWeight="0.25" itree="1"><Node pos="s" depth="0" NCoef="0" IVar="1" Cut="2" cType="1" res="-99" purity="0.5" nType="0">
<Node pos="l" depth="1" NCoef="0" IVar="-1" Cut="0" cType="1" res="-99" purity="0.3" nType="-1"/>
<Node pos="r" depth="1" NCoef="0" IVar="-1" Cut="0" cType="1" res="-99" purity="0.9" nType="1"/></Node></BinaryTree>
</Weights></MethodSetup>)";
  Forest f = Forest::build(parse_tmva_xml(xml, "hand.xml"), "hand.xml");
  EXPECT_EQ(f.feature_names()[1], "b/c");
  // tree 0 (cType 0): right iff a < 0.1 (0.1 is not a float: a = float(0.1) > 0.1 goes left); NaN -> right
  // tree 1 (cType 1): right iff b >= 2; NaN -> left
  struct C { float a, b; double want; };
  const float a01 = 0.1f;  // 0.100000001 > 0.1
  const C cases[] = {{0.5f, 3.0f, 0.75 * 1 + 0.25 * 1}, {0.0f, 3.0f, -0.75 + 0.25}, {a01, 1.0f, 0.75 - 0.25},
                     {std::nextafter(a01, 0.0f), 2.0f, -0.75 + 0.25}, {NAN, NAN, -0.75 - 0.25}};
  for (const auto& c : cases) {
    float row[2] = {c.a, c.b};
    EXPECT_NEAR(f.predict_row(row, false), c.want, 1e-7) << "a=" << c.a << " b=" << c.b;
  }
}
