// quiver::load_model: the backends of this build load without any set-up call; added backends are
// asked first; errors name the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

using namespace quiver;

namespace {
std::string shared(const std::string& rel) { return std::string(QUIVER_SHARED_DIR) + "/" + rel; }

class Named : public Model {
 public:
  explicit Named(std::string name) { info_.name = std::move(name); }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor>, std::vector<Tensor>&, RunState&) const override {}

 private:
  ModelInfo info_;
};
}  // namespace

TEST(Registry, UnknownFileIsClearError) {
  EXPECT_THROW(load_model("/nonexistent/model.onnx"), Error);
}

TEST(Registry, BuiltInBackendsNeedNoRegistration) {
  auto names = registered_backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "onnx"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "forest"), names.end());
  auto onnx = load_model(shared("models/hep/hls4ml_three_layer/model.onnx"));
  EXPECT_EQ(onnx->info().backend, "onnx");
  auto forest = load_model(shared("models/forest/xgboost/xgb17/SoftmaxIrisNA17.json"));
  EXPECT_EQ(forest->info().backend, "forest");
  try {
    load_model(shared("models/forest/xgboost/xgb17/SoftmaxIrisNA17.json"), {}, "no-such-backend");
    FAIL() << "an unknown backend name loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
    EXPECT_NE(std::string(e.what()).find("no-such-backend"), std::string::npos) << e.what();
  }
}

TEST(Registry, AddedBackendsAreAskedFirstAndReplaceByName) {
  const auto file = std::filesystem::temp_directory_path() / ("quiver-registry-" + std::to_string(::getpid()) + ".onnx");
  std::ofstream(file) << "not an onnx model";
  // The registry lives as long as the process: the added backend claims this one file only, so the
  // tests after this one (all in one process when the binary runs alone) still load real .onnx
  // files with the engine.
  const std::string mine = file.string();
  auto claims = [mine](const std::string& p, std::string_view) { return p == mine; };
  register_backend({"test-claims-onnx", claims,
                    [](const std::string&, const LoadOptions&) { return std::make_shared<Named>("first"); }});
  EXPECT_EQ(load_model(file.string())->info().name, "first");
  register_backend({"test-claims-onnx", claims,
                    [](const std::string&, const LoadOptions&) { return std::make_shared<Named>("second"); }});
  EXPECT_EQ(load_model(file.string())->info().name, "second");
  auto names = registered_backends();
  EXPECT_EQ(std::count(names.begin(), names.end(), "test-claims-onnx"), 1);
  EXPECT_EQ(names.front(), "test-claims-onnx");
  std::filesystem::remove(file);
}

// ---- sizing states ahead (prepare_states: the one helper of the server, the flow and the client)
namespace {

std::vector<RunState*> ptrs(const std::vector<std::unique_ptr<RunState>>& v) {
  std::vector<RunState*> out;
  for (const auto& s : v) out.push_back(s.get());
  return out;
}

std::vector<std::unique_ptr<RunState>> states_of(const Model& m, int n) {
  std::vector<std::unique_ptr<RunState>> v;
  for (int i = 0; i < n; ++i) v.push_back(m.make_state());
  return v;
}

// Counts runs and remembers the largest batch: a backend without an arena.
class Counting : public Model {
 public:
  explicit Counting(int64_t max_batch = 0) {
    info_.max_batch = max_batch;
    info_.name = "counting";
    info_.backend = "test";
    info_.inputs = {{"x", DType::F32, {Dim::sym("N"), 4}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("N"), 4}}};
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    ++runs;
    largest = std::max(largest, in[0].dim(0));
    out.assign(1, in[0].clone());
  }
  mutable int runs = 0;
  mutable int64_t largest = 0;

 private:
  ModelInfo info_;
};

}  // namespace

TEST(PrepareStates, SpecParsingNamesWhatIsWrong) {
  const ErrorWhere where{.model = "m", .node = "config parameter 'prepare_state'"};
  EXPECT_EQ(parse_prepare_spec("64", where).batch, 64);
  EXPECT_EQ(parse_prepare_spec("off", where).batch, 0);
  const PrepareSpec s = parse_prepare_spec("16, n_pf=100,n_sv=7", where);
  EXPECT_EQ(s.batch, 16);
  EXPECT_EQ(s.dims, (std::map<std::string, int64_t>{{"n_pf", 100}, {"n_sv", 7}}));
  EXPECT_EQ(s.str(), "16,n_pf=100,n_sv=7");
  for (const char* bad : {"", "abc", "-4", "64,n_pf", "64,n_pf=0", "64,=3", "64,x=1,x=2", "1e3", "64,n_pf=12x"}) {
    try {
      parse_prepare_spec(bad, where);
      ADD_FAILURE() << "'" << bad << "' parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << bad;
      EXPECT_EQ(e.where().model, "m") << bad;
      EXPECT_NE(std::string(e.what()).find("prepare_state"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

// A configured size the model cannot take is an error naming the model and the input (a dynamic
// dim without a value), or the unknown dim; the automatic default leaves such a model unprepared
// and says why.
TEST(PrepareStates, SpecsThatDoNotFitTheModelAreClearErrors) {
  auto pn = load_model(shared("models/hep/particlenet_ak4_hlt/model.onnx"));
  auto st = states_of(*pn, 1);
  const ErrorWhere where{.model = "pn", .node = "config parameter 'prepare_state'"};
  try {
    prepare_states(*pn, ptrs(st), "8,n_pf=50", {}, where);
    FAIL() << "n_sv has no value";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(e.where().model, "pn");
    EXPECT_EQ(e.where().tensor, "sv_points") << e.what();
    EXPECT_NE(std::string(e.what()).find("n_sv"), std::string::npos) << e.what();
  }
  try {
    prepare_states(*pn, ptrs(st), "8,n_pf=50,n_sv=4,n_pfs=3", {}, where);
    FAIL() << "n_pfs is no dim of the model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'n_pfs'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'n_pf'"), std::string::npos) << "lists the model's dims: " << e.what();
  }
  EXPECT_EQ(onnx::state_arena_bytes(*st[0]), 0u) << "a failed spec runs nothing";
  PrepareSpec automatic;
  automatic.batch = 8;
  const PrepareReport rep = prepare_states(*pn, ptrs(st), "", automatic, where);
  EXPECT_EQ(rep.spec.batch, 0);
  EXPECT_NE(rep.note.find("n_pf"), std::string::npos) << rep.note;
  EXPECT_NE(rep.summary().find("not prepared"), std::string::npos) << rep.summary();

  Counting c(32);
  auto cs = states_of(c, 1);
  try {
    prepare_states(c, ptrs(cs), "64", {}, {.model = "counting"});
    FAIL() << "64 > max batch 32";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max batch 32"), std::string::npos) << e.what();
  }
}

// States prepared at a batch (and dims) take real calls up to that size without growing; a fresh
// state grows on the same call (so the check can fail).
TEST(PrepareStates, PreparedStatesDoNotGrowOnTheirFirstRealCall) {
  auto pn = load_model(shared("models/hep/particlenet_ak4_hlt/model.onnx"));
  std::vector<Tensor> src;
  for (const auto& f : onnx::numbered_files(shared("models/hep/particlenet_ak4_hlt/test_data_set_0"), "input"))
    src.push_back(onnx::read_tensor_file(f).tensor);
  const std::vector<Tensor> inputs = tile_rows(src, 16);
  const auto dims = dims_of(pn->info(), inputs);
  std::string spec = "16";
  for (const auto& [k, v] : dims) spec += "," + k + "=" + std::to_string(v);
  auto st = states_of(*pn, 2);
  const PrepareReport rep = prepare_states(*pn, ptrs(st), spec, {}, {.model = "pn"});
  EXPECT_TRUE(rep.configured);
  EXPECT_EQ(rep.spec.batch, 16);
  EXPECT_EQ(rep.states, 2u);
  EXPECT_EQ(rep.bytes, state_bytes(*st[0]) + state_bytes(*st[1]));
  EXPECT_GT(state_bytes(*st[0]), 0u);
  EXPECT_NE(rep.summary().find("2 state(s) prepared at " + spec), std::string::npos) << rep.summary();
  std::vector<Tensor> out;
  for (auto& s : st) {
    const size_t before = state_bytes(*s);
    pn->run(inputs, out, *s);
    EXPECT_EQ(state_bytes(*s), before) << "a prepared state grew on its first call at the prepared size";
    pn->run(tile_rows(src, 5), out, *s);
    EXPECT_EQ(state_bytes(*s), before) << "a prepared state grew on a smaller call";
  }
  auto fresh = pn->make_state();
  pn->run(inputs, out, *fresh);
  EXPECT_GT(state_bytes(*fresh), 0u);
  EXPECT_EQ(state_bytes(*fresh), state_bytes(*st[0])) << "prepared at the size of the real call";
}

// The automatic default stays within kAutoPrepareMaxBytes per state: the interaction net at the
// batch of a max_batch-1024 batcher would take GBs, so its batch is cut and the report says so.
TEST(PrepareStates, AutomaticSizingIsCappedAndOnlyForTheEngine) {
  auto net = load_model(shared("models/hep/higgs_interaction_net/model.onnx"));
  auto st = states_of(*net, 1);
  PrepareSpec automatic;
  automatic.batch = 1024;
  const PrepareReport rep = prepare_states(*net, ptrs(st), "", automatic, {.model = "net"});
  EXPECT_FALSE(rep.configured);
  EXPECT_GE(rep.spec.batch, 1);
  EXPECT_LT(rep.spec.batch, 1024);
  EXPECT_NE(rep.note.find("cut to " + std::to_string(rep.spec.batch)), std::string::npos) << rep.note;
  EXPECT_GT(rep.bytes, 0u);
  EXPECT_LE(rep.bytes, kAutoPrepareMaxBytes) << rep.summary();

  // Another backend: no automatic run (nothing to size), a configured spec runs it.
  Counting c;
  auto cs = states_of(c, 3);
  automatic.batch = 8;
  const PrepareReport none = prepare_states(c, ptrs(cs), "", automatic, {.model = "counting"});
  EXPECT_EQ(none.spec.batch, 0);
  EXPECT_EQ(c.runs, 0);
  EXPECT_NE(none.note.find("ONNX engine"), std::string::npos) << none.note;
  const PrepareReport some = prepare_states(c, ptrs(cs), "8", automatic, {.model = "counting"});
  EXPECT_EQ(some.spec.batch, 8);
  EXPECT_EQ(c.runs, 3);
  EXPECT_EQ(c.largest, 8);
  EXPECT_EQ(prepare_states(c, ptrs(cs), "off", automatic, {.model = "counting"}).spec.batch, 0);
  EXPECT_EQ(c.runs, 3);
}
