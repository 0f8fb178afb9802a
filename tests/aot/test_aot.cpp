// quiver compile: models compiled ahead of time, built with the plain C++ compiler, loaded by the aot
// backend and checked against the reference data sets and the engine (runtime batch included);
// the library depends on the C/C++ runtime only; two threads share one loaded library; bad dims and
// inputs get errors; ops the emitter cannot write are refused by name at compile time.
//
// QUIVER_AOT_MODELS (environment, comma-separated) picks the HEP models; the default is the CTest
// subset (label unit keeps it short), the `aot_all` label runs every model that compiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "aot_test_util.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/error.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "onnx/graph_builder.hpp"

// The compiled libraries' shared helpers, compiled here as well to test their vectorizable math directly.
namespace generated {
#include "../../src/aot/runtime.inc"
}
#include <dlfcn.h>

#include <nlohmann/json.hpp>

#include "../../src/aot/abi.h"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

const std::string kHep = std::string(QUIVER_SHARED_DIR) + "/models/hep/";

fs::path out_root() { return fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out"; }

using aot_test::run_command;

// A float tensor of values drawn from `u`.
Tensor random_tensor(const std::vector<int64_t>& dims, std::mt19937& rng, std::uniform_real_distribution<float>& u) {
  Tensor t = Tensor::empty(DType::F32, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// A test graph written as NAME.onnx, compiled, built with the tests' compiler (aot_test::compiler) and
// loaded, and the engine on it; `lib_path`, when given, receives the built library's path. Files go to
// out_root()/NAME, or out_root()/`dir_name` (tests that build the same model run as separate processes
// at once under ctest -j: each needs its own directory).
std::pair<std::shared_ptr<const Model>, std::shared_ptr<const Model>> compile_graph(const test::G& g, const std::string& name,
                                                                                    std::string* lib_path = nullptr,
                                                                                    const std::string& dir_name = "") {
  const fs::path dir = out_root() / (dir_name.empty() ? name : dir_name);
  fs::create_directories(dir);
  const std::string file = (dir / (name + ".onnx")).string();
  {
    std::ofstream f(file, std::ios::binary);
    f << g.bytes();
  }
  aot::CompileOptions o;
  o.name = name;
  auto r = aot::compile_model(file, (dir / "out").string(), o);
  const std::string lib = aot::build_shared(r, aot_test::compiler());
  if (lib_path) *lib_path = lib;
  return {aot::load_library(lib), quiver::onnx::load_onnx(file)};
}

// The NAME.cpp that compile_graph(g, name) generated.
std::string generated_code(const std::string& name) {
  std::ifstream f(out_root() / name / "out" / (name + ".cpp"));
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// How often `what` occurs in `code`.
size_t occurrences(const std::string& code, const std::string& what) {
  size_t c = 0;
  for (size_t at = code.find(what); at != std::string::npos; at = code.find(what, at + 1)) ++c;
  return c;
}

struct DataSet {
  std::vector<Tensor> inputs, outputs;
};

std::vector<DataSet> data_sets(const std::string& model) {
  std::vector<DataSet> r;
  for (int k = 0;; ++k) {
    const fs::path dir = fs::path(kHep) / model / ("test_data_set_" + std::to_string(k));
    if (!fs::is_directory(dir)) break;
    DataSet d;
    for (const auto& f : quiver::onnx::numbered_files(dir.string(), "input")) d.inputs.push_back(quiver::onnx::read_tensor_file(f).tensor);
    for (const auto& f : quiver::onnx::numbered_files(dir.string(), "output")) d.outputs.push_back(quiver::onnx::read_tensor_file(f).tensor);
    r.push_back(std::move(d));
  }
  return r;
}

// Compiles and builds once per process and model (-Werror: the generated code is warning-free).
std::shared_ptr<const Model> compiled(const std::string& model, aot::CompileResult* result = nullptr,
                                      std::string* lib_path = nullptr) {
  static std::map<std::string, std::pair<aot::CompileResult, std::string>> done;
  auto it = done.find(model);
  if (it == done.end()) {
    aot::CompileResult r = aot::compile_model(kHep + model + "/model.onnx", (out_root() / model).string());
    const std::string lib = aot::build_shared(r, aot_test::compiler());
    it = done.emplace(model, std::make_pair(r, lib)).first;
  }
  if (result) *result = it->second.first;
  if (lib_path) *lib_path = it->second.second;
  return aot::load_library(it->second.second);
}

std::vector<std::string> models_under_test() {
  return aot_test::list_from_env("QUIVER_AOT_MODELS", "hls4ml_three_layer,ticl_supercls,ticl_energy_id,higgs_interaction_net,deepdoublex_ddb_94x_unsorted");
}

const quiver::onnx::Tolerance kTol{1e-4, 1e-5};

void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string m = quiver::onnx::compare_tensors(got[i], want[i], kTol);
    EXPECT_TRUE(m.empty()) << what << ", output " << i << ": " << m;
  }
}

class AotModels : public ::testing::TestWithParam<std::string> {};
void check_reference_and_engine(const std::string& m, const std::shared_ptr<const Model>& lib);
void check_runtime_only(const std::string& lib);
void check_two_threads(const std::string& m, const std::shared_ptr<const Model>& lib);

// One test per model (CTest runs each in its own process: the model is built once).
TEST_P(AotModels, CompiledLibraryMatchesReferenceAndEngine) {
  const std::string m = GetParam();
  std::string lib_path;
  auto lib = compiled(m, nullptr, &lib_path);
  SCOPED_TRACE(m);
  check_reference_and_engine(m, lib);
  check_runtime_only(lib_path);
  check_two_threads(m, lib);
}

void check_reference_and_engine(const std::string& m, const std::shared_ptr<const Model>& lib) {
  auto engine = quiver::onnx::load_onnx(kHep + m + "/model.onnx");
  const auto sets = data_sets(m);
  ASSERT_FALSE(sets.empty());
  for (size_t k = 0; k < sets.size(); ++k) {
    const auto& d = sets[k];
    expect_close(lib->run_once(d.inputs), d.outputs, m + " data set " + std::to_string(k));
    expect_close(lib->run_once(d.inputs), engine->run_once(d.inputs), m + " vs engine, set " + std::to_string(k));
    // The batch is a runtime value: other batches than the data set's agree with the engine too.
    const bool batched = !lib->info().inputs.empty() && !lib->info().inputs[0].shape.empty() &&
                         !lib->info().inputs[0].shape[0].is_fixed();
    if (!batched) continue;
    for (int64_t b : {int64_t{1}, int64_t{5}, int64_t{64}}) {
      const std::vector<Tensor> in = tile_rows(d.inputs, b);  // the data set's rows repeated or cut to b
      expect_close(lib->run_once(in), engine->run_once(in), m + " vs engine at batch " + std::to_string(in[0].dims()[0]));
    }
  }
}

void check_runtime_only(const std::string& lib) { aot_test::expect_runtime_only(lib); }

void check_two_threads(const std::string& m, const std::shared_ptr<const Model>& lib) {
  std::vector<std::vector<Tensor>> sets;
  for (auto& d : data_sets(m)) sets.push_back(std::move(d.inputs));
  aot_test::expect_threads_agree(lib, sets);
}

INSTANTIATE_TEST_SUITE_P(Hep, AotModels, ::testing::ValuesIn(models_under_test()),
                         [](const auto& info) { return info.param; });

TEST(Aot, WrongInputsAreRejectedWithTheTensorName) {
  auto lib = compiled("ticl_supercls");
  const auto sets = data_sets("ticl_supercls");
  std::vector<Tensor> in = sets[0].inputs;
  in[0] = Tensor::zeros(DType::F32, {2, 16});  // 17 features expected
  try {
    lib->run_once(in);
    FAIL() << "accepted a wrong shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input"), std::string::npos) << e.what();
  }
  in[0] = Tensor::zeros(DType::F64, {2, 17});
  EXPECT_THROW(lib->run_once(in), Error);
}

TEST(Aot, MaxDimIsEnforcedAtRunTime) {
  aot::CompileOptions o;
  o.name = "ticl_supercls_max4";
  o.max_dims["batch_size"] = 4;
  auto r = aot::compile_model(kHep + "ticl_supercls/model.onnx", (out_root() / "ticl_supercls_max4").string(), o);
  auto lib = aot::load_library(aot::build_shared(r, aot_test::compiler()));
  EXPECT_NO_THROW(lib->run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {4, 17})}));
  try {
    lib->run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {5, 17})});
    FAIL() << "accepted batch 5 above --max-dim 4";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos) << e.what();
  }
  aot::CompileOptions bad;
  bad.max_dims["no_such_dim"] = 3;
  EXPECT_THROW(aot::compile_model(kHep + "ticl_supercls/model.onnx", (out_root() / "bad").string(), bad), Error);
}

TEST(Aot, UnemittableOpsAreRefusedByNameBeforeWriting) {
  const fs::path out = out_root() / "refused";
  fs::remove_all(out);
  try {
    aot::compile_model(std::string(QUIVER_SHARED_DIR) + "/conformance/onnx-node/node/test_cumsum_1d/model.onnx",
                       out.string());
    FAIL() << "CumSum compiled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("CumSum"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

// The generated NAME.cpp is readable: one function per plan step that computes (a fused group is one
// step), its comment naming the ONNX nodes (name and op type; the fused ones too), called in plan order
// by compute(), which holds no step code of its own; a view has no function, only a comment there.
TEST(Aot, GeneratedCodeHasOneFunctionPerStepNamingItsNodes) {
  test::G g(13);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  g.input("x", {-1, 6});
  g.init("W1", random_tensor({4, 6}, rng, u));
  g.init("b1", random_tensor({4}, rng, u));
  g.init("W2", random_tensor({4, 8}, rng, u));
  g.init("b2", random_tensor({8}, rng, u));
  g.init("shape", Tensor::from_vector<int64_t>({-1, 2, 4}, {3}));
  test::attr_int(g.node("Gemm", {"x", "W1", "b1"}, {"g"}, "dense1"), "transB", 1);
  g.node("Relu", {"g"}, {"gr"}, "relu1");
  g.node("MatMul", {"gr", "W2"}, {"m"}, "dense2");
  g.node("Add", {"m", "b2"}, {"mb"}, "bias2");
  g.node("Sigmoid", {"mb"}, {"ms"}, "act2");
  g.node("Tanh", {"ms"}, {"t"}, "squash");
  g.node("Reshape", {"t", "shape"}, {"r"}, "split_rows");
  test::attr_int(g.node("Softmax", {"r"}, {"y"}, "probs"), "axis", -1);
  g.output("y", {-1, 2, 4});
  auto [lib, engine] = compile_graph(g, "readable");
  std::vector<Tensor> in{random_tensor({3, 6}, rng, u)};
  expect_close(lib->run_once(in), engine->run_once(in), "readable");

  std::ifstream f(out_root() / "readable" / "out" / "readable.cpp");
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  // Each step function with the comment lines just above it.
  std::vector<std::pair<std::string, std::string>> functions;  // name, comment
  size_t compute_at = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("void compute(", 0) == 0) compute_at = i;
    if (lines[i].rfind("void step", 0) != 0) continue;
    std::string comment;
    for (size_t j = i; j > 0 && lines[j - 1].rfind("//", 0) == 0; --j) comment = lines[j - 1] + "\n" + comment;
    functions.emplace_back(lines[i].substr(5, lines[i].find('(') - 5), comment);
  }
  const std::vector<std::vector<std::string>> steps{{"dense1 (Gemm)", "relu1 (Relu)"},
                                                    {"dense2 (MatMul)", "bias2 (Add)", "act2 (Sigmoid)"},
                                                    {"squash (Tanh)"},
                                                    {"probs (Softmax)"}};
  ASSERT_EQ(functions.size(), steps.size()) << "one function per step that computes";
  for (size_t k = 0; k < steps.size(); ++k) {
    EXPECT_EQ(functions[k].first.rfind("step", 0), 0u);
    EXPECT_NE(functions[k].first.find(steps[k][0].substr(0, steps[k][0].find(' '))), std::string::npos)
        << functions[k].first;
    for (const auto& node : steps[k]) {
      EXPECT_NE(functions[k].second.find(node), std::string::npos) << node << " in\n" << functions[k].second;
    }
    for (size_t o = 0; o < steps.size(); ++o)
      if (o != k) {
        EXPECT_EQ(functions[k].second.find(steps[o][0]), std::string::npos) << functions[k].second;
      }
  }
  // compute(): the calls in plan order, the view as a comment, then the copies to the outputs; no step code.
  ASSERT_GT(compute_at, 0u);
  std::vector<std::string> calls;
  bool view_named = false;
  for (size_t i = compute_at + 1; i < lines.size() && lines[i] != "}"; ++i) {
    const std::string& l = lines[i];
    if (l.rfind("  step", 0) == 0) calls.push_back(l.substr(2, l.find('(') - 2));
    else if (l.rfind("  //", 0) == 0) view_named = view_named || l.find("split_rows (Reshape)") != std::string::npos;
    else EXPECT_EQ(l.rfind("  std::memcpy(out.", 0), 0u) << "step code in compute(): " << l;
  }
  EXPECT_TRUE(view_named);
  ASSERT_EQ(calls.size(), functions.size());
  for (size_t k = 0; k < calls.size(); ++k) EXPECT_EQ(calls[k], functions[k].first);
}

TEST(Aot, NotACompiledLibrary) {
  EXPECT_THROW(aot::load_library("/lib/x86_64-linux-gnu/libm.so.6"), Error);
  EXPECT_THROW(aot::load_library((out_root() / "missing.so").string()), Error);
}

// The generated CMakeLists.txt: the static library through add_subdirectory() in a program that uses
// the C++ API (Dims, workspace_bytes, run), built with CMake and the plain compiler.
TEST(Aot, CMakeProjectWithStaticLibraryAndCxxApi) {
  aot::CompileResult r;
  compiled("ticl_supercls", &r);
  const fs::path app = out_root() / "cmake_app";
  fs::remove_all(app);
  fs::create_directories(app);
  std::ofstream(app / "CMakeLists.txt") << "cmake_minimum_required(VERSION 3.16)\nproject(app CXX)\n"
                                        << "add_subdirectory(" << r.dir << " model)\n"
                                        << "add_executable(app main.cpp)\ntarget_link_libraries(app PRIVATE ticl_supercls_static)\n";
  std::ofstream(app / "main.cpp")
      << "#include <cstdio>\n#include <memory>\n#include <vector>\n#include \"ticl_supercls.hpp\"\n"
      << "int main() {\n  ticl_supercls::Inputs in;\n  in.dims.batch_size = 3;\n  std::vector<float> x(3 * 17, 0.5f), y(3);\n"
      << "  in.input = x.data();\n  ticl_supercls::Outputs out;\n  out.output = y.data();\n"
      << "  const size_t n = ticl_supercls::workspace_bytes(in.dims);\n  std::unique_ptr<unsigned char[]> ws(new unsigned char[n]);\n"
      << "  ticl_supercls::run(in, out, ws.get(), n);\n  int64_t d[8];\n  const int r = ticl_supercls::output_dims(in.dims, 0, d);\n"
      << "  std::printf(\"rank %d dims %lld %lld values %.6f %.6f\\n\", r, (long long)d[0], (long long)d[1], y[0], y[2]);\n"
      << "  return y[0] == y[2] && r == 2 && d[0] == 3 ? 0 : 1;\n}\n";
  int rc = 0;
  const std::string out = run_command("cmake -S " + app.string() + " -B " + (app / "build").string() +
                                          " -DCMAKE_BUILD_TYPE=Release && cmake --build " + (app / "build").string() +
                                          " -j2 && " + (app / "build" / "app").string(),
                                      &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("rank 2 dims 3 1"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(app / "build" / "model" / "libticl_supercls.so")) << out;
}

}  // namespace

// The emitted gemm's edges against the engine, on a model built here: row counts that are not a
// multiple of the register tile, column counts that are not a multiple of the packed panel, transposed
// and runtime operands (Gemm with a computed B, batched MatMul of two inputs), constant B packed at
// compile time (2-D and batched), grouped/strided/padded/dilated 2-D convolution, 1x1 and 1-D
// convolution, fused activations, and the axes of Reduce/Squeeze/Unsqueeze (negative ones included).
TEST(Aot, GemmAndConvEdgesMatchTheEngine) {
  test::G g(13);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto weights = [&](const std::string& name, std::vector<int64_t> dims) { g.init(name, random_tensor(dims, rng, u)); };
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    Tensor t = Tensor::empty(DType::I64, {static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
    g.init(name, t);
  };
  g.input("x", {-1, 13});
  g.input("wt", {6, 13});
  g.input("y", {-1, 5, 7});
  g.input("z", {-1, 7, 19});
  g.input("img", {-1, 4, 9, 11});
  g.input("seq", {-1, 3, 17});
  weights("W1", {21, 13});
  weights("b1", {21});
  weights("W2", {21, 233});  // 15 panels: gemv groups of 8, 4, 2, 1; pairs and a single
  weights("W3", {7, 18});
  weights("W4", {2, 7, 3});
  weights("W5", {6, 10});
  weights("CW", {6, 2, 3, 3});
  weights("Cb", {6});
  weights("CW2", {5, 6, 1, 1});
  weights("SW", {8, 3, 5});
  weights("CW3", {13, 4, 1, 1});  // 1x1 over 99 pixels: panel pairs read in place, a packed last panel
  weights("Cb3", {13});
  ints("ax_last", {-1});
  ints("ax_2", {2});
  ints("ax_1", {-3});
  ints("ax_02", {0, 2});
  auto* n = g.node("Gemm", {"x", "W1", "b1"}, {"g1"});
  test::attr_int(n, "transB", 1);
  test::attr_float(n, "alpha", 0.5f);
  g.node("Relu", {"g1"}, {"g1r"});
  g.node("Gemm", {"g1r", "W2"}, {"g2"});
  n = g.node("Gemm", {"wt", "x"}, {"gt"});  // B computed at run time, transposed
  test::attr_int(n, "transB", 1);
  n = g.node("Gemm", {"wt", "W5"}, {"gta"});  // transposed A: [6, 13]^T [6, 10]
  test::attr_int(n, "transA", 1);
  g.node("Tanh", {"gta"}, {"gtat"});
  g.node("MatMul", {"y", "z"}, {"m1"});
  g.node("MatMul", {"y", "W3"}, {"m2"});
  g.node("Sigmoid", {"m2"}, {"m2s"});
  g.node("Unsqueeze", {"y", "ax_2"}, {"yu"});  // [b, 5, 1, 7]
  g.node("Squeeze", {"yu", "ax_2"}, {"ys"});
  g.node("Unsqueeze", {"ys", "ax_1"}, {"ys1"});  // [b, 1, 5, 7]
  g.node("MatMul", {"ys1", "W4"}, {"m3"});        // x [2, 7, 3]: a batched constant B, broadcast
  n = g.node("Conv", {"img", "CW", "Cb"}, {"c1"});
  test::attr_int(n, "group", 2);
  test::attr_ints(n, "strides", {2, 2});
  test::attr_ints(n, "pads", {1, 2, 1, 0});
  test::attr_ints(n, "dilations", {1, 2});
  g.node("Relu", {"c1"}, {"c1r"});
  g.node("Conv", {"c1r", "CW2"}, {"c2"});
  g.node("Conv", {"img", "CW3", "Cb3"}, {"c3"});
  n = g.node("Conv", {"seq", "SW"}, {"s1"});
  test::attr_ints(n, "pads", {2, 2});
  n = g.node("ReduceMax", {"y"}, {"r2"});  // a middle axis: [b, 5, 7] -> [b, 1, 7]
  test::attr_ints(n, "axes", {1});
  g.node("ReduceSum", {"img", "ax_02"}, {"r3"});  // two runs of axes: the general walk
  n = g.node("ReduceSum", {"s1", "ax_last"}, {"r1"});
  test::attr_int(n, "keepdims", 0);
  g.output("g2", {-1, 233});
  g.output("gt", {6, -1});
  g.output("gtat", {13, 10});
  g.output("m1", {-1, 5, 19});
  g.output("m2s", {-1, 5, 18});
  g.output("c2", {-1, 5, 5, 5});
  g.output("c3", {-1, 13, 9, 11});
  g.output("r1", {-1, 8});
  g.output("r2", {-1, 1, 7});
  g.output("r3", {1, 4, 1, 11});
  g.output("m3", {-1, 2, 5, 3});
  const auto [lib, engine] = compile_graph(g, "edges");
  for (int64_t b : {int64_t{1}, int64_t{3}, int64_t{9}, int64_t{17}}) {  // row tiles of 6/12, rests of 4, 2, 1
    std::vector<Tensor> in;
    for (std::vector<int64_t> d : {std::vector<int64_t>{b, 13}, {6, 13}, {b, 5, 7}, {b, 7, 19}, {b, 4, 9, 11}, {b, 3, 17}}) {
      in.push_back(random_tensor(d, rng, u));
    }
    expect_close(lib->run_once(in), engine->run_once(in), "edges at batch " + std::to_string(b));
  }
}

// Convolutions with few output channels per group (at most 4, unit strides) run as shifted runs over
// a zero-padded copy of the input (rt::conv_few_outputs): TICL energy-id's shapes (3 channels, 3x3
// padded with a fused Relu, or a fused LeakyRelu applied after the rows are copied out; 5x1 padded
// along H only), asymmetric pads with a dilation, two groups of two channels, and a kernel wider than
// the unpadded row.
TEST(Aot, ConvWithFewOutputChannelsMatchesTheEngine) {
  test::G g(13);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto weights = [&](const std::string& name, std::vector<int64_t> dims) { g.init(name, random_tensor(dims, rng, u)); };
  g.input("img", {-1, 4, 9, 11});
  g.input("narrow", {-1, 3, 6, 2});
  weights("W3", {3, 4, 3, 3});
  weights("b3", {3});
  weights("W51", {3, 4, 5, 1});
  weights("b51", {3});
  weights("Wd", {4, 4, 2, 3});
  weights("Wg", {4, 2, 3, 3});
  weights("bg", {4});
  weights("Ww", {1, 3, 3, 5});
  auto* n = g.node("Conv", {"img", "W3", "b3"}, {"c3"});
  test::attr_ints(n, "pads", {1, 1, 1, 1});
  g.node("Relu", {"c3"}, {"c3r"});
  n = g.node("Conv", {"img", "W3"}, {"c3l"});
  test::attr_ints(n, "pads", {1, 1, 1, 1});
  test::attr_float(g.node("LeakyRelu", {"c3l"}, {"c3lr"}), "alpha", 0.25f);
  n = g.node("Conv", {"img", "W51", "b51"}, {"c51"});
  test::attr_ints(n, "pads", {2, 0, 2, 0});
  n = g.node("Conv", {"img", "Wd"}, {"cd"});
  test::attr_ints(n, "pads", {0, 2, 1, 0});
  test::attr_ints(n, "dilations", {2, 1});
  n = g.node("Conv", {"img", "Wg", "bg"}, {"cg"});
  test::attr_int(n, "group", 2);
  test::attr_ints(n, "pads", {1, 0, 1, 2});
  n = g.node("Conv", {"narrow", "Ww"}, {"cw"});
  test::attr_ints(n, "pads", {1, 2, 1, 2});
  g.output("c3r", {-1, 3, 9, 11});
  g.output("c3lr", {-1, 3, 9, 11});
  g.output("c51", {-1, 3, 9, 11});
  g.output("cd", {-1, 4, 8, 11});
  g.output("cg", {-1, 4, 9, 11});
  g.output("cw", {-1, 1, 6, 2});
  const auto [lib, engine] = compile_graph(g, "few_outputs");
  for (int64_t b : {int64_t{1}, int64_t{2}, int64_t{5}}) {
    std::vector<Tensor> in{random_tensor({b, 4, 9, 11}, rng, u), random_tensor({b, 3, 6, 2}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "few output channels at batch " + std::to_string(b));
  }
}

// The workspace's layout (rt::place_buffers): buffers alive at the same time never share a byte, a
// buffer takes the lowest gap between the ones it conflicts with, and offsets are 64-byte multiples
// from the base. Random lifetimes check the first property against every pair.
TEST(Aot, BuffersShareBytesOnlyWhenTheirLifetimesAreDisjoint) {
  namespace rt = generated::rt;
  {
    // b0 [steps 0-1] 1000 B, b2 [2-3] 900 B, b1 [1-2] 100 B, b4 [2-3] 60 B, b3 [0-3] 64 B, placed in
    // that order (largest first).
    const int64_t cap[5] = {1000, 100, 900, 64, 60};
    const int32_t order[5] = {0, 2, 1, 4, 3};
    const int32_t begin[6] = {0, 0, 0, 2, 4, 8};
    const int32_t conf[8] = {0, 2, 2, 1, 0, 2, 1, 4};
    int64_t off[5], tmp[8];
    const int64_t top = rt::place_buffers(off, cap, order, begin, conf, 5, tmp, 128);
    EXPECT_EQ(off[0], 128);         // first
    EXPECT_EQ(off[2], 128);         // dead b0's bytes
    EXPECT_EQ(off[1], 128 + 1024);  // above b0 and b2
    EXPECT_EQ(off[4], 128 + 960);   // the 64-byte gap between b2 (960) and b1
    EXPECT_EQ(off[3], 128 + 1152);  // above all
    EXPECT_EQ(top, 1216);
  }
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    const int n = 1 + static_cast<int>(rng() % 24);
    std::vector<int64_t> cap(static_cast<size_t>(n)), first(static_cast<size_t>(n)), last(static_cast<size_t>(n));
    for (int b = 0; b < n; ++b) {
      cap[static_cast<size_t>(b)] = rng() % 5 == 0 ? 0 : static_cast<int64_t>(rng() % 5000);
      first[static_cast<size_t>(b)] = rng() % 20;
      last[static_cast<size_t>(b)] = first[static_cast<size_t>(b)] + rng() % 8;
    }
    std::vector<int32_t> order(static_cast<size_t>(n)), begin{0}, conf;
    for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), rng);
    auto overlap = [&](int a, int b) {
      return first[static_cast<size_t>(a)] <= last[static_cast<size_t>(b)] && first[static_cast<size_t>(b)] <= last[static_cast<size_t>(a)];
    };
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < i; ++j)
        if (overlap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)])) conf.push_back(order[static_cast<size_t>(j)]);
      begin.push_back(static_cast<int32_t>(conf.size()));
    }
    std::vector<int64_t> off(static_cast<size_t>(n)), tmp(static_cast<size_t>(2 * n + 2));
    const int64_t top = rt::place_buffers(off.data(), cap.data(), order.data(), begin.data(), conf.data(), n, tmp.data(), 0);
    int64_t sum = 0;
    for (int a = 0; a < n; ++a) {
      const int64_t ea = off[static_cast<size_t>(a)] + (cap[static_cast<size_t>(a)] + 63) / 64 * 64;
      sum += (cap[static_cast<size_t>(a)] + 63) / 64 * 64;
      EXPECT_EQ(off[static_cast<size_t>(a)] % 64, 0);
      EXPECT_LE(ea, top);
      for (int b = 0; b < a; ++b) {
        if (!overlap(a, b) || cap[static_cast<size_t>(a)] == 0 || cap[static_cast<size_t>(b)] == 0) continue;
        const int64_t eb = off[static_cast<size_t>(b)] + (cap[static_cast<size_t>(b)] + 63) / 64 * 64;
        EXPECT_TRUE(ea <= off[static_cast<size_t>(b)] || eb <= off[static_cast<size_t>(a)])
            << "round " << round << ": buffers " << a << " and " << b << " are alive together and overlap";
      }
    }
    EXPECT_LE(top, sum);
  }
}

// Transpose(x, perm 0,2,1) -> Reshape(to [-1, cols]) into `out`: the rows the fusion's transposed-A
// Gemm reads in place (the reshape target an initializer named out + "_to").
void transposed_rows(test::G& g, const std::string& x, const std::string& out, int64_t cols) {
  g.init(out + "_to", Tensor::from_vector<int64_t>({-1, cols}, {2}));
  test::attr_ints(g.node("Transpose", {x}, {out + "_t"}), "perm", {0, 2, 1});
  g.node("Reshape", {out + "_t", out + "_to"}, {out});
}

// Transpose(0,2,1) -> Reshape -> Gemm, fused as in the engine: each block of A read transposed in
// place when the Reshape gives [B*L, C] (with transB, a bias row and Relu), the transpose
// materialised first when the target mixes blocks ([B*L*C/8, 8]); no Transpose step is emitted.
TEST(Aot, TransposedAGemmMatchesTheEngine) {
  test::G g(13);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  g.input("x", {-1, 5, 7});
  g.input("z", {-1, 4, 6});
  g.init("W", random_tensor({3, 5}, rng, u));
  g.init("b", random_tensor({3}, rng, u));
  g.init("W8", random_tensor({8, 2}, rng, u));
  transposed_rows(g, "x", "xr", 5);
  auto* n = g.node("Gemm", {"xr", "W", "b"}, {"y"});
  test::attr_int(n, "transB", 1);
  g.node("Relu", {"y"}, {"yr"});
  transposed_rows(g, "z", "zr", 8);
  g.node("Gemm", {"zr", "W8"}, {"y8"});
  g.output("yr", {-1, 3});
  g.output("y8", {-1, 2});
  const auto [lib, engine] = compile_graph(g, "btrans");
  std::ifstream f(out_root() / "btrans" / "out" / "btrans.cpp");
  const std::string code((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(code.find("(Transpose)\n"), std::string::npos) << "a Transpose step was emitted";
  EXPECT_NE(code.find("A read transposed per block"), std::string::npos);
  for (int64_t b : {int64_t{1}, int64_t{2}, int64_t{5}}) {
    std::vector<Tensor> in{random_tensor({b, 5, 7}, rng, u), random_tensor({b, 4, 6}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "transposed A at batch " + std::to_string(b));
  }
}

// Gemms with bias + Relu in the tile's registers, their last panel partial (60, 30 and 20 outputs as
// in the interaction net's MLP: one group of 4, 2 and 2 panels, a masked store), a transposed A read
// per block, and B wider than one group with K = 400: row blocks of 48 rows (rt::gemm), here up to
// three blocks and a rest, each running every group of panels.
TEST(Aot, TallGemmsRunInRowBlocksWithPartialPanelsAsTheEngine) {
  test::G g(13);
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  g.input("x", {-1, 12, 11});
  g.input("w", {-1, 400});
  g.init("W1", random_tensor({60, 12}, rng, u));
  g.init("b1", random_tensor({60}, rng, u));
  g.init("W2", random_tensor({30, 60}, rng, u));
  g.init("b2", random_tensor({30}, rng, u));
  g.init("W3", random_tensor({20, 30}, rng, u));
  g.init("b3", random_tensor({20}, rng, u));
  g.init("W4", random_tensor({70, 400}, rng, u));
  g.init("b4", random_tensor({70}, rng, u));
  transposed_rows(g, "x", "xr", 12);
  auto* n = g.node("Gemm", {"xr", "W1", "b1"}, {"h1"});
  test::attr_int(n, "transB", 1);
  g.node("Relu", {"h1"}, {"h1r"});
  n = g.node("Gemm", {"h1r", "W2", "b2"}, {"h2"});
  test::attr_int(n, "transB", 1);
  g.node("Relu", {"h2"}, {"h2r"});
  n = g.node("Gemm", {"h2r", "W3", "b3"}, {"h3"});
  test::attr_int(n, "transB", 1);
  n = g.node("Gemm", {"w", "W4", "b4"}, {"y4"});
  test::attr_int(n, "transB", 1);
  g.node("Relu", {"y4"}, {"y4r"});
  g.output("h3", {-1, 20});
  g.output("y4r", {-1, 70});
  const auto [lib, engine] = compile_graph(g, "tall");
  for (int64_t b : {int64_t{1}, int64_t{5}, int64_t{49}, int64_t{100}, int64_t{151}}) {
    std::vector<Tensor> in{random_tensor({b, 12, 11}, rng, u), random_tensor({b, 400}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "tall gemms at batch " + std::to_string(b));
  }
}

// One row (batch 1) as rt::gemv_tile runs it: every panel count from 1 to 8 in one pass (N = 1, 20,
// 45, 100, 128 as 8 panels, 130 as 8 + 1, 200 as 8 + 5), K = 37 so that each count's KS interleaved
// sums leave a rest of k, the register epilogue (bias, Relu, a masked partial panel) and gemm_store's
// (Sigmoid, alpha, no bias), a B computed at run time (read in place, its partial panel packed).
TEST(Aot, GemvRunsEachPanelCountInOnePassAsTheEngine) {
  test::G g(13);
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  g.input("x", {-1, 37});
  g.input("m", {37, 45});
  const std::vector<int64_t> ns{1, 20, 45, 100, 128, 130, 200};
  for (size_t i = 0; i < ns.size(); ++i) {
    const std::string k = std::to_string(i);
    g.init("W" + k, random_tensor({ns[i], 37}, rng, u));
    g.init("b" + k, random_tensor({ns[i]}, rng, u));
    const bool bias = i != 2;
    auto* n = g.node("Gemm", bias ? std::vector<std::string>{"x", "W" + k, "b" + k} : std::vector<std::string>{"x", "W" + k}, {"h" + k});
    test::attr_int(n, "transB", 1);
    if (i == 4) test::attr_float(n, "alpha", 0.5f);
    g.node(i == 0 || i == 5 ? "Sigmoid" : "Relu", {"h" + k}, {"y" + k});
    g.output("y" + k, {-1, ns[i]});
  }
  g.node("MatMul", {"x", "m"}, {"ym"});
  g.output("ym", {-1, 45});
  const auto [lib, engine] = compile_graph(g, "gemv");
  for (int64_t b : {int64_t{1}, int64_t{3}}) {
    std::vector<Tensor> in{random_tensor({b, 37}, rng, u), random_tensor({37, 45}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "gemv at batch " + std::to_string(b));
  }
}

// Transposes as the runtime reduces them (rt::transpose: dims of 1 dropped, neighbours merged): TICL
// energy-id's NHWC <-> NCHW switches of 3 channels (a 2-D transpose with a side of 3, compile-time
// counts either way), sides of 2 and 4, 16 x 16 tiles with partial ones, x's last axis kept last
// (runs), and a rank-6 permutation with a dim of 1 and an odometer over three outer axes.
TEST(Aot, TransposeMatchesTheEngine) {
  test::G g(13);
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  struct Case {
    std::vector<int64_t> in;
    std::vector<int64_t> perm;
  };
  const std::vector<Case> cases{{{-1, 50, 10, 3}, {0, 3, 1, 2}}, {{-1, 3, 50, 10}, {0, 2, 3, 1}},
                                {{-1, 2, 37}, {0, 2, 1}},        {{-1, 37, 4}, {0, 2, 1}},
                                {{-1, 3, 4}, {0, 2, 1}},         {{-1, 19, 23}, {0, 2, 1}},
                                {{-1, 4, 6, 8}, {2, 0, 1, 3}},   {{-1, 3, 1, 5, 6, 2}, {0, 4, 2, 1, 5, 3}}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string x = "x" + std::to_string(i), y = "y" + std::to_string(i);
    g.input(x, cases[i].in);
    test::attr_ints(g.node("Transpose", {x}, {y}), "perm", cases[i].perm);
    std::vector<int64_t> od;
    for (int64_t p : cases[i].perm) od.push_back(cases[i].in[static_cast<size_t>(p)]);
    g.output(y, od);
  }
  const auto [lib, engine] = compile_graph(g, "transposes");
  for (int64_t b : {int64_t{1}, int64_t{2}, int64_t{5}}) {
    std::vector<Tensor> in;
    for (const Case& c : cases) {
      std::vector<int64_t> d = c.in;
      d[0] = b;
      in.push_back(random_tensor(d, rng, u));
    }
    expect_close(lib->run_once(in), engine->run_once(in), "transposes at batch " + std::to_string(b));
  }
}

// Gemms with a constant 0/1 B that only selects columns of A (one 1 per column) or sums runs of
// them (one 1 per row, in column order): the emitter takes the engine's choice (a gather, segment
// sums; the index arrays instead of B), with bias, alpha and activation, and the same sums in the
// same order, so the bits equal the engine's. A B with another value stays a GEMM.
TEST(Aot, OneHotGemmIsAGatherOrSegmentSumsAsInTheEngine) {
  test::G g(13);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  g.input("a", {-1, 6});
  g.input("w", {-1, 40});
  Tensor sel = Tensor::empty(DType::F32, {6, 5});  // [K, N]: column j picks row src[j]
  std::fill(sel.data<float>(), sel.data<float>() + 30, 0.f);
  const int src[5] = {3, 0, 5, 3, 1};
  for (int j = 0; j < 5; ++j) sel.data<float>()[src[j] * 5 + j] = 1.f;
  g.init("sel", sel);
  g.init("bias", random_tensor({5}, rng, u));
  Tensor seg = Tensor::empty(DType::F32, {3, 6});  // transB: B = seg^T [6, 3], rows 0-1 -> 0, 2-4 -> 1, 5 -> 2
  std::fill(seg.data<float>(), seg.data<float>() + 18, 0.f);
  const int dst[6] = {0, 0, 1, 1, 1, 2};
  for (int k = 0; k < 6; ++k) seg.data<float>()[dst[k] * 6 + k] = 1.f;
  g.init("seg", seg);
  Tensor wide = Tensor::empty(DType::F32, {40, 2});  // 20 + 20 rows: the 16-lane partial sums
  for (int k = 0; k < 40; ++k) {
    wide.data<float>()[k * 2] = k < 20 ? 1.f : 0.f;
    wide.data<float>()[k * 2 + 1] = k < 20 ? 0.f : 1.f;
  }
  g.init("wide", wide);
  Tensor twos = sel.clone();
  twos.data<float>()[src[0] * 5] = 2.f;  // not 0/1: the GEMM
  g.init("twos", twos);
  // [40, 37]: a row of 40 values (its third vector holds 32..39) to 37 columns: two vectors of 16 by
  // permutes, 5 one at a time.
  Tensor pick = Tensor::empty(DType::F32, {40, 37});
  std::fill(pick.data<float>(), pick.data<float>() + 40 * 37, 0.f);
  for (int j = 0; j < 37; ++j) pick.data<float>()[((j * 7 + 3) % 40) * 37 + j] = 1.f;
  g.init("pick", pick);
  g.node("Gemm", {"a", "sel", "bias"}, {"picked"});
  g.node("Relu", {"picked"}, {"picked_relu"});
  auto* n = g.node("Gemm", {"a", "seg"}, {"summed"});
  test::attr_int(n, "transB", 1);
  test::attr_float(n, "alpha", 0.5f);
  g.node("Gemm", {"w", "wide"}, {"summed_wide"});
  g.node("Gemm", {"a", "twos"}, {"dense"});
  g.node("Gemm", {"w", "pick"}, {"picked_wide"});
  g.output("picked_relu", {-1, 5});
  g.output("summed", {-1, 3});
  g.output("summed_wide", {-1, 2});
  g.output("dense", {-1, 5});
  g.output("picked_wide", {-1, 37});
  const auto [lib, engine] = compile_graph(g, "one_hot");
  const std::string code = generated_code("one_hot");
  auto count = [&](const std::string& what) { return occurrences(code, what); };
  EXPECT_EQ(count("rt::gather_columns(x0"), 2u);
  EXPECT_EQ(count("rt::segment_sums(x0"), 2u);
  EXPECT_EQ(count("rt::gemm(g);"), 1u);  // the B with a 2
  for (int64_t b : {int64_t{1}, int64_t{3}, int64_t{7}}) {
    std::vector<Tensor> in{random_tensor({b, 6}, rng, u), random_tensor({b, 40}, rng, u)};
    const auto got = lib->run_once(in), want = engine->run_once(in);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].dims(), want[i].dims()) << "output " << i;
      EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), static_cast<size_t>(got[i].numel()) * 4), 0)
          << "output " << i << " at batch " << b << " differs from the engine's bits";
    }
  }
}

// exp/sigmoid/tanh of the generated code (straight-line float code, no libm) against libm: relative
// error within a few float ulps over the whole range, the clamped ends, signed zero, infinities, NaN.
// Clip (a constant lower bound only, both bounds as inputs read at run time, the opset-6 attributes),
// Sign, and Split (constant sizes with an unwanted part, equal chunks of an odd dim, the opset-2
// attribute) against the engine, NaN and signed zeros included.
TEST(Aot, ClipSignSplitMatchTheEngine) {
  for (int opset : {13, 6}) {
    test::G g(opset);
    g.input("x", {-1, 9});
    g.output("a", {-1, 9});
    if (opset >= 11) {
      g.input("lo", {});
      g.input("hi", {});
      g.init("c", Tensor::scalar(-0.25f));
      g.node("Clip", {"x", "c"}, {"c1"});
      g.node("Clip", {"c1", "lo", "hi"}, {"c2"});
    } else {
      auto* n = g.node("Clip", {"x"}, {"c2"});
      test::attr_float(n, "min", -0.25f);
      test::attr_float(n, "max", 0.5f);
    }
    g.node("Sign", {"c2"}, {"s"});
    g.node("Add", {"c2", "s"}, {"a"});
    if (opset >= 13) {
      g.init("sizes", Tensor::from_vector<int64_t>({2, 3, 4}, {3}));
      test::attr_int(g.node("Split", {"a", "sizes"}, {"p1", "p2", "p3"}), "axis", 1);
      test::attr_int(g.node("Split", {"a"}, {"e1", "e2"}), "axis", -1);
      for (const char* o : {"p1", "p3", "e1", "e2"}) g.output(o, {-1, -1});
    } else {
      auto* q = g.node("Split", {"a"}, {"q1", "q2"});
      test::attr_ints(q, "split", {4, 5});
      test::attr_int(q, "axis", 1);
      test::attr_int(g.node("Split", {"a"}, {"r1", "r2"}), "axis", 0);
      for (const char* o : {"q1", "q2", "r1", "r2"}) g.output(o, {-1, -1});
    }
    const fs::path dir = out_root() / ("clip_sign_" + std::to_string(opset));
    fs::create_directories(dir);
    const std::string file = (dir / "m.onnx").string();
    std::ofstream(file, std::ios::binary) << g.bytes();
    aot::CompileOptions o;
    o.name = "clip_sign_" + std::to_string(opset);
    auto lib = aot::load_library(aot::build_shared(aot::compile_model(file, (dir / "out").string(), o), aot_test::compiler()));
    auto engine = quiver::onnx::load_onnx(file);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<Tensor> in{Tensor::from_vector<float>({-2, -0.25f, -0.0f, 0, 0.1f, 0.5f, 3, nan, -nan, 1, 2, -1, 0.3f, -0.3f, 7, -7, 0.2f, nan},
                                                      {2, 9})};
    if (opset >= 11) {
      in.push_back(Tensor::scalar(-1.0f));
      in.push_back(Tensor::scalar(0.5f));
    }
    expect_close(lib->run_once(in), engine->run_once(in), "opset " + std::to_string(opset));
  }
}

// A tensor-valued attribute (ConstantOfShape's value).
void attr_tensor(::onnx::NodeProto* n, const std::string& name, const Tensor& t) {
  test::add_attr(n, name, ::onnx::AttributeProto::TENSOR)->mutable_t()->ParseFromString(quiver::onnx::serialize_tensor({"", t}));
}

TEST(Aot, TriluMatchesTheEngine) {
  test::G g(14);
  g.input("x", {-1, 4, 6});
  g.input("k", {}, DType::I64);
  // (upper, k): k < 0, k > 0, the default, beyond the matrix, and k given at run time.
  const std::vector<std::pair<int, int64_t>> cases{{1, -1}, {1, 2}, {0, -2}, {0, 1}, {0, 0}, {1, 9}, {0, -9}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string kn = "k" + std::to_string(i), y = "y" + std::to_string(i);
    g.init(kn, Tensor::scalar<int64_t>(cases[i].second));
    test::attr_int(g.node("Trilu", {"x", kn}, {y}), "upper", cases[i].first);
    g.output(y, {-1, 4, 6});
  }
  g.node("Trilu", {"x"}, {"yu"});
  test::attr_int(g.node("Trilu", {"x", "k"}, {"yl"}), "upper", 0);
  g.output("yu", {-1, 4, 6});
  g.output("yl", {-1, 4, 6});
  auto [lib, engine] = compile_graph(g, "trilu");
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t k : {-3, 0, 2, 100}) {
    std::vector<Tensor> in{random_tensor({3, 4, 6}, rng, u), Tensor::scalar<int64_t>(k)};
    const auto got = lib->run_once(in), want = engine->run_once(in);
    expect_close(got, want, "k " + std::to_string(k));
    // Exact: a copy or a zero per element.
    for (size_t o = 0; o < got.size(); ++o)
      EXPECT_EQ(0, std::memcmp(got[o].data<float>(), want[o].data<float>(), 72 * sizeof(float))) << "output " << o;
  }
}

TEST(Aot, ScatterNDMatchesTheEngine) {
  test::G g(16);
  g.input("data", {-1, 3});
  g.input("rows", {2, 1}, DType::I64);
  g.input("upd", {2, 3});
  g.output("y", {-1, 3});
  g.output("s", {-1, 3});
  g.node("ScatterND", {"data", "rows", "upd"}, {"y"});  // reduction none: whole rows
  // Element-wise with a negative index and a repeated one, reduction add.
  g.init("pts", Tensor::from_vector<int64_t>({0, 0, -1, 2, 0, 0}, {3, 2}));
  g.init("vals", Tensor::from_vector<float>({1.5f, -2, 0.25f}, {3}));
  test::attr_str(g.node("ScatterND", {"data", "pts", "vals"}, {"s"}), "reduction", "add");
  auto [lib, engine] = compile_graph(g, "scatternd");
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t b : {1, 4}) {
    std::vector<Tensor> in{random_tensor({b, 3}, rng, u), Tensor::from_vector<int64_t>({b - 1, -b}, {2, 1}),
                           random_tensor({2, 3}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "batch " + std::to_string(b));
  }
  // An index out of range is an error naming the step, as in the engine.
  std::vector<Tensor> bad{random_tensor({2, 3}, rng, u), Tensor::from_vector<int64_t>({0, 2}, {2, 1}), random_tensor({2, 3}, rng, u)};
  EXPECT_THROW(engine->run_once(bad), Error);
  try {
    lib->run_once(bad);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("y_node"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

// ParT's pair-embedding scatter: index tuples Concat(Unsqueeze(Expand(part, s), -1) ..., axis -1) of a
// batch index Range(N) [N, 1, 1], a head index [1, 3, 1] and the pair indices i, j [pairs] of
// NonZero(Trilu(ones[P, P], k = -1)), s the Shape of their broadcast sum (Add chains whose data
// nobody reads). The compiler fuses each ScatterND with its parts into ai.quiver::ScatterNDParts for
// the code emitter (rt::scatter_parts: no tuple tensor); an Expand with a second reader stays a step
// and its output is a part as is. Against the engine (unfused) for P = 1 (no pairs), 2 and 5, and
// batches 1 and 3; a head index out of range is an error naming the step.
test::G scatter_parts_graph() {
  test::G g(14);
  g.input("x", {-1, 3, -1, -1});
  g.input("h", {1, 3, 1}, DType::I64);
  auto* xd = g.g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  xd->mutable_dim(2)->set_dim_param("P");
  xd->mutable_dim(3)->set_dim_param("P");
  g.node("Shape", {"x"}, {"xs"});
  g.init("i0", Tensor::scalar<int64_t>(0));
  test::attr_int(g.node("Gather", {"xs", "i0"}, {"n"}), "axis", 0);
  g.init("one", Tensor::scalar<int64_t>(1));
  g.node("Range", {"i0", "n", "one"}, {"rn"});
  g.init("to_b", Tensor::from_vector<int64_t>({-1, 1, 1}, {3}));
  g.node("Reshape", {"rn", "to_b"}, {"b"});  // [N, 1, 1]
  g.init("s2", Tensor::from_vector<int64_t>({2}, {1}));
  g.init("s4", Tensor::from_vector<int64_t>({4}, {1}));
  g.node("Slice", {"xs", "s2", "s4"}, {"pp"});  // [P, P]
  attr_tensor(g.node("ConstantOfShape", {"pp"}, {"ones"}), "value", Tensor::from_vector<int64_t>({1}, {1}));
  g.init("km1", Tensor::scalar<int64_t>(-1));
  test::attr_int(g.node("Trilu", {"ones", "km1"}, {"low"}), "upper", 0);
  g.node("NonZero", {"low"}, {"nz"});  // [2, pairs]
  g.init("halves", Tensor::from_vector<int64_t>({1, 1}, {2}));
  test::attr_int(g.node("Split", {"nz", "halves"}, {"nzi", "nzj"}), "axis", 0);
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  g.node("Squeeze", {"nzi", "ax0"}, {"i"});
  g.node("Squeeze", {"nzj", "ax0"}, {"j"});
  // The index shape as the exporter computes it: the parts' broadcast sum, only its Shape read.
  g.node("Add", {"b", "h"}, {"t1"});
  g.node("Add", {"t1", "i"}, {"t2"});
  g.node("Add", {"t2", "j"}, {"t3"});
  g.node("Shape", {"t3"}, {"s"});  // [N, 3, pairs]
  // Updates [N, 3, pairs]: 10 i + j + 100 b + x[0, 0, 0, 0].
  g.init("ten", Tensor::scalar<int64_t>(10));
  g.node("Mul", {"i", "ten"}, {"i10"});
  g.node("Add", {"i10", "j"}, {"ij"});
  g.init("hundred", Tensor::scalar<int64_t>(100));
  g.node("Mul", {"b", "hundred"}, {"b100"});
  g.node("Add", {"ij", "b100"}, {"uij"});
  g.node("Expand", {"uij", "s"}, {"ue"});
  test::attr_int(g.node("Cast", {"ue"}, {"uf"}), "to", 1);
  g.init("zero4", Tensor::from_vector<int64_t>({0, 0, 0, 0}, {4}));
  g.init("one4", Tensor::from_vector<int64_t>({1, 1, 1, 1}, {4}));
  g.node("Slice", {"x", "zero4", "one4"}, {"x0"});
  g.init("to1", Tensor::from_vector<int64_t>({1}, {1}));
  g.node("Reshape", {"x0", "to1"}, {"x01"});
  g.node("Add", {"uf", "x01"}, {"u"});
  auto parts = [&](const std::string& tag, bool shared_i) {
    std::vector<std::string> cat;
    for (const char* p : {"b", "h", "i", "j"}) {
      const std::string e = tag + "_e" + p, q = tag + "_q" + p;
      g.node("Expand", {p, "s"}, {e});
      g.init(tag + "_ax" + p, Tensor::from_vector<int64_t>({-1}, {1}));
      g.node("Unsqueeze", {e, tag + "_ax" + p}, {q});
      cat.push_back(q);
      if (shared_i && std::string(p) == "i") {  // a second reader: this Expand stays a step
        test::attr_int(g.node("Cast", {e}, {tag + "_eif"}), "to", 1);
        test::attr_int(g.node("ReduceSum", {tag + "_eif"}, {tag + "_isum"}), "keepdims", 0);
      }
    }
    test::attr_int(g.node("Concat", cat, {tag + "_idx"}), "axis", -1);
    g.node("ScatterND", {"x", tag + "_idx", "u"}, {tag + "_y"});
  };
  parts("a", false);
  parts("c", true);
  g.output("a_y", {-1, 3, -1, -1});
  g.output("c_y", {-1, 3, -1, -1});
  g.output("c_isum", {});
  auto* od = g.g->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  od->mutable_dim(2)->set_dim_param("P");
  od->mutable_dim(3)->set_dim_param("P");
  od = g.g->mutable_output(1)->mutable_type()->mutable_tensor_type()->mutable_shape();
  od->mutable_dim(2)->set_dim_param("P");
  od->mutable_dim(3)->set_dim_param("P");
  return g;
}

TEST(Aot, ScatterNDWithIndexPartsMatchesTheEngine) {
  auto [lib, engine] = compile_graph(scatter_parts_graph(), "scatter_parts");
  const std::string code = generated_code("scatter_parts");
  EXPECT_EQ(occurrences(code, "rt::scatter_parts("), 2u);
  EXPECT_NE(code.find("c_ei_node (Expand)"), std::string::npos) << "the Expand with a second reader stays a step";
  EXPECT_NE(code.find("a_y_node (ScatterNDParts) + a_y_node (ScatterND) + a_idx_node (Concat) + a_eb_node (Expand)"), std::string::npos) << "the Concat is in the step";
  // Six Adds, int64 and float: one function object per type pair, not one per step.
  EXPECT_EQ(occurrences(code, "struct op_Add_"), 2u);
  EXPECT_NE(code.find("// t1_node (Add): only its dims are read (no buffer, no code)"), std::string::npos);
  for (const char* n : {"t2_node (Add)", "t3_node (Add)"}) {
    // Only their dims are read: each computes dims again after NonZero, but no data and no buffer.
    const size_t fn = code.find(std::string("// ") + n + "\nvoid ");
    ASSERT_NE(fn, std::string::npos) << n;
    const size_t end = code.find("\n}\n", fn);
    EXPECT_EQ(code.substr(fn, end - fn).find("rt::binary"), std::string::npos) << n << " computes no data";
  }
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-1, 1);
  const Tensor heads = Tensor::from_vector<int64_t>({0, -1, 1}, {1, 3, 1});
  for (const auto& [n, p] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 2}, {3, 5}, {2, 4}}) {
    std::vector<Tensor> in{random_tensor({n, 3, p, p}, rng, u), heads};
    expect_close(lib->run_once(in), engine->run_once(in), "N " + std::to_string(n) + ", P " + std::to_string(p));
  }
  std::vector<Tensor> bad{random_tensor({2, 3, 3, 3}, rng, u), Tensor::from_vector<int64_t>({0, 1, 3}, {1, 3, 1})};
  EXPECT_THROW(engine->run_once(bad), Error);
  const Error e = test::expect_error([&] { lib->run_once(bad); });
  EXPECT_NE(std::string(e.what()).find("a_y_node (ScatterNDParts)"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
}

// The engine's own ScatterNDParts kernel (a model holding the fused node) against ScatterND on the
// tuples Concat builds, and its errors: parts whose dims differ, updates of the wrong dims.
TEST(Aot, ScatterNDPartsKernelMatchesScatterND) {
  auto graph = [](bool fused) {
    test::G g(14);
    g.input("x", {3, 4, 5});
    g.input("b", {2, 1}, DType::I64);
    g.input("k", {-1, -1}, DType::I64);
    g.input("u", {-1, -1, 5});
    for (int i : {2, 3})
      for (int d : {0, 1})
        g.g->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(d)->set_dim_param(
            std::string(i == 2 ? "k" : "u") + std::to_string(d));
    g.node("Shape", {"u"}, {"us"});
    g.init("z", Tensor::from_vector<int64_t>({0}, {1}));
    g.init("two", Tensor::from_vector<int64_t>({2}, {1}));
    g.node("Slice", {"us", "z", "two"}, {"s"});  // the index shape: updates' first two dims
    if (fused) {
      auto* n = g.node("ScatterNDParts", {"x", "u", "b", "s", "k"}, {"y"});
      n->set_domain("ai.quiver");
      test::attr_ints(n, "expanded", {1, 0});
    } else {
      g.node("Expand", {"b", "s"}, {"eb"});
      g.init("ax", Tensor::from_vector<int64_t>({-1}, {1}));
      g.node("Unsqueeze", {"eb", "ax"}, {"qb"});
      g.node("Unsqueeze", {"k", "ax"}, {"qk"});
      test::attr_int(g.node("Concat", {"qb", "qk"}, {"idx"}), "axis", -1);
      g.node("ScatterND", {"x", "idx", "u"}, {"y"});
    }
    g.output("y", {3, 4, 5});
    return g;
  };
  auto fused = graph(true).load(), plain = graph(false).load();
  std::mt19937 rng(32);
  std::uniform_real_distribution<float> u(-1, 1);
  // Tuples (b[r], k[r, c]) over a [2, 2] index shape, negative indices included.
  const std::vector<Tensor> in{random_tensor({3, 4, 5}, rng, u), Tensor::from_vector<int64_t>({2, -3}, {2, 1}),
                               Tensor::from_vector<int64_t>({0, 3, 1, -1}, {2, 2}), random_tensor({2, 2, 5}, rng, u)};
  const auto want = plain->run_once(in);
  const auto got = fused->run_once(in);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].dims(), want[0].dims());
  for (int64_t e = 0; e < want[0].numel(); ++e) EXPECT_EQ(got[0].data<float>()[e], want[0].data<float>()[e]) << e;
  // k [2, 3] against the expanded b's [2, 2]: what Concat refuses, named.
  std::vector<Tensor> mismatch = in;
  mismatch[2] = Tensor::from_vector<int64_t>({0, 1, 2, 0, 1, 2}, {2, 3});
  EXPECT_THROW(plain->run_once(mismatch), Error);
  const Error e = test::expect_error([&] { fused->run_once(mismatch); });
  EXPECT_NE(std::string(e.what()).find("index part 1"), std::string::npos) << e.what();
  std::vector<Tensor> oob = in;
  oob[1] = Tensor::from_vector<int64_t>({2, 3}, {2, 1});
  EXPECT_THROW(fused->run_once(oob), Error);
}

// ParticleNet's edge features (get_graph_feature v2: Gather along axis 1 of a [C, N*P] transpose,
// Reshape to [C, N, P, k] by a shape computed from Shape(x), Transpose, Tile of the points, Sub,
// Concat) and their 1x1 Conv: the compiler fuses them into ai.quiver::EdgeConv for the code emitter
// (computed as (W1 - W2) x + W2 f). Against the engine (unfused) at several batches and point counts,
// with negative indices and ones that cross images, for points tiled from [.., 1] and from [.., 2];
// the engine's own EdgeConv kernel (a model holding the fused node) against the unfused graph.
// With `block`, each EdgeConv goes on through the rest of a ParticleNet block (1x1 Convs with and
// without bias and activation, then ReduceMean over the edges, keepdims 0 and 1), which the compiler
// fuses into the EdgeConv node (attribute mean_keepdims) and emits as rt::edge_mean.
test::NumberedG<13> edge_conv_graph(bool fused, bool block = false) {
  const int64_t C = 3, O = 5, k = 4;
  test::NumberedG<13> g;
  g.input("x", {-1, C, -1});
  g.input("idx", {-1}, DType::I64);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  g.init("w", random_tensor({O, 2 * C, 1, 1}, rng, u));
  g.init("b", random_tensor({O}, rng, u));
  g.init("w2", random_tensor({O, 2 * C, 1, 1}, rng, u));
  g.init("fs", Tensor::from_vector<int64_t>({C, -1}, {2}));
  g.init("i0", Tensor::scalar<int64_t>(0));
  g.init("i1", Tensor::scalar<int64_t>(1));
  g.init("i2", Tensor::scalar<int64_t>(2));
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  g.init("ax3", Tensor::from_vector<int64_t>({3}, {1}));
  g.init("m1", Tensor::from_vector<int64_t>({-1}, {1}));
  g.init("last2", Tensor::from_vector<int64_t>({-1, 2 * k}, {2}));
  g.init("rep", Tensor::from_vector<int64_t>({1, 1, 1, k}, {4}));
  g.init("pairs", Tensor::from_vector<int64_t>({0, 0, -1, 2}, {4}));
  test::attr_ints(g.node("Transpose", {"x"}, {"xt"}), "perm", {1, 0, 2});
  g.node("Reshape", {"xt", "fs"}, {"f"});
  g.node("Shape", {"x"}, {"sh"});
  g.node("Gather", {"sh", "i0"}, {"n"});
  g.node("Gather", {"sh", "i1"}, {"c"});
  g.node("Gather", {"sh", "i2"}, {"p"});
  for (const char* v : {"n", "c", "p"}) g.node("Unsqueeze", {v, "ax0"}, {std::string(v) + "1"});
  test::attr_int(g.node("Concat", {"c1", "n1", "p1", "m1"}, {"s"}), "axis", 0);
  test::attr_int(g.node("Concat", {"c1", "n1", "last2"}, {"s2"}), "axis", 0);
  g.node("Unsqueeze", {"x", "ax3"}, {"x4"});
  g.node("Reshape", {"x", "pairs"}, {"xp"});  // [N, C, P / 2, 2]
  g.init("c1w", random_tensor({6, O, 1, 1}, rng, u));
  g.init("c1b", random_tensor({6}, rng, u));
  g.init("c2w", random_tensor({4, 6, 1, 1}, rng, u));
  g.init("c3w", random_tensor({3, O, 1, 1}, rng, u));
  g.init("c3b", random_tensor({3}, rng, u));
  g.init("zero4", Tensor::from_vector<float>({0, 0, 0, 0}, {4}));
  g.init("zeroO", Tensor::from_vector<float>(std::vector<float>(O, 0.f), {O}));
  // The block after edge set 1: Conv(c1w, c1b) + Relu, Conv(c2w), mean over axis -1 (keepdims 0);
  // after edge set 2: Conv(c3w, c3b) + LeakyRelu(0.2), mean over axis 3 (keepdims 1).
  auto block_of = [&](const std::string& y, auto* fused_node) {
    const bool first = y == "y";
    if (fused_node) {
      if (!first) fused_node->add_input("zeroO");
      for (const char* in : first ? std::vector<const char*>{"c1w", "c1b", "c2w", "zero4"} : std::vector<const char*>{"c3w", "c3b"})
        fused_node->add_input(in);
      auto* acts = test::add_attr(fused_node, "acts", ::onnx::AttributeProto::STRINGS);
      auto* al = test::add_attr(fused_node, "alphas", ::onnx::AttributeProto::FLOATS);
      auto* be = test::add_attr(fused_node, "betas", ::onnx::AttributeProto::FLOATS);
      for (const char* a : first ? std::vector<const char*>{"Relu", ""} : std::vector<const char*>{"LeakyRelu"}) acts->add_strings(a);
      for (float a : first ? std::vector<float>{0, 0} : std::vector<float>{0.2f}) {
        al->add_floats(a);
        be->add_floats(0);
      }
      test::attr_int(fused_node, "mean_keepdims", first ? 0 : 1);
      fused_node->set_output(0, first ? "m" : "m2");
      return;
    }
    if (first) {
      test::attr_ints(g.node("Conv", {y, "c1w", "c1b"}, {"l1_pre"}), "kernel_shape", {1, 1});
      g.node("Relu", {"l1_pre"}, {"l1"});
      test::attr_ints(g.node("Conv", {"l1", "c2w"}, {"l2"}), "kernel_shape", {1, 1});
      auto* rm = g.node("ReduceMean", {"l2"}, {"m"});
      test::attr_ints(rm, "axes", {-1});
      test::attr_int(rm, "keepdims", 0);
    } else {
      test::attr_ints(g.node("Conv", {y, "c3w", "c3b"}, {"l3_pre"}), "kernel_shape", {1, 1});
      test::attr_float(g.node("LeakyRelu", {"l3_pre"}, {"l3"}), "alpha", 0.2f);
      test::attr_ints(g.node("ReduceMean", {"l3"}, {"m2"}), "axes", {3});
    }
  };
  auto edges = [&](const std::string& pts, const std::string& shape, const std::string& w, bool bias, bool relu,
                   const std::string& y) {
    const std::string conv_out = relu ? y + "_pre" : y;
    if (fused) {
      std::vector<std::string> in{pts, "f", "idx", shape, w};
      if (bias) in.push_back("b");
      auto* n = g.node("EdgeConv", in, {y});
      n->set_domain("ai.quiver");
      test::attr_int(n, "k", k);
      if (relu) test::attr_str(n, "_quiver_act", "Relu");
      if (block) block_of(y, n);
      return;
    }
    test::attr_int(g.node("Gather", {"f", "idx"}, {y + "_g"}), "axis", 1);
    g.node("Reshape", {y + "_g", shape}, {y + "_r"});
    test::attr_ints(g.node("Transpose", {y + "_r"}, {y + "_G"}), "perm", {1, 0, 2, 3});
    g.node("Tile", {pts, "rep"}, {y + "_T"});
    g.node("Sub", {y + "_G", y + "_T"}, {y + "_S"});
    test::attr_int(g.node("Concat", {y + "_T", y + "_S"}, {y + "_cat"}), "axis", 1);
    std::vector<std::string> in{y + "_cat", w};
    if (bias) in.push_back("b");
    test::attr_ints(g.node("Conv", in, {conv_out}), "kernel_shape", {1, 1});
    if (relu) g.node("Relu", {conv_out}, {y});
    if (block) block_of(y, static_cast<::onnx::NodeProto*>(nullptr));
  };
  edges("x4", "s", "w", true, true, "y");
  edges("xp", "s2", "w2", false, false, "y2");
  if (block) {
    g.output("m", {-1, 4, -1});
    g.output("m2", {-1, 3, -1, 1});
  } else {
    g.output("y", {-1, O, -1, k});
    g.output("y2", {-1, O, -1, 2 * k});
  }
  // Own symbols for the edge count and the half point count (numbered dims go by position).
  g.g->mutable_input(1)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("edges");
  g.g->mutable_output(1)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2)->set_dim_param("half");
  return g;
}

TEST(Aot, EdgeConvMatchesTheEngine) {
  auto [lib, engine] = compile_graph(edge_conv_graph(false), "edge_conv");
  const std::string code = generated_code("edge_conv");
  EXPECT_EQ(occurrences(code, "rt::edge_conv(a)"), 2u) << "both edge blocks fused";
  // Each fused step's function is commented with every node it replaced.
  size_t named = 0;
  for (size_t at = code.find("\n// "); at != std::string::npos; at = code.find("\n// ", at + 1)) {
    const std::string line = code.substr(at + 1, code.find('\n', at + 1) - at - 1);
    if (line.find("(EdgeConv)") == std::string::npos) continue;
    bool all = true;
    for (const char* op : {"(Conv)", "(Gather)", "(Reshape)", "(Transpose)", "(Tile)", "(Sub)", "(Concat)"})
      all = all && line.find(op) != std::string::npos;
    EXPECT_TRUE(all) << line;
    ++named;
  }
  EXPECT_EQ(named, 2u);
  const test::NumberedG<13> fg = edge_conv_graph(true);
  auto engine_fused = quiver::onnx::load_onnx_bytes(fg.bytes(), "", {}, {});
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-2, 2);
  for (const auto& [n, p] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {3, 6}, {2, 16}, {5, 34}}) {
    const int64_t L = n * p * 4;
    std::uniform_int_distribution<int64_t> pick(-n * p, n * p - 1);  // negative ones count from the end
    Tensor idx = Tensor::empty(DType::I64, {L});
    for (int64_t i = 0; i < L; ++i) idx.data<int64_t>()[i] = pick(rng);
    std::vector<Tensor> in{random_tensor({n, 3, p}, rng, u), idx};
    const std::string what = "N " + std::to_string(n) + ", P " + std::to_string(p);
    const auto want = engine->run_once(in);
    expect_close(lib->run_once(in), want, what);
    expect_close(engine_fused->run_once(in), want, what + " (the engine's EdgeConv kernel)");
  }
  // An index out of range is an error naming the step, as in the engine's Gather.
  std::vector<Tensor> bad{random_tensor({1, 3, 2}, rng, u), Tensor::from_vector<int64_t>({0, 1, 2, 0, 1, 0, 1, 0}, {8})};
  EXPECT_THROW(engine->run_once(bad), Error);
  EXPECT_THROW(engine_fused->run_once(bad), Error);
  try {
    lib->run_once(bad);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

// The rest of each block fused too: one rt::edge_mean step per block (no rt::edge_conv, no Conv or
// ReduceMean step left), commented with every node it replaced; against the engine (unfused) with
// points spanning one, two and several tiles of the step (128 edge rows), and the engine's own kernel
// for the fused node against the unfused graph.
TEST(Aot, EdgeConvBlockRunsTileByTileAsTheEngine) {
  auto [lib, engine] = compile_graph(edge_conv_graph(false, true), "edge_block");
  const std::string code = generated_code("edge_block");
  auto count = [&](const std::string& what) { return occurrences(code, what); };
  EXPECT_EQ(count("rt::edge_mean(a)"), 2u);
  EXPECT_EQ(count("rt::edge_conv(a)"), 0u);
  EXPECT_EQ(count("rt::conv(a)"), 0u);
  EXPECT_EQ(count("rt::reduce("), 0u);
  size_t named = 0;
  for (size_t at = code.find("\n// "); at != std::string::npos; at = code.find("\n// ", at + 1)) {
    const std::string line = code.substr(at + 1, code.find('\n', at + 1) - at - 1);
    if (line.find("(EdgeConv)") == std::string::npos) continue;
    const bool first = line.find("m_node (ReduceMean)") != std::string::npos;
    for (const char* op : {"(Gather)", "(Tile)", "(Concat)"}) EXPECT_NE(line.find(op), std::string::npos) << op << ": " << line;
    for (const char* op : first ? std::vector<const char*>{"l1_pre_node (Conv)", "l1_node (Relu)", "l2_node (Conv)"}
                                : std::vector<const char*>{"l3_pre_node (Conv)", "l3_node (LeakyRelu)", "m2_node (ReduceMean)"})
      EXPECT_NE(line.find(op), std::string::npos) << op << ": " << line;
    ++named;
  }
  EXPECT_EQ(named, 2u);
  const test::NumberedG<13> fg = edge_conv_graph(true, true);
  auto engine_fused = quiver::onnx::load_onnx_bytes(fg.bytes(), "", {}, {});
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-2, 2);
  for (const auto& [n, p] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {3, 6}, {2, 34}, {2, 70}, {1, 130}}) {
    const int64_t L = n * p * 4;
    std::uniform_int_distribution<int64_t> pick(-n * p, n * p - 1);
    Tensor idx = Tensor::empty(DType::I64, {L});
    for (int64_t i = 0; i < L; ++i) idx.data<int64_t>()[i] = pick(rng);
    std::vector<Tensor> in{random_tensor({n, 3, p}, rng, u), idx};
    const std::string what = "N " + std::to_string(n) + ", P " + std::to_string(p);
    const auto want = engine->run_once(in);
    ASSERT_EQ(want.size(), 2u);
    EXPECT_EQ(want[0].dims(), (std::vector<int64_t>{n, 4, p}));
    EXPECT_EQ(want[1].dims(), (std::vector<int64_t>{n, 3, p / 2, 1}));
    expect_close(lib->run_once(in), want, what);
    expect_close(engine_fused->run_once(in), want, what + " (the engine's EdgeConv kernel)");
  }
  std::vector<Tensor> bad{random_tensor({1, 3, 2}, rng, u), Tensor::from_vector<int64_t>({0, 1, 2, 0, 1, 0, 1, 0}, {8})};
  EXPECT_THROW(engine_fused->run_once(bad), Error);
  const Error e = test::expect_error([&] { lib->run_once(bad); });
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
}

// Runs of position-wise nodes with two or more 1x1 Convs become one PointwiseChain step run a tile of
// positions at a time: BatchNorm -> Gelu -> Conv + Relu -> Gelu (tanh) -> Conv without bias over
// [N, 4, L], and Conv + LeakyRelu -> Conv over [N, 3, H, W]; a Conv whose output has a second reader
// ends its run. Against the engine (unfused) with L spanning one to three tiles (512 rows), and the
// engine's own kernel for a fused node against the unfused nodes.
test::NumberedG<20> pointwise_graph(bool fused) {
  test::NumberedG<20> g;
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> u(-1, 1), pos(0.5f, 1.5f);
  g.input("x", {-1, 4, -1});
  g.input("z", {-1, 3, -1, -1});
  for (int d : {2, 3})  // own symbols (numbered dims go by position)
    g.g->mutable_input(1)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(d)->set_dim_param("z" + std::to_string(d));
  g.init("w1", random_tensor({8, 4, 1}, rng, u));
  g.init("b1", random_tensor({8}, rng, u));
  g.init("w2", random_tensor({6, 8, 1}, rng, u));
  g.init("v1", random_tensor({5, 3, 1, 1}, rng, u));
  g.init("c1", random_tensor({5}, rng, u));
  g.init("v2", random_tensor({7, 5, 1, 1}, rng, u));
  g.init("c2", random_tensor({7}, rng, u));
  if (fused) {  // only the second run, as the fusion would write it
    auto* n = g.node("PointwiseChain", {"z", "v1", "c1", "v2", "c2"}, {"q"});
    n->set_domain("ai.quiver");
    auto* layers = test::add_attr(n, "layers", ::onnx::AttributeProto::STRINGS);
    auto* acts = test::add_attr(n, "acts", ::onnx::AttributeProto::STRINGS);
    auto* al = test::add_attr(n, "alphas", ::onnx::AttributeProto::FLOATS);
    auto* be = test::add_attr(n, "betas", ::onnx::AttributeProto::FLOATS);
    for (const char* l : {"Conv", "Conv"}) layers->add_strings(l);
    for (const char* a : {"LeakyRelu", ""}) acts->add_strings(a);
    for (float a : {0.1f, 0.f}) al->add_floats(a);
    for (int i = 0; i < 2; ++i) be->add_floats(0.f);
    g.output("q", {-1, 7, -1, -1});
    return g;
  }
  g.init("sc", random_tensor({4}, rng, pos));
  g.init("sh", random_tensor({4}, rng, u));
  g.init("mu", random_tensor({4}, rng, u));
  g.init("var", random_tensor({4}, rng, pos));
  g.node("BatchNormalization", {"x", "sc", "sh", "mu", "var"}, {"bn"});
  g.node("Gelu", {"bn"}, {"g1"});
  g.node("Conv", {"g1", "w1", "b1"}, {"c1o"});
  g.node("Relu", {"c1o"}, {"r1"});
  test::attr_str(g.node("Gelu", {"r1"}, {"g2"}), "approximate", "tanh");
  g.node("Conv", {"g2", "w2"}, {"y"});
  g.output("y", {-1, 6, -1});
  g.node("Conv", {"z", "v1", "c1"}, {"d1"});
  test::attr_float(g.node("LeakyRelu", {"d1"}, {"e1"}), "alpha", 0.1f);
  g.node("Conv", {"e1", "v2", "c2"}, {"q"});
  g.output("q", {-1, 7, -1, -1});
  // A run cut short: the first Conv's output is also a graph output, so only Conv -> Conv after it
  // would remain with one Conv: no chain.
  g.node("Conv", {"z", "v1", "c1"}, {"o1"});
  g.node("Conv", {"o1", "v2", "c2"}, {"o2"});
  g.output("o1", {-1, 5, -1, -1});
  g.output("o2", {-1, 7, -1, -1});
  return g;
}

TEST(Aot, PointwiseChainRunsTileByTileAsTheEngine) {
  auto [lib, engine] = compile_graph(pointwise_graph(false), "pointwise");
  const std::string code = generated_code("pointwise");
  auto count = [&](const std::string& what) { return occurrences(code, what); };
  EXPECT_EQ(count("rt::pointwise_chain(a)"), 2u);
  EXPECT_EQ(count("rt::conv(a)"), 2u) << "o1 and o2 stay Conv steps";
  for (const char* node : {"bn_node (BatchNormalization)", "g1_node (Gelu)", "r1_node (Relu)", "g2_node (Gelu)", "e1_node (LeakyRelu)"})
    EXPECT_NE(code.find(node), std::string::npos) << node << " named in the fused steps' comments";
  std::mt19937 rng(22);
  std::uniform_real_distribution<float> u(-2, 2);
  const test::NumberedG<20> fg = pointwise_graph(true);
  auto engine_fused = quiver::onnx::load_onnx_bytes(fg.bytes(), "", {}, {});
  for (const auto& [n, l] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 37}, {3, 512}, {2, 1100}}) {
    const int64_t h = l % 7 + 1, w = (l + 1) / h + 1;
    std::vector<Tensor> in{random_tensor({n, 4, l}, rng, u), random_tensor({n, 3, h, w * 4}, rng, u)};
    const std::string what = "N " + std::to_string(n) + ", L " + std::to_string(l);
    const auto want = engine->run_once(in);
    expect_close(lib->run_once(in), want, what);
    const std::vector<Tensor> q{want[1]};
    expect_close(engine_fused->run_once(in), q, what + " (the engine's PointwiseChain kernel)");
  }
  // Wrong channels: an error naming the step, not garbage.
  std::vector<Tensor> bad{random_tensor({1, 5, 3}, rng, u), random_tensor({1, 3, 2, 2}, rng, u)};
  EXPECT_THROW(lib->run_once(bad), Error);
}

// NonZero's count is data-dependent: later steps (Transpose, Shape -> Gather -> ConstantOfShape,
// ScatterND, ReduceSum) take it at run time; the workspace is sized for every element non-zero.
TEST(Aot, NonZeroCountIsARuntimeDim) {
  test::NumberedG<14> g;
  g.input("x", {-1, -1});
  g.node("NonZero", {"x"}, {"nz"});
  test::attr_ints(g.node("Transpose", {"nz"}, {"t"}), "perm", {1, 0});
  g.node("Shape", {"t"}, {"ts"});
  g.init("zero", Tensor::scalar<int64_t>(0));
  test::attr_int(g.node("Gather", {"ts", "zero"}, {"cnt"}), "axis", 0);
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  g.node("Unsqueeze", {"cnt", "ax0"}, {"cnt1"});
  attr_tensor(g.node("ConstantOfShape", {"cnt1"}, {"ones"}), "value", Tensor::from_vector<float>({1}, {1}));
  g.node("Shape", {"x"}, {"xs"});
  attr_tensor(g.node("ConstantOfShape", {"xs"}, {"zeros"}), "value", Tensor::from_vector<float>({0}, {1}));
  g.node("ScatterND", {"zeros", "t", "ones"}, {"mask"});
  test::attr_int(g.node("ReduceSum", {"ones"}, {"count"}), "keepdims", 1);
  test::attr_int(g.node("Cast", {"cnt"}, {"cntf"}), "to", 1);
  g.output("mask", {-1, -1});
  g.output("count", {1});
  g.output("cntf", {});
  auto [lib, engine] = compile_graph(g, "nonzero");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<std::pair<std::string, Tensor>> cases{
      {"all zeros", Tensor::from_vector<float>(std::vector<float>(12, 0.0f), {3, 4})},
      {"all ones", Tensor::from_vector<float>(std::vector<float>(12, 1.0f), {3, 4})},
      {"mixed", Tensor::from_vector<float>({0, -0.0f, 2, nan, 0, 0, -1, 0, 0.5f, 0, 0, 3}, {4, 3})},
      {"one element", Tensor::from_vector<float>({7}, {1, 1})},
      {"random", random_tensor({5, 7}, rng, u)}};
  for (auto& [what, x] : cases) {
    const std::vector<Tensor> in{x};
    expect_close(lib->run_once(in), engine->run_once(in), what);
  }
}

// A graph output with named dims: digits for a fixed dim, else the symbol (exporters name NonZero's
// count, e.g. "NonZero_dim_1").
void output_with_dims(test::G& g, const std::string& name, DType t, const std::vector<std::string>& dims) {
  auto* v = g.g->add_output();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int>(t));
  auto* shape = tt->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (std::isdigit(static_cast<unsigned char>(d[0])) != 0) dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

// TopK with k from tensor data, not from dims: a graph input (a run-time k), and the count of positive
// elements of x (computed from its values). The workspace is sized for k = the axis' dim; each call
// sets the outputs' dims (and the dims of the steps after them) from k. A k past the dim, or a K of two
// elements, is an error naming the step, as in the engine.
TEST(Aot, TopKWithKFromTensorDataIsBoundedByTheAxis) {
  test::NumberedG<14> g;
  g.input("x", {-1, -1});
  g.input("kk", {1}, DType::I64);
  test::attr_int(g.node("TopK", {"x", "kk"}, {"vals", "idx"}), "axis", 1);
  g.node("Relu", {"vals"}, {"rv"});
  g.init("ax1", Tensor::from_vector<int64_t>({1}, {1}));
  test::attr_int(g.node("ReduceSum", {"vals", "ax1"}, {"rs"}), "keepdims", 0);
  g.init("zero", Tensor::scalar<float>(0));
  g.node("Greater", {"x", "zero"}, {"pos"});
  test::attr_int(g.node("Cast", {"pos"}, {"posf"}), "to", 1);
  test::attr_int(g.node("ReduceSum", {"posf"}, {"npos"}), "keepdims", 1);  // [1, 1]
  g.init("one", Tensor::from_vector<int64_t>({1}, {1}));
  g.node("Reshape", {"npos", "one"}, {"nposr"});
  test::attr_int(g.node("Cast", {"nposr"}, {"k2"}), "to", 7);
  g.init("flat", Tensor::from_vector<int64_t>({-1}, {1}));
  g.node("Reshape", {"x", "flat"}, {"xf"});
  test::attr_int(g.node("TopK", {"xf", "k2"}, {"top_pos", "top_pos_idx"}), "axis", 0);
  output_with_dims(g, "vals", DType::F32, {"n", "k"});
  output_with_dims(g, "idx", DType::I64, {"n", "k"});
  output_with_dims(g, "rv", DType::F32, {"n", "k"});
  output_with_dims(g, "rs", DType::F32, {"n"});
  output_with_dims(g, "top_pos", DType::F32, {"npos"});
  std::string path;
  auto [lib, engine] = compile_graph(g, "topk_data_k", &path);
  // No step refused, and the TopK steps set their dims when they run.
  EXPECT_EQ(occurrences(generated_code("topk_data_k"), "k (input K) is outside"), 2u);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  const Tensor x = random_tensor({4, 6}, rng, u);
  Tensor ties = Tensor::from_vector<float>({1, 1, 0, 1, 0, 0, -1, 2, 2, 2, 2, 2}, {2, 6});
  auto k_of = [](int64_t k) { return Tensor::from_vector<int64_t>({k}, {1}); };
  Session session(lib);
  std::vector<Tensor> out;
  for (const auto& [what, xs, k] : std::vector<std::tuple<std::string, Tensor, int64_t>>{
           {"k 3", x, 3}, {"k 0", x, 0}, {"k = dim", x, 6}, {"k 1", x, 1}, {"ties, k 4", ties, 4},
           {"all negative", Tensor::from_vector<float>(std::vector<float>(6, -1.0f), {1, 6}), 2}}) {
    const std::vector<Tensor> in{xs, k_of(k)};
    const auto want = engine->run_once(in);
    const auto got = lib->run_once(in);
    expect_close(got, want, what);
    ASSERT_EQ(got.size(), 5u);
    EXPECT_EQ(got[0].dims(), (std::vector<int64_t>{xs.dim(0), k})) << what;
    EXPECT_EQ(got[1].dims(), (std::vector<int64_t>{xs.dim(0), k})) << what;
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i].dtype() != DType::I64) continue;
      EXPECT_EQ(std::memcmp(got[i].data<int64_t>(), want[i].data<int64_t>(), want[i].nbytes()), 0) << what << " output " << i;
    }
    session.run(in, out);  // one state for k that shrinks and grows again
    expect_close(out, want, what + " (one state for every case)");
  }
  // k past the axis' dim or negative: errors naming the TopK step; a K of two elements: the input.
  for (const auto& [what, k, names] : std::vector<std::tuple<std::string, Tensor, std::string>>{
           {"k past the dim", k_of(7), "TopK"},
           {"negative k", k_of(-1), "TopK"},
           {"two elements", Tensor::from_vector<int64_t>({2, 2}, {2}), "'kk'"}}) {
    const std::vector<Tensor> in{x, k}, good{x, k_of(2)};
    EXPECT_THROW(engine->run_once(in), Error) << what;
    try {
      lib->run_once(in);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(names), std::string::npos) << what << ": " << err.what();
    }
    expect_close(lib->run_once(good), engine->run_once(good), what + ", then a good call");
  }
}

// Outputs whose dims depend on the data: NonZero itself, the values of x at its coordinates (Gather
// of the flattened x at row * ncols + col), its transpose and the sum over its rows; next to them an
// output of the input's dims (Relu) and a sum of everything (a scalar: computed again after NonZero,
// but of fixed dims).
test::NumberedG<14> nonzero_outputs_graph() {
  test::NumberedG<14> g;
  g.input("x", {-1, -1});
  g.node("NonZero", {"x"}, {"nz"});
  g.init("i0", Tensor::scalar<int64_t>(0));
  g.init("i1", Tensor::scalar<int64_t>(1));
  test::attr_int(g.node("Gather", {"nz", "i0"}, {"rows"}), "axis", 0);
  test::attr_int(g.node("Gather", {"nz", "i1"}, {"cols"}), "axis", 0);
  g.node("Shape", {"x"}, {"xs"});
  test::attr_int(g.node("Gather", {"xs", "i1"}, {"ncols"}), "axis", 0);
  g.node("Mul", {"rows", "ncols"}, {"row_start"});
  g.node("Add", {"row_start", "cols"}, {"lin"});
  g.init("flat", Tensor::from_vector<int64_t>({-1}, {1}));
  g.node("Reshape", {"x", "flat"}, {"xf"});
  test::attr_int(g.node("Gather", {"xf", "lin"}, {"vals"}), "axis", 0);
  test::attr_ints(g.node("Transpose", {"nz"}, {"t"}), "perm", {1, 0});
  test::attr_int(g.node("Cast", {"nz"}, {"nzf"}), "to", 1);
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  test::attr_int(g.node("ReduceSum", {"nzf", "ax0"}, {"rsum"}), "keepdims", 0);
  test::attr_int(g.node("ReduceSum", {"nzf"}, {"total"}), "keepdims", 0);
  g.node("Relu", {"x"}, {"y"});
  output_with_dims(g, "nz", DType::I64, {"2", "nnz"});
  output_with_dims(g, "vals", DType::F32, {"nnz"});
  output_with_dims(g, "t", DType::I64, {"nnz", "2"});
  output_with_dims(g, "rsum", DType::F32, {"nnz"});
  output_with_dims(g, "y", DType::F32, {"n1", "n2"});
  output_with_dims(g, "total", DType::F32, {});
  return g;
}

// nonzero_outputs_graph() compiled and built once per process, in a directory of the calling test's
// own: the library's path and the engine.
std::pair<std::string, std::shared_ptr<const Model>> nonzero_outputs_library() {
  static const auto built = [] {
    std::string path;
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto models = compile_graph(nonzero_outputs_graph(), "nonzero_out", &path, "nonzero_out_" + test);
    return std::make_pair(path, models.second);
  }();
  return built;
}

// Inputs with no, some and every element non-zero (NaN and -0 among them), as [rows, cols].
std::vector<std::pair<std::string, Tensor>> nonzero_cases() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.5f, 2);
  return {{"all zeros", Tensor::from_vector<float>(std::vector<float>(12, 0.0f), {3, 4})},
          {"some", Tensor::from_vector<float>({0, -0.0f, 2, nan, 0, 0, -1, 0, 0.5f, 0, 0, 3}, {4, 3})},
          {"all", Tensor::from_vector<float>(std::vector<float>(10, 1.0f), {2, 5})},
          {"one zero", Tensor::from_vector<float>({0}, {1, 1})},
          {"one non-zero", Tensor::from_vector<float>({-4}, {1, 1})},
          {"some of a wide row", Tensor::from_vector<float>({0, 0, 0, 5, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 7}, {1, 17})},
          {"random", random_tensor({6, 7}, rng, u)}};
}

int64_t count_non_zero(const Tensor& x) {
  int64_t c = 0;
  for (int64_t i = 0; i < x.numel(); ++i) c += x.data<float>()[i] != 0 ? 1 : 0;
  return c;
}

// Through the aot backend (what quiver infer / bench / compile --check run): every output has the dims
// the data gives it, and equals the engine's, for one call per state and for one state reused across
// counts that shrink and grow again.
TEST(Aot, OutputsWithDataDependentDimsHaveTheirActualDims) {
  const auto [path, engine] = nonzero_outputs_library();
  auto lib = aot::load_library(path);
  Session session(lib);
  std::vector<Tensor> out;
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& [what, x] : nonzero_cases()) {
      const std::vector<Tensor> in{x};
      const auto want = engine->run_once(in);
      const int64_t cnt = count_non_zero(x);
      const auto got = lib->run_once(in);
      expect_close(got, want, what);
      ASSERT_EQ(got.size(), 6u);
      EXPECT_EQ(got[0].dims(), (std::vector<int64_t>{2, cnt})) << what;
      EXPECT_EQ(got[1].dims(), (std::vector<int64_t>{cnt})) << what;
      EXPECT_EQ(got[2].dims(), (std::vector<int64_t>{cnt, 2})) << what;
      EXPECT_EQ(got[4].dims(), x.dims()) << what;
      session.run(in, out);
      expect_close(out, want, what + " (one state for every case)");
    }
  // inspect names the data-dependent outputs and their axes.
  std::ostringstream d;
  lib->describe(d);
  EXPECT_NE(d.str().find("nz[1] vals[0] t[0] rsum[0]\n"), std::string::npos) << d.str();
}

// The C ABI: info marks the data-dependent axes; run_dims writes each output's dims; run keeps working
// where they equal output_dims() (the bound) and fails naming the output and run_dims where not.
TEST(Aot, DataDependentOutputDimsThroughTheCAbi) {
  const auto [path, engine] = nonzero_outputs_library();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_TRUE(h) << dlerror();
  auto entry = reinterpret_cast<const quiver_aot_api* (*)()>(dlsym(h, "quiver_aot_entry"));
  ASSERT_TRUE(entry);
  const quiver_aot_api* api = entry();
  ASSERT_EQ(api->abi_version, 3);
  ASSERT_TRUE(api->run_dims);
  const auto info = nlohmann::json::parse(api->info());
  std::map<std::string, std::string> axes;
  for (const auto& o : info.at("outputs"))
    axes[o.at("name").get<std::string>()] = o.contains("data_dependent_axes") ? o.at("data_dependent_axes").dump() : "-";
  EXPECT_EQ(axes, (std::map<std::string, std::string>{
                      {"nz", "[1]"}, {"vals", "[0]"}, {"t", "[0]"}, {"rsum", "[0]"}, {"y", "-"}, {"total", "-"}}));
  char err[512] = {0};
  for (const auto& [what, x] : nonzero_cases()) {
    const std::vector<Tensor> in{x};
    const auto want = engine->run_once(in);
    const int64_t dims[2] = {x.dim(0), x.dim(1)};
    size_t ws_bytes = 0;
    ASSERT_EQ(api->workspace_bytes(dims, &ws_bytes, err, sizeof err), 0) << err;
    std::vector<unsigned char> ws(ws_bytes);
    // Buffers at the bound (output_dims), guarded by a canary beyond it.
    std::vector<std::vector<unsigned char>> bufs;
    std::vector<void*> outs;
    std::vector<size_t> bound_bytes;
    for (int k = 0; k < 6; ++k) {
      int64_t od[QUIVER_AOT_MAX_RANK];
      int rank = 0;
      ASSERT_EQ(api->output_dims(dims, k, od, &rank, err, sizeof err), 0) << err;
      int64_t n = 1;
      for (int a = 0; a < rank; ++a) n *= od[a];
      bound_bytes.push_back(static_cast<size_t>(n) * dtype_size(want[static_cast<size_t>(k)].dtype()));
      bufs.emplace_back(bound_bytes.back() + 64, 0xa5);
    }
    for (auto& b : bufs) outs.push_back(b.data());
    const void* ins[1] = {x.raw()};
    int ranks[6];
    int64_t od[6 * QUIVER_AOT_MAX_RANK];
    ASSERT_EQ(api->run_dims(dims, ins, outs.data(), ranks, od, ws.data(), ws.size(), err, sizeof err), 0) << what << ": " << err;
    for (size_t k = 0; k < 6; ++k) {
      const std::vector<int64_t> got_dims(od + k * QUIVER_AOT_MAX_RANK, od + k * QUIVER_AOT_MAX_RANK + ranks[k]);
      EXPECT_EQ(got_dims, want[k].dims()) << what << ", output " << k;
      if (got_dims != want[k].dims()) continue;
      const Tensor got = Tensor::view(want[k].dtype(), got_dims, bufs[k].data());
      EXPECT_EQ(quiver::onnx::compare_tensors(got, want[k], kTol), "") << what << ", output " << k;
      for (size_t b = bound_bytes[k]; b < bufs[k].size(); ++b) ASSERT_EQ(bufs[k][b], 0xa5) << what << ": written past the bound";
    }
    const int rc = api->run(dims, ins, outs.data(), ws.data(), ws.size(), err, sizeof err);
    if (count_non_zero(x) == x.numel()) {
      EXPECT_EQ(rc, 0) << what << ": every element non-zero: the dims are the bound's: " << err;
    } else {
      EXPECT_NE(rc, 0) << what;
      EXPECT_NE(std::string(err).find("output nz depend on tensor data and differ from output_dims(): nonzero_out_run_dims"),
                std::string::npos)
          << err;
    }
  }
  const int64_t dims[2] = {1, 1};
  const float one = 1;
  const void* ins[1] = {&one};
  int64_t nz[2], t[2];
  float vals[1], rsum[1], y[1], total[1];
  void* outs[6] = {nz, vals, t, rsum, y, total};
  std::vector<unsigned char> ws(1 << 16);
  int64_t od[6 * QUIVER_AOT_MAX_RANK];
  EXPECT_NE(api->run_dims(dims, ins, outs, nullptr, od, ws.data(), ws.size(), err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("out_ranks or out_dims is null"), std::string::npos) << err;
  dlclose(h);
}

// The C++ API of such a model: Outputs::dims, set by run(); a program built with the plain compiler.
TEST(Aot, DataDependentOutputDimsThroughTheCxxApi) {
  const fs::path dir = fs::path(nonzero_outputs_library().first).parent_path(), app = out_root() / "nonzero_out_app";
  fs::create_directories(app);
  std::ofstream(app / "main.cpp")
      << "#include <cstdio>\n#include <vector>\n#include \"nonzero_out.hpp\"\n"
      << "int main() {\n  nonzero_out::Inputs in;\n  in.dims.n1 = 2;\n  in.dims.n2 = 3;\n"
      << "  const float x[6] = {0, 1, 0, 2, 0, 3};\n  in.x = x;\n"
      << "  std::vector<int64_t> nz(6 * 2), t(6 * 2);\n  std::vector<float> vals(6), rsum(6), y(6), total(1);\n"
      << "  nonzero_out::Outputs out;\n  out.nz = nz.data();\n  out.vals = vals.data();\n  out.t = t.data();\n"
      << "  out.rsum = rsum.data();\n  out.y = y.data();\n  out.total = total.data();\n"
      << "  std::vector<unsigned char> ws(nonzero_out::workspace_bytes(in.dims));\n"
      << "  nonzero_out::run(in, out, ws.data(), ws.size());\n"
      << "  const auto& d = out.dims;\n"
      << "  std::printf(\"nz %d [%lld %lld] t [%lld %lld] vals [%lld] y [%lld %lld] total %d\\n\", d.nz.rank,\n"
      << "              (long long)d.nz.d[0], (long long)d.nz.d[1], (long long)d.t.d[0], (long long)d.t.d[1],\n"
      << "              (long long)d.vals.d[0], (long long)d.y.d[0], (long long)d.y.d[1], d.total.rank);\n"
      << "  for (int64_t i = 0; i < d.nz.d[0] * d.nz.d[1]; ++i) std::printf(\"%lld \", (long long)nz[i]);\n"
      << "  for (int64_t i = 0; i < d.vals.d[0]; ++i) std::printf(\"%g \", vals[i]);\n  std::printf(\"\\n\");\n}\n";
  int rc = 0;
  const std::string out = run_command(aot_test::compiler() + " -std=c++17 -O1 -I" + dir.string() + " " + (app / "main.cpp").string() +
                                          " " + (dir / "nonzero_out.cpp").string() + " " + (dir / "nonzero_out_weights.cpp").string() +
                                          " -o " + (app / "app").string() + " && " + (app / "app").string(),
                                      &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("nz 2 [2 3] t [3 2] vals [3] y [2 3] total 0\n0 1 1 1 0 2 1 2 3 \n"), std::string::npos) << out;
}

// Past the bound: a dim that shrinks as NonZero's count grows ([rows * cols - count] zeros) has its
// bound at count = every element; fewer non-zero elements need more than the workspace holds, an
// error naming the step.
TEST(Aot, DataDependentDimsPastTheirBoundAreAnErrorNamingTheStep) {
  test::NumberedG<14> g;
  g.input("x", {-1, -1});
  g.node("NonZero", {"x"}, {"nz"});
  g.node("Shape", {"nz"}, {"nzs"});
  g.init("i0", Tensor::scalar<int64_t>(0));
  g.init("i1", Tensor::scalar<int64_t>(1));
  test::attr_int(g.node("Gather", {"nzs", "i1"}, {"cnt"}), "axis", 0);
  g.node("Shape", {"x"}, {"xs"});
  test::attr_int(g.node("Gather", {"xs", "i0"}, {"r"}), "axis", 0);
  test::attr_int(g.node("Gather", {"xs", "i1"}, {"c"}), "axis", 0);
  g.node("Mul", {"r", "c"}, {"n"});
  g.node("Sub", {"n", "cnt"}, {"zeros_n"});
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  g.node("Unsqueeze", {"zeros_n", "ax0"}, {"zs"});
  attr_tensor(g.node("ConstantOfShape", {"zs"}, {"pad"}), "value", Tensor::from_vector<float>({0}, {1}));
  output_with_dims(g, "pad", DType::F32, {"n_zero"});
  auto [lib, engine] = compile_graph(g, "nonzero_past_bound");
  const std::vector<Tensor> every{Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3})};
  expect_close(lib->run_once(every), engine->run_once(every), "every element non-zero");
  const std::vector<Tensor> some{Tensor::from_vector<float>({1, 0, 3, 0, 5, 6}, {2, 3})};
  EXPECT_EQ(engine->run_once(some)[0].dims(), (std::vector<int64_t>{2}));
  try {
    lib->run_once(some);
    ADD_FAILURE() << "no error past the bound";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pad_node (ConstantOfShape): data-dependent dims above the bound"), std::string::npos)
        << e.what();
  }
}

// If whose condition the compiler folds: `squeeze(1)` of a dim that is 1 only through an
// expand(-1) pattern (Shape -> Gather -> Concat -> Equal/Where -> Expand), as ParT exports it. The
// chosen branch is inlined: the engine and the compiled code run no If, and later steps have a rank.
TEST(Aot, IfWithAConditionFromStaticDimsIsInlined) {
  test::G g(14);
  g.input("x", {-1, 4});
  g.init("tok", Tensor::from_vector<float>({0.5f, -1, 2, 0.25f}, {1, 1, 4}));
  g.node("Shape", {"x"}, {"xs"});
  g.init("i0", Tensor::scalar<int64_t>(0));
  g.init("i1", Tensor::scalar<int64_t>(1));
  g.node("Gather", {"xs", "i0"}, {"n"});
  g.init("ax0", Tensor::from_vector<int64_t>({0}, {1}));
  g.node("Unsqueeze", {"n", "ax0"}, {"n1"});
  g.init("one", Tensor::from_vector<int64_t>({1}, {1}));
  g.init("minus1", Tensor::from_vector<int64_t>({-1}, {1}));
  test::attr_int(g.node("Concat", {"n1", "one", "minus1"}, {"want"}), "axis", 0);
  g.node("Shape", {"want"}, {"ws"});
  attr_tensor(g.node("ConstantOfShape", {"ws"}, {"ones"}), "value", Tensor::from_vector<int64_t>({1}, {1}));
  g.init("m1", Tensor::scalar<int64_t>(-1));
  g.node("Mul", {"ones", "m1"}, {"neg"});
  g.node("Equal", {"want", "neg"}, {"isneg"});
  g.node("Where", {"isneg", "ones", "want"}, {"shape"});
  g.node("Expand", {"tok", "shape"}, {"cls"});  // [n, 1, 4]
  g.node("Shape", {"cls"}, {"cs"});
  g.node("Gather", {"cs", "i1"}, {"d1"});
  g.node("Equal", {"d1", "i1"}, {"cond"});
  auto* f = g.node("If", {"cond"}, {"sq"});
  {
    auto* t = test::add_attr(f, "then_branch", ::onnx::AttributeProto::GRAPH)->mutable_g();
    t->set_name("then");
    auto* n = t->add_node();
    n->set_op_type("Squeeze");
    n->add_input("cls");
    n->add_input("ax1");
    n->add_output("sq_then");
    auto* c = t->add_node();
    c->set_op_type("Constant");
    c->add_output("ax1");
    attr_tensor(c, "value", Tensor::from_vector<int64_t>({1}, {1}));
    t->add_output()->set_name("sq_then");
    t->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(1);
    auto* e = test::add_attr(f, "else_branch", ::onnx::AttributeProto::GRAPH)->mutable_g();
    e->set_name("else");
    auto* i = e->add_node();
    i->set_op_type("Identity");
    i->add_input("cls");
    i->add_output("sq_else");
    e->add_output()->set_name("sq_else");
    e->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(1);
  }
  g.node("Add", {"sq", "x"}, {"sum"});
  g.init("w", Tensor::from_vector<float>({1, 0, 0, 1, 1, 1, 0, 2}, {4, 2}));
  g.node("Gemm", {"sum", "w"}, {"y"});  // needs rank 2: known only when the If is folded
  g.output("y", {-1, 2});
  auto [lib, engine] = compile_graph(g, "if_folded");
  for (int64_t b : {1, 3}) {
    std::mt19937 rng(static_cast<unsigned>(b));
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<Tensor> in{random_tensor({b, 4}, rng, u)};
    const auto got = lib->run_once(in), want = engine->run_once(in);
    expect_close(got, want, "batch " + std::to_string(b));
    const float* x = in[0].data<float>();
    for (int64_t r = 0; r < b; ++r) {
      const float s0 = x[r * 4] + 0.5f, s1 = x[r * 4 + 1] - 1, s2 = x[r * 4 + 2] + 2, s3 = x[r * 4 + 3] + 0.25f;
      EXPECT_NEAR(want[0].data<float>()[r * 2], s0 + s2, 1e-5);
      EXPECT_NEAR(want[0].data<float>()[r * 2 + 1], s1 + s2 + 2 * s3, 1e-5);
    }
  }
}

TEST(Aot, RuntimeExpSigmoidTanhMatchLibm) {
  namespace rt = generated::rt;
  double worst_exp = 0, worst_sig = 0, worst_tanh = 0;
  for (int i = -2000000; i <= 2000000; ++i) {
    const float x = static_cast<float>(i) * 5e-5f;  // [-100, 100]
    const double e = std::exp(static_cast<double>(x));
    if (x > -87.f && x < 88.f) worst_exp = std::max(worst_exp, std::abs(rt::exp_v(x) - e) / e);
    const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    worst_sig = std::max(worst_sig, std::abs(rt::sigmoid_v(x) - s) / s * (s > 1e-30 ? 1 : 0));
    const double t = std::tanh(static_cast<double>(x));
    if (x != 0.f) worst_tanh = std::max(worst_tanh, std::abs(rt::tanh_v(x) - t) / std::abs(t));
  }
  EXPECT_LT(worst_exp, 4e-7);
  EXPECT_LT(worst_sig, 4e-7);
  EXPECT_LT(worst_tanh, 4e-7);
  for (float x : {1e-6f, -1e-6f, 0.2499f, 0.25f, -0.2501f, 1e-30f})
    EXPECT_NEAR(rt::tanh_v(x), std::tanh(x), 4e-7 * std::abs(std::tanh(x))) << x;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(rt::tanh_v(0.f), 0.f);
  EXPECT_EQ(rt::tanh_v(inf), 1.f);
  EXPECT_EQ(rt::tanh_v(-inf), -1.f);
  EXPECT_EQ(rt::sigmoid_v(inf), 1.f);
  EXPECT_LT(rt::sigmoid_v(-inf), 1e-37f);
  EXPECT_GE(rt::sigmoid_v(-inf), 0.f);
  EXPECT_EQ(rt::exp_v(-inf), std::exp(-87.f));
  EXPECT_TRUE(std::isnan(rt::exp_v(std::nanf(""))));
  EXPECT_TRUE(std::isnan(rt::sigmoid_v(std::nanf(""))));
  EXPECT_TRUE(std::isnan(rt::tanh_v(std::nanf(""))));
}

// erf of the generated code (Taylor series below 1, A&S 7.1.26 above, no libm) against libm:
// absolute error over [-10, 10], relative error near zero (where 1 - ... would lose it), the branch
// point, signed zeros, infinities and NaN.
TEST(Aot, RuntimeErfMatchesLibm) {
  namespace rt = generated::rt;
  double worst_abs = 0, worst_rel_small = 0;
  for (int i = -1000000; i <= 1000000; ++i) {
    const float x = static_cast<float>(i) * 1e-5f;  // [-10, 10]
    const double e = std::erf(static_cast<double>(x));
    worst_abs = std::max(worst_abs, std::abs(rt::erf_v(x) - e));
    if (x != 0.f && std::abs(x) < 1.2f) worst_rel_small = std::max(worst_rel_small, std::abs(rt::erf_v(x) - e) / std::abs(e));
  }
  EXPECT_LT(worst_abs, 2.5e-7);  // measured 1.8e-7
  EXPECT_LT(worst_rel_small, 3e-7);  // measured 2.1e-7
  for (float x : {1e-30f, -1e-20f, 1e-40f, 0.9999999f, 1.f, -1.0000001f, 3.9f, 9.5f})
    EXPECT_NEAR(rt::erf_v(x), std::erf(x), 3e-7 * std::abs(std::erf(x)) + 1e-45) << x;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(rt::erf_v(inf), 1.f);
  EXPECT_EQ(rt::erf_v(-inf), -1.f);
  EXPECT_EQ(rt::erf_v(0.f), 0.f);
  EXPECT_TRUE(std::signbit(rt::erf_v(-0.f)));
  EXPECT_TRUE(std::isnan(rt::erf_v(std::nanf(""))));
}

// GELU and LayerNorm as PyTorch exports them (Div/Erf/Add/Mul/Mul; ReduceMean/Sub/Pow/ReduceMean/Add/
// Sqrt/Div/Mul/Add), which the fusion pass makes Gelu and LayerNormalization steps of for the emitter
// too (rt::erf_v, rt::layer_norm), a masked softmax over the last axis (rt::softmax_rows: -inf keys
// exactly 0), a standalone Erf; then the opset-20 ops: LayerNormalization over two axes with a scale
// and no bias, Gelu with the tanh approximation. Rows of 37 (two blocks of 16 lanes and a tail) and 3.
TEST(Aot, GeluLayerNormSoftmaxMatchTheEngine) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  {
    test::G g(13);
    g.input("x", {-1, 5, 37});
    g.init("sqrt2", Tensor::scalar(1.4142135623730951f));
    g.init("one", Tensor::scalar(1.f));
    g.init("half", Tensor::scalar(0.5f));
    g.init("two", Tensor::scalar(2.f));
    g.init("eps", Tensor::scalar(1e-5f));
    g.init("gamma", random_tensor({37}, rng, u));
    g.init("beta", random_tensor({37}, rng, u));
    g.init("cut", Tensor::scalar(-0.8f));
    g.init("ninf", Tensor::scalar(-std::numeric_limits<float>::infinity()));
    g.init("three", Tensor::scalar(3.f));
    g.node("Div", {"x", "sqrt2"}, {"d"});
    g.node("Erf", {"d"}, {"e"});
    g.node("Add", {"e", "one"}, {"a"});
    g.node("Mul", {"x", "a"}, {"m"});
    g.node("Mul", {"m", "half"}, {"gelu"});
    test::attr_ints(g.node("ReduceMean", {"gelu"}, {"mean"}), "axes", {-1});
    g.node("Sub", {"gelu", "mean"}, {"c"});
    g.node("Pow", {"c", "two"}, {"c2"});
    test::attr_ints(g.node("ReduceMean", {"c2"}, {"var"}), "axes", {-1});
    g.node("Add", {"var", "eps"}, {"ve"});
    g.node("Sqrt", {"ve"}, {"sd"});
    g.node("Div", {"c", "sd"}, {"n"});
    g.node("Mul", {"n", "gamma"}, {"ng"});
    g.node("Add", {"ng", "beta"}, {"ln"});
    g.node("Less", {"x", "cut"}, {"masked"});
    g.node("Where", {"masked", "ninf", "ln"}, {"scores"});
    test::attr_int(g.node("Softmax", {"scores"}, {"sm"}), "axis", -1);
    g.node("Mul", {"x", "three"}, {"x3"});
    g.node("Erf", {"x3"}, {"erf"});
    g.output("ln", {-1, 5, 37});
    g.output("sm", {-1, 5, 37});
    g.output("erf", {-1, 5, 37});
    const auto [lib, engine] = compile_graph(g, "gelu_ln_softmax");
    const std::string code = generated_code("gelu_ln_softmax");
    EXPECT_NE(code.find("rt::gelu_v(v)"), std::string::npos) << "GELU not fused";
    EXPECT_NE(code.find("rt::layer_norm("), std::string::npos) << "LayerNorm not fused";
    for (int64_t b : {int64_t{1}, int64_t{3}}) {
      std::vector<Tensor> in{random_tensor({b, 5, 37}, rng, u)};
      const auto got = lib->run_once(in), want = engine->run_once(in);
      expect_close(got, want, "batch " + std::to_string(b));
      const float* x = in[0].data<float>();
      int masked = 0;
      for (int64_t i = 0; i < in[0].numel(); ++i)
        if (x[i] < -0.8f) {
          EXPECT_EQ(got[1].data<float>()[i], 0.f) << i;
          ++masked;
        }
      EXPECT_GT(masked, 0);
    }
  }
  {
    test::G g(20);
    g.input("x", {-1, 3, 4, 5});
    g.init("scale", random_tensor({4, 5}, rng, u));
    auto* n = g.node("LayerNormalization", {"x", "scale"}, {"ln"});
    test::attr_int(n, "axis", -2);
    test::attr_float(n, "epsilon", 1e-3f);
    test::attr_str(g.node("Gelu", {"ln"}, {"y"}), "approximate", "tanh");
    g.output("y", {-1, 3, 4, 5});
    const auto [lib, engine] = compile_graph(g, "layer_norm_gelu_tanh");
    for (int64_t b : {int64_t{1}, int64_t{2}}) {
      std::vector<Tensor> in{random_tensor({b, 3, 4, 5}, rng, u)};
      expect_close(lib->run_once(in), engine->run_once(in), "opset 20, batch " + std::to_string(b));
    }
  }
}

// Where over broadcast runs (rt::ternary on merge_runs: ParT's attention mask [B, 1, 1, S] against a
// scalar and [B, H, S, S], each operand full or broadcast, a one-element output), Concat of int64
// index columns along the last axis (chunks of 1 and 2, copied element-wise, and of 17, by memcpy),
// and ScatterND of element tuples (slices of one element) as ParT builds its pair matrix.
TEST(Aot, WhereConcatScatterRunsMatchTheEngine) {
  test::G g(13);
  g.input("mask", {-1, 1, 1, 7}, DType::Bool);
  g.input("s", {-1, 3, 7, 7});
  g.input("t", {-1, 3, 1, 7});
  g.input("i1", {-1, 4, 1}, DType::I64);
  g.input("i2", {-1, 4, 2}, DType::I64);
  g.input("i17", {-1, 4, 17}, DType::I64);
  g.input("e", {1, 1});
  g.input("tuples", {5, 2}, DType::I64);
  g.input("upd", {5});
  g.init("ninf", Tensor::scalar(-std::numeric_limits<float>::infinity()));
  g.init("zero", Tensor::scalar(0.f));
  g.init("grid", Tensor::from_vector<float>(std::vector<float>(12, 0.5f), {3, 4}));
  g.node("Where", {"mask", "ninf", "s"}, {"w1"});
  g.node("Where", {"mask", "t", "zero"}, {"w2"});
  g.node("Where", {"mask", "s", "t"}, {"w3"});
  g.node("Greater", {"e", "zero"}, {"ep"});
  g.node("Where", {"ep", "e", "zero"}, {"w4"});
  test::attr_int(g.node("Concat", {"i1", "i2", "i17", "i1"}, {"cat"}), "axis", -1);
  g.node("ScatterND", {"grid", "tuples", "upd"}, {"sc"});
  g.output("w1", {-1, 3, 7, 7});
  g.output("w2", {-1, 1, 1, 7});
  g.output("w3", {-1, 3, 7, 7});
  g.output("w4", {1, 1});
  g.output("cat", {-1, 4, 21}, DType::I64);
  g.output("sc", {3, 4});
  const auto [lib, engine] = compile_graph(g, "where_concat_scatter");
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t b : {int64_t{1}, int64_t{2}}) {
    Tensor mask = Tensor::empty(DType::Bool, {b, 1, 1, 7});
    for (int64_t i = 0; i < mask.numel(); ++i) mask.data<bool>()[i] = (i * 5 + b) % 3 == 0;
    auto ints = [&](std::vector<int64_t> d, int64_t base) {
      Tensor t = Tensor::empty(DType::I64, d);
      for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = base + i;
      return t;
    };
    Tensor tuples = Tensor::from_vector<int64_t>({0, 0, 2, 3, 1, -1, 0, 3, 2, 1}, {5, 2});
    std::vector<Tensor> in{mask, random_tensor({b, 3, 7, 7}, rng, u), random_tensor({b, 3, 1, 7}, rng, u),
                           ints({b, 4, 1}, 100), ints({b, 4, 2}, 200), ints({b, 4, 17}, 300),
                           Tensor::from_vector<float>({0.75f}, {1, 1}), tuples, random_tensor({5}, rng, u)};
    expect_close(lib->run_once(in), engine->run_once(in), "batch " + std::to_string(b));
  }
}

// The recurrent cells' edges against the engine: bidirectional GRU with linear_before_reset,
// sequence_lens (0 and T among them) and an initial state; a forward GRU without bias with clip; a
// reverse LSTM with peepholes, bias, sequence_lens and initial h/c; a batch-first LSTM with input_forget;
// a bidirectional RNN; LSTMs with the default cell, which take the batched form (one gemm per step of [x_t | h]
// by the packed [W | R]^T, rt::lstm_batch) at 16+ rows whose sequences are all T long: bidirectional with bias and random
// h/c, batch-first with sequence_lens (all T at 16 and 40 rows, one shorter at 19: the general form)
// and no initial state. Hidden sizes that end panels part-way (17, 20: 2H = 40, 4H = 68); batches of 1
// row (the gemv path), 3, 7, 16 (one full panel of rows), 19 and 40 (partial panels).
TEST(Aot, RecurrentEdgesMatchTheEngine) {
  test::G g(14);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-0.6f, 0.6f);
  auto weights = [&](const std::string& name, std::vector<int64_t> dims) { g.init(name, random_tensor(dims, rng, u)); };
  const int64_t T = 5, I = 6;
  g.input("x", {T, -1, I});
  g.input("xl", {-1, T, I});
  g.input("lens", {-1}, DType::I32);
  g.input("h0", {2, -1, 20});
  g.input("h0l", {1, -1, 17});
  g.input("c0l", {1, -1, 17});
  g.input("lensT", {-1}, DType::I32);
  g.input("h0b", {2, -1, 20});
  g.input("c0b", {2, -1, 20});
  weights("GW", {2, 60, I});
  weights("GR", {2, 60, 20});
  weights("GB", {2, 120});
  weights("FW", {1, 60, I});
  weights("FR", {1, 60, 20});
  weights("LW", {1, 68, I});
  weights("LR", {1, 68, 17});
  weights("LB", {1, 136});
  weights("LP", {1, 51});
  weights("RW", {2, 9, I});
  weights("RR", {2, 9, 9});
  weights("BW", {2, 80, I});
  weights("BR", {2, 80, 20});
  weights("BB", {2, 160});
  auto* n = g.node("GRU", {"x", "GW", "GR", "GB", "lens", "h0"}, {"y1", "yh1"});
  test::attr_int(n, "hidden_size", 20);
  test::attr_str(n, "direction", "bidirectional");
  test::attr_int(n, "linear_before_reset", 1);
  n = g.node("GRU", {"x", "FW", "FR"}, {"y2"});
  test::attr_int(n, "hidden_size", 20);
  test::attr_float(n, "clip", 0.7f);
  n = g.node("LSTM", {"x", "LW", "LR", "LB", "lens", "h0l", "c0l", "LP"}, {"y3", "yh3", "yc3"});
  test::attr_int(n, "hidden_size", 17);
  test::attr_str(n, "direction", "reverse");
  n = g.node("LSTM", {"xl", "LW", "LR"}, {"y4"});
  test::attr_int(n, "hidden_size", 17);
  test::attr_int(n, "layout", 1);
  test::attr_int(n, "input_forget", 1);
  n = g.node("RNN", {"x", "RW", "RR"}, {"y5"});
  test::attr_int(n, "hidden_size", 9);
  test::attr_str(n, "direction", "bidirectional");
  n = g.node("LSTM", {"x", "BW", "BR", "BB", "", "h0b", "c0b"}, {"y6", "yh6", "yc6"});
  test::attr_int(n, "hidden_size", 20);
  test::attr_str(n, "direction", "bidirectional");
  n = g.node("LSTM", {"xl", "LW", "LR", "LB", "lensT"}, {"y7", "yh7"});
  test::attr_int(n, "hidden_size", 17);
  test::attr_int(n, "layout", 1);
  g.output("y1", {T, 2, -1, 20});
  g.output("yh1", {2, -1, 20});
  g.output("y2", {T, 1, -1, 20});
  g.output("y3", {T, 1, -1, 17});
  g.output("yh3", {1, -1, 17});
  g.output("yc3", {1, -1, 17});
  g.output("y4", {-1, T, 1, 17});
  g.output("y5", {T, 2, -1, 9});
  g.output("y6", {T, 2, -1, 20});
  g.output("yh6", {2, -1, 20});
  g.output("yc6", {2, -1, 20});
  g.output("y7", {-1, T, 1, 17});
  g.output("yh7", {-1, 1, 17});
  const auto [lib, engine] = compile_graph(g, "recurrent");
  std::uniform_real_distribution<float> ux(-1.f, 1.f);
  for (int64_t b : {int64_t{1}, int64_t{3}, int64_t{7}, int64_t{16}, int64_t{19}, int64_t{40}}) {
    std::vector<Tensor> in;
    for (std::vector<int64_t> d : {std::vector<int64_t>{T, b, I}, {b, T, I}}) {
      in.push_back(random_tensor(d, rng, ux));
    }
    Tensor lens = Tensor::empty(DType::I32, {b});
    for (int64_t i = 0; i < b; ++i) lens.data<int32_t>()[i] = static_cast<int32_t>(b == 1 ? 3 : (i * 5) % (T + 1));  // 0..T
    in.push_back(std::move(lens));
    for (std::vector<int64_t> d : {std::vector<int64_t>{2, b, 20}, {1, b, 17}, {1, b, 17}}) {
      in.push_back(random_tensor(d, rng, ux));
    }
    Tensor lens_t = Tensor::empty(DType::I32, {b});
    for (int64_t i = 0; i < b; ++i) lens_t.data<int32_t>()[i] = b == 19 && i == 7 ? T - 2 : T;
    in.push_back(std::move(lens_t));
    for (int k = 0; k < 2; ++k) in.push_back(random_tensor({2, b, 20}, rng, ux));
#if defined(__SSE__)
    const unsigned csr = _mm_getcsr();  // the LSTM steps flush subnormals and restore the caller's mode
    auto got = lib->run_once(in);
    EXPECT_EQ(csr, _mm_getcsr());
#else
    auto got = lib->run_once(in);
#endif
    expect_close(got, engine->run_once(in), "recurrent at batch " + std::to_string(b));
  }
}
