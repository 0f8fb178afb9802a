// Reproducible numerics (numerics=reproducible, issue #15): the same bits on every ISA this CPU runs,
// for any batch size, row position and thread count; the kernels against a plain reference.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <thread>

#include "onnx/graph_builder.hpp"
#include "onnx/hep_models.hpp"
#include "onnx/numerics.hpp"
#include "core/repro/repro.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"

using namespace quiver;
using quiver::onnx::Isa;

namespace {

const Isa kAllIsas[] = {Isa::Avx512, Isa::Avx2, Isa::Baseline};

// The ISAs this CPU runs; the others are named in the test output (not skipped silently).
std::vector<Isa> runnable_isas() {
  std::vector<Isa> out;
  for (Isa i : kAllIsas) {
    if (quiver::onnx::cpu_has_isa(i)) out.push_back(i);
    else std::printf("[ NOTE     ] ISA %s: this CPU does not run it, not checked here\n", quiver::onnx::isa_name(i));
  }
  return out;
}

const repro::Kernels& table(Isa isa) {
  quiver::onnx::Target t;
  t.numerics = quiver::onnx::Numerics::Reproducible;
  t.isa = isa;
  return quiver::onnx::repro_kernels(t);
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Distance in units in the last place between two finite floats of the same sign region.
int64_t ulp_distance(float a, float b) {
  auto key = [](float f) {
    int64_t i = static_cast<int32_t>(bits(f));
    return i < 0 ? int64_t{INT32_MIN} - i : i;
  };
  return std::llabs(key(a) - key(b));
}

std::vector<float> test_values() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 1e-30f, -1e-30f, 1e-40f, 88.0f, 88.8f, -87.0f, -88.0f,
                          -104.0f, 1e30f, -1e30f, 3.4e38f, INFINITY, -INFINITY, NAN, 9.0f, 9.2f, -9.2f, 2.414f,
                          0.4142f, 4.0f, -4.0f, 1e-5f, -1e-5f};
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), narrow(-3.0f, 3.0f);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 20000; ++i) v.push_back(wide(rng));
  for (int i = 0; i < 20000; ++i) v.push_back(narrow(rng));
  for (int i = 0; i < 20000; ++i) {
    const uint32_t u = any(rng);
    float f;
    std::memcpy(&f, &u, 4);
    v.push_back(f);
  }
  return v;
}

using ArrayFn = void (*)(const float*, float*, int64_t);
struct Fn {
  const char* name;
  ArrayFn repro::Kernels::*fn;
  double (*ref)(double);
  int64_t max_ulp;
};
const Fn kFns[] = {
    {"exp", &repro::Kernels::exp, [](double x) { return std::exp(x); }, 2},
    {"log", &repro::Kernels::log, [](double x) { return std::log(x); }, 2},
    {"tanh", &repro::Kernels::tanh, [](double x) { return std::tanh(x); }, 3},
    {"sigmoid", &repro::Kernels::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, 4},
    {"erf", &repro::Kernels::erf, [](double x) { return std::erf(x); }, 6},
    {"atan", &repro::Kernels::atan, [](double x) { return std::atan(x); }, 3},
};

}  // namespace

TEST(ReproKernels, ElementwiseFunctionsAreBitwiseEqualOnEveryIsaAndAccurate) {
  const auto isas = runnable_isas();
  const std::vector<float> x = test_values();
  for (const Fn& f : kFns) {
    std::vector<float> first(x.size());
    (table(isas[0]).*f.fn)(x.data(), first.data(), static_cast<int64_t>(x.size()));
    for (size_t k = 1; k < isas.size(); ++k) {
      std::vector<float> y(x.size());
      (table(isas[k]).*f.fn)(x.data(), y.data(), static_cast<int64_t>(x.size()));
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(bits(first[i]), bits(y[i])) << f.name << "(" << x[i] << "): " << quiver::onnx::isa_name(isas[0]) << " "
                                              << first[i] << " vs " << quiver::onnx::isa_name(isas[k]) << " " << y[i];
    }
    // Odd sizes and unaligned starts take the loops' remainders: still the same bits per element.
    std::vector<float> part(37);
    (table(isas.back()).*f.fn)(x.data() + 3, part.data(), 37);
    for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(bits(part[i]), bits(first[i + 3])) << f.name;
    // Accuracy against double precision where the float result is normal.
    int64_t worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double r = f.ref(static_cast<double>(x[i]));
      const float rf = static_cast<float>(r);
      if (std::isnan(r)) {
        EXPECT_TRUE(std::isnan(first[i])) << f.name << "(" << x[i] << ") = " << first[i] << ", expected NaN";
        continue;
      }
      if (std::isinf(rf) || std::fabs(rf) < 1.17549435e-38f) continue;  // saturating / subnormal range
      const int64_t d = ulp_distance(first[i], rf);
      if (d > worst) { worst = d; worst_x = x[i]; }
    }
    EXPECT_LE(worst, f.max_ulp) << f.name << " is " << worst << " ulp off at x = " << worst_x;
  }
}

// The reference order of a reproducible GEMM: per output, acc = fma(a[k], b[k], acc) for k = 0..K-1.
static void reference_gemm(const repro::GemmCall& g, std::vector<float>& c) {
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < g.N; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < g.K; ++k) {
        const float a = g.transA ? g.A[k * g.lda + m] : g.A[m * g.lda + k];
        const float b = g.transB ? g.B[n * g.ldb + k] : g.B[k * g.ldb + n];
        acc = std::fma(a, b, acc);
      }
      float& out = c[static_cast<size_t>(m * g.ldc + n)];
      float y = g.alpha == 1.0f ? acc : g.alpha * acc;
      if (g.beta != 0.0f) y = std::fma(g.beta, out, y);
      if (g.bias) y = y + g.bias[n];
      if (g.act == repro::Act::Relu) y = y > 0 ? y : 0;
      if (g.act == repro::Act::LeakyRelu) y = y >= 0 ? y : y * g.act_alpha;
      if (g.act == repro::Act::Clip) y = std::min(std::max(y, g.act_alpha), g.act_beta);
      out = y;
    }
}

TEST(ReproKernels, GemmIsTheFixedOrderFmaChainOnEveryIsa) {
  std::mt19937 rng(16);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 64, 16}, {3, 37, 5}, {4, 32, 64}, {7, 100, 33}, {64, 17, 130}, {1, 200, 50}};
  for (const auto& s : shapes) {
    for (int variant = 0; variant < 4; ++variant) {
      const int64_t M = s[0], N = s[1], K = s[2];
      std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)), bias(static_cast<size_t>(N)),
          C0(static_cast<size_t>(M * N));
      for (auto* v : {&A, &B, &bias, &C0})
        for (auto& x : *v) x = u(rng);
      repro::GemmCall g;
      g.M = M; g.N = N; g.K = K;
      g.transA = variant & 1;
      g.transB = (variant & 2) != 0;
      g.A = A.data(); g.lda = g.transA ? M : K;
      g.B = B.data(); g.ldb = g.transB ? K : N;
      g.ldc = N;
      g.alpha = variant == 3 ? 0.5f : 1.0f;
      g.beta = variant >= 2 ? 1.0f : 0.0f;
      g.bias = variant % 2 == 0 ? bias.data() : nullptr;
      g.act = variant == 1 ? repro::Act::Relu : repro::Act::None;
      std::vector<float> want = C0;
      reference_gemm(g, want);
      for (Isa isa : runnable_isas()) {
        std::vector<float> got = C0;
        g.C = got.data();
        table(isa).gemm(g);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(bits(got[i]), bits(want[i])) << quiver::onnx::isa_name(isa) << " " << M << "x" << N << "x" << K
                                                 << " variant " << variant << " element " << i;
      }
    }
  }
}

// The register-tiled GEMM's edges: M, N not multiples of the tile (every row remainder of the 6-row
// AVX-512 and 4-row AVX2/baseline panels, masked column tails), K = 0 and 1, long K, padded leading
// dimensions (the padding must stay untouched), both transposes, alpha/beta/bias and every fused
// activation. Exact activations compare with the reference order; sigmoid and tanh (the engine's own)
// compare bits across the ISAs.
TEST(ReproKernels, TiledGemmEdgesAreBitwiseEqualOnEveryIsa) {
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  const int64_t shapes[][3] = {{1, 1, 0},  {2, 5, 1},    {5, 1, 3},    {6, 16, 1},  {7, 17, 2},   {11, 129, 9},
                               {13, 63, 4}, {12, 96, 31}, {3, 300, 70}, {1, 257, 300}, {25, 47, 129}, {9, 8, 1}};
  const repro::Act acts[] = {repro::Act::None, repro::Act::Relu, repro::Act::LeakyRelu, repro::Act::Clip,
                             repro::Act::Sigmoid, repro::Act::Tanh};
  int case_no = 0;
  for (const auto& s : shapes) {
    for (int variant = 0; variant < 8; ++variant, ++case_no) {
      const int64_t M = s[0], N = s[1], K = s[2];
      const int64_t pad = variant % 3;  // leading dimensions beyond the matrix
      repro::GemmCall g;
      g.M = M; g.N = N; g.K = K;
      g.transA = (variant & 1) != 0;
      g.transB = (variant & 2) != 0;
      g.lda = (g.transA ? M : K) + pad;
      g.ldb = (g.transB ? K : N) + pad;
      g.ldc = N + pad;
      std::vector<float> A(static_cast<size_t>((g.transA ? K : M) * g.lda + 1)),
          B(static_cast<size_t>((g.transB ? N : K) * g.ldb + 1)), bias(static_cast<size_t>(N)),
          C0(static_cast<size_t>(M * g.ldc));
      for (auto* v : {&A, &B, &bias, &C0})
        for (auto& x : *v) x = u(rng);
      g.A = A.data();
      g.B = B.data();
      g.alpha = variant & 4 ? -0.75f : 1.0f;
      g.beta = variant % 3 == 1 ? 0.5f : (variant % 3 == 2 ? 1.0f : 0.0f);
      g.bias = variant & 4 ? nullptr : bias.data();
      g.act = acts[case_no % 6];
      g.act_alpha = g.act == repro::Act::Clip ? -0.5f : 0.1f;
      g.act_beta = 0.5f;
      const bool exact_act = g.act != repro::Act::Sigmoid && g.act != repro::Act::Tanh;
      std::vector<float> want = C0;
      reference_gemm(g, want);
      std::vector<float> first;
      for (Isa isa : runnable_isas()) {
        std::vector<float> got = C0;
        g.C = got.data();
        table(isa).gemm(g);
        const std::string where = std::string(quiver::onnx::isa_name(isa)) + " " + std::to_string(M) + "x" +
                                  std::to_string(N) + "x" + std::to_string(K) + " variant " + std::to_string(variant);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = N; n < g.ldc; ++n)
            ASSERT_EQ(bits(got[static_cast<size_t>(m * g.ldc + n)]), bits(C0[static_cast<size_t>(m * g.ldc + n)]))
                << where << ": padding of row " << m << " written";
        if (exact_act) {
          for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << where << " element " << i;
        } else {
          for (size_t i = 0; i < got.size(); ++i) {  // the engine's sigmoid/tanh: a few ulp from libm's
            if (static_cast<int64_t>(i) % g.ldc >= N) continue;
            const double y = want[i];
            const double e = g.act == repro::Act::Tanh ? std::tanh(y) : 1.0 / (1.0 + std::exp(-y));
            ASSERT_NEAR(got[i], e, 2e-6) << where << " element " << i;
          }
        }
        if (first.empty()) {
          first = got;
        } else {
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(bits(got[i]), bits(first[i])) << where << " differs from the first ISA at element " << i;
        }
      }
    }
  }
}

TEST(ReproKernels, SoftmaxSumsInIndexOrderOnEveryIsa) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  for (const auto& s : std::vector<std::array<int64_t, 3>>{{3, 10, 1}, {2, 7, 5}, {1, 300, 1}}) {
    std::vector<float> x(static_cast<size_t>(s[0] * s[1] * s[2]));
    for (auto& v : x) v = u(rng);
    for (bool log : {false, true}) {
      std::vector<float> first;
      for (Isa isa : runnable_isas()) {
        std::vector<float> y(x.size());
        table(isa).softmax(x.data(), y.data(), s[0], s[1], s[2], log);
        if (first.empty()) {
          first = y;
          // A softmax row sums to 1 (within rounding).
          if (!log)
            for (int64_t i = 0; i < s[2]; ++i) {
              double sum = 0;
              for (int64_t k = 0; k < s[1]; ++k) sum += y[static_cast<size_t>(k * s[2] + i)];
              EXPECT_NEAR(sum, 1.0, 1e-5);
            }
          continue;
        }
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(bits(y[i]), bits(first[i])) << quiver::onnx::isa_name(isa);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------- models

namespace {

LoadOptions repro_options(Isa isa) {
  LoadOptions o;
  o.params["numerics"] = "reproducible";
  o.params["isa"] = quiver::onnx::isa_name(isa);
  return o;
}

// Empty when row `r` of `got` has the bytes of row `want_row` of `want`, for every output.
std::string same_row(const std::vector<Tensor>& got, int64_t r, const std::vector<Tensor>& want, int64_t want_row,
                     const Model& m) {
  for (size_t i = 0; i < want.size(); ++i) {
    const size_t rb = want[i].nbytes() / static_cast<size_t>(want[i].dim(0));
    if (got[i].nbytes() / static_cast<size_t>(got[i].dim(0)) != rb) return "output " + m.info().outputs[i].name + ": row sizes differ";
    const auto* g = static_cast<const unsigned char*>(got[i].raw()) + r * rb;
    const auto* w = static_cast<const unsigned char*>(want[i].raw()) + want_row * rb;
    if (std::memcmp(g, w, rb) != 0) {
      size_t k = 0;
      while (k < rb && g[k] == w[k]) ++k;
      std::string vals;
      if (want[i].dtype() == DType::F32) {
        float a, b;
        std::memcpy(&a, g + k / 4 * 4, 4);
        std::memcpy(&b, w + k / 4 * 4, 4);
        vals = ": " + std::to_string(a) + " vs " + std::to_string(b);
      }
      return "output " + m.info().outputs[i].name + " row " + std::to_string(r) + " byte " + std::to_string(k) + vals;
    }
  }
  return "";
}

}  // namespace

class ReproHepModel : public ::testing::TestWithParam<const char*> {};

TEST_P(ReproHepModel, BitwiseEqualAcrossIsaBatchPositionAndThreads) {
  const std::string dir = test::kHep + GetParam();
  std::vector<Tensor> inputs;
  for (const auto& f : quiver::onnx::numbered_files(dir + "/test_data_set_0", "input")) inputs.push_back(quiver::onnx::read_tensor_file(f).tensor);
  const auto expected_files = quiver::onnx::numbered_files(dir + "/test_data_set_0", "output");
  const auto isas = runnable_isas();
  const int64_t rows = inputs[0].rank() > 0 ? inputs[0].dim(0) : 1;

  // The reference: the data set's batch on the widest ISA; it must still match ONNX Runtime's outputs.
  auto first = quiver::onnx::load_onnx(dir + "/model.onnx", repro_options(isas[0]));
  const std::vector<Tensor> ref = first->run_once(inputs);
  ASSERT_EQ(ref.size(), expected_files.size());
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_EQ(quiver::onnx::compare_tensors(ref[i], quiver::onnx::read_tensor_file(expected_files[i]).tensor, {1e-4, 1e-5}), "")
        << GetParam() << " output " << i << " (reproducible mode vs the reference outputs)";
  const auto& shape0 = first->info().inputs[0].shape;
  const bool fixed_batch = !shape0.empty() && shape0[0].value > 0;

  for (Isa isa : isas) {
    SCOPED_TRACE(std::string("isa ") + quiver::onnx::isa_name(isa));
    auto model = isa == isas[0] ? first : quiver::onnx::load_onnx(dir + "/model.onnx", repro_options(isa));
    // The data set's batch.
    const auto whole = model->run_once(inputs);
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(same_row(whole, r, ref, r, *model), "") << "data set batch";
    // Each row alone (batch 1) and two threads: on the widest ISA (the other ISAs are held to its bits
    // on the data set's batch and on batch 64, which puts every row at several positions).
    const bool widest = isa == isas[0];
    for (int64_t r = 0; widest && r < rows; ++r) {
      const auto one = model->run_once(take_rows(inputs, r, 1));
      EXPECT_EQ(same_row(one, 0, ref, r, *model), "") << "batch 1, row " << r;
    }
    // Batch 64: the data set's rows tiled, so each row sits at several positions (0 .. 63).
    if (fixed_batch) {
      if (isa == isas[0]) std::printf("[ NOTE     ] %s has a fixed batch of %ld: batch 64 not checked\n", GetParam(),
                                      static_cast<long>(shape0[0].value));
    } else {
      const auto big = model->run_once(quiver::tile_rows(inputs, 64));
      for (int64_t r = 0; r < 64; ++r) EXPECT_EQ(same_row(big, r, ref, r % rows, *model), "") << "batch 64, position " << r;
    }
    if (!widest) continue;
    // Two threads sharing the model, each with its own state, several calls each.
    std::vector<std::string> errors(2);
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&, t] {
        auto st = model->make_state();
        for (int k = 0; k < 3 && errors[t].empty(); ++k) {
          std::vector<Tensor> out;
          model->run(inputs, out, *st);
          for (int64_t r = 0; r < rows && errors[t].empty(); ++r) errors[t] = same_row(out, r, ref, r, *model);
        }
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(errors[0] + errors[1], "") << "2 threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Cms, ReproHepModel, ::testing::ValuesIn(test::kModels),
                         [](const auto& info) { return std::string(info.param); });

TEST(ReproLoad, BadSettingsAreClearErrors) {
  const std::string model = test::kHep + "ticl_energy_id/model.onnx";
  auto message = [&](std::map<std::string, std::string> params) {
    LoadOptions o;
    o.params = std::move(params);
    try {
      quiver::onnx::load_onnx(model, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  EXPECT_NE(message({{"numerics", "exact"}}).find("numerics 'exact' is not one of: default, reproducible"), std::string::npos);
  EXPECT_NE(message({{"numerics", "reproducible"}, {"isa", "sse9"}}).find("isa='sse9' is not one of"), std::string::npos);
  EXPECT_NE(message({{"isa", "avx2"}}).find("applies to numerics=reproducible"), std::string::npos);
  for (Isa i : kAllIsas) {
    if (quiver::onnx::cpu_has_isa(i)) continue;
    EXPECT_NE(message({{"numerics", "reproducible"}, {"isa", quiver::onnx::isa_name(i)}}).find("this CPU does not run"),
                std::string::npos);
  }
  EXPECT_EQ(message({{"numerics", "reproducible"}, {"isa", "auto"}}), "loaded");
}

TEST(ReproLoad, AnOpWithoutAReproducibleKernelIsRefusedByNodeAndOp) {
  test::G g;
  g.input("x", {-1, 4});
  g.output("y", {-1, 4});
  g.node("Sin", {"x"}, {"y"})->set_name("the_sine");
  LoadOptions lo;
  lo.params["numerics"] = "reproducible";
  try {
    g.load({}, lo);
    FAIL() << "loaded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("operator 'Sin' has no reproducible kernel"), std::string::npos) << m;
    EXPECT_NE(m.find("the_sine"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(g.load());  // the default mode runs it
}

TEST(ReproLoad, InspectNamesTheTarget) {
  LoadOptions lo;
  lo.params["numerics"] = "reproducible";
  lo.params["isa"] = "baseline";
  auto m = quiver::onnx::load_onnx(test::kHep + "ticl_energy_id/model.onnx", lo);
  std::ostringstream os;
  m->describe(os);
  EXPECT_NE(os.str().find("cpu (reproducible, baseline)"), std::string::npos) << os.str();
}
