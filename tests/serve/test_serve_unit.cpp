// Unit tests of the server's parts: config.pbtxt parsing and auto-complete, version policy,
// the scheduler (dynamic batching, shape grouping, priorities, queue policy, ordering,
// instances), request decoding / validation and shared-memory bounds.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quiver/core/util.hpp"
#include "serve/acceptor.hpp"
#include "serve/codec.hpp"
#include "serve/repository.hpp"
#include "serve/scheduler.hpp"
#include "serve/shm.hpp"

using namespace quiver;
using namespace quiver::serve;
using namespace quiver::repository;  // the repository loader (src/repository)

namespace {

TEST(ServeConfig, ParsesTritonConfig) {
  auto c = parse_model_config(R"(
name: "jets"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 16 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 5 ] } ]
version_policy: { specific: { versions: [ 1, 3 ] } }
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 500
  preserve_ordering: true
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 allow_timeout_override: true max_queue_size: 7 }
}
instance_group [ { count: 3 kind: KIND_CPU } ]
optimization { execution_accelerators { cpu_execution_accelerator : [ { name : "openvino" } ] } }
parameters { key: "model_type" value: { string_value: "xgboost_json" } }
)", "config.pbtxt");
  EXPECT_EQ(c.name(), "jets");
  EXPECT_EQ(engine_for_config(c), "onnx");
  EXPECT_EQ(c.input(0).dims(0), -1);
  auto o = scheduler_options(c);
  EXPECT_EQ(o.instances, 3);
  EXPECT_TRUE(o.dynamic_batching);
  EXPECT_EQ(o.preferred_batch_sizes, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(o.max_queue_delay_us, 500u);
  EXPECT_TRUE(o.preserve_ordering);
  EXPECT_EQ(o.priority_levels, 2u);
  EXPECT_TRUE(o.default_policy.delay_on_timeout);
  EXPECT_EQ(o.default_policy.max_queue_size, 7u);
  EXPECT_EQ(select_versions(c, {1, 2, 3, 4}), (std::vector<int64_t>{1, 3}));
  EXPECT_THROW(select_versions(c, {1, 2}), Error);
}

TEST(ServeConfig, ParseErrorNamesFileAndLine) {
  try {
    parse_model_config("name: \"a\"\nmax_batch_size: 4\ninput [ { nme: \"x\" } ]\n", "/repo/a/config.pbtxt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Parse);
    EXPECT_EQ(e.where().file, "/repo/a/config.pbtxt");
    EXPECT_EQ(e.where().offset, 3);
    EXPECT_NE(std::string(e.what()).find("nme"), std::string::npos);
  }
}

TEST(ServeConfig, EngineMappingAndUnsupportedPlatforms) {
  inference::ModelConfig c;
  c.set_backend("onnxruntime");
  EXPECT_EQ(engine_for_config(c), "onnx");
  c.set_backend("fil");
  EXPECT_EQ(engine_for_config(c), "forest");
  c.set_backend("identity");
  EXPECT_EQ(engine_for_config(c), "identity");
  c.set_backend("");
  c.set_platform("tensorflow_savedmodel");
  EXPECT_THROW(engine_for_config(c), Error);
}

ModelInfo mlp_info(int64_t max_batch) {
  ModelInfo mi;
  mi.name = "mlp";
  mi.max_batch = max_batch;
  mi.inputs = {{"x", DType::F32, {Dim::sym("N"), 16}}};
  mi.outputs = {{"y", DType::F32, {Dim::sym("N"), 5}}};
  return mi;
}

TEST(ServeConfig, AutoCompleteFromModel) {
  inference::ModelConfig c;
  c.set_name("mlp");
  complete_config(c, mlp_info(0));
  EXPECT_EQ(c.max_batch_size(), 4);  // Triton's default for batching models
  EXPECT_TRUE(c.has_dynamic_batching());
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  ASSERT_EQ(c.input(0).dims_size(), 1);
  EXPECT_EQ(c.input(0).dims(0), 16);
  EXPECT_EQ(c.output(0).dims(0), 5);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
}

TEST(ServeConfig, ConfigThatContradictsTheModelIsRejected) {
  auto c = parse_model_config(
      "max_batch_size: 8 input [ { name: \"x\" data_type: TYPE_FP64 dims: [ 16 ] } ]", "c");
  c.set_name("mlp");
  try {
    complete_config(c, mlp_info(0));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.where().tensor, "x");
  }
  auto d = parse_model_config("max_batch_size: 8 input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 17 ] } ]", "c");
  EXPECT_THROW(complete_config(d, mlp_info(0)), Error);
  auto e = parse_model_config("max_batch_size: 8 input [ { name: \"z\" data_type: TYPE_FP32 dims: [ 16 ] } ]", "c");
  EXPECT_THROW(complete_config(e, mlp_info(0)), Error);
  auto f = parse_model_config("max_batch_size: 64", "c");
  EXPECT_THROW(complete_config(f, mlp_info(32)), Error);  // above the model's own limit
  auto g = parse_model_config("instance_group [ { kind: KIND_GPU } ]", "c");
  EXPECT_THROW(complete_config(g, mlp_info(0)), Error);  // a model on the CPU
  auto on_gpu = mlp_info(0);
  on_gpu.device = "cuda:0";
  EXPECT_NO_THROW(complete_config(g, on_gpu));
}

TEST(ServeConfig, VersionPolicies) {
  inference::ModelConfig c;
  EXPECT_EQ(select_versions(c, {3, 1, 2}), (std::vector<int64_t>{3}));
  c.mutable_version_policy()->mutable_latest()->set_num_versions(2);
  EXPECT_EQ(select_versions(c, {3, 1, 2}), (std::vector<int64_t>{2, 3}));
  c.mutable_version_policy()->mutable_all();
  EXPECT_EQ(select_versions(c, {3, 1, 2}), (std::vector<int64_t>{1, 2, 3}));
}

TEST(ServeRepository, ModelNamesCannotEscape) {
  for (const char* bad : {"", ".", "..", "../x", "a/b", ".hidden", "a\\b"})
    EXPECT_THROW(ModelRepository::check_model_name(bad), Error) << bad;
  EXPECT_NO_THROW(ModelRepository::check_model_name("particlenet_ak4-v2.1"));
}

// A throwaway repository folder: model(name, config) writes REPO/name/config.pbtxt and version 1.
struct TempRepo {
  std::filesystem::path root;
  explicit TempRepo(const std::string& tag)
      : root(std::filesystem::temp_directory_path() / ("quiver-" + tag + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(root);
  }
  ~TempRepo() { std::filesystem::remove_all(root); }
  void model(const std::string& name, const std::string& cfg) const {
    std::filesystem::create_directories(root / name / "1");
    std::ofstream(root / name / "config.pbtxt") << cfg;
  }
  ModelRepository open() const {
    RepositoryOptions o;
    o.root = root.string();
    o.control = ModelControl::Explicit;
    o.startup_models = {"*"};
    return ModelRepository(o);
  }
};

// label_filename: a plain file in the model directory, one label per line; a missing file or a
// path fails the model's load, naming the file and output.
TEST(ServeRepository, LabelFilesAreReadAndChecked) {
  namespace fs = std::filesystem;
  TempRepo t("labels");
  const fs::path& root = t.root;
  auto model = [&](const std::string& name, const std::string& label_file) {
    t.model(name, "backend: \"identity\" max_batch_size: 2 input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 3 ] } ] "
                  "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 3 ] label_filename: \"" + label_file + "\" } ]");
  };
  model("good", "labels.txt");
  std::ofstream(root / "good/labels.txt") << "b\r\nc\r\nlight";  // CRLF, no final newline
  model("missing", "nope.txt");
  model("escape", "../good/labels.txt");
  ModelRepository repo = t.open();
  repo.load("good");
  auto mv = repo.get("good", "");
  ASSERT_TRUE(mv);
  ASSERT_TRUE(mv->outputs[0].labels);
  EXPECT_EQ(*mv->outputs[0].labels, (std::vector<std::string>{"b", "c", "light"}));
  for (const char* bad : {"missing", "escape"}) {
    try {
      repo.load(bad);
      ADD_FAILURE() << bad << " loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.where().model, bad);
      EXPECT_EQ(e.where().tensor, "O");
      EXPECT_NE(e.where().file.find(bad == std::string("missing") ? "nope.txt" : "good/labels.txt"), std::string::npos)
          << e.where().file;
    }
  }
  repo.shutdown();
}

// Ensembles: steps in any order in the file, tensors checked at load, composing models found
// among those loaded on every call.
TEST(ServeRepository, EnsemblesLoadAfterTheirStepsAndCheckTheGraph) {
  TempRepo t("ensemble");
  auto model = [&](const std::string& name, const std::string& cfg) { t.model(name, cfg); };
  auto ident = [](const char* in, const char* out, const char* type = "TYPE_FP32") {
    return std::string("backend: \"identity\" max_batch_size: 8 input [ { name: \"") + in + "\" data_type: " + type +
           " dims: [ 4 ] } ] output [ { name: \"" + out + "\" data_type: " + type + " dims: [ 4 ] } ]";
  };
  model("z_first", ident("INPUT0", "OUTPUT0"));
  model("z_second", ident("X", "Y"));
  model("z_ints", ident("I", "J", "TYPE_INT32"));
  auto ensemble = [](const std::string& steps, const char* out = "OUT") {
    return "platform: \"ensemble\" max_batch_size: 8 input [ { name: \"RAW\" data_type: TYPE_FP32 dims: [ 4 ] } ] "
           "output [ { name: \"" + std::string(out) + "\" data_type: TYPE_FP32 dims: [ 4 ] } ] ensemble_scheduling { " +
           steps + " }";
  };
  const std::string second = "step [ { model_name: \"z_second\" model_version: -1 input_map { key: \"X\" value: \"mid\" } "
                             "output_map { key: \"Y\" value: \"OUT\" } } ]";
  const std::string first = "step [ { model_name: \"z_first\" model_version: -1 input_map { key: \"INPUT0\" value: \"RAW\" } "
                            "output_map { key: \"OUTPUT0\" value: \"mid\" } } ]";
  model("a_chain", ensemble(second + " " + first));  // listed backwards, sorted before its models
  model("a_missing", ensemble(second));              // "mid" comes from nowhere
  model("a_unknown", ensemble("step [ { model_name: \"nope\" input_map { key: \"X\" value: \"RAW\" } output_map { key: \"Y\" value: \"OUT\" } } ]"));
  model("a_badname", ensemble("step [ { model_name: \"z_second\" input_map { key: \"Q\" value: \"RAW\" } output_map { key: \"Y\" value: \"OUT\" } } ]"));
  model("a_dtype", ensemble("step [ { model_name: \"z_ints\" input_map { key: \"I\" value: \"RAW\" } output_map { key: \"J\" value: \"OUT\" } } ]"));
  model("a_noout", ensemble(first, "ELSEWHERE"));
  model("z_flat", "backend: \"identity\" max_batch_size: 0 input [ { name: \"X\" data_type: TYPE_FP32 dims: [ 4 ] } ] "
                  "output [ { name: \"Y\" data_type: TYPE_FP32 dims: [ 4 ] } ]");
  model("a_flat", ensemble("step [ { model_name: \"z_flat\" input_map { key: \"X\" value: \"RAW\" } output_map { key: \"Y\" value: \"OUT\" } } ]"));
  ModelRepository repo = t.open();
  auto errors = repo.load_startup();
  auto error_for = [&](const std::string& m) {
    for (const auto& e : errors)
      if (e.find("'" + m + "'") != std::string::npos || e.find("model " + m) != std::string::npos) return e;
    return std::string();
  };
  EXPECT_EQ(errors.size(), 6u);
  EXPECT_NE(error_for("a_flat").find("no batch dimension"), std::string::npos) << error_for("a_flat");
  EXPECT_NE(error_for("a_missing").find("'mid'"), std::string::npos) << error_for("a_missing");
  EXPECT_NE(error_for("a_unknown").find("nope"), std::string::npos) << error_for("a_unknown");
  EXPECT_NE(error_for("a_badname").find("'Q'"), std::string::npos) << error_for("a_badname");
  EXPECT_NE(error_for("a_dtype").find("INT32"), std::string::npos) << error_for("a_dtype");
  EXPECT_NE(error_for("a_noout").find("ELSEWHERE"), std::string::npos) << error_for("a_noout");

  auto mv = repo.get("a_chain");
  ASSERT_TRUE(mv);
  EXPECT_EQ(mv->engine, "ensemble");
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  auto y = mv->model->run_once(std::vector<Tensor>{x});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(y[0].dims(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(y[0].data<float>()[7], 8.0f);
  auto state = mv->model->make_state();
  std::vector<Tensor> out;
  mv->model->run(std::vector<Tensor>{x}, out, *state);
  // a composing model unloaded: the ensemble's calls fail naming it
  repo.unload("z_second");
  try {
    mv->model->run_once(std::vector<Tensor>{x});
    ADD_FAILURE() << "ran without z_second";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("z_second"), std::string::npos) << e.what();
  }
  // loaded again: an ensemble state used before meets the new model and makes a state for it
  repo.load("z_second");
  for (int i = 0; i < 2; ++i) {
    mv->model->run(std::vector<Tensor>{x}, out, *state);
    EXPECT_EQ(out[0].data<float>()[5], 6.0f);
  }
  repo.shutdown();
}

// model_warmup: samples run on every execution state before the version is published; a sample
// that cannot be built fails the load naming it.
TEST(ServeRepository, ModelWarmupRunsEveryStateAndChecksItsSamples) {
  namespace fs = std::filesystem;
  TempRepo t("warmup");
  const fs::path& root = t.root;
  auto model = [&](const std::string& name, const std::string& warmup, const std::string& extra = "") {
    t.model(name, "backend: \"identity\" max_batch_size: 4 input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 3 ] } ] "
                  "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 3 ] } ] " + extra + " model_warmup [ " + warmup + " ]");
  };
  auto sample = [](const std::string& data, const char* input = "I", const char* type = "TYPE_FP32") {
    return std::string("{ name: \"s\" batch_size: 2 count: 2 inputs { key: \"") + input + "\" value: { data_type: " + type +
           " dims: [ 3 ] " + data + " } } }";
  };
  // 2 instances + 2 inline states, 2 runs each, 40 ms per run: at least 320 ms of warm-up
  model("slow", sample("zero_data: true"),
        "instance_group [ { count: 2 kind: KIND_CPU } ] parameters { key: \"execute_delay_ms\" value: { string_value: \"40\" } }");
  model("file", sample("input_data_file: \"x.bin\""));
  fs::create_directories(root / "file" / "warmup");
  {
    const float x[3] = {1, 2, 3};
    std::ofstream(root / "file" / "warmup" / "x.bin", std::ios::binary).write(reinterpret_cast<const char*>(x), sizeof x);
  }
  model("random", sample("random_data: true"));
  model("short_file", sample("input_data_file: \"y.bin\""));
  fs::create_directories(root / "short_file" / "warmup");
  std::ofstream(root / "short_file" / "warmup" / "y.bin") << "12345678";
  model("wrong_input", sample("zero_data: true", "J"));
  model("wrong_type", sample("zero_data: true", "I", "TYPE_INT32"));
  ModelRepository repo = t.open();
  const auto t0 = std::chrono::steady_clock::now();
  repo.load("slow");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(320));
  EXPECT_NO_THROW(repo.load("file"));
  EXPECT_NO_THROW(repo.load("random"));
  for (auto [m, needle] : {std::pair<const char*, const char*>{"short_file", "y.bin"}, {"wrong_input", "'J'"},
                           {"wrong_type", "TYPE_FP32"}}) {
    try {
      repo.load(m);
      ADD_FAILURE() << m << " loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("model_warmup sample 's'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(e.where().model, m);
    }
  }
  repo.shutdown();
}

// ---- scheduler ----

// Adds 1 to every element, records executed batch sizes; optional per-run delay and gate.
class RecordingModel final : public Model {
 public:
  explicit RecordingModel(int64_t max_batch, int delay_ms = 0) : delay_ms_(delay_ms) {
    info_.name = "rec";
    info_.max_batch = max_batch;
    info_.inputs = {{"x", DType::F32, {Dim::sym("N"), Dim::sym("w")}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("N"), Dim::sym("w")}}};
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    ++started_;
    int now = ++running_;
    int prev = max_running_.load();
    while (now > prev && !max_running_.compare_exchange_weak(prev, now)) {}
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    {
      std::lock_guard lk(mu_);
      batches_.push_back(in[0].dim(0));
    }
    out.resize(1);
    out[0].ensure(DType::F32, in[0].dims());
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].data<float>()[i] = in[0].data<float>()[i] + 1;
    --running_;
  }
  std::vector<int64_t> batches() const {
    std::lock_guard lk(mu_);
    return batches_;
  }
  int max_running() const { return max_running_; }
  // Blocks until `n` executions have started (instead of sleeping: the machine may be loaded).
  void wait_started(int n) const {
    for (int i = 0; i < 20000 && started_.load() < n; ++i) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }

 private:
  ModelInfo info_;
  int delay_ms_;
  mutable std::mutex mu_;
  mutable std::vector<int64_t> batches_;
  mutable std::atomic<int> running_{0}, max_running_{0}, started_{0};
};

struct Result {
  Status st;
  std::vector<float> values;
  int order = -1;
};

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result> results;
  int done = 0, seq = 0;
  explicit Collector(size_t n) : results(n) {}
  std::unique_ptr<InferRequest> make(size_t idx, int64_t batch, int64_t width, float value, uint64_t priority = 0,
                                     uint64_t timeout_us = 0) {
    auto r = std::make_unique<InferRequest>();
    r->inputs.push_back(Tensor::from_vector(std::vector<float>(static_cast<size_t>(batch * width), value), {batch, width}));
    r->batch = batch;
    r->priority = priority;
    r->timeout_us = timeout_us;
    r->complete = [this, idx](const Status& st, FailReason, std::span<const Tensor> outs) {
      std::lock_guard lk(mu);
      results[idx].st = st;
      if (st.ok) results[idx].values.assign(outs[0].data<float>(), outs[0].data<float>() + outs[0].numel());
      results[idx].order = seq++;
      ++done;
      cv.notify_all();
    };
    return r;
  }
  bool wait(int n, int ms = 10000) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return done >= n; });
  }
};

// One instance behind a dynamic batcher that starts a batch as soon as the instance is free.
SchedulerOptions batcher_without_delay(int64_t max_batch) {
  SchedulerOptions o;
  o.max_batch = max_batch;
  o.dynamic_batching = true;
  o.max_queue_delay_us = 0;
  return o;
}

TEST(ServeScheduler, DynamicBatchingFormsBatchesAndSplitsResults) {
  auto model = std::make_shared<RecordingModel>(16, 30);
  Scheduler s(model, batcher_without_delay(16), "rec");
  Collector c(9);
  // First request occupies the single instance; the next 8 (batch 1 + one of batch 2) queue up.
  s.enqueue(c.make(0, 1, 3, 0.f));
  model->wait_started(1);
  for (int i = 1; i < 9; ++i) s.enqueue(c.make(static_cast<size_t>(i), i == 4 ? 2 : 1, 3, float(i)));
  ASSERT_TRUE(c.wait(9));
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(c.results[i].st.ok) << c.results[i].st.message;
    EXPECT_EQ(c.results[i].values.size(), i == 4 ? 6u : 3u);
    for (float v : c.results[i].values) EXPECT_EQ(v, float(i) + 1);
  }
  auto b = model->batches();
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[1], 9);
  auto st = s.stats();
  EXPECT_EQ(st.execution_count, 2u);
  EXPECT_EQ(st.inference_count, 10u);
  EXPECT_EQ(st.success.count, 9u);
  EXPECT_EQ(st.batch.count(9), 1u);
}

TEST(ServeScheduler, DifferentNonBatchShapesAreBatchedSeparately) {
  auto model = std::make_shared<RecordingModel>(16, 30);
  SchedulerOptions o;
  o.max_batch = 16;
  o.dynamic_batching = true;
  Scheduler s(model, o, "rec");
  Collector c(7);
  s.enqueue(c.make(0, 1, 3, 0.f));
  model->wait_started(1);
  for (int i = 1; i < 7; ++i) s.enqueue(c.make(static_cast<size_t>(i), 1, i % 2 ? 3 : 5, float(i)));
  ASSERT_TRUE(c.wait(7));
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(c.results[i].st.ok);
    EXPECT_EQ(c.results[i].values.size(), i == 0 || i % 2 ? 3u : 5u);
    EXPECT_EQ(c.results[i].values[0], float(i) + 1);
  }
  auto b = model->batches();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[1] + b[2], 6);
  EXPECT_EQ(b[1], 3);
}

TEST(ServeScheduler, MaxBatchAndPreferredSizes) {
  auto model = std::make_shared<RecordingModel>(4, 30);
  SchedulerOptions o;
  o.max_batch = 4;
  o.dynamic_batching = true;
  o.preferred_batch_sizes = {2};
  o.max_queue_delay_us = 200000;  // long: only preferred / full batches start early
  Scheduler s(model, o, "rec");
  Collector c(3);
  auto t0 = std::chrono::steady_clock::now();
  s.enqueue(c.make(0, 1, 1, 0.f));
  s.enqueue(c.make(1, 1, 1, 1.f));
  s.enqueue(c.make(2, 1, 1, 2.f));
  ASSERT_TRUE(c.wait(3));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  auto b = model->batches();
  ASSERT_GE(b.size(), 2u);
  EXPECT_EQ(b[0], 2);  // preferred size formed at once
  EXPECT_EQ(b[1], 1);  // the leftover waited for the queue delay
  EXPECT_GE(ms, 150);
}

// A worker filling a batch is woken by the arrival that fills it, not only by its queue delay
// (it is not woken for every arrival: see Scheduler::enqueue).
TEST(ServeScheduler, FullBatchStartsWithoutWaitingForTheQueueDelay) {
  auto model = std::make_shared<RecordingModel>(4, 0);
  SchedulerOptions o;
  o.max_batch = 4;
  o.dynamic_batching = true;
  o.max_queue_delay_us = 20000000;  // 20 s: only a full batch may start early
  Collector c(8);  // before the scheduler: its destructor may still complete requests
  Scheduler s(model, o, "rec");
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    s.enqueue(c.make(static_cast<size_t>(i), i == 5 ? 2 : 1, 1, float(i)));
    // let the worker go back to waiting between arrivals
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(c.wait(7, 15000));  // 1+1+1+1 | 1+2+1: the eighth request (1 row) waits for the delay
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 10000);
  auto b = model->batches();
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], 4);
  EXPECT_EQ(b[1], 4);
  s.stop();
  ASSERT_TRUE(c.wait(8, 15000));  // stopping runs the leftover at once
}

// With dynamic batching the instance hands a finished batch's responses to its responder and runs
// the next batch meanwhile: here the first response's callback blocks (a slow transport), and the
// second request still executes before it returns. Responses keep their order, and every result
// and statistic is as before. Fails on an instance that answers its own batches.
TEST(ServeScheduler, InstanceRunsTheNextBatchWhileTheLastOnesResponsesAreSent) {
  auto model = std::make_shared<RecordingModel>(1, 0);
  Collector c(2);  // before the scheduler: its destructor may still complete requests
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  Scheduler s(model, batcher_without_delay(1), "rec");
  auto first = c.make(0, 1, 2, 1.f);
  first->complete = [&, inner = std::move(first->complete)](const Status& st, FailReason why, std::span<const Tensor> outs) {
    std::unique_lock lk(mu);
    entered = true;
    cv.notify_all();
    cv.wait_for(lk, std::chrono::seconds(20), [&] { return release; });
    lk.unlock();
    inner(st, why, outs);
  };
  s.enqueue(std::move(first));
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return entered; }));
  }
  s.enqueue(c.make(1, 1, 2, 5.f));
  model->wait_started(2);  // bounded (10 s)
  const size_t ran = model->batches().size();
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(ran, 2u) << "the second batch waited for the first one's responses";
  ASSERT_TRUE(c.wait(2));
  ASSERT_TRUE(c.results[0].st.ok && c.results[1].st.ok);
  EXPECT_EQ(c.results[0].values, (std::vector<float>{2.f, 2.f}));
  EXPECT_EQ(c.results[1].values, (std::vector<float>{6.f, 6.f}));
  EXPECT_LT(c.results[0].order, c.results[1].order) << "responses leave in order";
  s.drain();
  const auto st = s.stats();
  EXPECT_EQ(stats_inconsistency(st), "");
  EXPECT_EQ(st.success.count, 2u);
  EXPECT_EQ(st.pending, 0u);
}

// A queued request's timeout ends it on time even while a long batching delay is running.
TEST(ServeScheduler, TimeoutExpiresDuringALongQueueDelay) {
  auto model = std::make_shared<RecordingModel>(8, 0);
  SchedulerOptions o;
  o.max_batch = 8;
  o.dynamic_batching = true;
  o.max_queue_delay_us = 20000000;  // 20 s
  o.default_policy.allow_timeout_override = true;
  Collector c(2);  // before the scheduler: its destructor may still complete requests
  Scheduler s(model, o, "rec");
  const auto t0 = std::chrono::steady_clock::now();
  s.enqueue(c.make(0, 1, 1, 0.f));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the worker now waits for the delay
  s.enqueue(c.make(1, 1, 1, 1.f, 0, 30000));                  // 30 ms timeout
  ASSERT_TRUE(c.wait(1, 15000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 10000);
  {
    std::lock_guard lk(c.mu);
    EXPECT_FALSE(c.results[1].st.ok);
    EXPECT_NE(c.results[1].st.message.find("timeout"), std::string::npos) << c.results[1].st.message;
  }
  s.stop();
  ASSERT_TRUE(c.wait(2, 15000));
  EXPECT_TRUE(c.results[0].st.ok);
}

// The transports refuse a batch above max_batch_size; the scheduler itself must still answer one
// (found by fuzz_serve_request: the worker took an empty batch for "stopping" and drain() hung).
TEST(ServeScheduler, RequestLargerThanMaxBatchRunsAloneInsteadOfStallingTheWorker) {
  auto model = std::make_shared<RecordingModel>(16, 0);
  SchedulerOptions o;
  o.max_batch = 4;
  o.dynamic_batching = true;
  Scheduler s(model, o, "rec");
  Collector c(3);
  s.enqueue(c.make(0, 5, 2, 0.f));
  s.enqueue(c.make(1, 1, 2, 1.f));
  s.enqueue(c.make(2, 2, 2, 2.f));
  ASSERT_TRUE(c.wait(3));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.results[i].st.ok) << c.results[i].st.message;
  EXPECT_EQ(c.results[0].values.size(), 10u);
  s.drain();
  EXPECT_EQ(s.stats().success.count, 3u);
}

TEST(ServeScheduler, QueueFullAndTimeoutAreRejected) {
  auto model = std::make_shared<RecordingModel>(0, 50);
  SchedulerOptions o;
  o.default_policy.max_queue_size = 2;
  o.default_policy.allow_timeout_override = true;
  Scheduler s(model, o, "rec");
  Collector c(5);
  // The first request may execute inline on the enqueuing thread: give it its own thread.
  std::thread first([&] { s.enqueue(c.make(0, 1, 1, 0.f)); });  // executes
  model->wait_started(1);
  s.enqueue(c.make(1, 1, 1, 1.f, 0, 1000));  // queued, 1 ms timeout -> rejected
  s.enqueue(c.make(2, 1, 1, 2.f));            // queued
  s.enqueue(c.make(3, 1, 1, 3.f));            // queue full
  ASSERT_TRUE(c.wait(4));
  first.join();
  {
    std::lock_guard lk(c.mu);
    EXPECT_FALSE(c.results[3].st.ok);
    EXPECT_EQ(c.results[3].st.code, ErrorCode::Unavailable);
    EXPECT_NE(c.results[3].st.message.find("queue size"), std::string::npos);
  }
  s.drain();
  EXPECT_TRUE(c.results[0].st.ok);
  EXPECT_FALSE(c.results[1].st.ok);
  EXPECT_NE(c.results[1].st.message.find("timeout"), std::string::npos);
  EXPECT_TRUE(c.results[2].st.ok);
  auto st = s.stats();
  EXPECT_EQ(st.failures[FailReason::Rejected], 2u);
}

TEST(ServeScheduler, DelayPolicyMovesTimedOutRequestsBehindTheOthers) {
  auto model = std::make_shared<RecordingModel>(0, 30);
  SchedulerOptions o;
  o.default_policy.delay_on_timeout = true;
  o.default_policy.allow_timeout_override = true;
  Scheduler s(model, o, "rec");
  Collector c(3);
  std::thread first([&] { s.enqueue(c.make(0, 1, 1, 0.f)); });
  model->wait_started(1);
  s.enqueue(c.make(1, 1, 1, 1.f, 0, 1000));  // times out while request 0 runs: delayed, not rejected
  s.enqueue(c.make(2, 1, 1, 2.f));
  ASSERT_TRUE(c.wait(3));
  first.join();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.results[i].st.ok) << i;
  EXPECT_LT(c.results[2].order, c.results[1].order);
}

TEST(ServeScheduler, HigherPriorityRunsFirst) {
  auto model = std::make_shared<RecordingModel>(0, 20);
  SchedulerOptions o;
  o.priority_levels = 2;
  o.default_priority = 2;
  Scheduler s(model, o, "rec");
  Collector c(4);
  std::thread first([&] { s.enqueue(c.make(0, 1, 1, 0.f)); });
  model->wait_started(1);
  s.enqueue(c.make(1, 1, 1, 1.f));     // default level 2
  s.enqueue(c.make(2, 1, 1, 2.f, 2));  // level 2
  s.enqueue(c.make(3, 1, 1, 3.f, 1));  // level 1: overtakes
  ASSERT_TRUE(c.wait(4));
  first.join();
  EXPECT_LT(c.results[3].order, c.results[1].order);
  EXPECT_LT(c.results[1].order, c.results[2].order);
}

TEST(ServeScheduler, InstancesRunInParallelAndPreserveOrdering) {
  auto model = std::make_shared<RecordingModel>(0, 20);
  SchedulerOptions o;
  o.instances = 3;
  o.preserve_ordering = true;
  Scheduler s(model, o, "rec");
  Collector c(9);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 9; ++i) s.enqueue(c.make(static_cast<size_t>(i), 1, 1, float(i)));
  ASSERT_TRUE(c.wait(9));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(model->max_running(), 2);  // executions overlapped (3 when the machine is idle)
  EXPECT_LE(model->max_running(), 3);  // never more than the instance count
  (void)ms;
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(c.results[i].order, i);
    EXPECT_EQ(c.results[i].values[0], float(i) + 1);
  }
}

TEST(ServeScheduler, IdleInstanceRunsShortRequestsOnTheCallersThread) {
  auto model = std::make_shared<RecordingModel>(0, 0);
  Scheduler s(model, SchedulerOptions{}, "rec");
  Collector c(1);
  std::thread::id ran_on;
  auto r = c.make(0, 1, 2, 1.f);
  auto inner = r->complete;
  r->complete = [&, inner](const Status& st, FailReason w, std::span<const Tensor> o) {
    ran_on = std::this_thread::get_id();
    inner(st, w, o);
  };
  s.enqueue(std::move(r));
  ASSERT_TRUE(c.wait(1));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(c.results[0].values, (std::vector<float>{2.f, 2.f}));
}

// perf_analyzer refuses a statistics window whose compute input / infer / output counts differ
// ("Server side statistics compute counts must be the same."): every snapshot must hold each
// finished request in all of them or in none, and hold it before its response leaves. Checked
// from inside every completion (where the output count used to lag by the batch being
// answered) and by a thread taking snapshots throughout.
TEST(ServeScheduler, StatisticsCountsAgreeInEverySnapshot) {
  struct Case {
    const char* name;
    int64_t max_batch;
    SchedulerOptions opt;
  };
  std::vector<Case> cases;
  {
    SchedulerOptions o;  // inline on the caller's thread or one instance thread
    cases.push_back({"plain", 0, o});
    o.instances = 2;
    o.max_batch = 8;
    o.dynamic_batching = true;
    o.max_queue_delay_us = 200;
    cases.push_back({"dynamic batching, 2 instances", 8, o});
    o.preserve_ordering = true;
    o.instances = 3;
    cases.push_back({"preserve_ordering, 3 instances", 8, o});
  }
  for (const auto& cs : cases) {
    SCOPED_TRACE(cs.name);
    auto model = std::make_shared<RecordingModel>(cs.max_batch, 0);
    Scheduler s(model, cs.opt, "rec");
    const int kRequests = 600;
    std::mutex mu;
    std::condition_variable cv;
    int answered = 0;
    std::string first_bad;
    std::atomic<bool> done{false};
    std::thread snapshots([&] {
      while (!done.load()) {
        std::string why = stats_inconsistency(s.stats());
        if (!why.empty()) {
          std::lock_guard lk(mu);
          if (first_bad.empty()) first_bad = "snapshot thread: " + why;
        }
      }
    });
    std::atomic<uint64_t> completions_begun{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t)
      clients.emplace_back([&, t] {
        for (int i = 0; i < kRequests / 4; ++i) {
          auto r = std::make_unique<InferRequest>();
          const int64_t rows = cs.max_batch ? 1 + (i + t) % 3 : 1;
          r->inputs.push_back(Tensor::from_vector(std::vector<float>(static_cast<size_t>(rows * 2), 1.f), {rows, 2}));
          r->batch = rows;
          r->arrival_ns = now_ns();
          r->complete = [&](const Status& st, FailReason, std::span<const Tensor>) {
            // Every completion that began before this snapshot (this one included) was counted
            // before its response left.
            const uint64_t begun = ++completions_begun;
            const StatsSnapshot snap = s.stats();
            std::lock_guard lk(mu);
            std::string why = stats_inconsistency(snap);
            if (!st.ok) why += "request failed: " + st.message + "; ";
            ++answered;
            if (snap.success.count < begun)
              why += "success " + std::to_string(snap.success.count) + " lags " + std::to_string(begun) + " answers; ";
            if (!why.empty() && first_bad.empty()) first_bad = "in a completion: " + why;
            cv.notify_all();
          };
          s.enqueue(std::move(r));
        }
      });
    for (auto& c : clients) c.join();
    {
      std::unique_lock lk(mu);
      ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return answered == kRequests; }));
    }
    s.drain();
    done = true;
    snapshots.join();
    EXPECT_EQ(first_bad, "");
    const StatsSnapshot end = s.stats();
    EXPECT_EQ(stats_inconsistency(end), "");
    EXPECT_EQ(end.success.count, static_cast<uint64_t>(kRequests));
    EXPECT_GE(end.compute_output.ns, end.batch.empty() ? 0u : 1u);
  }
}

TEST(ServeScheduler, StopRejectsNewButFinishesQueued) {
  auto model = std::make_shared<RecordingModel>(0, 10);
  auto s = std::make_unique<Scheduler>(model, SchedulerOptions{}, "rec");
  Collector c(4);
  for (int i = 0; i < 3; ++i) s->enqueue(c.make(static_cast<size_t>(i), 1, 1, 0.f));
  s->stop();
  s->enqueue(c.make(3, 1, 1, 0.f));
  s.reset();  // joins after draining
  EXPECT_EQ(c.done, 4);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(c.results[i].st.ok);
  EXPECT_FALSE(c.results[3].st.ok);
}

// ---- request decoding ----

std::shared_ptr<ModelVersion> identity_version(const std::string& cfg) {
  return identity_model_version(cfg);
}

// A gRPC request with one FP32 input "I" of rows x width values.
inference::ModelInferRequest fp32_req(const std::vector<float>& v, int64_t rows, int64_t width) {
  inference::ModelInferRequest r;
  r.set_model_name("m");
  auto* in = r.add_inputs();
  in->set_name("I");
  in->set_datatype("FP32");
  in->add_shape(rows);
  in->add_shape(width);
  r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  return r;
}

TEST(ServeCodec, RawViewsAndValidation) {
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 4 input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 2 ] } ] "
      "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 2 ] } ]");
  ShmManager shm;
  inference::ModelInferRequest r = fp32_req({1, 2, 3, 4, 5, 6}, 3, 2);
  InferRequest ir;
  std::vector<OutputTarget> outs;
  decode_grpc_request(r, *mv, shm, ir, outs);
  EXPECT_EQ(ir.batch, 3);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(ir.inputs[0].data<float>()[5], 6.f);

  auto expect_bad = [&](inference::ModelInferRequest q, const std::string& needle) {
    InferRequest x;
    std::vector<OutputTarget> o;
    try {
      decode_grpc_request(q, *mv, shm, x, o);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto q = r;
  q.mutable_inputs(0)->set_shape(0, -1);
  expect_bad(q, "I");
  q = r;
  q.mutable_inputs(0)->set_shape(0, 0);
  expect_bad(q, "batch");
  q = r;
  q.add_raw_input_contents("x");
  expect_bad(q, "raw_input_contents");
  q = r;
  q.clear_raw_input_contents();
  expect_bad(q, "no data");
  q = r;
  (*q.mutable_parameters())["priority"].set_int64_param(-1);
  expect_bad(q, "priority");
  q = r;
  (*q.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param("r");
  expect_bad(q, "shared_memory_byte_size");
}

TEST(ServeCodec, BytesRoundTripAndHttpJson) {
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 0 input [ { name: \"S\" data_type: TYPE_STRING dims: [ -1 ] } ] "
      "output [ { name: \"T\" data_type: TYPE_STRING dims: [ -1 ] } ]");
  ShmManager shm;
  std::string raw = std::string("\x02\0\0\0hi\0\0\0\0", 10);
  InferRequest ir;
  HttpInferRequest info;
  std::string body = R"({"inputs":[{"name":"S","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}}],"outputs":[{"name":"T","parameters":{"binary_data":true}}]})";
  int64_t hl = static_cast<int64_t>(body.size());
  body += raw;
  decode_http_request(body, hl, *mv, shm, ir, info);
  ASSERT_EQ(ir.inputs[0].numel(), 2);
  EXPECT_EQ(ir.inputs[0].data<std::string>()[0], "hi");
  EXPECT_EQ(ir.inputs[0].data<std::string>()[1], "");
  int64_t out_hl = 0;
  std::string resp = encode_http_response(*mv, info, ir.inputs, out_hl);
  ASSERT_GT(out_hl, 0);
  EXPECT_EQ(resp.substr(static_cast<size_t>(out_hl)), raw);

  auto bad = [&](const std::string& b, int64_t h) {
    InferRequest x;
    HttpInferRequest i;
    EXPECT_THROW(decode_http_request(b, h, *mv, shm, x, i), Error) << b;
  };
  bad(R"({"inputs":[{"name":"S","shape":[2],"datatype":"BYTES","data":["a"]}]})", -1);
  bad(R"({"inputs":[{"name":"S","shape":[1],"datatype":"BYTES","data":[1]}]})", -1);
  bad(R"({"inputs":[{"name":"S","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":100}}]})", -1);
  bad(R"({"inputs":[]})", -1);
  bad(R"([1,2,3])", -1);
  bad(R"({"inputs":[{"name":"S","shape":[1],"datatype":"BYTES","data":["a"]}]})", 1000);
}

// Triton's classification extension: top-N "value:index[:label]" per batch row, BYTES.
TEST(ServeCodec, ClassificationTopNWithLabels) {
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 4 input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ] } ] "
      "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] } ]");
  mv->outputs[0].labels = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"b", "c", "light", "tau"});
  ShmManager shm;
  // row 1 has a tie (0.25 at 1 and 3: the lower index first) and a NaN (ranked last)
  inference::ModelInferRequest r = fp32_req({0.1f, 0.7f, 0.15f, 0.05f, NAN, 0.25f, 0.5f, 0.25f}, 2, 4);
  auto* o = r.add_outputs();
  o->set_name("O");
  (*o->mutable_parameters())["classification"].set_int64_param(3);
  InferRequest ir;
  std::vector<OutputTarget> outs;
  decode_grpc_request(r, *mv, shm, ir, outs);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].class_count, 3u);
  inference::ModelInferResponse resp;
  encode_grpc_response(*mv, outs, ir.inputs, resp);
  ASSERT_EQ(resp.outputs_size(), 1);
  EXPECT_EQ(resp.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(std::vector<int64_t>(resp.outputs(0).shape().begin(), resp.outputs(0).shape().end()), (std::vector<int64_t>{2, 3}));
  auto strings = [](const std::string& raw) {
    std::vector<std::string> out;
    for (size_t p = 0; p + 4 <= raw.size();) {
      uint32_t n;
      std::memcpy(&n, raw.data() + p, 4);
      out.push_back(raw.substr(p + 4, n));
      p += 4 + n;
    }
    return out;
  };
  EXPECT_EQ(strings(resp.raw_output_contents(0)),
            (std::vector<std::string>{"0.700000:1:c", "0.150000:2:light", "0.100000:0:b", "0.500000:2:light",
                                      "0.250000:1:c", "0.250000:3:tau"}));

  // more classes than the row has: the row's size; no label beyond the file's lines; HTTP JSON
  mv->outputs[0].labels = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"b"});
  InferRequest hr;
  HttpInferRequest info;
  decode_http_request(R"({"inputs":[{"name":"I","shape":[1,4],"datatype":"FP32","data":[1,4,2,3]}],)"
                      R"("outputs":[{"name":"O","parameters":{"classification":10,"binary_data":false}}]})",
                      -1, *mv, shm, hr, info);
  int64_t hl = 0;
  auto j = nlohmann::json::parse(encode_http_response(*mv, info, hr.inputs, hl));
  EXPECT_EQ(hl, -1);
  EXPECT_EQ(j["outputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json::parse("[1,4]"));
  EXPECT_EQ(j["outputs"][0]["data"],
            nlohmann::json::parse(R"(["4.000000:1","3.000000:3","2.000000:2","1.000000:0:b"])"));

  // integers print exactly; no batch dim for a model without batching
  auto mi = identity_version(
      "backend: \"identity\" max_batch_size: 0 input [ { name: \"I\" data_type: TYPE_INT64 dims: [ 3 ] } ] "
      "output [ { name: \"O\" data_type: TYPE_INT64 dims: [ 3 ] } ]");
  Tensor t = Tensor::from_vector(std::vector<int64_t>{-5, 9000000000LL, 7}, {3});
  Tensor c = classify(*mi, mi->outputs[0], t, 2);
  EXPECT_EQ(c.dims(), (std::vector<int64_t>{2}));
  EXPECT_EQ(c.data<std::string>()[0], "9000000000:1");
  EXPECT_EQ(c.data<std::string>()[1], "7:2");

  // bad counts and types are refused by name
  auto expect_bad = [&](const std::shared_ptr<ModelVersion>& m, const std::string& body, const std::string& needle) {
    InferRequest x;
    HttpInferRequest i;
    try {
      decode_http_request(body, -1, *m, shm, x, i);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad(mv, R"({"inputs":[{"name":"I","shape":[1,4],"datatype":"FP32","data":[1,4,2,3]}],"outputs":[{"name":"O","parameters":{"classification":-1}}]})", "classification");
  expect_bad(mv, R"({"inputs":[{"name":"I","shape":[1,4],"datatype":"FP32","data":[1,4,2,3]}],"outputs":[{"name":"O","parameters":{"classification":"3"}}]})", "classification");
  auto mb = identity_version(
      "backend: \"identity\" max_batch_size: 0 input [ { name: \"B\" data_type: TYPE_BOOL dims: [ 2 ] } ] "
      "output [ { name: \"B_OUT\" data_type: TYPE_BOOL dims: [ 2 ] } ]");
  expect_bad(mb, R"({"inputs":[{"name":"B","shape":[2],"datatype":"BOOL","data":[true,false]}],"outputs":[{"name":"B_OUT","parameters":{"classification":1}}]})", "B_OUT");
  auto q = r;
  (*q.mutable_outputs(0)->mutable_parameters())["classification"].set_string_param("3");
  InferRequest x;
  std::vector<OutputTarget> xo;
  EXPECT_THROW(decode_grpc_request(q, *mv, shm, x, xo), Error);
}

// Config `reshape`: clients use `dims`, the model sees `reshape.shape` (and produces it for outputs).
TEST(ServeCodec, ReshapeBetweenConfigDimsAndTheModel) {
  ShmManager shm;
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 4 "
      "input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }, "
      "        { name: \"S\" data_type: TYPE_INT32 dims: [ 1 ] reshape: { shape: [ ] } } ] "
      "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }, "
      "         { name: \"S_OUT\" data_type: TYPE_INT32 dims: [ 1 ] reshape: { shape: [ ] } } ]");
  EXPECT_EQ(mv->model->info().inputs[0].shape.size(), 2u);  // [batch, 4]: the config's view
  EXPECT_EQ(mv->model->info().inputs[1].shape.size(), 2u);  // [batch, 1]
  InferRequest ir;
  HttpInferRequest info;
  decode_http_request(R"({"inputs":[{"name":"I","shape":[3,4],"datatype":"FP32","data":[0,1,2,3,4,5,6,7,8,9,10,11]},)"
                      R"({"name":"S","shape":[3,1],"datatype":"INT32","data":[7,8,9]}]})",
                      -1, *mv, shm, ir, info);
  // requests carry the config's dims; the model views them with its own (see the ONNX integration test)
  EXPECT_EQ(ir.inputs[0].dims(), (std::vector<int64_t>{3, 4}));
  auto outs = mv->model->run_once(ir.inputs);
  int64_t hl = 0;
  info.outputs[0].binary = info.outputs[1].binary = false;
  auto j = nlohmann::json::parse(encode_http_response(*mv, info, outs, hl));
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json::parse("[3,4]"));
  EXPECT_EQ(j["outputs"][0]["data"][11], 11.0);
  EXPECT_EQ(j["outputs"][1]["shape"], nlohmann::json::parse("[3,1]"));
  EXPECT_EQ(j["outputs"][1]["data"], nlohmann::json::parse("[7,8,9]"));
  std::vector<OutputTarget> targets(2);
  targets[1].index = 1;
  inference::ModelInferResponse resp;
  encode_grpc_response(*mv, targets, outs, resp);
  EXPECT_EQ(std::vector<int64_t>(resp.outputs(0).shape().begin(), resp.outputs(0).shape().end()), (std::vector<int64_t>{3, 4}));

  // a variable dim: one on the model side is inferred from the element count
  auto mvar = identity_version(
      "backend: \"identity\" max_batch_size: 0 "
      "input [ { name: \"P\" data_type: TYPE_FP32 dims: [ -1 ] reshape: { shape: [ -1, 2 ] } } ] "
      "output [ { name: \"Q\" data_type: TYPE_FP32 dims: [ -1 ] reshape: { shape: [ -1, 2 ] } } ]");
  EXPECT_EQ(reshape_dims(std::vector<int64_t>{6}, false, std::vector<int64_t>{-1}, std::vector<int64_t>{-1, 2}, {}),
            (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(reshape_dims(std::vector<int64_t>{2, 3, 5}, true, std::vector<int64_t>{-1, -1}, std::vector<int64_t>{-1, 1, -1}, {}),
            (std::vector<int64_t>{2, 3, 1, 5}));  // several variable dims: matched in order
  InferRequest vr;
  HttpInferRequest vi;
  decode_http_request(R"({"inputs":[{"name":"P","shape":[6],"datatype":"FP32","data":[1,2,3,4,5,6]}]})", -1, *mvar, shm, vr, vi);
  auto vout = mvar->model->run_once(vr.inputs);
  EXPECT_EQ(vout[0].dims(), (std::vector<int64_t>{6}));
  InferRequest odd;
  HttpInferRequest oi;
  try {
    decode_http_request(R"({"inputs":[{"name":"P","shape":[5],"datatype":"FP32","data":[1,2,3,4,5]}]})", -1, *mvar, shm, odd, oi);
    mvar->model->run_once(odd.inputs);
    ADD_FAILURE() << "5 elements reshaped to [-1, 2]";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'P'"), std::string::npos) << e.what();
  }

  // a reshape that cannot hold the dims' elements is refused when the config is read
  try {
    identity_version("backend: \"identity\" max_batch_size: 0 "
                     "input [ { name: \"A\" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 3 ] } } ] "
                     "output [ { name: \"B\" data_type: TYPE_FP32 dims: [ 3 ] } ]");
    ADD_FAILURE() << "reshape [3] of dims [4] accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where().tensor, "A");
    EXPECT_NE(std::string(e.what()).find("reshape"), std::string::npos) << e.what();
  }
}

// Fuzzer finding (fuzz_serve_request, UBSan "load of value 5 ... for type 'const bool'"): BOOL
// raw bytes other than 0/1 were accepted and later read as bool (HTTP JSON output, models).
TEST(ServeCodec, BoolRawBytesMustBeZeroOrOne) {
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 0 input [ { name: \"B\" data_type: TYPE_BOOL dims: [ -1 ] } ] "
      "output [ { name: \"B_OUT\" data_type: TYPE_BOOL dims: [ -1 ] } ]");
  ShmManager shm;
  const std::string head = R"({"inputs":[{"name":"B","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]})";
  for (const char* bytes : {"\x01\x00\x01", "\x01\x05\x01"}) {
    InferRequest ir;
    HttpInferRequest info;
    std::string body = head + std::string(bytes, 3);
    const bool valid = bytes[1] == 0;
    try {
      decode_http_request(body, static_cast<int64_t>(head.size()), *mv, shm, ir, info);
      EXPECT_TRUE(valid);
      EXPECT_TRUE(ir.inputs[0].data<bool>()[0]);
      EXPECT_FALSE(ir.inputs[0].data<bool>()[1]);
      int64_t hl = 0;
      EXPECT_NE(encode_http_response(*mv, info, ir.inputs, hl).find("[true,false,true]"), std::string::npos);
    } catch (const Error& e) {
      EXPECT_FALSE(valid) << e.what();
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("'B' element 1 has byte value 5"), std::string::npos) << e.what();
    }
  }
  // Same over gRPC raw_input_contents.
  inference::ModelInferRequest r;
  auto* in = r.add_inputs();
  in->set_name("B");
  in->set_datatype("BOOL");
  in->add_shape(2);
  r.add_raw_input_contents(std::string("\x00\xff", 2));
  InferRequest ir;
  std::vector<OutputTarget> outs;
  try {
    decode_grpc_request(r, *mv, shm, ir, outs);
    ADD_FAILURE() << "BOOL byte 255 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte value 255"), std::string::npos) << e.what();
  }
}

// A BYTES input whose shape claims far more elements than its data can hold is rejected before
// the server allocates one string per claimed element (a 100-byte request could otherwise make it
// construct 10^9 strings, ~32 GB).
TEST(ServeCodec, BytesShapeLargerThanDataIsRejectedBeforeAllocating) {
  auto mv = identity_version(
      "backend: \"identity\" max_batch_size: 0 input [ { name: \"S\" data_type: TYPE_STRING dims: [ -1 ] } ] "
      "output [ { name: \"T\" data_type: TYPE_STRING dims: [ -1 ] } ]");
  ShmManager shm;
  const std::string head =
      R"({"inputs":[{"name":"S","shape":[1000000000],"datatype":"BYTES","parameters":{"binary_data_size":4}}]})";
  std::string body = head + std::string(4, '\0');
  InferRequest ir;
  HttpInferRequest info;
  const int64_t rss0 = current_rss_bytes();
  try {
    decode_http_request(body, static_cast<int64_t>(head.size()), *mv, shm, ir, info);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("too few for the 1000000000 elements"), std::string::npos) << e.what();
  }
  EXPECT_LT(current_rss_bytes() - rss0, int64_t(64) << 20);
  // Exactly enough bytes for the elements (all empty) still decodes.
  const std::string head2 = R"({"inputs":[{"name":"S","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":12}}]})";
  std::string body2 = head2 + std::string(12, '\0');
  InferRequest ir2;
  HttpInferRequest info2;
  decode_http_request(body2, static_cast<int64_t>(head2.size()), *mv, shm, ir2, info2);
  EXPECT_EQ(ir2.inputs[0].numel(), 3);
}

TEST(ServeShm, RegionBoundsChecked) {
  ShmManager m;
  EXPECT_THROW(m.register_region("r", "/quiver_no_such_key_xyz", 0, 16), Error);
  EXPECT_THROW(m.get("r"), Error);
  EXPECT_THROW(m.unregister("r"), Error);
}

}  // namespace

// Connections the acceptor hands to gRPC and libmicrohttpd have Nagle's algorithm off, as gRPC's
// own listener had: with it on, gRPC at concurrency 1 waited on delayed ACKs (half the throughput).
TEST(ServeAcceptor, AcceptedConnectionsHaveNagleOff) {
  quiver::serve::Acceptor listener;
  const int port = listener.listen("127.0.0.1", 0, "test");
  std::promise<int> nodelay;
  quiver::serve::Acceptor::Handlers h;
  h.take = [&](int fd, const sockaddr*, socklen_t) {
    int on = -1;
    socklen_t n = sizeof on;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &n) != 0) on = -1;
    nodelay.set_value(on);
    ::close(fd);
    return true;
  };
  h.refuse = [](int) {};
  h.tick = [](int64_t, bool) {};
  h.watching = [] { return false; };
  listener.start(h, 100);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(client, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0) << std::strerror(errno);
  auto f = nodelay.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_GT(f.get(), 0);
  ::close(client);
  listener.stop();
}
