// Math operators (Reduce*, Mod, Pow, Cast, Clip, Where, variadic Max/Sum, ArgMax, CumSum, Einsum)
// on small graphs built in code, checked against naive reference computations; bad values must give
// errors that name the node.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <functional>
#include <limits>
#include <numbers>
#include <numeric>
#include <random>

#include "quiver/core/half.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "onnx/graph_builder.hpp"

using namespace quiver;

namespace {

using quiver::test::attr_int;
using quiver::test::attr_float;
using quiver::test::attr_str;
using quiver::test::strides_of;
using quiver::test::for_each_index;
using quiver::test::expect_error;

using G = quiver::test::NumberedG<18>;

Tensor random_f(const std::vector<int64_t>& dims, std::mt19937& rng, float lo = -2.f, float hi = 2.f) {
  Tensor t = Tensor::empty(DType::F32, dims);
  std::uniform_real_distribution<float> u(lo, hi);
  for (auto& v : t.span<float>()) v = u(rng);
  return t;
}

template <class T>
Tensor vec(const std::vector<T>& v, std::vector<int64_t> dims = {}) {
  if (dims.empty()) dims = {static_cast<int64_t>(v.size())};
  return Tensor::from_vector(v, std::span<const int64_t>(dims));
}

}  // namespace

// Every subset of axes of 3-D / 4-D inputs, keepdims on and off, axes as a runtime input (opset 18):
// exercises the trailing, middle and general (non-adjacent axes) reduction paths.
TEST(MathOps, ReduceMatchesNaiveForAllAxisSubsets) {
  std::mt19937 rng(7);
  const std::vector<std::string> ops{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp", "ReduceProd"};
  for (const auto& dims : std::vector<std::vector<int64_t>>{{3, 4, 5}, {2, 3, 1, 4}}) {
    const size_t r = dims.size();
    for (const auto& op : ops) {
      for (int keep = 0; keep < 2; ++keep) {
        G g;
        g.input("x", dims);
        g.input("axes", {-1}, DType::I64);
        g.output("y", {});
        attr_int(g.node(op, {"x", "axes"}, {"y"}), "keepdims", keep);
        auto m = g.load();
        Tensor x = random_f(dims, rng, 0.5f, 1.5f);
        for (unsigned mask = 1; mask < (1u << r); ++mask) {
          std::vector<int64_t> axes;
          for (size_t d = 0; d < r; ++d)
            if (mask & (1u << d)) axes.push_back(d % 2 ? static_cast<int64_t>(d) : static_cast<int64_t>(d) - static_cast<int64_t>(r));
          auto out = m->run_once(std::vector<Tensor>{x, vec<int64_t>(axes)});
          // Naive: group input elements by output position.
          std::vector<int64_t> od, kd;
          for (size_t d = 0; d < r; ++d) {
            const bool red = mask & (1u << d);
            if (!red) od.push_back(dims[d]);
            else if (keep) od.push_back(1);
            kd.push_back(red ? 1 : dims[d]);
          }
          ASSERT_EQ(out[0].dims(), od) << op << " mask " << mask;
          const auto ks = strides_of(kd);
          const int64_t on = std::accumulate(kd.begin(), kd.end(), int64_t{1}, std::multiplies<>());
          std::vector<std::vector<double>> groups(static_cast<size_t>(on));
          for_each_index(dims, [&](const std::vector<int64_t>& idx, int64_t o) {
            int64_t k = 0;
            for (size_t d = 0; d < r; ++d) k += (kd[d] == 1 ? 0 : idx[d]) * ks[d];
            groups[static_cast<size_t>(k)].push_back(x.data<float>()[o]);
          });
          for (int64_t k = 0; k < on; ++k) {
            const auto& v = groups[static_cast<size_t>(k)];
            double e = 0;
            if (op == "ReduceSum") for (double a : v) e += a;
            else if (op == "ReduceMean") { for (double a : v) e += a; e /= static_cast<double>(v.size()); }
            else if (op == "ReduceMax") e = *std::max_element(v.begin(), v.end());
            else if (op == "ReduceMin") e = *std::min_element(v.begin(), v.end());
            else if (op == "ReduceL2") { for (double a : v) e += a * a; e = std::sqrt(e); }
            else if (op == "ReduceLogSumExp") { for (double a : v) e += std::exp(a); e = std::log(e); }
            else { e = 1; for (double a : v) e *= a; }
            ASSERT_NEAR(out[0].data<float>()[k], e, 1e-5 * std::max(1.0, std::fabs(e))) << op << " mask " << mask << " k " << k;
          }
        }
      }
    }
  }
}

TEST(MathOps, ReduceEmptyAxesAndNoop) {
  G g(13);
  g.input("x", {2, 3});
  g.output("y", {});
  g.output("z", {});
  g.node("ReduceSum", {"x"}, {"y"});  // opset 13, no axes: everything
  attr_int(g.node("ReduceSum", {"x"}, {"z"}), "noop_with_empty_axes", 1);
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{vec<float>({1, 2, 3, 4, 5, 6}, {2, 3})});
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{1, 1}));
  EXPECT_FLOAT_EQ(out[0].data<float>()[0], 21.f);
  EXPECT_EQ(out[1].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_FLOAT_EQ(out[1].data<float>()[5], 6.f);
}

TEST(MathOps, ModSignSemanticsAndZeroDivisor) {
  for (int fmod = 0; fmod < 2; ++fmod) {
    G g;
    g.input("a", {6}, DType::I32);
    g.input("b", {6}, DType::I32);
    g.output("c", {6}, DType::I32);
    attr_int(g.node("Mod", {"a", "b"}, {"c"}, "modder"), "fmod", fmod);
    auto m = g.load();
    auto out = m->run_once(std::vector<Tensor>{vec<int32_t>({7, -7, 7, -7, 6, -2147483647 - 1}), vec<int32_t>({3, 3, -3, -3, 3, -1})});
    const std::vector<int32_t> py{1, 2, -2, -1, 0, 0}, c{1, -1, 1, -1, 0, 0};
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(out[0].data<int32_t>()[i], fmod ? c[i] : py[i]) << "fmod " << fmod << " i " << i;
    Error e = expect_error([&] { m->run_once(std::vector<Tensor>{vec<int32_t>({1, 2, 3, 4, 5, 6}), vec<int32_t>({1, 0, 1, 1, 1, 1})}); });
    EXPECT_NE(std::string(e.what()).find("modder"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("zero"), std::string::npos) << e.what();
  }
  G g;
  g.input("a", {4}, DType::F64);
  g.input("b", {4}, DType::F64);
  g.output("c", {4}, DType::F64);
  g.node("Mod", {"a", "b"}, {"c"});
  auto out = g.load()->run_once(std::vector<Tensor>{vec<double>({5.5, -5.5, 5.5, -5.5}), vec<double>({2, 2, -2, -2})});
  const std::vector<double> e{1.5, 0.5, -0.5, -1.5};
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(out[0].data<double>()[i], e[i]);
}

// Abs clears the sign bit of floats: -0 gives +0 and a negative NaN a positive one (numpy, ONNX
// Runtime and the CUDA kernel agree), so results are the same bits on every target.
TEST(MathOps, AbsClearsTheSignBitOfZeroAndNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (DType dt : {DType::F32, DType::F64}) {
    G g;
    g.input("x", {5}, dt);
    g.output("y", {5}, dt);
    g.node("Abs", {"x"}, {"y"});
    const std::vector<double> in{-0.0, -static_cast<double>(nan), -1.5, 2.0, -std::numeric_limits<double>::infinity()};
    Tensor x = dt == DType::F32 ? vec<float>({-0.0f, -nan, -1.5f, 2.0f, -std::numeric_limits<float>::infinity()}) : vec<double>(in);
    auto out = g.load()->run_once(std::vector<Tensor>{x});
    for (size_t i = 0; i < 5; ++i) {
      const double y = dt == DType::F32 ? double(out[0].data<float>()[i]) : out[0].data<double>()[i];
      EXPECT_FALSE(std::signbit(y)) << dtype_name(dt) << " element " << i;
      if (i == 1) EXPECT_TRUE(std::isnan(y));
      else EXPECT_EQ(y, std::fabs(in[i])) << dtype_name(dt) << " element " << i;
    }
  }
  G g;
  g.input("x", {3}, DType::I64);
  g.output("y", {3}, DType::I64);
  g.node("Abs", {"x"}, {"y"});
  auto out = g.load()->run_once(std::vector<Tensor>{vec<int64_t>({-7, 0, 5})});
  EXPECT_EQ(out[0].data<int64_t>()[0], 7);
  EXPECT_EQ(out[0].data<int64_t>()[1], 0);
  EXPECT_EQ(out[0].data<int64_t>()[2], 5);
}

TEST(MathOps, PowMixedTypesExactIntegersAndFastPath) {
  G g;
  g.input("a", {3}, DType::I64);
  g.input("b", {3}, DType::I32);
  g.input("x", {4});
  g.input("n", {1}, DType::I64);
  g.output("c", {3}, DType::I64);
  g.output("y", {4});
  g.output("z", {4});
  g.init("two", vec<float>({2.f}, {1}));
  g.node("Pow", {"a", "b"}, {"c"});
  g.node("Pow", {"x", "n"}, {"y"});
  g.node("Pow", {"x", "two"}, {"z"});
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{vec<int64_t>({3, -2, 7}), vec<int32_t>({39, 5, 0}),
                                             vec<float>({1.5f, -2.f, 0.25f, 3.f}), vec<int64_t>({3})});
  EXPECT_EQ(out[0].data<int64_t>()[0], 4052555153018976267LL);  // 3^39, beyond double's exact range
  EXPECT_EQ(out[0].data<int64_t>()[1], -32);
  EXPECT_EQ(out[0].data<int64_t>()[2], 1);
  const std::vector<float> x{1.5f, -2.f, 0.25f, 3.f};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(out[1].data<float>()[i], x[i] * x[i] * x[i]);
    EXPECT_FLOAT_EQ(out[2].data<float>()[i], x[i] * x[i]);
  }
}

TEST(MathOps, CastSaturatesNanAndRoundTripsStrings) {
  G g;
  g.input("x", {5});
  g.output("i8", {5}, DType::I8);
  g.output("s", {5}, DType::String);
  g.output("back", {5});
  g.output("h", {5}, DType::F16);
  attr_int(g.node("Cast", {"x"}, {"i8"}), "to", static_cast<int>(DType::I8));
  attr_int(g.node("Cast", {"x"}, {"s"}), "to", static_cast<int>(DType::String));
  attr_int(g.node("Cast", {"s"}, {"back"}), "to", static_cast<int>(DType::F32));
  attr_int(g.node("Cast", {"x"}, {"h"}), "to", static_cast<int>(DType::F16));
  auto m = g.load();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto out = m->run_once(std::vector<Tensor>{vec<float>({-1000.f, 3.9f, nan, 0.1f, -inf})});
  const std::vector<int8_t> e8{-128, 3, 0, 0, -128};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(out[0].data<int8_t>()[i], e8[i]) << i;
  EXPECT_EQ(out[1].data<std::string>()[3], "0.1");
  EXPECT_EQ(out[1].data<std::string>()[2], "NaN");
  EXPECT_EQ(out[1].data<std::string>()[4], "-INF");
  EXPECT_FLOAT_EQ(out[2].data<float>()[1], 3.9f);
  EXPECT_TRUE(std::isnan(out[2].data<float>()[2]));
  EXPECT_EQ(out[2].data<float>()[4], -inf);
  EXPECT_FLOAT_EQ(static_cast<float>(out[3].data<Half>()[3]), 0.099975586f);

  G bad;
  bad.input("s", {1}, DType::String);
  bad.output("f", {1});
  attr_int(bad.node("Cast", {"s"}, {"f"}, "parse"), "to", 1);
  auto bm = bad.load();
  Tensor s = Tensor::empty(DType::String, {1});
  s.data<std::string>()[0] = "twelve";
  Error e = expect_error([&] { bm->run_once(std::vector<Tensor>{s}); });
  EXPECT_NE(std::string(e.what()).find("twelve"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("parse"), std::string::npos) << e.what();

  G f8;
  f8.input("x", {1});
  f8.output("y", {1}, DType::U8);
  attr_int(f8.node("Cast", {"x"}, {"y"}), "to", 17);  // FLOAT8E4M3FN
  EXPECT_EQ(expect_error([&] { f8.load(); }).code(), ErrorCode::Unsupported);
}

TEST(MathOps, ClipAttributesBeforeOpset11InputsAfter) {
  const std::vector<float> x{-3.f, -0.5f, 0.f, 0.7f, 9.f};
  {
    G g(6);
    g.input("x", {5});
    g.output("y", {5});
    auto* n = g.node("Clip", {"x"}, {"y"});
    attr_float(n, "min", -1.f);
    attr_float(n, "max", 0.5f);
    auto out = g.load()->run_once(std::vector<Tensor>{vec<float>(x)});
    const std::vector<float> e{-1.f, -0.5f, 0.f, 0.5f, 0.5f};
    for (size_t i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(out[0].data<float>()[i], e[i]);
  }
  {
    G g(13);
    g.input("x", {5});
    g.input("hi", {});
    g.output("y", {5});
    g.output("z", {5});
    g.init("lo", Tensor::scalar<float>(1.f));
    g.node("Clip", {"x", "", "hi"}, {"y"});
    g.node("Clip", {"x", "lo", "hi"}, {"z"});  // lo > hi: everything becomes hi (numpy.clip)
    auto out = g.load()->run_once(std::vector<Tensor>{vec<float>(x), Tensor::scalar<float>(0.f)});
    const std::vector<float> e{-3.f, -0.5f, 0.f, 0.f, 0.f};
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_FLOAT_EQ(out[0].data<float>()[i], e[i]);
      EXPECT_FLOAT_EQ(out[1].data<float>()[i], 0.f);
    }
  }
}

TEST(MathOps, WhereAndVariadicMaxBroadcastThreeWays) {
  G g;
  g.input("c", {3, 1, 1}, DType::Bool);
  g.input("a", {1, 4, 1});
  g.input("b", {5});
  g.output("w", {3, 4, 5});
  g.output("m", {3, 4, 5});
  g.output("s", {3, 4, 5});
  g.node("Where", {"c", "a", "b"}, {"w"});
  g.node("Max", {"a", "b", "w"}, {"m"});
  g.node("Sum", {"b", "a", "w"}, {"s"});
  auto m = g.load();
  std::mt19937 rng(3);
  Tensor c = Tensor::empty(DType::Bool, {3, 1, 1});
  c.data<bool>()[0] = true;
  c.data<bool>()[1] = false;
  c.data<bool>()[2] = true;
  Tensor a = random_f({1, 4, 1}, rng), b = random_f({5}, rng);
  auto out = m->run_once(std::vector<Tensor>{c, a, b});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{3, 4, 5}));
  for_each_index({3, 4, 5}, [&](const std::vector<int64_t>& i, int64_t o) {
    const float av = a.data<float>()[i[1]], bv = b.data<float>()[i[2]];
    const float w = c.data<bool>()[i[0]] ? av : bv;
    EXPECT_EQ(out[0].data<float>()[o], w);
    EXPECT_EQ(out[1].data<float>()[o], std::max({av, bv, w}));
    EXPECT_FLOAT_EQ(out[2].data<float>()[o], av + bv + w);
  });
}

TEST(MathOps, ArgMaxLastIndexAndCumSumExclusiveReverse) {
  G g;
  g.input("x", {2, 4});
  g.output("first", {2});
  g.output("last", {2});
  g.output("cs", {2, 4});
  g.init("axis", Tensor::scalar<int64_t>(1));
  auto* a1 = g.node("ArgMax", {"x"}, {"first"});
  attr_int(a1, "axis", 1);
  attr_int(a1, "keepdims", 0);
  auto* a2 = g.node("ArgMax", {"x"}, {"last"});
  attr_int(a2, "axis", -1);
  attr_int(a2, "keepdims", 0);
  attr_int(a2, "select_last_index", 1);
  auto* cs = g.node("CumSum", {"x", "axis"}, {"cs"});
  attr_int(cs, "exclusive", 1);
  attr_int(cs, "reverse", 1);
  auto out = g.load()->run_once(std::vector<Tensor>{vec<float>({1, 5, 5, 2, 7, 0, 7, 7}, {2, 4})});
  EXPECT_EQ(out[0].data<int64_t>()[0], 1);
  EXPECT_EQ(out[0].data<int64_t>()[1], 0);
  EXPECT_EQ(out[1].data<int64_t>()[0], 2);
  EXPECT_EQ(out[1].data<int64_t>()[1], 3);
  const std::vector<float> e{12, 7, 2, 0, 14, 14, 7, 0};
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[2].data<float>()[i], e[i]) << i;
}

// Found by fuzz_onnx_loader (fuzz/corpus/onnx_loader/argmax_scalar_input): a scalar input of known
// rank made the shape rule index an empty shape. A scalar gives the scalar index 0, as at run time.
TEST(MathOps, ArgMinOfAScalarLoadsAndGivesIndexZero) {
  G g;
  g.input("x", {});
  g.output("i", {}, DType::I64);
  g.node("ArgMin", {"x"}, {"i"});
  auto out = g.load()->run_once(std::vector<Tensor>{Tensor::scalar<float>(3.5f)});
  ASSERT_EQ(out[0].rank(), 0u);
  EXPECT_EQ(out[0].data<int64_t>()[0], 0);
}

TEST(MathOps, EinsumBatchMatmulTraceAndEllipsis) {
  std::mt19937 rng(11);
  G g(12);
  g.input("a", {2, 3, 4});
  g.input("b", {2, 4, 5});
  g.input("s", {3, 3});
  g.output("mm", {2, 3, 5});
  g.output("tr", {});
  g.output("el", {2, 5, 3});
  attr_str(g.node("Einsum", {"a", "b"}, {"mm"}), "equation", "bij,bjk->bik");
  attr_str(g.node("Einsum", {"s"}, {"tr"}), "equation", "ii");
  attr_str(g.node("Einsum", {"a", "b"}, {"el"}), "equation", "...ij,...jk->...ki");
  auto m = g.load();
  Tensor a = random_f({2, 3, 4}, rng), b = random_f({2, 4, 5}, rng), s = random_f({3, 3}, rng);
  auto out = m->run_once(std::vector<Tensor>{a, b, s});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 3, 5}));
  ASSERT_EQ(out[1].dims(), (std::vector<int64_t>{}));
  ASSERT_EQ(out[2].dims(), (std::vector<int64_t>{2, 5, 3}));
  for (int64_t bb = 0; bb < 2; ++bb)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t k = 0; k < 5; ++k) {
        double e = 0;
        for (int64_t j = 0; j < 4; ++j) e += a.data<float>()[(bb * 3 + i) * 4 + j] * b.data<float>()[(bb * 4 + j) * 5 + k];
        EXPECT_NEAR(out[0].data<float>()[(bb * 3 + i) * 5 + k], e, 1e-5);
        EXPECT_NEAR(out[2].data<float>()[(bb * 5 + k) * 3 + i], e, 1e-5);
      }
  EXPECT_NEAR(out[1].data<float>()[0], s.data<float>()[0] + s.data<float>()[4] + s.data<float>()[8], 1e-6);
}

TEST(MathOps, QuantizeRoundsHalfToEvenAndSaturates) {
  G g(21);
  g.input("x", {6});
  g.output("q", {6}, DType::I8);
  g.output("d", {6});
  g.init("s", Tensor::scalar<float>(0.5f));
  g.init("z", Tensor::scalar<int8_t>(1));
  g.node("QuantizeLinear", {"x", "s", "z"}, {"q"});
  g.node("DequantizeLinear", {"q", "s", "z"}, {"d"});
  auto out = g.load()->run_once(std::vector<Tensor>{vec<float>({0.25f, 0.75f, 1.25f, -0.25f, 100.f, -100.f})});
  // x / 0.5 = 0.5, 1.5, 2.5, -0.5, 200, -200 -> 0, 2, 2, -0 (+1 zero point), saturated at 127 / -128
  const std::vector<int8_t> eq{1, 3, 3, 1, 127, -128};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(out[0].data<int8_t>()[i], eq[i]) << i;
    EXPECT_FLOAT_EQ(out[1].data<float>()[i], (eq[i] - 1) * 0.5f) << i;
  }
}

TEST(MathOps, AttentionCausalWithPastAndGqaMatchesNaive) {
  const int64_t B = 2, Hq = 4, Hkv = 2, Sq = 3, past = 2, D = 5;
  const int64_t T = past + Sq;
  G g(23);
  g.input("q", {B, Hq, Sq, D});
  g.input("k", {B, Hkv, Sq, D});
  g.input("v", {B, Hkv, Sq, D});
  g.input("pk", {B, Hkv, past, D});
  g.input("pv", {B, Hkv, past, D});
  g.output("y", {B, Hq, Sq, D});
  g.output("present_k", {B, Hkv, T, D});
  g.output("present_v", {B, Hkv, T, D});
  attr_int(g.node("Attention", {"q", "k", "v", "", "pk", "pv"}, {"y", "present_k", "present_v"}), "is_causal", 1);
  auto m = g.load();
  std::mt19937 rng(5);
  Tensor q = random_f({B, Hq, Sq, D}, rng), k = random_f({B, Hkv, Sq, D}, rng), v = random_f({B, Hkv, Sq, D}, rng);
  Tensor pk = random_f({B, Hkv, past, D}, rng), pv = random_f({B, Hkv, past, D}, rng);
  auto out = m->run_once(std::vector<Tensor>{q, k, v, pk, pv});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{B, Hq, Sq, D}));
  ASSERT_EQ(out[1].dims(), (std::vector<int64_t>{B, Hkv, T, D}));
  auto key = [&](int64_t b, int64_t h, int64_t j, int64_t d) {
    return j < past ? pk.data<float>()[((b * Hkv + h) * past + j) * D + d] : k.data<float>()[((b * Hkv + h) * Sq + j - past) * D + d];
  };
  auto val = [&](int64_t b, int64_t h, int64_t j, int64_t d) {
    return j < past ? pv.data<float>()[((b * Hkv + h) * past + j) * D + d] : v.data<float>()[((b * Hkv + h) * Sq + j - past) * D + d];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        const int64_t kh = h / (Hq / Hkv);
        std::vector<double> p(static_cast<size_t>(T), 0.0);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= i + past; ++j) {  // causal: keys up to the query's own position
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += q.data<float>()[((b * Hq + h) * Sq + i) * D + d] * key(b, kh, j, d);
          p[static_cast<size_t>(j)] = s / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, p[static_cast<size_t>(j)]);
        }
        for (int64_t j = 0; j <= i + past; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx));
        for (int64_t d = 0; d < D; ++d) {
          double e = 0;
          for (int64_t j = 0; j <= i + past; ++j) e += p[static_cast<size_t>(j)] / sum * val(b, kh, j, d);
          EXPECT_NEAR(out[0].data<float>()[((b * Hq + h) * Sq + i) * D + d], e, 1e-5);
        }
      }
  for (int64_t j = 0; j < T; ++j) EXPECT_EQ(out[1].data<float>()[((1 * Hkv + 1) * T + j) * D + 2], key(1, 1, j, 2));
}

TEST(MathOps, DftMatchesNaiveAndIrfftInverts) {
  const int64_t N = 7;
  G g(20);
  g.input("x", {1, N, 1});
  g.output("X", {1, N, 2});
  g.output("half", {1, N / 2 + 1, 2});
  g.output("back", {1, N, 1});
  g.init("axis", Tensor::scalar<int64_t>(1));
  g.init("n", Tensor::scalar<int64_t>(N));
  g.node("DFT", {"x", "", "axis"}, {"X"});
  attr_int(g.node("DFT", {"x", "", "axis"}, {"half"}), "onesided", 1);
  auto* inv = g.node("DFT", {"half", "n", "axis"}, {"back"});
  attr_int(inv, "onesided", 1);
  attr_int(inv, "inverse", 1);
  std::mt19937 rng(9);
  Tensor x = random_f({1, N, 1}, rng);
  auto out = g.load()->run_once(std::vector<Tensor>{x});
  for (int64_t k = 0; k < N; ++k) {
    double re = 0, im = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double a = -2 * std::numbers::pi * static_cast<double>(k * n) / N;
      re += x.data<float>()[n] * std::cos(a);
      im += x.data<float>()[n] * std::sin(a);
    }
    EXPECT_NEAR(out[0].data<float>()[2 * k], re, 1e-5);
    EXPECT_NEAR(out[0].data<float>()[2 * k + 1], im, 1e-5);
    if (k <= N / 2) {
      EXPECT_NEAR(out[1].data<float>()[2 * k], re, 1e-5);
    }
    EXPECT_NEAR(out[2].data<float>()[k], x.data<float>()[k], 1e-5);
  }
}

TEST(MathOps, StringSplitLikePythonAndRegexFullMatch) {
  G g(20);
  g.input("s", {3}, DType::String);
  g.output("parts", {3, -1}, DType::String);
  g.output("n", {3}, DType::I64);
  g.output("ws", {3, -1}, DType::String);
  g.output("m", {3}, DType::Bool);
  attr_str(g.node("StringSplit", {"s"}, {"parts", "n"}), "delimiter", ",");
  g.node("StringSplit", {"s"}, {"ws", "ws_n"});
  attr_str(g.node("RegexFullMatch", {"s"}, {"m"}), "pattern", "[a-z]+,,?[a-z]*");
  g.g->mutable_node(1)->set_output(1, "");
  auto m = g.load();
  Tensor s = Tensor::empty(DType::String, {3});
  s.data<std::string>()[0] = "a,,b";
  s.data<std::string>()[1] = "  x  y ";
  s.data<std::string>()[2] = "abc";
  auto out = m->run_once(std::vector<Tensor>{s});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(out[0].data<std::string>()[0], "a");
  EXPECT_EQ(out[0].data<std::string>()[1], "");
  EXPECT_EQ(out[0].data<std::string>()[2], "b");
  EXPECT_EQ(out[0].data<std::string>()[3], "  x  y ");
  EXPECT_EQ(out[1].data<int64_t>()[0], 3);
  EXPECT_EQ(out[1].data<int64_t>()[2], 1);
  ASSERT_EQ(out[2].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(out[2].data<std::string>()[2], "x");
  EXPECT_EQ(out[2].data<std::string>()[3], "y");
  EXPECT_EQ(out[2].data<std::string>()[5], "");
  EXPECT_TRUE(out[3].data<bool>()[0]);
  EXPECT_FALSE(out[3].data<bool>()[1]);
  EXPECT_FALSE(out[3].data<bool>()[2]);
}
