// quiver compile --reproducible: the compiled library's outputs equal the engine's reproducible mode
// (#15) bit for bit, whatever instruction set the library is built for (-march=native and x86-64-v2,
// which has no FMA instruction: the generated code's fma is then the engine's soft fma).
//   - HEP models: against the golden files of `quiver validate` (tests/golden/hep/M.json, SHA-256 of
//     the reproducible-mode bytes), at the data set's batch and row by row at batch 1.
//     QUIVER_AOT_REPRO_MODELS picks the models (default: a subset; label aot_all runs every one).
//   - Edge cases of every reproducible kernel the emitter writes (GEMM with K = 1 and odd tails,
//     alpha/beta and C's roles, MatMul batching, Conv's tap-wise and im2col paths, softmax, the
//     reductions' orders, the engine's exp/log/tanh/sigmoid/erf/atan on special values, Max/Min ties,
//     Pow, Cast) against the engine's reproducible mode, bitwise.
//   - Steps without a reproducible emission are refused by name; the build flags forbid contraction
//     and fast math.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "aot_test_util.hpp"
#include "onnx/graph_builder.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using nlohmann::json;

namespace {

const std::string kHep = std::string(QUIVER_SHARED_DIR) + "/models/hep/";
const std::string kGolden = std::string(QUIVER_SOURCE_DIR) + "/tests/golden/hep/";
const char* const kTargets[] = {"native", "x86-64-v2"};

fs::path out_root() { return fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out_repro"; }

void write_graph(const test::G& g, const std::string& file) {
  std::ofstream f(file, std::ios::binary);
  f << g.bytes();
}

LoadOptions repro_options() {
  LoadOptions o;
  o.params["numerics"] = "reproducible";
  return o;
}

// Compiles with --reproducible for `target`, builds with the tests' compiler and loads.
std::shared_ptr<const Model> compile_repro(const std::string& model_file, const std::string& name, const std::string& target,
                                           aot::CompileResult* result = nullptr) {
  aot::CompileOptions o;
  o.name = name;
  o.target = target;
  o.params["numerics"] = "reproducible";
  aot::CompileResult r = aot::compile_model(model_file, (out_root() / name).string(), o);
  if (result) *result = r;
  return aot::load_library(aot::build_shared(r, aot_test::compiler()));
}

// "" when every byte is equal, else which output and where the first difference is.
std::string bits_differ(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  if (got.size() != want.size()) return "output count " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].dims() != want[i].dims() || got[i].dtype() != want[i].dtype()) return "output " + std::to_string(i) + ": dims or dtype";
    const auto* a = static_cast<const unsigned char*>(got[i].raw());
    const auto* b = static_cast<const unsigned char*>(want[i].raw());
    if (std::memcmp(a, b, got[i].nbytes()) == 0) continue;
    const size_t es = got[i].nbytes() / static_cast<size_t>(std::max<int64_t>(got[i].numel(), 1));
    for (size_t j = 0; j < got[i].nbytes(); ++j)
      if (a[j] != b[j]) {
        std::ostringstream m;
        m.precision(9);
        m << "output " << i << " element " << j / es;
        if (got[i].dtype() == DType::F32)
          m << ": " << got[i].data<float>()[j / es] << " vs " << want[i].data<float>()[j / es];
        return m.str();
      }
  }
  return "";
}

// Row r of every input (batch dim 0).
std::vector<Tensor> row(const std::vector<Tensor>& in, int64_t r) {
  std::vector<Tensor> out;
  for (const auto& t : in) {
    std::vector<int64_t> d = t.dims();
    const size_t bytes = t.nbytes() / static_cast<size_t>(d[0]);
    d[0] = 1;
    out.push_back(Tensor::view(t.dtype(), d, static_cast<const unsigned char*>(t.raw()) + static_cast<size_t>(r) * bytes));
  }
  return out;
}

// Outputs of every row at batch 1, concatenated along dim 0.
std::vector<Tensor> row_by_row(const Model& lib, const std::vector<Tensor>& in) {
  const int64_t rows = in[0].dims()[0];
  std::vector<std::vector<Tensor>> parts;
  for (int64_t r = 0; r < rows; ++r) parts.push_back(lib.run_once(row(in, r)));
  std::vector<Tensor> out;
  for (size_t i = 0; i < parts[0].size(); ++i) {
    std::vector<int64_t> d = parts[0][i].dims();
    d[0] = rows;
    Tensor t = Tensor::empty(parts[0][i].dtype(), d);
    size_t at = 0;
    for (const auto& p : parts) {
      std::memcpy(static_cast<unsigned char*>(t.raw()) + at, p[i].raw(), p[i].nbytes());
      at += p[i].nbytes();
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string sha(const Tensor& t) { return sha256_hex(std::string_view(static_cast<const char*>(t.raw()), t.nbytes())); }

std::vector<std::string> models_under_test() {
  return aot_test::list_from_env("QUIVER_AOT_REPRO_MODELS",
                                 "hls4ml_three_layer,ticl_supercls,ticl_energy_id,higgs_interaction_net,deepdoublex_ddb_94x_unsorted");
}

class AotReproModels : public ::testing::TestWithParam<std::string> {};

TEST_P(AotReproModels, BitsEqualTheGoldenReproducibleOutputs) {
  const std::string m = GetParam();
  std::ifstream gf(kGolden + m + ".json");
  ASSERT_TRUE(gf) << "no golden file " << kGolden << m << ".json";
  const json golden = json::parse(gf);
  for (const char* target : kTargets) {
    SCOPED_TRACE(m + " --target " + target);
    auto lib = compile_repro(kHep + m + "/model.onnx", "repro_" + m + "_" + std::string(target == std::string("native") ? "native" : "v2"),
                             target);
    int checked = 0;
    for (const auto& set : golden.at("data_sets")) {
      const fs::path dir = fs::path(kHep) / m / set.at("name").get<std::string>();
      std::vector<Tensor> in;
      for (const auto& f : quiver::onnx::numbered_files(dir.string(), "input")) in.push_back(quiver::onnx::read_tensor_file(f).tensor);
      ASSERT_FALSE(in.empty()) << dir;
      const auto& outs = set.at("outputs");
      const std::vector<Tensor> got = lib->run_once(in);
      ASSERT_EQ(got.size(), outs.size());
      const std::vector<Tensor> rows = row_by_row(*lib, in);
      for (size_t i = 0; i < got.size(); ++i) {
        const std::string name = outs[i].at("name");
        EXPECT_EQ(sha(got[i]), outs[i].at("sha256").get<std::string>())
            << m << " " << set.at("name") << " output " << name << " at the data set's batch differs from the golden bits";
        EXPECT_EQ(sha(rows[i]), outs[i].at("sha256").get<std::string>())
            << m << " " << set.at("name") << " output " << name << " at batch 1 (row by row) differs from the golden bits";
        ++checked;
      }
    }
    EXPECT_GT(checked, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Hep, AotReproModels, ::testing::ValuesIn(models_under_test()),
                         [](const auto& info) { return info.param; });

// A graph as NAME.onnx, compiled --reproducible for each target, against the engine's reproducible mode.
struct Built {
  std::shared_ptr<const Model> engine;
  std::vector<std::shared_ptr<const Model>> libs;
};
Built build_graph(const test::G& g, const std::string& name) {
  const fs::path dir = out_root() / name;
  fs::create_directories(dir);
  const std::string file = (dir / (name + ".onnx")).string();
  write_graph(g, file);
  Built b;
  b.engine = quiver::onnx::load_onnx(file, repro_options());
  for (const char* t : kTargets)
    b.libs.push_back(compile_repro(file, name + (std::string(t) == "native" ? "_native" : "_v2"), t));
  return b;
}

void expect_bitwise(const Built& b, const std::vector<Tensor>& in, const std::string& what) {
  const auto want = b.engine->run_once(in);
  for (size_t k = 0; k < b.libs.size(); ++k) {
    const std::string d = bits_differ(b.libs[k]->run_once(in), want);
    EXPECT_TRUE(d.empty()) << what << ", --target " << kTargets[k] << ": " << d;
  }
}

Tensor random_tensor(const std::vector<int64_t>& dims, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t = Tensor::empty(DType::F32, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// GEMM-type steps: K = 1 and odd K, N and M tails around the tile widths, alpha, beta with a full C,
// a bias row, a transposed A, a B computed at run time (transposed), MatMul batching, fused
// activations; Conv's im2col path (groups, strides, pads, dilations), the tap-wise path of a 1-D
// convolution with padding and dilation, a 2-D (1 x k) kernel over H = 1 (tap-wise at run time), a
// pointwise convolution.
TEST(AotRepro, GemmMatMulConvEdgesAreBitwiseTheEngines) {
  test::G g(13);
  std::mt19937 rng(11);
  auto weights = [&](const std::string& name, std::vector<int64_t> dims) { g.init(name, random_tensor(dims, rng)); };
  g.input("x", {-1, 13});
  g.input("x1", {-1, 1});
  g.input("wt", {6, 13});
  g.input("y", {-1, 5, 7});
  g.input("z", {-1, 7, 19});
  g.input("img", {-1, 4, 9, 11});
  g.input("seq", {-1, 3, 17});
  g.input("row", {-1, 3, 1, 23});
  weights("W1", {37, 13});
  weights("b1", {37});
  weights("Wk1", {1, 33});
  weights("Cfull", {1, 33});  // with beta 0.5: broadcast into Y, then fma(beta, C, y)
  weights("W3", {7, 18});
  weights("W4", {2, 7, 3});
  weights("W5", {6, 10});
  weights("CW", {6, 2, 3, 3});
  weights("Cb", {6});
  weights("CW2", {5, 6, 1, 1});
  weights("SW", {8, 3, 5});
  weights("Sb", {8});
  weights("RW", {4, 3, 1, 3});
  {
    Tensor ax = Tensor::empty(DType::I64, {1});
    ax.data<int64_t>()[0] = 1;
    g.init("ax_1", ax);
  }
  auto* n = g.node("Gemm", {"x", "W1", "b1"}, {"g1"});
  test::attr_int(n, "transB", 1);
  test::attr_float(n, "alpha", 0.5f);
  g.node("Sigmoid", {"g1"}, {"g1s"});  // fused into the Gemm
  n = g.node("Gemm", {"x1", "Wk1", "Cfull"}, {"gk"});  // K = 1
  test::attr_float(n, "beta", 0.5f);
  n = g.node("Gemm", {"wt", "x"}, {"gt"});  // B computed at run time, transposed
  test::attr_int(n, "transB", 1);
  n = g.node("Gemm", {"wt", "W5"}, {"gta"});  // transposed A
  test::attr_int(n, "transA", 1);
  g.node("Tanh", {"gta"}, {"gtat"});
  g.node("MatMul", {"y", "z"}, {"m1"});
  g.node("MatMul", {"y", "W3"}, {"m2"});
  g.node("Relu", {"m2"}, {"m2r"});
  g.node("Unsqueeze", {"y", "ax_1"}, {"yu"});  // [b, 1, 5, 7]
  g.node("MatMul", {"yu", "W4"}, {"m3"});      // x [2, 7, 3]: a batched constant B, broadcast
  n = g.node("Conv", {"img", "CW", "Cb"}, {"c1"});
  test::attr_int(n, "group", 2);
  test::attr_ints(n, "strides", {2, 2});
  test::attr_ints(n, "pads", {1, 2, 1, 0});
  test::attr_ints(n, "dilations", {1, 2});
  g.node("Relu", {"c1"}, {"c1r"});
  g.node("Conv", {"c1r", "CW2"}, {"c2"});  // pointwise
  n = g.node("Conv", {"seq", "SW", "Sb"}, {"s1"});  // 1-D: tap-wise
  test::attr_ints(n, "pads", {2, 3});
  test::attr_ints(n, "dilations", {2});
  n = g.node("Conv", {"row", "RW"}, {"r1"});  // [1 x 3] over H = 1: tap-wise at run time
  test::attr_ints(n, "pads", {0, 1, 0, 1});
  g.output("g1s", {-1, 37});
  g.output("gk", {-1, 33});
  g.output("gt", {6, -1});
  g.output("gtat", {13, 10});
  g.output("m1", {-1, 5, 19});
  g.output("m2r", {-1, 5, 18});
  g.output("c2", {-1, 5, 5, 5});
  g.output("s1", {-1, 8, 14});
  g.output("r1", {-1, 4, 1, 23});
  g.output("m3", {-1, 2, 5, 3});
  const Built b = build_graph(g, "repro_gemm_edges");
  for (int64_t bs : {int64_t{1}, int64_t{3}, int64_t{9}}) {
    std::vector<Tensor> in;
    for (std::vector<int64_t> d : {std::vector<int64_t>{bs, 13}, {bs, 1}, {6, 13}, {bs, 5, 7}, {bs, 7, 19}, {bs, 4, 9, 11},
                                   {bs, 3, 17}, {bs, 3, 1, 23}})
      in.push_back(random_tensor(d, rng));
    expect_bitwise(b, in, "gemm edges at batch " + std::to_string(bs));
  }
}

// Softmax / LogSoftmax (last and middle axes, the opset-11 flattening), the reductions (one run with
// a tail of 1..3 after the four partial sums, a middle axis, two runs, every axis), GlobalAveragePool.
TEST(AotRepro, SoftmaxAndReductionsAreBitwiseTheEngines) {
  test::G g(13);
  std::mt19937 rng(5);
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    Tensor t = Tensor::empty(DType::I64, {static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
    g.init(name, t);
  };
  g.input("a", {-1, 7, 11});
  g.input("p", {-1, 3, 5, 6});
  ints("ax_last", {-1});
  ints("ax_1", {1});
  ints("ax_02", {0, 2});
  auto* n = g.node("Softmax", {"a"}, {"s_last"});
  n = g.node("Softmax", {"a"}, {"s_mid"});
  test::attr_int(n, "axis", 1);
  n = g.node("LogSoftmax", {"a"}, {"ls_mid"});
  test::attr_int(n, "axis", 1);
  g.node("LogSoftmax", {"a"}, {"ls_last"});
  g.node("ReduceSum", {"a", "ax_last"}, {"r_last"});  // 11 = 2 x 4 + 3
  n = g.node("ReduceMean", {"a"}, {"r_mid"});
  test::attr_ints(n, "axes", {1});
  n = g.node("ReduceMax", {"p"}, {"r_max"});
  test::attr_ints(n, "axes", {1, 3});
  n = g.node("ReduceMin", {"p"}, {"r_min"});
  test::attr_ints(n, "axes", {2});
  test::attr_int(n, "keepdims", 0);
  g.node("ReduceSum", {"p", "ax_02"}, {"r_two"});
  g.node("ReduceSum", {"p"}, {"r_all"});
  g.node("GlobalAveragePool", {"p"}, {"gap"});
  for (const char* o : {"s_last", "s_mid", "ls_mid", "ls_last"}) g.output(o, {-1, 7, 11});
  g.output("r_last", {-1, 7, 1});
  g.output("r_mid", {-1, 1, 11});
  g.output("r_max", {-1, 1, 5, 1});
  g.output("r_min", {-1, 3, 6});
  g.output("r_two", {1, 3, 1, 6});
  g.output("r_all", {1, 1, 1, 1});
  g.output("gap", {-1, 3, 1, 1});
  const Built b = build_graph(g, "repro_softmax_reduce");
  for (int64_t bs : {int64_t{1}, int64_t{2}, int64_t{5}}) {
    std::vector<Tensor> in = {random_tensor({bs, 7, 11}, rng, -30.f, 30.f), random_tensor({bs, 3, 5, 6}, rng, -1e3f, 1e3f)};
    expect_bitwise(b, in, "softmax/reductions at batch " + std::to_string(bs));
  }
}

// The engine's own math on values that take every branch: signed zeros, subnormals, the clamped ends,
// infinities, NaN; Max/Min ties of +0 and -0 and NaN; Pow's exponents; Cast float -> int64 of NaN and
// out-of-range values; BatchNormalization with a fused Sigmoid... as separate steps.
TEST(AotRepro, ElementwiseMathIsBitwiseTheEngines) {
  test::G g(13);
  g.input("v", {-1, 64});
  g.input("w", {-1, 64});
  for (const char* op : {"Exp", "Log", "Tanh", "Sigmoid", "Erf", "Atan", "Sqrt", "Reciprocal", "Abs", "Neg"})
    g.node(op, {"v"}, {std::string("u_") + op});
  g.node("Max", {"v", "w"}, {"mx"});
  g.node("Min", {"v", "w"}, {"mn"});
  for (float e : {2.0f, 3.0f, 0.5f, -1.0f}) {
    const std::string k = "e" + std::to_string(static_cast<int>(e * 10));
    Tensor t = Tensor::empty(DType::F32, {1});
    t.data<float>()[0] = e;
    g.init(k, t);
    g.node("Pow", {"v", k}, {"pow_" + k});
    g.output("pow_" + k, {-1, 64});
  }
  auto* n = g.node("Cast", {"v"}, {"ci"});
  test::attr_int(n, "to", static_cast<int64_t>(DType::I64));
  for (const char* op : {"Exp", "Log", "Tanh", "Sigmoid", "Erf", "Atan", "Sqrt", "Reciprocal", "Abs", "Neg"})
    g.output(std::string("u_") + op, {-1, 64});
  g.output("mx", {-1, 64});
  g.output("mn", {-1, 64});
  g.output("ci", {-1, 64}, DType::I64);
  const Built b = build_graph(g, "repro_math");
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> special = {0.0f, -0.0f, 1e-45f, -1e-45f, 1.17549435e-38f, 1e-30f, 2.44140625e-4f, -2.44140625e-4f,
                                      1e-4f, 0.25f, 0.5f, 1.0f, -1.0f, 2.0f, 3.9999f, 4.0f, 4.5f, -4.5f, 9.1f, 9.2f, -9.2f,
                                      20.f, 87.0f, 88.72283f, 88.8f, -87.33654f, -87.4f, -100.f, 1e10f, -1e10f, 3e38f, -3e38f,
                                      9.3e18f, -9.3e18f, inf, -inf, nan, -nan, 0.4142135f, 0.4142136f, 2.4142134f, 2.4142137f,
                                      0.70710677f, 0.7071068f, 1.4142135f};
  std::mt19937 rng(3);
  for (int64_t bs : {int64_t{1}, int64_t{4}}) {
    Tensor v = random_tensor({bs, 64}, rng, -12.f, 12.f), w = random_tensor({bs, 64}, rng, -12.f, 12.f);
    for (size_t i = 0; i < special.size() && i < static_cast<size_t>(v.numel()); ++i) {
      v.data<float>()[i] = special[i];
      w.data<float>()[i] = special[(i * 7 + 1) % special.size()];
    }
    w.data<float>()[0] = -0.0f;  // Max/Min(+0, -0) and (-0, +0)
    w.data<float>()[1] = 0.0f;
    expect_bitwise(b, {v, w}, "math at batch " + std::to_string(bs));
  }
}

// BatchNormalization (not after a Conv: its own step) with a fused activation; a Gemm whose C is
// empty-free [M, N] with beta 1; a K = 0 MatMul (no terms: the bias alone).
TEST(AotRepro, BatchNormAndFullCAreBitwiseTheEngines) {
  test::G g(13);
  std::mt19937 rng(9);
  auto weights = [&](const std::string& name, std::vector<int64_t> dims, float lo, float hi) {
    g.init(name, random_tensor(dims, rng, lo, hi));
  };
  g.input("x", {-1, 5, 7});
  g.input("c", {3, 9});
  g.input("a", {3, 4});
  weights("sc", {5}, 0.5f, 2.f);
  weights("bi", {5}, -1.f, 1.f);
  weights("mean", {5}, -1.f, 1.f);
  weights("var", {5}, 0.1f, 2.f);
  weights("B", {4, 9}, -1.f, 1.f);
  g.node("BatchNormalization", {"x", "sc", "bi", "mean", "var"}, {"bn"});
  g.node("Tanh", {"bn"}, {"bnt"});
  g.node("Gemm", {"a", "B", "c"}, {"gc"});  // C [M, N], beta 1: broadcast into Y, then fma(1, C, y)
  g.output("bnt", {-1, 5, 7});
  g.output("gc", {3, 9});
  const Built b = build_graph(g, "repro_bn_fullc");
  for (int64_t bs : {int64_t{1}, int64_t{6}})
    expect_bitwise(b, {random_tensor({bs, 5, 7}, rng, -3.f, 3.f), random_tensor({3, 9}, rng), random_tensor({3, 4}, rng)},
                   "batchnorm / full C at batch " + std::to_string(bs));
}

// Every step without a reproducible emission is refused by name before anything is written; the
// generated build forbids contraction and refuses -ffast-math.
TEST(AotRepro, RefusalsAndBuildFlags) {
  const fs::path dir = out_root() / "repro_refused";
  fs::create_directories(dir);
  aot::CompileOptions o;
  o.params["numerics"] = "reproducible";
  auto refused = [&](const test::G& g, const std::string& stem, const std::vector<std::string>& words) {
    const std::string file = (dir / (stem + ".onnx")).string();
    write_graph(g, file);
    try {
      aot::compile_model(file, (dir / stem).string(), o);
      ADD_FAILURE() << stem << " compiled under --reproducible";
    } catch (const Error& err) {
      for (const auto& w : words) EXPECT_NE(std::string(err.what()).find(w), std::string::npos) << err.what();
    }
    EXPECT_FALSE(fs::exists(dir / stem / (stem + ".cpp")));
  };
  std::mt19937 rng(1);
  {  // an op with an emitter but no reproducible emission: a float Range (its running sum)
    test::G g(13);
    g.input("start", {});
    Tensor lim = Tensor::empty(DType::F32, {}), dl = Tensor::empty(DType::F32, {});
    lim.data<float>()[0] = 5.0f;
    dl.data<float>()[0] = 0.5f;
    g.init("limit", lim);
    g.init("delta", dl);
    g.node("Range", {"start", "limit", "delta"}, {"rg"});
    g.output("rg", {-1});
    refused(g, "range", {"Range", "no reproducible emission"});
  }
  {  // an op the engine has no reproducible kernel for: refused when the plan is compiled
    test::G g(13);
    g.input("x", {-1, 4});
    g.node("Softplus", {"x"}, {"sp"});
    g.output("sp", {-1, 4});
    refused(g, "softplus", {"Softplus", "reproducible"});
  }

  // A compiled model's build: -ffp-contract=off in the CMake project, and -ffast-math is an error.
  test::G h(13);
  h.input("x", {-1, 4});
  h.node("Exp", {"x"}, {"y"});
  h.output("y", {-1, 4});
  const std::string file2 = (dir / "flags.onnx").string();
  aot::CompileOptions o2 = o;
  write_graph(h, file2);
  o2.name = "repro_flags";
  aot::compile_model(file2, (dir / "flags").string(), o2);
  std::ifstream cm(dir / "flags" / "CMakeLists.txt");
  std::stringstream cms;
  cms << cm.rdbuf();
  EXPECT_NE(cms.str().find("-ffp-contract=off"), std::string::npos) << cms.str();
  int rc = 0;
  const std::string out = aot_test::run_command("cd " + (dir / "flags").string() + " && g++ -std=c++17 -ffast-math -fsyntax-only repro_flags.cpp", &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("-ffast-math"), std::string::npos) << out;
}

}  // namespace
