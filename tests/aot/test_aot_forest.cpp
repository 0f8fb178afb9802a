// quiver compile of tree ensembles: every format the forest backend loads (XGBoost JSON and UBJ,
// LightGBM text, TMVA XML) compiled, built with the plain C++ compiler, loaded by the aot backend and
// checked against the shared manifests' expected predictions (cases.json, as tests/forest does for the
// engine), against the engine on rows that take every kind of branch, from two threads, and with
// ldd showing the C/C++ runtime only; and ONNX models with TreeEnsemble nodes.
//
// QUIVER_AOT_FOREST_FOLDERS (environment, comma-separated XGBoost folders) picks the manifests; the
// default is the CTest subset, label aot_all runs every folder.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "../forest/forest_expected.hpp"
#include "aot_test_util.hpp"
#include "forest/codegen.hpp"
#include "onnx/graph_builder.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/error.hpp"
#include "quiver/forest/csv.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/testing.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using nlohmann::json;

namespace {

fs::path out_root() { return fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out" / "forest"; }

std::string ident(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

// Compiles, builds and loads `path` with load parameters `params`.
std::shared_ptr<const Model> compile_forest(const std::string& path, const std::string& name,
                                           const std::map<std::string, std::string>& params = {},
                                           std::string* lib_path = nullptr) {
  aot::CompileOptions o;
  o.name = ident(name);
  o.params = params;
  const aot::CompileResult r = aot::compile_model(path, (out_root() / o.name).string(), o);
  const std::string lib = aot::build_shared(r, aot_test::compiler());
  if (lib_path) *lib_path = lib;
  return aot::load_library(lib);
}

std::vector<std::string> folders_under_test() {
  const char* env = std::getenv("QUIVER_AOT_FOREST_FOLDERS");
  std::stringstream ss(env && *env ? env : "jpmml,xgb17");
  std::vector<std::string> r;
  for (std::string f; std::getline(ss, f, ',');)
    if (!f.empty()) r.push_back(f);
  return r;
}

// One XGBoost folder: every model (JSON; UBJ too where `ubj`) and every expected file, the rounds it
// names compiled in.
void check_xgboost_folder(const std::string& folder, bool ubj) {
  using namespace forest_test;
  const std::string dir = shared("xgboost/" + folder);
  const json cases = json::parse(read_file(dir + "/cases.json"));
  Outcome o;
  size_t libs = 0;
  for (const auto& cs : cases["cases"]) {
    for (const char* key : {"model_json", "model_ubj"}) {
      if (!cs.contains(key) || (!ubj && std::string(key) == "model_ubj")) continue;
      const std::string file = cs[key].get<std::string>();
      const std::string path = dir + "/" + file;
      const forest::Forest f = forest::Forest::build(forest::parse_forest(read_file(path), forest::Format::Auto, path), path);
      const auto table = forest::parse_csv(read_file(dir + "/" + cs["input"].get<std::string>()), 1);
      std::vector<float> x = forest::csv_to_features(table, f.n_features(), cs["features"].get<std::vector<std::string>>(), &f,
                                                     cs["input"].get<std::string>());
      const int64_t n = static_cast<int64_t>(table.rows.size());
      for (const auto& ex : cs["expected"]) {
        SCOPED_TRACE(file + " vs " + ex["file"].get<std::string>());
        std::map<std::string, std::string> params;
        std::string name = folder + "_" + fs::path(file).filename().string();
        if (ex.contains("rounds") && ex["rounds"].is_array()) {
          params["round_begin"] = std::to_string(ex["rounds"][0].get<int>());
          params["round_end"] = std::to_string(ex["rounds"][1].get<int>());
          name += "_r" + params["round_begin"] + "_" + params["round_end"];
        }
        auto lib = compile_forest(path, name, params);
        ++libs;
        const std::vector<int64_t> dims{n, f.n_features()};
        const auto out = lib->run_once(std::vector<Tensor>{Tensor::view(DType::F32, dims, x.data())});
        ASSERT_EQ(out.size(), 2u);
        const std::vector<float> pred(out[0].data<float>(), out[0].data<float>() + out[0].numel());
        const std::vector<float> margin(out[1].data<float>(), out[1].data<float>() + out[1].numel());
        check_expected_columns(dir, cs, ex, static_cast<size_t>(n), f.n_outputs(), f.n_prediction_columns(), margin, pred, o);
      }
    }
  }
  EXPECT_GT(libs, 0u);
  std::printf("[aot forest] %s: %zu libraries, %zu values checked against the manifest, max relative difference %.3g\n",
              folder.c_str(), libs, o.checked, o.max_rel);
}

class AotForestXGBoost : public ::testing::TestWithParam<std::string> {};

TEST_P(AotForestXGBoost, CompiledLibrariesReproduceTheManifest) { check_xgboost_folder(GetParam(), GetParam() == "jpmml"); }

INSTANTIATE_TEST_SUITE_P(Folders, AotForestXGBoost, ::testing::ValuesIn(folders_under_test()),
                         [](const auto& info) { return ident(info.param); });

// LightGBM (categorical splits, LibSVM inputs): the margins of the manifest.
TEST(AotForest, LightGBMReproducesTheManifest) {
  const std::string dir = forest_test::shared("lightgbm/categorical");
  const json cases = json::parse(read_file(dir + "/cases.json"));
  size_t checked = 0;
  for (const auto& cs : cases["cases"]) {
    const std::string path = dir + "/" + cs["model"].get<std::string>();
    SCOPED_TRACE(path);
    auto lib = compile_forest(path, "lgbm_" + fs::path(path).parent_path().filename().string());
    const int nf = static_cast<int>(lib->info().inputs[0].shape[1].value);
    // LibSVM rows: "label idx:value ..." with absent features missing.
    std::istringstream in(read_file(dir + "/" + cs["input"].get<std::string>()));
    std::vector<float> x;
    int64_t n = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      std::istringstream ls(line);
      std::string tok;
      ls >> tok;
      const size_t base = x.size();
      x.resize(base + static_cast<size_t>(nf), NAN);
      while (ls >> tok) {
        const auto colon = tok.find(':');
        const int idx = std::stoi(tok.substr(0, colon));
        if (idx < nf) x[base + static_cast<size_t>(idx)] = static_cast<float>(std::stod(tok.substr(colon + 1)));
      }
      ++n;
    }
    const std::vector<int64_t> dims{n, nf};
    const auto out = lib->run_once(std::vector<Tensor>{Tensor::view(DType::F32, dims, x.data())});
    std::istringstream exp(read_file(dir + "/" + cs["expected"].get<std::string>()));
    for (int64_t r = 0; r < n; ++r) {
      double want;
      ASSERT_TRUE(exp >> want);
      EXPECT_TRUE(forest_test::close(out[1].data<float>()[r], want)) << "row " << r << ": got " << out[1].data<float>()[r] << ", expected " << want;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

// Every format against the engine on rows that take every kind of branch (TMVA has no reference
// predictions): equal to the engine within rounding of the sum order; two threads give the
// single-thread results; the library needs only the C/C++ runtime.
TEST(AotForest, EveryFormatMatchesTheEngine) {
  const std::vector<std::string> files = {
      "tmva/CombinedMVAV2_13_07_2015.weights.xml.gz", "tmva/ChargeBTag_16_1_2016.weights.xml.gz",
      "tmva/ChargeBTag_4sep_2016.weights.xml.gz", "xgboost/categorical/MultiRandomForestAutoNA.ubj",
      "xgboost/categorical/BinomialClassificationAuditNA.json", "lightgbm/categorical/toy_categorical/toy_categorical_model.txt"};
  for (const auto& rel : files) {
    const std::string path = forest_test::shared(rel);
    SCOPED_TRACE(path);
    if (!fs::exists(path)) {
      ADD_FAILURE() << "missing shared model " << path;
      continue;
    }
    std::string lib_path;
    auto lib = compile_forest(path, "engine_" + fs::path(rel).filename().string(), {}, &lib_path);
    auto engine = forest::ForestModel::load(path);
    const Tensor rows = forest::probe_rows(engine->forest(), 300, 5);
    const std::vector<Tensor> in{rows};
    const auto want = engine->run_once(in);
    const auto got = lib->run_once(in);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(quiver::onnx::compare_tensors(got[i], want[i], {1e-6, 1e-6}), "") << lib->info().outputs[i].name;
    aot_test::expect_runtime_only(lib_path);
    aot_test::expect_threads_agree(lib, {in});
  }
}

// ONNX models with ai.onnx.ml TreeEnsembleRegressor / TreeEnsembleClassifier nodes: an XGBoost forest
// (3 classes, missing values) re-expressed as node attributes — a regressor of the margins, a softmax
// classifier, a binary logistic classifier (one score column) and a classifier whose probabilities are
// not wanted — compiled, built and compared with the engine at several batches.
TEST(AotForest, OnnxTreeEnsembleNodesMatchTheEngine) {
  using namespace quiver::forest;
  const std::string path = forest_test::shared("xgboost/xgb17/SoftmaxIrisNA17.json");
  const ForestSpec xs = parse_forest(read_file(path), Format::Auto, path);
  const Forest direct = Forest::build(xs, path);
  test::G g(13);
  auto* ml = g.m.add_opset_import();
  ml->set_domain("ai.onnx.ml");
  ml->set_version(3);
  g.input("X", {-1, 4});
  auto floats = [](::onnx::NodeProto* n, const std::string& name, const std::vector<float>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::FLOATS);
    for (float x : v) a->add_floats(x);
  };
  auto strings = [](::onnx::NodeProto* n, const std::string& name, const std::vector<std::string>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::STRINGS);
    for (const auto& x : v) a->add_strings(x);
  };
  // The trees as nodes_* attributes; leaves as <prefix>_* (class or target), all on output 0 when `one`.
  auto trees = [&](::onnx::NodeProto* n, const std::string& prefix, bool one) {
    std::vector<int64_t> tid, nid, fid, tn, fn, miss, ltid, lnid, lid;
    std::vector<float> vals, lw;
    std::vector<std::string> modes;
    for (size_t t = 0; t < xs.trees.size(); ++t) {
      const auto& tr = xs.trees[t];
      if (one && tr.output != 0) continue;
      for (size_t k = 0; k < tr.size(); ++k) {
        tid.push_back(static_cast<int64_t>(t));
        nid.push_back(static_cast<int64_t>(k));
        const bool leaf = tr.mode[k] == SplitMode::Leaf;
        fid.push_back(leaf ? 0 : tr.feature[k]);
        vals.push_back(static_cast<float>(tr.threshold[k]));
        modes.push_back(leaf ? "LEAF" : "BRANCH_LT");
        tn.push_back(leaf ? 0 : tr.left[k]);
        fn.push_back(leaf ? 0 : tr.right[k]);
        miss.push_back(leaf ? 0 : tr.default_left[k]);
        if (leaf) {
          ltid.push_back(static_cast<int64_t>(t));
          lnid.push_back(static_cast<int64_t>(k));
          lid.push_back(one ? 0 : tr.output);
          lw.push_back(static_cast<float>(tr.leaf_value[k]));
        }
      }
    }
    test::attr_ints(n, "nodes_treeids", tid);
    test::attr_ints(n, "nodes_nodeids", nid);
    test::attr_ints(n, "nodes_featureids", fid);
    floats(n, "nodes_values", vals);
    strings(n, "nodes_modes", modes);
    test::attr_ints(n, "nodes_truenodeids", tn);
    test::attr_ints(n, "nodes_falsenodeids", fn);
    test::attr_ints(n, "nodes_missing_value_tracks_true", miss);
    test::attr_ints(n, prefix + "_treeids", ltid);
    test::attr_ints(n, prefix + "_nodeids", lnid);
    test::attr_ints(n, prefix + "_ids", lid);
    floats(n, prefix + "_weights", lw);
  };
  std::vector<float> base;
  for (double b : direct.base_margin()) base.push_back(static_cast<float>(b));
  auto* reg = g.node("TreeEnsembleRegressor", {"X"}, {"margins"}, "reg");
  reg->set_domain("ai.onnx.ml");
  trees(reg, "target", false);
  test::attr_int(reg, "n_targets", 3);
  floats(reg, "base_values", base);
  auto* cls = g.node("TreeEnsembleClassifier", {"X"}, {"label", "probs"}, "cls");
  cls->set_domain("ai.onnx.ml");
  trees(cls, "class", false);
  test::attr_ints(cls, "classlabels_int64s", {10, 20, 30});
  test::attr_str(cls, "post_transform", "SOFTMAX");
  floats(cls, "base_values", base);
  auto* bin = g.node("TreeEnsembleClassifier", {"X"}, {"blabel", "bprobs"}, "bin");
  bin->set_domain("ai.onnx.ml");
  trees(bin, "class", true);
  test::attr_ints(bin, "classlabels_int64s", {0, 1});
  test::attr_str(bin, "post_transform", "LOGISTIC");
  auto* lab = g.node("TreeEnsembleClassifier", {"X"}, {"label_only", ""}, "label_only");
  lab->set_domain("ai.onnx.ml");
  trees(lab, "class", false);
  test::attr_ints(lab, "classlabels_int64s", {7, 8, 9});
  g.output("margins", {-1, 3});
  g.output("label", {-1}, DType::I64);
  g.output("probs", {-1, 3});
  g.output("blabel", {-1}, DType::I64);
  g.output("bprobs", {-1, 2});
  g.output("label_only", {-1}, DType::I64);
  const fs::path dir = out_root() / "onnx_trees";
  fs::create_directories(dir);
  const std::string file = (dir / "trees.onnx").string();
  {
    std::ofstream f(file, std::ios::binary);
    f << g.bytes();
  }
  aot::CompileOptions o;
  o.name = "onnx_trees";
  const aot::CompileResult r = aot::compile_model(file, (dir / "out").string(), o);
  EXPECT_EQ(r.steps, 4u);
  auto lib = aot::load_library(aot::build_shared(r, aot_test::compiler()));
  auto engine = quiver::onnx::load_onnx(file);
  const Tensor rows = probe_rows(direct, 300, 9);
  for (int64_t b : {int64_t{1}, int64_t{7}, int64_t{300}}) {
    const std::vector<int64_t> dims{b, 4};
    const std::vector<Tensor> in{Tensor::view(DType::F32, dims, rows.data<float>())};
    const auto got = lib->run_once(in);
    const auto want = engine->run_once(in);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(quiver::onnx::compare_tensors(got[i], want[i], {1e-6, 1e-6}), "") << lib->info().outputs[i].name << " at batch " << b;
  }
}

// --reproducible for tree-ensemble files: one forest per transform (sigmoid, exp, softmax, TMVA's
// gradient boost, hinge, identity, averaged random forest), built for this CPU and for x86-64-v2, gives
// the engine's reproducible mode bit for bit, whichever instruction set the engine's kernels use, at a
// batch of generated rows and row by row.
TEST(AotForest, ReproducibleBitsEqualTheEngineOnEveryTarget) {
  const std::vector<std::string> files = {
      "xgboost/categorical/LogisticRegressionAuditNA.json", "xgboost/categorical/PoissonRegressionVisitNA.json",
      "xgboost/categorical/MultinomialClassificationAuditNA.json", "tmva/ChargeBTag_4sep_2016.weights.xml.gz",
      "xgboost/categorical/HingeClassificationAuditNA.json", "xgboost/categorical/MultiRandomForestAutoNA.json"};
  auto same_bits = [](const Tensor& a, const Tensor& b) {
    return a.dims() == b.dims() && a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
  };
  std::set<std::string> transforms;
  for (const auto& rel : files) {
    const std::string path = forest_test::shared(rel);
    SCOPED_TRACE(path);
    ASSERT_TRUE(fs::exists(path)) << "missing shared model";
    LoadOptions lo;
    lo.params = {{"numerics", "reproducible"}, {"isa", "baseline"}};
    auto baseline = forest::ForestModel::load(path, lo);
    lo.params["isa"] = "auto";
    auto best = forest::ForestModel::load(path, lo);
    transforms.insert(std::string(forest::transform_name(baseline->forest().transform())));
    const Tensor rows = forest::probe_rows(baseline->forest(), 200, 11);
    const std::vector<Tensor> in{rows};
    const auto want = baseline->run_once(in);
    const auto want_best = best->run_once(in);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_TRUE(same_bits(want[i], want_best[i])) << "the engine's own ISAs differ";
    for (const char* target : {"native", "x86-64-v2"}) {
      SCOPED_TRACE(target);
      aot::CompileOptions o;
      o.name = ident("repro_" + std::string(target) + "_" + fs::path(rel).filename().string());
      o.params = {{"numerics", "reproducible"}};
      o.target = target;
      const aot::CompileResult r = aot::compile_model(path, (out_root() / o.name).string(), o);
      auto lib = aot::load_library(aot::build_shared(r, aot_test::compiler()));
      const auto got = lib->run_once(in);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(same_bits(got[i], want[i])) << lib->info().outputs[i].name << ": "
                                                << quiver::onnx::compare_tensors(got[i], want[i], {0, 0});
      for (int64_t row : {int64_t{0}, int64_t{7}, int64_t{199}}) {
        const std::vector<int64_t> one{1, rows.dim(1)};
        const std::vector<Tensor> r1{Tensor::view(DType::F32, one, rows.data<float>() + row * rows.dim(1))};
        const auto g1 = lib->run_once(r1), w1 = baseline->run_once(r1);
        for (size_t i = 0; i < g1.size(); ++i) EXPECT_TRUE(same_bits(g1[i], w1[i])) << "row " << row << " alone";
      }
    }
  }
  // The files cover the transforms that call the reproducible runtime's functions.
  for (const char* t : {"sigmoid", "exp", "softmax"}) EXPECT_TRUE(transforms.count(t)) << t;
}

TEST(AotForest, RefusesWhatItDoesNotCompile) {
  const std::string path = forest_test::shared("tmva/CombinedMVAV2_13_07_2015.weights.xml.gz");
  aot::CompileOptions o;
  o.params["interface"] = "triton_fil";
  EXPECT_THROW(aot::compile_model(path, (out_root() / "fil").string(), o), Error);
  o.params = {{"numerics", "fast"}};
  EXPECT_THROW(aot::compile_model(path, (out_root() / "numerics").string(), o), Error);
  o.params = {{"round_end", "ten"}};
  EXPECT_THROW(aot::compile_model(path, (out_root() / "rounds").string(), o), Error);
}

}  // namespace
