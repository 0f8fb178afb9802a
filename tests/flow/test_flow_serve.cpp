// The event framework's service mode against a real `quiver serve` process: the hls4ml MLP served
// over gRPC gives ONNX Runtime's answers on the model's reference sets, event by event, with
// provenance "service" (fallback off, so a failed request cannot hide behind direct inference).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "support/server_process.hpp"
#include "flow_test_util.hpp"
#include "onnx/reference_sets.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/inference.hpp"

using namespace quiver;
using namespace quiver::flow;

namespace {

const std::string kQuiver = QUIVER_BINARY_DIR "/src/cli/quiver";
const std::string kMlp = std::string(QUIVER_SHARED_DIR) + "/models/hep/hls4ml_three_layer/model.onnx";

// Event n carries reference set n % sets.
class SetSource : public Source {
 public:
  Output<int> out_{this, "set"};
  int n = 0;
  void init() override { n = 0; }
  bool emit(Event& e) override {
    out_(e) = n++;
    return true;
  }
};

struct Tagged {
  std::vector<float> probs;
  Provenance prov;
};

// One jet (item) per event: the reference set's 16 features.
class Hls4mlTagger : public InferenceFactory {
 public:
  Input<int> in_{this, "set"};
  Output<Tagged> out_{this, "tagged"};
  const std::vector<test::ReferenceSet>* sets = nullptr;

 protected:
  void fill_inputs(const Event& e, InferenceInputs& in) override {
    const Tensor& x = (*sets)[static_cast<size_t>(in_(e)) % sets->size()].inputs.at(0).tensor;
    in.resize(1);
    const size_t k = in.input_index("input_1_0");
    std::copy_n(x.data<float>(), in.item_numel(k), in.f32(k, 0));
  }
  void read_outputs(Event& e, const InferenceOutputs& out) override {
    Tagged& t = out_(e);
    const size_t k = out.output_index("output_softmax_Softmax_01");
    t.probs.assign(out.f32(k, 0), out.f32(k, 0) + out.item_numel(k));
    t.prov = out.provenance();
  }
};

class TaggedCollector : public Processor {
 public:
  TaggedCollector() : Processor(Mode::Sequential) {}
  Input<int> set_{this, "set"};
  Input<Tagged> in_{this, "tagged"};
  std::map<uint64_t, std::pair<int, Tagged>> rows;
  std::map<uint64_t, std::string> failures;
  void process(const Event& e) override { rows[e.number()] = {set_(e), in_(e)}; }
  void failed(const Event& e, const Error& err) override { failures[e.number()] = err.what(); }
};

}  // namespace

TEST(FlowServe, ServedMlpMatchesOnnxRuntimeEventByEvent) {
  const auto sets = test::reference_sets("hls4ml_three_layer");
  if (sets.empty()) GTEST_SKIP() << "shared models missing: " << kMlp;
  ASSERT_EQ(sets.size(), 2u);
  quiver::testing::TempRepository repo("quiver_flow_serve_repo");
  repo.add("hls", "name: \"hls\"\nplatform: \"onnxruntime_onnx\"\n");
  std::filesystem::copy_file(kMlp, repo.dir / "hls" / "1" / "model.onnx");
  quiver::testing::ServerProcess server(kQuiver, {"serve", "--model-repository", repo.dir.string(), "--grpc-port", "0",
                                                  "--http-port", "-1", "--metrics-port", "-1"});
  Application app;
  app.set_parameter("nevents", "12");
  app.set_parameter("nthreads", "2");
  app.set_parameter("tagger.mode", "service");
  app.set_parameter("tagger.model", kMlp);
  app.set_parameter("tagger.service", "grpc://" + server.grpc() + "/hls");
  app.set_parameter("tagger.fallback", "fail");
  app.set_parameter("error_policy", "skip");
  app.add<SetSource>("source");
  auto& tagger = app.add<Hls4mlTagger>("tagger");
  tagger.sets = &sets;
  auto& col = app.add<TaggedCollector>("out");
  auto s = flowtest::run_with_timeout(app, 120);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  for (const auto& [n, why] : col.failures) ADD_FAILURE() << "event " << n << " failed: " << why;
  ASSERT_EQ(col.rows.size(), 12u);
  EXPECT_EQ(tagger.fallbacks(), 0u);
  for (const auto& [n, row] : col.rows) {
    const auto& [set, tagged] = row;
    const auto& ref = sets[static_cast<size_t>(set) % sets.size()];
    EXPECT_EQ(tagged.prov.mode, "service") << "event " << n;
    EXPECT_EQ(tagged.prov.model, "hls") << "event " << n;
    EXPECT_TRUE(test::matches_reference(
        Tensor::from_vector(tagged.probs, {static_cast<int64_t>(tagged.probs.size())}), ref.outputs.at(0).tensor))
        << "event " << n << " (" << ref.name << ")";
  }
}
