// The GPU executor: same results as the CPU engine and ONNX Runtime on the HEP models, any batch size,
// errors reported with the node's name, and clear refusals. Runs on the emulated device by default;
// QUIVER_TEST_DEVICE=cuda runs the same tests on a GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "gpu/stream.hpp"
#include "onnx/graph_builder.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/profile.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "onnx/hep_models.hpp"

using namespace quiver;
using quiver::test::expect_error;
using quiver::test::G;

namespace {
using quiver::test::kHep;
using quiver::test::kModels;

std::string test_device() {
  const char* d = std::getenv("QUIVER_TEST_DEVICE");
  return d && *d ? d : "gpu-emulator";
}

LoadOptions on_device(const std::string& device = test_device()) {
  LoadOptions o;
  o.params["device"] = device;
  return o;
}

// A graph built in the test, loaded by the backend layer onto the test device.
std::shared_ptr<const Model> load_on_device(G& g) {
  return quiver::backends::load_onnx_bytes(g.bytes(), "", on_device());
}

std::vector<Tensor> read_inputs(const std::string& set_dir) {
  std::vector<Tensor> v;
  for (const auto& f : quiver::onnx::numbered_files(set_dir, "input")) v.push_back(quiver::onnx::read_tensor_file(f).tensor);
  return v;
}


// Runs `model` on `in` from `threads` threads, each with its own state, `runs` times; returns the
// first difference from `ref` (output 0) each thread saw ("" when none).
std::vector<std::string> run_in_threads(const Model& model, const std::vector<Tensor>& in, const Tensor& ref,
                                        size_t threads, int runs, quiver::onnx::Tolerance tol) {
  std::vector<std::string> diffs(threads);
  std::vector<std::thread> ts;
  for (size_t t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      auto st = model.make_state();
      std::vector<Tensor> out;
      for (int i = 0; i < runs; ++i) {
        model.run(in, out, *st);
        if (auto d = quiver::onnx::compare_tensors(out[0], ref, tol); !d.empty() && diffs[t].empty()) diffs[t] = d;
      }
    });
  for (auto& t : ts) t.join();
  return diffs;
}
}  // namespace

class GpuHepModel : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuHepModel, ReproducesOnnxRuntimeAndTheCpuEngine) {
  const std::string dir = kHep + GetParam();
  auto gpu = quiver::backends::load_onnx(dir + "/model.onnx", on_device());
  auto cpu = quiver::onnx::load_onnx(dir + "/model.onnx");
  EXPECT_EQ(gpu->info().device.empty(), false);
  auto gs = gpu->make_state();
  auto cs = cpu->make_state();
  // One state across data sets of different batch and particle counts: nothing may be baked in.
  for (const char* set : {"test_data_set_0", "test_data_set_1", "test_data_set_0"}) {
    const std::string sd = dir + "/" + set;
    auto inputs = read_inputs(sd);
    std::vector<Tensor> out, ref;
    gpu->run(inputs, out, *gs);
    cpu->run(inputs, ref, *cs);
    auto expected = quiver::onnx::numbered_files(sd, "output");
    ASSERT_EQ(out.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      auto e = quiver::onnx::read_tensor_file(expected[i]);
      EXPECT_EQ(quiver::onnx::compare_tensors(out[i], e.tensor, {1e-4, 1e-5}), "") << GetParam() << " " << set << " vs ORT";
      EXPECT_EQ(quiver::onnx::compare_tensors(out[i], ref[i], {1e-4, 1e-5}), "") << GetParam() << " " << set << " vs CPU";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cms, GpuHepModel, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return std::string(info.param); });

TEST(GpuExecutor, ParticleNetAnyBatchMatchesTheCpuRowByRow) {
  const std::string dir = kHep + "particlenet_ak4_hlt";
  auto gpu = quiver::backends::load_onnx(dir + "/model.onnx", on_device());
  auto cpu = quiver::onnx::load_onnx(dir + "/model.onnx");
  auto base = read_inputs(dir + "/test_data_set_0");
  auto gs = gpu->make_state();
  for (int64_t batch : {1, 5, 32, 3}) {
    auto in = quiver::tile_rows(base, batch);
    auto out = gpu->run_once(in);
    std::vector<Tensor> again;
    gpu->run(in, again, *gs);
    auto ref = cpu->run_once(in);
    ASSERT_EQ(out[0].dims(), ref[0].dims());
    EXPECT_EQ(quiver::onnx::compare_tensors(out[0], ref[0], {1e-4, 1e-5}), "") << "batch " << batch;
    EXPECT_EQ(quiver::onnx::compare_tensors(again[0], out[0], {0, 0}), "") << "batch " << batch << ": reused state differs";
  }
}

TEST(GpuExecutor, ThreadsWithTheirOwnStatesShareOneModel) {
  const std::string dir = kHep + "particlenet_ak4_hlt";
  auto gpu = quiver::backends::load_onnx(dir + "/model.onnx", on_device());
  auto in = quiver::tile_rows(read_inputs(dir + "/test_data_set_0"), 8);
  const auto ref = gpu->run_once(in);
  for (const auto& d : run_in_threads(*gpu, in, ref[0], 3, 3, {0, 0})) EXPECT_EQ(d, "");
}

TEST(GpuExecutor, DeviceStreamsBoundConcurrentRunsAndCallersWait) {
  const std::string dir = kHep + "particlenet_ak4_hlt";
  auto opts = on_device();
  opts.params["device_streams"] = "1";  // one set of device buffers: the threads take turns
  auto gpu = quiver::backends::load_onnx(dir + "/model.onnx", opts);
  auto in = quiver::tile_rows(read_inputs(dir + "/test_data_set_0"), 4);
  const auto ref = quiver::onnx::load_onnx(dir + "/model.onnx")->run_once(in);
  for (const auto& d : run_in_threads(*gpu, in, ref[0], 4, 2, {1e-4, 1e-5})) EXPECT_EQ(d, "");
  opts.params["device_streams"] = "0";
  auto e = expect_error([&] { quiver::backends::load_onnx(dir + "/model.onnx", opts); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(e.what()).find("device_streams"), std::string::npos) << e.what();
}

TEST(GpuExecutor, GatherIndexOutOfRangeNamesTheNodeAndTheStateRecovers) {
  G g;
  g.input("data", {-1, 3});
  g.input("idx", {2}, 7);  // int64
  g.output("y", {2, 3});
  g.node("Gather", {"data", "idx"}, {"y"}, "pick_rows");
  auto m = load_on_device(g);
  auto data = Tensor::from_vector<float>(std::vector<float>(5000 * 3, 1.f), {5000, 3});  // big enough for the device
  auto st = m->make_state();
  std::vector<Tensor> out;
  auto bad = Tensor::from_vector<int64_t>({1, 5000}, {2});
  auto e = expect_error([&] { m->run(std::vector<Tensor>{data, bad}, out, *st); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(e.what()).find("pick_rows"), std::string::npos) << e.what();
  auto good = Tensor::from_vector<int64_t>({-1, 2}, {2});
  m->run(std::vector<Tensor>{data, good}, out, *st);
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out[0].data<float>()[0], 1.f);
}

TEST(GpuExecutor, AFailedRunLeavesNoErrorBehindForTheNext) {
  // The Gather flags a bad index on the device, then the Reshape fails on the host before the run
  // reads the flag: the next, valid run must not inherit that index error.
  G g;
  g.input("data", {-1, 3});
  g.input("idx", {2}, 7);
  g.input("shape", {2}, 7);
  g.output("y", {-1, -1});
  g.node("Gather", {"data", "idx"}, {"rows"}, "pick_rows");
  g.node("Reshape", {"rows", "shape"}, {"y"}, "reshape");
  auto m = load_on_device(g);
  auto data = Tensor::from_vector<float>(std::vector<float>(5000 * 3, 2.f), {5000, 3});
  auto st = m->make_state();
  std::vector<Tensor> out;
  auto e = expect_error([&] {
    m->run(std::vector<Tensor>{data, Tensor::from_vector<int64_t>({0, 9999}, {2}), Tensor::from_vector<int64_t>({4, 4}, {2})},
           out, *st);
  });
  EXPECT_NE(std::string(e.what()).find("reshape"), std::string::npos) << e.what();
  m->run(std::vector<Tensor>{data, Tensor::from_vector<int64_t>({0, 1}, {2}), Tensor::from_vector<int64_t>({3, 2}, {2})},
         out, *st);
  ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(out[0].data<float>()[5], 2.f);
}

TEST(GpuExecutor, WrongInputIsRejectedBeforeAnythingRuns) {
  const std::string dir = kHep + "hls4ml_three_layer";
  auto m = quiver::backends::load_onnx(dir + "/model.onnx", on_device());
  auto in = read_inputs(dir + "/test_data_set_0");
  in[0] = Tensor::zeros(DType::I64, in[0].dims());
  auto e = expect_error([&] { m->run_once(in); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(e.what()).find("dtype"), std::string::npos) << e.what();
}

TEST(GpuExecutor, OpsWithoutDeviceKernelsRunOnTheCpuAndAreListed) {
  // A grouped (depthwise) Conv has no device kernel: it runs its CPU kernel between two device ops
  // and the result is still right. A 3x3 Conv with padding runs on the device (im2col + GEMM).
  G g;
  g.input("x", {-1, 2, 4, 4});
  g.output("y", {-1, 2, 4, 4});
  g.init("w", Tensor::from_vector<float>(std::vector<float>(18, 0.5f), {2, 1, 3, 3}));
  g.init("w2", Tensor::from_vector<float>(std::vector<float>(36, 0.25f), {2, 2, 3, 3}));
  g.node("Relu", {"x"}, {"r"});
  auto* dw = g.node("Conv", {"r", "w"}, {"c"}, "depthwise");
  quiver::test::attr_int(dw, "group", 2);
  quiver::test::attr_ints(dw, "pads", {1, 1, 1, 1});
  auto* full = g.node("Conv", {"c", "w2"}, {"d"}, "conv3x3");
  quiver::test::attr_ints(full, "pads", {1, 1, 1, 1});
  g.node("Sigmoid", {"d"}, {"y"});
  auto gpu = load_on_device(g);
  auto cpu = g.load();
  std::vector<float> xs(2 * 2 * 16);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = float(i % 7) - 3.f;
  auto x = Tensor::from_vector<float>(xs, {2, 2, 4, 4});
  auto a = gpu->run_once(std::vector<Tensor>{x});
  auto b = cpu->run_once(std::vector<Tensor>{x});
  EXPECT_EQ(quiver::onnx::compare_tensors(a[0], b[0], {1e-5, 1e-6}), "");
  std::ostringstream os;
  gpu->describe(os);
  EXPECT_NE(os.str().find("device: "), std::string::npos);
  EXPECT_NE(os.str().find("steps with no device kernel"), std::string::npos);
}

// Recurrent layers on the device against the CPU kernels, on the branches the HEP models do not
// take: both directions, linear_before_reset, Keras HardSigmoid gates, LSTM peepholes and initial state.
TEST(GpuExecutor, RecurrentLayersMatchTheCpu) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto rnd = [&](std::vector<int64_t> d) {
    Tensor t = Tensor::empty(DType::F32, d);
    for (auto& v : t.span<float>()) v = u(rng);
    return t;
  };
  const int64_t S = 5, B = 3, I = 4, H = 6, D = 2;
  for (int variant = 0; variant < 3; ++variant) {
    G g(14);
    const bool lstm = variant == 2;
    const int64_t gates = lstm ? 4 : 3;
    g.input("x", {S, B, I});
    g.input("h0", {D, B, H});
    g.output("y", {S, D, B, H});
    g.output("yh", {D, B, H});
    g.init("w", rnd({D, gates * H, I}));
    g.init("r", rnd({D, gates * H, H}));
    g.init("b", rnd({D, 2 * gates * H}));
    ::onnx::NodeProto* n;
    if (lstm) {
      g.init("c0", rnd({D, B, H}));
      g.init("p", rnd({D, 3 * H}));
      n = g.node("LSTM", {"x", "w", "r", "b", "", "h0", "c0", "p"}, {"y", "yh"}, "lstm");
    } else {
      n = g.node("GRU", {"x", "w", "r", "b", "", "h0"}, {"y", "yh"}, "gru");
      quiver::test::attr_int(n, "linear_before_reset", variant);
      if (variant == 0) {
        auto* a = n->add_attribute();
        a->set_name("activations");
        a->set_type(::onnx::AttributeProto::STRINGS);
        for (const char* s : {"HardSigmoid", "Tanh", "Sigmoid", "Tanh"}) a->add_strings(s);
      }
    }
    quiver::test::attr_int(n, "hidden_size", H);
    quiver::test::attr_str(n, "direction", "bidirectional");
    auto gpu = load_on_device(g);
    auto cpu = g.load();
    std::vector<Tensor> in{rnd({S, B, I}), rnd({D, B, H})};
    auto a = gpu->run_once(in);
    auto b = cpu->run_once(in);
    ASSERT_EQ(a.size(), 2u);
    for (size_t k = 0; k < 2; ++k)
      EXPECT_EQ(quiver::onnx::compare_tensors(a[k], b[k], {1e-4, 1e-5}), "") << "variant " << variant << " output " << k;
  }
}

TEST(GpuExecutor, DeviceChoicesAreChecked) {
  const std::string path = kHep + "hls4ml_three_layer/model.onnx";
  auto e = expect_error([&] { quiver::backends::load_onnx(path, on_device("tpu")); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(e.what()).find("cpu, cuda, cuda:N, auto or gpu-emulator"), std::string::npos) << e.what();
  // auto falls back to the CPU when there is no GPU.
  auto m = quiver::backends::load_onnx(path, on_device("auto"));
  if (gpu::cuda_device_count() == 0) {
    EXPECT_EQ(m->info().device, "");
    auto c = expect_error([&] { quiver::backends::load_onnx(path, on_device("cuda")); });
    EXPECT_EQ(c.code(), ErrorCode::Unavailable);
    EXPECT_FALSE(c.message().empty());
  } else {
    EXPECT_EQ(m->info().device, "cuda:0");
    auto c = expect_error([&] { quiver::backends::load_onnx(path, on_device("cuda:99")); });
    EXPECT_EQ(c.code(), ErrorCode::InvalidArgument);
  }
}

// Where each step runs is decided once, at load, and `inspect` prints it from the plan: the grouped
// Conv has no device kernel (and says why), its neighbours run on the device.
TEST(GpuExecutor, PlacementIsChosenAtLoadAndPrintedWithReasons) {
  G g;
  g.input("x", {-1, 2, 4, 4});
  g.output("y", {-1, 2, 4, 4});
  g.init("w", Tensor::from_vector<float>(std::vector<float>(18, 0.5f), {2, 1, 3, 3}));
  g.node("Relu", {"x"}, {"r"});
  auto* dw = g.node("Conv", {"r", "w"}, {"c"}, "depthwise");
  quiver::test::attr_int(dw, "group", 2);
  quiver::test::attr_ints(dw, "pads", {1, 1, 1, 1});
  g.node("Neg", {"c"}, {"y"});  // not fused into the Conv
  auto gpu = load_on_device(g);
  std::ostringstream os;
  gpu->describe(os);
  const std::string d = os.str();
  EXPECT_NE(d.find("(2 steps on the device, 1 on the CPU)"), std::string::npos) << d;
  EXPECT_NE(d.find("  Conv 1: grouped conv\n"), std::string::npos) << d;
  EXPECT_EQ(d.find("Relu 1:"), std::string::npos) << d;
  // Profiles mark the steps that ran on the host.
  OpProfile prof;
  auto st = gpu->make_state();
  st->profile = &prof;
  std::vector<Tensor> out;
  gpu->run(std::vector<Tensor>{Tensor::zeros(DType::F32, {1, 2, 4, 4})}, out, *st);
  std::set<std::string> ops;
  for (const auto& r : prof.rows()) ops.insert(r.op);
  EXPECT_EQ(ops, (std::set<std::string>{"Relu", "Conv (host)", "Neg"}));
  // The CPU engine's own model has no placement to report.
  std::ostringstream cs;
  g.load()->describe(cs);
  EXPECT_EQ(cs.str().find("steps with no device kernel"), std::string::npos) << cs.str();
}

// Device kernels take iteration spaces of at most 8 dims; bigger ones (rank 10 here, broadcasting
// that no merge reduces) run on the device in pieces, never on the CPU, with the CPU's results.
TEST(GpuExecutor, RanksAboveTheKernelLimitStayOnTheDevice) {
  const std::vector<int64_t> da = {2, 1, 2, 1, 2, 1, 2, 1, 2, 1}, db = {1, 2, 1, 2, 1, 2, 1, 2, 1, 2};
  const std::vector<int64_t> full(10, 2);
  G g;
  g.input("a", da);
  g.input("b", db);
  g.output("sum", full);
  g.output("t", full);
  g.output("tiled", full);
  g.output("red", {2, 2, 2, 2, 2});
  g.init("reps", Tensor::from_vector<int64_t>(db, {10}));
  g.init("axes", Tensor::from_vector<int64_t>({0, 2, 4, 6, 8}, {5}));
  g.node("Add", {"a", "b"}, {"sum"}, "add10");
  auto* tr = g.node("Transpose", {"sum"}, {"t"}, "transpose10");
  quiver::test::attr_ints(tr, "perm", {1, 0, 3, 2, 5, 4, 7, 6, 9, 8});
  g.node("Tile", {"a", "reps"}, {"tiled"}, "tile10");
  auto* rs = g.node("ReduceSum", {"sum", "axes"}, {"red"}, "reduce10");
  quiver::test::attr_int(rs, "keepdims", 0);
  auto gpu = load_on_device(g);
  auto cpu = g.load();
  std::ostringstream os;
  gpu->describe(os);
  EXPECT_NE(os.str().find("(4 steps on the device, 0 on the CPU)"), std::string::npos) << os.str();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<Tensor> in{Tensor::empty(DType::F32, da), Tensor::empty(DType::F32, db)};
  for (auto& t : in)
    for (auto& v : t.span<float>()) v = u(rng);
  auto a = gpu->run_once(in);
  auto b = cpu->run_once(in);
  ASSERT_EQ(a.size(), 4u);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(quiver::onnx::compare_tensors(a[k], b[k], {0, 0}), "") << "output " << k;
  EXPECT_EQ(quiver::onnx::compare_tensors(a[3], b[3], {1e-5, 1e-6}), "");
}

// The ONNX loader compiles for the CPU; asking it for a device is a clear error, not a silent CPU run.
TEST(GpuExecutor, TheOnnxLoaderLeavesTheDeviceToTheBackendLayer) {
  const std::string path = kHep + "hls4ml_three_layer/model.onnx";
  auto e = expect_error([&] { quiver::onnx::load_onnx(path, on_device("gpu-emulator")); });
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
  EXPECT_NE(std::string(e.what()).find("backend layer"), std::string::npos) << e.what();
  EXPECT_EQ(quiver::backends::load_onnx(path, on_device("gpu-emulator"))->info().device, "gpu-emulator");
  EXPECT_EQ(quiver::onnx::load_onnx(path, on_device("cpu"))->info().device, "");
}
