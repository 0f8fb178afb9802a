// Execution states sized ahead at load (config.pbtxt parameter prepare_state, else the batch the
// batcher forms): the first request of that size finds every instance's arena big enough; a bad
// spec fails the load naming the model and the parameter.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "serve/repository.hpp"
#include "serve/scheduler.hpp"
#include "support/server_process.hpp"

using namespace quiver;
using namespace quiver::serve;

namespace {

const std::string kTicl = std::string(QUIVER_SHARED_DIR) + "/models/hep/ticl_energy_id";

std::vector<Tensor> ticl_inputs(int64_t batch) {
  std::vector<Tensor> src;
  for (const auto& f : onnx::numbered_files(kTicl + "/test_data_set_0", "input")) src.push_back(onnx::read_tensor_file(f).tensor);
  return tile_rows(src, batch);
}

// One request of `batch` rows through the scheduler, then drained (no request runs after).
void run_one(Scheduler& s, int64_t batch) {
  std::promise<std::string> done;
  auto req = std::make_unique<InferRequest>();
  req->inputs = ticl_inputs(batch);
  req->batch = batch;
  req->complete = [&](const Status& st, FailReason, std::span<const Tensor>) { done.set_value(st.ok ? "" : st.message); };
  s.enqueue(std::move(req));
  EXPECT_EQ(done.get_future().get(), "");
  s.drain();
}

TEST(ServePrepare, InstancesSizedAtTheBatcherSizeDoNotGrowOnTheFirstBatch) {
  auto model = load_model(kTicl + "/model.onnx");
  SchedulerOptions o;
  o.instances = 2;
  o.max_batch = 16;
  o.dynamic_batching = true;
  o.preferred_batch_sizes = {8, 4};
  Scheduler prepared(model, o, "ticl");
  const PrepareReport rep = prepared.prepare("", {.model = "ticl"});
  EXPECT_FALSE(rep.configured);
  EXPECT_EQ(rep.spec.batch, 8) << "the largest preferred size";
  EXPECT_EQ(rep.states, 2u) << "the instances; no inline states behind a batcher";
  const size_t before = prepared.state_bytes();
  EXPECT_GT(before, 0u);
  EXPECT_EQ(before, rep.bytes);
  run_one(prepared, 8);
  EXPECT_EQ(prepared.state_bytes(), before) << "the first batch grew a prepared instance's arena";

  Scheduler cold(model, o, "ticl");  // the same without prepare: the first batch grows a state
  run_one(cold, 8);
  EXPECT_GT(cold.state_bytes(), 0u);

  // Without a batcher: the instances and the inline path's states, at the configured size.
  SchedulerOptions plain;
  plain.instances = 2;
  plain.max_batch = 16;
  Scheduler direct(model, plain, "ticl");
  const PrepareReport r2 = direct.prepare("12", {.model = "ticl"});
  EXPECT_TRUE(r2.configured);
  EXPECT_EQ(r2.states, 4u);
  const size_t b2 = direct.state_bytes();
  for (int64_t batch : {12, 3}) {
    run_one(direct, batch);
    EXPECT_EQ(direct.state_bytes(), b2) << "batch " << batch;
  }
  EXPECT_EQ(direct.prepare("off", {.model = "ticl"}).spec.batch, 0);
}

TEST(ServePrepare, RepositoryLoadSizesStatesAndRejectsABadSpecNamingTheModel) {
  namespace fs = std::filesystem;
  quiver::testing::TempRepository t("quiver-prepare");
  auto add = [&](const std::string& name, const std::string& prepare) {
    t.add(name, "backend: \"onnx\" max_batch_size: 32 instance_group [ { count: 2 kind: KIND_CPU } ] "
                "dynamic_batching { preferred_batch_size: [ 16 ] } "
                "parameters { key: \"prepare_state\" value: { string_value: \"" + prepare + "\" } }");
    fs::copy_file(kTicl + "/model.onnx", t.dir / name / "1/model.onnx");
  };
  add("sized", "24");
  add("off", "off");
  add("bad_batch", "64");        // over max_batch_size
  add("bad_dim", "8,n_pf=100");  // the model has no such dim
  add("bad_text", "lots");
  RepositoryOptions o;
  o.root = t.dir.string();
  o.control = ModelControl::Explicit;
  ModelRepository repo(o);
  repo.load("sized");
  auto mv = repo.get("sized", "");
  ASSERT_TRUE(mv);
  EXPECT_GT(mv->prepared_bytes, 0u);
  EXPECT_EQ(mv->prepared_bytes, mv->scheduler->state_bytes());
  run_one(*mv->scheduler, 24);
  EXPECT_EQ(mv->scheduler->state_bytes(), mv->prepared_bytes);
  repo.load("off");
  EXPECT_EQ(repo.get("off", "")->prepared_bytes, 0u);
  for (auto [name, needle] : {std::pair<const char*, const char*>{"bad_batch", "max batch 32"},
                              {"bad_dim", "'n_pf'"},
                              {"bad_text", "'lots'"}}) {
    try {
      repo.load(name);
      ADD_FAILURE() << name << " loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
      EXPECT_EQ(e.where().model, name) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("prepare_state"), std::string::npos) << e.what();
    }
  }
  repo.shutdown();
}

}  // namespace
