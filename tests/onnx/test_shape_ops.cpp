// Data-movement operators (Transpose, Slice, Expand, Tile, Gather, ScatterND, TopK, Split, Concat,
// Pad, Squeeze) on small graphs built in code, checked against naive reference loops; bad indices
// must give errors that name the node.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "quiver/core/half.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "onnx/graph_builder.hpp"

using namespace quiver;

namespace {

using quiver::test::attr_int;
using quiver::test::attr_str;
using quiver::test::attr_ints;
using quiver::test::strides_of;
using quiver::test::for_each_index;
using quiver::test::expect_error;

using G = quiver::test::NumberedG<17>;

Tensor iota_f(std::vector<int64_t> dims) {
  Tensor t = Tensor::empty(DType::F32, dims);
  std::iota(t.data<float>(), t.data<float>() + t.numel(), 0.f);
  return t;
}

}  // namespace

TEST(ShapeOps, TransposeMatchesNaiveForManyPerms) {
  const std::vector<std::vector<int64_t>> shapes{{67, 45}, {3, 67, 45}, {2, 5, 40, 36}, {1, 33, 1, 70}};
  for (const auto& dims : shapes) {
    std::vector<int64_t> perm(dims.size());
    std::iota(perm.begin(), perm.end(), 0);
    do {
      G g;
      g.input("x", dims);
      g.output("y", std::vector<int64_t>(dims.size(), -1));
      attr_ints(g.node("Transpose", {"x"}, {"y"}), "perm", perm);
      auto m = g.load();
      Tensor x = iota_f(dims);
      auto out = m->run_once(std::vector<Tensor>{x});
      std::vector<int64_t> od(dims.size());
      for (size_t i = 0; i < dims.size(); ++i) od[i] = dims[perm[i]];
      ASSERT_EQ(out[0].dims(), od);
      const auto xs = strides_of(dims);
      bool ok = true;
      for_each_index(od, [&](const std::vector<int64_t>& idx, int64_t o) {
        int64_t src = 0;
        for (size_t i = 0; i < idx.size(); ++i) src += idx[i] * xs[perm[i]];
        ok &= out[0].data<float>()[o] == x.data<float>()[src];
      });
      EXPECT_TRUE(ok) << "perm mismatch for rank " << dims.size();
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(ShapeOps, SliceNegativeStepsAndClamping) {
  G g;
  g.input("x", {10, 6});
  g.output("y", {-1, -1});
  g.init("starts", Tensor::from_vector<int64_t>({8, 5}, {2}));
  g.init("ends", Tensor::from_vector<int64_t>({-100, std::numeric_limits<int64_t>::min()}, {2}));
  g.init("axes", Tensor::from_vector<int64_t>({0, -1}, {2}));
  g.init("steps", Tensor::from_vector<int64_t>({-3, -2}, {2}));
  g.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
  auto out = g.load()->run_once(std::vector<Tensor>{iota_f({10, 6})});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{3, 3}));
  const std::vector<float> want{53, 51, 49, 35, 33, 31, 17, 15, 13};  // rows 8,5,2; cols 5,3,1
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[0].data<float>()[i], want[i]);
}

TEST(ShapeOps, SliceStartPastEndIsEmptyAndDynamicInputsWork) {
  G g;
  g.input("x", {-1, 4});
  g.input("s", {1}, 7);
  g.input("e", {1}, 7);
  g.output("y", {-1, -1});
  g.node("Slice", {"x", "s", "e"}, {"y"});
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{iota_f({5, 4}), Tensor::from_vector<int64_t>({std::numeric_limits<int64_t>::max()}, {1}),
                                             Tensor::from_vector<int64_t>({2}, {1})});
  EXPECT_EQ(out[0].dims(), (std::vector<int64_t>{0, 4}));
  out = m->run_once(std::vector<Tensor>{iota_f({5, 4}), Tensor::from_vector<int64_t>({-2}, {1}),
                                        Tensor::from_vector<int64_t>({std::numeric_limits<int64_t>::max()}, {1})});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(out[0].data<float>()[0], 12.f);
  EXPECT_EQ(out[0].data<float>()[7], 19.f);
}

TEST(ShapeOps, ExpandAndTileMatchNaive) {
  {
    G g;
    g.input("x", {3, 1, 5});
    g.output("y", {-1, -1, -1, -1});
    g.init("shape", Tensor::from_vector<int64_t>({2, 1, 4, 1}, {4}));
    g.node("Expand", {"x", "shape"}, {"y"});
    Tensor x = iota_f({3, 1, 5});
    auto out = g.load()->run_once(std::vector<Tensor>{x});
    ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 3, 4, 5}));
    bool ok = true;
    for_each_index(out[0].dims(), [&](const std::vector<int64_t>& i, int64_t o) {
      ok &= out[0].data<float>()[o] == x.data<float>()[i[1] * 5 + i[3]];
    });
    EXPECT_TRUE(ok);
  }
  {
    G g;
    g.input("x", {2, 3, 4});
    g.output("y", {-1, -1, -1});
    g.init("rep", Tensor::from_vector<int64_t>({3, 1, 2}, {3}));
    g.node("Tile", {"x", "rep"}, {"y"});
    Tensor x = iota_f({2, 3, 4});
    auto out = g.load()->run_once(std::vector<Tensor>{x});
    ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{6, 3, 8}));
    bool ok = true;
    for_each_index(out[0].dims(), [&](const std::vector<int64_t>& i, int64_t o) {
      ok &= out[0].data<float>()[o] == x.data<float>()[(i[0] % 2) * 12 + i[1] * 4 + (i[2] % 4)];
    });
    EXPECT_TRUE(ok);
  }
}

TEST(ShapeOps, GatherNegativeIndicesAndOutOfRangeError) {
  G g;
  g.input("x", {4, 3});
  g.input("i", {-1}, 7);
  g.output("y", {-1, -1});
  attr_int(g.node("Gather", {"x", "i"}, {"y"}, "pick_rows"), "axis", 0);
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{iota_f({4, 3}), Tensor::from_vector<int64_t>({-1, 0}, {2})});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out[0].data<float>()[0], 9.f);
  EXPECT_EQ(out[0].data<float>()[3], 0.f);
  auto e = expect_error([&] { m->run_once(std::vector<Tensor>{iota_f({4, 3}), Tensor::from_vector<int64_t>({4}, {1})}); });
  EXPECT_NE(std::string(e.what()).find("pick_rows"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
}

// Found by fuzz_onnx_loader: a count too large for int64 (or NaN) was converted before the size
// check (undefined), and an int64 span past int64 overflowed. Huge or NaN counts are typed errors;
// the full int64 span is exact.
TEST(ShapeOps, RangeRefusesHugeAndNaNCountsAndSpansAllOfInt64) {
  for (int elem : {1, 10}) {  // float, float16
    G g;
    g.input("s", {}, elem);
    g.input("l", {}, elem);
    g.input("d", {}, elem);
    g.output("y", {-1}, elem);
    g.node("Range", {"s", "l", "d"}, {"y"}, "steps");
    auto m = g.load();
    auto scalar = [elem](float v) {
      if (elem == 1) return Tensor::scalar<float>(v);
      Tensor h = Tensor::empty(DType::F16, std::span<const int64_t>());
      h.data<uint16_t>()[0] = Half(v).bits;
      return h;
    };
    const float huge = elem == 1 ? 1e37f : 60000.f, tiny = elem == 1 ? 1e-30f : 1e-7f;
    auto e = expect_error([&] { m->run_once(std::vector<Tensor>{scalar(0), scalar(huge), scalar(tiny)}); });
    EXPECT_NE(std::string(e.what()).find("Range would produce"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos) << e.what();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    e = expect_error([&] { m->run_once(std::vector<Tensor>{scalar(0), scalar(nan), scalar(1)}); });
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
  G g;
  g.input("s", {}, 7);
  g.input("l", {}, 7);
  g.input("d", {}, 7);
  g.output("y", {-1}, 7);
  g.node("Range", {"s", "l", "d"}, {"y"});
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  auto out = g.load()->run_once(std::vector<Tensor>{Tensor::scalar<int64_t>(lo), Tensor::scalar<int64_t>(hi),
                                                   Tensor::scalar<int64_t>(int64_t{1} << 62)});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{4}));
  const int64_t want[] = {lo, lo + (int64_t{1} << 62), 0, int64_t{1} << 62};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[0].data<int64_t>()[i], want[i]) << i;
}

TEST(ShapeOps, ScatterNDAddAccumulatesDuplicatesAndRejectsBadIndex) {
  G g(18);
  g.input("x", {4, 2});
  g.input("i", {-1, 1}, 7);
  g.input("u", {-1, 2});
  g.output("y", {4, 2});
  attr_str(g.node("ScatterND", {"x", "i", "u"}, {"y"}, "scatter_add"), "reduction", "add");
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{iota_f({4, 2}), Tensor::from_vector<int64_t>({1, 1, -1}, {3, 1}),
                                             Tensor::from_vector<float>({10, 20, 1, 2, 5, 5}, {3, 2})});
  const std::vector<float> want{0, 1, 13, 25, 4, 5, 11, 12};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[0].data<float>()[i], want[i]);
  auto e = expect_error([&] {
    m->run_once(std::vector<Tensor>{iota_f({4, 2}), Tensor::from_vector<int64_t>({7}, {1, 1}), Tensor::from_vector<float>({1, 1}, {1, 2})});
  });
  EXPECT_NE(std::string(e.what()).find("scatter_add"), std::string::npos) << e.what();
}

TEST(ShapeOps, TopKTiesPreferLowerIndex) {
  for (int largest : {1, 0}) {
    G g;
    g.input("x", {2, 5});
    g.output("v", {2, 2});
    g.output("i", {2, 2}, 7);
    g.init("k", Tensor::from_vector<int64_t>({2}, {1}));
    attr_int(g.node("TopK", {"x", "k"}, {"v", "i"}), "largest", largest);
    auto out = g.load()->run_once(std::vector<Tensor>{Tensor::from_vector<float>({1, 3, 3, 2, 3, 4, 4, 4, 4, 4}, {2, 5})});
    const int64_t* idx = out[1].data<int64_t>();
    if (largest) {
      EXPECT_EQ(idx[0], 1);
      EXPECT_EQ(idx[1], 2);
      EXPECT_EQ(out[0].data<float>()[0], 3.f);
    } else {
      EXPECT_EQ(idx[0], 0);
      EXPECT_EQ(idx[1], 3);
      EXPECT_EQ(out[0].data<float>()[1], 2.f);
    }
    EXPECT_EQ(idx[2], 0);
    EXPECT_EQ(idx[3], 1);
  }
}

TEST(ShapeOps, SplitNumOutputsUnevenAndConcatRoundTrip) {
  G g(18);
  g.input("x", {2, 7});
  g.output("y", {-1, -1});
  auto* s = g.node("Split", {"x"}, {"a", "b", "c"});
  attr_int(s, "axis", 1);
  attr_int(s, "num_outputs", 3);
  g.node("Concat", {"c", "a", "b"}, {"y"});
  attr_int(g.g->mutable_node(1), "axis", -1);
  auto out = g.load()->run_once(std::vector<Tensor>{iota_f({2, 7})});
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 7}));
  const std::vector<float> want{6, 0, 1, 2, 3, 4, 5, 13, 7, 8, 9, 10, 11, 12};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[0].data<float>()[i], want[i]);
}

TEST(ShapeOps, PadReflectEdgeWrap) {
  const std::vector<std::pair<std::string, std::vector<float>>> cases{
      {"reflect", {2, 1, 0, 1, 2, 3, 2, 1}}, {"edge", {0, 0, 0, 1, 2, 3, 3, 3}}, {"wrap", {2, 3, 0, 1, 2, 3, 0, 1}}};
  for (const auto& [mode, want] : cases) {
    G g(19);
    g.input("x", {1, 4});
    g.output("y", {-1, -1});
    g.init("pads", Tensor::from_vector<int64_t>({0, 2, 0, 2}, {4}));
    attr_str(g.node("Pad", {"x", "pads"}, {"y"}), "mode", mode);
    auto out = g.load()->run_once(std::vector<Tensor>{iota_f({1, 4})});
    ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{1, 8})) << mode;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[0].data<float>()[i], want[i]) << mode << " at " << i;
  }
}

TEST(ShapeOps, SqueezeNonUnitAxisIsAnError) {
  G g;
  g.input("x", {2, 3});
  g.output("y", {-1});
  g.init("axes", Tensor::from_vector<int64_t>({1}, {1}));
  g.node("Squeeze", {"x", "axes"}, {"y"}, "squeezer");
  auto e = expect_error([&] { g.load(); });
  EXPECT_NE(std::string(e.what()).find("squeezer"), std::string::npos) << e.what();
}

TEST(ShapeOps, ScatterNDElementwiseFastPath) {
  G g(13);
  g.input("x", {3, 4});
  g.input("i", {-1, 2}, 7);
  g.input("u", {-1});
  g.output("y", {3, 4});
  g.node("ScatterND", {"x", "i", "u"}, {"y"}, "pairs");
  auto m = g.load();
  auto out = m->run_once(std::vector<Tensor>{iota_f({3, 4}), Tensor::from_vector<int64_t>({0, 1, 2, -1, -3, 3}, {3, 2}),
                                             Tensor::from_vector<float>({100, 200, 300}, {3})});
  const std::vector<float> want{0, 100, 2, 300, 4, 5, 6, 7, 8, 9, 10, 200};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[0].data<float>()[i], want[i]) << i;
  auto e = expect_error([&] {
    m->run_once(std::vector<Tensor>{iota_f({3, 4}), Tensor::from_vector<int64_t>({0, 1, 3, 0}, {2, 2}),
                                    Tensor::from_vector<float>({1, 2}, {2})});
  });
  EXPECT_NE(std::string(e.what()).find("pairs"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
}
