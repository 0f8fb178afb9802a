// InferenceFactory: the same physics code in direct, batched and service mode gives the same
// results; service failures fall back to direct inference or fail the event; provenance.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>

#include "flow_test_util.hpp"
#include "quiver/core/model.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/inference.hpp"

using namespace quiver;
using namespace quiver::flow;
using flowtest::run_with_timeout;

namespace {

// x [N, 4], p [N, 2, n]  ->  y [N, 3] = tanh(W x + b),  z [N, 1] = sum(p)
class TinyModel final : public Model {
 public:
  explicit TinyModel(int64_t max_batch = 1024) {
    info_.name = "tiny";
    info_.backend = "test";
    info_.version = "7";
    info_.sha256 = "abc123";
    info_.inputs = {{"x", DType::F32, {Dim::sym("N"), 4}}, {"p", DType::F32, {Dim::sym("N"), 2, Dim::sym("n")}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("N"), 3}}, {"z", DType::F32, {Dim::sym("N"), 1}}};
    info_.max_batch = max_batch;
  }
  const ModelInfo& info() const override { return info_; }
  // The largest batch a state has run: a run on real (non-zero) inputs beyond it is a state growing
  // on a production call (prepare runs on zeros).
  struct State : RunState {
    int64_t sized = 0;
  };
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<State>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState& st) const override {
    validate_inputs(info_, in);
    calls++;
    int64_t n = in[0].dim(0);
    largest = std::max<int64_t>(largest, n);
    auto& s = static_cast<State&>(st);
    bool real = false;
    for (float v : in[0].span<float>()) real = real || v != 0;
    if (real && n > s.sized) ++grew;
    s.sized = std::max(s.sized, n);
    out.resize(2);
    out[0].ensure(DType::F32, std::vector<int64_t>{n, 3});
    out[1].ensure(DType::F32, std::vector<int64_t>{n, 1});
    const float* x = in[0].data<float>();
    const float* p = in[1].data<float>();
    int64_t pn = in[1].numel() / std::max<int64_t>(n, 1);
    for (int64_t r = 0; r < n; ++r) {
      for (int j = 0; j < 3; ++j) {
        float s = 0.1f * j;
        for (int i = 0; i < 4; ++i) s += (0.3f * (i + 1) - 0.2f * j) * x[r * 4 + i];
        out[0].data<float>()[r * 3 + j] = std::tanh(s);
      }
      float z = 0;
      for (int64_t i = 0; i < pn; ++i) z += p[r * pn + i];
      out[1].data<float>()[r] = z;
    }
  }
  mutable std::atomic<int> calls{0};
  mutable std::atomic<int64_t> largest{0};
  mutable std::atomic<int> grew{0};

 private:
  ModelInfo info_;
};

class ValueSource : public Source {
 public:
  Output<int> out_{this, "value"};
  int n = 0;
  void init() override { n = 0; }
  bool emit(Event& e) override {
    out_(e) = n++;
    return true;
  }
};

struct Scores {
  std::vector<std::array<float, 4>> items;
  Provenance prov;
};

// The physics code, written once.
class TinyTagger : public InferenceFactory {
 public:
  Input<int> in_{this, "value"};
  Output<Scores> out_{this, "scores"};
  TinyTagger() { set_dim("n", 5); }

 protected:
  void fill_inputs(const Event& e, InferenceInputs& in) override {
    int v = in_(e);
    size_t items = v % 4;
    in.resize(items);
    size_t kx = in.input_index("x"), kp = in.input_index("p");
    for (size_t i = 0; i < items; ++i) {
      float* x = in.f32(kx, i);
      for (int k = 0; k < 4; ++k) x[k] = 0.01f * v + 0.1f * i - 0.05f * k;
      float* p = in.f32(kp, i);
      for (int k = 0; k < in.item_numel(kp); ++k) p[k] = 0.5f * k + v;
    }
  }
  void read_outputs(Event& e, const InferenceOutputs& out) override {
    Scores& s = out_(e);
    s.prov = out.provenance();
    size_t ky = out.output_index("y"), kz = out.output_index("z");
    for (size_t i = 0; i < out.size(); ++i) {
      const float* y = out.f32(ky, i);
      s.items.push_back({y[0], y[1], y[2], out.f32(kz, i)[0]});
    }
  }
};

class ScoreCollector : public Processor {
 public:
  ScoreCollector() : Processor(Mode::Sequential) {}
  Input<Scores> in_{this, "scores"};
  std::map<uint64_t, Scores> rows;
  std::map<uint64_t, std::string> failed_events;
  void process(const Event& e) override { rows[e.number()] = in_(e); }
  void failed(const Event& e, const Error& err) override { failed_events[e.number()] = err.what(); }
};

// A fake remote server: answers from its own thread after a delay; fails every `fail_every`-th.
class FakeService : public AsyncInferer {
 public:
  FakeService(std::shared_ptr<const Model> m, int delay_us, int fail_every = 0, int64_t max_batch = 0)
      : model_(std::move(m)), delay_us_(delay_us), fail_every_(fail_every), max_batch_(max_batch) {}
  int64_t max_batch(const std::string&, const std::string&) override { return max_batch_; }
  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions&,
                   InferCallback done) override {
    int id = ++requests;
    auto failed = [model](ErrorCode code, const char* what) {
      InferResult r;
      r.provenance.model = model;
      r.error = Error(code, what);
      return r;
    };
    if (max_batch_ && inputs[0].tensor.dim(0) > max_batch_) {
      done(failed(ErrorCode::InvalidArgument, "batch too large"));
      return;
    }
    timer_.after(std::chrono::microseconds(delay_us_), [this, id, inputs = std::move(inputs), done, failed] {
      if (fail_every_ && id % fail_every_ == 0) {
        done(failed(ErrorCode::Unavailable, "no healthy server"));
        return;
      }
      std::vector<Tensor> ins;
      for (auto& t : inputs) ins.push_back(t.tensor.clone());
      auto outs = model_->run_once(ins);
      InferResult r;
      r.provenance.model = "tiny";
      r.provenance.version = "7";
      r.provenance.sha256 = "abc123";
      r.provenance.mode = "service";
      for (size_t k = 0; k < outs.size(); ++k) r.outputs.push_back({model_->info().outputs[k].name, std::move(outs[k])});
      done(std::move(r));
    });
  }
  std::atomic<int> requests{0};

 private:
  std::shared_ptr<const Model> model_;
  int delay_us_, fail_every_;
  int64_t max_batch_;
  flowtest::DelayTimer timer_;
};

struct Result {
  RunSummary summary;
  std::map<uint64_t, Scores> rows;
  std::map<uint64_t, std::string> failed;
  BatchStats batch;
};

Result run_mode(const std::string& mode, std::shared_ptr<TinyModel> model, std::shared_ptr<AsyncInferer> service = {},
                std::map<std::string, std::string> extra = {}) {
  Application app;
  app.set_parameter("nevents", "120");
  app.set_parameter("nthreads", "2");
  app.set_parameter("in_flight", "16");
  app.set_parameter("tagger.mode", mode);
  for (auto& [k, v] : extra) app.set_parameter(k, v);
  app.add<ValueSource>("source");
  auto& t = app.add<TinyTagger>("tagger");
  t.set_model(model);
  if (service) t.set_inferer(service);
  auto& c = app.add<ScoreCollector>("out");
  Result r;
  r.summary = run_with_timeout(app);
  r.rows = c.rows;
  r.failed = c.failed_events;
  r.batch = t.batch_stats();
  return r;
}

void expect_same(const Result& a, const Result& b) {
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (auto& [ev, s] : a.rows) {
    auto it = b.rows.find(ev);
    ASSERT_NE(it, b.rows.end()) << ev;
    ASSERT_EQ(s.items.size(), it->second.items.size()) << ev;
    for (size_t i = 0; i < s.items.size(); ++i)
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(s.items[i][k], it->second.items[i][k], 1e-6) << ev << " " << i;
  }
}

}  // namespace

TEST(FlowInference, AllModesGiveTheSameScores) {
  auto m = std::make_shared<TinyModel>();
  auto direct = run_mode("direct", m);
  ASSERT_FALSE(direct.summary.fatal) << direct.summary.fatal->what();
  ASSERT_EQ(direct.rows.size(), 120u);
  int direct_calls = m->calls.load();
  EXPECT_EQ(direct_calls, 30 * (0 + 1 + 2 + 3));  // one call per item
  EXPECT_EQ(direct.rows[5].prov.mode, "direct");
  EXPECT_EQ(direct.rows[5].prov.model, "tiny");
  EXPECT_EQ(direct.rows[5].prov.sha256, "abc123");
  EXPECT_EQ(direct.rows[5].items.size(), 1u);
  // independent check of one value: event 6, item 1, z = sum_k (0.5 k + 6) over n=5 per row x2
  ASSERT_EQ(direct.rows[6].items.size(), 2u);
  EXPECT_FLOAT_EQ(direct.rows[6].items[1][3], 10 * 6.0f + 0.5f * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9));

  auto per_event = run_mode("direct", m, {}, {{"tagger.direct_granularity", "event"}});
  expect_same(direct, per_event);

  m->largest = 0;
  auto batched = run_mode("batched", m, {}, {{"tagger.max_batch", "32"}, {"tagger.max_wait_ms", "3"}});
  ASSERT_FALSE(batched.summary.fatal);
  expect_same(direct, batched);
  EXPECT_EQ(batched.rows[5].prov.mode, "batched");
  EXPECT_EQ(batched.batch.items, 180u);
  EXPECT_LE(m->largest.load(), 32);
  EXPECT_GT(m->largest.load(), 3) << "batches gather items of several events";

  auto small = std::make_shared<TinyModel>(8);  // the model's own batch limit caps max_batch
  auto capped = run_mode("batched", small, {}, {{"tagger.max_batch", "64"}});
  ASSERT_FALSE(capped.summary.fatal);
  expect_same(direct, capped);
  EXPECT_LE(small->largest.load(), 8);
  EXPECT_LE(capped.batch.largest, 8u);

  auto loop = run_mode("service", m, {}, {{"tagger.service", "loopback:2"}});
  ASSERT_FALSE(loop.summary.fatal) << loop.summary.fatal->what();
  expect_same(direct, loop);
  EXPECT_EQ(loop.rows[5].prov.mode, "service");

  auto fake = std::make_shared<FakeService>(m, 1500);
  auto svc = run_mode("service", m, fake);
  ASSERT_FALSE(svc.summary.fatal);
  expect_same(direct, svc);
  EXPECT_EQ(fake->requests.load(), 90);  // one request per event with items

  // A server that accepts at most 2 items per request: events with 3 items send two requests.
  auto narrow = std::make_shared<FakeService>(m, 800, 0, 2);
  auto split = run_mode("service", m, narrow);
  ASSERT_FALSE(split.summary.fatal);
  expect_same(direct, split);
  EXPECT_EQ(narrow->requests.load(), 30 + 30 + 2 * 30);
  for (auto& [ev, sc] : split.rows) EXPECT_EQ(sc.prov.mode, "service") << ev;
}

TEST(FlowInference, ServiceFailureFallsBackOrFailsTheEvent) {
  auto m = std::make_shared<TinyModel>();
  auto direct = run_mode("direct", m);
  auto flaky = std::make_shared<FakeService>(m, 500, 3);
  auto fb = run_mode("service", m, flaky);
  ASSERT_FALSE(fb.summary.fatal);
  EXPECT_EQ(fb.summary.failed, 0u);
  expect_same(direct, fb);
  int fallbacks = 0;
  for (auto& [ev, s] : fb.rows) fallbacks += s.prov.mode == "service-fallback-direct";
  EXPECT_EQ(fallbacks, 30);  // every third of 90 requests

  auto flaky2 = std::make_shared<FakeService>(m, 500, 3);
  auto fail = run_mode("service", m, flaky2, {{"tagger.fallback", "fail"}, {"error_policy", "skip"}});
  EXPECT_FALSE(fail.summary.fatal);
  EXPECT_EQ(fail.summary.failed, 30u);
  EXPECT_EQ(fail.rows.size() + fail.failed.size(), 120u);
  for (auto& f : fail.summary.failures) {
    EXPECT_EQ(f.component, "tagger");
    EXPECT_NE(f.message.find("no healthy server"), std::string::npos);
  }
}

TEST(FlowInference, ConfigurationErrorsNameTheParameter) {
  auto m = std::make_shared<TinyModel>();
  try {
    run_mode("turbo", m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tagger.mode"), std::string::npos) << e.what();
  }
  Application app;
  app.set_parameter("nevents", "1");
  app.add<ValueSource>("source");
  app.add<TinyTagger>("tagger");  // no model
  app.add<ScoreCollector>("out");
  try {
    app.run();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tagger.model"), std::string::npos) << e.what();
  }
  try {
    (void)make_inferer("carrier-pigeon://x", m, "tiny");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
  }
}

// prepare: the local model's states (one per worker thread) are sized before the first event, so no
// event's call grows one; without it (off, or the default for a backend other than the engine) the
// first calls do. A spec that does not fit the model fails init naming the parameter and the input.
TEST(FlowInference, PrepareSizesTheLocalStatesAhead) {
  struct Case {
    const char* mode;
    std::map<std::string, std::string> extra;
    bool grows;
  };
  for (const Case& c : {Case{"direct", {{"tagger.prepare", "1,n=5"}}, false},
                        Case{"direct", {{"tagger.prepare", "off"}}, true},
                        Case{"direct", {{"tagger.direct_granularity", "event"}, {"tagger.prepare", "3,n=5"}}, false},
                        Case{"batched", {{"tagger.max_batch", "16"}, {"tagger.prepare", "16,n=5"}}, false},
                        Case{"batched", {{"tagger.max_batch", "16"}}, true}}) {
    auto m = std::make_shared<TinyModel>();
    auto r = run_mode(c.mode, m, {}, c.extra);
    ASSERT_FALSE(r.summary.fatal) << r.summary.fatal->what();
    ASSERT_EQ(r.rows.size(), 120u);
    if (c.grows) EXPECT_GT(m->grew.load(), 0) << c.mode;
    else EXPECT_EQ(m->grew.load(), 0) << c.mode << ": an event's call grew a prepared state";
  }
  for (auto [spec, needle] : {std::pair<const char*, const char*>{"8", "'p'"},  // n has no value
                              {"8,n=5,m=2", "'m'"},
                              {"2000,n=5", "max batch 1024"},
                              {"many", "'many'"}}) {
    try {
      run_mode("direct", std::make_shared<TinyModel>(), {}, {{"tagger.prepare", spec}});
      ADD_FAILURE() << spec << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tagger.prepare"), std::string::npos) << e.what();
    }
  }
}
