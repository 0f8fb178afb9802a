// quiver compile of tree ensembles: every format the forest backend loads (XGBoost JSON and UBJ,
// LightGBM text, TMVA XML) compiled, built with the plain C++ compiler, loaded by the aot backend and
// checked against the shared manifests' expected predictions (cases.json, as tests/forest does for the
// engine), against the engine on rows that take every kind of branch, from two threads, and with
// ldd showing the C/C++ runtime only.
//
// QUIVER_AOT_FOREST_FOLDERS (environment, comma-separated XGBoost folders) picks the manifests; the
// default is the CTest subset, label aot_all runs every folder.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "../forest/forest_expected.hpp"
#include "aot_test_util.hpp"
#include "forest/codegen.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/error.hpp"
#include "quiver/forest/csv.hpp"
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
      EXPECT_EQ(onnx::compare_tensors(got[i], want[i], {1e-6, 1e-6}), "") << lib->info().outputs[i].name;
    aot_test::expect_runtime_only(lib_path);
    aot_test::expect_threads_agree(lib, {in});
  }
}

TEST(AotForest, RefusesWhatItDoesNotCompile) {
  const std::string path = forest_test::shared("tmva/CombinedMVAV2_13_07_2015.weights.xml.gz");
  aot::CompileOptions o;
  o.params["interface"] = "triton_fil";
  EXPECT_THROW(aot::compile_model(path, (out_root() / "fil").string(), o), Error);
  o.params = {{"numerics", "reproducible"}};
  EXPECT_THROW(aot::compile_model(path, (out_root() / "repro").string(), o), Error);
  o.params = {{"round_end", "ten"}};
  EXPECT_THROW(aot::compile_model(path, (out_root() / "rounds").string(), o), Error);
}

}  // namespace
