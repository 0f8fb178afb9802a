// The 12 real CMS/HEP models reproduce ONNX Runtime's outputs on both reference data sets
// (|actual - expected| <= 1e-5 + 1e-4 |expected|).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/time.h>

#include <filesystem>

#include "quiver/core/batching.hpp"
#include "quiver/core/prepare.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "onnx/hep_models.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {
using quiver::test::kHep;
using quiver::test::kModels;
}  // namespace

class HepModel : public ::testing::TestWithParam<const char*> {};

TEST_P(HepModel, ReproducesOnnxRuntime) {
  const std::string dir = kHep + GetParam();
  auto model = onnx::load_onnx(dir + "/model.onnx");
  // One state reused across both data sets (different batch and particle counts) catches engines
  // that bake shapes into the plan or state.
  auto state = model->make_state();
  for (const char* set : {"test_data_set_0", "test_data_set_1", "test_data_set_0"}) {
    const std::string sd = dir + "/" + set;
    std::vector<Tensor> inputs;
    for (const auto& f : onnx::numbered_files(sd, "input")) inputs.push_back(onnx::read_tensor_file(f).tensor);
    std::vector<Tensor> outputs;
    model->run(inputs, outputs, *state);
    auto expected = onnx::numbered_files(sd, "output");
    ASSERT_EQ(outputs.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      auto e = onnx::read_tensor_file(expected[i]);
      EXPECT_EQ(e.name, model->info().outputs[i].name);
      std::string diff = onnx::compare_tensors(outputs[i], e.tensor, {1e-4, 1e-5});
      EXPECT_EQ(diff, "") << GetParam() << " " << set << " output " << e.name;
    }
  }
}

// The same references tiled to batch 64 (rows repeated): kernels that switch to a batched layout
// for many rows (the LSTM's transposed step, GEMMs on the library) must give the same rows.
TEST_P(HepModel, ReproducesOnnxRuntimeAtBatch64) {
  const std::string dir = kHep + GetParam();
  auto model = onnx::load_onnx(dir + "/model.onnx");
  const auto& mi = model->info();
  if (!mi.inputs.empty() && !mi.inputs[0].shape.empty() && mi.inputs[0].shape[0].is_fixed()) GTEST_SKIP() << "fixed batch";
  auto state = model->make_state();
  for (const char* set : {"test_data_set_0", "test_data_set_1"}) {
    const std::string sd = dir + "/" + set;
    std::vector<Tensor> src, want;
    for (const auto& f : onnx::numbered_files(sd, "input")) src.push_back(onnx::read_tensor_file(f).tensor);
    for (const auto& f : onnx::numbered_files(sd, "output")) want.push_back(onnx::read_tensor_file(f).tensor);
    const int64_t rows = src[0].dim(0);
    for (const auto& w : want) ASSERT_EQ(w.dim(0), rows) << GetParam() << ": an output without the batch rows";
    std::vector<Tensor> outputs;
    model->run(tile_rows(src, 64), outputs, *state);
    want = tile_rows(want, 64);
    ASSERT_EQ(outputs.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(onnx::compare_tensors(outputs[i], want[i], {1e-4, 1e-5}), "") << GetParam() << " " << set << " output " << i;
  }
}

// prepare_state sizes a fresh state ahead: the first real call at that size (batch 16 here, other
// dims as in the data set) finds its arena big enough and grows it by nothing. An unprepared
// state grows on that call, which is what prepare_state moves off the hot path.
TEST_P(HepModel, PreparedStateDoesNotGrowOnFirstRun) {
  const std::string dir = kHep + GetParam();
  auto model = onnx::load_onnx(dir + "/model.onnx");
  const auto& mi = model->info();
  std::vector<Tensor> src;
  for (const auto& f : onnx::numbered_files(dir + "/test_data_set_0", "input")) src.push_back(onnx::read_tensor_file(f).tensor);
  const bool fixed_batch = !mi.inputs.empty() && !mi.inputs[0].shape.empty() && mi.inputs[0].shape[0].is_fixed();
  const std::vector<Tensor> inputs = fixed_batch ? src : tile_rows(src, 16);
  const int64_t batch = inputs[0].rank() == 0 ? 1 : inputs[0].dim(0);
  std::vector<Tensor> outputs;

  auto fresh = model->make_state();
  const size_t fresh_bytes = onnx::state_arena_bytes(*fresh);
  model->run(inputs, outputs, *fresh);
  EXPECT_GT(onnx::state_arena_bytes(*fresh), fresh_bytes) << GetParam() << ": an unprepared state grows on its first call";

  auto prepared = model->make_state();
  prepare_state(*model, *prepared, batch, dims_of(mi, inputs));
  const size_t before = onnx::state_arena_bytes(*prepared);
  EXPECT_GT(before, 0u);
  model->run(inputs, outputs, *prepared);
  EXPECT_EQ(onnx::state_arena_bytes(*prepared), before) << GetParam() << ": the first call after prepare_state grew the arena";
}

INSTANTIATE_TEST_SUITE_P(Cms, HepModel, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return std::string(info.param); });

// Event loops install Ctrl-C / SIGTERM handlers; a signal landing in the middle of a GEMM must not
// corrupt anything (Debian's oneDNN AVX-512 kernels did: see src/onnx/blas.cpp).
extern "C" void quiver_test_on_alarm(int) {}

TEST(HepModelSignals, InferenceSurvivesSignalHandlers) {
  const std::string dir = kHep + "particlenet_ak4_hlt";
  auto model = onnx::load_onnx(dir + "/model.onnx");
  std::vector<Tensor> inputs;
  for (const auto& f : onnx::numbered_files(dir + "/test_data_set_0", "input"))
    inputs.push_back(onnx::read_tensor_file(f).tensor);
  auto state = model->make_state();
  std::vector<Tensor> ref, out;
  model->run(inputs, ref, *state);
  struct sigaction sa {}, old {};
  sa.sa_handler = quiver_test_on_alarm;
  sigaction(SIGALRM, &sa, &old);
  itimerval tv{{0, 300}, {0, 300}}, off{};
  setitimer(ITIMER_REAL, &tv, nullptr);
  for (int i = 0; i < 400; ++i) model->run(inputs, out, *state);
  setitimer(ITIMER_REAL, &off, nullptr);
  sigaction(SIGALRM, &old, nullptr);
  for (size_t k = 0; k < ref.size(); ++k) EXPECT_EQ(onnx::compare_tensors(out[k], ref[k], {0, 0}), "");
}
