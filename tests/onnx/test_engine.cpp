// Engine unit tests on small graphs built in code: loading, ordering, folding, fusion, errors,
// concurrency, external data.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

#include "quiver/core/profile.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "onnx/graph_builder.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

using quiver::test::G;
using quiver::test::expect_error;

std::string steps_line(const Model& m) {
  std::ostringstream os;
  m.describe(os);
  auto s = os.str();
  auto p = s.find("steps after compilation: ");
  return p == std::string::npos ? "" : s.substr(p, s.find(',', p) - p);
}

// a[i] = sin(step * i + phase): deterministic operands of any shape.
Tensor sine_tensor(std::vector<int64_t> dims, float step, float phase) {
  Tensor t = Tensor::empty(DType::F32, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = std::sin(step * static_cast<float>(i) + phase);
  return t;
}

// A [M, K] (stored [K, M] when ta) times B [K, N] row-major, in double.
std::vector<double> naive_product(const float* a, bool ta, int64_t M, int64_t K, const float* b, int64_t N) {
  std::vector<double> y(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) y[static_cast<size_t>(i * N + n)] += double(a[ta ? k * M + i : i * K + k]) * b[k * N + n];
  return y;
}

// An int64 tensor of dims d holding v.
Tensor i64(std::vector<int64_t> v, std::vector<int64_t> d) {
  Tensor t = Tensor::empty(DType::I64, std::move(d));
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

// Load options for the graph as written (no fusion) and for reproducible numerics: the fusion tests'
// references.
quiver::onnx::CompileOptions no_fusion() {
  quiver::onnx::CompileOptions o;
  o.fuse = false;
  return o;
}
LoadOptions reproducible_numerics() {
  LoadOptions o;
  o.params["numerics"] = "reproducible";
  return o;
}

}  // namespace

TEST(Engine, RunsUnsortedGraph) {
  G g;
  g.input("x", {-1, 4});
  g.output("y", {-1, 4});
  // y = relu(x + x) * x, nodes listed consumer-first.
  g.node("Mul", {"r", "x"}, {"y"});
  g.node("Relu", {"s"}, {"r"});
  g.node("Add", {"x", "x"}, {"s"});
  auto m = g.load();
  auto x = Tensor::from_vector<float>({1, -2, 3, -4, 0.5f, 6, -7, 8}, {2, 4});
  auto out = m->run_once(std::vector<Tensor>{x});
  ASSERT_EQ(out.size(), 1u);
  std::vector<float> want{2, 0, 18, 0, 0.5f, 72, 0, 128};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[0].data<float>()[i], want[static_cast<size_t>(i)]);
  EXPECT_EQ(m->info().inputs[0].shape[0].symbol, "batch");
}

TEST(Engine, ReportsEveryUnsupportedOpByName) {
  G g;
  g.input("x", {2});
  g.output("y", {2});
  g.node("FancyOp", {"x"}, {"a"}, "first");
  g.node("OtherOp", {"a"}, {"y"}, "second");
  auto e = expect_error([&] { g.load(); });
  EXPECT_EQ(e.code(), ErrorCode::Unsupported);
  std::string w = e.what();
  EXPECT_NE(w.find("FancyOp"), std::string::npos) << w;
  EXPECT_NE(w.find("OtherOp"), std::string::npos) << w;
  EXPECT_NE(w.find("first"), std::string::npos) << w;
}

TEST(Engine, MissingInitializerNamesTensorAndNode) {
  G g;
  g.input("x", {2});
  g.output("y", {2});
  g.node("Add", {"x", "weights_missing"}, {"y"}, "adder");
  auto e = expect_error([&] { g.load(); });
  std::string w = e.what();
  EXPECT_NE(w.find("weights_missing"), std::string::npos) << w;
  EXPECT_NE(w.find("adder"), std::string::npos) << w;
}

TEST(Engine, CorruptAndTruncatedFiles) {
  G g;
  g.input("x", {2});
  g.output("y", {2});
  g.node("Relu", {"x"}, {"y"});
  g.init("w", Tensor::zeros(DType::F32, {64}));
  std::string bytes = g.m.SerializeAsString();
  auto dir = fs::temp_directory_path() / ("quiver_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "trunc.onnx").string();
  write_file(path, bytes.substr(0, bytes.size() / 2));
  auto e = expect_error([&] { quiver::onnx::load_onnx(path); });
  EXPECT_EQ(e.code(), ErrorCode::Parse);
  EXPECT_NE(std::string(e.what()).find("trunc.onnx"), std::string::npos) << e.what();
  write_file(path, "this is not a protobuf at all \xff\xff\xff\xff");
  EXPECT_THROW(quiver::onnx::load_onnx(path), Error);
  write_file(path, "");
  EXPECT_THROW(quiver::onnx::load_onnx(path), Error);
  EXPECT_THROW(quiver::onnx::load_onnx((dir / "missing.onnx").string()), Error);
  fs::remove_all(dir);
}

// Transpose(0,2,1) -> Reshape -> Gemm(+Relu) is fused into one Gemm reading the untransposed input;
// results must equal the unfused graph for the fast form ([-1, C]) and for a target that is not
// [B*L, C] (the kernel materialises the transpose then), at several batch sizes.
TEST(Engine, TransposeReshapeGemmFusionMatchesUnfused) {
  const int64_t C = 6, L = 5, N = 7;
  for (std::vector<int64_t> target : {std::vector<int64_t>{-1, C}, std::vector<int64_t>{0, -1}}) {
    G g;
    g.input("x", {-1, C, L});
    g.output("y", {-1, -1});
    auto* t = g.node("Transpose", {"x"}, {"xt"});
    auto* perm = t->add_attribute();
    perm->set_name("perm");
    perm->set_type(::onnx::AttributeProto::INTS);
    for (int64_t v : {0, 2, 1}) perm->add_ints(v);
    Tensor shape = Tensor::empty(DType::I64, {2});
    shape.data<int64_t>()[0] = target[0];
    shape.data<int64_t>()[1] = target[1];
    g.init("shape", shape);
    g.node("Reshape", {"xt", "shape"}, {"a"});
    const int64_t K = target[1] == C ? C : L * C;  // [0, -1] gives [B, L*C]
    Tensor w = Tensor::empty(DType::F32, {N, K}), b = Tensor::empty(DType::F32, {N});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
    for (int64_t i = 0; i < N; ++i) b.data<float>()[i] = 0.1f * static_cast<float>(i) - 0.3f;
    g.init("w", w);
    g.init("b", b);
    auto* gm = g.node("Gemm", {"a", "w", "b"}, {"g"});
    auto* tb = gm->add_attribute();
    tb->set_name("transB");
    tb->set_type(::onnx::AttributeProto::INT);
    tb->set_i(1);
    g.node("Relu", {"g"}, {"y"});
    quiver::onnx::CompileOptions nofuse;
    nofuse.fuse = false;
    auto fused = g.load(), plain = g.load(nofuse);
    EXPECT_NE(steps_line(*fused), steps_line(*plain)) << "the three nodes should become one";
    for (int64_t B : {1, 3}) {
      Tensor x = Tensor::empty(DType::F32, {B, C, L});
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::cos(0.11f * static_cast<float>(i)) * 2.0f;
      auto yf = fused->run_once(std::vector<Tensor>{x});
      auto yp = plain->run_once(std::vector<Tensor>{x});
      ASSERT_EQ(yf[0].dims(), yp[0].dims()) << "target " << target[0] << "," << target[1] << " B=" << B;
      EXPECT_EQ(quiver::onnx::compare_tensors(yf[0], yp[0], {1e-5, 1e-6}), "") << "B=" << B;
    }
  }
}

// Transposes that meet (directly, through Identity nodes, or around an elementwise unary op) are
// composed into one or become a view, as keras2onnx's Conv1D wrappers leave them: the same values
// and dims as the graph as written, for a composition that is not its own inverse (chain A: a wrong
// order of composing gives other dims), a chain listed backwards (B: needs more than one sweep), and
// a Transpose whose output is also a graph output (C: must stay).
TEST(Engine, TransposePairsFoldMatchUnfused) {
  using quiver::test::attr_float;
  using quiver::test::attr_ints;
  G g;
  g.input("x", {-1, 5, 3});
  g.output("ya", {3, -1, 5});
  g.output("yb", {5, -1, 3});
  g.output("yc", {-1, 5, 3});
  g.output("c1", {-1, 3, 5});
  attr_ints(g.node("Transpose", {"x"}, {"a1"}), "perm", {0, 2, 1});
  g.node("Relu", {"a1"}, {"a2"});
  g.node("Identity", {"a2"}, {"a3"});
  attr_ints(g.node("Transpose", {"a3"}, {"ya"}), "perm", {1, 0, 2});
  // B, last node first (the second sweep folds what the first made adjacent):
  // x -> T(0,2,1) -> Identity -> LeakyRelu -> T(0,2,1) -> T(1,0,2) -> yb  =  T(1,0,2)(LeakyRelu(x))
  attr_ints(g.node("Transpose", {"b4"}, {"yb"}), "perm", {1, 0, 2});
  attr_ints(g.node("Transpose", {"b3"}, {"b4"}), "perm", {0, 2, 1});
  attr_float(g.node("LeakyRelu", {"b2"}, {"b3"}), "alpha", 0.25f);
  g.node("Identity", {"b1"}, {"b2"});
  attr_ints(g.node("Transpose", {"x"}, {"b1"}), "perm", {0, 2, 1});
  attr_ints(g.node("Transpose", {"x"}, {"c1"}), "perm", {0, 2, 1});
  g.node("Tanh", {"c1"}, {"c2"});
  attr_ints(g.node("Transpose", {"c2"}, {"yc"}), "perm", {0, 2, 1});
  quiver::onnx::CompileOptions nofuse;
  nofuse.fuse = false;
  auto fused = g.load(), plain = g.load(nofuse);
  auto steps = [](const Model& m) { return std::stoi(steps_line(m).substr(std::string("steps after compilation: ").size())); };
  // A: T, Relu, Identity, T -> Relu, Identity, T; B: 5 steps -> LeakyRelu, T; C unchanged.
  EXPECT_EQ(steps(*fused), steps(*plain) - 4) << steps_line(*fused) << " vs " << steps_line(*plain);
  for (int64_t B : {1, 4}) {
    Tensor x = sine_tensor({B, 5, 3}, 0.9f, 0.3f);
    auto yf = fused->run_once(std::vector<Tensor>{x});
    auto yp = plain->run_once(std::vector<Tensor>{x});
    ASSERT_EQ(yf.size(), yp.size());
    for (size_t k = 0; k < yf.size(); ++k) {
      ASSERT_EQ(yf[k].dims(), yp[k].dims()) << "output " << k << " B=" << B;
      EXPECT_EQ(quiver::onnx::compare_tensors(yf[k], yp[k], {0, 0}), "") << "output " << k << " B=" << B;
    }
  }
}

// Gemm -> Reshape -> Relu (an interaction net's edge MLP): the Gemm takes the ReLU, the Reshape gives
// the ReLU's output (two steps, not three); against max(0, x W + b) computed here, half of x W + b
// negative.
TEST(Engine, ActivationAfterReshapeFusesIntoGemm) {
  G g;
  g.input("x", {-1, 4});
  g.output("y", {-1, 3, 10});
  const Tensor w = sine_tensor({4, 10}, 0.7f, 0.1f), b = sine_tensor({10}, 1.3f, 0.5f);
  g.init("w", w);
  g.init("b", b);
  Tensor shape = Tensor::empty(DType::I64, {3});
  const int64_t dims[3] = {-1, 3, 10};
  std::copy_n(dims, 3, shape.data<int64_t>());
  g.init("shape", shape);
  g.node("Gemm", {"x", "w", "b"}, {"m"});
  g.node("Reshape", {"m", "shape"}, {"r"});
  g.node("Relu", {"r"}, {"y"});
  const auto model = g.load();
  EXPECT_EQ(steps_line(*model), "steps after compilation: 2");
  for (int64_t B : {3, 6}) {
    const Tensor x = sine_tensor({B, 4}, 0.9f, 0.2f);
    const auto want = naive_product(x.data<float>(), false, B, 4, w.data<float>(), 10);
    const auto y = model->run_once(std::vector<Tensor>{x});
    ASSERT_EQ(y[0].dims(), (std::vector<int64_t>{B / 3, 3, 10}));
    for (int64_t i = 0; i < B * 10; ++i)
      EXPECT_NEAR(y[0].data<float>()[i], std::max(0.0, want[static_cast<size_t>(i)] + b.data<float>()[i % 10]), 1e-5)
          << "B=" << B << " element " << i;
  }
}

// A constant B of zeros and ones that selects columns (one 1 per column: a gather) or sums runs of
// them (one 1 per row, columns non-decreasing, some empty: segment sums) runs without the GEMM in
// default numerics; B that is neither (a second 1 in a row and a column, or a 0.5) takes the GEMM.
// Gathers whose columns form long runs (an interaction net's receiver and sender matrices: one column
// repeated, consecutive columns) are copied run by run (forms 4 and 5, with a run of one column).
// All against the naive product, with a bias and Relu fused, B given as is and transposed, alpha 2.
TEST(Engine, OneHotGemmMatchesNaiveProduct) {
  const int64_t K = 64, N = 23;  // the last segment has 33 rows
  for (int form = 0; form < 6; ++form) {
    Tensor b = Tensor::zeros(DType::F32, {K, N});
    float* bp = b.data<float>();
    for (int64_t n = 0; n < N; ++n) {
      if (form == 0) bp[((n * 7) % K) * N + n] = 1;  // gather, some rows picked twice
      if (form == 4) bp[(n == 9 ? 40 : n / 8) * N + n] = 1;  // runs of one column (8, 1, 1, 6, 7 long)
      if (form == 5) bp[(n + n / 6 + 30) * N + n] = 1;  // runs of 6 consecutive columns, each skipping one
    }
    if (form == 1) {  // segments of lengths 0..3 and a long last one (>= 16: the vector loop)
      int64_t k = 0;
      for (int64_t n = 0; n < N && k < K; ++n)
        for (int64_t j = 0; j < (n == N - 1 ? K : n % 4) && k < K; ++j) bp[k++ * N + n] = 1;
      for (; k < K; ++k) bp[k * N + N - 1] = 1;
    }
    if (form == 2 || form == 3) {
      for (int64_t n = 0; n < N; ++n) bp[((n * 7) % K) * N + n] = 1;
      if (form == 2) bp[3 * N + 5] = bp[3 * N + 6] = 1;
      if (form == 3) bp[10 * N + 2] = 0.5f;
    }
    for (bool tb : {false, true}) {
      Tensor w = b;
      if (tb) {
        w = Tensor::empty(DType::F32, {N, K});
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n) w.data<float>()[n * K + k] = bp[k * N + n];
      }
      Tensor bias = Tensor::empty(DType::F32, {N});
      for (int64_t n = 0; n < N; ++n) bias.data<float>()[n] = 0.25f * static_cast<float>(n % 5) - 0.5f;
      G g;
      g.input("a", {-1, K});
      g.output("y", {-1, N});
      g.init("w", w);
      g.init("bias", bias);
      auto* gm = g.node("Gemm", {"a", "w", "bias"}, {"g"});
      auto* at = gm->add_attribute();
      at->set_name("transB");
      at->set_type(::onnx::AttributeProto::INT);
      at->set_i(tb ? 1 : 0);
      auto* al = gm->add_attribute();
      al->set_name("alpha");
      al->set_type(::onnx::AttributeProto::FLOAT);
      al->set_f(2.0f);
      g.node("Relu", {"g"}, {"y"});
      auto m = g.load();
      for (int64_t M : {1, 5}) {
        const Tensor a = sine_tensor({M, K}, 0.23f, 0.1f);
        auto y = m->run_once(std::vector<Tensor>{a});
        ASSERT_EQ(y[0].dims(), (std::vector<int64_t>{M, N}));
        const std::vector<double> ab = naive_product(a.data<float>(), false, M, K, bp, N);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t n = 0; n < N; ++n) {
            const double want = std::max(0.0, 2 * ab[static_cast<size_t>(i * N + n)] + bias.data<float>()[n]);
            ASSERT_NEAR(y[0].data<float>()[i * N + n], want, 1e-5 * (1 + std::abs(want)))
                << "form " << form << " transB " << tb << " M " << M << " (" << i << ", " << n << ")";
          }
      }
    }
  }
}

// Tall Gemms of few columns with a bias or activation (the interaction net's edge MLPs) run in row
// blocks on the tiled kernel with AVX-512 (N <= 64, K <= 128), on the library otherwise: against the
// naive product across that boundary (N 64 / 65, K 128 / 129), A as is and transposed, 1 000 rows
// (three full blocks and a partial one), a bias row with Relu, a bias without activation, and a full
// C with beta 0.5 (no bias row: C is in the output before the product) with alpha 2.
TEST(Engine, TallGemmWithEpilogueMatchesNaiveProduct) {
  const int64_t M = 1000;
  struct Case { int64_t N, K; bool ta; int form; };  // form 0: bias + Relu, 1: bias, 2: full C, beta 0.5, Relu
  for (Case c : {Case{60, 60, true, 0}, Case{30, 60, false, 0}, Case{20, 30, false, 1}, Case{64, 128, false, 0},
                 Case{64, 128, true, 2}, Case{65, 128, false, 0}, Case{64, 129, false, 0}, Case{17, 5, true, 2}}) {
    const int64_t N = c.N, K = c.K;
    G g;
    g.input("a", c.ta ? std::vector<int64_t>{K, -1} : std::vector<int64_t>{-1, K});
    g.output("y", {-1, N});
    const Tensor w = sine_tensor({K, N}, 0.37f, 0.2f);
    const Tensor bias = c.form == 2 ? sine_tensor({M, N}, 0.13f, 1.0f) : sine_tensor({N}, 0.13f, 1.0f);
    g.init("w", w);
    g.init("c", bias);
    auto* gm = g.node("Gemm", {"a", "w", "c"}, {c.form == 1 ? "y" : "g"});
    auto attr = [&](const char* name, float f, int64_t i, bool is_float) {
      auto* at = gm->add_attribute();
      at->set_name(name);
      at->set_type(is_float ? ::onnx::AttributeProto::FLOAT : ::onnx::AttributeProto::INT);
      if (is_float) at->set_f(f);
      else at->set_i(i);
    };
    if (c.ta) attr("transA", 0, 1, false);
    if (c.form == 2) {
      attr("alpha", 2.0f, 0, true);
      attr("beta", 0.5f, 0, true);
    }
    if (c.form != 1) g.node("Relu", {"g"}, {"y"});
    auto m = g.load();
    const Tensor a = c.ta ? sine_tensor({K, M}, 0.23f, 0.1f) : sine_tensor({M, K}, 0.23f, 0.1f);
    auto y = m->run_once(std::vector<Tensor>{a});
    ASSERT_EQ(y[0].dims(), (std::vector<int64_t>{M, N}));
    const std::vector<double> ab = naive_product(a.data<float>(), c.ta, M, K, w.data<float>(), N);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t n = 0; n < N; ++n) {
        double want = ab[static_cast<size_t>(i * N + n)];
        if (c.form == 2) want = 2 * want + 0.5 * bias.data<float>()[i * N + n];
        else want += bias.data<float>()[n];
        if (c.form != 1) want = std::max(0.0, want);
        ASSERT_NEAR(y[0].data<float>()[i * N + n], want, 1e-4 * (1 + std::abs(want)))
            << "N " << N << " K " << K << " transA " << c.ta << " form " << c.form << " (" << i << ", " << n << ")";
      }
  }
}

// Gemms of one output column (a classifier's last layer, TICL supercls's 100 -> 1) run as row dot
// products along K in default numerics (blas.cpp gemv_rows): against the naive product for rows in
// groups of 4 and the rest (M 1, 3, 4, 7, 64), K below, at and across the 16-lane vectors (1, 15,
// 16, 17, 100, 161), B as [K, 1] and as transB [1, K], with bias + Sigmoid and with a full C, alpha
// 2 and beta 0.5.
TEST(Engine, OneColumnGemmMatchesNaiveProduct) {
  for (int64_t K : {1, 15, 16, 17, 100, 161})
    for (bool tb : {false, true})
      for (int form : {0, 1}) {  // 0: bias [1] + Sigmoid, 1: full C [M, 1], alpha 2, beta 0.5
        for (int64_t M : {1, 3, 4, 7, 64}) {
          const Tensor w = sine_tensor(tb ? std::vector<int64_t>{1, K} : std::vector<int64_t>{K, 1}, 0.37f, 0.2f);
          const Tensor c = form == 0 ? sine_tensor({1}, 0.13f, 1.0f) : sine_tensor({M, 1}, 0.13f, 1.0f);
          G g;
          g.input("a", {-1, K});
          g.output("y", {-1, 1});
          g.init("w", w);
          g.init("c", c);
          auto* gm = g.node("Gemm", {"a", "w", "c"}, {form == 0 ? "g" : "y"});
          if (tb) quiver::test::attr_int(gm, "transB", 1);
          if (form == 1) {
            quiver::test::attr_float(gm, "alpha", 2.0f);
            quiver::test::attr_float(gm, "beta", 0.5f);
          } else {
            g.node("Sigmoid", {"g"}, {"y"});
          }
          auto m = g.load();
          const Tensor a = sine_tensor({M, K}, 0.23f, 0.1f);
          auto y = m->run_once(std::vector<Tensor>{a});
          ASSERT_EQ(y[0].dims(), (std::vector<int64_t>{M, 1}));
          const std::vector<double> ab = naive_product(a.data<float>(), false, M, K, w.data<float>(), 1);
          for (int64_t i = 0; i < M; ++i) {
            double want = ab[static_cast<size_t>(i)];
            if (form == 1) want = 2 * want + 0.5 * c.data<float>()[i];
            else want = 1.0 / (1.0 + std::exp(-(want + c.data<float>()[0])));
            ASSERT_NEAR(y[0].data<float>()[i], want, 1e-5 * (1 + std::abs(want)))
                << "M " << M << " K " << K << " transB " << tb << " form " << form << " row " << i;
          }
        }
      }
}

// PyTorch's pre-opset-17 LayerNorm and exact GELU decompositions become one LayerNormalization and one
// Gelu node (CPU engine): same results as the unfused graph; an intermediate that is also a graph
// output keeps its pattern unfused (and correct).
TEST(Engine, LayerNormAndGeluFusionsMatchUnfused) {
  const int64_t T = 5, C = 37;  // C not a multiple of the 16-lane loop
  auto scalar = [](float v) {
    Tensor t = Tensor::empty(DType::F32, {});
    t.data<float>()[0] = v;
    return t;
  };
  for (bool expose : {false, true}) {
    G g(14);
    g.input("x", {-1, T, C});
    g.output("y", {-1, T, C});
    if (expose) g.output("e", {-1, T, C});
    auto axes = [](::onnx::NodeProto* n) {
      auto* a = n->add_attribute();
      a->set_name("axes");
      a->set_type(::onnx::AttributeProto::INTS);
      a->add_ints(-1);
    };
    axes(g.node("ReduceMean", {"x"}, {"m"}));
    g.node("Sub", {"x", "m"}, {"d"});
    g.init("two", scalar(2.f));
    g.node("Pow", {"d", "two"}, {"p"});
    axes(g.node("ReduceMean", {"p"}, {"v"}));
    g.init("eps", scalar(1e-5f));
    g.node("Add", {"v", "eps"}, {"ve"});
    g.node("Sqrt", {"ve"}, {"s"});
    g.node("Div", {"d", "s"}, {"n"});
    Tensor gamma = Tensor::empty(DType::F32, {C}), beta = Tensor::empty(DType::F32, {C});
    for (int64_t i = 0; i < C; ++i) {
      gamma.data<float>()[i] = 1.0f + 0.01f * static_cast<float>(i);
      beta.data<float>()[i] = 0.05f * static_cast<float>(i % 7) - 0.1f;
    }
    g.init("gamma", gamma);
    g.init("beta", beta);
    g.node("Mul", {"n", "gamma"}, {"ng"});
    g.node("Add", {"ng", "beta"}, {"h"});
    g.init("sqrt2", scalar(1.4142135381698608f));
    g.init("one", scalar(1.f));
    g.init("half", scalar(0.5f));
    g.node("Div", {"h", "sqrt2"}, {"hd"});
    g.node("Erf", {"hd"}, {"e"});
    g.node("Add", {"one", "e"}, {"e1"});
    g.node("Mul", {"h", "e1"}, {"he"});
    g.node("Mul", {"he", "half"}, {"y"});
    quiver::onnx::CompileOptions nofuse;
    nofuse.fuse = false;
    auto fused = g.load(), plain = g.load(nofuse);
    std::ostringstream os;
    fused->describe(os);
    // LayerNorm: 9 nodes -> 1; GELU: 5 -> 1 unless Erf's output is also a graph output.
    EXPECT_NE(os.str().find(expose ? "steps after compilation: 6," : "steps after compilation: 2,"), std::string::npos)
        << os.str();
    // numerics=reproducible has no kernels for the fused forms: the graph stays as it is.
    LoadOptions repro;
    repro.params["numerics"] = "reproducible";
    std::ostringstream rs;
    g.load({}, repro)->describe(rs);
    EXPECT_NE(rs.str().find("steps after compilation: 14,"), std::string::npos)
        << rs.str();
    for (int64_t B : {1, 3}) {
      Tensor x = Tensor::empty(DType::F32, {B, T, C});
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 3.0f * std::sin(0.7f * static_cast<float>(i)) + 0.5f;
      auto yf = fused->run_once(std::vector<Tensor>{x});
      auto yp = plain->run_once(std::vector<Tensor>{x});
      ASSERT_EQ(yf.size(), yp.size());
      for (size_t k = 0; k < yf.size(); ++k)
        EXPECT_EQ(quiver::onnx::compare_tensors(yf[k], yp[k], {1e-5, 1e-5}), "") << "output " << k << " B=" << B;
    }
  }
}

// ParticleNet's EdgeConv features into a 1x1 Conv (weaver's get_graph_feature_v2 as PyTorch exports
// it) become one ai.quiver::EdgeConv step (CPU engine, default numerics) computing (W1 - W2) x + W2 f:
// the same results as the graph's own nodes, with and without an Expand before the Tile, for points
// tiled from [.., 1], [.., 3] and [.., 18], with Relu,
// LeakyRelu or no activation, for neighbour indices that are negative or in another jet;
// reproducible mode keeps the graph.
TEST(Engine, EdgeConvFusionMatchesUnfused) {
  const int64_t C = 5, k = 3, O = 6;
  auto i64 = [](std::vector<int64_t> v) {
    Tensor t = Tensor::empty(DType::I64, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return t;
  };
  struct Case { int64_t P, d; bool expand; const char* act; };
  for (const Case& cs : {Case{7, 1, false, "Relu"}, Case{7, 1, true, ""}, Case{6, 3, false, "LeakyRelu"},
                         Case{36, 18, true, "Relu"}}) {
    const int64_t P = cs.P, d = cs.d, H = P / d;
    const std::string what = "P " + std::to_string(P) + ", d " + std::to_string(d) + ", expand " +
                             std::to_string(cs.expand) + ", act '" + cs.act + "'";
    G g(13);
    g.input("x", {-1, C, P});
    g.io_any(g.g->add_input(), "idx", DType::I64);  // shapeless: its length is not the batch
    g.output("y", {-1, O, H, d * k});
    quiver::test::attr_ints(g.node("Transpose", {"x"}, {"xt"}), "perm", {1, 0, 2});
    g.init("t2", i64({C, -1}));
    g.node("Reshape", {"xt", "t2"}, {"xf"});
    quiver::test::attr_int(g.node("Gather", {"xf", "idx"}, {"gf"}), "axis", 1);
    g.init("t3", i64({C, -1, H, d * k}));
    g.node("Reshape", {"gf", "t3"}, {"g4"});
    quiver::test::attr_ints(g.node("Transpose", {"g4"}, {"nbr"}), "perm", {1, 0, 2, 3});
    g.init("t4", i64({-1, C, H, d}));
    g.node("Reshape", {"x", "t4"}, {"x4"});
    std::string tiled = "x4";
    if (cs.expand) {
      g.init("ones", i64({1, 1, 1, 1}));
      g.node("Expand", {"x4", "ones"}, {"x4e"});
      tiled = "x4e";
    }
    g.init("reps", i64({1, 1, 1, k}));
    g.node("Tile", {tiled, "reps"}, {"ctr"});
    g.node("Sub", {"nbr", "ctr"}, {"e_d"});
    quiver::test::attr_int(g.node("Concat", {"ctr", "e_d"}, {"e"}), "axis", 1);
    Tensor w = Tensor::empty(DType::F32, {O, 2 * C, 1, 1}), b = Tensor::empty(DType::F32, {O});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 0.3f * std::cos(1.3f * static_cast<float>(i));
    for (int64_t i = 0; i < O; ++i) b.data<float>()[i] = 0.1f * static_cast<float>(i) - 0.2f;
    g.init("w", w);
    g.init("b", b);
    const std::string act = cs.act;
    quiver::test::attr_ints(g.node("Conv", {"e", "w", "b"}, {act.empty() ? "y" : "c"}), "kernel_shape", {1, 1});
    if (act == "Relu") g.node("Relu", {"c"}, {"y"});
    if (act == "LeakyRelu") quiver::test::attr_float(g.node("LeakyRelu", {"c"}, {"y"}), "alpha", 0.1f);
    quiver::onnx::CompileOptions nofuse;
    nofuse.fuse = false;
    auto fused = g.load(), plain = g.load(nofuse);
    // Fused: the two transposes' Transpose and Reshapes of x, the Expand, and the EdgeConv step;
    // reproducible: the ten nodes (the activation fused into the Conv) and the Expand.
    const int64_t ex = cs.expand ? 1 : 0;
    EXPECT_EQ(steps_line(*fused), "steps after compilation: " + std::to_string(4 + ex)) << what;
    LoadOptions repro;
    repro.params["numerics"] = "reproducible";
    EXPECT_EQ(steps_line(*g.load({}, repro)), "steps after compilation: " + std::to_string(10 + ex)) << what;
    for (int64_t B : {1, 3}) {
      Tensor x = Tensor::empty(DType::F32, {B, C, P});
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(0.7f * static_cast<float>(i)) + 0.2f;
      Tensor idx = Tensor::empty(DType::I64, {B * P * k});
      for (int64_t i = 0; i < idx.numel(); ++i) {
        const int64_t v = (i * 7 + 3) % (B * P);  // points of any jet
        idx.data<int64_t>()[i] = i % 5 == 0 ? v - B * P : v;
      }
      const std::vector<Tensor> feeds{x, idx};
      auto yf = fused->run_once(feeds);
      auto yp = plain->run_once(feeds);
      ASSERT_EQ(yf.size(), 1u);
      EXPECT_EQ(yf[0].dims(), (std::vector<int64_t>{B, O, H, d * k})) << what;
      EXPECT_EQ(quiver::onnx::compare_tensors(yf[0], yp[0], {1e-5, 1e-5}), "") << what << ", B=" << B;
      // An index outside [-B P, B P) is a named error, as Gather's is.
      idx.data<int64_t>()[4] = B * P;
      const Error e = expect_error([&] { fused->run_once(std::vector<Tensor>{x, idx}); });
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
  }
}

// ParT's pair-embedding scatter, ScatterND(data, Concat(Unsqueeze(Expand(c, s), -1) ..., axis -1), u),
// becomes ai.quiver::ScatterNDParts, whose kernel reads each index part through its broadcast strides
// instead of building the int64 tuples: parts b [N, 1, 1], h [1, 3, 1] and i [pairs] expanded to s =
// [N, 3, pairs], j given whole; one float per tuple and slices of 2. Bit for bit the graph as written
// (every numerics: reproducible mode fuses too), fewer steps, and an index out of range is an error.
TEST(Engine, ScatterNDPartsFusionMatchesUnfused) {
  const int64_t N = 2, P = 4, pairs = 5;
  for (int64_t slice : {1, 2}) {
    std::vector<int64_t> xd{N, 3, P, P}, ud{N, 3, pairs};
    if (slice > 1) {
      xd.push_back(slice);
      ud.push_back(slice);
    }
    G g(14);
    g.input("x", xd);
    g.input("b", {N, 1, 1}, DType::I64);
    g.input("h", {1, 3, 1}, DType::I64);
    g.input("i", {pairs}, DType::I64);
    g.input("j", {N, 3, pairs}, DType::I64);
    g.input("u", ud);
    g.output("y", xd);
    g.init("s", i64({N, 3, pairs}, {3}));
    g.init("ax", i64({-1}, {1}));
    std::vector<std::string> cat;
    for (const char* p : {"b", "h", "i", "j"}) {
      std::string part = p;
      if (part != "j") {
        g.node("Expand", {part, "s"}, {part + "_e"});
        part += "_e";
      }
      g.node("Unsqueeze", {part, "ax"}, {std::string(p) + "_q"});
      cat.push_back(std::string(p) + "_q");
    }
    quiver::test::attr_int(g.node("Concat", cat, {"idx"}), "axis", -1);
    g.node("ScatterND", {"x", "idx", "u"}, {"y"});
    const quiver::onnx::CompileOptions nofuse = no_fusion();
    const LoadOptions repro = reproducible_numerics();
    auto fused = g.load(), plain = g.load(nofuse), fused_repro = g.load({}, repro);
    EXPECT_EQ(steps_line(*fused), "steps after compilation: 1") << "vs " << steps_line(*plain);
    EXPECT_EQ(steps_line(*fused_repro), "steps after compilation: 1");
    const std::string what = "slice " + std::to_string(slice);
    const Tensor x = sine_tensor(xd, 0.3f, 0.1f), u = sine_tensor(ud, 0.7f, 0.5f);
    const Tensor b = i64({1, -2}, {N, 1, 1}), h = i64({0, -1, 1}, {1, 3, 1}), i = i64({1, 2, 2, 3, -1}, {pairs});
    Tensor j = Tensor::empty(DType::I64, {N, 3, pairs});
    for (int64_t e = 0; e < j.numel(); ++e) j.data<int64_t>()[e] = (e * 3) % P - (e % 4 == 0 ? P : 0);
    const std::vector<Tensor> feeds{x, b, h, i, j, u};
    const auto want = plain->run_once(feeds);
    for (const auto* m : {fused.get(), fused_repro.get()}) {
      const auto got = m->run_once(feeds);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(quiver::onnx::compare_tensors(got[0], want[0], {0, 0}), "") << what;
    }
    Tensor bad = j;
    bad.data<int64_t>()[7] = P;
    const Error e = expect_error([&] { fused->run_once(std::vector<Tensor>{x, b, h, i, bad, u}); });
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

// PyTorch's `out[:, -1]` of a batch_first LSTM, Gather(Transpose(Squeeze(Y, [1]), [1, 0, 2]), -1,
// axis 1), is the LSTM's Y_h flattened (fusion.cpp lstm_last_step): bit for bit the graph as written,
// in default and reproducible numerics, at 3 rows (row by row) and 20 (the batched LSTM of default
// numerics), with and without an initial h, with Y_h also a graph output; fewer steps. A reverse
// LSTM, whose last step of Y is not Y_h, keeps the graph as written.
namespace {
// Into an empty g: x [B, T, I] (T -1: dynamic, a symbol of its own) -> Transpose -> LSTM (hidden H)
// -> Squeeze -> Transpose -> Gather -1 (named "last_step") -> y [B, H]. variant 0: plain, 1: initial
// h, 2: Y_h also an output, 3: reverse.
void lstm_last_step_graph(G& g, int64_t T, int64_t I, int64_t H, int variant) {
  g.numbered_dims = T < 0;
  g.input("x", {-1, T, I});
  if (variant == 1) g.input("h0", {1, -1, H});
  g.output("y", {-1, H});
  if (variant == 2) g.output("yh", {1, -1, H});
  g.init("w", sine_tensor({1, 4 * H, I}, 0.31f, 0.2f));
  g.init("r", sine_tensor({1, 4 * H, H}, 0.17f, 0.4f));
  g.init("b", sine_tensor({1, 8 * H}, 0.23f, 0.1f));
  g.init("ax", i64({1}, {1}));
  g.init("last", i64({-1}, {}));
  quiver::test::attr_ints(g.node("Transpose", {"x"}, {"xt"}), "perm", {1, 0, 2});
  auto* l = g.node("LSTM", {"xt", "w", "r", "b", "", variant == 1 ? "h0" : ""}, {"Y", variant == 2 ? "yh" : ""});
  quiver::test::attr_int(l, "hidden_size", H);
  if (variant == 3) quiver::test::attr_str(l, "direction", "reverse");
  g.node("Squeeze", {"Y", "ax"}, {"ys"});
  quiver::test::attr_ints(g.node("Transpose", {"ys"}, {"yt"}), "perm", {1, 0, 2});
  auto* gather = g.node("Gather", {"yt", "last"}, {"y"});
  gather->set_name("last_step");
  quiver::test::attr_int(gather, "axis", 1);
}
}  // namespace

TEST(Engine, LstmLastStepFromYhMatchesUnfused) {
  const int64_t T = 5, I = 3, H = 7;
  for (int variant = 0; variant < 4; ++variant) {
    G g(14);
    lstm_last_step_graph(g, T, I, H, variant);
    const quiver::onnx::CompileOptions nofuse = no_fusion();
    const LoadOptions repro = reproducible_numerics();
    auto fused = g.load(), plain = g.load(nofuse), fused_repro = g.load({}, repro), plain_repro = g.load(nofuse, repro);
    if (variant == 3) EXPECT_EQ(steps_line(*fused), steps_line(*plain));
    else EXPECT_NE(steps_line(*fused), steps_line(*plain)) << "Squeeze, Transpose and Gather should become a Flatten";
    for (int64_t B : {3, 20}) {
      std::vector<Tensor> feeds{sine_tensor({B, T, I}, 0.37f, 0.3f)};
      if (variant == 1) feeds.push_back(sine_tensor({1, B, H}, 0.41f, 0.7f));
      const std::string what = "variant " + std::to_string(variant) + " batch " + std::to_string(B);
      for (auto [m, ref] : {std::pair{fused.get(), plain.get()}, std::pair{fused_repro.get(), plain_repro.get()}}) {
        const auto want = ref->run_once(feeds), got = m->run_once(feeds);
        ASSERT_EQ(got.size(), want.size()) << what;
        for (size_t o = 0; o < got.size(); ++o) {
          ASSERT_EQ(got[o].dims(), want[o].dims()) << what;
          EXPECT_EQ(quiver::onnx::compare_tensors(got[o], want[o], {0, 0}), "") << what << " output " << o;
        }
      }
    }
  }
}

// The same with the sequence length dynamic: a sequence of 0 steps has no last step, so the graph
// as written fails on Gather's index; read from Y_h it would silently be the initial state. The fused
// model fails too, naming the Gather; 2 steps still match bit for bit.
TEST(Engine, LstmLastStepOfNoStepsFailsAsWritten) {
  const int64_t I = 3, H = 7;
  G g(14);
  lstm_last_step_graph(g, -1, I, H, 0);
  const quiver::onnx::CompileOptions nofuse = no_fusion();
  auto fused = g.load(), plain = g.load(nofuse), fused_repro = g.load({}, reproducible_numerics());
  ASSERT_NE(steps_line(*fused), steps_line(*plain));
  const std::vector<Tensor> two{sine_tensor({4, 2, I}, 0.37f, 0.3f)};
  EXPECT_EQ(quiver::onnx::compare_tensors(fused->run_once(two)[0], plain->run_once(two)[0], {0, 0}), "");
  const std::vector<Tensor> none{Tensor::zeros(DType::F32, {4, 0, I})};
  const Error want = expect_error([&] { plain->run_once(none); });
  EXPECT_NE(std::string(want.what()).find("out of range"), std::string::npos) << want.what();
  for (const auto* m : {fused.get(), fused_repro.get()}) {
    const Error e = expect_error([&] { m->run_once(none); });
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("last_step"), std::string::npos) << e.what();
  }
}

// Found by fuzz_onnx_loader: an initializer whose dims overflow int64 when multiplied must give a
// clear error (and no signed overflow in the model summary, which UBSan reports).
TEST(Engine, InitializerWithOverflowingDimsIsAClearError) {
  G g;
  g.input("x", {2});
  g.output("y", {2});
  g.node("Relu", {"x"}, {"y"});
  for (int64_t big : {int64_t(1) << 40, int64_t(6952606551244800000)}) {
    auto* t = g.m.mutable_graph()->add_initializer();
    t->set_name("huge" + std::to_string(big));
    t->set_data_type(::onnx::TensorProto::FLOAT);
    t->add_dims(big);
    t->add_dims(big);
  }
  auto dir = fs::temp_directory_path() / ("quiver_test_big_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "big.onnx").string();
  write_file(path, g.m.SerializeAsString());
  auto e = expect_error([&] { quiver::onnx::load_onnx(path); });
  EXPECT_NE(std::string(e.what()).find("huge"), std::string::npos) << e.what();
  fs::remove_all(dir);
}

TEST(Engine, WrongInputDtypeAndShapeNameTheTensor) {
  G g;
  g.input("features", {-1, 3});
  g.output("y", {-1, 3});
  g.node("Relu", {"features"}, {"y"});
  auto m = g.load();
  auto e = expect_error([&] { m->run_once(std::vector<Tensor>{Tensor::zeros(DType::F64, {1, 3})}); });
  EXPECT_EQ(e.where().tensor, "features");
  e = expect_error([&] { m->run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {1, 4})}); });
  EXPECT_EQ(e.where().tensor, "features");
  EXPECT_NE(std::string(e.what()).find("[batch, 3]"), std::string::npos) << e.what();
  e = expect_error([&] { m->run_once(std::vector<Tensor>{}); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
}

TEST(Engine, RuntimeShapeErrorNamesNode) {
  G g;
  g.input("a", {-1});
  g.input("b", {-1});
  g.output("y", {-1});
  g.node("Add", {"a", "b"}, {"y"}, "the_add");
  auto m = g.load();
  auto e = expect_error([&] {
    m->run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {3}), Tensor::zeros(DType::F32, {4})});
  });
  EXPECT_NE(e.where().node.find("the_add"), std::string::npos) << e.what();
}

TEST(Engine, FoldsConstantSubgraphs) {
  G g;
  g.input("x", {-1, 4});
  g.output("y", {-1, 4});
  // (c1 + c2) is constant: only the final Add should remain.
  g.init("c1", Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
  g.init("c2", Tensor::from_vector<float>({10, 20, 30, 40}, {4}));
  g.node("Add", {"c1", "c2"}, {"c"});
  g.node("Add", {"x", "c"}, {"y"});
  auto m = g.load();
  EXPECT_EQ(steps_line(*m), "steps after compilation: 1");
  auto out = m->run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {1, 4})});
  EXPECT_FLOAT_EQ(out[0].data<float>()[3], 44.0f);
}

TEST(Engine, SameResultsFromManyThreadsOnOneModel) {
  G g;
  g.input("x", {-1, 8});
  g.output("y", {-1, 8});
  g.init("w", Tensor::from_vector<float>(std::vector<float>(64, 0.5f), {8, 8}));
  g.node("MatMul", {"x", "w"}, {"h"});
  g.node("Relu", {"h"}, {"y"});
  std::shared_ptr<const Model> m = g.load();
  std::atomic<int> bad{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      Session s(m);
      std::vector<Tensor> out;
      for (int i = 0; i < 500; ++i) {
        const int64_t b = 1 + (i + t) % 5;  // batch changes call to call
        Tensor x = Tensor::empty(DType::F32, {b, 8});
        for (int64_t k = 0; k < x.numel(); ++k) x.data<float>()[k] = static_cast<float>(t + 1);
        s.run(std::span<const Tensor>(&x, 1), out);
        if (out[0].dim(0) != b || out[0].data<float>()[0] != 4.0f * (t + 1)) bad++;
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Engine, ExternalDataNextToModel) {
  auto dir = fs::temp_directory_path() / ("quiver_ext_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<float> w{1, 2, 3, 4};
  write_file((dir / "weights.bin").string(), std::string("PAD!") + std::string(reinterpret_cast<char*>(w.data()), 16));
  G g;
  g.input("x", {4});
  g.output("y", {4});
  auto* init = g.g->add_initializer();
  init->set_name("w");
  init->set_data_type(1);
  init->add_dims(4);
  init->set_data_location(::onnx::TensorProto::EXTERNAL);
  auto kv = [&](const char* k, const char* v) {
    auto* e = init->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  kv("location", "weights.bin");
  kv("offset", "4");
  kv("length", "16");
  g.node("Mul", {"x", "w"}, {"y"});
  write_file((dir / "m.onnx").string(), g.m.SerializeAsString());
  auto m = quiver::onnx::load_onnx((dir / "m.onnx").string());
  auto out = m->run_once(std::vector<Tensor>{Tensor::from_vector<float>({1, 1, 1, 2}, {4})});
  EXPECT_FLOAT_EQ(out[0].data<float>()[3], 8.0f);
  // A location that escapes the folder is refused.
  init->mutable_external_data(0)->set_value("../etc/passwd");
  write_file((dir / "bad.onnx").string(), g.m.SerializeAsString());
  EXPECT_THROW(quiver::onnx::load_onnx((dir / "bad.onnx").string()), Error);
  fs::remove_all(dir);
}

TEST(Engine, ReusesActivationMemoryAcrossCalls) {
  G g;
  g.input("x", {-1, 16});
  g.output("y", {-1, 16});
  g.node("Relu", {"x"}, {"a"});
  g.node("Relu", {"a"}, {"b"});
  g.node("Relu", {"b"}, {"c"});
  g.node("Relu", {"c"}, {"y"});
  auto m = g.load();
  std::ostringstream os;
  m->describe(os);
  // a, b, c, y alternate between two slots (liveness).
  EXPECT_NE(os.str().find("activation slots: 2"), std::string::npos) << os.str();
  Session s(m);
  std::vector<Tensor> out;
  Tensor x = Tensor::zeros(DType::F32, {2, 16});
  s.run(std::span<const Tensor>(&x, 1), out);
  const void* p = out[0].raw();
  s.run(std::span<const Tensor>(&x, 1), out);
  EXPECT_EQ(out[0].raw(), p);  // caller's output storage reused too
}

TEST(Engine, TensorProtoRoundTrip) {
  for (DType t : {DType::F32, DType::I64, DType::Bool, DType::F16, DType::U8}) {
    Tensor x = Tensor::zeros(t, {2, 3});
    auto bytes = quiver::onnx::serialize_tensor({"n", x});
    auto back = quiver::onnx::parse_tensor(bytes);
    EXPECT_EQ(back.name, "n");
    EXPECT_EQ(back.tensor.dtype(), t);
    EXPECT_EQ(back.tensor.dims(), x.dims());
  }
  auto s = Tensor::from_vector<std::string>({"ab", ""}, {2});
  auto back = quiver::onnx::parse_tensor(quiver::onnx::serialize_tensor({"s", s}));
  EXPECT_EQ(back.tensor.data<std::string>()[0], "ab");
  EXPECT_THROW(quiver::onnx::parse_tensor("\x08\x01\x10garbage"), Error);
}

TEST(Engine, TreeEnsembleRegressorRunsOnTheForestEngine) {
  G g(13);
  auto* ml = g.m.add_opset_import();
  ml->set_domain("ai.onnx.ml");
  ml->set_version(3);
  g.input("X", {-1, 2});
  g.output("Y", {-1, 1});
  auto* n = g.node("TreeEnsembleRegressor", {"X"}, {"Y"}, "trees");
  n->set_domain("ai.onnx.ml");
  auto ints = [&](const char* name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  };
  auto floats = [&](const char* name, std::vector<float> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::FLOATS);
    for (auto x : v) a->add_floats(x);
  };
  auto strings = [&](const char* name, std::vector<std::string> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::STRINGS);
    for (auto& x : v) a->add_strings(x);
  };
  // Tree 0: x0 <= 0.5 ? 1 : (x1 <= 2 ? 2 : 3); tree 1: x1 < 1 ? 10 : 20 (missing -> true branch).
  ints("nodes_treeids", {0, 0, 0, 0, 0, 1, 1, 1});
  ints("nodes_nodeids", {0, 1, 2, 3, 4, 0, 1, 2});
  ints("nodes_featureids", {0, 0, 1, 0, 0, 1, 0, 0});
  floats("nodes_values", {0.5f, 0, 2, 0, 0, 1, 0, 0});
  strings("nodes_modes", {"BRANCH_LEQ", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"});
  ints("nodes_truenodeids", {1, 0, 3, 0, 0, 1, 0, 0});
  ints("nodes_falsenodeids", {2, 0, 4, 0, 0, 2, 0, 0});
  ints("nodes_missing_value_tracks_true", {0, 0, 0, 0, 0, 1, 0, 0});
  ints("target_treeids", {0, 0, 0, 1, 1});
  ints("target_nodeids", {1, 3, 4, 1, 2});
  ints("target_ids", {0, 0, 0, 0, 0});
  floats("target_weights", {1, 2, 3, 10, 20});
  floats("base_values", {100});
  // The forest engine is always part of quiver_onnx: an Unsupported here is a failure, not a skip.
  std::shared_ptr<const Model> m;
  try {
    m = g.load();
  } catch (const Error& e) {
    FAIL() << "TreeEnsembleRegressor did not load: " << e.what();
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto x = Tensor::from_vector<float>({0, 0, 1, 1.5f, 1, 5, 0.2f, nan}, {4, 2});
  auto out = m->run_once(std::vector<Tensor>{x});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{4, 1}));
  const float want[] = {111, 122, 123, 111};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[0].data<float>()[i], want[i]) << i;
}

// Profiling is the caller's: a sink hung on one state (RunState::profile, Session::set_profile). Runs
// with other states, or of other models, add nothing to it; no process-wide switch exists.
TEST(Engine, ProfilingIsPerStateAndOffByDefault) {
  G g;
  g.input("x", {-1, 4});
  g.output("y", {-1, 4});
  g.init("w", Tensor::from_vector<float>(std::vector<float>(16, 0.25f), {4, 4}));
  g.node("Relu", {"x"}, {"r"});
  g.node("MatMul", {"r", "w"}, {"m"});
  g.node("Neg", {"m"}, {"y"});
  auto model = g.load();
  auto other = g.load();
  const std::vector<Tensor> in{Tensor::from_vector<float>({1, -2, 3, -4}, {1, 4})};
  OpProfile prof;
  auto profiled = model->make_state();
  profiled->profile = &prof;
  auto plain = model->make_state();
  std::vector<Tensor> out;
  for (int i = 0; i < 3; ++i) {
    model->run(in, out, *profiled);
    model->run(in, out, *plain);
    other->run_once(in);
  }
  const auto rows = prof.rows();
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows) {
    EXPECT_TRUE(r.op == "Relu" || r.op == "MatMul" || r.op == "Neg") << r.op;
    EXPECT_EQ(r.calls, 3) << r.op;
    EXPECT_GE(r.ns, 0) << r.op;
  }
  // A Session hands its profile to its state; merging adds the counts.
  OpProfile second;
  Session s(model);
  s.set_profile(&second);
  s.run(in, out);
  s.set_profile(nullptr);
  s.run(in, out);
  prof.merge(second);
  for (const auto& r : prof.rows()) EXPECT_EQ(r.calls, 4) << r.op;
}

// The profile counts a GEMM-type step's FLOPs only where a product ran: a Gemm whose constant B is
// one-hot (a gather) is listed as a row of its own without FLOPs, beside a real Gemm's nominal
// 2*M*N*K, so `quiver bench --profile` does not report work never done (it read 108 % of the GEMM
// peak on the interaction net).
TEST(Engine, ProfileCountsNoFlopsForOneHotGemms) {
  const int64_t K = 8, N = 5, M = 3;
  Tensor sel = Tensor::zeros(DType::F32, {K, N});
  for (int64_t n = 0; n < N; ++n) sel.data<float>()[((n * 3) % K) * N + n] = 1;  // a gather
  G g;
  g.input("a", {-1, K});
  g.output("y", {-1, N});
  g.init("sel", sel);
  g.init("w", sine_tensor({N, N}, 0.31f, 0.5f));
  g.node("Gemm", {"a", "sel"}, {"g"});
  g.node("Gemm", {"g", "w"}, {"y"});
  auto model = g.load();
  OpProfile prof;
  auto st = model->make_state();
  st->profile = &prof;
  std::vector<Tensor> out;
  model->run(std::vector<Tensor>{sine_tensor({M, K}, 0.17f, 1.0f)}, out, *st);
  std::map<std::string, double> flops;
  for (const auto& r : prof.rows()) flops[r.op] = r.flops;
  ASSERT_EQ(flops.size(), 2u) << "rows: one-hot Gemm and Gemm";
  ASSERT_TRUE(flops.count("Gemm (one-hot gather)"));
  EXPECT_EQ(flops["Gemm (one-hot gather)"], 0.0);
  ASSERT_TRUE(flops.count("Gemm"));
  EXPECT_EQ(flops["Gemm"], 2.0 * M * N * N);
}
